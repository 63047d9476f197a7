// IP addresses as the datapath stores them: 16 bytes, IPv4 in the first 4.
import { isIPv4, isIPv6 } from 'node:net';

export function formatAddress(family: number, buf: Buffer, offset: number): string {
  if (family === 4) return `${buf[offset]}.${buf[offset + 1]}.${buf[offset + 2]}.${buf[offset + 3]}`;
  if (family !== 6) return '';
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(offset + i * 2).toString(16));
  // Compress the longest run of zero groups (RFC 5952).
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** Writes `addr` (of `family`) into 16 bytes at `offset`; '' leaves zeros. */
export function parseAddressInto(family: number, addr: string, buf: Buffer, offset: number): void {
  if (addr === '') return;
  if (family === 4) {
    if (!isIPv4(addr)) throw new TypeError(`not an IPv4 address: ${addr}`);
    const parts = addr.split('.');
    for (let i = 0; i < 4; i++) buf[offset + i] = Number(parts[i]);
    return;
  }
  if (family !== 6 || !isIPv6(addr)) throw new TypeError(`not an IPv${family} address: ${addr}`);
  // An embedded IPv4 tail (::ffff:10.0.0.1) becomes its two hex groups.
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(addr);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    addr = `${addr.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = addr.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  for (let i = 0; i < 8; i++) buf.writeUInt16BE(parseInt(groups[i] ?? '0', 16), offset + i * 2);
}
