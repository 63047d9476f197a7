// Mirror of bpf/shared/local.h (sluice_local_ep); the key is sluice_ipcache_key.
import { encodeKey as encodeIpKey, decodeKey as decodeIpKey, KEY_SIZE as IP_KEY_SIZE } from './ipcache.js';

export const KEY_SIZE = IP_KEY_SIZE;
export const SIZE = 16;
export const OFFSETS = { ifindex: 0, pod_mac: 4, host_mac: 10 } as const;

/** A local pod by address: its host veth and the MACs a frame delivered to it carries. */
export interface LocalEndpoint {
  ifindex: number;
  /** The pod's eth0 ("aa:bb:cc:dd:ee:ff"). */
  podMac: string;
  /** The host-side veth's. */
  hostMac: string;
}

export const encodeKey = encodeIpKey;
export const decodeKey = decodeIpKey;

function macBytes(mac: string): Buffer {
  const parts = mac.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) throw new Error(`not a MAC address: ${JSON.stringify(mac)}`);
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

function macText(buf: Buffer, off: number): string {
  return [...buf.subarray(off, off + 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

export function encode(ep: LocalEndpoint): Buffer {
  const buf = Buffer.alloc(SIZE);
  buf.writeUInt32LE(ep.ifindex >>> 0, OFFSETS.ifindex);
  macBytes(ep.podMac).copy(buf, OFFSETS.pod_mac);
  macBytes(ep.hostMac).copy(buf, OFFSETS.host_mac);
  return buf;
}

export function decode(buf: Buffer): LocalEndpoint {
  return { ifindex: buf.readUInt32LE(OFFSETS.ifindex), podMac: macText(buf, OFFSETS.pod_mac), hostMac: macText(buf, OFFSETS.host_mac) };
}
