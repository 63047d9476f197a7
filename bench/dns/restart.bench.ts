// DNS through an agent restart (issue 17's measurement): a pod resolving
// names at a steady 200 lookups/s through the transparent proxy while the
// agent is restarted gracefully (SIGTERM, then started again at once) and
// after a crash (SIGKILL, then started again). The client behaves as an
// application's resolver (test/helpers/dnsprobe.py `stream`: each lookup
// tried twice, 1 s apart, as glibc's `options timeout:1 attempts:2`); it
// counts lookups that failed (no answer after both attempts), lookups that
// needed their retry, and the longest time without any answer. The same
// stream with no restart is the baseline. Learned state: the names the agent
// holds before and after each restart.
//
// Env: BENCH_DNS_RESTART_RATE (200), BENCH_DNS_RESTART_SECONDS (12).
import { spawnSync } from 'node:child_process';
import { release, cpus as osCpus } from 'node:os';
import { SLUICE, TestNode, type Netns } from '../../test/helpers/agent.js';
import { probeStream, startAuthServer, type StreamResult, type Zone } from '../../test/helpers/dns.js';
import { makeWorld } from '../../test/helpers/world.js';
import { BenchCleanup, sweepStaleBenchNetns } from '../lib/bench-netns.js';
import { formatTable, type Row } from '../lib/table.js';

const RATE = Number(process.env.BENCH_DNS_RESTART_RATE ?? 200);
const SECONDS = Number(process.env.BENCH_DNS_RESTART_SECONDS ?? 12);
/** When, into the stream, the agent is stopped. */
const STOP_AT_S = 3;
const NAMES = 200;
const SERVER = '198.18.9.53';
const POD_CIDR = '10.79.0.0/24';

const ZONE: Zone = { origin: 'restart.test', defaultTtl: 300, records: Array.from({ length: NAMES }, (_, i) => ({ name: `n${i}`, type: 'A' as const, value: `198.18.10.${(i % 250) + 1}` })) };

const MANIFEST = `apiVersion: v1
kind: Namespace
metadata: { name: rs }
---
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: rs, labels: { app: client } }
---
apiVersion: sluice.dev/v1alpha1
kind: FQDNPolicy
metadata: { name: every-name, namespace: rs }
spec:
  podSelector: { matchLabels: { app: client } }
  egress: [ { toFQDNs: [ { matchPattern: "*.restart.test" } ], ports: [ { port: 443 } ] } ]
`;


const cleanup = new BenchCleanup();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (s: string) => process.stderr.write(`[dns-restart] ${s}\n`);

/** The stream from the pod, for SECONDS; `during` runs meanwhile (the restart), and what it returns is kept. */
async function stream<T>(pod: Netns, during: () => Promise<T>): Promise<{ r: StreamResult; extra: T }> {
  const names = Array.from({ length: NAMES }, (_, i) => `n${i}.restart.test`);
  const streaming = probeStream(pod, { server: SERVER, names, rate: RATE, seconds: SECONDS });
  const extra = await during();
  return { r: await streaming, extra };
}

function learnedNames(node: TestNode): number {
  const r = spawnSync(process.execPath, [SLUICE, 'fqdn', '-o', 'json', '--run-dir', node.runDir], { encoding: 'utf8' });
  return r.status === 0 ? (JSON.parse(r.stdout) as unknown[]).length : -1;
}

