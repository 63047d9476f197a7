// The policy compiler: objects in, datapath-shaped policy out. Pure (no I/O),
// so `sluice explain`/`sluice test` run the very code the datapath is fed from.
//
// Model:
// - A pod's identity is its (namespace, labels, named ports): pods of one
//   Deployment share it, and a named port always means one number per
//   identity, so egress to a named port is exact.
// - ipBlocks are matched by address, never by identity: every cidr/except of
//   every policy (plus 0.0.0.0/0 and ::/0) becomes a "CIDR identity", and the
//   datapath looks up the longest such prefix containing the peer address —
//   pod addresses included (an ipBlock must match pod IPs too). Whether an
//   ipBlock matches an address is a function of that longest prefix alone,
//   because prefixes are nested or disjoint.
// - Per endpoint and direction: isolated or not, and a list of allow entries
//   (peer identity or ANY, protocol or any, port range). NetworkPolicy only
//   allows, so the union is just the set of entries.
import { isIP } from 'node:net';
import { cidrWithin, parseCidr, type Cidr } from '../net/index.js';
import type { DnsMode, FqdnPolicy, NameSelector } from './fqdn.js';
import { CIDR_ID_MAX, CIDR_ID_MIN, FQDN_ID_MAX, FQDN_ID_MIN, ID_ANY, ID_HOST, IdentityAllocator, POD_ID_MAX, POD_ID_MIN } from './identity.js';
import type { NetworkPolicy, Peer, PortSpec, Protocol } from './netpol.js';
import { matches, type Labels } from './selector.js';
import { PrefixIndex } from './prefix-index.js';

export const PROTO_ANY = 0;
export const PROTO_NUMBERS: Record<Protocol, number> = { TCP: 6, UDP: 17, SCTP: 132 };

export interface NamedPort {
  name: string;
  protocol: Protocol;
  port: number;
}

export interface EndpointInput {
  /** Stable key of the local endpoint (containerId.ifname). */
  key: string;
  namespace: string;
  name: string;
  ips: string[];
  labels: Labels;
  namedPorts: NamedPort[];
}

export interface PolicyInput {
  /** Namespace name → labels (kubernetes.io/metadata.name included). */
  namespaces: ReadonlyMap<string, Labels>;
  /** Local endpoints (enforced here) and, later, remote pods (peers only). */
  endpoints: readonly EndpointInput[];
  remotePods?: readonly Omit<EndpointInput, 'key'>[];
  policies: readonly NetworkPolicy[];
  /** FQDNPolicies: egress to names learned by the DNS proxy. */
  fqdnPolicies?: readonly FqdnPolicy[];
  /** --dns-intercept all: every endpoint's DNS goes through the proxy, not only FQDN-selected ones. */
  dnsInterceptAll?: boolean;
  /** This node's own addresses: traffic from them to local pods is always allowed. */
  nodeIps: readonly string[];
}

export interface RuleRef {
  /** "namespace/name" of the policy. */
  policy: string;
  /** Absent for NetworkPolicy. */
  kind?: 'FQDNPolicy';
  direction: 'ingress' | 'egress';
  /** Index of the rule in spec.ingress/spec.egress. */
  rule: number;
}

export interface PolicyEntry {
  direction: 'ingress' | 'egress';
  /** Peer identity (pod or CIDR), or ID_ANY. */
  peer: number;
  /** IP protocol number, or PROTO_ANY. */
  protocol: number;
  portMin: number;
  portMax: number;
  ref: RuleRef;
  /** Other rules with this very entry (deduped into this one); absent when none. */
  alsoBy?: RuleRef[];
}

