// The per-node datapath: one loaded copy of build/bpf/sluice.o whose maps are
// pinned under --bpffs (so they outlive the agent and a restarted agent adopts
// them), and the two entry programs attached to each pod's host-side veth.
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { native, type NativeError } from '../native/index.js';
import * as dnsCodec from './codec/dns.js';
import * as endpointCodec from './codec/endpoint.js';
import * as flowEventCodec from './codec/flow-event.js';
import * as ipcacheCodec from './codec/ipcache.js';
import * as metricsCodec from './codec/metrics.js';
import { DatapathError } from './errors.js';
import { bpfObjectPath } from './paths.js';

export const PROG_FROM_POD = 'sluice_from_pod';
export const PROG_TO_POD = 'sluice_to_pod';
export const MAP_ENDPOINTS = 'sluice_endpoints_v3';
export const MAP_METRICS = 'sluice_metrics_v1';
export const MAP_EVENTS = 'sluice_events_v1';
export const MAP_IPCACHE = 'sluice_ipcache_v1';
export const MAP_CIDR = 'sluice_cidr_v1';
export const MAP_POLICY = 'sluice_policy_v1';
export const MAP_CONNTRACK = 'sluice_ct_v1';
export const MAP_FQDN = 'sluice_fqdn_v1';
export const MAP_FQDN_RULES = 'sluice_fqdn_rules_v1';
export const MAP_DNS_NAT = 'sluice_dns_nat_v1';
export const MAP_CONFIG = 'sluice_config_v1';
export const MAP_DNS_BUDGET = 'sluice_dns_budget_v1';
export const MAP_FRAG = 'sluice_frag_v1';

/**
 * Pins of map layouts this version no longer uses. Programs of an earlier
 * version keep them alive (and keep enforcing) until the agent re-attaches
 * its own; then they are removed (removeRetiredPins).
 */
const RETIRED_PINS = ['sluice_endpoints_v1', 'sluice_endpoints_v2'];

