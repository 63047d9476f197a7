// Addresses as the datapath stores them: 16 bytes in network order, IPv4 in the first 4 (the rest
// zero). The bpf structs (bpf/shared/*.h) all use this layout; the codecs in src/datapath/codec
// read and write it through these two functions.
import { formatIp, parseIp, type Family } from './address.js';

/** The text of the address at `offset`; '' when `family` is neither 4 nor 6 (an unset slot). */
export function addressFromBytes(family: number, buf: Buffer, offset: number): string {
  if (family !== 4 && family !== 6) return '';
  const bytes = family === 4 ? 4 : 16;
  let value = 0n;
  for (let i = 0; i < bytes; i++) value = (value << 8n) | BigInt(buf[offset + i]!);
  return formatIp(family, value);
}

/**
 * Writes `addr` into the slot at `offset` (4 bytes for IPv4, 16 for IPv6; other bytes untouched);
 * '' leaves the slot as it is. Anything that is not an address of `family` is a TypeError: the
 * caller built a key or value from bad data, a programming error rather than bad input.
 */
export function addressToBytes(family: number, addr: string, buf: Buffer, offset: number): void {
  if (addr === '') return;
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
