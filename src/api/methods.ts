// Every method of the agent's socket (SLUICE-API/1): its params, with the
// check the agent runs on them before any handler sees them, and its result.
// The agent implements `Handlers` (dispatch.ts) and the CLI calls `call`
// (client.ts): both are typed from this one table, so a change of a reply's
// shape is a compile error on both sides, not a field silently missing.
//
// The reply types are the contract, written out here rather than imported
// from the agent: the agent's own types must fit them (the compiler checks
// the handlers), and the CLI never imports the agent.
import type { Explanation } from '../explain/index.js';
import type { Flow } from '../observe/index.js';
import type { RuleRef } from '../policy/index.js';
import { AgentApiError, ApiCode } from './errors.js';

/** A policy's Accepted condition (`status` → policies, `policies`). */
export interface PolicyCondition {
  kind: 'NetworkPolicy' | 'FQDNPolicy';
  policy: string;
  accepted: boolean;
  reason: 'Valid' | 'Invalid';
  message: string;
  /** Invalid now, but an earlier valid version is in force. */
  previousInForce: boolean;
}

/** A pod's DNS share: only pods with drops or something held are listed. */
export interface PodDnsRow {
  pod: string;
  rateLimited: number;
  overInflight: number;
  tcpOverLimit: number;
  inflight: number;
  tcpConnections: number;
}

/** `status` → fqdn: what the DNS proxy holds and its counters since the agent started. */
export interface FqdnStatusReply {
  names: number;
  ips: number;
  /** (rule, address) pairs in the datapath. */
  entries: number;
  proxy: Record<string, number>;
  pods?: PodDnsRow[];
  /** The resolvers whose answers are trusted now (absent from older agents). */
  trusted?: string[];
}

/** A standalone manifest's state. */
export interface ManifestState {
  file: string;
  ok: boolean;
  error?: string;
  objects: number;
}

export interface ReflectorState {
  kind: string;
  synced: boolean;
  objects: number;
  resourceVersion: string;
  lists: number;
  watches: number;
  events: number;
  error?: string;
  since?: string;
}

export interface KubernetesState {
  server: string;
  reflectors: ReflectorState[];
  routes: Array<{ dst: string; gateway: string }>;
}

/** A policy source (the standalone directory, the Kubernetes API) and whether it is in sync. */
export interface SourceState {
  /** "standalone" or "kubernetes". */
  name: string;
  /** Its first full picture is in the store and it reports nothing failing now (what fails is in `problems`). */
  synced: boolean;
}

/** One eBPF program and where it is attached. */
export interface ProgramState {
  program: string;
  /** Its hook and what it is on: "tc ingress on pod veths", "cgroup connect4". */
  hook: string;
  /** Where it is attached now (pod veths: those with both entry programs in their tc slot). */
  attached: number;
  /** Where it should be; absent where the agent cannot tell (node links come and go). */
  expected?: number;
}

/** One pinned map's fill level, counted at most every 10 s. */
export interface MapFillState {
  /** The pinned name without "sluice_" and its layout version: "ct", "policy", "lb_svc". */
  map: string;
  entries: number;
  capacity: number;
}

export interface DatapathState {
  programs: ProgramState[];
  /** The node's links carrying sluice_from_node (DNS answer steering; none with --dns-upstream-source node). */
  nodeLinks: string[];
  /** Empty if they could not be counted (logged). */
  maps: MapFillState[];
  /** Policy syncs since the agent started that rewrote some endpoint's entries. */
  policyGeneration: number;
}

/** An error the agent logged, oldest first; the same error logged again in a row counts up. */
export interface RecentErrorRow {
  /** When it was last logged. */
  time: string;
  level: 'error' | 'fatal';
  subsystem: string;
  message: string;
  error?: string;
  count: number;
}

export interface StatusReply {
  /** The agent's version (package.json's, set at build). Absent, like every field marked so below, from older agents. */
  version?: string;
  /** When the agent started, and how long ago in seconds. */
  startedAt?: string;
  uptimeSeconds?: number;
  nodeName: string;
  mode: string;
  podCidrs: string[];
  endpoints: number;
  allocations: number;
  sources?: SourceState[];
  datapath?: DatapathState;
  manifests: ManifestState[];
  /** Kubernetes mode: the API server, each kind's list/watch, and the routes to other nodes' pods. */
  kubernetes?: KubernetesState;
  /** Absent from agents older than FQDNPolicy. */
  policies?: PolicyCondition[];
  /** What the last policy compile could not apply (e.g. FQDN rules beyond the per-pod limit). */
  warnings?: string[];
  /**
   * What is failing on the node now, one line each: the datapath not
   * programmed (endpoints fail closed), unreadable endpoint records or FQDN
   * state (quarantined), the standalone directory, the flow log.
   */
  problems?: string[];
  fqdn?: FqdnStatusReply;
  /** The last error lines of the agent's log (at most 20): history, not what is failing now. */
  recentErrors?: RecentErrorRow[];
}

/** One (name, addresses, rules) row of `fqdn`. */
export interface FqdnNameRow {
  name: string;
  ips: Array<{ ip: string; expiresInMs: number }>;
  rules: RuleRef[];
}

/** How policy treats one direction of an endpoint: enforced, audited only (drops reported, not made), or not isolated. */
export type Enforcement = 'enforce' | 'audit' | 'none';

export interface EndpointRow {
  /** "ns/name", or "" when the runtime gave none. */
  pod: string;
  containerId: string;
  ifname: string;
  hostIfname: string;
  /** The pod's network namespace (the CNI ADD's CNI_NETNS). */
  netns: string;
  ips: string[];
  programmed: boolean;
  /** The identity of its labels; null until the policy engine has compiled it. */
  identity: number | null;
  /** The labels policy judges it by (its Pod's; none for a pod the agent has no object of). */
  labels: Record<string, string>;
  ingress: Enforcement;
  egress: Enforcement;
  /** How many policies (NetworkPolicies and FQDNPolicies) select it. */
  policies: number;
}

