// IP addresses as the datapath stores them: 16 bytes, IPv4 in the first 4.
// The text ↔ number conversions are the IPAM's (one parser for the project).
import { formatIp, parseIp } from '../../ipam/cidr.js';

export function formatAddress(family: number, buf: Buffer, offset: number): string {
  if (family !== 4 && family !== 6) return '';
  const bytes = family === 4 ? 4 : 16;
  let value = 0n;
  for (let i = 0; i < bytes; i++) value = (value << 8n) | BigInt(buf[offset + i]!);
  return formatIp(family, value);
}

/** Writes `addr` (of `family`) into 16 bytes at `offset`; '' leaves zeros. */
export function parseAddressInto(family: number, addr: string, buf: Buffer, offset: number): void {
  if (addr === '') return;
  let parsed: ReturnType<typeof parseIp>;
  try {
    parsed = parseIp(addr);
  } catch {
    parsed = { family: 0 as 4, value: 0n };
  }
  if (parsed.family !== family) throw new TypeError(`not an IPv${family} address: ${addr}`);
  const bytes = family === 4 ? 4 : 16;
  for (let i = bytes - 1, v = parsed.value; i >= 0; i--, v >>= 8n) buf[offset + i] = Number(v & 0xffn);
}
