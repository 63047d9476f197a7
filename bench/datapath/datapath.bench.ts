// Datapath cost of Sluice between two pods of one node, side by side in one
// run, against the same wiring without eBPF:
//   (a) bare: two pods wired exactly as sluice-cni wires them (/32, link-local
//       gateway, node routes), no tc programs — the baseline;
//   (b) Sluice, no NetworkPolicy;
//   (c) Sluice, 10,000 ingress rules (ipBlock /32s and /24s, port ranges,
//       label peers) selecting the server, the last one allowing the client;
//   (d) the bare wiring with the same 10,000 rules as linear iptables in the
//       node's FORWARD chain (conntrack fast path first, as iptables CNIs do).
// Metrics: new TCP connections per second (netload: connect, 1-byte request
// and response, RST; never a repeated 5-tuple) and iperf3 bulk throughput,
// interleaved over repetitions, median reported. Then policy propagation: a
// NetworkPolicy file edit that flips a client's access to a server on a node
// with ~1,000 pods of distinct identities, timed from the write to the first
// connection attempt that sees the new verdict for good; then the same edits
// again once the 10,000 rules (4 files) also select the server (the issue's
// "p99 < 100 ms at 1,000 pods with 10,000 rules in force").
// (b')/(c') are (b)/(c) with --datapath-redirect false (the kill switch: every
// pod-to-pod packet through the node's stack and both veths' programs), run in
// the same window for the A/B; BENCH_REDIRECT_AB=0 leaves them out.
// Latency: request/response round trips over one connection (netload rr).
// Pods on two nodes (issue 18's "same for pods on two nodes, direct routing"),
// a table of its own, the same metrics: two node netns joined by one veth
// pair (the link, each end the node's address), client pod on node 1, server
// pod on node 2, each node routing the other's pod CIDR via the other's link
// address (the route the agent installs with --routing direct in Kubernetes
// mode; standalone agents install none, so the bench does: test/helpers/node-link.ts):
//   (e) bare: both nodes wired as sluice-cni wires pods, no eBPF — the baseline;
//   (f) Sluice on both nodes, no NetworkPolicy;
//   (g) Sluice on both nodes, (c)'s 10,000 rules selecting the server, the last
//       one allowing the client — a pod of the other node, known to node 2's
//       agent from its Pod object (spec.nodeName, status.podIPs).
// All of them cross the same hops: pod veth, node 1, link, node 2, pod veth.
// Part of the default run (they add ~2 minutes: 122 s with BENCH_RUNS=5, 84 s
// with 3). BENCH_DATAPATH_ONLY=datapath|twonode|propagation runs only the
// one-node scenarios, the two-node ones or the propagation rounds;
// BENCH_PROP_RULES=0 skips the propagation round with the 10,000 rules;
// BENCH_LOG_DIR=<dir> keeps the propagation agent's log; BENCH_PERF_DIR=<dir>
// records a system-wide `perf record -a -g` of each conn/s run there
// (<key>-<rep>.data), for profiling a scenario under its own load.
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { BareNode } from '../lib/bare-node.js';
import { BENCH_PREFIX, BenchCleanup, sweepStaleBenchNetns } from '../lib/bench-netns.js';
import { buildNetload, check, connRate, iperf, Prober, rrLatency, startIperfServer, startServer, type ProbeSample } from '../lib/load.js';
import { cpuSeconds, machineBusySeconds } from '../lib/pin.js';
import { formatTable, quantile, ratio, stats, type Row } from '../lib/table.js';
import { cni, cniAsync, podArgs, TestNode, type Netns } from '../../test/helpers/agent.js';
import { sh } from '../../test/helpers/netns.js';
import { linkNodes } from '../../test/helpers/node-link.js';

const REPS = Number(process.env.BENCH_RUNS ?? 5);
const CONN_MS = Number(process.env.BENCH_CONN_MS ?? 3000);
const IPERF_S = Number(process.env.BENCH_IPERF_S ?? 3);
const WORKERS = 4;
const RULES = 10_000;
const PROP_PODS = Number(process.env.BENCH_PODS ?? 1000);
const FLIPS = Number(process.env.BENCH_FLIPS ?? 40);
const SETUP_BUDGET_MS = 60_000;
const ONLY = process.env.BENCH_DATAPATH_ONLY;
const PROP_RULES = process.env.BENCH_PROP_RULES !== '0';
const REDIRECT_AB = process.env.BENCH_REDIRECT_AB !== '0';
const PERF_DIR = process.env.BENCH_PERF_DIR;
const RR_COUNT = Number(process.env.BENCH_RR ?? 5000);

// Ports. The netload servers listen on [CONN_PORT, +CONN_PORTS); iperf3 on
// IPERF_PORT; the client is allowed [ALLOW_FIRST, ALLOW_LAST]; BLOCKED_PORT is
// in no rule of the client. Connection runs use source ports SPORT_*; one-shot
// checks use checkSport, from 2000 up (outside that range, so no check leaves a
// conntrack entry a measured connection could reuse).
const CONN_PORT = 5000;
const CONN_PORTS = 64;
const IPERF_PORT = 5201;
const ALLOW_FIRST = 5000;
const ALLOW_LAST = 5299;
const BLOCKED_PORT = 7777;
const SPORT_FIRST = 10000;
const SPORT_LAST = 64999;
let checkSport = 2000;

interface Pod {
  ns: Netns;
  ip: string;
}

interface Scenario {
  key: string;
  name: string;
  client: Pod;
  server: Pod;
  /** The benchmark port must give this to a port not allowed. */
  blockedVerdict: 'refused' | 'timeout';
  baseline?: boolean;
  /** Judged against issue 18's targets; `contrast`: marked as a contrast, not a candidate. */
  target?: boolean;
  contrast?: boolean;
  connNext: number;
  conn: number[];
  gbps: number[];
  /** Round-trip latency per repetition, µs. */
  p50: number[];
  p99: number[];
  /** The agents of its nodes (none: bare). */
  agentPids: number[];
  agentCpu: number[];
  /** The whole machine's busy CPU time per connection during each conn/s run, µs. */
  cpuPerConn: number[];
  /** The node netns (where the host veths and their tc programs are), the client's first. */
  nodes: Netns[];
  failed?: string;
}