async function main(): Promise<void> {
  sweepStaleBenchNetns();
  const node = new TestNode(cleanup, { podCidr: POD_CIDR, nodeIp: '10.79.255.1/32', extraArgs: ['--dns-trusted', SERVER] });
  cleanup.add(() => node.kill('SIGKILL'));
  const world = makeWorld(cleanup, node, { tag: 'rs', node: ['198.19.9.1/24'], world: ['198.19.9.2/24'], owns: ['198.18.9.0/24'], addresses: [SERVER], podCidrs: [POD_CIDR] });
  await startAuthServer(cleanup, world, { address: SERVER, zones: [ZONE] });
  node.writeManifest('rs.yaml', MANIFEST);
  await node.start();
  const pod = node.addPod(cleanup, 'rs', 'client');
  // Warm: every name learned once.
  await stream(pod, async () => undefined);

  const rows: Row[] = [];
  const row = (scenario: string, r: StreamResult, extra: Record<string, string>, baseline = false): Row => ({
    scenario,
    samples: r.lookups,
    results: {
      failed: String(r.failed),
      'answered on retry': String(r.retried),
      'unanswered tries': String(r.unanswered),
      'longest stall ms': r.longest_stall_ms.toFixed(0),
      'stall at s': r.stall_at_s.toFixed(1),
      'p50 ms': r.p50_ms?.toFixed(3) ?? '-',
      'p99 ms': r.p99_ms?.toFixed(3) ?? '-',
      ...extra,
    },
    vsBaseline: baseline ? '' : r.failed === 0 ? 'no failed lookup' : `${r.failed} failed`,
    baseline,
  });

  const steady = await stream(pod, async () => undefined);
  rows.push(row('no restart', steady.r, { 'agent down ms': '-', 'names before/after': `${learnedNames(node)}` }, true));

  {
    // The upgrade path (a DaemonSet with maxSurge): the successor starts while the agent serves and takes its sockets over.
    const before = learnedNames(node);
    const { r, extra } = await stream(pod, async () => {
      await sleep(STOP_AT_S * 1000);
      const t0 = performance.now();
      const old = await node.start();
      const ms = performance.now() - t0;
      if (!old || old.exitCode !== null) throw new Error('the predecessor did not stay (dormant) after the handover');
      const exited = new Promise<number | null>((res) => old.once('exit', (code) => res(code)));
      old.kill('SIGTERM');
      const code = await exited;
      if (code !== 0) throw new Error(`the dormant predecessor exited with ${code}`);
      return ms;
    });
    const after = learnedNames(node);
    log(`handover: ${JSON.stringify(r)}; successor ready after ${extra.toFixed(0)} ms; names ${before} → ${after}`);
    rows.push(row('upgrade (successor started, takes the sockets over)', r, { 'agent down ms': `0 (${extra.toFixed(0)} to ready)`, 'names before/after': `${before}/${after}` }));
  }

  for (const [scenario, signal] of [
    ['graceful restart (SIGTERM, start at once)', 'SIGTERM'],
    ['crash (SIGKILL, start at once)', 'SIGKILL'],
  ] as const) {
    const before = learnedNames(node);
    const { r, extra } = await stream(pod, async () => {
      await sleep(STOP_AT_S * 1000);
      const t0 = performance.now();
      await node.stop(signal);
      await node.start();
      return performance.now() - t0;
    });
    const after = learnedNames(node);
    log(`${scenario}: ${JSON.stringify(r)}; agent down ${extra.toFixed(0)} ms; names ${before} → ${after}`);
    rows.push(row(scenario, r, { 'agent down ms': extra.toFixed(0), 'names before/after': `${before}/${after}` }));
  }

  process.stdout.write(`node ${process.version}, kernel ${release()}, ${osCpus().length} CPUs (${osCpus()[0]?.model ?? '?'})\n\n`);
  process.stdout.write(formatTable(`DNS through an agent restart: ${RATE} lookups/s for ${SECONDS} s, the agent stopped at ${STOP_AT_S} s (each lookup tried twice, 1 s apart)`, rows));
  process.stdout.write(
    `\n- agent down ms: from the signal to the restarted agent ready (its socket answers). names before/after: names \`sluice fqdn\` lists (learned state kept across the restart).\n` +
      `- targets (issue 17): no failed lookup across a graceful restart; after a crash, resolution resumes within 1 s of the restart, learned state intact.\n`,
  );
}

try {
  await main();
} finally {
  cleanup.run();
}