export interface EndpointPolicy {
  identity: number;
  /** An enforcing policy selects it for ingress: what no entry allows drops. */
  ingressIsolated: boolean;
  egressIsolated: boolean;
  /**
   * Only audit-mode policies (PRODUCT.md §4) select it for this direction:
   * the entries are theirs, and what none allows passes with the audit
   * verdict. Never true together with the same direction's *Isolated.
   */
  ingressAudit: boolean;
  egressAudit: boolean;
  /** Policies selecting this endpoint, "namespace/name" (FQDNPolicies as "FQDNPolicy namespace/name"). */
  selectedBy: string[];
  /**
   * The policies that decide each direction (the entries are theirs): the
   * enforcing ones that isolate it, else the audit-mode ones; empty when
   * nothing isolates it in that direction.
   */
  ingressBy: string[];
  egressBy: string[];
  entries: PolicyEntry[];
  /** FQDN rule identities that apply to this endpoint's egress (at most MAX_FQDN_RULES). */
  fqdnRules: number[];
  /** Its DNS goes through the proxy. */
  dnsIntercept: boolean;
  /**
   * Which names it may look up: AllowAll unless every FQDNPolicy selecting it
   * says MatchedOnly (then only names some rule of theirs matches).
   * Policies only ever add what is allowed, DNS included.
   */
  dns: DnsMode;
}

/** FQDN rules one endpoint can carry (bpf/shared/fqdn.h SLUICE_FQDN_MAX_RULES). */
export const MAX_FQDN_RULES = 16;

export interface FqdnRuleInfo {
  id: number;
  ref: RuleRef;
  selectors: NameSelector[];
}

export interface IdentityInfo {
  id: number;
  namespace: string;
  labels: Labels;
  namedPorts: NamedPort[];
}

export interface CompiledPolicy {
  identities: Map<number, IdentityInfo>;
  /** Pod and node addresses → identity. */
  ipcache: Map<string, number>;
  /** Normalized prefix ("10.0.0.0/8") → CIDR identity. */
  cidrs: Map<string, number>;
  endpoints: Map<string, EndpointPolicy>;
  /** Every FQDN rule, by identity: what the DNS proxy learns for. */
  fqdnRules: Map<number, FqdnRuleInfo>;
  /** Endpoints over MAX_FQDN_RULES: their extra rules are not applied (deny). */
  warnings: string[];
}

export interface Allocators {
  pods: IdentityAllocator;
  cidrs: IdentityAllocator;
  fqdnRules: IdentityAllocator;
}

export interface AllocatorSeed {
  pods?: Array<[string, number]>;
  cidrs?: Array<[string, number]>;
  fqdnRules?: Array<[string, number]>;
}

export function newAllocators(seed?: AllocatorSeed): Allocators {
  return {
    pods: new IdentityAllocator(POD_ID_MIN, POD_ID_MAX, seed?.pods),
    cidrs: new IdentityAllocator(CIDR_ID_MIN, CIDR_ID_MAX, seed?.cidrs),
    fqdnRules: new IdentityAllocator(FQDN_ID_MIN, FQDN_ID_MAX, seed?.fqdnRules),
  };
}

// ---------------------------------------------------------------- prefixes

// The math is src/net's; these names keep the compiler's vocabulary.
type Prefix = Cidr;

/** An ipBlock prefix, normalized (host bits cleared, canonical text). */
export function parsePrefix(text: string): Prefix {
  return parseCidr(text);
}

/** a ⊆ b */
const prefixWithin = cidrWithin;

// ---------------------------------------------------------------- compile

function identityKey(namespace: string, labels: Labels, namedPorts: readonly NamedPort[]): string {
  const l = Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const p = [...namedPorts].map((n) => `${n.name}/${n.protocol}=${n.port}`).sort();
  return JSON.stringify([namespace, l, p]);
}

function resolveNamed(ports: readonly NamedPort[], name: string, protocol: Protocol): number | undefined {
  return ports.find((p) => p.name === name && p.protocol === protocol)?.port;
}

/** What one identity's policy came to, shared by every endpoint of that identity. */
interface IdentityPolicy {
  policy: EndpointPolicy;
  /** FQDN rules over MAX_FQDN_RULES, left out: one warning per endpoint. */
  dropped: Array<{ policy: string; rule: number }>;
  /**
   * The pod peers it was compiled against and what each selected then (ids
   * and their named ports); absent when it read every identity (a named port
   * without peers, or inside an ipBlock), so any change of identities
   * recompiles it.
   */
  peers?: Array<{ peer: Peer; ns: string; seen: string }>;
}