// Namespaces named apart from the tests' (whose setup sweeps "slt*"): see bench-netns.ts.
const cleanup = new BenchCleanup();
const notes: string[] = [];
const log = (msg: string) => process.stderr.write(`[datapath] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    cleanup.run();
    process.exit(130);
  });
}

// ------------------------------------------------------------------ agent log

interface LogLine {
  msg?: string;
  ms?: number;
  file?: string;
  pid?: number;
  entries?: number;
  [k: string]: unknown;
}

function logLines(node: TestNode): LogLine[] {
  return node
    .log()
    .split('\n')
    .flatMap((l) => {
      try {
        return l.startsWith('{') ? [JSON.parse(l) as LogLine] : [];
      } catch {
        return [];
      }
    });
}

async function waitFor<T>(what: string, fn: () => T | undefined | false, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Waits until every file has been applied after log line `from`; returns the index past it. */
async function waitApplied(node: TestNode, files: string[], from: number, timeoutMs = 120_000): Promise<number> {
  return waitFor(
    `${files.join(', ')} applied`,
    () => {
      const lines = logLines(node).slice(from);
      const errors = lines.filter((l) => l.msg === 'manifest rejected');
      if (errors.length) throw new Error(`manifest rejected: ${JSON.stringify(errors[0])}`);
      const applied = lines.map((l, i) => (l.msg === 'manifest applied' && files.includes(l.file ?? '') ? i : -1)).filter((i) => i >= 0);
      return files.every((f) => lines.some((l) => l.msg === 'manifest applied' && l.file === f)) ? from + Math.max(...applied) + 1 : false;
    },
    timeoutMs,
  );
}

// ------------------------------------------------------------- 10,000 rules

interface Rule {
  /** A CIDR, or a label peer that selects the client pod. */
  peer: { cidr: string } | { labels: 'pod' | 'namespace+pod' };
  protocol: 'TCP' | 'UDP';
  port: number;
  endPort?: number;
}

/**
 * RULES ingress rules for the server: 6,000 ipBlock /32s (10.100.0.0/19),
 * 2,000 ipBlock /24s (10.120-127.x.0) with 10-port ranges, 1,999 label peers
 * that do select the client but on other ports (20000-21998), and last the
 * one rule that allows the client on ALLOW_FIRST-ALLOW_LAST. The CIDRs are
 * data only: no address in them exists anywhere.
 */
function tenThousandRules(): Rule[] {
  const rules: Rule[] = [];
  for (let i = 0; i < 6000; i++) {
    rules.push({ peer: { cidr: `10.100.${i >> 8}.${i & 255}/32` }, protocol: i % 10 === 9 ? 'UDP' : 'TCP', port: 8000 + (i % 500) });
  }
  for (let j = 0; j < 2000; j++) {
    const port = 9000 + (j % 100) * 10;
    rules.push({ peer: { cidr: `10.${120 + (j >> 8)}.${j & 255}.0/24` }, protocol: 'TCP', port, endPort: port + 9 });
  }
  for (let j = 0; j < RULES - 8001; j++) rules.push({ peer: { labels: j % 2 ? 'namespace+pod' : 'pod' }, protocol: 'TCP', port: 20000 + j });
  rules.push({ peer: { labels: 'pod' }, protocol: 'TCP', port: ALLOW_FIRST, endPort: ALLOW_LAST });
  if (rules.length !== RULES) throw new Error(`built ${rules.length} rules`);
  return rules;
}

/** `ns`: the namespace, whose label team=<ns> the namespace+pod peers select (namespaceYaml). */
function policyYaml(name: string, rules: readonly Rule[], ns = 'bench'): string {
  const out = [
    'apiVersion: networking.k8s.io/v1',
    'kind: NetworkPolicy',
    'metadata:',
    `  name: ${name}`,
    `  namespace: ${ns}`,
    'spec:',
    '  podSelector:',
    '    matchLabels: {role: server}',
    '  policyTypes: [Ingress]',
    '  ingress:',
  ];
  for (const r of rules) {
    if ('cidr' in r.peer) out.push('  - from:', `    - ipBlock: {cidr: ${r.peer.cidr}}`);
    else if (r.peer.labels === 'pod') out.push('  - from:', '    - podSelector: {matchLabels: {role: client}}');
    else out.push('  - from:', `    - namespaceSelector: {matchLabels: {team: ${ns}}}`, '      podSelector: {matchLabels: {role: client}}');
    out.push('    ports:', `    - {protocol: ${r.protocol}, port: ${r.port}${r.endPort ? `, endPort: ${r.endPort}` : ''}}`);
  }
  return `${out.join('\n')}\n`;
}

function iptablesRestore(rules: readonly Rule[], client: string, server: string): string {
  const out = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD DROP [0:0]', ':OUTPUT ACCEPT [0:0]', '-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT'];
  for (const r of rules) {
    const src = 'cidr' in r.peer ? r.peer.cidr : `${client}/32`;
    const p = r.protocol.toLowerCase();
    out.push(`-A FORWARD -s ${src} -d ${server}/32 -p ${p} -m ${p} --dport ${r.port}${r.endPort ? `:${r.endPort}` : ''} -j ACCEPT`);
  }
  out.push('COMMIT');
  return `${out.join('\n')}\n`;
}

const namespaceYaml = (name: string) => `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${name}\n  labels: {team: ${name}}\n`;
/** `placed`: the node the pod runs on and, once wired, its address, as the API server shows them. */
const podYaml = (ns: string, name: string, labels: Record<string, string>, placed?: { node: string; ip?: string }) =>
  `---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: ${name}\n  namespace: ${ns}\n  labels: {${Object.entries(labels)
    .map(([k, v]) => `${k}: ${v}`)
    .join(', ')}}\n${placed ? `spec:\n  nodeName: ${placed.node}\n` : ''}${placed?.ip ? `status:\n  podIPs:\n  - ip: ${placed.ip}\n` : ''}`;

const RULE_FILES = [0, 1, 2, 3].map((k) => `np-${k}.yaml`);

/** The rules as NetworkPolicies in RULE_FILES, 2,500 rules each. */
function writeRules(node: TestNode, rules: readonly Rule[], ns = 'bench'): void {
  RULE_FILES.forEach((f, k) => node.writeManifest(f, policyYaml(`rules-${k}`, rules.slice(k * 2500, (k + 1) * 2500), ns)));
}

/**
 * Waits until RULE_FILES, written after log line `from`, are programmed:
 * each file's objects are compiled and programmed as the file is stored, and
 * a store change only marks the agent's reconciler dirty, so the sync that
 * programs the last file is logged after its "manifest applied". Returns the
 * agent's syncs since `from`; the last one has all the rules.
 */
async function rulesProgrammed(node: TestNode, from: number): Promise<LogLine[]> {
  const past = await waitApplied(node, RULE_FILES, from, 150_000);
  return waitFor('the last file programmed', () => {
    const lines = logLines(node);
    return lines.slice(past).some((l) => l.msg === 'policy programmed') && lines.slice(from).filter((l) => l.msg === 'policy programmed');
  }, 30_000);
}

// ----------------------------------------------------------------- topology

function barePair(clientIp: string, serverIp: string): { node: BareNode; client: Pod; server: Pod } {
  const node = new BareNode(cleanup);
  return { node, client: node.addPod(clientIp), server: node.addPod(serverIp) };
}

/** Pod bench/`name` on `node`, wired by the real sluice-cni. */
function cniPod(node: TestNode, name: string): Pod {
  const ns = cleanup.netns('pod');
  const r = cni({ command: 'ADD', containerId: `bench-${name}-${ns.name}`, netns: ns.path, ifname: 'eth0', args: podArgs('bench', name), config: node.conf() });
  const address = (r.json?.ips as Array<{ address: string }> | undefined)?.[0]?.address;
  if (r.status !== 0 || !address) throw new Error(`CNI ADD ${name} failed: ${r.stdout}`);
  return { ns, ip: address.split('/')[0]! };
}

async function sluicePair(podCidr: string, redirect = true): Promise<{ node: TestNode; client: Pod; server: Pod }> {
  const node = new TestNode(cleanup, { podCidr, extraArgs: ['--datapath-redirect', String(redirect)] });
  await node.start();
  node.writeManifest('00-namespace.yaml', namespaceYaml('bench'));
  node.writeManifest('01-pods.yaml', podYaml('bench', 'client', { role: 'client' }) + podYaml('bench', 'server', { role: 'server' }));
  await waitApplied(node, ['00-namespace.yaml', '01-pods.yaml'], 0);
  return { node, client: cniPod(node, 'client'), server: cniPod(node, 'server') };
}

// Two nodes on `net` (a /16 prefix, e.g. '10.218'): node k's pods in net.k.0/24, the link net.255.0/24.
const podCidrOf = (net: string, k: 1 | 2) => `${net}.${k}.0/24`;

function bareTwoNodes(net: string): { nodes: Netns[]; client: Pod; server: Pod } {
  const [n1, n2] = [new BareNode(cleanup), new BareNode(cleanup)];
  linkNodes({ ns: n1.ns, podCidr: podCidrOf(net, 1) }, { ns: n2.ns, podCidr: podCidrOf(net, 2) }, { v4: `${net}.255` }, BENCH_PREFIX);
  return { nodes: [n1.ns, n2.ns], client: n1.addPod(`${net}.1.2`), server: n2.addPod(`${net}.2.2`) };
}

/**
 * Client pod on node 1, server pod on node 2, each node with its own agent
 * (named after its netns: TestNode passes --node-name). Both agents get both
 * Pod objects with spec.nodeName and, once sluice-cni has wired them,
 * status.podIPs, as every agent of a cluster sees them: so node 2's agent
 * knows the client as a pod of another node, which the rules' label peers
 * select.
 */
async function sluiceTwoNodes(net: string): Promise<{ nodes: readonly TestNode[]; client: Pod; server: Pod }> {
  const nodes = [new TestNode(cleanup, { podCidr: podCidrOf(net, 1) }), new TestNode(cleanup, { podCidr: podCidrOf(net, 2) })] as const;
  const [n1, n2] = nodes;
  // Linked before the agents start, so each attaches its node-link program at once.
  linkNodes({ ns: n1.ns, podCidr: n1.opts.podCidr }, { ns: n2.ns, podCidr: n2.opts.podCidr }, { v4: `${net}.255` }, BENCH_PREFIX);
  await Promise.all(nodes.map((n) => n.start()));
  const pods = (clientIp?: string, serverIp?: string) =>
    podYaml('bench', 'client', { role: 'client' }, { node: n1.ns.name, ip: clientIp }) + podYaml('bench', 'server', { role: 'server' }, { node: n2.ns.name, ip: serverIp });
  for (const n of nodes) {
    n.writeManifest('00-namespace.yaml', namespaceYaml('bench'));
    n.writeManifest('01-pods.yaml', pods());
  }
  await Promise.all(nodes.map((n) => waitApplied(n, ['00-namespace.yaml', '01-pods.yaml'], 0)));
  const client = cniPod(n1, 'client');
  const server = cniPod(n2, 'server');
  const from = nodes.map((n) => logLines(n).length);
  for (const n of nodes) n.writeManifest('01-pods.yaml', pods(client.ip, server.ip));
  await Promise.all(nodes.map((n, k) => waitApplied(n, ['01-pods.yaml'], from[k]!)));
  return { nodes, client, server };
}

async function serve(s: Pick<Scenario, 'server'>): Promise<void> {
  await startServer(cleanup, s.server.ns, CONN_PORT, CONN_PORTS);
  await startIperfServer(cleanup, s.server.ns, IPERF_PORT);
}

/** The benchmark port connects, a port outside every rule of the client does not. */
async function verify(s: Scenario): Promise<void> {
  const allowed = await check(s.client.ns, s.server.ip, CONN_PORT, checkSport++);
  const blocked = await check(s.client.ns, s.server.ip, BLOCKED_PORT, checkSport++);
  if (allowed !== 'ok') throw new Error(`port ${CONN_PORT}: ${allowed}, expected ok`);
  if (blocked !== s.blockedVerdict) throw new Error(`port ${BLOCKED_PORT}: ${blocked}, expected ${s.blockedVerdict}`);
}

// ----------------------------------------------------------------- measuring

/** CPU seconds of all the scenario's agents. */
const agentSeconds = (s: Scenario) => s.agentPids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);

/** `perf record -a -g` for `seconds` into BENCH_PERF_DIR (when set), resolved once it has written its file. */
function perfRecord(name: string, seconds: number): Promise<void> {
  if (!PERF_DIR) return Promise.resolve();
  mkdirSync(PERF_DIR, { recursive: true });
  const child = spawn('perf', ['record', '-a', '-g', '-q', '-o', join(PERF_DIR, `${name}.data`), '--', 'sleep', String(seconds)], { stdio: 'ignore' });
  return new Promise((resolve) => child.on('close', () => resolve()));
}

async function measureConn(s: Scenario, durationMs: number, rep?: number): Promise<number> {
  const before = agentSeconds(s);
  const busyBefore = machineBusySeconds();
  // The profile covers the middle of the run, not its ramp-up and drain.
  const perf = rep === undefined ? Promise.resolve() : perfRecord(`${s.key}-${rep + 1}`, Math.max(1, Math.floor(durationMs / 1000) - 1));
  const r = await connRate(s.client.ns, s.server.ip, {
    dportFirst: CONN_PORT,
    dportCount: CONN_PORTS,
    sportFirst: SPORT_FIRST,
    sportLast: SPORT_LAST,
    start: s.connNext,
    durationMs,
    workers: WORKERS,
  });
  s.connNext = r.next;
  if (rep !== undefined) s.cpuPerConn.push(((machineBusySeconds() - busyBefore) * 1e6) / Math.max(1, r.ok));
  await perf;
  if (s.agentPids.length) s.agentCpu.push(((agentSeconds(s) - before) * 100) / r.seconds); // % of one CPU
  if (r.fail > r.ok / 1000) throw new Error(`${r.fail} of ${r.ok + r.fail} connections failed`);
  return r.ok / r.seconds;
}

/** What makes a scenario; its measurements start empty. */
type ScenarioSpec = Pick<Scenario, 'key' | 'name' | 'client' | 'server' | 'nodes' | 'blockedVerdict'> & Partial<Pick<Scenario, 'baseline' | 'target' | 'contrast'>>;

function agentPid(node: TestNode): number {
  const pid = logLines(node).find((l) => l.msg === 'agent ready')?.pid;
  if (!pid) throw new Error(`no "agent ready" in the log of ${node.ns.name}`);
  return pid;
}

function scenario(spec: ScenarioSpec, agents: readonly TestNode[] = []): Scenario {
  return { ...spec, agentPids: agents.map(agentPid), connNext: 0, conn: [], gbps: [], p50: [], p99: [], agentCpu: [], cpuPerConn: [] };
}

/**
 * The 10k rules in force on `servers` (nodes with the server pod, written to
 * all at once; the note's syncs are the first one's) and applied on `others`
 * (which have no pod they select, so nothing to program: no "policy programmed").
 */
async function applyRules(key: string, servers: readonly TestNode[], rules: readonly Rule[], others: readonly TestNode[] = []): Promise<void> {
  const nodes = [...servers, ...others];
  const from = nodes.map((n) => logLines(n).length);
  const t0 = Date.now();
  for (const n of nodes) writeRules(n, rules);
  const [compiles] = await Promise.all(servers.map((n, k) => rulesProgrammed(n, from[k]!)));
  const programmed = compiles!.at(-1)!;
  notes.push(
    `${key}: ${RULES} rules in 4 files programmed ${((Date.now() - t0) / 1000).toFixed(1)} s after the write: ${programmed.entries} policy entries; ` +
      `the agent synced ${compiles!.length}x, the last taking ${programmed.ms} ms (log "policy programmed").`,
  );
  await Promise.all(others.map((n, k) => waitApplied(n, RULE_FILES, from[servers.length + k]!, 150_000)));
}

async function runDatapath(): Promise<Row[]> {
  const rules = tenThousandRules();
  notes.push(
    '(a)/(d) are wired exactly as sluice-cni wires pods (two veth pairs through a node netns, pod /32 + link-local gateway, node /32 routes), ' +
      'so all four scenarios cross the same hops; (b)/(c) add the tc programs on both host veths.',
  );
  const a = barePair('10.214.0.2', '10.214.0.3');
  const d = barePair('10.215.0.2', '10.215.0.3');
  // iptables-legacy: the classic linear xtables walk (iptables-nft would
  // also be linear for a flat chain; legacy is what "linear iptables" means).
  const ipt = iptablesRestore(rules, d.client.ip, d.server.ip);
  d.node.ns.exec('iptables-legacy-restore', [], { input: ipt });
  const loaded = d.node.ns.exec('iptables-legacy', ['-S', 'FORWARD']).split('\n').filter((l) => l.startsWith('-A')).length;
  notes.push(`(d): ${loaded} rules in the node netns FORWARD chain (iptables-legacy, policy DROP; rule 1 = conntrack RELATED,ESTABLISHED accept, then ${RULES} rules mirroring (c), the last allowing the client).`);

  const b = await sluicePair('10.211.0.0/24');
  const c = await sluicePair('10.212.0.0/24');
  const b0 = REDIRECT_AB ? await sluicePair('10.216.0.0/24', false) : undefined;
  const c0 = REDIRECT_AB ? await sluicePair('10.217.0.0/24', false) : undefined;
  await applyRules('(c)', c0 ? [c.node, c0.node] : [c.node], rules);
  if (REDIRECT_AB) notes.push("(b')/(c'): the same as (b)/(c) with --datapath-redirect false (today's path: the node's routing and netfilter, sluice_to_pod on the server's veth), measured in the same window, interleaved.");

  const scenarios = [
    scenario({ key: 'a', name: '(a) bare veth, no eBPF', ...a, nodes: [a.node.ns], blockedVerdict: 'refused', baseline: true }),
    scenario({ key: 'b', name: '(b) Sluice, no policy', ...b, nodes: [b.node.ns], blockedVerdict: 'refused' }, [b.node]),
    scenario({ key: 'c', name: `(c) Sluice, ${RULES / 1000}k rules`, ...c, nodes: [c.node.ns], blockedVerdict: 'timeout', target: true }, [c.node]),
    ...(b0 ? [scenario({ key: 'b0', name: "(b') Sluice, no policy, redirect off", ...b0, nodes: [b0.node.ns], blockedVerdict: 'refused' }, [b0.node])] : []),
    ...(c0 ? [scenario({ key: 'c0', name: `(c') Sluice, ${RULES / 1000}k rules, redirect off`, ...c0, nodes: [c0.node.ns], blockedVerdict: 'timeout' }, [c0.node])] : []),
    scenario({ key: 'd', name: `(d) bare + ${RULES / 1000}k iptables`, ...d, nodes: [d.node.ns], blockedVerdict: 'timeout', contrast: true }),
  ];
  return measure(scenarios, ['b', 'c', 'c0']);
}

