// CIDR arithmetic on bigints, for both families: parse and normalize, size, containment.
import { bits, formatIp, parseIp, type Family } from './address.js';
import { CidrError } from './errors.js';

export interface Cidr {
  family: Family;
  /** Network address (host bits zero). */
  base: bigint;
  prefixLen: number;
  /** Canonical text, host bits cleared ("10.244.1.7/24" → "10.244.1.0/24"). */
  text: string;
}

/**
 * Parses "addr/len". Host bits set are accepted and cleared (the IPAM and the compiler have always
 * taken "10.0.0.1/8" as 10.0.0.0/8; the manifest validator is where stricter rules belong).
 */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  if (slash < 0) throw new CidrError(`not a CIDR (missing /prefix): ${JSON.stringify(text)}`);
  const { family, value } = parseIp(text.slice(0, slash));
  const lenText = text.slice(slash + 1);
  const prefixLen = Number(lenText);
  if (!/^\d{1,3}$/.test(lenText) || prefixLen > bits(family)) throw new CidrError(`invalid prefix length in ${JSON.stringify(text)}`);
  const hostBits = BigInt(bits(family) - prefixLen);
  const base = (value >> hostBits) << hostBits;
  return { family, base, prefixLen, text: `${formatIp(family, base)}/${prefixLen}` };
}

/** Number of addresses in the prefix (2^host bits). */
export function cidrSize(c: Cidr): bigint {
  return 1n << BigInt(bits(c.family) - c.prefixLen);
}

/** Is the address (family, value) inside c? Never across families. */
export function cidrContains(c: Cidr, family: Family, value: bigint): boolean {
  return family === c.family && value >= c.base && value < c.base + cidrSize(c);
}

/** a ⊆ b: same family, a at least as long, and a's network bits agree with b's prefix. */
export function cidrWithin(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family || a.prefixLen < b.prefixLen) return false;
  const shift = BigInt(bits(a.family) - b.prefixLen);
  return a.base >> shift === b.base >> shift;
}

/** The host prefix of an address: /32 or /128. */
export function hostCidr(ip: string): Cidr {
  const { family } = parseIp(ip);
  return parseCidr(`${ip}/${bits(family)}`);
}
