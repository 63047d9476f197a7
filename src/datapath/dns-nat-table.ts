// sluice_dns_nat_v1: the translation the datapath made when it redirected a
// pod's DNS query to the proxy, keyed by the pod's side of the flow. The
// proxy looks it up to learn which pod asked and where the query was going.
// The datapath writes it; userspace only reads.
import { isIPv6 } from 'node:net';
import type { BpfMapOps } from '../native/index.js';
import * as dnsCodec from './codec/dns.js';

export type { NatEntry } from './codec/dns.js';

export class DnsNatTable {
  readonly #n: BpfMapOps;
  readonly #fd: number;

  constructor(addon: BpfMapOps, fd: number) {
    this.#n = addon;
    this.#fd = fd;
  }

  /**
   * The intercepted flow whose client side is `ip`:`port` over `protocol`
   * (IPPROTO_UDP or IPPROTO_TCP), or undefined when the datapath never
   * redirected it (or the entry aged out).
   */
  lookup(protocol: number, ip: string, port: number): dnsCodec.NatEntry | undefined {
    const v = this.#n.mapLookup(this.#fd, dnsCodec.encodeNatKey(protocol, ip, port), dnsCodec.NAT_SIZE);
    // The value carries no family: the original destination has the client's.
    return v ? dnsCodec.decodeNat(v, isIPv6(ip) ? 6 : 4) : undefined;
  }
}
