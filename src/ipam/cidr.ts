// CIDR arithmetic on bigints, for both families.
import { isIPv4, isIPv6 } from 'node:net';

export interface Cidr {
  family: 4 | 6;
  /** Network address (host bits zero). */
  base: bigint;
  prefixLen: number;
  /** Text as given, normalized ("10.244.1.0/24"). */
  text: string;
}

export class CidrError extends Error {
  override readonly name = 'CidrError';
  readonly code = 'SLUICE_INVALID_CIDR';
}

export function parseIp(ip: string): { family: 4 | 6; value: bigint } {
  if (isIPv4(ip)) {
    const p = ip.split('.').map(Number);
    return { family: 4, value: BigInt(((p[0]! << 24) >>> 0) + (p[1]! << 16) + (p[2]! << 8) + p[3]!) };
  }
  if (isIPv6(ip)) {
    let text = ip;
    const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
    if (dotted) {
      const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
      text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
    }
    const [head = '', tail] = text.split('::');
    const h = head === '' ? [] : head.split(':');
    const t = tail === undefined || tail === '' ? [] : tail.split(':');
    const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
    let value = 0n;
    for (const g of groups) value = (value << 16n) | BigInt(parseInt(g, 16));
    return { family: 6, value };
  }
  throw new CidrError(`not an IP address: ${JSON.stringify(ip)}`);
}

export function formatIp(family: 4 | 6, value: bigint): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join('.');
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((value >> BigInt(i * 16)) & 0xffffn).toString(16));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

export function bits(family: 4 | 6): number {
  return family === 4 ? 32 : 128;
}

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

export function cidrSize(c: Cidr): bigint {
  return 1n << BigInt(bits(c.family) - c.prefixLen);
}

export function cidrContains(c: Cidr, family: 4 | 6, value: bigint): boolean {
  return family === c.family && value >= c.base && value < c.base + cidrSize(c);
}