/**
 * Carries work from one compile to the next (the agent keeps one). An
 * endpoint's policy is a function of its identity (namespace, labels, named
 * ports) and of the context: the policies, the identities, the CIDR and FQDN
 * rule identities, the namespaces' labels (and the ipcache, only when an
 * egress ipBlock rule names a port). While the context is unchanged, each
 * identity's compiled policy is reused, the very same object, so the writer
 * knows it unchanged without looking inside; a new pod of an existing
 * identity costs nothing here. When only the identities changed (a pod of a
 * new identity, one gone), an identity's result is still reused if every
 * pod peer it was compiled against selects the same identities as before.
 * Any other change recompiles every identity (once per identity, not per
 * endpoint) — but from per-policy parts: an identity's entries are the
 * union, in policy order, of what each NetworkPolicy selecting it
 * contributes, and a contribution is a function of the policy object, the
 * identity and a narrower context (the identities, the namespaces' labels,
 * the CIDR identities, the ipcache when a named port lies inside an
 * ipBlock). While that context holds, contributions are kept by (policy
 * object, identity), so an edit of one policy recomputes only its own
 * contributions; the union is deduped as a fresh compile dedupes it.
 */
export class CompileCache {
  /** The ipBlock prefixes and their CIDR identities: a function of the NetworkPolicies alone. */
  prefixes: PrefixState | undefined;
  policies: readonly NetworkPolicy[] = [];
  fqdnPolicies: readonly FqdnPolicy[] = [];
  context = '';
  identities = '';
  byIdentity = new Map<string, IdentityPolicy>();
  /** Compiles that reused the previous context whole (for tests and logs). */
  hits = 0;
  /** Identity results reused across a change of identities. */
  carried = 0;
  /** What `contributions` were computed against (see Contribution). */
  contributionContext = '';
  /** NetworkPolicy object → identity memo key → its contribution. */
  contributions = new Map<NetworkPolicy, Map<string, Contribution>>();
  /** Contributions reused / computed (for tests and logs). */
  contributionHits = 0;
  contributionMisses = 0;
}

/**
 * What one NetworkPolicy contributes to one identity's policy (it selects
 * that identity): its entries before the union is deduped, in rule order,
 * and the pod peers they were worked out from. A function of the policy
 * object, the identity (its memo key) and the identities, namespaces' labels,
 * CIDR identities and (with a named port inside an ipBlock) ipcache.
 */
interface Contribution {
  entries: PolicyEntry[];
  peers: NonNullable<IdentityPolicy['peers']>;
  readsAll: boolean;
}

/** Everything about ipBlocks a compile works out from the NetworkPolicies alone. */
interface PrefixState {
  policies: readonly NetworkPolicy[];
  alloc: Allocators;
  cidrs: Map<string, number>;
  index: PrefixIndex;
  /** ipBlock (cidr|except) → the CIDR identities it matches. */
  blocks: Map<string, number[]>;
  /** The prefixes' texts in the order they were first met (the index answers in that order). */
  order: string[];
  /** Each NetworkPolicy object's ipBlock prefixes, parsed once. */
  byPolicy: WeakMap<NetworkPolicy, Prefix[]>;
}

function sameRefs<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Objects in, datapath-shaped policy out. Endpoints of one identity share
 * one EndpointPolicy object. With a `cache`, what the previous compile
 * worked out for an unchanged context is reused (see CompileCache).
 */
/** Rules worked through between two steps of compileSteps. */
const RULE_STEP = 64;

export function compile(input: PolicyInput, alloc: Allocators = newAllocators(), cache?: CompileCache): CompiledPolicy {
  return runSteps(compileSteps(input, alloc, cache));
}

/** Runs work written in steps (compileSteps, the writer's applySteps…) to its end in one go. */
export function runSteps<T>(steps: Generator<void, T, void>): T {
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
  }
}

/**
 * compile() in steps: it yields after each piece of real work (a policy's
 * prefixes parsed, an identity's policy computed), so a caller can let
 * other work run in between (the agent's DNS proxy shares its thread).
 * Between two steps nothing it reads may change: the inputs are a snapshot,
 * and `alloc` and `cache` belong to this compile until it returns.
 */
