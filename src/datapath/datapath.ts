// The per-node datapath: one loaded copy of build/bpf/sluice.o whose maps are
// pinned under --bpffs (so they outlive the agent and a restarted agent adopts
// them), and the two entry programs attached to each pod's host-side veth.
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { native, type BpfAddon, type CgroupAttach, type NativeError, type ObjLoadResult } from '../native/index.js';
import * as dnsCodec from './codec/dns.js';
import * as endpointCodec from './codec/endpoint.js';
import * as flowEventCodec from './codec/flow-event.js';
import * as fqdnCodec from './codec/fqdn.js';
import * as ipcacheCodec from './codec/ipcache.js';
import * as localCodec from './codec/local.js';
import * as metricsCodec from './codec/metrics.js';
import { DnsNatTable } from './dns-nat-table.js';
import { DatapathError } from './errors.js';
import { FqdnAllowMap } from './fqdn-allow-map.js';
import { BpfMap, type MapCodec } from './maps.js';
import { PolicyMap } from './policy-map.js';
import { bpfObjectPath } from './paths.js';
import { ServiceTable } from './service-table.js';

export const PROG_FROM_POD = 'sluice_from_pod';
export const PROG_TO_POD = 'sluice_to_pod';
/** On the node's own links (tc ingress): steers resolvers' answers to the DNS proxy's per-pod sockets. */
export const PROG_FROM_NODE = 'sluice_from_node';
export const MAP_ENDPOINTS = 'sluice_endpoints_v3';
export const MAP_METRICS = 'sluice_metrics_v2';
export const MAP_EVENTS = 'sluice_events_v1';
export const MAP_IPCACHE = 'sluice_ipcache_v1';
export const MAP_CIDR = 'sluice_cidr_v1';
export const MAP_POLICY = 'sluice_policy_v1';
export const MAP_CONNTRACK = 'sluice_ct_v1';
export const MAP_FQDN = 'sluice_fqdn_v1';
export const MAP_FQDN_RULES = 'sluice_fqdn_rules_v1';
export const MAP_DNS_NAT = 'sluice_dns_nat_v1';
export const MAP_CONFIG = 'sluice_config_v2';
/** This node's pods by address: where sluice_from_pod may deliver directly (bpf_redirect_peer). */
export const MAP_LOCAL = 'sluice_local_v1';
export const MAP_DNS_BUDGET = 'sluice_dns_budget_v1';
export const MAP_FRAG = 'sluice_frag_v1';
/** Routed flows' next hops (kernel-only; counted by `sluice status`). */
export const MAP_NEXTHOP = 'sluice_nh_v1';
export const MAP_LB_SVC = 'sluice_lb_svc_v1';
export const MAP_LB_BE = 'sluice_lb_be_v1';
export const MAP_LB_NETNS = 'sluice_lb_netns_v1';
export const MAP_LB_AFF = 'sluice_lb_aff_v1';
export const MAP_LB_REV = 'sluice_lb_rev_v1';
export const MAP_LB_FLOW = 'sluice_lb_flow_v1';
/** Service translation programs (cgroup sock_addr hooks), by the hook each goes on. */
export const LB_PROGS: ReadonlyArray<[CgroupAttach, string]> = [
  ['connect4', 'sluice_lb_connect4'],
  ['connect6', 'sluice_lb_connect6'],
  ['sendmsg4', 'sluice_lb_sendmsg4'],
  ['sendmsg6', 'sluice_lb_sendmsg6'],
  ['recvmsg4', 'sluice_lb_recvmsg4'],
  ['recvmsg6', 'sluice_lb_recvmsg6'],
  ['getpeername4', 'sluice_lb_getpeername4'],
  ['getpeername6', 'sluice_lb_getpeername6'],
];

/**
 * Pins of map layouts this version no longer uses. Programs of an earlier
 * version keep them alive (and keep enforcing) until the agent re-attaches
 * its own; then they are removed (removeRetiredPins).
 */
