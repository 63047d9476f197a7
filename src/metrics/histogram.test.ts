import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../test/helpers/prng.js';
import { LabelledHistogram } from './histogram.js';

const BUCKETS = [0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.1, 1];

function pair(): { ours: LabelledHistogram; theirs: Histogram<'result'>; a: Registry; b: Registry } {
  const a = new Registry();
  const b = new Registry();
  const ours = new LabelledHistogram({ name: 'x_seconds', help: 'h', labelName: 'result', buckets: BUCKETS, registers: [a] });
  const theirs = new Histogram({ name: 'x_seconds', help: 'h', labelNames: ['result'], buckets: BUCKETS, registers: [b] });
  return { ours, theirs, a, b };
}

describe('LabelledHistogram', () => {
  it("exposes exactly what prom-client's Histogram does for the same observations (text and JSON), reset included", async () => {
    for (const seed of [1, 2, 3]) {
      const { ours, theirs, a, b } = pair();
      const rand = mulberry32(seed);
      const results = ['forwarded', 'refused', 'servfail'];
      const observers = new Map(results.map((r) => [r, ours.child(r)]));
      for (let i = 0; i < 500; i++) {
        const r = results[Math.floor(rand() * (seed === 1 ? 2 : 3))]!; // seed 1: a series never observed
        // Values on the bounds, between them, above every bound, and 0.
        const pick = rand();
        const v = pick < 0.2 ? BUCKETS[Math.floor(rand() * BUCKETS.length)]! : pick < 0.25 ? 5 : pick < 0.3 ? 0 : rand() * 0.01;
        observers.get(r)!(v);
        theirs.labels(r).observe(v);
      }
      expect(await a.metrics()).toBe(await b.metrics());
      expect(await a.getMetricsAsJSON()).toEqual(await b.getMetricsAsJSON());
      a.resetMetrics();
      b.resetMetrics();
      expect(await a.metrics()).toBe(await b.metrics());
      observers.get('refused')!(0.0002);
      theirs.labels('refused').observe(0.0002);
      expect(await a.metrics()).toBe(await b.metrics());
    }
  });

  it('ignores a value that is not a finite number (prom-client throws; an observer on the proxy path must not)', async () => {
    const { ours, a } = pair();
    const observe = ours.child('forwarded');
    observe(Number.NaN);
    observe(Number.POSITIVE_INFINITY);
    expect(await a.metrics()).not.toContain('x_seconds_count');
    observe(0.001);
    expect(await a.metrics()).toContain('x_seconds_count{result="forwarded"} 1');
  });
});