export function* compileSteps(input: PolicyInput, alloc: Allocators = newAllocators(), cache?: CompileCache): Generator<void, CompiledPolicy, void> {
  const identities = new Map<number, IdentityInfo>();
  const ipcache = new Map<string, number>();
  const liveKeys = new Set<string>();
  const nsLabels = (ns: string): Labels => input.namespaces.get(ns) ?? { 'kubernetes.io/metadata.name': ns };

  /** Endpoint key → what its compiled policy is memoized under. */
  const memoKeys = new Map<string, string>();
  const podIdentity = (p: Omit<EndpointInput, 'key'>, epKey?: string): number => {
    const key = identityKey(p.namespace, p.labels, p.namedPorts);
    // The named ports in their own order too: a lookup takes the first match.
    if (epKey !== undefined) memoKeys.set(epKey, `${key}|${JSON.stringify(p.namedPorts)}`);
    liveKeys.add(key);
    const id = alloc.pods.get(key);
    if (!identities.has(id)) identities.set(id, { id, namespace: p.namespace, labels: p.labels, namedPorts: p.namedPorts });
    for (const ip of p.ips) ipcache.set(ip, id);
    return id;
  };
  const endpointIds = new Map(input.endpoints.map((e) => [e.key, podIdentity(e, e.key)]));
  for (const p of input.remotePods ?? []) podIdentity(p);
  // Node addresses last: a node address is never a pod's.
  for (const ip of input.nodeIps) ipcache.set(ip, ID_HOST);
  alloc.pods.retain(liveKeys);

  // CIDR identities for every prefix any ipBlock mentions, plus the roots
  // (worked out again only when the NetworkPolicies changed).
  const reuse = cache?.prefixes && cache.prefixes.alloc === alloc && sameRefs(input.policies, cache.prefixes.policies) ? cache.prefixes : undefined;
  const state = reuse ?? (yield* prefixState(input.policies, alloc, cache?.prefixes?.alloc === alloc ? cache.prefixes : undefined));
  const { cidrs, index, blocks } = state;
  if (cache && !reuse) cache.prefixes = { ...state, policies: [...input.policies], alloc };

  /** CIDR identities an ipBlock matches: prefixes inside cidr and inside no except. */
  const blockIdentities = (peer: Extract<Peer, { kind: 'ipBlock' }>): number[] => {
    const key = `${peer.ipBlock.cidr}|${peer.ipBlock.except.join(',')}`;
    let ids = blocks.get(key);
    if (!ids) {
      const ex = peer.ipBlock.except.map(parsePrefix);
      ids = index
        .within(parsePrefix(peer.ipBlock.cidr))
        .filter((p) => !ex.some((e) => prefixWithin(p, e)))
        .map((p) => cidrs.get(p.text)!);
      blocks.set(key, ids);
    }
    return ids;
  };
  const blockCovers = (peer: Extract<Peer, { kind: 'ipBlock' }>, ip: string): boolean => {
    const a = parsePrefix(`${ip}/${isIP(ip) === 4 ? 32 : 128}`);
    return prefixWithin(a, parsePrefix(peer.ipBlock.cidr)) && !peer.ipBlock.except.some((e) => prefixWithin(a, parsePrefix(e)));
  };

  /** What a pods-peer selects, with the selected identities' named ports: what a cached result is checked against. */
  const seenOf = new Map<Peer, string>();
  const peerSeen = (peer: Extract<Peer, { kind: 'pods' }>, polNs: string): string => {
    let seen = seenOf.get(peer);
    if (seen === undefined) {
      seen = JSON.stringify(podPeers(peer, polNs).map((id) => [id, identities.get(id)!.namedPorts]));
      seenOf.set(peer, seen);
    }
    return seen;
  };

  /** Pod identities a pods-peer selects, seen from a policy in `polNs` (a peer belongs to one policy). */
  const peerIds = new Map<Peer, number[]>();
  const podPeers = (peer: Extract<Peer, { kind: 'pods' }>, polNs: string): number[] => {
    let out = peerIds.get(peer);
    if (out) return out;
    out = [];
    peerIds.set(peer, out);
    for (const info of identities.values()) {
      const nsOk = peer.namespaceSelector ? matches(peer.namespaceSelector, nsLabels(info.namespace)) : info.namespace === polNs;
      if (nsOk && (!peer.podSelector || matches(peer.podSelector, info.labels))) out.push(info.id);
    }
    return out;
  };

  // One identity per FQDN rule: the peer of its policy entries and the key
  // of the addresses learned for it.
  const fqdnRules = new Map<number, FqdnRuleInfo>();
  const fqdnIds = new Map<FqdnPolicy, number[]>();
  const liveRules = new Set<string>();
  for (const pol of input.fqdnPolicies ?? []) {
    const ids = pol.egress.map((rule, index) => {
      const key = `${pol.namespace}/${pol.name}#${index}`;
      liveRules.add(key);
      const id = alloc.fqdnRules.get(key);
      fqdnRules.set(id, { id, ref: { policy: `${pol.namespace}/${pol.name}`, kind: 'FQDNPolicy', direction: 'egress', rule: index }, selectors: rule.selectors });
      return id;
    });
    fqdnIds.set(pol, ids);
  }
  alloc.fqdnRules.retain(liveRules);
  const warnings: string[] = input.policies.flatMap((p) => (p.enforcementWarning ? [p.enforcementWarning] : []));

  // Reuse the previous compile's per-identity results while the context
  // they were computed from is the same.
  let byIdentity = new Map<string, IdentityPolicy>();
  /** The previous results, when only the identities changed: each reusable if its peers still select the same. */
  let previous: Map<string, IdentityPolicy> | undefined;
  let wholeHit = false;
  if (cache) {
    const namedPortIpBlocks = input.policies.some((p) => p.egress.some((r) => r.ports?.some((x) => typeof x.port === 'string') && r.peers?.some((x) => x.kind === 'ipBlock')));
    const context = JSON.stringify([[...input.namespaces], [...fqdnRules.keys()], input.dnsInterceptAll === true, namedPortIpBlocks ? [...ipcache] : []]);
    const identitySet = JSON.stringify([...identities].map(([id, info]) => [id, info.namespace, info.labels, info.namedPorts]));
    if (context === cache.context && sameRefs(input.policies, cache.policies) && sameRefs(input.fqdnPolicies ?? [], cache.fqdnPolicies)) {
      if (identitySet === cache.identities) {
        byIdentity = cache.byIdentity;
        wholeHit = true;
        cache.hits++;
      } else {
        previous = cache.byIdentity;
      }
    }
    cache.context = context;
    cache.identities = identitySet;
    cache.policies = [...input.policies];
    cache.fqdnPolicies = [...(input.fqdnPolicies ?? [])];
    cache.byIdentity = byIdentity;
  }
  // Per-policy contributions, kept while their own, narrower context holds
  // (an edit of one policy leaves it as it was).
  let contributions: Map<NetworkPolicy, Map<string, Contribution>> | undefined;
  if (cache && !wholeHit) {
    const namedPortIpBlocks = input.policies.some((p) => p.egress.some((r) => r.ports?.some((x) => typeof x.port === 'string') && r.peers?.some((x) => x.kind === 'ipBlock')));
    const ctx = JSON.stringify([[...input.namespaces], cache.identities, [...cidrs], namedPortIpBlocks ? [...ipcache] : []]);
    if (ctx !== cache.contributionContext) {
      cache.contributionContext = ctx;
      cache.contributions = new Map();
    }
    contributions = cache.contributions;
    const livePolicies = new Set(input.policies);
    for (const pol of [...contributions.keys()]) if (!livePolicies.has(pol)) contributions.delete(pol);
  }
  const live = new Set<string>();

  const endpoints = new Map<string, EndpointPolicy>();
  for (const ep of input.endpoints) {
    const memoKey = memoKeys.get(ep.key)!;
    live.add(memoKey);
    let done = byIdentity.get(memoKey);
    if (!done && previous) {
      // Same identity key, live before and now: the same identity number.
      const old = previous.get(memoKey);
      if (old?.peers && old.peers.every((d) => peerSeen(d.peer as Extract<Peer, { kind: 'pods' }>, d.ns) === d.seen)) {
        done = old;
        byIdentity.set(memoKey, old);
        cache!.carried++;
      }
    }
    if (!done) {
      done = yield* compileIdentity(ep, endpointIds.get(ep.key)!, memoKey);
      byIdentity.set(memoKey, done);
      yield;
    }
    for (const d of done.dropped) warnings.push(`${ep.namespace}/${ep.name}: more than ${MAX_FQDN_RULES} FQDN rules select it; ${d.policy} rule ${d.rule} is not applied`);
    endpoints.set(ep.key, done.policy);
  }
  for (const k of [...byIdentity.keys()]) if (!live.has(k)) byIdentity.delete(k);
  if (contributions) for (const byKey of contributions.values()) for (const k of [...byKey.keys()]) if (!live.has(k)) byKey.delete(k);
  return { identities, ipcache, cidrs, endpoints, fqdnRules, warnings };

  /** One identity's policy: what every endpoint of it gets. */
  function* compileIdentity(ep: EndpointInput, identity: number, memoKey: string): Generator<void, IdentityPolicy, void> {
    const dropped: IdentityPolicy['dropped'] = [];
    const deps: NonNullable<IdentityPolicy['peers']> = [];
    let readsAll = false;
    const selecting = input.policies.filter((p) => p.namespace === ep.namespace && matches(p.podSelector, ep.labels));
    const fqdnSelecting = (input.fqdnPolicies ?? []).filter((p) => p.namespace === ep.namespace && matches(p.podSelector, ep.labels));
    // Audit mode: per direction, enforcing policies decide when any selects
    // the pod; otherwise audit-mode ones do (and what they deny passes, as
    // audit). An audit policy never narrows what an enforcing one allows.
    const inMode = (audit: boolean, direction: 'ingress' | 'egress') => selecting.filter((p) => p.audit === audit && p.types[direction]);
    const ingressEnforcing = inMode(false, 'ingress');
    const ingressBy = ingressEnforcing.length ? ingressEnforcing : inMode(true, 'ingress');
    const egressEnforcing = inMode(false, 'egress');
    const fqdnEnforcing = fqdnSelecting.filter((p) => !p.audit);
    const egressEnforced = egressEnforcing.length > 0 || fqdnEnforcing.length > 0;
    const egressBy = egressEnforced ? egressEnforcing : inMode(true, 'egress');
    const fqdnBy = egressEnforced ? fqdnEnforcing : fqdnSelecting.filter((p) => p.audit);
    const kept = { ingress: new Set(ingressBy), egress: new Set(egressBy) };
    const entries: PolicyEntry[] = [];
    for (const pol of selecting) {
      let part = contributions?.get(pol)?.get(memoKey);
      if (part) cache!.contributionHits++;
      else {
        part = yield* contribution(ep, pol);
        if (contributions) {
          cache!.contributionMisses++;
          let byKey = contributions.get(pol);
          if (!byKey) contributions.set(pol, (byKey = new Map()));
          byKey.set(memoKey, part);
        }
      }
      for (const e of part.entries) if (kept[e.direction].has(pol)) entries.push(e);
      for (const d of part.peers) deps.push(d);
      if (part.readsAll) readsAll = true;
    }
    const epFqdnRules: number[] = [];
    for (const pol of fqdnBy) {
      pol.egress.forEach((rule, index) => {
        const id = fqdnIds.get(pol)![index]!;
        const ref = fqdnRules.get(id)!.ref;
        if (epFqdnRules.length >= MAX_FQDN_RULES) {
          dropped.push({ policy: ref.policy, rule: index });
          return;
        }
        epFqdnRules.push(id);
        emitRule(entries, ep, 'egress', id, rule.ports, [], ref); // FQDN ports are numbers: nothing to resolve
      });
    }
    const policy: EndpointPolicy = {
      identity,
      ingressIsolated: ingressEnforcing.length > 0,
      egressIsolated: egressEnforced,
      ingressAudit: !ingressEnforcing.length && ingressBy.length > 0,
      egressAudit: !egressEnforced && (egressBy.length > 0 || fqdnBy.length > 0),
      selectedBy: [...selecting.map((p) => `${p.namespace}/${p.name}`), ...fqdnSelecting.map((p) => `FQDNPolicy ${p.namespace}/${p.name}`)],
      ingressBy: ingressBy.map((p) => `${p.namespace}/${p.name}`),
      egressBy: [...egressBy.map((p) => `${p.namespace}/${p.name}`), ...fqdnBy.map((p) => `FQDNPolicy ${p.namespace}/${p.name}`)],
      entries: dedupe(entries),
      fqdnRules: epFqdnRules,
      dnsIntercept: fqdnSelecting.length > 0 || input.dnsInterceptAll === true,
      // An audit-mode FQDNPolicy never refuses a name.
      dns: fqdnEnforcing.length > 0 && fqdnEnforcing.every((p) => p.dns === 'MatchedOnly') ? 'MatchedOnly' : 'AllowAll',
    };
    return { policy, dropped, ...(readsAll ? {} : { peers: deps }) };
  }

  /** A rule's entries for one peer: every port and protocol, or each port of the rule. */
  function emitRule(entries: PolicyEntry[], ep: EndpointInput, direction: 'ingress' | 'egress', peer: number, ports: readonly PortSpec[] | undefined, namedOn: NamedPort[] | 'each-pod' | 'self', ref: RuleRef): void {
    if (!ports) entries.push({ direction, peer, protocol: PROTO_ANY, portMin: 0, portMax: 65535, ref });
    else for (const port of ports) emitPort(entries, direction, peer, port, namedOn, ep, identities, ref);
  }

  /** What NetworkPolicy `pol` (which selects `ep`) contributes to ep's identity. */
  function* contribution(ep: EndpointInput, pol: NetworkPolicy): Generator<void, Contribution, void> {
    const entries: PolicyEntry[] = [];
    const deps: Contribution['peers'] = [];
    let readsAll = false;
    for (const direction of ['ingress', 'egress'] as const) {
      if (!pol.types[direction]) continue;
      for (const [index, rule] of pol[direction].entries()) {
        // A policy may have thousands of rules: a step every RULE_STEP of them.
        if (index % RULE_STEP === RULE_STEP - 1) yield;
        const ref: RuleRef = { policy: `${pol.namespace}/${pol.name}`, direction, rule: index };
        // (peer, named-port resolver) pairs. A named port resolves on the
        // destination: ingress → this endpoint; egress → the peer pod.
        const peers: Array<{ id: number; namedOn: NamedPort[] | 'each-pod' | 'self' }> = [];
        if (!rule.peers) peers.push({ id: ID_ANY, namedOn: direction === 'ingress' ? 'self' : 'each-pod' });
        if (!rule.peers && direction === 'egress') readsAll = true; // a named port: every identity that has it
        for (const peer of rule.peers ?? []) {
          if (peer.kind === 'ipBlock') {
            for (const id of blockIdentities(peer)) peers.push({ id, namedOn: direction === 'ingress' ? 'self' : [] });
            // Egress to a named port of pods inside the block: only pod
            // identities whose every address the block covers (exact, never
            // wider than the block).
            if (direction === 'egress' && rule.ports?.some((p) => typeof p.port === 'string')) {
              readsAll = true;
              for (const info of identities.values()) {
                const ips = [...ipcache].filter(([, id]) => id === info.id).map(([ip]) => ip);
                if (ips.length && ips.every((ip) => blockCovers(peer, ip))) peers.push({ id: info.id, namedOn: info.namedPorts });
              }
            }
          } else {
            deps.push({ peer, ns: pol.namespace, seen: peerSeen(peer, pol.namespace) });
            for (const id of podPeers(peer, pol.namespace)) {
              peers.push({ id, namedOn: direction === 'ingress' ? 'self' : identities.get(id)!.namedPorts });
            }
          }
        }
        for (const { id, namedOn } of peers) emitRule(entries, ep, direction, id, rule.ports, namedOn, ref);
      }
    }
    return { entries, peers: deps, readsAll };
  }
}

