// Mirror of bpf/shared/frag.h (sluice_frag_key, sluice_frag_value).

export const KEY_SIZE = 44;
export const KEY_OFFSETS = { ifindex: 0, direction: 4, family: 5, protocol: 6, pad: 7, id: 8, saddr: 12, daddr: 28 } as const;
export const SIZE = 16;
export const OFFSETS = { expires_ns: 0, sport_be: 8, dport_be: 10, pad: 12 } as const;
