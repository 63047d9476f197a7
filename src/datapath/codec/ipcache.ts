// Mirror of bpf/shared/ipcache.h (sluice_ipcache_key, sluice_identity_value, sluice_cidr_key).
import { isIPv4 } from 'node:net';
import { formatAddress, parseAddressInto } from './address.js';

export const KEY_SIZE = 20;
export const KEY_OFFSETS = { family: 0, pad: 1, addr: 4 } as const;

export const VALUE_SIZE = 8;
export const VALUE_OFFSETS = { identity: 0, pad: 4 } as const;

export const CIDR_KEY_SIZE = 24;
export const CIDR_KEY_OFFSETS = { prefixlen: 0, family: 4, pad: 5, addr: 8 } as const;
/** Bits of family + pad that precede the address in the LPM key (prefixlen counts from family). */
const CIDR_PREFIX_HEADER_BITS = (CIDR_KEY_OFFSETS.addr - CIDR_KEY_OFFSETS.family) * 8;

function familyOf(ip: string): 4 | 6 {
  return isIPv4(ip) ? 4 : 6;
}

export function encodeKey(ip: string): Buffer {
  const buf = Buffer.alloc(KEY_SIZE);
  const family = familyOf(ip);
  buf.writeUInt8(family, KEY_OFFSETS.family);
  parseAddressInto(family, ip, buf, KEY_OFFSETS.addr);
  return buf;
}

export function decodeKey(buf: Buffer): string {
  return formatAddress(buf.readUInt8(KEY_OFFSETS.family), buf, KEY_OFFSETS.addr);
}

export function encodeValue(identity: number): Buffer {
  const buf = Buffer.alloc(VALUE_SIZE);
  buf.writeUInt32LE(identity >>> 0, VALUE_OFFSETS.identity);
  return buf;
}

export function decodeValue(buf: Buffer): number {
  return buf.readUInt32LE(VALUE_OFFSETS.identity);
}

/** "10.0.0.0/8" → LPM key. */
export function encodeCidrKey(cidr: string): Buffer {
  const [ip = '', len = ''] = cidr.split('/');
  const family = familyOf(ip);
  const buf = Buffer.alloc(CIDR_KEY_SIZE);
  buf.writeUInt32LE(CIDR_PREFIX_HEADER_BITS + Number(len), CIDR_KEY_OFFSETS.prefixlen);
  buf.writeUInt8(family, CIDR_KEY_OFFSETS.family);
  parseAddressInto(family, ip, buf, CIDR_KEY_OFFSETS.addr);
  return buf;
}

export function decodeCidrKey(buf: Buffer): string {
  const family = buf.readUInt8(CIDR_KEY_OFFSETS.family);
  return `${formatAddress(family, buf, CIDR_KEY_OFFSETS.addr)}/${buf.readUInt32LE(CIDR_KEY_OFFSETS.prefixlen) - CIDR_PREFIX_HEADER_BITS}`;
}
