// NetworkPolicy truth table, upstream style (kubernetes netpol e2e, cyclonus):
// one node running the real agent in standalone mode, pods a, b, c in
// namespaces x, y, z created through the real sluice-cni, each running a
// prober. For every case the policies are written into the standalone
// directory, the whole 9×9 matrix is probed (TCP 80, TCP 81, UDP 80; IPv6 too
// where asked) until it equals what the independent model (model.ts) says,
// and the case is undone before the next one.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { callAgent } from '../../src/cli/client.js';
import { NetpolCluster, compare, formatReport, probeName, type Expectation, type Observation } from '../helpers/cluster.js';
import { Cleanup, isRoot } from '../helpers/netns.js';
import { CASES, DEFAULT_PROBES, type Doc, type DocSource, type NetpolCase, type PodKey } from './cases.js';
import { ModelError, parsePolicy, type Family, type Policy, type Probe } from './model.js';

const cleanup = new Cleanup();
let cluster: NetpolCluster;

beforeAll(async () => {
  if (!isRoot) throw new Error('the NetworkPolicy truth table needs root (network namespaces, eBPF)');
  try {
    cluster = await NetpolCluster.start(cleanup);
  } catch (err) {
    cleanup.run();
    throw err;
  }
}, 60_000);
afterAll(() => cleanup.run());

function probesOf(c: Pick<NetpolCase, 'probes' | 'families'>): Probe[] {
  return (c.families ?? [4]).flatMap((family: Family) => (c.probes ?? DEFAULT_PROBES).map((p) => ({ ...p, family })));
}

function render(src: DocSource): string {
  const doc: Doc = typeof src === 'function' ? src(cluster.context()) : src;
  return typeof doc === 'string' ? doc : stringify(doc);
}

/** The live agent's `explain` calls in flight at once. */
const EXPLAIN_PARALLEL = 32;

/**
 * The live agent's `explain` (one call per cell, the converged round's
 * cells) must say what the datapath did: allow where the probe connected.
 */
async function expectExplainAgrees(observed: readonly Observation[], what: string): Promise<void> {
  const cells = observed.flatMap((o) => cluster.pods.flatMap((from, i) => cluster.pods.map((to, j) => ({ o, from, to, result: o.results[i]![j]! }))));
  const wrong: string[] = [];
  for (let k = 0; k < cells.length; k += EXPLAIN_PARALLEL) {
    await Promise.all(
      cells.slice(k, k + EXPLAIN_PARALLEL).map(async ({ o, from, to, result }) => {
        const port = `${o.probe.port}/${o.probe.protocol}`;
        const e = (await callAgent(cluster.node.runDir, 'explain', { from: from.key, to: to.ips[o.probe.family]!, port })) as { verdict: string; reason: string };
        if ((e.verdict === 'allow') !== (result === 'ok')) wrong.push(`${from.key} -> ${to.key} ${probeName(o.probe)}: explain says ${e.verdict} (${e.reason}); the datapath: ${result}`);
      }),
    );
  }
  expect(wrong, `${what}: the live explain must agree with the datapath`).toEqual([]);
}

function sameExpectation(a: readonly Expectation[], b: readonly Expectation[]): boolean {
  return JSON.stringify(a.map((e) => e.matrix)) === JSON.stringify(b.map((e) => e.matrix));
}