async function runTwoNode(): Promise<Row[]> {
  const rules = tenThousandRules();
  notes.push(
    '(e)-(g): client pod on node 1, server pod on node 2, the nodes joined by one veth pair (the node addresses, .1 and .2 of a /24), each routing the ' +
      'other\'s pod CIDR via the other\'s link address (metric 4242, the route --routing direct installs in Kubernetes mode; installed by the bench, ' +
      'as standalone agents install none); (e) is wired as sluice-cni wires pods, so all three cross pod veth, node 1, link, node 2, pod veth; ' +
      '(f)/(g) add the tc programs on both nodes (pod veths, and sluice_from_node on each node\'s link end).',
  );
  const e = bareTwoNodes('10.218');
  const f = await sluiceTwoNodes('10.219');
  const g = await sluiceTwoNodes('10.220');
  await applyRules('(g) node 2', [g.nodes[1]!], rules, [g.nodes[0]!]);
  const scenarios = [
    scenario({ key: 'e', name: '(e) bare, two nodes, no eBPF', ...e, blockedVerdict: 'refused', baseline: true }),
    scenario({ key: 'f', name: '(f) Sluice, two nodes, no policy', ...f, nodes: f.nodes.map((n) => n.ns), blockedVerdict: 'refused' }, f.nodes),
    scenario({ key: 'g', name: `(g) Sluice, two nodes, ${RULES / 1000}k rules`, ...g, nodes: g.nodes.map((n) => n.ns), blockedVerdict: 'timeout', target: true }, g.nodes),
  ];
  return measure(scenarios, ['f', 'g']);
}

