import { describe, expect, it } from 'vitest';
import { decodeKey, encodeKeys, PREFIX_DIRECTION, PREFIX_PROTOCOL } from './policy.js';

function blocks(min: number, max: number): Array<[number, number]> {
  return encodeKeys({ policyId: 1, peer: 2, direction: 0, protocol: 6, portMin: min, portMax: max }).map((b) => {
    const k = decodeKey(b);
    const size = 2 ** (16 - (k.prefixlen - PREFIX_PROTOCOL));
    return [k.port, k.port + size - 1];
  });
}

describe('policy key encoding', () => {
  it('any protocol and every port are single short prefixes', () => {
    expect(encodeKeys({ policyId: 1, peer: 0, direction: 1, protocol: 0, portMin: 0, portMax: 65535 }).map(decodeKey)).toEqual([
      { prefixlen: PREFIX_DIRECTION, policyId: 1, peer: 0, direction: 1, protocol: 0, port: 0 },
    ]);
    expect(blocks(0, 65535)).toEqual([[0, 65535]]);
  });
  it('a single port is a full-length key', () => {
    expect(blocks(443, 443)).toEqual([[443, 443]]);
  });
  it.each([
    [80, 81],
    [1, 65535],
    [1000, 2000],
    [32768, 60999],
    [7, 9],
  ])('covers [%i, %i] exactly with aligned blocks', (min, max) => {
    const bs = blocks(min, max);
    expect(bs.length).toBeLessThanOrEqual(30);
    let next = min;
    for (const [lo, hi] of bs) {
      expect(lo).toBe(next);
      expect(lo % (hi - lo + 1)).toBe(0);
      next = hi + 1;
    }
    expect(next).toBe(max + 1);
  });
});
