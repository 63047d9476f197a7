// Mirror of bpf/shared/fqdn.h (sluice_fqdn_key, sluice_fqdn_value, sluice_fqdn_rules).
import { isIPv4 } from 'node:net';
import { MAX_FQDN_RULES } from '../../policy/index.js';
import { formatAddress, parseAddressInto } from './address.js';

/**
 * SLUICE_FQDN_MAX_RULES. The compiler's cap is the one TypeScript source (it
 * truncates to it, so the datapath's list always fits); the layout test
 * checks both against the header.
 */
export const MAX_RULES = MAX_FQDN_RULES;

export const KEY_SIZE = 24;
export const KEY_OFFSETS = { rule: 0, family: 4, pad: 5, addr: 8 } as const;

export const SIZE = 8;
export const OFFSETS = { expires_ns: 0 } as const;

/** sluice_fqdn_rules_v1 is keyed by the endpoint's policy_id (u32). */
export const RULES_KEY_SIZE = 4;
export const RULES_OFFSETS = { count: 0, rules: 4 } as const;
/** count, then MAX_RULES u32 rule ids. */
export const RULES_SIZE = RULES_OFFSETS.rules + 4 * MAX_RULES;

export function encodeKey(rule: number, ip: string): Buffer {
  const buf = Buffer.alloc(KEY_SIZE);
  encodeKeyInto(buf, 0, isIPv4(ip) ? 4 : 6, rule, ip);
  return buf;
}

/** encodeKey into `buf` at `offset`, whose KEY_SIZE bytes are zero (a hot path's reused buffer). */
export function encodeKeyInto(buf: Buffer, offset: number, family: 4 | 6, rule: number, ip: string): void {
  buf.writeUInt32LE(rule >>> 0, offset + KEY_OFFSETS.rule);
  buf[offset + KEY_OFFSETS.family] = family;
  parseAddressInto(family, ip, buf, offset + KEY_OFFSETS.addr);
}

export function decodeKey(buf: Buffer): { rule: number; ip: string } {
  return { rule: buf.readUInt32LE(KEY_OFFSETS.rule), ip: formatAddress(buf.readUInt8(KEY_OFFSETS.family), buf, KEY_OFFSETS.addr) };
}

/** `expiresNs`: CLOCK_MONOTONIC nanoseconds, as bpf_ktime_get_ns() and process.hrtime.bigint() count. */
export function encode(expiresNs: bigint): Buffer {
  const buf = Buffer.alloc(SIZE);
  buf.writeBigUInt64LE(expiresNs, OFFSETS.expires_ns);
  return buf;
}

export function decode(buf: Buffer): bigint {
  return buf.readBigUInt64LE(OFFSETS.expires_ns);
}

export function encodeRulesKey(policyId: number): Buffer {
  const buf = Buffer.alloc(RULES_KEY_SIZE);
  buf.writeUInt32LE(policyId >>> 0, 0);
  return buf;
}

export function decodeRulesKey(buf: Buffer): number {
  return buf.readUInt32LE(0);
}

export function encodeRules(rules: readonly number[]): Buffer {
  if (rules.length > MAX_RULES) throw new RangeError(`at most ${MAX_RULES} FQDN rules per endpoint`);
  const buf = Buffer.alloc(RULES_SIZE);
  buf.writeUInt32LE(rules.length, RULES_OFFSETS.count);
  rules.forEach((r, i) => buf.writeUInt32LE(r >>> 0, RULES_OFFSETS.rules + 4 * i));
  return buf;
}

export function decodeRules(buf: Buffer): number[] {
  const n = Math.min(buf.readUInt32LE(RULES_OFFSETS.count), MAX_RULES);
  return Array.from({ length: n }, (_, i) => buf.readUInt32LE(RULES_OFFSETS.rules + 4 * i));
}