// sluice_metrics_v1 (a per-CPU hash): its counts are not carried over, the
// datapath's counters start again from zero once (as after a node reboot).
const RETIRED_PINS = ['sluice_endpoints_v1', 'sluice_endpoints_v2', 'sluice_config_v1', 'sluice_metrics_v1'];

/** tc filter slot we own on each veth; replaced in place on re-attach. */
const TC_PRIORITY = 1;
const TC_HANDLE = 1;
/**
 * The slot on the node's own links: apart from the usual 1/1 (another tool's
 * filter there is left alone), and run before filters of higher numbers.
 */
const NODE_TC_PRIORITY = 0x5c1;
const NODE_TC_HANDLE = 0x5c1;
/** sluice_config_v1 is an array of one entry. */
const CONFIG_KEY = 0;

const endpointMapCodec: MapCodec<number, endpointCodec.Endpoint> = {
  keySize: endpointCodec.KEY_SIZE,
  valueSize: endpointCodec.SIZE,
  encodeKey: endpointCodec.encodeKey,
  decodeKey: endpointCodec.decodeKey,
  encodeValue: endpointCodec.encode,
  decodeValue: endpointCodec.decode,
};

const ipcacheMapCodec: MapCodec<string, number> = {
  keySize: ipcacheCodec.KEY_SIZE,
  valueSize: ipcacheCodec.VALUE_SIZE,
  encodeKey: ipcacheCodec.encodeKey,
  decodeKey: ipcacheCodec.decodeKey,
  encodeValue: ipcacheCodec.encodeValue,
  decodeValue: ipcacheCodec.decodeValue,
};

const cidrMapCodec: MapCodec<string, number> = {
  keySize: ipcacheCodec.CIDR_KEY_SIZE,
  valueSize: ipcacheCodec.VALUE_SIZE,
  encodeKey: ipcacheCodec.encodeCidrKey,
  decodeKey: ipcacheCodec.decodeCidrKey,
  encodeValue: ipcacheCodec.encodeValue,
  decodeValue: ipcacheCodec.decodeValue,
};

function u32Key(n: number): Buffer {
  const buf = Buffer.alloc(4);
  buf.writeUInt32LE(n >>> 0, 0);
  return buf;
}

const configMapCodec: MapCodec<number, dnsCodec.NodeConfig> = {
  keySize: 4,
  valueSize: dnsCodec.CONFIG_SIZE,
  encodeKey: u32Key,
  decodeKey: (b) => b.readUInt32LE(0),
  encodeValue: dnsCodec.encodeConfig,
  decodeValue: () => {
    throw new DatapathError('SLUICE_DATAPATH', `${MAP_CONFIG} is write-only from userspace`);
  },
};

/** By host ifindex: what each pod sent over its DNS budget. */
const budgetMapCodec: MapCodec<number, bigint> = {
  keySize: 4,
  valueSize: dnsCodec.BUDGET_SIZE,
  encodeKey: u32Key,
  decodeKey: (b) => b.readUInt32LE(0),
  encodeValue: () => {
    throw new DatapathError('SLUICE_DATAPATH', `${MAP_DNS_BUDGET} is written by the datapath only`);
  },
  decodeValue: dnsCodec.decodeBudgetDropped,
};

export interface DatapathOptions {
  /** Directory on a bpffs where maps are pinned (--bpffs). */
  bpffs: string;
  /** Override the compiled object (tests). */
  objectPath?: string;
  maxEndpoints?: number;
  maxPolicyEntries?: number;
  maxConntrack?: number;
  maxFqdnEntries?: number;
}

export interface MetricsRow {
  reason: number;
  direction: number;
  /** 1: packets `reason` (a drop) applied to but an audit-mode policy let pass. */
  audit: number;
  packets: bigint;
  bytes: bigint;
}

