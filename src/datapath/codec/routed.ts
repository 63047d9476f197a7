// Mirror of bpf/shared/routed.h (sluice_nh_key, sluice_nh): kernel-only,
// sized here so the layout test holds the two sides together.

export const KEY_SIZE = 36;
export const KEY_OFFSETS = { family: 0, pad: 1, saddr: 4, daddr: 20 } as const;
export const SIZE = 32;
export const OFFSETS = { found_ns: 0, ifindex: 8, dmac: 12, smac: 18, pad: 24 } as const;
