// An in-memory stand-in for the addon's netlink calls (the CNI handlers'
// Netlink port), so ADD/DEL/CHECK/GC run in unit tests without root or
// namespaces. It keeps the kernel's contracts the handlers rely on: one link
// table, addresses, main-table routes and neighbours per namespace; a veth is
// created with both ends at once (the peer directly in its namespace) and
// deleting either end deletes the pair with every address, route and
// neighbour on it; a name that exists is EEXIST, a missing device ENODEV, a
// missing namespace path ENOENT; linkDel of a missing link is false. Every
// call goes through a CallLog, which can fail the Nth call of any operation.
import type { Netlink } from '../../src/cni/index.js';
import { NativeError, type AddrInfo, type AddrOptions, type LinkInfo, type LinkSetOptions, type Neigh, type Route, type VethOptions } from '../../src/native/index.js';
import { CallLog } from './calls.js';

type Ns = string | null;

interface FakeLink {
  ifindex: number;
  name: string;
  mtu: number;
  mac: string;
  up: boolean;
  kind?: string;
  peer?: { netns: Ns; name: string };
}

interface NsState {
  links: Map<string, FakeLink>;
  addrs: AddrInfo[];
  routes: Route[];
  neighs: Neigh[];
}

/** What a namespace holds, in a stable order, for comparing whole states. */
export interface NsSnapshot {
  links: Array<Omit<FakeLink, 'ifindex'>>;
  addrs: string[];
  routes: Route[];
  neighs: Neigh[];
}

function nativeError(code: string, errno: number, syscall: string, details = ''): NativeError {
  return new NativeError({ code, errno, syscall, details });
}

function familyOf(cidrOrIp: string): 4 | 6 {
  return cidrOrIp.includes(':') ? 6 : 4;
}

function routeKey(r: Route): string {
  return `${r.table ?? 254}|${r.type ?? 'unicast'}|${r.dst}|${r.metric ?? 0}`;
}

export class FakeNetlink implements Netlink {
  readonly log: CallLog;
  readonly #ns = new Map<Ns, NsState>();
  #nextIfindex = 2;
  #nextMac = 1;

  constructor(log = new CallLog()) {
    this.log = log;
    this.#ns.set(null, FakeNetlink.#emptyNs());
  }