/**
 * Serves, verifies and warms every scenario up, then measures them
 * interleaved: conn/s, throughput, latency; then the diagnostics for the
 * `diagnosed` ones; one row each, judged against the baseline scenario.
 */
async function measure(scenarios: Scenario[], diagnosed: readonly string[]): Promise<Row[]> {
  for (const s of scenarios) {
    try {
      await serve(s);
      await verify(s);
      await measureConn(s, 1000); // warm-up
      s.agentCpu.length = 0;
    } catch (err) {
      s.failed = `setup: ${(err as Error).message}`.slice(0, 120);
      log(`${s.name}: ${s.failed}`);
    }
  }
  const live = () => scenarios.filter((s) => !s.failed);
  const order = (rep: number) => (rep % 2 ? [...live()].reverse() : live());
  for (let rep = 0; rep < REPS; rep++) {
    for (const s of order(rep)) {
      try {
        s.conn.push(await measureConn(s, CONN_MS, rep));
        log(`conn/s rep ${rep + 1} ${s.name}: ${s.conn.at(-1)!.toFixed(0)}`);
      } catch (err) {
        s.failed = `conn: ${(err as Error).message}`.slice(0, 120);
      }
    }
  }
  for (let rep = 0; rep < REPS; rep++) {
    for (const s of order(rep)) {
      try {
        s.gbps.push(await iperf(s.client.ns, s.server.ip, IPERF_PORT, IPERF_S));
        log(`Gbit/s rep ${rep + 1} ${s.name}: ${s.gbps.at(-1)!.toFixed(2)}`);
      } catch (err) {
        s.failed = `iperf3: ${(err as Error).message}`.slice(0, 120);
      }
    }
  }
  for (let rep = 0; rep < REPS; rep++) {
    for (const s of order(rep)) {
      try {
        const l = await rrLatency(s.client.ns, s.server.ip, CONN_PORT, RR_COUNT);
        s.p50.push(l.p50);
        s.p99.push(l.p99);
        log(`latency rep ${rep + 1} ${s.name}: p50 ${l.p50} µs, p99 ${l.p99} µs`);
      } catch (err) {
        s.failed = `rr: ${(err as Error).message}`.slice(0, 120);
      }
    }
  }
  // The rules must still be enforced after the load (no conntrack shortcut, no fail-open).
  for (const s of live()) {
    try {
      await verify(s);
    } catch (err) {
      s.failed = `after load: ${(err as Error).message}`.slice(0, 120);
    }
  }
  for (const s of scenarios.filter((x) => x.agentCpu.length)) {
    const [agents, consume] = s.agentPids.length > 1 ? [`the ${s.agentPids.length} agents`, 'they consume'] : ['the agent', 'it consumes'];
    notes.push(`${s.name}: ${agents} used ${stats(s.agentCpu).median.toFixed(0)}% of a CPU during the conn/s runs (${consume} a flow event per new flow and enforcement point).`);
  }
  const base = scenarios.find((x) => x.baseline)!;
  const baseConn = stats(base.conn).median;
  try {
    await diagnose(scenarios.filter((x) => !x.failed && diagnosed.includes(x.key)), baseConn);
  } catch (err) {
    notes.push(`diagnostics failed: ${(err as Error).message}`);
  }

  const baseGbps = stats(base.gbps).median;
  const baseP50 = stats(base.p50).median;
  const baseP99 = stats(base.p99).median;
  return scenarios.map((s) => {
    const conn = stats(s.conn);
    const gbps = stats(s.gbps);
    const p50 = stats(s.p50);
    const p99 = stats(s.p99);
    const rc = conn.median / baseConn;
    const rg = gbps.median / baseGbps;
    let target = '';
    // Issue 18: ≥1.0x the raw path's conn/s and throughput, latency not worse (5% run-to-run tolerance on latency).
    if (s.target) target = `conn ≥1.0x ${rc >= 1 ? '✓' : '✗'}, tput ≥1.0x ${rg >= 1 ? '✓' : '✗'}, p50/p99 ≤1.05x ${p50.median <= baseP50 * 1.05 && p99.median <= baseP99 * 1.05 ? '✓' : '✗'}`;
    if (s.contrast) target = '(contrast)';
    return {
      scenario: s.name,
      samples: Math.min(conn.n, gbps.n),
      results: {
        'conn/s': conn.median.toFixed(0),
        '± conn/s': conn.spread.toFixed(0),
        'Gbit/s': gbps.median.toFixed(2),
        '± Gbit/s': gbps.spread.toFixed(2),
        'p50 µs': p50.median.toFixed(1),
        'p99 µs': p99.median.toFixed(1),
        'CPU µs/conn': s.cpuPerConn.length ? stats(s.cpuPerConn).median.toFixed(1) : '',
        target,
      },
      vsBaseline: s.baseline ? '' : `${ratio(conn.median, baseConn)} conn, ${ratio(gbps.median, baseGbps)} tput, ${ratio(p50.median, baseP50)} p50, ${ratio(p99.median, baseP99)} p99`,
      baseline: s.baseline,
      failed: s.failed,
    };
  });
}

