// networking.k8s.io/v1 NetworkPolicy: validation (as the API server does it,
// so an invalid policy is rejected whole) and defaulting (policyTypes, port
// protocol) into a normalized form the compiler consumes.
import { isIP } from 'node:net';
import { cidrContains, parseCidr as parseIpamCidr, parseIp } from '../net/index.js';
import { isObject, PolicyError } from './errors.js';
import { parseSelector, type LabelSelector } from './selector.js';

export type Protocol = 'TCP' | 'UDP' | 'SCTP';

export interface PortSpec {
  protocol: Protocol;
  /** undefined = every port of the protocol. */
  port?: number | string;
  endPort?: number;
}

export interface IpBlock {
  cidr: string;
  except: string[];
}

export type Peer =
  | { kind: 'pods'; podSelector?: LabelSelector; namespaceSelector?: LabelSelector }
  | { kind: 'ipBlock'; ipBlock: IpBlock };

export interface Rule {
  /** undefined = every peer (the field was absent or empty). */
  peers?: Peer[];
  /** undefined = every port and protocol. */
  ports?: PortSpec[];
}

export interface NetworkPolicy {
  namespace: string;
  name: string;
  podSelector: LabelSelector;
  ingress: Rule[];
  egress: Rule[];
  /** After defaulting. */
  types: { ingress: boolean; egress: boolean };
  /** Annotated `sluice.dev/enforcement: audit`: what it alone would drop passes, reported as audit. */
  audit: boolean;
  /** The annotation held something else: the policy is enforced, and this says why (a status warning). */
  enforcementWarning?: string;
}

/** The annotation that puts a NetworkPolicy in audit mode (PRODUCT.md §4). */
export const ENFORCEMENT_ANNOTATION = 'sluice.dev/enforcement';

/**
 * `audit` or `enforce` (any case). Anything else enforces — the fail-closed
 * reading of a typo — with a warning, rather than rejecting the policy,
 * which would leave its pods unisolated.
 */
function enforcementOf(annotations: unknown, where: string): { audit: boolean; enforcementWarning?: string } {
  const value = isObject(annotations) ? annotations[ENFORCEMENT_ANNOTATION] : undefined;
  if (value === undefined) return { audit: false };
  const text = typeof value === 'string' ? value.toLowerCase() : '';
  if (text === 'audit' || text === 'enforce') return { audit: text === 'audit' };
  return { audit: false, enforcementWarning: `${where}: annotation ${ENFORCEMENT_ANNOTATION}=${JSON.stringify(value)} is neither audit nor enforce: the policy is enforced` };
}

const PORT_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function parseCidr(text: unknown, where: string): { ip: string; len: number; family: 4 | 6 } {
  if (typeof text !== 'string') throw new PolicyError(`${where} must be a CIDR string`);
  const [ip, lenText, extra] = text.split('/');
  const family = isIP(ip ?? '');
  const len = Number(lenText);
  if (extra !== undefined || (family !== 4 && family !== 6) || !/^\d{1,3}$/.test(lenText ?? '') || len > (family === 4 ? 32 : 128)) {
    throw new PolicyError(`${where}: invalid CIDR ${JSON.stringify(text)}`);
  }
  return { ip: ip!, len, family };
}

function parsePort(raw: unknown, where: string): PortSpec {
  if (!isObject(raw)) throw new PolicyError(`${where} must be an object`);
  const protocol = (raw.protocol ?? 'TCP') as Protocol;
  if (!['TCP', 'UDP', 'SCTP'].includes(protocol)) throw new PolicyError(`${where}.protocol must be TCP, UDP or SCTP`);
  const out: PortSpec = { protocol };
  if (raw.port !== undefined && raw.port !== null) {
    if (typeof raw.port === 'number') {
      if (!Number.isInteger(raw.port) || raw.port < 1 || raw.port > 65535) throw new PolicyError(`${where}.port must be 1-65535`);
      out.port = raw.port;
    } else if (typeof raw.port === 'string') {
      // A numeric string is how YAML int-or-string arrives sometimes.
      if (/^\d+$/.test(raw.port)) {
        const n = Number(raw.port);
        if (n < 1 || n > 65535) throw new PolicyError(`${where}.port must be 1-65535`);
        out.port = n;
      } else {
        if (raw.port.length > 15 || !PORT_NAME.test(raw.port) || !/[a-z]/.test(raw.port)) throw new PolicyError(`${where}.port ${JSON.stringify(raw.port)} is not a valid port name`);
        out.port = raw.port;
      }
    } else {
      throw new PolicyError(`${where}.port must be a number or a port name`);
    }
  }
  if (raw.endPort !== undefined && raw.endPort !== null) {
    if (typeof out.port !== 'number') throw new PolicyError(`${where}.endPort needs a numeric port`);
    if (typeof raw.endPort !== 'number' || !Number.isInteger(raw.endPort) || raw.endPort < out.port || raw.endPort > 65535) {
      throw new PolicyError(`${where}.endPort must be a number from port to 65535`);
    }
    out.endPort = raw.endPort;
  }
  return out;
}

