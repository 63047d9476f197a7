import { describe, expect, it } from 'vitest';
import { RandomIds } from './ids.js';

describe('RandomIds', () => {
  it('gives 16-bit integers, refilling past its pool', () => {
    const ids = new RandomIds();
    for (let i = 0; i < 10_000; i++) {
      const v = ids.next();
      expect(Number.isInteger(v) && v >= 0 && v < 65536).toBe(true);
    }
  });

  it('is not a fixed or short-period sequence: two sources differ, and a source does not repeat its pool', () => {
    const a = new RandomIds();
    const b = new RandomIds();
    const sa = Array.from({ length: 8192 }, () => a.next());
    const sb = Array.from({ length: 8192 }, () => b.next());
    expect(sa).not.toEqual(sb);
    // The second pool is fresh randomness, not the first again.
    expect(sa.slice(4096)).not.toEqual(sa.slice(0, 4096));
  });

  it('is roughly uniform over 0..65535 (each 1/16 of the range within 20% of its share)', () => {
    const ids = new RandomIds();
    const buckets = new Array<number>(16).fill(0);
    const n = 64_000;
    for (let i = 0; i < n; i++) buckets[ids.next() >> 12]!++;
    for (const c of buckets) expect(Math.abs(c - n / 16)).toBeLessThan((n / 16) * 0.2);
  });

  it('below(n) stays in [0, n) and reaches every value', () => {
    const ids = new RandomIds();
    for (const n of [1, 3, 16, 1000, 65536]) {
      const seen = new Set<number>();
      for (let i = 0; i < 20_000; i++) {
        const v = ids.below(n);
        expect(v >= 0 && v < n).toBe(true);
        seen.add(v);
      }
      if (n <= 1000) expect(seen.size).toBe(n);
    }
    expect(() => ids.below(0)).toThrow(RangeError);
    expect(() => ids.below(65537)).toThrow(RangeError);
  });
});