  static #emptyNs(): NsState {
    return { links: new Map(), addrs: [], routes: [], neighs: [] };
  }

  // --- test controls (not logged, never fail)

  /** Creates a network namespace at path (what `ip netns add` would). */
  addNetns(path: string): void {
    if (!this.#ns.has(path)) this.#ns.set(path, FakeNetlink.#emptyNs());
  }

  /** Destroys a namespace: its links go, and so do the peers of its veths. */
  removeNetns(path: string): void {
    const ns = this.#ns.get(path);
    if (!ns) return;
    for (const l of [...ns.links.values()]) this.#remove(path, l);
    this.#ns.delete(path);
  }

  hasNetns(path: string): boolean {
    return this.#ns.has(path);
  }

  /** Adds a link that is not a veth of ours (a node's eth0, someone else's veth). */
  addLink(netns: Ns, name: string, kind?: string): LinkInfo {
    const ns = this.#state(netns, 'test');
    const l: FakeLink = { ifindex: this.#nextIfindex++, name, mtu: 1500, mac: this.#mac(), up: true, ...(kind ? { kind } : {}) };
    ns.links.set(name, l);
    return FakeNetlink.#info(l);
  }

  /** Everything in every namespace, sorted; ifindexes left out (they only grow). */
  snapshot(): Record<string, NsSnapshot> {
    const out: Record<string, NsSnapshot> = {};
    for (const [path, ns] of [...this.#ns.entries()].sort(([a], [b]) => String(a).localeCompare(String(b)))) {
      out[path ?? 'host'] = {
        links: [...ns.links.values()].map(({ ifindex: _, ...rest }) => structuredClone(rest)).sort((a, b) => a.name.localeCompare(b.name)),
        addrs: ns.addrs.map((a) => `${a.ifname} ${a.address}/${a.prefixLen}`).sort(),
        routes: ns.routes.map((r) => structuredClone(r)).sort((a, b) => routeKey(a).localeCompare(routeKey(b))),
        neighs: ns.neighs.map((n) => structuredClone(n)).sort((a, b) => `${a.dev} ${a.ip}`.localeCompare(`${b.dev} ${b.ip}`)),
      };
    }
    return out;
  }

  /** The neighbours of a namespace (the Netlink port has no neighList). */
  neighbours(netns: Ns): Neigh[] {
    return structuredClone(this.#state(netns, 'test').neighs);
  }

  /** Removes one address behind the handlers' back (tampering, for CHECK). */
  tamperAddrDel(netns: Ns, ifname: string, cidr: string): void {
    const ns = this.#state(netns, 'test');
    ns.addrs = ns.addrs.filter((a) => !(a.ifname === ifname && `${a.address}/${a.prefixLen}` === cidr));
  }

  // --- the port

  tcQuery(netns: Ns, ifname: string, direction: 'ingress' | 'egress'): number | undefined {
    this.log.record('netlink', 'tcQuery', [netns, ifname, direction]);
    this.#link(netns, ifname, 'RTM_GETTFILTER');
    return undefined;
  }

  linkAddVeth(netns: Ns, name: string, peerName: string, opts: VethOptions): void {
    this.log.record('netlink', 'linkAddVeth', [netns, name, peerName, opts]);
    const peerNetns = opts.peerNetns === undefined ? netns : opts.peerNetns;
    const ns = this.#state(netns, 'RTM_NEWLINK');
    const peerNs = this.#state(peerNetns, 'RTM_NEWLINK');
    if (ns.links.has(name) || peerNs.links.has(peerName) || (ns === peerNs && name === peerName)) {
      throw nativeError('EEXIST', 17, 'RTM_NEWLINK', 'File exists');
    }
    const mtu = opts.mtu ?? 1500;
    ns.links.set(name, { ifindex: this.#nextIfindex++, name, mtu, mac: opts.mac ?? this.#mac(), up: false, kind: 'veth', peer: { netns: peerNetns, name: peerName } });
    peerNs.links.set(peerName, { ifindex: this.#nextIfindex++, name: peerName, mtu, mac: opts.peerMac ?? this.#mac(), up: false, kind: 'veth', peer: { netns, name } });
  }

  linkGet(netns: Ns, name: string): LinkInfo | undefined {
    this.log.record('netlink', 'linkGet', [netns, name]);
    const l = this.#state(netns, 'RTM_GETLINK').links.get(name);
    return l ? FakeNetlink.#info(l) : undefined;
  }

  linkList(netns: Ns): LinkInfo[] {
    this.log.record('netlink', 'linkList', [netns]);
    return [...this.#state(netns, 'RTM_GETLINK').links.values()].map(FakeNetlink.#info);
  }

  linkSet(netns: Ns, name: string, opts: LinkSetOptions): void {
    this.log.record('netlink', 'linkSet', [netns, name, opts]);
    const l = this.#link(netns, name, 'RTM_SETLINK');
    if (opts.netnsPath !== undefined || opts.newName !== undefined) throw nativeError('EOPNOTSUPP', 95, 'RTM_SETLINK', 'the fake does not move or rename links');
    if (opts.up !== undefined) l.up = opts.up;
    if (opts.mtu !== undefined) l.mtu = opts.mtu;
    if (opts.mac !== undefined) l.mac = opts.mac;
  }

  linkDel(netns: Ns, name: string): boolean {
    this.log.record('netlink', 'linkDel', [netns, name]);
    return this.#del(netns, name);
  }

  async linkDelAsync(netns: Ns, name: string): Promise<boolean> {
    this.log.record('netlink', 'linkDelAsync', [netns, name]);
    await Promise.resolve();
    return this.#del(netns, name);
  }

  addrAdd(netns: Ns, ifname: string, cidr: string, _opts?: AddrOptions): void {
    this.log.record('netlink', 'addrAdd', [netns, ifname, cidr, _opts]);
    const l = this.#link(netns, ifname, 'RTM_NEWADDR');
    const ns = this.#state(netns, 'RTM_NEWADDR');
    const [address, len] = cidr.split('/') as [string, string];
    if (ns.addrs.some((a) => a.ifname === ifname && a.address === address)) throw nativeError('EEXIST', 17, 'RTM_NEWADDR', 'File exists');
    ns.addrs.push({ ifindex: l.ifindex, ifname, family: familyOf(address), address, prefixLen: Number(len) });
  }

  addrList(netns: Ns, ifname?: string): AddrInfo[] {
    this.log.record('netlink', 'addrList', [netns, ifname]);
    return structuredClone(this.#state(netns, 'RTM_GETADDR').addrs.filter((a) => ifname === undefined || a.ifname === ifname));
  }

  routeAdd(netns: Ns, r: Route): void {
    this.log.record('netlink', 'routeAdd', [netns, r]);
    const ns = this.#state(netns, 'RTM_NEWROUTE');
    if (r.dev !== undefined) this.#link(netns, r.dev, 'RTM_NEWROUTE');
    if (ns.routes.some((x) => routeKey(x) === routeKey(r))) throw nativeError('EEXIST', 17, 'RTM_NEWROUTE', 'File exists');
    ns.routes.push(structuredClone(r));
  }

  routeList(netns: Ns, family: 4 | 6): Route[] {
    this.log.record('netlink', 'routeList', [netns, family]);
    return structuredClone(this.#state(netns, 'RTM_GETROUTE').routes.filter((r) => (r.table ?? 254) === 254 && familyOf(r.dst) === family));
  }

  neighAdd(netns: Ns, n: Neigh): void {
    this.log.record('netlink', 'neighAdd', [netns, n]);
    const ns = this.#state(netns, 'RTM_NEWNEIGH');
    this.#link(netns, n.dev, 'RTM_NEWNEIGH');
    // NLM_F_REPLACE, as the addon sends it.
    ns.neighs = ns.neighs.filter((x) => !(x.dev === n.dev && x.ip === n.ip));
    ns.neighs.push(structuredClone(n));
  }

  // --- internals

  #state(netns: Ns, syscall: string): NsState {
    const ns = this.#ns.get(netns);
    if (!ns) throw nativeError('ENOENT', 2, 'open', String(netns));
    void syscall;
    return ns;
  }

  #link(netns: Ns, name: string, syscall: string): FakeLink {
    const l = this.#state(netns, syscall).links.get(name);
    if (!l) throw nativeError('ENODEV', 19, syscall, `no link ${name}`);
    return l;
  }

  #del(netns: Ns, name: string): boolean {
    const l = this.#state(netns, 'RTM_DELLINK').links.get(name);
    if (!l) return false;
    this.#remove(netns, l);
    return true;
  }

  /** Removes a link, its veth peer, and everything on either. */
  #remove(netns: Ns, l: FakeLink): void {
    this.#drop(netns, l.name);
    if (l.peer) this.#drop(l.peer.netns, l.peer.name);
  }

  #drop(netns: Ns, name: string): void {
    const ns = this.#ns.get(netns);
    if (!ns) return;
    ns.links.delete(name);
    ns.addrs = ns.addrs.filter((a) => a.ifname !== name);
    ns.routes = ns.routes.filter((r) => r.dev !== name);
    ns.neighs = ns.neighs.filter((n) => n.dev !== name);
  }

  #mac(): string {
    const n = this.#nextMac++;
    return `02:00:00:00:${((n >> 8) & 0xff).toString(16).padStart(2, '0')}:${(n & 0xff).toString(16).padStart(2, '0')}`;
  }

  static #info(l: FakeLink): LinkInfo {
    return { ifindex: l.ifindex, name: l.name, mtu: l.mtu, mac: l.mac, up: l.up, ...(l.kind ? { kind: l.kind } : {}) };
  }
}
