// src/net against Node's own address code as an independent oracle, over many generated inputs:
// the WHATWG URL serializer for canonical IPv6 text (same rules as ours: lower case, longest zero
// run of two or more compressed, first on a tie, embedded IPv4 in hex) and net.BlockList for
// containment. A fixed seed keeps a failure reproducible.
import { BlockList } from 'node:net';
import { describe, expect, it } from 'vitest';
import { addressFromBytes, addressToBytes, cidrContains, cidrWithin, formatIp, parseCidr, parseIp } from './index.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    // xorshift32
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}
const next = rng(0x5eed13);
const pick = (n: number): number => next() % n;

/** Eight 16-bit groups, biased towards zeros so that compression cases are common. */
function groups(): number[] {
  return Array.from({ length: 8 }, () => (pick(3) === 0 ? next() & 0xffff : pick(4) === 0 ? pick(16) : 0));
}

/** One of the many texts of the same IPv6 address (padding, case, compression anywhere valid, dotted tail). */
function someText(g: number[]): string {
  const hex = g.map((x) => {
    let t = x.toString(16);
    if (pick(4) === 0) t = t.padStart(4, '0');
    return pick(2) === 0 ? t.toUpperCase() : t;
  });
  if (pick(4) === 0) hex.splice(6, 2, `${g[6]! >> 8}.${g[6]! & 0xff}.${g[7]! >> 8}.${g[7]! & 0xff}`);
  // Compress a random run of zero groups (any run, not only the longest: all are valid input).
  const zeroRuns: [number, number][] = [];
  for (let i = 0; i < hex.length; i++) {
    if (g[i] !== 0 || (i >= 6 && hex.length === 7)) continue;
    let j = i;
    while (j < hex.length && g[j] === 0 && !(j >= 6 && hex.length === 7)) j++;
    zeroRuns.push([i, j]);
    i = j;
  }
  if (zeroRuns.length > 0 && pick(3) !== 0) {
    const [i, j] = zeroRuns[pick(zeroRuns.length)]!;
    const end = i + 1 + pick(j - i);
    return `${hex.slice(0, i).join(':')}::${hex.slice(end).join(':')}`;
  }
  return hex.join(':');
}

const value = (g: number[]): bigint => g.reduce((v, x) => (v << 16n) | BigInt(x), 0n);

describe('src/net against Node (oracle)', () => {
  it('IPv6: any text form parses to the right value and formats as the URL serializer does', () => {
    for (let n = 0; n < 5000; n++) {
      const g = groups();
      const text = someText(g);
      const parsed = parseIp(text);
      expect(parsed, text).toEqual({ family: 6, value: value(g) });
      expect(formatIp(6, parsed.value), text).toBe(new URL(`http://[${text}]/`).hostname.slice(1, -1));
    }
  });

  it('IPv4: value and text agree with the octets', () => {
    for (let n = 0; n < 5000; n++) {
      const o = [pick(256), pick(256), pick(256), pick(256)];
      const text = o.join('.');
      const parsed = parseIp(text);
      expect(parsed.value).toBe(BigInt(((o[0]! << 24) >>> 0) + (o[1]! << 16) + (o[2]! << 8) + o[3]!));
      expect(formatIp(4, parsed.value)).toBe(text);
    }
  });

  it('the 16-byte layout matches the value, both ways', () => {
    const buf = Buffer.alloc(16);
    for (let n = 0; n < 2000; n++) {
      const g = groups();
      const text = someText(g);
      buf.fill(0);
      addressToBytes(6, text, buf, 0);
      expect(BigInt(`0x${buf.toString('hex')}`), text).toBe(value(g));
      expect(addressFromBytes(6, buf, 0)).toBe(formatIp(6, value(g)));
    }
  });

  it('containment agrees with net.BlockList, within a family', () => {
    for (let n = 0; n < 3000; n++) {
      const v6 = pick(2) === 0;
      const width = v6 ? 128 : 32;
      const g = groups();
      const base = v6 ? someText(g) : [pick(256), pick(256), pick(256), pick(256)].join('.');
      const len = pick(width + 1);
      const net = parseCidr(`${base}/${len}`);
      const list = new BlockList();
      list.addSubnet(formatIp(net.family, net.base), len, v6 ? 'ipv6' : 'ipv4');
      // A probe near the prefix often enough to land inside: the base with some low bits flipped.
      const flip = BigInt(pick(width));
      const probe = net.base ^ (pick(2) === 0 ? 1n << flip : (1n << flip) - 1n);
      const text = formatIp(net.family, probe);
      expect(cidrContains(net, net.family, probe), `${text} in ${net.text}`).toBe(list.check(text, v6 ? 'ipv6' : 'ipv4'));
      // a ⊆ b for a host prefix is exactly containment of the address.
      expect(cidrWithin(parseCidr(`${text}/${width}`), net)).toBe(list.check(text, v6 ? 'ipv6' : 'ipv4'));
    }
  });
});
