// Mirror of bpf/shared/flow_event.h (struct sluice_flow_event).
import { formatAddress, parseAddressInto } from './address.js';

export const SIZE = 56;
export const OFFSETS = {
  timestamp_ns: 0,
  ifindex: 8,
  reason: 12,
  direction: 13,
  family: 14,
  protocol: 15,
  saddr: 16,
  daddr: 32,
  sport_be: 48,
  dport_be: 50,
  flags: 52,
  pad: 53,
} as const;

/** SLUICE_EVENT_F_AUDIT: passed although `reason` (a drop) applied, by an audit-mode policy. */
export const FLAG_AUDIT = 1;

export interface FlowEvent {
  timestampNs: bigint;
  ifindex: number;
  reason: number;
  direction: number;
  /** 4, 6, or 0 when the packet was not IP. */
  family: number;
  protocol: number;
  saddr: string;
  daddr: string;
  sport: number;
  dport: number;
  /** FLAG_*; absent = 0. */
  flags?: number;
}

export function decode(buf: Buffer): FlowEvent {
  const family = buf.readUInt8(OFFSETS.family);
  return {
    timestampNs: buf.readBigUInt64LE(OFFSETS.timestamp_ns),
    ifindex: buf.readUInt32LE(OFFSETS.ifindex),
    reason: buf.readUInt8(OFFSETS.reason),
    direction: buf.readUInt8(OFFSETS.direction),
    family,
    protocol: buf.readUInt8(OFFSETS.protocol),
    saddr: formatAddress(family, buf, OFFSETS.saddr),
    daddr: formatAddress(family, buf, OFFSETS.daddr),
    sport: buf.readUInt16BE(OFFSETS.sport_be),
    dport: buf.readUInt16BE(OFFSETS.dport_be),
    flags: buf.readUInt8(OFFSETS.flags),
  };
}

export function encode(ev: FlowEvent): Buffer {
  const buf = Buffer.alloc(SIZE);
  buf.writeBigUInt64LE(ev.timestampNs, OFFSETS.timestamp_ns);
  buf.writeUInt32LE(ev.ifindex, OFFSETS.ifindex);
  buf.writeUInt8(ev.reason, OFFSETS.reason);
  buf.writeUInt8(ev.direction, OFFSETS.direction);
  buf.writeUInt8(ev.family, OFFSETS.family);
  buf.writeUInt8(ev.protocol, OFFSETS.protocol);
  parseAddressInto(ev.family, ev.saddr, buf, OFFSETS.saddr);
  parseAddressInto(ev.family, ev.daddr, buf, OFFSETS.daddr);
  buf.writeUInt16BE(ev.sport, OFFSETS.sport_be);
  buf.writeUInt16BE(ev.dport, OFFSETS.dport_be);
  buf.writeUInt8(ev.flags ?? 0, OFFSETS.flags);
  return buf;
}
