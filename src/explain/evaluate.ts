// The verdict of one flow, worked out over the compiled policy exactly as
// the datapath does it (bpf/sluice.c verdict(), bpf/lib/policy.h,
// bpf/lib/fqdn.h), never re-derived from the policy objects:
//
// - The source pod's egress, then the destination pod's ingress, each only
//   where that pod is isolated (or audited) in that direction. A flow passes
//   only if both do.
// - An egress-intercepting pod's TCP/UDP to port 53 goes to the DNS proxy
//   before any policy looks at it.
// - Ingress from one of the node's own addresses (identity host) passes.
// - The peer is judged by its exact identity (ipcache: pod and node
//   addresses), by the longest ipBlock prefix holding its address, and as any
//   peer: an entry for one of the three with the protocol (or any) and the
//   port in range allows.
// - Pod egress no entry allows may still pass through an FQDN rule of the
//   pod: the address was learned (and has not expired) for a name the rule
//   matches, and the rule's entry allows the port. Offline nothing is learned:
//   a DNS name is judged by PRODUCT.md §7's rule instead (namePath).
// - Audit mode: a direction only audit-mode policies decide is judged the
//   same, but what they deny passes and is reported as audit.
//
// A pod to itself never leaves its network namespace: no policy sees it.
import { familyOf } from '../net/index.js';
import { ID_ANY, ID_HOST, NameMatcher, PROTO_ANY, PROTO_NUMBERS, type EndpointPolicy, type Protocol, type RuleRef } from '../policy/index.js';
import { ExplainCode, ExplainError } from './errors.js';
import { parsePort, parseSubject, type PortQuery } from './query.js';
import type { AuditNote, ExplainPath, ExplainQuery, ExplainStep, Explanation, Verdict } from './types.js';
import { cidrIdentityOf, type World, type WorldPod } from './world.js';

const DNS_PORT = 53;

interface Flow {
  protocol: Protocol;
  port: number;
}

/** One end of a flow: a pod of the world (with the address judged, if known) or a bare address. */
interface End {
  pod?: WorldPod;
  addr?: string;
}

const notFound = (message: string) => new ExplainError(ExplainCode.NOT_FOUND, message);
const badQuery = (message: string) => new ExplainError(ExplainCode.BAD_QUERY, message);

/** The verdict of `q` in `world`, with the chain of policies and rules that produce it. Throws ExplainError. */
export function explain(world: World, q: ExplainQuery): Explanation {
  const fromSubject = parseSubject(q.from, 'from');
  const toSubject = parseSubject(q.to, 'to');
  if (fromSubject.kind === 'name') throw badQuery(`from: ${q.from} is a DNS name; a flow starts at a pod or an IP`);
  const source: End = fromSubject.kind === 'pod' ? { pod: podNamed(world, fromSubject.name) } : { pod: world.byIp.get(fromSubject.ip), addr: fromSubject.ip };
  const portQuery = parsePort(q.port);
  const base = { from: q.from, to: q.to, port: q.port };

  if (toSubject.kind === 'name') {
    if (!source.pod) throw badQuery(`from: ${q.from} is no pod: only a pod's egress judges a DNS name`);
    const flow = numericPort(portQuery, `${q.to} is a DNS name: a named port needs a destination pod to resolve it on`);
    const learned = world.learned?.addressesOf(toSubject.name);
    const live = learned?.filter((a) => a.expiresInMs > 0) ?? [];
    const paths = live.length
      ? live.map((a) => judgePath(world, source, { pod: world.byIp.get(a.ip), addr: a.ip }, flow))
      : [namePath(world, source.pod, toSubject.name, flow, learned?.length ? 'every address learned for it has expired' : undefined)];
    return { ...base, ...summarize(paths, flow), ...(learned ? { learned } : {}) };
  }

  const target: End = toSubject.kind === 'pod' ? { pod: podNamed(world, toSubject.name) } : { pod: world.byIp.get(toSubject.ip), addr: toSubject.ip };
  if (!source.pod && !target.pod) throw badQuery(`neither ${q.from} nor ${q.to} is a pod: no policy of this cluster judges that flow`);
  const flow = resolvePort(portQuery, target);
  if (source.pod && source.pod === target.pod) {
    const text = `${source.pod.name} to itself never leaves its network namespace: no policy applies`;
    return { ...base, ...summarize([{ verdict: 'allow', reason: text, rules: [], steps: [] }], flow) };
  }
  // One path per destination address (per family), from the source's address of that family.
  const sourceFamily = source.addr ? familyOf(source.addr) : 0;
  if (sourceFamily && target.addr && familyOf(target.addr) !== sourceFamily) throw badQuery(`${q.from} and ${q.to} are of different address families`);
  // Of the destination's addresses, those of a family the source can send from (all of them when it has no address known).
  const candidates = target.addr ? [target.addr] : target.pod!.ips;
  const canSend = (ip: string) => (sourceFamily ? familyOf(ip) === sourceFamily : !source.pod?.ips.length || source.pod.ips.some((s) => familyOf(s) === familyOf(ip)));
  const sendable = candidates.filter(canSend);
  const destinations: Array<string | undefined> = sendable.length ? sendable : candidates.length && !sourceFamily ? candidates : [undefined];
  const paths = destinations.map((addr) => {
    const from = source.addr ?? source.pod?.ips.find((ip) => addr !== undefined && familyOf(ip) === familyOf(addr));
    return judgePath(world, { ...source, addr: from }, { ...target, addr }, flow);
  });
  return { ...base, ...summarize(paths, flow) };
}