// -------------------------------------------------------------- diagnostics

interface ProgStats {
  runs: number;
  ns: number;
}

/** run_cnt and run_time_ns of each Sluice tc program of the nodes (host veths, node links), by "node k program" (one node: by program). */
function progStats(nodes: readonly Netns[]): Map<string, ProgStats> {
  const out = new Map<string, ProgStats>();
  nodes.forEach((node, k) => {
    const net = JSON.parse(node.exec('bpftool', ['-j', 'net', 'show'])) as Array<{ tc?: Array<{ name?: string; id?: number }> }>;
    const ids = [...new Set(net.flatMap((n) => n.tc ?? []).filter((t) => t.name?.startsWith('sluice_') && t.id).map((t) => t.id!))];
    if (ids.length === 0) throw new Error(`no sluice tc programs in ${node.name}`);
    for (const id of ids) {
      const p = JSON.parse(sh('bpftool', ['-j', 'prog', 'show', 'id', String(id)])) as { name?: string; run_cnt?: number; run_time_ns?: number };
      const key = `${nodes.length > 1 ? `node ${k + 1} ` : ''}${p.name ?? id}`;
      const sum = out.get(key) ?? { runs: 0, ns: 0 };
      out.set(key, { runs: sum.runs + (p.run_cnt ?? 0), ns: sum.ns + (p.run_time_ns ?? 0) });
    }
  });
  return out;
}