export function isBpffs(path: string): boolean {
  // The mount that holds `path` must be of type bpf: the longest mount point
  // that is a prefix of it.
  let best = '';
  let type = '';
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const [, mnt, fstype] = line.split(' ');
    if (!mnt || !fstype) continue;
    const prefix = mnt.endsWith('/') ? mnt : `${mnt}/`;
    if ((path === mnt || path.startsWith(prefix)) && mnt.length >= best.length) {
      best = mnt;
      type = fstype;
    }
  }
  return type === 'bpf';
}

export class Datapath {
  /** The addon's BPF surface: the real one, or an in-memory fake in unit tests. */
  readonly #n: BpfAddon;
  readonly #progs: Record<string, number>;
  readonly #maps: Record<string, number>;
  readonly #cpus: number;
  #closed = false;
  /** What sluice_config holds (it is written whole). */
  #config: dnsCodec.NodeConfig = { dns: { qps: 0, burst: 0 }, redirect: false };
  /** Typed maps, made on first use (a map a caller never touches costs nothing). */
  #typed = new Map<string, unknown>();

  private constructor(addon: BpfAddon, progs: Record<string, number>, maps: Record<string, number>) {
    this.#n = addon;
    this.#progs = progs;
    this.#maps = maps;
    this.#cpus = addon.numPossibleCpus();
  }

  /**
   * Unpins the maps of retired layouts. Only after every endpoint runs this
   * version's programs: until then an older program may still read them.
   */
  static removeRetiredPins(bpffs: string): string[] {
    const removed: string[] = [];
    for (const name of RETIRED_PINS) {
      try {
        rmSync(join(bpffs, name));
        removed.push(name);
      } catch {
        // not there
      }
    }
    return removed;
  }

  /** The addon this datapath's maps live in: for the map writers of this module (src/datapath). */
  get bpf(): BpfAddon {
    return this.#n;
  }

  /** Loads (or adopts the pins of) the object; `addon` defaults to the real one. */
  static open(opts: DatapathOptions, addon: BpfAddon = native()): Datapath {
    if (!isBpffs(opts.bpffs)) {
      throw new DatapathError('SLUICE_BPFFS_MISSING', `${opts.bpffs} is not on a bpf filesystem: mount one (mount -t bpf bpf /sys/fs/bpf) or pass --bpffs`);
    }
    const path = opts.objectPath ?? bpfObjectPath('sluice.o');
    const maxEntries: Record<string, number> = {};
    if (opts.maxEndpoints !== undefined) {
      maxEntries[MAP_ENDPOINTS] = opts.maxEndpoints;
      // An IPv4 and an IPv6 address per endpoint.
      maxEntries[MAP_LOCAL] = 2 * opts.maxEndpoints;
    }
    if (opts.maxPolicyEntries !== undefined) maxEntries[MAP_POLICY] = opts.maxPolicyEntries;
    if (opts.maxConntrack !== undefined) maxEntries[MAP_CONNTRACK] = opts.maxConntrack;
    if (opts.maxFqdnEntries !== undefined) maxEntries[MAP_FQDN] = opts.maxFqdnEntries;
    let loaded: { progs: Record<string, number>; maps: Record<string, number> };
    try {
      loaded = addon.objLoad(path, { pinRoot: opts.bpffs, maxEntries });
    } catch (err) {
      const e = err as NativeError;
      throw new DatapathError('SLUICE_DATAPATH', `loading ${path}: ${e.message}${e.details ? `\n${e.details}` : ''}`, { cause: err });
    }
    return Datapath.#fromLoaded(addon, loaded, path);
  }

  /**
   * A datapath over programs and maps already loaded, e.g. by an in-memory
   * fake addon's objLoad: the agent's logic then runs in unit tests without
   * a kernel. Takes ownership of the fds.
   */
  static fromLoaded(addon: BpfAddon, loaded: ObjLoadResult): Datapath {
    return Datapath.#fromLoaded(addon, loaded, 'the loaded object');
  }

