import { describe, expect, it } from 'vitest';
import { cidrWithin, parseCidr } from '../net/index.js';
import { PrefixIndex } from './prefix-index.js';

/** Small deterministic PRNG, so a failure reproduces. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('PrefixIndex', () => {
  it('answers what scanning every prefix answers, in insertion order (random prefixes, both families)', () => {
    const r = rng(13);
    const texts = new Set<string>(['0.0.0.0/0', '::/0']);
    for (let i = 0; i < 600; i++) {
      const v4 = `10.${Math.floor(r() * 4)}.${Math.floor(r() * 256)}.${Math.floor(r() * 256)}/${8 + Math.floor(r() * 25)}`;
      const v6 = `fd00:${Math.floor(r() * 4).toString(16)}::${Math.floor(r() * 65536).toString(16)}/${Math.floor(r() * 129)}`;
      texts.add(parseCidr(v4).text);
      texts.add(parseCidr(v6).text);
    }
    const prefixes = [...texts].map(parseCidr);
    const index = new PrefixIndex(prefixes);
    const queries = [...prefixes, ...['10.0.0.0/8', '10.1.0.0/16', '10.2.3.4/32', '11.0.0.0/8', 'fd00::/16', 'fd00:1::/32', '::1/128'].map(parseCidr)];
    for (const q of queries) {
      const scan = prefixes.filter((p) => cidrWithin(p, q)).map((p) => p.text);
      expect(index.within(q).map((p) => p.text)).toEqual(scan);
    }
  });

  it('finds nothing across families or outside the range', () => {
    const index = new PrefixIndex(['10.0.0.0/24', '10.0.1.0/24'].map(parseCidr));
    expect(index.within(parseCidr('::/0'))).toEqual([]);
    expect(index.within(parseCidr('10.0.2.0/24'))).toEqual([]);
    expect(index.within(parseCidr('10.0.0.0/23')).map((p) => p.text)).toEqual(['10.0.0.0/24', '10.0.1.0/24']);
    // A shorter prefix starting in range is not inside.
    expect(index.within(parseCidr('10.0.0.128/25'))).toEqual([]);
  });
});