function podNamed(world: World, name: string): WorldPod {
  const pod = world.pods.get(name);
  if (!pod) throw notFound(`no pod ${name}`);
  return pod;
}

function numericPort(q: PortQuery, whyNot: string): Flow {
  if (q.number === undefined) throw badQuery(whyNot);
  return { protocol: q.protocol ?? 'TCP', port: q.number };
}

/** A port name is resolved on the destination pod, with that port's protocol (TCP first when it names several). */
function resolvePort(q: PortQuery, target: End): Flow {
  if (q.number !== undefined) return { protocol: q.protocol ?? 'TCP', port: q.number };
  if (!target.pod) throw badQuery(`port ${q.name}: ${target.addr} is no pod, so it has no named ports`);
  const named = target.pod.namedPorts.filter((p) => p.name === q.name && (!q.protocol || p.protocol === q.protocol));
  const port = named.find((p) => p.protocol === 'TCP') ?? named[0];
  if (!port) throw notFound(`${target.pod.name} has no port named ${q.name}${q.protocol ? `/${q.protocol}` : ''}`);
  return { protocol: port.protocol, port: port.port };
}

// ------------------------------------------------------------------ one path

function judgePath(world: World, source: End, target: End, flow: Flow): ExplainPath {
  const steps: ExplainStep[] = [];
  if (source.pod) steps.push(egressStep(world, source.pod, target, flow));
  if (target.pod) steps.push(ingressStep(world, target.pod, source, flow));
  return pathOf(steps, source.addr, target.addr);
}

function pathOf(steps: ExplainStep[], source: string | undefined, destination: string | undefined): ExplainPath {
  const denied = steps.filter((s) => s.outcome === 'deny');
  const verdict: Verdict = denied.length ? 'deny' : 'allow';
  const audits = steps.filter((s) => s.outcome === 'audit');
  const audit: AuditNote | undefined =
    verdict === 'allow' && audits.length ? { reason: audits.map((s) => s.text).join('; '), policies: policyNames(audits.flatMap((s) => s.isolatedBy)) } : undefined;
  return {
    ...(source ? { source } : {}),
    ...(destination ? { destination } : {}),
    verdict,
    reason: (denied.length ? denied : steps).map((s) => s.text).join('; '),
    rules: verdict === 'deny' ? policyNames(denied.flatMap((s) => s.isolatedBy)) : policyNames(steps.flatMap((s) => s.rules.map((r) => r.policy))),
    ...(audit ? { audit } : {}),
    steps,
  };
}

function egressStep(world: World, pod: WorldPod, target: End, flow: Flow): ExplainStep {
  const ep = endpointOf(world, pod);
  const early = egressBeforePolicy(ep, pod, flow);
  if (early) return early;
  const what = `${describe(target)} on ${flowText(flow)}`;
  const peers = peersOf(world, target);
  const matched = matching(ep, 'egress', peers, flow);
  if (matched.length) return allowed(ep, pod, 'egress', matched, world, `${pod.name}'s egress to ${what}`);
  const fqdn = target.addr ? fqdnLearned(world, ep, target.addr, flow) : undefined;
  if (fqdn?.allowedBy) return allowed(ep, pod, 'egress', [fqdn.allowedBy], world, `${pod.name}'s egress to ${what}`, fqdn.text);
  return refused(ep, pod, 'egress', `no egress rule allows ${what}${fqdn ? `; ${fqdn.text}` : ''}`);
}