/**
 * The ipBlock prefixes of `policies` (plus the roots), their CIDR identities
 * and an index over them. `prev` (same allocator): its policies' parsed
 * prefixes are reused, and so is all of it when the prefixes came out the
 * same, in the same order (an edit that touches no ipBlock).
 */
function* prefixState(policies: readonly NetworkPolicy[], alloc: Allocators, prev?: PrefixState): Generator<void, Omit<PrefixState, 'policies' | 'alloc'>, void> {
  const byPolicy = prev?.byPolicy ?? new WeakMap<NetworkPolicy, Prefix[]>();
  const prefixes = new Map<string, Prefix>();
  for (const root of ['0.0.0.0/0', '::/0']) prefixes.set(root, parsePrefix(root));
  for (const pol of policies) {
    let own = byPolicy.get(pol);
    if (!own) {
      own = [];
      let n = 0;
      for (const rule of [...pol.ingress, ...pol.egress]) {
        if (++n % RULE_STEP === 0) yield;
        for (const peer of rule.peers ?? []) {
          if (peer.kind !== 'ipBlock') continue;
          for (const t of [peer.ipBlock.cidr, ...peer.ipBlock.except]) own.push(parsePrefix(t));
        }
      }
      byPolicy.set(pol, own);
      if (own.length) yield;
    }
    for (const p of own) if (!prefixes.has(p.text)) prefixes.set(p.text, p);
  }
  const order = [...prefixes.keys()];
  alloc.cidrs.retain(new Set(order));
  // The same prefixes in the same order, still holding the same identities: nothing to redo.
  if (prev && sameRefs(order, prev.order) && order.every((t) => alloc.cidrs.get(t) === prev.cidrs.get(t))) {
    return { cidrs: prev.cidrs, index: prev.index, blocks: prev.blocks, order: prev.order, byPolicy };
  }
  const cidrs = new Map([...order].sort().map((t) => [t, alloc.cidrs.get(t)]));
  return { cidrs, index: new PrefixIndex(prefixes.values()), blocks: new Map(), order, byPolicy };
}

