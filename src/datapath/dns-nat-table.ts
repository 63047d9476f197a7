// sluice_dns_nat_v1: the translation the datapath made when it redirected a
// pod's DNS query to the proxy, keyed by the pod's side of the flow. The
// proxy looks it up to learn which pod asked and where the query was going.
// The datapath writes it; userspace only reads.
import type { BpfMapHandle, BpfMapOps } from '../native/index.js';
import { Ipv4Texts } from '../net/index.js';
import { formatAddress } from './codec/address.js';
import * as dnsCodec from './codec/dns.js';

export type { NatEntry } from './codec/dns.js';

/** What find() found: one object, overwritten by the next find. */
export interface NatFound {
  /** Where the pod sent the query. */
  daddr: string;
  /** The pod's host-side veth. */
  ifindex: number;
}

/**
 * find()'s IPv4 destinations as text, at most this many (they are the
 * resolvers pods ask: few; beyond it the table starts over).
 */
const MAX_DADDR_TEXTS = 1024;

export class DnsNatTable {
  readonly #n: BpfMapOps;
  readonly #fd: number;
  /** One syscall per lookup (the proxy makes one per query); absent with a fake addon. */
  readonly #handle: BpfMapHandle | undefined;
  /** Each lookup's key, written in place (no Buffer per query). */
  readonly #key = Buffer.alloc(dnsCodec.NAT_KEY_SIZE);
  /** The handle's lookups land here (decoded at once, never kept). */
  readonly #value = Buffer.alloc(dnsCodec.NAT_SIZE);
  readonly #found: NatFound = { daddr: '', ifindex: 0 };
  /** An IPv4 destination (as a number) → its text: the same few, for every query. */
  readonly #daddrTexts = new Ipv4Texts(MAX_DADDR_TEXTS);

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
    const v = this.#read(protocol, ip, port);
    return v ? dnsCodec.decodeNat(v, ip.includes(':') ? 6 : 4) : undefined;
  }

  /**
   * lookup() for the proxy's query path, allocating nothing for IPv4: the
   * result is one object that the next find overwrites (read it at once, copy
   * what is kept), its IPv4 destination text from a table by number.
   */
  find(protocol: number, ip: string, port: number): NatFound | undefined {
    const v = this.#read(protocol, ip, port);
    if (!v) return undefined;
    const found = this.#found;
    found.ifindex = v.readUInt32LE(dnsCodec.NAT_OFFSETS.ifindex);
    found.daddr = ip.includes(':') ? formatAddress(6, v, dnsCodec.NAT_OFFSETS.daddr) : this.#daddrTexts.of(v.readUInt32BE(dnsCodec.NAT_OFFSETS.daddr));
    return found;
  }

  /** The value of the flow's entry (valid until the next read), or undefined. */
  #read(protocol: number, ip: string, port: number): Buffer | undefined {
    // The value carries no family: the original destination has the client's
    // (and `ip`, an address, is IPv6 when it has a colon).
    const key = this.#key;
    key.fill(0); // an IPv4 address fills 4 of the 16 address bytes
    dnsCodec.encodeNatKeyInto(key, ip.includes(':') ? 6 : 4, protocol, ip, port);
    if (!this.#handle) return this.#n.mapLookup(this.#fd, key, dnsCodec.NAT_SIZE);
    return this.#handle.lookup(key, this.#value) ? this.#value : undefined;
  }
}
