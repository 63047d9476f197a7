// Agent memory at scale, side by side in one run on one agent:
//
//   idle      the agent started, its manifests applied, no pod — the baseline;
//   1k pods   BENCH_PODS (1,000) endpoints made through sluice-cni, nothing
//             learned yet;
//   learned   the same agent after its DNS proxy learned BENCH_NAMES (20,000)
//             names × 5 addresses = 100,000 FQDN addresses, for real: one of
//             the pods, selected by an FQDNPolicy matching every name, asks
//             nsd through the transparent proxy (dnsperf, closed loop) until
//             the agent reports every address learned.
//
// Target (issue 13): RSS ≤ 150 MB with 1,000 endpoints and 100,000 learned
// addresses. Each row reads the agent's RSS and peak (VmHWM) from /proc, and
// its V8 heap after a full GC: a --require preload (NODE_OPTIONS, bench only)
// makes the agent write process.memoryUsage() to a file on SIGUSR2, after a
// forced GC (the RSS column is read before it, so the GC cannot flatter it).
//
// Topology as in bench/dns: nsd in a "world" netns on SERVER, the node joined
// to it by a veth. Pods have distinct labels (1,000 identities, the costlier
// case for the endpoint records). Env: BENCH_PODS, BENCH_NAMES, BENCH_LOG_DIR,
// BENCH_MEM_NODE_OPTIONS (extra node flags for the agent, e.g. to try V8 heap sizes).
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_FLAGS } from '../../src/agent/flags.js';
import { cniAsync, podArgs, SLUICE, TestNode } from '../../test/helpers/agent.js';
import { dig, startAuthServer } from '../../test/helpers/dns.js';
import { sh, uniqueName, type Netns } from '../../test/helpers/netns.js';
import { BENCH_PREFIX, BenchCleanup, sweepStaleBenchNetns } from '../lib/bench-netns.js';
import { usableCpus } from '../lib/pin.js';
import { hwmOf, rssOf } from '../lib/procmem.js';
import { formatTable, type Row } from '../lib/table.js';
import { dnsperf } from '../dns/tools.js';
import { SETS, writeZone, ZONE } from '../dns/zone.js';

const PODS = Number(process.env.BENCH_PODS ?? 1000);
const NAMES = Number(process.env.BENCH_NAMES ?? 20_000);
const IPS_PER_NAME = 5;
const ADDRESSES = NAMES * IPS_PER_NAME;
const SETUP_BUDGET_MS = 120_000;
const LEARN_BUDGET_MS = 120_000;
const TARGET_BYTES = 150e6; // "≤ 150 MB"
const SERVER = '198.19.0.53';
const POD_CIDR = '10.76.0.0/21';
const MB = 1e6;
const MiB = 1024 * 1024;

