// The plugin's network configuration as the runtime passes it on stdin
// (one plugin of the conflist, with name and cniVersion filled in).
import { CniCode, CniError } from './errors.js';
import { requireSupportedVersion, type CniVersion } from './versions.js';

export const DEFAULT_MTU = 1500;
const MIN_MTU = 576;
const MAX_MTU = 65535;

export interface ValidAttachment {
  containerId: string;
  ifname: string;
}

export interface NetConf {
  cniVersion: CniVersion;
  name: string;
  type: string;
  mtu: number;
  /** Present when IPAM is delegated to another plugin (e.g. host-local). */
  ipam?: { type: string } & Record<string, unknown>;
  logFile?: string;
  logLevel?: string;
  prevResult?: Record<string, unknown>;
  /** GC only: cni.dev/valid-attachments. */
  validAttachments?: ValidAttachment[];
  /** The raw object, for delegating to an IPAM plugin unchanged. */
  raw: Record<string, unknown>;
}

function invalid(msg: string, details = ''): CniError {
  return new CniError(CniCode.INVALID_NETWORK_CONFIG, msg, details);
}

function optionalString(raw: Record<string, unknown>, key: string): string | undefined {
  const v = raw[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw invalid(`${key} must be a string`);
  return v;
}

export function parseNetConf(raw: Record<string, unknown> | undefined): NetConf {
  if (!raw) throw new CniError(CniCode.DECODE_FAILURE, 'no network configuration on stdin');
  if (raw.cniVersion === undefined) throw invalid('cniVersion is required');
  const cniVersion = requireSupportedVersion(raw.cniVersion);
  const name = raw.name;
  if (typeof name !== 'string' || !/^[a-zA-Z0-9_.-]+$/.test(name)) throw invalid('name must be a non-empty string of letters, digits, "_", "." and "-"');
  const type = raw.type;
  if (typeof type !== 'string' || type === '') throw invalid('type must be a non-empty string');
  let mtu = DEFAULT_MTU;
  if (raw.mtu !== undefined) {
    if (typeof raw.mtu !== 'number' || !Number.isInteger(raw.mtu) || raw.mtu < MIN_MTU || raw.mtu > MAX_MTU) {
      throw invalid(`mtu must be an integer from ${MIN_MTU} to ${MAX_MTU}`);
    }
    mtu = raw.mtu;
  }
  let ipam: NetConf['ipam'];
  if (raw.ipam !== undefined) {
    const i = raw.ipam as Record<string, unknown>;
    if (i === null || typeof i !== 'object' || Array.isArray(i)) throw invalid('ipam must be an object');
    // An empty ipam object (some tools write "ipam": {}) means "no delegation".
    if (Object.keys(i).length > 0) {
      if (typeof i.type !== 'string' || !/^[a-zA-Z0-9_.-]+$/.test(i.type)) throw invalid('ipam.type must name an IPAM plugin');
      ipam = i as NetConf['ipam'];
    }
  }
  let prevResult: NetConf['prevResult'];
  if (raw.prevResult !== undefined) {
    if (raw.prevResult === null || typeof raw.prevResult !== 'object') throw invalid('prevResult must be an object');
    prevResult = raw.prevResult as Record<string, unknown>;
  }
  let validAttachments: ValidAttachment[] | undefined;
  const va = raw['cni.dev/valid-attachments'];
  if (va !== undefined) {
    if (!Array.isArray(va)) throw invalid('cni.dev/valid-attachments must be an array');
    validAttachments = va.map((a, i) => {
      const o = a as { containerID?: unknown; ifname?: unknown };
      if (!o || typeof o.containerID !== 'string' || typeof o.ifname !== 'string') {
        throw invalid(`cni.dev/valid-attachments[${i}] needs string containerID and ifname`);
      }
      return { containerId: o.containerID, ifname: o.ifname };
    });
  }
  return {
    cniVersion,
    name,
    type,
    mtu,
    ipam,
    logFile: optionalString(raw, 'logFile'),
    logLevel: optionalString(raw, 'logLevel'),
    prevResult,
    validAttachments,
    raw,
  };
}

/** CNI_ARGS: "K=V;K=V". Pod identity keys are the ones Sluice reads. */
export interface PodArgs {
  namespace?: string;
  name?: string;
  infraContainerId?: string;
  uid?: string;
}

const KNOWN_ARGS = new Set(['IgnoreUnknown', 'K8S_POD_NAMESPACE', 'K8S_POD_NAME', 'K8S_POD_INFRA_CONTAINER_ID', 'K8S_POD_UID']);

export function parseCniArgs(text: string): PodArgs {
  const pairs = new Map<string, string>();
  for (const part of text.split(';')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0) throw new CniError(CniCode.INVALID_ENV, `invalid CNI_ARGS pair ${JSON.stringify(part)}`, 'expected KEY=VALUE separated by ";"');
    pairs.set(part.slice(0, eq), part.slice(eq + 1));
  }
  const ignoreUnknown = ['1', 'true'].includes((pairs.get('IgnoreUnknown') ?? '').toLowerCase());
  if (!ignoreUnknown) {
    const unknown = [...pairs.keys()].filter((k) => !KNOWN_ARGS.has(k));
    if (unknown.length) throw new CniError(CniCode.INVALID_ENV, `unknown CNI_ARGS ${unknown.join(', ')}`, 'set IgnoreUnknown=1 to ignore them');
  }
  return {
    namespace: pairs.get('K8S_POD_NAMESPACE') || undefined,
    name: pairs.get('K8S_POD_NAME') || undefined,
    infraContainerId: pairs.get('K8S_POD_INFRA_CONTAINER_ID') || undefined,
    uid: pairs.get('K8S_POD_UID') || undefined,
  };
}

/** Capability args (runtimeConfig) keys compare case-insensitively. */
export function runtimeConfig(raw: Record<string, unknown>, key: string): unknown {
  const rc = raw.runtimeConfig;
  if (!rc || typeof rc !== 'object') return undefined;
  const want = key.toLowerCase();
  for (const [k, v] of Object.entries(rc)) if (k.toLowerCase() === want) return v;
  return undefined;
}

/** Container IDs: the spec's alphabet (letters, digits, "_", ".", "-"), starting alphanumeric. */
export function requireContainerId(id: string): string {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(id)) {
    throw new CniError(CniCode.INVALID_ENV, `invalid CNI_CONTAINERID ${JSON.stringify(id)}`, 'must start with a letter or digit and contain only letters, digits, "_", "." and "-"');
  }
  return id;
}