  static #fromLoaded(addon: BpfAddon, loaded: ObjLoadResult, what: string): Datapath {
    for (const name of [PROG_FROM_POD, PROG_TO_POD, PROG_FROM_NODE, ...LB_PROGS.map(([, p]) => p)]) {
      if (loaded.progs[name] === undefined) throw new DatapathError('SLUICE_DATAPATH', `${what} has no program ${name}`);
    }
    return new Datapath(addon, loaded.progs, loaded.maps);
  }

  /**
   * A map's fd, for code that has no typed map yet (the policy writer). New
   * code uses the typed maps below; nothing outside src/datapath holds an fd.
   */
  mapFd(name: string): number {
    const fd = this.#maps[name];
    if (fd === undefined) throw new DatapathError('SLUICE_DATAPATH', `no map ${name}`);
    return fd;
  }

  progFd(name: string): number {
    const fd = this.#progs[name];
    if (fd === undefined) throw new DatapathError('SLUICE_DATAPATH', `no program ${name}`);
    return fd;
  }

  /** One typed map per name, made once. */
  #typedMap<T>(name: string, make: (fd: number) => T): T {
    let m = this.#typed.get(name) as T | undefined;
    if (m === undefined) {
      m = make(this.mapFd(name));
      this.#typed.set(name, m);
    }
    return m;
  }

  #map<K, V>(name: string, codec: MapCodec<K, V>): BpfMap<K, V> {
    return this.#typedMap(name, (fd) => new BpfMap(this.#n, fd, name, codec));
  }

  /** sluice_endpoints: host veth ifindex → endpoint entry. */
  get endpoints(): BpfMap<number, endpointCodec.Endpoint> {
    return this.#map(MAP_ENDPOINTS, endpointMapCodec);
  }

  /** sluice_local: this node's pod addresses → host veth and MACs (local delivery). */
  get localEndpoints(): BpfMap<string, localCodec.LocalEndpoint> {
    return this.#map(MAP_LOCAL, {
      keySize: localCodec.KEY_SIZE,
      valueSize: localCodec.SIZE,
      encodeKey: localCodec.encodeKey,
      decodeKey: localCodec.decodeKey,
      encodeValue: localCodec.encode,
      decodeValue: localCodec.decode,
    });
  }

  /** sluice_ipcache: exact address → identity. */
  get ipcache(): BpfMap<string, number> {
    return this.#map(MAP_IPCACHE, ipcacheMapCodec);
  }

  /** sluice_cidr: ipBlock prefix ("10.0.0.0/8") → CIDR identity. */
  get cidrs(): BpfMap<string, number> {
    return this.#map(MAP_CIDR, cidrMapCodec);
  }

  /** sluice_fqdn_rules: policy_id → the FQDN rules of that generation. */
  get fqdnRules(): BpfMap<number, readonly number[]> {
    return this.#map(MAP_FQDN_RULES, {
      keySize: fqdnCodec.RULES_KEY_SIZE,
      valueSize: fqdnCodec.RULES_SIZE,
      encodeKey: fqdnCodec.encodeRulesKey,
      decodeKey: fqdnCodec.decodeRulesKey,
      encodeValue: fqdnCodec.encodeRules,
      decodeValue: fqdnCodec.decodeRules,
    });
  }

  /** sluice_policy: every generation's allow entries (trie keys). */
  get policy(): PolicyMap {
    return this.#typedMap(MAP_POLICY, (fd) => new PolicyMap(this.#n, fd, MAP_POLICY));
  }

  /** sluice_fqdn: (FQDN rule, learned address) → expiry. */
  /** sluice_lb_svc_v1, sluice_lb_be_v1, sluice_lb_netns_v1: Service translation. */
  get services(): ServiceTable {
    return this.#typedMap(MAP_LB_SVC, () => new ServiceTable(this.#n, { svc: this.mapFd(MAP_LB_SVC), be: this.mapFd(MAP_LB_BE), netns: this.mapFd(MAP_LB_NETNS), flow: this.mapFd(MAP_LB_FLOW) }, { svc: MAP_LB_SVC, be: MAP_LB_BE, netns: MAP_LB_NETNS }));
  }

  /**
   * Puts the Service translation programs on the cgroup v2 hierarchy at
   * `cgroupRoot` (every process below it; the programs themselves act only
   * for this node's pods), as bpf_links pinned in `pinDir`, so they outlive
   * the agent; a restarted agent swaps its programs into the same links.
   */
  attachServices(cgroupRoot: string, pinDir: string): Array<'created' | 'updated'> {
    return LB_PROGS.map(([attach, prog]) => this.#n.cgroupLink(cgroupRoot, this.progFd(prog), attach, join(pinDir, `sluice_link_${attach}_v1`)));
  }

  get fqdnAllows(): FqdnAllowMap {
    return this.#typedMap(MAP_FQDN, (fd) => new FqdnAllowMap(this.#n, fd, MAP_FQDN));
  }

  /** sluice_dns_nat: what the datapath redirected to the DNS proxy (read-only here). */
  get dnsNat(): DnsNatTable {
    return this.#typedMap(MAP_DNS_NAT, (fd) => new DnsNatTable(this.#n, fd));
  }

  upsertEndpoint(ifindex: number, ep: endpointCodec.Endpoint): void {
    this.endpoints.set(ifindex, ep);
  }

  /** The pinned ipcache as it is (for diffing after a restart). */
  dumpIpcache(): Map<string, number> {
    return new Map(this.ipcache.dump());
  }

  /** The pinned ipBlock prefixes as they are. */
  dumpCidrs(): Map<string, number> {
    return new Map(this.cidrs.dump());
  }

  getEndpoint(ifindex: number): endpointCodec.Endpoint | undefined {
    return this.endpoints.get(ifindex);
  }

  deleteEndpoint(ifindex: number): boolean {
    return this.endpoints.delete(ifindex);
  }

  listEndpoints(): Map<number, endpointCodec.Endpoint> {
    return new Map(this.endpoints.dump());
  }

  /**
   * Attaches both entry programs to a host-side veth (in `netns`, or the
   * caller's netns when null). The endpoint entry must exist first: until it
   * does, the programs drop everything on that veth (fail closed).
   */
  attach(netns: string | null, ifname: string): void {
    const n = this.#n;
    const opts = { priority: TC_PRIORITY, handle: TC_HANDLE };
    n.tcAttach(netns, ifname, 'ingress', this.progFd(PROG_FROM_POD), opts);
    n.tcAttach(netns, ifname, 'egress', this.progFd(PROG_TO_POD), opts);
  }

  /** Whether both entry programs are attached to the veth (in our tc slot). */
  attached(netns: string | null, ifname: string): boolean {
    const n = this.#n;
    const opts = { priority: TC_PRIORITY, handle: TC_HANDLE };
    return n.tcQuery(netns, ifname, 'ingress', opts) !== undefined && n.tcQuery(netns, ifname, 'egress', opts) !== undefined;
  }

  detach(netns: string | null, ifname: string): void {
    const n = this.#n;
    const opts = { priority: TC_PRIORITY, handle: TC_HANDLE };
    n.tcDetach(netns, ifname, 'ingress', opts);
    n.tcDetach(netns, ifname, 'egress', opts);
  }

  /**
   * Attaches sluice_from_node to one of the node's own links (tc ingress, its
   * own slot): it only marks resolvers' answers for the DNS proxy's per-pod
   * sockets and lets every packet on to any filter after it.
   */
  attachNodeLink(netns: string | null, ifname: string): void {
    this.#n.tcAttach(netns, ifname, 'ingress', this.progFd(PROG_FROM_NODE), { priority: NODE_TC_PRIORITY, handle: NODE_TC_HANDLE });
  }

  /** Whether sluice_from_node is in its slot on the link. */
  nodeLinkAttached(netns: string | null, ifname: string): boolean {
    return this.#n.tcQuery(netns, ifname, 'ingress', { priority: NODE_TC_PRIORITY, handle: NODE_TC_HANDLE }) !== undefined;
  }

  /**
   * Each pod's DNS budget, spent in the datapath before interception: `qps`
   * queries (UDP) or new connections (TCP) per second, bursts of `burst`;
   * qps 0 lifts the limit. Over it, queries drop as dns-rate-limited.
   */
  setDnsRateLimit(qps: number, burst: number): void {
    this.#config = { ...this.#config, dns: { qps, burst } };
    this.#map(MAP_CONFIG, configMapCodec).set(CONFIG_KEY, this.#config);
  }

  /**
   * --datapath-redirect: a packet between two of this node's pods, allowed
   * by both pods' policies, is judged for both in sluice_from_pod and
   * delivered straight into the receiving pod (bpf_redirect_peer); off, every
   * packet goes through the node's stack and sluice_to_pod, as before.
   * Flows already open keep the path they started on.
   */
  setRedirect(on: boolean): void {
    this.#config = { ...this.#config, redirect: on };
    this.#map(MAP_CONFIG, configMapCodec).set(CONFIG_KEY, this.#config);
  }

  /** Queries each pod (by host ifindex) sent over its DNS budget. */
  dnsRateLimitDrops(): Map<number, bigint> {
    return new Map(this.#map(MAP_DNS_BUDGET, budgetMapCodec).entries());
  }

  /** Per-(reason, direction, audit) counters summed over CPUs, the ones that counted a packet. */
  metrics(): MetricsRow[] {
    const cpus = this.#cpus;
    // Per-CPU: one value slot per possible CPU, summed here.
    const perCpu = this.#map<metricsCodec.MetricsKey, metricsCodec.MetricsValue>(MAP_METRICS, {
      keySize: metricsCodec.KEY_SIZE,
      valueSize: metricsCodec.SIZE * cpus,
      encodeKey: metricsCodec.encodeKey,
      decodeKey: metricsCodec.decodeKey,
      encodeValue: () => {
        throw new DatapathError('SLUICE_DATAPATH', `${MAP_METRICS} is written by the datapath only`);
      },
      decodeValue: (b) => metricsCodec.decodePerCpu(b, cpus),
    });
    // Every slot of the array exists: the ones never counted are left out.
    return perCpu
      .dump()
      .filter(([, v]) => v.packets > 0n)
      .map(([key, v]) => ({ ...key, audit: key.audit ?? 0, ...v }))
      .sort((a, b) => a.reason - b.reason || a.direction - b.direction || a.audit - b.audit);
  }

  /** Opens a reader of flow events; the caller polls and closes it. */
  openEvents(): FlowEventReader {
    return new FlowEventReader(this.#n.ringbufOpen(this.mapFd(MAP_EVENTS)), this.#n);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const n = this.#n;
    // Typed maps with a handle of their own (a dup of the map's fd) let go of it.
    for (const m of this.#typed.values()) if (m instanceof DnsNatTable || m instanceof FqdnAllowMap) m.close();
    for (const fd of [...Object.values(this.#progs), ...Object.values(this.#maps)]) n.close(fd);
  }
}

export class FlowEventReader {
  readonly #handle: number;
  readonly #n: Pick<BpfAddon, 'ringbufEpollFd' | 'ringbufConsume' | 'ringbufClose'>;
  #closed = false;
  constructor(handle: number, addon: Pick<BpfAddon, 'ringbufEpollFd' | 'ringbufConsume' | 'ringbufClose'> = native()) {
    this.#handle = handle;
    this.#n = addon;
  }
  /** The fd to poll for readability (epoll), for an event loop watcher. */
  get fd(): number {
    return this.#n.ringbufEpollFd(this.#handle);
  }
  /** Takes what is in the ring now, without blocking. */
  drain(max = 4096): flowEventCodec.FlowEvent[] {
    return this.#n
      .ringbufConsume(this.#handle, max)
      .map((b) => flowEventCodec.decode(b));
  }
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#n.ringbufClose(this.#handle);
  }
}