function parsePeer(raw: unknown, where: string): Peer {
  if (!isObject(raw)) throw new PolicyError(`${where} must be an object`);
  const hasPods = raw.podSelector !== undefined && raw.podSelector !== null;
  const hasNs = raw.namespaceSelector !== undefined && raw.namespaceSelector !== null;
  const hasBlock = raw.ipBlock !== undefined && raw.ipBlock !== null;
  if (hasBlock && (hasPods || hasNs)) throw new PolicyError(`${where}: ipBlock cannot be combined with podSelector or namespaceSelector`);
  if (hasBlock) {
    const b = raw.ipBlock;
    if (!isObject(b)) throw new PolicyError(`${where}.ipBlock must be an object`);
    const cidr = parseCidr(b.cidr, `${where}.ipBlock.cidr`);
    const except = b.except ?? [];
    if (!Array.isArray(except)) throw new PolicyError(`${where}.ipBlock.except must be a list`);
    for (const [i, e] of except.entries()) {
      const ex = parseCidr(e, `${where}.ipBlock.except[${i}]`);
      if (ex.family !== cidr.family || ex.len <= cidr.len || !within(ex.ip, ex.family, cidr.ip, cidr.len)) {
        throw new PolicyError(`${where}.ipBlock.except[${i}] ${e as string} must be a strict subset of ${b.cidr as string}`);
      }
    }
    return { kind: 'ipBlock', ipBlock: { cidr: b.cidr as string, except: except as string[] } };
  }
  if (!hasPods && !hasNs) throw new PolicyError(`${where} must set podSelector, namespaceSelector or ipBlock`);
  return {
    kind: 'pods',
    ...(hasPods ? { podSelector: parseSelector(raw.podSelector, `${where}.podSelector`) } : {}),
    ...(hasNs ? { namespaceSelector: parseSelector(raw.namespaceSelector, `${where}.namespaceSelector`) } : {}),
  };
}

function within(ip: string, _family: 4 | 6, netIp: string, len: number): boolean {
  const net = parseIpamCidr(`${netIp}/${len}`);
  const { family, value } = parseIp(ip);
  return cidrContains(net, family, value);
}

function parseRules(raw: unknown, peerField: 'from' | 'to', where: string): Rule[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new PolicyError(`${where} must be a list`);
  return raw.map((r: unknown, i: number) => {
    const at = `${where}[${i}]`;
    if (!isObject(r)) throw new PolicyError(`${at} must be an object`);
    const rule: Rule = {};
    const peers = r[peerField];
    if (peers !== undefined && peers !== null) {
      if (!Array.isArray(peers)) throw new PolicyError(`${at}.${peerField} must be a list`);
      if (peers.length) rule.peers = peers.map((p: unknown, j: number) => parsePeer(p, `${at}.${peerField}[${j}]`));
    }
    if (r.ports !== undefined && r.ports !== null) {
      if (!Array.isArray(r.ports)) throw new PolicyError(`${at}.ports must be a list`);
      if (r.ports.length) rule.ports = r.ports.map((p: unknown, j: number) => parsePort(p, `${at}.ports[${j}]`));
    }
    return rule;
  });
}

/** Validates and defaults one NetworkPolicy object (as stored). */
export function parseNetworkPolicy(obj: { metadata: { name: string; namespace?: string; annotations?: unknown }; spec?: unknown }): NetworkPolicy {
  const where = `NetworkPolicy ${obj.metadata.namespace ?? 'default'}/${obj.metadata.name}`;
  const spec = obj.spec;
  if (!isObject(spec)) throw new PolicyError(`${where}: spec is required`);
  if (spec.podSelector === undefined || spec.podSelector === null) throw new PolicyError(`${where}: spec.podSelector is required ({} selects every pod)`);
  const podSelector = parseSelector(spec.podSelector, `${where}: spec.podSelector`);
  const ingress = parseRules(spec.ingress, 'from', `${where}: spec.ingress`);
  const egress = parseRules(spec.egress, 'to', `${where}: spec.egress`);
  let types: NetworkPolicy['types'];
  const pt = spec.policyTypes;
  if (pt === undefined || pt === null || (Array.isArray(pt) && pt.length === 0)) {
    // API server defaulting: Ingress always, Egress when there are egress rules.
    types = { ingress: true, egress: egress.length > 0 };
  } else {
    if (!Array.isArray(pt)) throw new PolicyError(`${where}: spec.policyTypes must be a list`);
    for (const t of pt) if (t !== 'Ingress' && t !== 'Egress') throw new PolicyError(`${where}: spec.policyTypes: ${JSON.stringify(t)} is not Ingress or Egress`);
    types = { ingress: pt.includes('Ingress'), egress: pt.includes('Egress') };
  }
  return { namespace: obj.metadata.namespace ?? 'default', name: obj.metadata.name, podSelector, ingress, egress, types, ...enforcementOf(obj.metadata.annotations, where) };
}
