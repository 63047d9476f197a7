// Mirror of bpf/shared/metrics.h (the slot of a (reason, direction, audit)
// in the per-CPU counter array; struct sluice_metrics_value).

/** The array's key: the slot, a u32. */
export const KEY_SIZE = 4;
export const METRICS_DIR_SHIFT = 8;
export const METRICS_AUDIT_SHIFT = 9;
export const METRICS_SLOTS = 1024;

export const SIZE = 16;
export const OFFSETS = { packets: 0, bytes: 8 } as const;

export const DIR_FROM_POD = 0;
export const DIR_TO_POD = 1;

export interface MetricsKey {
  reason: number;
  direction: number;
  /** 1: packets a drop `reason` applied to but an audit-mode policy let pass; absent = 0. */
  audit?: number;
}

export interface MetricsValue {
  packets: bigint;
  bytes: bigint;
}

export function encodeKey(key: MetricsKey): Buffer {
  const buf = Buffer.alloc(KEY_SIZE);
  buf.writeUInt32LE(key.reason | (key.direction << METRICS_DIR_SHIFT) | ((key.audit ?? 0) << METRICS_AUDIT_SHIFT));
  return buf;
}

export function decodeKey(buf: Buffer): MetricsKey {
  const slot = buf.readUInt32LE(0);
  return { reason: slot & 0xff, direction: (slot >> METRICS_DIR_SHIFT) & 1, audit: (slot >> METRICS_AUDIT_SHIFT) & 1 };
}

export function encode(v: MetricsValue): Buffer {
  const buf = Buffer.alloc(SIZE);
  buf.writeBigUInt64LE(v.packets, OFFSETS.packets);
  buf.writeBigUInt64LE(v.bytes, OFFSETS.bytes);
  return buf;
}

export function decode(buf: Buffer, offset = 0): MetricsValue {
  return {
    packets: buf.readBigUInt64LE(offset + OFFSETS.packets),
    bytes: buf.readBigUInt64LE(offset + OFFSETS.bytes),
  };
}

/**
 * Sums a per-CPU value as the kernel returns it: one slot per possible CPU,
 * each rounded up to 8 bytes (SIZE already is).
 */
export function decodePerCpu(buf: Buffer, cpus: number): MetricsValue {
  let packets = 0n;
  let bytes = 0n;
  for (let cpu = 0; cpu < cpus; cpu++) {
    const v = decode(buf, cpu * SIZE);
    packets += v.packets;
    bytes += v.bytes;
  }
  return { packets, bytes };
}