const cleanup = new BenchCleanup();
const notes: string[] = [];
const log = (msg: string) => process.stderr.write(`[memory] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    cleanup.run();
    process.exit(130);
  });
}

async function waitFor<T>(what: string, fn: () => T | undefined | false, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * The preload: on SIGUSR2, a full GC (--expose-gc switched on at run time;
 * gc() taken from a fresh context) and then process.memoryUsage() and the
 * heap statistics into <dir>/mem-<pid>-<n>.json.
 */
function memoryPreload(dir: string): string {
  const file = join(dir, 'memory-preload.cjs');
  writeFileSync(
    file,
    `const v8 = require('node:v8');
const fs = require('node:fs');
v8.setFlagsFromString('--expose-gc');
const gc = require('node:vm').runInNewContext('gc');
let n = 0;
process.on('SIGUSR2', () => {
  gc();
  const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((x) => [x.space_name, { size: x.space_size, used: x.space_used_size }]));
  const out = { ...process.memoryUsage(), heap: v8.getHeapStatistics(), spaces };
  fs.writeFileSync(${JSON.stringify(dir)} + '/mem-' + process.pid + '-' + n++ + '.json', JSON.stringify(out));
});
`,
  );
  return file;
}

interface Sample {
  rss: number;
  hwm: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  /** V8 heap space → [committed, used] bytes. */
  spaces: Record<string, [number, number]>;
}

let dumps = 0;
async function sample(pid: number, dir: string): Promise<Sample> {
  const rss = rssOf(pid)?.[0] ?? NaN;
  const hwm = hwmOf(pid);
  const file = join(dir, `mem-${pid}-${dumps++}.json`);
  process.kill(pid, 'SIGUSR2');
  await waitFor(`memory dump ${file}`, () => existsSync(file), 10_000);
  await sleep(50); // written with one writeFileSync: give it a moment to be complete
  const m = JSON.parse(readFileSync(file, 'utf8')) as { heapUsed: number; heapTotal: number; external: number; spaces: Record<string, { size: number; used: number }> };
  const spaces = Object.fromEntries(Object.entries(m.spaces).map(([k, v]) => [k, [v.size, v.used] as [number, number]]));
  return { rss, hwm, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, spaces };
}

interface FqdnStatus {
  names: number;
  entries: number;
}

function fqdnStatus(node: TestNode): FqdnStatus {
  const r = spawnSync(process.execPath, [SLUICE, 'status', '-o', 'json', '--run-dir', node.runDir], { encoding: 'utf8' });
  const s = JSON.parse(r.stdout) as { fqdn?: FqdnStatus };
  if (!s.fqdn) throw new Error(`sluice status has no fqdn: ${r.stdout.slice(0, 200)}`);
  return s.fqdn;
}

/** A veth from the node to W: the node reaches SERVER through it, W reaches the pods back. */
function wire(world: Netns, node: Netns): void {
  const a = uniqueName('wn', BENCH_PREFIX);
  const b = uniqueName('ww', BENCH_PREFIX);
  sh('ip', ['-n', node.name, 'link', 'add', a, 'type', 'veth', 'peer', 'name', b, 'netns', world.name]);
  sh('ip', ['-n', node.name, 'addr', 'add', '198.18.1.1/24', 'dev', a]);
  sh('ip', ['-n', node.name, 'link', 'set', a, 'up']);
  sh('ip', ['-n', world.name, 'addr', 'add', '198.18.1.2/24', 'dev', b]);
  sh('ip', ['-n', world.name, 'link', 'set', b, 'up']);
  sh('ip', ['-n', node.name, 'route', 'add', `${SERVER}/32`, 'via', '198.18.1.2']);
  sh('ip', ['-n', world.name, 'route', 'add', POD_CIDR, 'via', '198.18.1.1']);
}

const podName = (i: number) => (i === 0 ? 'dnsperf' : `m${String(i).padStart(4, '0')}`);

function manifest(): string {
  const pods = Array.from({ length: PODS }, (_, i) => `apiVersion: v1\nkind: Pod\nmetadata: { name: ${podName(i)}, namespace: bench, labels: { app: ${podName(i)}, group: g${i % 10} } }\n---\n`);
  return `apiVersion: v1
kind: Namespace
metadata: { name: bench }
---
${pods.join('')}apiVersion: sluice.dev/v1alpha1
kind: FQDNPolicy
metadata: { name: bench-names, namespace: bench }
spec:
  podSelector: { matchLabels: { app: dnsperf } }
  egress:
  - toFQDNs:
    - matchPattern: "*.${SETS.preload}.${ZONE}"
    ports: [ { port: 443, protocol: TCP } ]
`;
}

const header = `node ${process.version}, kernel ${release()}, ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'})`;
const rows: Row[] = [];
const started = Date.now();

