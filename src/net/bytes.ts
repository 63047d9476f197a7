// Addresses as the datapath stores them: 16 bytes in network order, IPv4 in the first 4 (the rest
// zero). The bpf structs (bpf/shared/*.h) all use this layout; the codecs in src/datapath/codec
// read and write it through these two functions.
import { formatIp, parseIp, type Family } from './address.js';

/** The text of the address at `offset`; '' when `family` is neither 4 nor 6 (an unset slot). */
export function addressFromBytes(family: number, buf: Buffer, offset: number): string {
  // IPv4 without bigints (the DNS proxy formats one per query): formatIp's text.
  if (family === 4) return `${buf[offset]!}.${buf[offset + 1]!}.${buf[offset + 2]!}.${buf[offset + 3]!}`;
  if (family !== 6) return '';
  let value = 0n;
  for (let i = 0; i < 16; i++) value = (value << 8n) | BigInt(buf[offset + i]!);
  return formatIp(6, value);
}

/**
 * Writes `addr` into the slot at `offset` (4 bytes for IPv4, 16 for IPv6; other bytes untouched);
 * '' leaves the slot as it is. Anything that is not an address of `family` is a TypeError: the
 * caller built a key or value from bad data, a programming error rather than bad input.
 */
export function addressToBytes(family: number, addr: string, buf: Buffer, offset: number): void {
  if (addr === '') return;
  // A dotted quad without bigints (the DNS proxy encodes one or more per query); anything else as before.
  if (family === 4 && dottedQuadInto(addr, buf, offset)) return;
  let parsed: { family: Family | 0; value: bigint };
  try {
    parsed = parseIp(addr);
  } catch {
    parsed = { family: 0, value: 0n };
  }
  if (parsed.family !== family) throw new TypeError(`not an IPv${family} address: ${addr}`);
  const bytes = family === 4 ? 4 : 16;
  for (let i = bytes - 1, v = parsed.value; i >= 0; i--, v >>= 8n) buf[offset + i] = Number(v & 0xffn);
}

/** An IPv4 address as a number (a.b.c.d = a << 24 | b << 16 | c << 8 | d), as text. */
export function ipv4Text(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/**
 * ipv4Text remembered, for a hot path that formats the same few addresses
 * again and again (a node's pods, the resolvers they ask): no string per
 * call. Bounded: it starts over when it holds `max`.
 */
export class Ipv4Texts {
  readonly #texts = new Map<number, string>();
  readonly #max: number;

  constructor(max: number) {
    this.#max = max;
  }

  of(n: number): string {
    let text = this.#texts.get(n);
    if (text === undefined) {
      if (this.#texts.size >= this.#max) this.#texts.clear();
      text = ipv4Text(n);
      this.#texts.set(n, text);
    }
    return text;
  }
}

/**
 * A dotted quad as Node's isIPv4 accepts it (four decimal parts 0-255, no
 * leading zeros, nothing else) as a number, without allocating: ipv4Text's
 * inverse; -1 for anything else (an IPv6 address included).
 */
export function ipv4Number(addr: string): number {
  const n = addr.length;
  if (n < 7 || n > 15) return -1;
  let parts = 0;
  let value = 0;
  let digits = 0;
  let quad = 0;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? addr.charCodeAt(i) : 46; // a '.' after the last part
    if (c === 46) {
      if (digits === 0 || parts === 4) return -1;
      quad = quad * 256 + value;
      parts++;
      value = 0;
      digits = 0;
      continue;
    }
    if (c < 48 || c > 57) return -1;
    if (digits > 0 && value === 0) return -1; // a leading zero
    value = value * 10 + (c - 48);
    if (value > 255) return -1;
    digits++;
  }
  return parts === 4 ? quad : -1;
}

/** Writes `addr` when it is a dotted quad (ipv4Number); false (nothing written) for anything else, which the general path then judges. */
function dottedQuadInto(addr: string, buf: Buffer, offset: number): boolean {
  const quad = ipv4Number(addr);
  if (quad < 0) return false;
  buf[offset] = quad >>> 24;
  buf[offset + 1] = (quad >>> 16) & 255;
  buf[offset + 2] = (quad >>> 8) & 255;
  buf[offset + 3] = quad & 255;
  return true;
}
