// Mirror of bpf/shared/endpoint.h (struct sluice_endpoint_key, sluice_endpoint).
import { isIPv4, isIPv6 } from 'node:net';
import { formatAddress, parseAddressInto } from './address.js';

export const KEY_SIZE = 4;
export const KEY_OFFSETS = { ifindex: 0 } as const;

export const SIZE = 36;
export const OFFSETS = { identity: 0, flags: 4, policy_id: 8, pad: 12, addr4: 16, addr6: 20 } as const;

export const FLAG_DROP_ALL = 1 << 0;
export const FLAG_INGRESS_ISOLATED = 1 << 1;
export const FLAG_EGRESS_ISOLATED = 1 << 2;
export const FLAG_POLICY_FAILED = 1 << 3;
export const FLAG_DNS_INTERCEPT = 1 << 4;
export const FLAG_FQDN = 1 << 5;
export const FLAG_INGRESS_AUDIT = 1 << 6;
export const FLAG_EGRESS_AUDIT = 1 << 7;

export interface Endpoint {
  identity: number;
  flags: number;
  /** Generation of policy entries in effect; 0 = none written. */
  policyId?: number;
  /**
   * The pod's own addresses (anti-spoofing: the only sources its packets may
   * carry), at most one per family; the first of each family is used.
   */
  ips?: readonly string[];
}

export function encodeKey(ifindex: number): Buffer {
  const buf = Buffer.alloc(KEY_SIZE);
  buf.writeUInt32LE(ifindex, KEY_OFFSETS.ifindex);
  return buf;
}

export function decodeKey(buf: Buffer): number {
  return buf.readUInt32LE(KEY_OFFSETS.ifindex);
}

export function encode(ep: Endpoint): Buffer {
  const buf = Buffer.alloc(SIZE);
  buf.writeUInt32LE(ep.identity >>> 0, OFFSETS.identity);
  buf.writeUInt32LE(ep.flags >>> 0, OFFSETS.flags);
  buf.writeUInt32LE((ep.policyId ?? 0) >>> 0, OFFSETS.policy_id);
  const v4 = ep.ips?.find((ip) => isIPv4(ip));
  const v6 = ep.ips?.find((ip) => isIPv6(ip));
  if (v4) parseAddressInto(4, v4, buf, OFFSETS.addr4);
  if (v6) parseAddressInto(6, v6, buf, OFFSETS.addr6);
  return buf;
}

export function decode(buf: Buffer): Required<Endpoint> {
  const ips: string[] = [];
  if (buf.readUInt32BE(OFFSETS.addr4) !== 0) ips.push(formatAddress(4, buf, OFFSETS.addr4));
  if (!buf.subarray(OFFSETS.addr6, OFFSETS.addr6 + 16).equals(Buffer.alloc(16))) ips.push(formatAddress(6, buf, OFFSETS.addr6));
  return { identity: buf.readUInt32LE(OFFSETS.identity), flags: buf.readUInt32LE(OFFSETS.flags), policyId: buf.readUInt32LE(OFFSETS.policy_id), ips };
}