function ingressStep(world: World, pod: WorldPod, source: End, flow: Flow): ExplainStep {
  const ep = endpointOf(world, pod);
  const isolatedBy = ep.ingressBy;
  if (!ep.ingressIsolated && !ep.ingressAudit) return step(pod, 'ingress', 'allow', [], [], `${pod.name} is not isolated for ingress`);
  const peers = peersOf(world, source);
  if (peers.includes(ID_HOST)) return step(pod, 'ingress', 'allow', isolatedBy, [], `${source.addr} is the node's own address: traffic from the node to its pods always passes`);
  const what = `${describe(source)} on ${flowText(flow)}`;
  const matched = matching(ep, 'ingress', peers, flow);
  if (matched.length) return allowed(ep, pod, 'ingress', matched, world, `${pod.name}'s ingress from ${what}`);
  return refused(ep, pod, 'ingress', `no ingress rule allows ${what}`);
}

/** What the datapath settles before the policy trie: not isolated, or DNS the proxy takes. */
function egressBeforePolicy(ep: EndpointPolicy, pod: WorldPod, flow: Flow): ExplainStep | undefined {
  if (ep.dnsIntercept && flow.port === DNS_PORT && flow.protocol !== 'SCTP') {
    return step(pod, 'egress', 'allow', ep.egressBy, [], `${pod.name}'s DNS is intercepted: TCP and UDP to port 53 go to the node's DNS proxy (which forwards to trusted resolvers only), whatever the policy`);
  }
  if (!ep.egressIsolated && !ep.egressAudit) return step(pod, 'egress', 'allow', [], [], `${pod.name} is not isolated for egress`);
  return undefined;
}

// ------------------------------------------------------------------ DNS names

/**
 * A DNS name with no live address to judge (offline, or nothing learned),
 * PRODUCT.md §7: allowed if the pod is not egress-isolated, or an FQDN rule
 * of it matches the name on that port (as if a trusted resolver had
 * answered), or its egress allows every destination on that port (an entry
 * for any peer, or for every ipBlock prefix: 0.0.0.0/0 and ::/0 without
 * exceptions). Selector peers never match a name.
 */
function namePath(world: World, pod: WorldPod, name: string, flow: Flow, note?: string): ExplainPath {
  const ep = endpointOf(world, pod);
  const what = `${name} on ${flowText(flow)}`;
  const lead = note ? `${name}: ${note}, so it is judged as if a trusted resolver answered now; ` : '';
  const early = egressBeforePolicy(ep, pod, flow);
  if (early) return pathOf([{ ...early, text: lead + early.text }], undefined, undefined);
  const byRule: Array<{ ref: RuleRef; peer: number }> = [];
  const otherPorts: RuleRef[] = [];
  for (const id of ep.fqdnRules) {
    const info = world.compiled.fqdnRules.get(id);
    if (!info || !new NameMatcher(info.selectors).matches(name)) continue;
    const entries = matching(ep, 'egress', [id], flow);
    if (entries.length) byRule.push(...entries);
    else otherPorts.push(info.ref);
  }
  if (byRule.length) return pathOf([allowed(ep, pod, 'egress', byRule, world, `${lead}${pod.name}'s egress to ${what}`)], undefined, undefined);
  const any = matching(ep, 'egress', [ID_ANY], flow);
  if (any.length) return pathOf([allowed(ep, pod, 'egress', any, world, `${lead}${pod.name}'s egress to every destination on ${flowText(flow)}, ${name} included`)], undefined, undefined);
  const perPrefix = world.prefixes.map((p) => matching(ep, 'egress', [p.id], flow));
  if (perPrefix.every((m) => m.length)) {
    return pathOf([allowed(ep, pod, 'egress', perPrefix.flat(), world, `${lead}${pod.name}'s egress to every address on ${flowText(flow)}, ${name} included`)], undefined, undefined);
  }
  const others = otherPorts.length ? `; ${otherPorts.map(refText).join(', ')} match${otherPorts.length === 1 ? 'es' : ''} ${name} on other ports only` : '';
  return pathOf([refused(ep, pod, 'egress', `${lead}none of its FQDN rules matches ${what}, and no egress rule allows every destination on ${flowText(flow)}${others}`)], undefined, undefined);
}