/** A drop reason's counters; the counts are 64-bit, so they travel as decimal strings. */
export interface MetricRow {
  reason: string;
  reasonCode: number;
  direction: 'egress' | 'ingress';
  /** Packets that passed although `reason` (a drop) applied: audit-mode policy. */
  audit: boolean;
  packets: bigint;
  bytes: bigint;
}

/** No params: the request carries none (or an empty object). */
export type NoParams = Record<string, never>;

export interface FqdnParams {
  /** Only names whose rules select this local pod, "ns/name". */
  pod?: string;
}

export interface FlowsParams {
  /** Only flows after this sequence number. */
  since?: number;
  pod?: string;
  verdict?: 'allowed' | 'dropped' | 'audit';
  /** At most this many, the most recent; 0 or absent: all kept. */
  limit?: number;
}

/** `explain`: a flow as `sluice explain` takes it (src/explain/query.ts). */
export interface ExplainParams {
  from: string;
  to: string;
  port: string;
}

/** The explanation, plus the source pod's netns path when it is one of this node's pods (for `sluice test --live` probes). */
export type ExplainReply = Explanation & { netns?: string };

/** Method name → params and the handler's result. */
export interface ApiMethods {
  status: { params: NoParams; result: StatusReply };
  policies: { params: NoParams; result: PolicyCondition[] };
  fqdn: { params: FqdnParams; result: FqdnNameRow[] };
  flows: { params: FlowsParams; result: Flow[] };
  metrics: { params: NoParams; result: MetricRow[] };
  endpoints: { params: NoParams; result: EndpointRow[] };
  explain: { params: ExplainParams; result: ExplainReply };
}

export type Method = keyof ApiMethods;
export type Params<M extends Method> = ApiMethods[M]['params'];
/** What the agent's handler returns. */
export type Result<M extends Method> = ApiMethods[M]['result'];

/** A value as it arrives on the other end: JSON.stringify turns a bigint into its decimal string (server.ts). */
export type Wire<T> = T extends bigint
  ? string
  : T extends ReadonlyArray<infer U>
    ? Array<Wire<U>>
    : T extends object
      ? { [K in keyof T]: Wire<T[K]> }
      : T;

/** What `call` resolves with. */
export type Reply<M extends Method> = Wire<Result<M>>;

const SHOW_MAX_CHARS = 80;

/** A value for an error message: JSON, cut short (a request may be megabytes). */
function show(v: unknown): string {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > SHOW_MAX_CHARS ? `${text.slice(0, SHOW_MAX_CHARS)}…` : text;
}

/** One param's check: `expected` completes "must be …" in the error. */
interface ParamRule {
  expected: string;
  test(v: unknown): boolean;
}

const STRING: ParamRule = { expected: 'a string', test: (v) => typeof v === 'string' };
const COUNT: ParamRule = { expected: 'a whole number ≥ 0', test: (v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 };
const VERDICT: ParamRule = { expected: '"allowed", "dropped" or "audit"', test: (v) => v === 'allowed' || v === 'dropped' || v === 'audit' };

/**
 * Checks a request's params against the method's rules: absent or null is
 * no params; otherwise a plain object whose every key has a rule (a
 * misspelt name is an error, not silently a filter that does nothing) and
 * whose every value passes it.
 */
function checked<P>(method: Method, rules: Record<string, ParamRule>): (raw: unknown) => P {
  return (raw) => {
    if (raw === undefined || raw === null) return {} as P;
    if (typeof raw !== 'object' || Array.isArray(raw)) throw new AgentApiError(ApiCode.BAD_PARAMS, `${method}: params must be an object, not ${show(raw)}`);
    for (const [key, value] of Object.entries(raw)) {
      if (!Object.hasOwn(rules, key)) {
        const known = Object.keys(rules);
        throw new AgentApiError(ApiCode.BAD_PARAMS, `${method}: unknown param ${show(key)} (${known.length ? `it takes ${known.join(', ')}` : 'it takes none'})`);
      }
      const rule = rules[key]!;
      if (!rule.test(value)) throw new AgentApiError(ApiCode.BAD_PARAMS, `${method}: ${key} must be ${rule.expected}, not ${show(value)}`);
    }
    return raw as P;
  };
}

/** `check`, and every one of `names` present. */
function required<P>(method: Method, names: readonly string[], check: (raw: unknown) => P): (raw: unknown) => P {
  return (raw) => {
    const params = check(raw);
    const missing = names.filter((n) => (params as Record<string, unknown>)[n] === undefined);
    if (missing.length) throw new AgentApiError(ApiCode.BAD_PARAMS, `${method}: ${missing.join(', ')} required`);
    return params;
  };
}

/** Each method's params check, run by dispatch() before the handler. */
export const METHODS: { readonly [M in Method]: { readonly parseParams: (raw: unknown) => Params<M> } } = {
  status: { parseParams: checked('status', {}) },
  policies: { parseParams: checked('policies', {}) },
  fqdn: { parseParams: checked('fqdn', { pod: STRING }) },
  flows: { parseParams: checked('flows', { since: COUNT, pod: STRING, verdict: VERDICT, limit: COUNT }) },
  metrics: { parseParams: checked('metrics', {}) },
  endpoints: { parseParams: checked('endpoints', {}) },
  explain: { parseParams: required('explain', ['from', 'to', 'port'], checked('explain', { from: STRING, to: STRING, port: STRING })) },
};

export function isMethod(name: string): name is Method {
  return Object.hasOwn(METHODS, name);
}