describe('harness', () => {
  it('baseline: with no policy the model allows everything, and every pod reaches every pod on every port, IPv4 and IPv6', async () => {
    const probes = probesOf({ families: [4, 6] });
    const expected = cluster.expect([], probes);
    expect(expected.every((e) => e.matrix.every((row) => row.every((cell) => cell === true)))).toBe(true);
    const r = await cluster.expectMatrix(expected, 'baseline');
    expect(r.observed).toHaveLength(6);
    // Each pod got both families from CNI ADD, inside the node's pod CIDRs.
    for (const p of cluster.pods) {
      expect(p.ips[4]).toMatch(/^10\.66\.0\.\d+$/);
      expect(p.ips[6]).toMatch(/^fd00:66::[0-9a-f:]+$/);
    }
    expect(new Set(cluster.pods.map((p) => p.ips[4])).size).toBe(9);
  });

  it('a closed port is observed as refused, not as connected', async () => {
    const [obs] = await cluster.probe([{ protocol: 'TCP', port: 82, family: 4 }]);
    expect(obs!.results.flat()).toEqual(new Array(81).fill('econnrefused'));
  });

  it('a silently dropped flow is observed as failed within the probe timeout, and the report pinpoints it', async () => {
    // x/b's replies to x/a vanish (a blackhole route in x/b): from x/a's side
    // a SYN or datagram that is never answered, as a drop in the datapath is.
    const xa = cluster.pod('x/a');
    const xb = cluster.pod('x/b');
    xb.netns.exec('ip', ['route', 'add', 'blackhole', `${xa.ips[4]}/32`]);
    try {
      const expected = cluster.expect([], probesOf({}));
      const started = Date.now();
      const observed = await cluster.probe(expected.map((e) => e.probe));
      const took = Date.now() - started;
      const ia = cluster.names.indexOf('x/a');
      const ib = cluster.names.indexOf('x/b');
      for (const o of observed) {
        expect(o.results[ia]![ib], `x/a -> x/b ${o.probe.protocol}/${o.probe.port}`).toBe('timeout');
        // x/b's own packets to x/a hit the blackhole at once.
        expect(o.results[ib]![ia]).not.toBe('ok');
      }
      expect(took).toBeGreaterThanOrEqual(cluster.opts.probeTimeoutMs - 20);
      expect(took).toBeLessThan(cluster.opts.probeTimeoutMs + 1500);
      const c = compare(expected, observed);
      expect(c).toEqual({ wrong: 6, leaked: 0, blocked: 6 });
      const report = formatReport(cluster.names, expected, observed);
      expect(report).toContain('TCP/80 over IPv4: 2 wrong (0 expected denied but connected, 2 expected allowed but failed)');
      // In each comparison grid, row x/a has its X under column x/b.
      const row = report.split('\n').find((l) => l.startsWith('x/a'))!;
      expect(row.trimEnd().split(/\s+/).slice(-9)).toEqual(['.', 'X', '.', '.', '.', '.', '.', '.', '.']);
    } finally {
      xb.netns.exec('ip', ['route', 'del', 'blackhole', `${xa.ips[4]}/32`], { allowFail: true });
    }
    await cluster.expectMatrix(cluster.expect([], probesOf({})), 'after removing the blackhole');
  });
});

describe('NetworkPolicy truth table', () => {
  afterEach(async () => {
    if (cluster) await cluster.reset();
  }, 30_000);

  for (const c of CASES) {
    it(`${c.name}: ${c.covers}`, async () => {
      const probes = probesOf(c);
      const files = new Map<string, Policy>(); // what the agent should hold, by file
      let previous = cluster.expect([], probes);
      for (const [i, step] of c.steps.entries()) {
        const what = `${c.name}, step ${i + 1}/${c.steps.length} (${step.what})`;
        for (const [key, labels] of Object.entries(step.podLabels ?? {})) if (labels) cluster.setPodLabels(key as PodKey, labels);
        for (const [ns, labels] of Object.entries(step.namespaceLabels ?? {})) if (labels) cluster.setNamespaceLabels(ns, labels);
        for (const [key, src] of Object.entries(step.policies ?? {})) {
          const file = `np-${c.name}-${key}.yaml`;
          if (src === null) {
            cluster.removePolicy(file);
            files.delete(file);
            continue;
          }
          const text = render(src);
          files.set(file, parsePolicy(parse(text))); // the model must accept what the case calls valid
          cluster.writePolicy(file, text);
        }
        const invalid = Object.entries(step.invalid ?? {}).map(([key, src]) => {
          const text = render(src);
          expect(() => parsePolicy(parse(text)), `${what}: the model must reject it too`).toThrow(ModelError);
          return { file: cluster.writePolicy(`np-${c.name}-${key}.yaml`, text), text };
        });
        const expected = cluster.expect([...files.values()], probes);
        if (invalid.length) {
          expect(sameExpectation(expected, previous), `${what}: an invalid file must change nothing`).toBe(true);
          for (const { file } of invalid) await cluster.waitForManifest(file, 'rejected');
          await cluster.holdMatrix(expected, `${what}: the previous policy must stay in force`, 3 * cluster.opts.probeTimeoutMs);
        } else {
          // A step the matrix cannot tell from the previous one would prove nothing.
          expect(sameExpectation(expected, previous), `${what}: the step must change the expected matrix`).toBe(false);
          const converged = await cluster.expectMatrix(expected, what);
          await expectExplainAgrees(converged.observed, what);
        }
        previous = expected;
      }
    });
  }
});