/**
 * Egress to an address no entry allows: the endpoint's FQDN rules, in
 * order, as bpf/lib/fqdn.h tries them (learned for a name the rule matches,
 * not expired, and the rule's entry allows the port).
 */
function fqdnLearned(world: World, ep: EndpointPolicy, addr: string, flow: Flow): { allowedBy?: { ref: RuleRef; peer: number }; text: string } | undefined {
  const names = world.learned?.namesOf(addr) ?? [];
  if (!names.length || !ep.fqdnRules.length) return undefined;
  const expired: string[] = [];
  const otherPorts: string[] = [];
  for (const id of ep.fqdnRules) {
    const info = world.compiled.fqdnRules.get(id);
    if (!info) continue;
    const matcher = new NameMatcher(info.selectors);
    const hits = names.filter((n) => matcher.matches(n.name));
    const live = hits.filter((n) => n.expiresInMs > 0);
    if (!live.length) {
      if (hits.length) expired.push(`${refText(info.ref)} (${hits.map((n) => n.name).join(', ')})`);
      continue;
    }
    const learnedAs = live.map((n) => `${n.name} (${Math.ceil(n.expiresInMs / 1000)}s left)`).join(', ');
    const entry = matching(ep, 'egress', [id], flow)[0];
    if (entry) return { allowedBy: entry, text: `${addr} was learned for ${learnedAs}` };
    otherPorts.push(`${refText(info.ref)} matches ${learnedAs} but allows other ports only`);
  }
  if (!expired.length && !otherPorts.length) return undefined;
  return { text: [...(expired.length ? [`${addr} was learned for ${expired.join(', ')} but has expired`] : []), ...otherPorts].join('; ') };
}

// ------------------------------------------------------------------ entries

function endpointOf(world: World, pod: WorldPod): EndpointPolicy {
  const ep = world.compiled.endpoints.get(pod.name);
  if (!ep) throw new Error(`explain: ${pod.name} has no compiled policy`); // every pod of a world is an endpoint
  return ep;
}

/**
 * The identities the datapath looks a peer up as: its exact identity
 * (ipcache; a pod without a known address by its own identity), the longest
 * ipBlock prefix holding its address, and any peer.
 */
function peersOf(world: World, end: End): number[] {
  const exact = end.addr ? world.compiled.ipcache.get(end.addr) : end.pod ? world.compiled.endpoints.get(end.pod.name)?.identity : undefined;
  const cidr = end.addr ? cidrIdentityOf(world, end.addr) : undefined;
  return [...new Set([exact, cidr, ID_ANY].filter((id): id is number => id !== undefined))];
}

/** The entries that allow the flow, one per rule (an entry deduped from several rules names each). */
function matching(ep: EndpointPolicy, direction: 'ingress' | 'egress', peers: readonly number[], flow: Flow): Array<{ ref: RuleRef; peer: number }> {
  const protocol = PROTO_NUMBERS[flow.protocol];
  return ep.entries
    .filter((e) => e.direction === direction && peers.includes(e.peer) && (e.protocol === PROTO_ANY || e.protocol === protocol) && flow.port >= e.portMin && flow.port <= e.portMax)
    .flatMap((e) => [e, ...(e.alsoBy ?? []).map((ref) => ({ ref, peer: e.peer }))]);
}

function allowed(
  ep: EndpointPolicy,
  pod: WorldPod,
  direction: 'ingress' | 'egress',
  entries: ReadonlyArray<{ ref: RuleRef; peer: number }>,
  world: World,
  what: string,
  extra?: string,
): ExplainStep {
  const refs = uniqueRefs(entries.map((e) => e.ref));
  const how = uniqueStrings(entries.map((e) => `${refText(e.ref)} (${peerText(world, e.peer)})`));
  const text = `${what} is allowed by ${how.join(', ')}${extra ? `: ${extra}` : ''}`;
  return step(pod, direction, 'allow', direction === 'egress' ? ep.egressBy : ep.ingressBy, refs, text);
}

/** No entry allows it: a drop, or, where only audit-mode policies decide, a pass reported as audit. */
function refused(ep: EndpointPolicy, pod: WorldPod, direction: 'ingress' | 'egress', why: string): ExplainStep {
  const by = direction === 'egress' ? ep.egressBy : ep.ingressBy;
  const audit = direction === 'egress' ? !ep.egressIsolated && ep.egressAudit : !ep.ingressIsolated && ep.ingressAudit;
  const text = audit
    ? `${pod.name} is isolated for ${direction} in audit mode only, by ${by.join(', ')}; ${why}: it passes, reported as audit`
    : `${pod.name} is isolated for ${direction} by ${by.join(', ')}; ${why}`;
  return step(pod, direction, audit ? 'audit' : 'deny', by, [], text);
}

