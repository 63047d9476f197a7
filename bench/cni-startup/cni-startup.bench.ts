// Wall time of one CNI VERSION invocation, sluice-cni against the reference Go
// plugin, interleaved in one run (so machine noise hits both alike). The Node
// rows show why sluice-cni is a native front: Node's own start-up alone is
// ~25x the whole Go plugin run.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { formatTable, ratio, stats, type Row } from '../lib/table.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 50);
const root = join(import.meta.dirname, '..', '..');
const bridge = ['/usr/lib/cni/bridge', '/opt/cni/bin/bridge'].find(existsSync);

interface Scenario {
  name: string;
  argv: string[];
  env?: Record<string, string>;
  baseline?: boolean;
}

const versionEnv = { CNI_COMMAND: 'VERSION' };
const scenarios: Scenario[] = [
  { name: 'reference bridge VERSION', argv: [bridge ?? '/usr/lib/cni/bridge'], env: versionEnv, baseline: true },
  { name: 'sluice-cni VERSION', argv: [join(root, 'build/bin/sluice-cni')], env: versionEnv },
  {
    name: 'sluice-cni STATUS, agent down',
    argv: [join(root, 'build/bin/sluice-cni')],
    env: { CNI_COMMAND: 'STATUS' },
  },
  { name: 'node -e 0 (Node.js floor)', argv: [process.execPath, '-e', '0'] },
  { name: 'sluice --version (bundled TS)', argv: [join(root, 'build/bin/sluice'), '--version'] },
];

const stdin = JSON.stringify({ cniVersion: '1.1.0', name: 'bench', type: 'sluice-cni', agentSocket: '/nonexistent/agent.sock' });

function once(s: Scenario): number | string {
  const start = process.hrtime.bigint();
  const r = spawnSync(s.argv[0]!, s.argv.slice(1), { input: stdin, env: { PATH: process.env.PATH ?? '', ...s.env }, encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  const expectFailure = s.env?.CNI_COMMAND === 'STATUS';
  if (r.error) return r.error.message;
  if ((r.status !== 0) !== expectFailure) return `exit ${r.status}: ${r.stdout}${r.stderr}`.slice(0, 80);
  return ms;
}

const samples = new Map<Scenario, number[]>(scenarios.map((s) => [s, []]));
const failures = new Map<Scenario, string>();
for (const s of scenarios) once(s); // warm the page cache
for (let i = 0; i < RUNS; i++) {
  for (const s of scenarios) {
    if (failures.has(s)) continue;
    const r = once(s);
    if (typeof r === 'string') failures.set(s, r);
    else samples.get(s)!.push(r);
  }
}

const base = stats(samples.get(scenarios[0]!)!);
const rows: Row[] = scenarios.map((s) => {
  const st = stats(samples.get(s)!);
  return {
    scenario: s.name,
    samples: st.n,
    results: { 'min ms': st.min.toFixed(2), 'median ms': st.median.toFixed(2), '± ms': st.spread.toFixed(2) },
    vsBaseline: s.baseline ? '' : ratio(st.median, base.median),
    baseline: s.baseline,
    failed: failures.get(s),
  };
});
process.stdout.write(formatTable(`CNI start-up: one VERSION call, ${RUNS} runs each, interleaved`, rows));
process.exitCode = failures.size > 0 ? 1 : 0;
