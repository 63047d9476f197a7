// Mirror of bpf/shared/lb.h: Service frontends, their backends, and the
// per-socket affinity and reverse entries the cgroup programs keep.
import { formatAddress, parseAddressInto } from './address.js';

export const SVC_KEY_SIZE = 20;
export const SVC_KEY_OFFSETS = { family: 0, protocol: 1, port_be: 2, addr: 4 } as const;
export const SVC_SIZE = 8;
export const SVC_OFFSETS = { id: 0, count: 4, rev: 6 } as const;
export const BE_KEY_SIZE = 8;
export const BE_KEY_OFFSETS = { id: 0, slot: 4 } as const;
export const BE_SIZE = 20;
export const BE_OFFSETS = { addr: 0, port_be: 16, family: 18, pad: 19 } as const;
export const SOCK_KEY_SIZE = 32;
export const SOCK_KEY_OFFSETS = { cookie: 0, family: 8, pad: 9, port_be: 10, addr: 12, pad2: 28 } as const;
export const SOCK_SIZE = 24;
export const SOCK_OFFSETS = { addr: 0, port_be: 16, rev: 18, pad: 20 } as const;

export const FLOW_KEY_SIZE = 32;
export const FLOW_KEY_OFFSETS = { netns: 0, family: 8, protocol: 9, port_be: 10, addr: 12, pad: 28 } as const;

export function encodeFlowKey(k: { netns: string; family: 4 | 6; protocol: number; ip: string; port: number }): Buffer {
  const b = Buffer.alloc(FLOW_KEY_SIZE);
  b.writeBigUInt64LE(BigInt(k.netns), FLOW_KEY_OFFSETS.netns);
  b.writeUInt8(k.family, FLOW_KEY_OFFSETS.family);
  b.writeUInt8(k.protocol, FLOW_KEY_OFFSETS.protocol);
  b.writeUInt16BE(k.port, FLOW_KEY_OFFSETS.port_be);
  parseAddressInto(k.family, k.ip, b, FLOW_KEY_OFFSETS.addr);
  return b;
}

/** A frontend as the per-socket and per-flow values hold it. */
export function decodeSockFrontend(b: Buffer, family: 4 | 6): { ip: string; port: number } {
  return { ip: formatAddress(family, b, SOCK_OFFSETS.addr), port: b.readUInt16BE(SOCK_OFFSETS.port_be) };
}

export const PROTO_TCP = 6;
export const PROTO_UDP = 17;

/** A frontend: where a pod addresses the Service. */
export interface SvcKey {
  family: 4 | 6;
  protocol: number;
  ip: string;
  port: number;
}

export interface Svc {
  id: number;
  count: number;
  rev: number;
}

export interface Backend {
  family: 4 | 6;
  ip: string;
  port: number;
}

export function encodeSvcKey(k: SvcKey): Buffer {
  const b = Buffer.alloc(SVC_KEY_SIZE);
  b.writeUInt8(k.family, SVC_KEY_OFFSETS.family);
  b.writeUInt8(k.protocol, SVC_KEY_OFFSETS.protocol);
  b.writeUInt16BE(k.port, SVC_KEY_OFFSETS.port_be);
  parseAddressInto(k.family, k.ip, b, SVC_KEY_OFFSETS.addr);
  return b;
}

export function decodeSvcKey(b: Buffer): SvcKey {
  const family = b.readUInt8(SVC_KEY_OFFSETS.family) as 4 | 6;
  return { family, protocol: b.readUInt8(SVC_KEY_OFFSETS.protocol), port: b.readUInt16BE(SVC_KEY_OFFSETS.port_be), ip: formatAddress(family, b, SVC_KEY_OFFSETS.addr) };
}

export function encodeSvc(v: Svc): Buffer {
  const b = Buffer.alloc(SVC_SIZE);
  b.writeUInt32LE(v.id, SVC_OFFSETS.id);
  b.writeUInt16LE(v.count, SVC_OFFSETS.count);
  b.writeUInt16LE(v.rev & 0xffff, SVC_OFFSETS.rev);
  return b;
}

export function decodeSvc(b: Buffer): Svc {
  return { id: b.readUInt32LE(SVC_OFFSETS.id), count: b.readUInt16LE(SVC_OFFSETS.count), rev: b.readUInt16LE(SVC_OFFSETS.rev) };
}

export function encodeBeKey(k: { id: number; slot: number }): Buffer {
  const b = Buffer.alloc(BE_KEY_SIZE);
  b.writeUInt32LE(k.id, BE_KEY_OFFSETS.id);
  b.writeUInt32LE(k.slot, BE_KEY_OFFSETS.slot);
  return b;
}

export function decodeBeKey(b: Buffer): { id: number; slot: number } {
  return { id: b.readUInt32LE(BE_KEY_OFFSETS.id), slot: b.readUInt32LE(BE_KEY_OFFSETS.slot) };
}

export function encodeBe(v: Backend): Buffer {
  const b = Buffer.alloc(BE_SIZE);
  parseAddressInto(v.family, v.ip, b, BE_OFFSETS.addr);
  b.writeUInt16BE(v.port, BE_OFFSETS.port_be);
  b.writeUInt8(v.family, BE_OFFSETS.family);
  return b;
}

export function decodeBe(b: Buffer): Backend {
  const family = b.readUInt8(BE_OFFSETS.family) as 4 | 6;
  return { family, ip: formatAddress(family, b, BE_OFFSETS.addr), port: b.readUInt16BE(BE_OFFSETS.port_be) };
}

/** netns cookie (u64, little-endian) of one of this node's pods → its host veth ifindex. */
export function encodeNetnsKey(cookie: string): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(cookie));
  return b;
}

export function decodeNetnsKey(b: Buffer): string {
  return b.readBigUInt64LE(0).toString();
}
