// An independent model of networking.k8s.io/v1 NetworkPolicy semantics: given
// the namespaces, the pods (labels, named container ports, IPs) and the
// policies, it says whether a connection from one pod to another on a port and
// protocol is allowed. It is the oracle of the truth-table suite, so it
// deliberately shares no code with src/: it follows the API reference and the
// API server's validation and defaulting, written out again.
//
// The rules, in one place:
// - policyTypes: when absent (or empty) the API server sets [Ingress], plus
//   Egress if spec.egress has at least one rule. Rules of a type not listed
//   are ignored.
// - A pod selected (spec.podSelector, in the policy's namespace) by at least
//   one policy of a type is isolated for that direction; its allowed traffic
//   in that direction is the union of those policies' rules.
// - A rule allows a flow if one of its peers matches (absent or empty
//   from/to: every peer) and one of its ports matches (absent or empty ports:
//   every port and protocol).
// - Peers: podSelector alone = pods of the policy's namespace;
//   namespaceSelector alone = every pod of the matching namespaces; both in
//   one peer = pods matching the pod selector in the matching namespaces;
//   ipBlock = addresses in cidr and in none of except (pod IPs included;
//   an IPv4 block never matches an IPv6 address and vice versa).
// - Ports: protocol defaults to TCP; port absent = every port of the
//   protocol; a number, or a range up to endPort; a name is resolved on the
//   destination pod (the selected pod for ingress, the peer for egress):
//   it matches a container port of that name and of the rule's protocol.
// - A flow is allowed iff the source's egress allows it AND the
//   destination's ingress allows it. Replies of allowed flows pass, so only
//   the initiating direction is modelled.
// - Loopback (a pod to itself) follows the same rules here; whether a
//   datapath can see it at all is the harness's business, not the model's.

export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export type Family = 4 | 6;
export type Labels = Readonly<Record<string, string>>;

export interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol: Protocol;
}

export interface ModelNamespace {
  name: string;
  /** Including kubernetes.io/metadata.name, as the API server sets it. */
  labels: Labels;
}

export interface ModelPod {
  namespace: string;
  name: string;
  labels: Labels;
  ports: readonly ContainerPort[];
  /** At most one address per family. */
  ips: readonly string[];
}

export interface World {
  namespaces: readonly ModelNamespace[];
  pods: readonly ModelPod[];
}

export interface Probe {
  protocol: Protocol;
  port: number;
  family: Family;
}

export class ModelError extends Error {
  override readonly name = 'ModelError';
}

// ------------------------------------------------------------------ addresses

interface Cidr {
  family: Family;
  /** Network address as an integer (host bits cleared). */
  base: bigint;
  len: number;
}

function parseIPv4(text: string): bigint | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0n;
  for (const p of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255) return undefined;
    v = (v << 8n) | BigInt(p);
  }
  return v;
}