function emitPort(
  entries: PolicyEntry[],
  direction: 'ingress' | 'egress',
  peer: number,
  port: PortSpec,
  namedOn: NamedPort[] | 'each-pod' | 'self',
  ep: EndpointInput,
  identities: Map<number, IdentityInfo>,
  ref: RuleRef,
): void {
  const protocol = PROTO_NUMBERS[port.protocol];
  if (port.port === undefined) {
    entries.push({ direction, peer, protocol, portMin: 0, portMax: 65535, ref });
  } else if (typeof port.port === 'number') {
    entries.push({ direction, peer, protocol, portMin: port.port, portMax: port.endPort ?? port.port, ref });
  } else if (namedOn === 'self') {
    const n = resolveNamed(ep.namedPorts, port.port, port.protocol);
    if (n !== undefined) entries.push({ direction, peer, protocol, portMin: n, portMax: n, ref });
  } else if (namedOn === 'each-pod') {
    // "Any destination, named port": every pod identity that has the name.
    for (const info of identities.values()) {
      const n = resolveNamed(info.namedPorts, port.port, port.protocol);
      if (n !== undefined) entries.push({ direction, peer: info.id, protocol, portMin: n, portMax: n, ref });
    }
  } else {
    const n = resolveNamed(namedOn, port.port, port.protocol);
    if (n !== undefined) entries.push({ direction, peer, protocol, portMin: n, portMax: n, ref });
  }
}

/**
 * One entry per (direction, peer, protocol, ports): the datapath needs one.
 * The rules of the identical ones it leaves out are kept on the entry it
 * keeps (`alsoBy`, on a copy: entries may be shared with the compile
 * cache), so `sluice explain` names every rule that allows a flow.
 */
function dedupe(entries: PolicyEntry[]): PolicyEntry[] {
  const at = new Map<string, number>();
  const out: PolicyEntry[] = [];
  for (const e of entries) {
    const k = `${e.direction}|${e.peer}|${e.protocol}|${e.portMin}|${e.portMax}`;
    const i = at.get(k);
    if (i === undefined) {
      at.set(k, out.push(e) - 1);
      continue;
    }
    const kept = out[i]!;
    const refs = [kept.ref, ...(kept.alsoBy ?? [])];
    if (!refs.some((r) => sameRef(r, e.ref))) out[i] = { ...kept, alsoBy: [...(kept.alsoBy ?? []), e.ref] };
  }
  return out;
}

function sameRef(a: RuleRef, b: RuleRef): boolean {
  return a.policy === b.policy && a.kind === b.kind && a.direction === b.direction && a.rule === b.rule;
}

export { ID_ANY, ID_HOST };
