// Mirror of bpf/shared/conntrack.h (sluice_ct_key, sluice_ct_value).

export const KEY_SIZE = 44;
export const KEY_OFFSETS = { ifindex: 0, direction: 4, family: 5, protocol: 6, pad: 7, saddr: 8, daddr: 24, sport_be: 40, dport_be: 42 } as const;
export const SIZE = 16;
export const OFFSETS = { expires_ns: 0, flags: 8, pad: 12 } as const;

export function decodeKeyIfindex(buf: Buffer): number {
  return buf.readUInt32LE(KEY_OFFSETS.ifindex);
}