function step(pod: WorldPod, direction: 'ingress' | 'egress', outcome: ExplainStep['outcome'], isolatedBy: string[], rules: RuleRef[], text: string): ExplainStep {
  return { direction, pod: pod.name, outcome, isolatedBy: [...isolatedBy], rules, text };
}

// ------------------------------------------------------------------ text

function flowText(flow: Flow): string {
  return `${flow.port}/${flow.protocol}`;
}

/** A pod by its name (the path carries its address: texts of a pod's two families read alike), else the address. */
function describe(end: End): string {
  return end.pod?.name ?? end.addr ?? '?';
}

export function refText(ref: RuleRef): string {
  return `${ref.kind === 'FQDNPolicy' ? 'FQDNPolicy ' : ''}${ref.policy} ${ref.direction} rule ${ref.rule}`;
}

/** What an entry's peer is, in the words of the policy: a pod identity, an ipBlock prefix, any peer, an FQDN rule. */
function peerText(world: World, peer: number): string {
  if (peer === ID_ANY) return 'any peer';
  const prefix = world.prefixes.find((p) => p.id === peer);
  if (prefix) return `ipBlock ${prefix.cidr.text}`;
  const rule = world.compiled.fqdnRules.get(peer);
  if (rule) return `toFQDNs ${rule.selectors.map((sel) => sel.text).join(', ')}`;
  const info = world.compiled.identities.get(peer);
  if (info) return `pods of ${info.namespace} labelled ${JSON.stringify(info.labels)}`;
  return `identity ${peer}`;
}

/** "FQDNPolicy ns/name" and "ns/name" alike as "ns/name", once each, in order. */
function policyNames(names: readonly string[]): string[] {
  return uniqueStrings(names.map((n) => n.replace(/^FQDNPolicy /, '')));
}

function uniqueStrings(items: readonly string[]): string[] {
  return [...new Set(items)];
}

function uniqueRefs(refs: readonly RuleRef[]): RuleRef[] {
  const seen = new Set<string>();
  return refs.filter((r) => {
    const k = refText(r);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

// ------------------------------------------------------------------ summary

function pathLabel(p: ExplainPath): string {
  const family = familyOf(p.destination ?? p.source ?? '');
  const ends = p.source || p.destination ? ` (${p.source ?? '?'} → ${p.destination ?? '?'})` : '';
  return family ? `over IPv${family}${ends}` : ends.trim() || 'by identity';
}

/** One verdict over every path: allowed only if every address pair is. */
function summarize(paths: ExplainPath[], flow: Flow): Pick<Explanation, 'judged' | 'verdict' | 'reason' | 'rules' | 'audit' | 'paths'> {
  const judged = flowText(flow);
  if (paths.length === 1) {
    const [p] = paths as [ExplainPath];
    return { judged, verdict: p.verdict, reason: p.reason, rules: p.rules, ...(p.audit ? { audit: p.audit } : {}), paths };
  }
  const denied = paths.filter((p) => p.verdict === 'deny');
  const allowedPaths = paths.filter((p) => p.verdict === 'allow');
  const deciding = denied.length ? denied : paths;
  const reasons = uniqueStrings(deciding.map((p) => p.reason));
  let reason = reasons.length === 1 ? reasons[0]! : deciding.map((p) => `${pathLabel(p)}: ${p.reason}`).join('; ');
  if (denied.length && allowedPaths.length) reason = `${reasons.length === 1 ? `${denied.map(pathLabel).join(', ')}: ${reason}` : reason}; allowed ${allowedPaths.map(pathLabel).join(', ')}`;
  const audits = denied.length ? [] : allowedPaths.filter((p) => p.audit);
  return {
    judged,
    verdict: denied.length ? 'deny' : 'allow',
    reason,
    rules: uniqueStrings(deciding.flatMap((p) => p.rules)),
    ...(audits.length ? { audit: { reason: uniqueStrings(audits.map((p) => p.audit!.reason)).join('; '), policies: uniqueStrings(audits.flatMap((p) => p.audit!.policies)) } } : {}),
    paths,
  };
}
