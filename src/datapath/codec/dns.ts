// Mirror of bpf/shared/dns.h (sluice_dns_nat_key, sluice_dns_nat_value).
import { isIPv4 } from 'node:net';
import { formatAddress, parseAddressInto } from './address.js';

export const NAT_KEY_SIZE = 20;
export const NAT_KEY_OFFSETS = { family: 0, protocol: 1, port_be: 2, addr: 4 } as const;

export const NAT_SIZE = 24;
export const NAT_OFFSETS = { daddr: 0, dport_be: 16, pad: 18, ifindex: 20 } as const;

export interface NatEntry {
  /** Where the pod sent the query. */
  daddr: string;
  dport: number;
  /** The pod's host-side veth. */
  ifindex: number;
}

/** The client side of an intercepted flow: the pod's address and source port. */
export function encodeNatKey(protocol: number, ip: string, port: number): Buffer {
  const buf = Buffer.alloc(NAT_KEY_SIZE);
  encodeNatKeyInto(buf, isIPv4(ip) ? 4 : 6, protocol, ip, port);
  return buf;
}

/** encodeNatKey into `buf`, whose NAT_KEY_SIZE bytes are zero (a hot path's reused buffer). */
export function encodeNatKeyInto(buf: Buffer, family: 4 | 6, protocol: number, ip: string, port: number): void {
  buf[NAT_KEY_OFFSETS.family] = family;
  buf[NAT_KEY_OFFSETS.protocol] = protocol;
  buf.writeUInt16BE(port, NAT_KEY_OFFSETS.port_be);
  parseAddressInto(family, ip, buf, NAT_KEY_OFFSETS.addr);
}

export function decodeNat(buf: Buffer, family: 4 | 6): NatEntry {
  return {
    daddr: formatAddress(family, buf, NAT_OFFSETS.daddr),
    dport: buf.readUInt16BE(NAT_OFFSETS.dport_be),
    ifindex: buf.readUInt32LE(NAT_OFFSETS.ifindex),
  };
}

// struct sluice_config (one entry, key 0) and sluice_dns_budget (by host ifindex).
export const CONFIG_SIZE = 24;
export const CONFIG_OFFSETS = { dns_cost_ns: 0, dns_burst_ns: 8, flags: 16, pad: 20 } as const;
/** SLUICE_CFG_F_REDIRECT: local pod-to-pod delivery with bpf_redirect_peer (--datapath-redirect). */
export const CFG_F_REDIRECT = 1 << 0;

/** sluice_config: the DNS budget and the node-wide datapath switches. */
export interface NodeConfig {
  dns: { qps: number; burst: number };
  /** --datapath-redirect */
  redirect: boolean;
}
export const BUDGET_SIZE = 24;
export const BUDGET_OFFSETS = { stamp_ns: 0, credit_ns: 8, dropped: 16 } as const;

/** The DNS budget as the datapath spends it: qps 0 = no limit; burst in queries. */
export function encodeConfig(cfg: NodeConfig): Buffer {
  const buf = Buffer.alloc(CONFIG_SIZE);
  const dns = cfg.dns;
  buf.writeUInt32LE(cfg.redirect ? CFG_F_REDIRECT : 0, CONFIG_OFFSETS.flags);
  if (dns.qps > 0) {
    const cost = BigInt(Math.max(1, Math.round(1e9 / dns.qps)));
    buf.writeBigUInt64LE(cost, CONFIG_OFFSETS.dns_cost_ns);
    buf.writeBigUInt64LE(cost * BigInt(Math.max(1, Math.ceil(dns.burst))), CONFIG_OFFSETS.dns_burst_ns);
  }
  return buf;
}

export function decodeBudgetDropped(buf: Buffer): bigint {
  return buf.readBigUInt64LE(BUDGET_OFFSETS.dropped);
}