try {
  sweepStaleBenchNetns();
  for (const tool of ['dnsperf', 'nsd', 'dig']) {
    if (!sh('sh', ['-c', `command -v ${tool} || true`]).trim()) throw new Error(`${tool} missing: make deps (APT_TEST) installs it`);
  }
  const maxIps = Number(AGENT_FLAGS.find((f) => f.name === 'fqdn-max-ips-per-name')!.default);
  const maxEntries = Number(AGENT_FLAGS.find((f) => f.name === 'max-fqdn-entries')!.default);
  if (IPS_PER_NAME > maxIps || ADDRESSES > maxEntries * 0.9) throw new Error(`${ADDRESSES} addresses (${IPS_PER_NAME} per name) do not fit the agent's defaults (${maxEntries} entries, ${maxIps} per name)`);
  const dir = mkdtempSync(join(tmpdir(), `${BENCH_PREFIX}-mem-`));
  cleanup.add(() => rmSync(dir, { recursive: true, force: true }));
  const zf = writeZone(dir, { main: 0, preload: NAMES, preloadIps: IPS_PER_NAME, learn: 0 });
  const world = cleanup.netns('w');
  world.exec('ip', ['addr', 'add', `${SERVER}/32`, 'dev', 'lo']);
  await startAuthServer(cleanup, world, { address: SERVER, zones: [zf.zone] });
  log(`nsd up with ${zf.zone.records.length} records`);

  // Defaults everywhere except the per-pod DNS budget (one pod drives the load).
  const node = new TestNode(cleanup, { podCidr: POD_CIDR, nodeIp: '10.76.255.1/32', extraArgs: ['--dns-trusted', SERVER, '--dns-pod-qps', '0', '--dns-pod-max-inflight', '65536'] });
  const logDir = process.env.BENCH_LOG_DIR;
  if (logDir) cleanup.add(() => copyFileSync(node.logFile, join(logDir, 'memory.log')));
  wire(world, node.ns);
  const saved = process.env.NODE_OPTIONS;
  process.env.NODE_OPTIONS = `${saved ?? ''} --require=${memoryPreload(dir)} ${process.env.BENCH_MEM_NODE_OPTIONS ?? ''}`.trim();
  try {
    await node.start();
  } finally {
    if (saved === undefined) delete process.env.NODE_OPTIONS;
    else process.env.NODE_OPTIONS = saved;
  }
  const pid = await waitFor('agent pid', () => {
    for (const l of node.log().split('\n')) if (l.includes('"agent ready"')) return (JSON.parse(l) as { pid: number }).pid;
    return undefined;
  }, 10_000);
  node.writeManifest('bench.yaml', manifest());
  await waitFor('bench.yaml applied', () => {
    const text = node.log();
    if (/manifest rejected/.test(text)) throw new Error(`bench.yaml rejected: ${text.slice(-500)}`);
    return /"manifest applied".*bench\.yaml|bench\.yaml.*"manifest applied"/.test(text);
  }, 60_000);
  await sleep(2000); // let the start-up settle
  const samples: Array<[string, Sample, number]> = [['agent idle: manifests applied, no pod, nothing learned', await sample(pid, dir), 0]];

  // ------------------------------------------------------------ endpoints
  const t0 = Date.now();
  const pods = new Map<string, Netns>();
  const batch = 8;
  for (let i = 0; i < PODS && Date.now() - t0 < SETUP_BUDGET_MS; ) {
    const chunk = Array.from({ length: Math.min(batch, PODS - i) }, (_, k) => podName(i + k));
    i += chunk.length;
    const made = await Promise.all(
      chunk.map(async (name) => {
        const ns = cleanup.netns('mp');
        const r = await cniAsync({ command: 'ADD', containerId: `mem-${name}`, netns: ns.path, ifname: 'eth0', args: podArgs('bench', name), config: node.conf() });
        if (r.status !== 0) throw new Error(`CNI ADD ${name} failed: ${r.stdout}`);
        return [name, ns] as const;
      }),
    );
    for (const [n, ns] of made) pods.set(n, ns);
  }
  notes.push(`${pods.size} pods (distinct labels: ${pods.size} identities) made through sluice-cni in ${((Date.now() - t0) / 1000).toFixed(1)} s, 8 in parallel${pods.size < PODS ? ` (stopped at the ${SETUP_BUDGET_MS / 1000} s budget)` : ''}.`);
  await sleep(2000);
  const podsLabel = pods.size >= 1000 ? `${pods.size / 1000}k` : String(pods.size);
  samples.push([`${podsLabel} endpoints, nothing learned`, await sample(pid, dir), 0]);

  // ------------------------------------------------------------ learning
  const client = pods.get('dnsperf')!;
  await waitFor('a query through the proxy', () => {
    const d = dig(client, SERVER, `p0.${SETS.preload}.${ZONE}`, { timeoutS: 1 });
    return d.status === 'NOERROR' && d.answers.length > 0 && fqdnStatus(node).entries > 0;
  }, 20_000);
  const cpu = String(usableCpus().at(-1));
  const t1 = Date.now();
  let passes = 0;
  while (fqdnStatus(node).entries < ADDRESSES && Date.now() - t1 < LEARN_BUDGET_MS) {
    await dnsperf(client, cpu, { server: SERVER, file: zf.queries.preload, passes: 1, outstanding: 100, clients: 8 });
    passes++;
  }
  const learned = fqdnStatus(node);
  notes.push(
    `learning: ${NAMES} names × ${IPS_PER_NAME} A records from nsd, asked by the pod "dnsperf" (dnsperf -c 8 -q 100, ${passes} pass${passes === 1 ? '' : 'es'} over the names, ${((Date.now() - t1) / 1000).toFixed(1)} s) → ` +
      `agent: ${learned.names} names, ${learned.entries} entries; agent defaults (--max-fqdn-entries ${maxEntries}, --fqdn-max-ips-per-name ${maxIps}).`,
  );
  if (learned.entries < ADDRESSES) throw new Error(`learned only ${learned.entries} of ${ADDRESSES} addresses`);
  await sleep(3000); // journal writes and the snapshot settle
  samples.push([`${podsLabel} endpoints, ${(learned.entries / 1000).toFixed(0)}k learned FQDN addresses`, await sample(pid, dir), learned.entries]);

  const base = samples[0]![1];
  samples.forEach(([scenario, s], i) => {
    const last = i === samples.length - 1;
    rows.push({
      scenario,
      baseline: i === 0,
      samples: 1,
      results: {
        'RSS MiB': (s.rss / MiB).toFixed(0),
        'RSS MB': (s.rss / MB).toFixed(0),
        'peak RSS MiB': (s.hwm / MiB).toFixed(0),
        'heap used MiB (after GC)': (s.heapUsed / MiB).toFixed(1),
        'heap total MiB': (s.heapTotal / MiB).toFixed(0),
        'external MiB': (s.external / MiB).toFixed(1),
      },
      vsBaseline: i === 0 ? '' : `+${((s.rss - base.rss) / MiB).toFixed(0)} MiB RSS, +${((s.heapUsed - base.heapUsed) / MiB).toFixed(1)} MiB heap${last ? `; target ≤150 MB: ${s.rss <= TARGET_BYTES ? 'met' : 'MISSED'}` : ''}`,
    });
  });
  const mib = (n: number) => (n / MiB).toFixed(1);
  for (const [scenario, s] of samples) {
    const sp = Object.entries(s.spaces)
      .filter(([, [size]]) => size >= MiB / 2)
      .map(([k, [size, used]]) => `${k} ${mib(size)} (${mib(used)} used)`)
      .join(', ');
    notes.push(`${scenario}: V8 heap spaces committed MiB: ${sp}; RSS outside the V8 heap ${mib(s.rss - s.heapTotal)} MiB (node itself, code, the addon, malloc).`);
  }
  if (process.env.BENCH_MEM_NODE_OPTIONS) notes.push(`the agent ran with NODE_OPTIONS += "${process.env.BENCH_MEM_NODE_OPTIONS}" (BENCH_MEM_NODE_OPTIONS).`);
  notes.push(
    'RSS from /proc/<pid>/statm of the agent process when the row was taken; peak RSS = VmHWM since the agent started; heap used / total and external from process.memoryUsage() in the agent after a forced full GC ' +
      '(a --require preload in NODE_OPTIONS, bench only). The target is judged on RSS in MB (10^6 bytes).',
  );
} catch (err) {
  rows.push({ scenario: 'memory', samples: 0, results: {}, vsBaseline: '', failed: (err as Error).message.replace(/\s+/g, ' ').slice(0, 200) });
} finally {
  cleanup.run();
}

process.stdout.write(`${header}\n\n`);
process.stdout.write(formatTable(`Agent memory: ${PODS} endpoints and ${ADDRESSES / 1000}k learned FQDN addresses (one agent, rows in order)`, rows));
process.stdout.write(`\n${notes.map((n) => `- ${n}`).join('\n')}\n- total run time ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
process.exitCode = rows.some((r) => r.failed) ? 1 : 0;
