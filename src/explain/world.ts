// What `sluice explain` and `sluice test` judge against: every pod made an
// endpoint of one fresh compile() (the compiler the datapath is fed from),
// with the pods' addresses, and the ipBlock prefixes in the order the
// datapath's LPM trie answers them (longest first).
//
// Offline the pods come from manifests (load.ts); live, from the agent's last
// compile input (its local endpoints and the other nodes' pods, all made
// endpoints here so that either end of a flow can be judged) plus what its
// DNS proxy has learned.
import { canonicalIp, cidrContains, familyOf, parseCidr, parseIp, type Cidr } from '../net/index.js';
import { compileSteps, runSteps, type CompiledPolicy, type EndpointInput, type FqdnPolicy, type Labels, type NamedPort, type NetworkPolicy, type PolicyInput } from '../policy/index.js';

export interface WorldPodInput {
  namespace: string;
  name: string;
  labels: Labels;
  namedPorts: NamedPort[];
  /** Its addresses: one per family, as a Kubernetes pod has; none when unknown. */
  ips: string[];
}

export interface WorldInput {
  /** Namespace name → labels (kubernetes.io/metadata.name included). */
  namespaces: ReadonlyMap<string, Labels>;
  pods: readonly WorldPodInput[];
  policies: readonly NetworkPolicy[];
  fqdnPolicies: readonly FqdnPolicy[];
  /** The node's own addresses (live); traffic from them to a pod always passes. */
  nodeIps: readonly string[];
  dnsInterceptAll?: boolean;
}

export interface WorldPod {
  /** "namespace/name": the pod's name on the command line and its endpoint key in the compile. */
  name: string;
  ips: string[];
  namedPorts: NamedPort[];
}

/** What the DNS proxy has learned (live only): a name's addresses, an address's names, with the time each has left. */
export interface Learned {
  namesOf(ip: string): Array<{ name: string; expiresInMs: number }>;
  addressesOf(name: string): Array<{ ip: string; expiresInMs: number }>;
}

export interface World {
  compiled: CompiledPolicy;
  pods: ReadonlyMap<string, WorldPod>;
  /** Pod address (canonical) → its pod. */
  byIp: ReadonlyMap<string, WorldPod>;
  /** ipBlock prefixes with their CIDR identities, longest first: the first containing an address is the trie's answer. */
  prefixes: ReadonlyArray<{ cidr: Cidr; id: number }>;
  learned?: Learned;
}

/** Compiles `input` with fresh identities (no cache: pure) into a world to explain flows in. */
export function buildWorld(input: WorldInput, learned?: Learned): World {
  return runSteps(worldSteps(input, learned));
}

/** buildWorld in the compiler's steps, for a caller that shares its thread (the agent: runSliced). */
export function* worldSteps(input: WorldInput, learned?: Learned): Generator<void, World, void> {
  const pods = new Map<string, WorldPod>();
  const endpoints: EndpointInput[] = [];
  for (const p of input.pods) {
    const name = `${p.namespace}/${p.name}`;
    if (pods.has(name)) continue; // the first record of a pod stands for it (a second interface adds nothing to judge)
    const ips = p.ips.filter((ip) => familyOf(ip) !== 0).map(canonicalIp);
    pods.set(name, { name, ips, namedPorts: p.namedPorts });
    endpoints.push({ key: name, namespace: p.namespace, name: p.name, ips, labels: p.labels, namedPorts: p.namedPorts });
  }
  const compiled = yield* compileSteps({
    namespaces: input.namespaces,
    endpoints,
    policies: input.policies,
    fqdnPolicies: input.fqdnPolicies,
    dnsInterceptAll: input.dnsInterceptAll,
    nodeIps: input.nodeIps.filter((ip) => familyOf(ip) !== 0).map(canonicalIp),
  });
  const byIp = new Map<string, WorldPod>();
  for (const pod of pods.values()) for (const ip of pod.ips) byIp.set(ip, pod);
  const prefixes = [...compiled.cidrs].map(([text, id]) => ({ cidr: parseCidr(text), id })).sort((a, b) => b.cidr.prefixLen - a.cidr.prefixLen);
  return { compiled, pods, byIp, prefixes, ...(learned ? { learned } : {}) };
}

/** The agent's view: its last compile input, with its local endpoints and other nodes' pods all made pods of the world. */
export function policyWorldSteps(input: PolicyInput): Generator<void, World, void> {
  const pods: WorldPodInput[] = [...input.endpoints, ...(input.remotePods ?? [])].map((p) => ({
    namespace: p.namespace,
    name: p.name,
    labels: p.labels,
    namedPorts: p.namedPorts,
    ips: p.ips,
  }));
  return worldSteps({ namespaces: input.namespaces, pods, policies: input.policies, fqdnPolicies: input.fqdnPolicies ?? [], nodeIps: input.nodeIps, dnsInterceptAll: input.dnsInterceptAll });
}

/** The CIDR identity of the longest ipBlock prefix holding `ip`; undefined if none does (the datapath's 0). */
export function cidrIdentityOf(world: World, ip: string): number | undefined {
  const { family, value } = parseIp(ip);
  return world.prefixes.find((p) => cidrContains(p.cidr, family, value))?.id;
}
