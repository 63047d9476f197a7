// Control-plane cost with real policy in force, side by side in one run:
//
//   CNI ADD     sequential ADDs, interleaved (order rotated per iteration):
//               the reference bridge+host-local plugin (baseline), sluice-cni
//               on an empty node, and sluice-cni on a node with 10,000
//               NetworkPolicy rules and BENCH_PODS (500) pods in force. The
//               pod added is a client, of an identity that already exists
//               (what a Deployment scaling up does). Then BENCH_NEW (5) ADDs
//               of pods of new identities the rules select as peers (a new
//               Deployment of clients: the servers' policy changes).
//   bulk load   10,000 rules written in 4 files at once → all enforced,
//               probed for real: the server pod is isolated (a port no rule
//               allows times out) and the last file's allow rule lets the
//               client in.
//
// Order on the loaded node: the pods first (cheap while no rule exists),
// then the bulk load (timed), then the ADDs. Bounded: pod creation stops at
// SETUP_BUDGET_MS, the loaded ADDs at ADD_BUDGET_MS (so today's multi-second
// ADDs still finish in a few minutes); what was reached is in the notes.
//
// Every plugin runs as `nsenter --net=<its node netns> <plugin>` (the same
// wrapper cost in every row), cniVersion 1.0.0, IPv4, a fresh pod netns per
// ADD made before the timer starts. BENCH_RUNS, BENCH_PODS, BENCH_SETUP_MS and
// BENCH_ADD_MS size it; BENCH_LOG_DIR keeps the agents' logs.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cleanup, cniAsync, podArgs, SLUICE_CNI, TestNode } from '../../test/helpers/agent.js';
import type { Netns } from '../../test/helpers/netns.js';
import { cleanUpOnSignals } from '../lib/bench-netns.js';
import { call } from '../../src/api/index.js';
import { buildNetload, check, startServer } from '../lib/load.js';
import { formatTable, ratio, stats, type Row } from '../lib/table.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 20);
/** ADDs of a pod of a new identity that the rules select as a peer. */
const NEW_RUNS = Number(process.env.BENCH_NEW ?? 5);
const PODS = Number(process.env.BENCH_PODS ?? 500);
const RULES = 10_000;
const SETUP_BUDGET_MS = Number(process.env.BENCH_SETUP_MS ?? 120_000);
const ADD_BUDGET_MS = Number(process.env.BENCH_ADD_MS ?? 150_000);
const LOAD_TIMEOUT_MS = 180_000;
const CNI_DIR = '/usr/lib/cni';
const NS = 'cp';
/** The one port the last rule allows from the clients; DENIED is allowed by none. */
const ALLOWED = 7001;
const DENIED = 7002;
const CALL_TIMEOUT_MS = 60_000;

const cleanup = new Cleanup();
cleanUpOnSignals(cleanup);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fmt = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : '-');

/**
 * Asks an agent a small question (its policies' conditions) over its
 * socket, one call at a time every ~5 ms, until stopped: how long each
 * answer took is how long the agent's event loop (the DNS proxy's thread)
 * was held. Returns the stop function, which resolves with the latencies.
 */
function pingAgent(node: TestNode): () => Promise<number[]> {
  const out: number[] = [];
  let stop = false;
  const loop = (async () => {
    for (let i = 0; !stop && i < 100_000; i++) {
      const t = performance.now();
      await call(node.runDir, 'policies');
      out.push(performance.now() - t);
      await sleep(5);
    }
  })();
  return async () => {
    stop = true;
    await loop;
    return out;
  };
}

// ------------------------------------------------------------------ manifests

function namespaceYaml(): string {
  return `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${NS}\n  labels: {team: bench}\n---\n`;
}

function podYaml(name: string, labels: Record<string, string>): string {
  const l = Object.entries(labels)
    .map(([k, v]) => `${k}: ${v}`)
    .join(', ');
  return `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${name}\n  namespace: ${NS}\n  labels: {${l}}\n---\n`;
}

/**
 * 10,000 ingress rules for the servers, in 4 policies: 6,000 ipBlock /32s,
 * 2,000 ipBlock /24s with 10-port ranges, 1,999 label peers (the clients, on
 * ports nobody listens on) and, last in the last file, the one rule that
 * allows the clients on ALLOWED. The CIDRs are data only.
 */