/** tc filter slot we own on each veth; replaced in place on re-attach. */
const TC_PRIORITY = 1;
const TC_HANDLE = 1;
const BPF_ANY = 0;

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
  readonly #progs: Record<string, number>;
  readonly #maps: Record<string, number>;
  readonly #cpus: number;
  #closed = false;

  private constructor(progs: Record<string, number>, maps: Record<string, number>) {
    this.#progs = progs;
    this.#maps = maps;
    this.#cpus = native().numPossibleCpus();
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

  static open(opts: DatapathOptions): Datapath {
    if (!isBpffs(opts.bpffs)) {
      throw new DatapathError('SLUICE_BPFFS_MISSING', `${opts.bpffs} is not on a bpf filesystem: mount one (mount -t bpf bpf /sys/fs/bpf) or pass --bpffs`);
    }
    const path = opts.objectPath ?? bpfObjectPath('sluice.o');
    const maxEntries: Record<string, number> = {};
    if (opts.maxEndpoints !== undefined) maxEntries[MAP_ENDPOINTS] = opts.maxEndpoints;
    if (opts.maxPolicyEntries !== undefined) maxEntries[MAP_POLICY] = opts.maxPolicyEntries;
    if (opts.maxConntrack !== undefined) maxEntries[MAP_CONNTRACK] = opts.maxConntrack;
    if (opts.maxFqdnEntries !== undefined) maxEntries[MAP_FQDN] = opts.maxFqdnEntries;
    let loaded: { progs: Record<string, number>; maps: Record<string, number> };
    try {
      loaded = native().objLoad(path, { pinRoot: opts.bpffs, maxEntries });
    } catch (err) {
      const e = err as NativeError;
      throw new DatapathError('SLUICE_DATAPATH', `loading ${path}: ${e.message}${e.details ? `\n${e.details}` : ''}`, { cause: err });
    }
    for (const name of [PROG_FROM_POD, PROG_TO_POD]) {
      if (loaded.progs[name] === undefined) throw new DatapathError('SLUICE_DATAPATH', `${path} has no program ${name}`);
    }
    return new Datapath(loaded.progs, loaded.maps);
  }

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

  upsertEndpoint(ifindex: number, ep: endpointCodec.Endpoint): void {
    try {
      native().mapUpdate(this.mapFd(MAP_ENDPOINTS), endpointCodec.encodeKey(ifindex), endpointCodec.encode(ep), BPF_ANY);
    } catch (err) {
      if ((err as NativeError).code === 'E2BIG' || (err as NativeError).code === 'ENOSPC') {
        throw new DatapathError('SLUICE_MAP_FULL', `${MAP_ENDPOINTS} is full`, { cause: err });
      }
      throw err;
    }
  }

  /** Every entry of a map, decoded. */
  #dump<K, V>(name: string, keySize: number, valueSize: number, decodeKey: (b: Buffer) => K, decodeValue: (b: Buffer) => V): Array<[K, V]> {
    const fd = this.mapFd(name);
    const { keys, values, count } = native().mapLookupBatch(fd, keySize, valueSize, native().mapInfo(fd).maxEntries);
    const out: Array<[K, V]> = [];
    for (let i = 0; i < count; i++) out.push([decodeKey(keys.subarray(i * keySize, (i + 1) * keySize)), decodeValue(values.subarray(i * valueSize, (i + 1) * valueSize))]);
    return out;
  }

  /** The pinned ipcache as it is (for diffing after a restart). */
  dumpIpcache(): Map<string, number> {
    return new Map(this.#dump(MAP_IPCACHE, ipcacheCodec.KEY_SIZE, ipcacheCodec.VALUE_SIZE, ipcacheCodec.decodeKey, ipcacheCodec.decodeValue));
  }

  /** The pinned ipBlock prefixes as they are. */
  dumpCidrs(): Map<string, number> {
    return new Map(this.#dump(MAP_CIDR, ipcacheCodec.CIDR_KEY_SIZE, ipcacheCodec.VALUE_SIZE, ipcacheCodec.decodeCidrKey, ipcacheCodec.decodeValue));
  }

  getEndpoint(ifindex: number): endpointCodec.Endpoint | undefined {
    const v = native().mapLookup(this.mapFd(MAP_ENDPOINTS), endpointCodec.encodeKey(ifindex), endpointCodec.SIZE);
    return v && endpointCodec.decode(v);
  }

  deleteEndpoint(ifindex: number): boolean {
    return native().mapDelete(this.mapFd(MAP_ENDPOINTS), endpointCodec.encodeKey(ifindex));
  }

  listEndpoints(): Map<number, endpointCodec.Endpoint> {
    return new Map(this.#dump(MAP_ENDPOINTS, endpointCodec.KEY_SIZE, endpointCodec.SIZE, endpointCodec.decodeKey, endpointCodec.decode));
  }

  /**
   * Attaches both entry programs to a host-side veth (in `netns`, or the
   * caller's netns when null). The endpoint entry must exist first: until it
   * does, the programs drop everything on that veth (fail closed).
   */
  attach(netns: string | null, ifname: string): void {
    const n = native();
    const opts = { priority: TC_PRIORITY, handle: TC_HANDLE };
    n.tcAttach(netns, ifname, 'ingress', this.progFd(PROG_FROM_POD), opts);
    n.tcAttach(netns, ifname, 'egress', this.progFd(PROG_TO_POD), opts);
  }

  /** Whether both entry programs are attached to the veth (in our tc slot). */
  attached(netns: string | null, ifname: string): boolean {
    const n = native();
    const opts = { priority: TC_PRIORITY, handle: TC_HANDLE };
    return n.tcQuery(netns, ifname, 'ingress', opts) !== undefined && n.tcQuery(netns, ifname, 'egress', opts) !== undefined;
  }

  detach(netns: string | null, ifname: string): void {
    const n = native();
    const opts = { priority: TC_PRIORITY, handle: TC_HANDLE };
    n.tcDetach(netns, ifname, 'ingress', opts);
    n.tcDetach(netns, ifname, 'egress', opts);
  }

  /**
   * Each pod's DNS budget, spent in the datapath before interception: `qps`
   * queries (UDP) or new connections (TCP) per second, bursts of `burst`;
   * qps 0 lifts the limit. Over it, queries drop as dns-rate-limited.
   */
  setDnsRateLimit(qps: number, burst: number): void {
    native().mapUpdate(this.mapFd(MAP_CONFIG), Buffer.alloc(4), dnsCodec.encodeConfig({ qps, burst }), BPF_ANY);
  }

  /** Queries each pod (by host ifindex) sent over its DNS budget. */
  dnsRateLimitDrops(): Map<number, bigint> {
    const n = native();
    const fd = this.mapFd(MAP_DNS_BUDGET);
    const out = new Map<number, bigint>();
    for (let k = n.mapGetNextKey(fd, null, 4); k; k = n.mapGetNextKey(fd, k, 4)) {
      const v = n.mapLookup(fd, k, dnsCodec.BUDGET_SIZE);
      if (v) out.set(k.readUInt32LE(0), dnsCodec.decodeBudgetDropped(v));
    }
    return out;
  }

  /** Per-(reason, direction) counters summed over CPUs. */
  metrics(): MetricsRow[] {
    const cpus = this.#cpus;
    return this.#dump(MAP_METRICS, metricsCodec.KEY_SIZE, metricsCodec.SIZE * cpus, metricsCodec.decodeKey, (b) => metricsCodec.decodePerCpu(b, cpus))
      .map(([key, v]) => ({ ...key, ...v }))
      .sort((a, b) => a.reason - b.reason || a.direction - b.direction);
  }

  /** Opens a reader of flow events; the caller polls and closes it. */
  openEvents(): FlowEventReader {
    return new FlowEventReader(native().ringbufOpen(this.mapFd(MAP_EVENTS)));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const n = native();
    for (const fd of [...Object.values(this.#progs), ...Object.values(this.#maps)]) n.close(fd);
  }
}

export class FlowEventReader {
  readonly #handle: number;
  #closed = false;
  constructor(handle: number) {
    this.#handle = handle;
  }
  /** The fd to poll for readability (epoll), for an event loop watcher. */
  get fd(): number {
    return native().ringbufEpollFd(this.#handle);
  }
  /** Takes what is in the ring now, without blocking. */
  drain(max = 4096): flowEventCodec.FlowEvent[] {
    return native()
      .ringbufConsume(this.#handle, max)
      .map((b) => flowEventCodec.decode(b));
  }
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    native().ringbufClose(this.#handle);
  }
}
