// sluice_dns_nat_v1: the translation the datapath made when it redirected a
// pod's DNS query to the proxy, keyed by the pod's side of the flow. The
// proxy looks it up to learn which pod asked and where the query was going.
// The datapath writes it; userspace only reads.
import type { BpfMapHandle, BpfMapOps } from '../native/index.js';
import * as dnsCodec from './codec/dns.js';

export type { NatEntry } from './codec/dns.js';

export class DnsNatTable {
  readonly #n: BpfMapOps;
  readonly #fd: number;
  /** One syscall per lookup (the proxy makes one per query); absent with a fake addon. */
  readonly #handle: BpfMapHandle | undefined;
  /** The handle's lookups land here (decoded at once, never kept). */
  readonly #value = Buffer.alloc(dnsCodec.NAT_SIZE);

  constructor(addon: BpfMapOps, fd: number) {
    this.#n = addon;
    this.#fd = fd;
    this.#handle = addon.MapHandle ? new addon.MapHandle(fd) : undefined;
  }

  /** Lets go of the handle's fd (Datapath.close). */
  close(): void {
    this.#handle?.close();
  }

  /**
   * The intercepted flow whose client side is `ip`:`port` over `protocol`
   * (IPPROTO_UDP or IPPROTO_TCP), or undefined when the datapath never
   * redirected it (or the entry aged out).
   */
  lookup(protocol: number, ip: string, port: number): dnsCodec.NatEntry | undefined {
    const key = dnsCodec.encodeNatKey(protocol, ip, port);
    const v = this.#handle ? (this.#handle.lookup(key, this.#value) ? this.#value : undefined) : this.#n.mapLookup(this.#fd, key, dnsCodec.NAT_SIZE);
    // The value carries no family: the original destination has the client's
    // (and `ip`, which encodeNatKey accepted, is an address: a colon means IPv6).
    return v ? dnsCodec.decodeNat(v, ip.includes(':') ? 6 : 4) : undefined;
  }
}