function ruleLines(): string[][] {
  const rules: string[] = [];
  for (let i = 0; i < 6000; i++) rules.push(`  - from: [{ipBlock: {cidr: 10.100.${i >> 8}.${i & 255}/32}}]\n    ports: [{protocol: ${i % 10 === 9 ? 'UDP' : 'TCP'}, port: ${8000 + (i % 500)}}]`);
  for (let j = 0; j < 2000; j++) {
    const port = 9000 + (j % 100) * 10;
    rules.push(`  - from: [{ipBlock: {cidr: 10.${120 + (j >> 8)}.${j & 255}.0/24}}]\n    ports: [{protocol: TCP, port: ${port}, endPort: ${port + 9}}]`);
  }
  for (let j = 0; j < RULES - 8001; j++) {
    const peer = j % 2 ? '{namespaceSelector: {matchLabels: {team: bench}}, podSelector: {matchLabels: {role: client}}}' : '{podSelector: {matchLabels: {role: client}}}';
    rules.push(`  - from: [${peer}]\n    ports: [{protocol: TCP, port: ${20000 + j}}]`);
  }
  rules.push(`  - from: [{podSelector: {matchLabels: {role: client}}}]\n    ports: [{protocol: TCP, port: ${ALLOWED}}]`);
  if (rules.length !== RULES) throw new Error(`built ${rules.length} rules`);
  return [0, 1, 2, 3].map((k) => rules.slice(k * 2500, (k + 1) * 2500));
}

function policyYaml(name: string, rules: readonly string[]): string {
  return [
    'apiVersion: networking.k8s.io/v1',
    'kind: NetworkPolicy',
    'metadata:',
    `  name: ${name}`,
    `  namespace: ${NS}`,
    'spec:',
    '  podSelector: {matchLabels: {role: server}}',
    '  policyTypes: [Ingress]',
    '  ingress:',
    ...rules,
    '',
  ].join('\n');
}

// ------------------------------------------------------------------ CNI calls

interface Plugin {
  label: string;
  binary: string;
  conf: Record<string, unknown>;
  nodeNs: string;
}

interface Call {
  ms: number;
  status: number;
  stdout: string;
  stderr: string;
}

function cniEnv(command: string, id: string, netns: string, pod: string): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: command,
    CNI_CONTAINERID: id,
    CNI_NETNS: netns,
    CNI_IFNAME: 'eth0',
    CNI_ARGS: podArgs(NS, pod),
    CNI_PATH: CNI_DIR,
  };
}

function callSync(p: Plugin, command: string, id: string, netns: string, pod = id): Call {
  const start = process.hrtime.bigint();
  const r = spawnSync('nsenter', [`--net=${p.nodeNs}`, p.binary], { input: JSON.stringify(p.conf), env: cniEnv(command, id, netns, pod), encoding: 'utf8', timeout: CALL_TIMEOUT_MS });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  return { ms, status: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? r.error?.message ?? '' };
}

function firstIp(c: { stdout: string }): string | undefined {
  try {
    return (JSON.parse(c.stdout) as { ips?: Array<{ address: string }> }).ips?.[0]?.address?.split('/')[0];
  } catch {
    return undefined;
  }
}

function describe(c: Call): string {
  return `exit ${c.status}: ${(c.stdout.trim() || c.stderr.trim()).replace(/\s+/g, ' ')}`.slice(0, 160);
}

