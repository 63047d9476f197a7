// Mirror of bpf/shared/endpoint.h (struct sluice_endpoint_key, sluice_endpoint).

export const KEY_SIZE = 4;
export const KEY_OFFSETS = { ifindex: 0 } as const;

export const SIZE = 8;
export const OFFSETS = { identity: 0, flags: 4 } as const;

/** SLUICE_EP_F_DROP_ALL: drop every packet of this endpoint. */
export const FLAG_DROP_ALL = 1 << 0;

export interface Endpoint {
  identity: number;
  flags: number;
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
  return buf;
}

export function decode(buf: Buffer): Endpoint {
  return { identity: buf.readUInt32LE(OFFSETS.identity), flags: buf.readUInt32LE(OFFSETS.flags) };
}