function parseIPv6(text: string): bigint | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(text)) return undefined;
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groups = (s: string): number[] | undefined => {
    if (s === '') return [];
    const out: number[] = [];
    const items = s.split(':');
    for (let i = 0; i < items.length; i++) {
      const g = items[i]!;
      if (i === items.length - 1 && g.includes('.')) {
        const v4 = parseIPv4(g);
        if (v4 === undefined) return undefined;
        out.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
        out.push(parseInt(g, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  let v = 0n;
  for (const g of [...head, ...new Array<number>(missing).fill(0), ...tail]) v = (v << 16n) | BigInt(g);
  return v;
}

export function parseIp(text: string): { family: Family; value: bigint } | undefined {
  const v4 = parseIPv4(text);
  if (v4 !== undefined) return { family: 4, value: v4 };
  const v6 = parseIPv6(text);
  if (v6 !== undefined) return { family: 6, value: v6 };
  return undefined;
}

export function parseCidr(text: string): Cidr {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text);
  const ip = m ? parseIp(m[1]!) : undefined;
  const len = m ? Number(m[2]) : NaN;
  const bits = ip?.family === 4 ? 32 : 128;
  if (!ip || !(len >= 0 && len <= bits)) throw new ModelError(`invalid CIDR ${JSON.stringify(text)}`);
  const mask = len === 0 ? 0n : ((1n << BigInt(len)) - 1n) << BigInt(bits - len);
  return { family: ip.family, base: ip.value & mask, len };
}

function cidrContains(c: Cidr, family: Family, value: bigint): boolean {
  if (c.family !== family) return false;
  const bits = family === 4 ? 32 : 128;
  return value >> BigInt(bits - c.len) === c.base >> BigInt(bits - c.len) || c.len === 0;
}

function cidrWithin(inner: Cidr, outer: Cidr): boolean {
  return inner.family === outer.family && inner.len >= outer.len && cidrContains(outer, inner.family, inner.base);
}

// ------------------------------------------------------------------ selectors

type Operator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

interface Requirement {
  key: string;
  operator: Operator;
  values: readonly string[];
}

/** A parsed LabelSelector: every requirement must hold (an empty one selects all). */
export interface Selector {
  requirements: readonly Requirement[];
}

function isMap(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function list(v: unknown, where: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new ModelError(`${where} must be a list`);
  return v;
}

export function parseSelector(raw: unknown, where: string): Selector {
  if (raw === undefined || raw === null) return { requirements: [] };
  if (!isMap(raw)) throw new ModelError(`${where} must be an object`);
  for (const k of Object.keys(raw)) if (k !== 'matchLabels' && k !== 'matchExpressions') throw new ModelError(`${where}: unknown field ${k}`);
  const requirements: Requirement[] = [];
  if (raw.matchLabels !== undefined && raw.matchLabels !== null) {
    if (!isMap(raw.matchLabels)) throw new ModelError(`${where}.matchLabels must be a map`);
    for (const [key, value] of Object.entries(raw.matchLabels)) {
      if (typeof value !== 'string') throw new ModelError(`${where}.matchLabels.${key} must be a string`);
      requirements.push({ key, operator: 'In', values: [value] });
    }
  }
  list(raw.matchExpressions, `${where}.matchExpressions`).forEach((e, i) => {
    const at = `${where}.matchExpressions[${i}]`;
    if (!isMap(e) || typeof e.key !== 'string' || e.key === '') throw new ModelError(`${at}: key is required`);
    const values = list(e.values, `${at}.values`);
    if (values.some((v) => typeof v !== 'string')) throw new ModelError(`${at}.values must be strings`);
    switch (e.operator) {
      case 'In':
      case 'NotIn':
        if (values.length === 0) throw new ModelError(`${at}: ${e.operator} needs at least one value`);
        break;
      case 'Exists':
      case 'DoesNotExist':
        if (values.length !== 0) throw new ModelError(`${at}: ${e.operator} takes no values`);
        break;
      default:
        throw new ModelError(`${at}: unknown operator ${JSON.stringify(e.operator)}`);
    }
    requirements.push({ key: e.key, operator: e.operator, values: values as string[] });
  });
  return { requirements };
}

export function selectorMatches(s: Selector, labels: Labels): boolean {
  return s.requirements.every((r) => {
    const has = Object.prototype.hasOwnProperty.call(labels, r.key);
    const value = labels[r.key];
    switch (r.operator) {
      case 'In':
        return has && r.values.includes(value!);
      case 'NotIn':
        return !has || !r.values.includes(value!);
      case 'Exists':
        return has;
      case 'DoesNotExist':
        return !has;
    }
  });
}

// ------------------------------------------------------------------ policies

type Peer =
  | { kind: 'selector'; podSelector?: Selector; namespaceSelector?: Selector }
  | { kind: 'ipBlock'; cidr: Cidr; except: Cidr[] };

interface PortRule {
  protocol: Protocol;
  port?: number | string;
  endPort?: number;
}

interface Rule {
  /** undefined: every peer. */
  peers?: Peer[];
  /** undefined: every port of every protocol. */
  ports?: PortRule[];
}

export interface Policy {
  namespace: string;
  name: string;
  podSelector: Selector;
  ingress: boolean;
  egress: boolean;
  ingressRules: Rule[];
  egressRules: Rule[];
}

const PROTOCOLS: readonly string[] = ['TCP', 'UDP', 'SCTP'];

function parsePort(raw: unknown, at: string): PortRule {
  if (!isMap(raw)) throw new ModelError(`${at} must be an object`);
  const protocol = (raw.protocol ?? 'TCP') as Protocol;
  if (!PROTOCOLS.includes(protocol)) throw new ModelError(`${at}.protocol: unsupported ${JSON.stringify(raw.protocol)}`);
  const out: PortRule = { protocol };
  if (raw.port !== undefined && raw.port !== null) {
    if (typeof raw.port === 'number') {
      if (!Number.isInteger(raw.port) || raw.port < 1 || raw.port > 65535) throw new ModelError(`${at}.port must be 1-65535`);
    } else if (typeof raw.port === 'string') {
      if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(raw.port) || raw.port.length > 15 || !/[a-z]/.test(raw.port)) {
        throw new ModelError(`${at}.port: invalid port name ${JSON.stringify(raw.port)}`);
      }
    } else {
      throw new ModelError(`${at}.port must be a number or a name`);
    }
    out.port = raw.port;
  }
  if (raw.endPort !== undefined && raw.endPort !== null) {
    if (typeof out.port !== 'number') throw new ModelError(`${at}.endPort needs a numeric port`);
    if (typeof raw.endPort !== 'number' || !Number.isInteger(raw.endPort) || raw.endPort < out.port || raw.endPort > 65535) {
      throw new ModelError(`${at}.endPort must be between port and 65535`);
    }
    out.endPort = raw.endPort;
  }
  return out;
}

function parsePeer(raw: unknown, at: string): Peer {
  if (!isMap(raw)) throw new ModelError(`${at} must be an object`);
  const hasPod = raw.podSelector !== undefined && raw.podSelector !== null;
  const hasNs = raw.namespaceSelector !== undefined && raw.namespaceSelector !== null;
  const hasIp = raw.ipBlock !== undefined && raw.ipBlock !== null;
  if (hasIp) {
    if (hasPod || hasNs) throw new ModelError(`${at}: ipBlock may not be combined with selectors`);
    const b = raw.ipBlock;
    if (!isMap(b) || typeof b.cidr !== 'string') throw new ModelError(`${at}.ipBlock.cidr is required`);
    const cidr = parseCidr(b.cidr);
    const except = list(b.except, `${at}.ipBlock.except`).map((e) => {
      const c = parseCidr(String(e));
      if (!cidrWithin(c, cidr) || c.len === cidr.len) throw new ModelError(`${at}.ipBlock.except ${String(e)} must be strictly within ${b.cidr}`);
      return c;
    });
    return { kind: 'ipBlock', cidr, except };
  }
  if (!hasPod && !hasNs) throw new ModelError(`${at}: a peer needs podSelector, namespaceSelector or ipBlock`);
  return {
    kind: 'selector',
    ...(hasPod ? { podSelector: parseSelector(raw.podSelector, `${at}.podSelector`) } : {}),
    ...(hasNs ? { namespaceSelector: parseSelector(raw.namespaceSelector, `${at}.namespaceSelector`) } : {}),
  };
}

function parseRule(raw: unknown, at: string, peerField: 'from' | 'to'): Rule {
  if (!isMap(raw)) throw new ModelError(`${at} must be an object`);
  const peers = list(raw[peerField], `${at}.${peerField}`).map((p, i) => parsePeer(p, `${at}.${peerField}[${i}]`));
  const ports = list(raw.ports, `${at}.ports`).map((p, i) => parsePort(p, `${at}.ports[${i}]`));
  return { ...(peers.length ? { peers } : {}), ...(ports.length ? { ports } : {}) };
}

/** Validates one NetworkPolicy object and applies the API server's defaults. */
export function parsePolicy(raw: unknown): Policy {
  if (!isMap(raw) || raw.kind !== 'NetworkPolicy' || raw.apiVersion !== 'networking.k8s.io/v1') throw new ModelError('not a networking.k8s.io/v1 NetworkPolicy');
  const meta = raw.metadata;
  if (!isMap(meta) || typeof meta.name !== 'string') throw new ModelError('metadata.name is required');
  const namespace = typeof meta.namespace === 'string' ? meta.namespace : 'default';
  const at = `NetworkPolicy ${namespace}/${meta.name}`;
  const spec = raw.spec;
  if (!isMap(spec)) throw new ModelError(`${at}: spec is required`);
  const podSelector = parseSelector(spec.podSelector, `${at}: spec.podSelector`);
  const ingressRaw = list(spec.ingress, `${at}: spec.ingress`);
  const egressRaw = list(spec.egress, `${at}: spec.egress`);
  const typesRaw = list(spec.policyTypes, `${at}: spec.policyTypes`);
  for (const t of typesRaw) if (t !== 'Ingress' && t !== 'Egress') throw new ModelError(`${at}: unknown policyType ${JSON.stringify(t)}`);
  const types = typesRaw.length ? typesRaw : ['Ingress', ...(egressRaw.length ? ['Egress'] : [])];
  return {
    namespace,
    name: meta.name,
    podSelector,
    ingress: types.includes('Ingress'),
    egress: types.includes('Egress'),
    ingressRules: ingressRaw.map((r, i) => parseRule(r, `${at}: spec.ingress[${i}]`, 'from')),
    egressRules: egressRaw.map((r, i) => parseRule(r, `${at}: spec.egress[${i}]`, 'to')),
  };
}

// ------------------------------------------------------------------ verdicts

function ipOf(pod: ModelPod, family: Family): bigint | undefined {
  for (const ip of pod.ips) {
    const p = parseIp(ip);
    if (p?.family === family) return p.value;
  }
  return undefined;
}

function peerMatches(world: World, peer: Peer, policyNs: string, pod: ModelPod, family: Family): boolean {
  if (peer.kind === 'ipBlock') {
    const ip = ipOf(pod, family);
    if (ip === undefined) return false;
    return cidrContains(peer.cidr, family, ip) && !peer.except.some((e) => cidrContains(e, family, ip));
  }
  if (peer.namespaceSelector) {
    const ns = world.namespaces.find((n) => n.name === pod.namespace);
    if (!ns || !selectorMatches(peer.namespaceSelector, ns.labels)) return false;
  } else if (pod.namespace !== policyNs) {
    return false;
  }
  return !peer.podSelector || selectorMatches(peer.podSelector, pod.labels);
}

function portMatches(rule: PortRule, dst: ModelPod, probe: Probe): boolean {
  if (rule.protocol !== probe.protocol) return false;
  if (rule.port === undefined) return true;
  if (typeof rule.port === 'string') {
    return dst.ports.some((p) => p.name === rule.port && p.protocol === rule.protocol && p.containerPort === probe.port);
  }
  return rule.endPort === undefined ? probe.port === rule.port : probe.port >= rule.port && probe.port <= rule.endPort;
}

function ruleAllows(world: World, rule: Rule, policyNs: string, peer: ModelPod, dst: ModelPod, probe: Probe): boolean {
  const peerOk = rule.peers === undefined || rule.peers.some((p) => peerMatches(world, p, policyNs, peer, probe.family));
  const portOk = rule.ports === undefined || rule.ports.some((p) => portMatches(p, dst, probe));
  return peerOk && portOk;
}

function selecting(policies: readonly Policy[], pod: ModelPod, dir: 'ingress' | 'egress'): Policy[] {
  return policies.filter((p) => p[dir] && p.namespace === pod.namespace && selectorMatches(p.podSelector, pod.labels));
}

export interface Verdict {
  allowed: boolean;
  egress: 'not-isolated' | 'allowed' | 'denied';
  ingress: 'not-isolated' | 'allowed' | 'denied';
}

/** Why a flow is allowed or not: each direction on its own. */
export function verdict(world: World, policies: readonly Policy[], from: ModelPod, to: ModelPod, probe: Probe): Verdict {
  const eg = selecting(policies, from, 'egress');
  const ing = selecting(policies, to, 'ingress');
  const egress = eg.length === 0 ? 'not-isolated' : eg.some((p) => p.egressRules.some((r) => ruleAllows(world, r, p.namespace, to, to, probe))) ? 'allowed' : 'denied';
  const ingress = ing.length === 0 ? 'not-isolated' : ing.some((p) => p.ingressRules.some((r) => ruleAllows(world, r, p.namespace, from, to, probe))) ? 'allowed' : 'denied';
  return { allowed: egress !== 'denied' && ingress !== 'denied', egress, ingress };
}

export function allowed(world: World, policies: readonly Policy[], from: ModelPod, to: ModelPod, probe: Probe): boolean {
  return verdict(world, policies, from, to, probe).allowed;
}

/** matrix[i][j]: may world.pods[i] open a connection to world.pods[j]? */
export function expectedMatrix(world: World, policies: readonly Policy[], probe: Probe): boolean[][] {
  return world.pods.map((from) => world.pods.map((to) => allowed(world, policies, from, to, probe)));
}