interface LogLine {
  msg?: string;
  ms?: number;
  compileMs?: number;
  writeMs?: number;
  file?: string;
  entries?: number;
  cni?: { command?: string; containerId?: string };
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

async function waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function waitApplied(node: TestNode, files: string[], timeoutMs = 60_000): Promise<void> {
  await waitFor(
    `${files.join(', ')} applied`,
    () => {
      const lines = logLines(node);
      const bad = lines.find((l) => l.msg?.startsWith('manifest rejected'));
      if (bad) throw new Error(`manifest rejected: ${JSON.stringify(bad)}`);
      return files.every((f) => lines.some((l) => l.msg === 'manifest applied' && l.file === f));
    },
    timeoutMs,
  );
}

// ------------------------------------------------------------------ run

const header = `node ${process.version}, kernel ${release()}, ${cpus().length} CPUs`;
const rows: Row[] = [];
const notes: string[] = [];
let failures = 0;

try {
  buildNetload();
  const empty = new TestNode(cleanup, { podCidr: '10.231.0.0/16', nodeIp: '10.229.0.1/32' });
  const loaded = new TestNode(cleanup, { podCidr: '10.232.0.0/16', nodeIp: '10.229.0.2/32' });
  await empty.start();
  await loaded.start();
  // BENCH_LOG_DIR=<dir>: keep both agents' logs (the node dirs go with the cleanup).
  const logDir = process.env.BENCH_LOG_DIR;
  if (logDir) cleanup.add(() => [empty, loaded].forEach((node, i) => copyFileSync(node.logFile, join(logDir, `control-plane-${i ? 'loaded' : 'empty'}.log`))));
  const tmp = mkdtempSync(join(tmpdir(), 'slt-cpbench-'));
  cleanup.add(() => rmSync(tmp, { recursive: true, force: true }));

  const addNames = Array.from({ length: RUNS + 2 }, (_, i) => `add-${i}`);
  const newNames = Array.from({ length: NEW_RUNS }, (_, i) => `new-${i}`);
  const podNames = ['server-0', 'server-1', 'client-probe', ...Array.from({ length: Math.max(0, PODS - 3) }, (_, i) => `client-${i}`)];
  const labelsOf = (name: string): Record<string, string> =>
    name.startsWith('server') ? { role: 'server' } : name.startsWith('new-') ? { role: 'client', group: name } : name.startsWith('add-') ? { role: 'client', group: 'g0' } : { role: 'client', group: `g${Number(name.split('-')[1] ?? 0) % 10}` };
  for (const node of [empty, loaded]) {
    node.writeManifest('00-namespace.yaml', namespaceYaml());
    node.writeManifest('01-pods.yaml', [...podNames, ...addNames, ...newNames].map((n) => podYaml(n, labelsOf(n))).join(''));
    await waitApplied(node, ['00-namespace.yaml', '01-pods.yaml']);
  }

  // ---------------------------------------------------------- pods in force
  const setupStart = Date.now();
  const pods = new Map<string, { ns: Netns; ip: string }>();
  const batch = 8;
  for (let i = 0; i < podNames.length && Date.now() - setupStart < SETUP_BUDGET_MS; ) {
    const chunk = podNames.slice(i, i + batch);
    i += chunk.length;
    const made = await Promise.all(
      chunk.map(async (name) => {
        const ns = cleanup.netns('cp');
        const r = await cniAsync({ command: 'ADD', containerId: `pod-${name}`, netns: ns.path, ifname: 'eth0', args: podArgs(NS, name), config: loaded.conf('1.0.0') });
        const ip = firstIp(r);
        if (r.status !== 0 || !ip) throw new Error(`CNI ADD ${name} failed: ${r.stdout}`);
        return [name, { ns, ip }] as const;
      }),
    );
    for (const [n, p] of made) pods.set(n, p);
  }
  notes.push(`loaded node: ${pods.size} pods in force (2 servers of one identity, ${pods.size - 2} clients in 10 identities), made in ${fmt((Date.now() - setupStart) / 1000)} s before any rule existed${pods.size < podNames.length ? ` (stopped at the ${SETUP_BUDGET_MS / 1000} s budget)` : ''}.`);

  // ---------------------------------------------------------- bulk load
  const server = pods.get('server-0')!;
  const client = pods.get('client-probe')!;
  await startServer(cleanup, server.ns, ALLOWED, 2);
  let sport = 40000;
  const probe = (port: number) => check(client.ns, server.ip, port, sport++, 200);
  const before = [await probe(ALLOWED), await probe(DENIED)];
  if (before.join() !== 'ok,ok') throw new Error(`before the rules the client should reach both ports: ${before.join(', ')}`);
  const files = [0, 1, 2, 3].map((k) => `np-${k}.yaml`);
  const texts = ruleLines().map((r, k) => policyYaml(`rules-${k}`, r));
  const loadFrom = logLines(loaded).filter((l) => l.msg === 'policy programmed').length;
  const pings = [pingAgent(empty), pingAgent(loaded)];
  const t0 = process.hrtime.bigint();
  files.forEach((f, k) => loaded.writeManifest(f, texts[k]!));
  // Enforced: the server is isolated (a port nothing allows times out) and,
  // probed after that, the allow rule (last rule of the last file) lets the
  // client in. Isolation, once there, stays (the files only add rules), and
  // until the last file is programmed the allowed port times out too; so the
  // first round where both hold, in this order, is when all four are in
  // force. (The other order would take an open port seen before the first
  // file isolated the server for the last file's rule.)
  await waitFor(
    '10,000 rules enforced',
    async () => (await probe(DENIED)) === 'timeout' && (await probe(ALLOWED)) === 'ok',
    LOAD_TIMEOUT_MS,
  );
  const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const [idlePings, loadPings] = await Promise.all(pings.map((stop) => stop()));
  await waitApplied(loaded, files);
  // The agent's log lags what is in force by a little: wait (bounded) for
  // the sync that programmed the last file to be written down.
  const programmedLines = () => logLines(loaded).filter((l) => l.msg === 'policy programmed');
  const settled = Date.now() + 5000;
  for (let seen = -1; Date.now() < settled && programmedLines().length !== seen; await sleep(300)) seen = programmedLines().length;
  const programmed = programmedLines();
  const loadSyncs = programmed.slice(loadFrom);
  rows.push({
    scenario: `bulk load: ${RULES / 1000}k rules in 4 files → enforced, ${pods.size} pods`,
    samples: 1,
    results: { 'load ms': fmt(loadMs, 0) },
    vsBaseline: loadMs < 2000 ? 'target <2 s: met' : 'target <2 s: MISSED',
  });
  // The event loop the DNS proxy needs, while the rules are compiled and written.
  const idle = stats(idlePings!);
  const busy = stats(loadPings!);
  rows.push({ scenario: 'agent API answer, empty node, meanwhile (baseline)', baseline: true, samples: idle.n, results: { 'p50 ms': fmt(idle.median), 'p95 ms': fmt(idle.p95), 'max ms': fmt(idle.max) }, vsBaseline: '' });
  rows.push({
    scenario: 'agent API answer during the bulk load',
    samples: busy.n,
    results: { 'p50 ms': fmt(busy.median), 'p95 ms': fmt(busy.p95), 'max ms': fmt(busy.max) },
    vsBaseline: `${ratio(busy.max, idle.max)} max`,
  });
  notes.push(`bulk load: probed from client-probe to server-0 every ~${200 + 20} ms at most (a timeout probe costs 200 ms); the agent programmed the rules in ${loadSyncs.length} sync${loadSyncs.length === 1 ? '' : 's'} (log "policy programmed": ${loadSyncs.map((l) => `${l.ms} ms (compile ${l.compileMs ?? '?'}, write ${l.writeMs ?? '?'})`).join(', ')}), the last leaving ${loadSyncs.at(-1)?.entries ?? '?'} policy entries in force across the endpoints.`);

  // ---------------------------------------------------------- sequential ADDs
  const plugins = {
    bridge: {
      label: 'bridge+host-local',
      binary: join(CNI_DIR, 'bridge'),
      conf: { cniVersion: '1.0.0', name: 'sltcpbench', type: 'bridge', bridge: 'sltcpbr0', isGateway: true, ipMasq: false, ipam: { type: 'host-local', subnet: '10.233.0.0/16', dataDir: join(tmp, 'hl') } },
      nodeNs: loaded.ns.path,
    },
    empty: { label: 'sluice-cni ADD, empty node', binary: SLUICE_CNI, conf: empty.conf('1.0.0'), nodeNs: empty.ns.path },
    loaded: { label: `sluice-cni ADD, ${RULES / 1000}k rules + ${pods.size} pods`, binary: SLUICE_CNI, conf: loaded.conf('1.0.0'), nodeNs: loaded.ns.path },
  } satisfies Record<string, Plugin>;
  const order = ['bridge', 'empty', 'loaded'] as const;
  const ms = new Map<string, number[]>(order.map((k) => [k, []]));
  const failed = new Map<string, string>();
  // Warm-up: one untimed ADD+DEL each (bridge creation, page cache, JIT).
  for (const k of order) {
    const ns = cleanup.netns('cw');
    const a = callSync(plugins[k], 'ADD', addNames.at(-1)!, ns.path);
    if (a.status !== 0) throw new Error(`${plugins[k].label} warm-up ADD failed: ${describe(a)}`);
    callSync(plugins[k], 'DEL', addNames.at(-1)!, ns.path);
  }
  const addStart = Date.now();
  let runs = 0;
  for (let i = 0; i < RUNS && Date.now() - addStart < ADD_BUDGET_MS; i++, runs++) {
    for (let j = 0; j < order.length; j++) {
      const k = order[(i + j) % order.length]!;
      if (failed.has(k)) continue;
      const ns = cleanup.netns('ca');
      const c = callSync(plugins[k], 'ADD', addNames[i]!, ns.path);
      if (c.status !== 0 || !firstIp(c)) failed.set(k, describe(c));
      else ms.get(k)!.push(c.ms);
    }
  }
  const base = stats(ms.get('bridge')!);
  for (const k of order) {
    const st = stats(ms.get(k)!);
    const r = st.median / base.median;
    rows.push({
      scenario: k === 'bridge' ? `${plugins[k].label} ADD` : plugins[k].label,
      baseline: k === 'bridge',
      samples: st.n,
      results: { 'p50 ms': fmt(st.median), 'p95 ms': fmt(st.p95), 'max ms': fmt(st.max) },
      vsBaseline: k === 'bridge' ? '' : `${ratio(st.median, base.median)} p50${k === 'loaded' ? (r <= 2 ? ' (target ≤2x: met)' : ' (target ≤2x: MISSED)') : ''}`,
      failed: failed.get(k),
    });
  }
  // A pod of a new identity the rules select as a peer (a new Deployment of
  // clients): the servers' policy changes, so it is recompiled and written
  // as a new generation. Not interleaved; no target, shown for what it costs.
  const fresh: number[] = [];
  for (const name of newNames) {
    const c = callSync(plugins.loaded, 'ADD', name, cleanup.netns('cn').path);
    if (c.status !== 0 || !firstIp(c)) {
      failed.set('new', describe(c));
      break;
    }
    fresh.push(c.ms);
  }
  const nst = stats(fresh);
  rows.push({
    scenario: `sluice-cni ADD, new peer identity, ${RULES / 1000}k rules`,
    samples: nst.n,
    results: { 'p50 ms': fmt(nst.median), 'p95 ms': fmt(nst.p95), 'max ms': fmt(nst.max) },
    vsBaseline: `${ratio(nst.median, base.median)} p50 (no target)`,
    failed: failed.get('new'),
  });
  await sleep(300); // the agent's log lags a little
  const newSyncs = logLines(loaded)
    .filter((l) => l.msg === 'policy programmed')
    .slice(-fresh.length);
  notes.push(`ADD of a new peer identity: the sync behind each recompiles the servers' identity and writes a new generation (log "policy programmed": ${newSyncs.map((l) => `${l.ms} ms`).join(', ')}).`);
  const agentAdd = logLines(loaded)
    .filter((l) => l.msg === 'CNI request' && l.cni?.command === 'ADD' && l.cni.containerId?.startsWith('add-') && typeof l.ms === 'number')
    .map((l) => l.ms!);
  notes.push(
    `ADD: ${runs} interleaved iterations${runs < RUNS ? ` (stopped at the ${ADD_BUDGET_MS / 1000} s budget)` : ''}; the pod added on the loaded node is a client of an existing identity. ` +
      `Agent-side handler time on the loaded node: p50 ${fmt(stats(agentAdd).median)} ms, max ${fmt(stats(agentAdd).max)} ms.`,
  );
} catch (err) {
  failures++;
  rows.push({ scenario: 'benchmark', samples: 0, results: {}, vsBaseline: '', failed: (err as Error).message.replace(/\s+/g, ' ').slice(0, 200) });
} finally {
  cleanup.run();
}

process.stdout.write(`${header}\n\n`);
process.stdout.write(formatTable('Control plane: CNI ADD with 10k rules in force, bulk load → enforced', rows));
process.stdout.write(`\n${notes.map((n) => `- ${n}`).join('\n')}\n`);
process.exitCode = failures > 0 ? 1 : 0;