/**
 * Where Sluice's per-connection cost goes, after the measured runs (so the
 * stats' own overhead never touches them): the tc programs' run time per
 * packet (kernel.bpf_stats_enabled, restored after), and conn/s with the
 * agents stopped (SIGSTOP), i.e. with nobody consuming the flow events.
 */
async function diagnose(sluice: Scenario[], baseConn: number): Promise<void> {
  const STATS = '/proc/sys/kernel/bpf_stats_enabled';
  const previous = readFileSync(STATS, 'utf8').trim();
  const restore = () => writeFileSync(STATS, previous);
  cleanup.add(restore);
  writeFileSync(STATS, '1');
  try {
    for (const s of sluice) {
      const before = progStats(s.nodes);
      const start = s.connNext;
      await measureConn(s, 2000);
      const conns = s.connNext - start;
      const delta = [...progStats(s.nodes)].map(([prog, x]) => ({ prog, runs: x.runs - (before.get(prog)?.runs ?? 0), ns: x.ns - (before.get(prog)?.ns ?? 0) })).filter((x) => x.runs > 0);
      const runs = delta.reduce((sum, x) => sum + x.runs, 0);
      const ns = delta.reduce((sum, x) => sum + x.ns, 0);
      const byProg = delta.map((x) => `${x.prog} ${(x.runs / conns).toFixed(1)} × ${(x.ns / x.runs).toFixed(0)} ns`).join(', ');
      notes.push(`${s.name}: tc programs ${(ns / runs).toFixed(0)} ns per run, ${(runs / conns).toFixed(1)} runs per connection (${byProg}; bpf_stats, separate 2 s run).`);
    }
  } finally {
    restore();
  }
  // Paired: agents running / stopped, alternating, 2 s each, twice.
  const signal = (s: Scenario, sig: NodeJS.Signals) => s.agentPids.forEach((pid) => process.kill(pid, sig));
  for (const s of sluice) {
    if (!s.agentPids.length) continue;
    const running: number[] = [];
    const stopped: number[] = [];
    for (let k = 0; k < 2; k++) {
      running.push(await measureConn(s, 2000));
      signal(s, 'SIGSTOP');
      try {
        stopped.push(await measureConn(s, 2000));
      } finally {
        signal(s, 'SIGCONT');
      }
      await sleep(300); // let the agents drain their ring buffers
    }
    const r = stats(running).median;
    const x = stats(stopped).median;
    notes.push(
      `${s.name}: with the agent${s.agentPids.length > 1 ? 's' : ''} stopped (SIGSTOP: nobody consumes flow events) ${x.toFixed(0)} conn/s vs ${r.toFixed(0)} running ` +
        `(${ratio(x, r)}; ${ratio(x, baseConn)} of the baseline's median), 2+2 alternating 2 s runs.`,
    );
  }
  for (const s of sluice) s.agentCpu.length = 0;
}

// -------------------------------------------------------------- propagation

function flipYaml(allow: boolean): string {
  return [
    'apiVersion: networking.k8s.io/v1',
    'kind: NetworkPolicy',
    'metadata:',
    '  name: flip',
    '  namespace: prop',
    'spec:',
    '  podSelector:',
    '    matchLabels: {app: prop-server}',
    '  policyTypes: [Ingress]',
    '  ingress:',
    '  - from:',
    `    - podSelector: {matchLabels: {app: ${allow ? 'prop-client' : 'nobody'}}}`,
    '    ports:',
    '    - {protocol: TCP, port: 8080}',
    '',
  ].join('\n');
}

/**
 * When the probe saw the new verdict for good: the first attempt after the
 * last one (started after the write) that still saw the old verdict, once at
 * least `settle` attempts in a row have seen the new one.
 */
