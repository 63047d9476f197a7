// Mirror of bpf/shared/policy.h (sluice_policy_key, sluice_policy_value), and
// the expansion of a port range into the trie prefixes that cover it.

export const KEY_SIZE = 16;
export const KEY_OFFSETS = { prefixlen: 0, policy_id: 4, peer: 8, direction: 12, protocol: 13, dport_be: 14 } as const;
export const SIZE = 8;
export const OFFSETS = { rule: 0, pad: 4 } as const;

/**
 * Key bits (after prefixlen) up to and including each field, from the layout
 * (the trie's prefix starts at the field after prefixlen), never counted by
 * hand: 72, 80 and 96, as SLUICE_POLICY_PREFIX_* (the layout test compares).
 */
export const PREFIX_DIRECTION = (KEY_OFFSETS.protocol - KEY_OFFSETS.policy_id) * 8;
export const PREFIX_PROTOCOL = (KEY_OFFSETS.dport_be - KEY_OFFSETS.policy_id) * 8;
export const PREFIX_FULL = (KEY_SIZE - KEY_OFFSETS.policy_id) * 8;
/** Bits of the port: a block of 2^n ports is a prefix n bits shorter than PREFIX_FULL. */
const PORT_BITS = PREFIX_FULL - PREFIX_PROTOCOL;

export interface PolicyKey {
  policyId: number;
  peer: number;
  direction: number;
  /** 0 = any protocol (then ports are ignored). */
  protocol: number;
  portMin: number;
  portMax: number;
}

function key(prefixlen: number, k: PolicyKey, protocol: number, port: number): Buffer {
  const buf = Buffer.alloc(KEY_SIZE);
  buf.writeUInt32LE(prefixlen, KEY_OFFSETS.prefixlen);
  buf.writeUInt32LE(k.policyId >>> 0, KEY_OFFSETS.policy_id);
  buf.writeUInt32LE(k.peer >>> 0, KEY_OFFSETS.peer);
  buf.writeUInt8(k.direction, KEY_OFFSETS.direction);
  buf.writeUInt8(protocol, KEY_OFFSETS.protocol);
  buf.writeUInt16BE(port, KEY_OFFSETS.dport_be);
  return buf;
}

/**
 * The trie keys of one allow entry: one key for "any protocol" or "every
 * port", else the minimal set of aligned power-of-two port blocks covering
 * [portMin, portMax] (at most 30 for a 16-bit range).
 */
export function encodeKeys(k: PolicyKey): Buffer[] {
  if (k.protocol === 0) return [key(PREFIX_DIRECTION, k, 0, 0)];
  if (k.portMin <= 0 && k.portMax >= 65535) return [key(PREFIX_PROTOCOL, k, k.protocol, 0)];
  const out: Buffer[] = [];
  let lo = k.portMin;
  const hi = k.portMax;
  while (lo <= hi) {
    // The largest block starting at lo (aligned) that stays within hi.
    let size = lo === 0 ? 65536 : lo & -lo;
    while (lo + size - 1 > hi) size >>= 1;
    out.push(key(PREFIX_PROTOCOL + PORT_BITS - Math.log2(size), k, k.protocol, lo));
    lo += size;
  }
  return out;
}

export function decodeKey(buf: Buffer): { prefixlen: number; policyId: number; peer: number; direction: number; protocol: number; port: number } {
  return {
    prefixlen: buf.readUInt32LE(KEY_OFFSETS.prefixlen),
    policyId: buf.readUInt32LE(KEY_OFFSETS.policy_id),
    peer: buf.readUInt32LE(KEY_OFFSETS.peer),
    direction: buf.readUInt8(KEY_OFFSETS.direction),
    protocol: buf.readUInt8(KEY_OFFSETS.protocol),
    port: buf.readUInt16BE(KEY_OFFSETS.dport_be),
  };
}

export function encode(rule: number): Buffer {
  const buf = Buffer.alloc(SIZE);
  buf.writeUInt32LE(rule >>> 0, OFFSETS.rule);
  return buf;
}