function enforcedAt(samples: readonly ProbeSample[], since: bigint, allow: boolean, settle: number, resolvedBefore: bigint): bigint | undefined {
  const after = samples.filter((x) => x.start >= since && x.start < resolvedBefore && x.result !== 'error').sort((p, q) => (p.start < q.start ? -1 : 1));
  const isNew = (x: ProbeSample) => (allow ? x.result === 'ok' : x.result === 'timeout');
  let lastOld = -1;
  after.forEach((x, i) => {
    if (!isNew(x)) lastOld = i;
  });
  const tail = after.length - lastOld - 1;
  return tail >= settle ? after[lastOld + 1]!.start : undefined;
}

async function runPropagation(): Promise<Row[]> {
  const setupStart = Date.now();
  const node = new TestNode(cleanup, { podCidr: '10.213.0.0/21' });
  // BENCH_LOG_DIR=<dir>: keep the agent's log (its node dir goes with the cleanup).
  const logDir = process.env.BENCH_LOG_DIR;
  if (logDir) cleanup.add(() => copyFileSync(node.logFile, join(logDir, 'datapath-propagation.log')));
  await node.start();
  const names = ['prop-client', 'prop-server', ...Array.from({ length: PROP_PODS - 2 }, (_, i) => `p${String(i).padStart(4, '0')}`)];
  node.writeManifest('00-namespace.yaml', namespaceYaml('prop'));
  // role: the 10,000 rules' selectors (the server) and label peers (the client); every pod's labels stay distinct.
  const role = (n: string): Record<string, string> => (n === 'prop-server' ? { role: 'server' } : n === 'prop-client' ? { role: 'client' } : {});
  node.writeManifest('01-pods.yaml', names.map((n, i) => podYaml('prop', n, { app: n, group: `g${i % 10}`, ...role(n) })).join(''));
  await waitApplied(node, ['00-namespace.yaml', '01-pods.yaml'], 0);

  // Pods with distinct labels, so each is its own identity; in parallel
  // batches, until all exist or the setup budget runs out.
  const pods = new Map<string, Pod>();
  const batch = 8;
  let i = 0;
  while (i < names.length && Date.now() - setupStart < SETUP_BUDGET_MS) {
    const chunk = names.slice(i, i + batch);
    i += chunk.length;
    const results = await Promise.all(
      chunk.map(async (name) => {
        const ns = cleanup.netns('pp');
        const r = await cniAsync({ command: 'ADD', containerId: `prop-${name}`, netns: ns.path, ifname: 'eth0', args: podArgs('prop', name), config: node.conf() });
        const address = (r.json?.ips as Array<{ address: string }> | undefined)?.[0]?.address;
        if (r.status !== 0 || !address) throw new Error(`CNI ADD ${name} failed: ${r.stdout}`);
        return [name, { ns, ip: address.split('/')[0]! }] as const;
      }),
    );
    for (const [n, p] of results) pods.set(n, p);
  }
  const setupS = (Date.now() - setupStart) / 1000;
  const addMs = logLines(node)
    .filter((l) => l.msg === 'CNI request' && (l.cni as { command?: string } | undefined)?.command === 'ADD' && typeof l.ms === 'number')
    .map((l) => l.ms!);
  const addP50 = (xs: number[]) => quantile([...xs].sort((x, y) => x - y), 0.5).toFixed(1);
  notes.push(`propagation: ${pods.size} pods (distinct labels, so ${pods.size} identities) created via sluice-cni in ${setupS.toFixed(1)} s${pods.size < PROP_PODS ? ` (stopped at the ${SETUP_BUDGET_MS / 1000} s setup budget)` : ''}.`);
  if (addMs.length >= 200) notes.push(`propagation: CNI ADD (agent side) p50 ${addP50(addMs.slice(0, 100))} ms for the first 100 pods, ${addP50(addMs.slice(-100))} ms for the last 100 (batches of ${batch} in parallel).`);

  const client = pods.get('prop-client')!;
  const server = pods.get('prop-server')!;
  await startServer(cleanup, server.ns, 8080, 1);
  let from = logLines(node).length;
  node.writeManifest('10-flip.yaml', flipYaml(false));
  from = await waitApplied(node, ['10-flip.yaml'], from);

  const prober = new Prober(cleanup, client.ns, server.ip, 8080, { intervalUs: 1000, timeoutMs: 50, sportFirst: SPORT_FIRST, sportLast: SPORT_LAST });
  const settle = 50; // ≥ 50 ms of attempts with the new verdict
  // Start from a settled "deny".
  await waitFor('initial deny', () => enforcedAt(prober.samples, 0n, false, settle, process.hrtime.bigint() - 60_000_000n) !== undefined, 10_000);
  /** FLIPS edits of 10-flip.yaml, alternating allow/deny, from a settled deny; ends on a deny (FLIPS even). */
  const flips = async (timeoutMs: number) => {
    const lat: number[] = [];
    const agentMs: number[] = [];
    let failed: string | undefined;
    for (let k = 0; k < FLIPS && !failed; k++) {
      const allow = k % 2 === 0;
      await sleep(30 + Math.random() * 30); // desynchronise from the probe's and watcher's rhythm
      const logFrom = logLines(node).length;
      const t = process.hrtime.bigint();
      node.writeManifest('10-flip.yaml', flipYaml(allow));
      try {
        const e = await waitFor(`flip ${k} (${allow ? 'allow' : 'deny'})`, () => enforcedAt(prober.samples, t, allow, settle, process.hrtime.bigint() - 60_000_000n), timeoutMs);
        lat.push(Number(e - t) / 1e6);
        const prog = logLines(node).slice(logFrom).filter((l) => l.msg === 'policy programmed');
        for (const p of prog) if (typeof p.ms === 'number') agentMs.push(p.ms);
      } catch (err) {
        failed = (err as Error).message;
      }
    }
    return { lat, agentMs, failed };
  };
  const plain = await flips(5_000);

  // The same edits with the 10,000 rules also selecting the server (none of
  // them lets the client reach 8080: the flip alone decides it).
  let ruled: Awaited<ReturnType<typeof flips>> | undefined;
  let rulesFailed: string | undefined;
  if (PROP_RULES && !plain.failed) {
    try {
      const rules = tenThousandRules();
      const logFrom = logLines(node).length;
      const t0 = Date.now();
      writeRules(node, rules, 'prop');
      const past = await waitApplied(node, RULE_FILES, logFrom, 150_000);
      // The sync that programs the last file comes after its "manifest applied".
      const last = await waitFor('the 10k rules programmed', () => logLines(node).slice(past).find((l) => l.msg === 'policy programmed'), 60_000);
      await sleep(500);
      if (enforcedAt(prober.samples, 0n, false, settle, process.hrtime.bigint()) === undefined) throw new Error('the server is not denied to the client with the 10k rules in force');
      notes.push(`propagation with rules: ${RULES} rules in 4 files (the datapath scenario's, in namespace prop) selecting the server, programmed ${((Date.now() - t0) / 1000).toFixed(1)} s after the write (${last.entries ?? '?'} policy entries in force); then the same ${FLIPS} edits.`);
      ruled = await flips(20_000); // an edit has taken over 2 s here
    } catch (err) {
      rulesFailed = (err as Error).message;
    }
  }
  prober.stop();
  const probeErrors = prober.samples.filter((x) => x.result === 'error' || x.result === 'refused').length;
  notes.push(
    `propagation: a connect attempt every 1 ms from a client pod to the server pod (50 ms timeout = denied), ${FLIPS} edits of one NetworkPolicy file alternating allow/deny; ` +
      `latency = write → start of the first attempt after which every attempt (≥ ${settle}) saw the new verdict; includes the standalone watcher's 20 ms debounce` +
      `${probeErrors ? `; ${probeErrors} probe attempts errored` : ''}.`,
  );

  const row = (scenario: string, samples: number[], unit: string, withTarget: boolean, failed?: string): Row => {
    const s = [...samples].sort((x, y) => x - y);
    const p99 = quantile(s, 0.99);
    return {
      scenario,
      samples: s.length,
      results: {
        'p50 ms': quantile(s, 0.5).toFixed(1),
        'p99 ms': p99.toFixed(1),
        'max ms': (s.at(-1) ?? NaN).toFixed(1),
        target: withTarget ? `p99 <100 ms ${p99 < 100 ? '✓' : '✗'}` : '',
      },
      vsBaseline: unit,
      failed: withTarget ? failed : undefined,
    };
  };
  const podsLabel = pods.size >= 1000 ? `${pods.size / 1000}k` : String(pods.size);
  const rows = [
    row(`propagation, edit → enforced, ${podsLabel} pods`, plain.lat, '', true, plain.failed),
    row(`agent compile+program (log ms), ${podsLabel} pods`, plain.agentMs, '', false),
  ];
  if (PROP_RULES) {
    const r = row(`propagation, edit → enforced, ${podsLabel} pods + ${RULES / 1000}k rules`, ruled?.lat ?? [], '', true, ruled?.failed ?? rulesFailed ?? (plain.failed ? 'not run: the first round failed' : undefined));
    if (ruled && !r.failed) r.vsBaseline = `${ratio(quantile([...ruled.lat].sort((x, y) => x - y), 0.99), quantile([...plain.lat].sort((x, y) => x - y), 0.99))} p99 of no rules`;
    rows.push(r, row(`agent compile+program (log ms), ${podsLabel} pods + ${RULES / 1000}k rules`, ruled?.agentMs ?? [], '', false));
  }
  return rows;
}

// ---------------------------------------------------------------------- main

async function main(): Promise<void> {
  const header = `node ${process.version}, kernel ${release()}, ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'})`;
  buildNetload();
  sweepStaleBenchNetns();
  for (const tool of ['iperf3', 'iptables-legacy-restore']) {
    if (!sh('sh', ['-c', `command -v ${tool} || true`]).trim()) throw new Error(`${tool} missing: make deps (APT_TEST) installs it`);
  }
  if (ONLY && !['datapath', 'twonode', 'propagation'].includes(ONLY)) throw new Error(`BENCH_DATAPATH_ONLY=${ONLY}: not datapath, twonode or propagation`);
  if (ONLY !== 'propagation') {
    notes.push(
      `conn/s: ${WORKERS} client threads, each connection = bind + connect + 1-byte request/response + RST close; 5-tuples never repeat within a scenario ` +
        '(so Sluice\'s conntrack never waives a policy check); scenarios interleaved, order reversed every other repetition; warm-up 1 s each. ' +
        'CPU µs/conn: the whole machine\'s busy CPU time (/proc/stat: every CPU, not idle, iowait or steal) during a conn/s run, per connection made: ' +
        'client, server, both paths and the agents; what a connection costs, where conn/s is also bound by wake-ups (the CPUs are not saturated).',
    );
  }
  /** One part of the bench (all of them unless BENCH_DATAPATH_ONLY names one); its nodes are freed before the next part's. */
  const part = async (name: string, failedAs: string, run: () => Promise<Row[]>): Promise<Row[]> => {
    if (ONLY && ONLY !== name) return [];
    try {
      return await run();
    } catch (err) {
      return [{ scenario: failedAs, samples: 0, results: {}, vsBaseline: '', failed: (err as Error).message.slice(0, 160) }];
    } finally {
      cleanup.run();
    }
  };
  const oneNode = await part('datapath', 'datapath scenarios', runDatapath);
  const twoNodes = await part('twonode', 'two-node scenarios', runTwoNode);
  const propagation = await part('propagation', 'propagation', runPropagation);
  const runs = `median of ${REPS} interleaved runs (conn/s: ${CONN_MS / 1000} s, ${WORKERS} workers; iperf3: ${IPERF_S} s, 1 stream)`;
  process.stdout.write(`${header}\n\n`);
  if (oneNode.length || propagation.length) process.stdout.write(formatTable(`Datapath: pod → pod on one node, ${runs}; policy propagation`, [...oneNode, ...propagation]));
  if (twoNodes.length) process.stdout.write(`${oneNode.length || propagation.length ? '\n' : ''}${formatTable(`Datapath: pod → pod on two nodes (direct routing), ${runs}`, twoNodes)}`);
  process.stdout.write(`\n${notes.map((n) => `- ${n}`).join('\n')}\n`);
  process.exitCode = [...oneNode, ...twoNodes, ...propagation].some((r) => r.failed) ? 1 : 0;
}

try {
  await main();
} finally {
  cleanup.run();
}
