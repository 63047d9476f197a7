// An in-memory stand-in for the addon's BPF surface (BpfAddon), so the
// datapath's typed maps and the agent logic above them run in unit tests
// without a kernel. It keeps the kernel's contracts that callers depend on:
// fixed key/value sizes (a wrong size throws, as the real call does with
// EINVAL), max_entries (a new key in a full map is E2BIG), get_next_key from
// a missing key restarts at the first, per-CPU values are one slot per CPU,
// and a closed fd is EBADF. Maps a test does not declare do not exist.
import * as dnsCodec from '../../src/datapath/codec/dns.js';
import * as endpointCodec from '../../src/datapath/codec/endpoint.js';
import * as fqdnCodec from '../../src/datapath/codec/fqdn.js';
import * as ipcacheCodec from '../../src/datapath/codec/ipcache.js';
import * as lbCodec from '../../src/datapath/codec/lb.js';
import * as localCodec from '../../src/datapath/codec/local.js';
import * as metricsCodec from '../../src/datapath/codec/metrics.js';
import * as policyCodec from '../../src/datapath/codec/policy.js';
import {
  Datapath,
  MAP_CIDR,
  MAP_CONFIG,
  MAP_LOCAL,
  MAP_DNS_BUDGET,
  MAP_DNS_NAT,
  MAP_ENDPOINTS,
  MAP_EVENTS,
  MAP_FQDN,
  MAP_FQDN_RULES,
  MAP_IPCACHE,
  MAP_METRICS,
  MAP_POLICY,
  PROG_FROM_NODE,
  PROG_FROM_POD,
  PROG_TO_POD,
  LB_PROGS,
  MAP_LB_SVC,
  MAP_LB_BE,
  MAP_LB_NETNS,
  MAP_LB_AFF,
  MAP_LB_REV,
  MAP_LB_FLOW,
} from '../../src/datapath/index.js';
import {
  NativeError,
  type BatchLookupResult,
  type BpfAddon,
  type MapInfo,
  type ObjLoadOptions,
  type ObjLoadResult,
  type TcAttachResult,
  type CgroupAttach,
  type TcDirection,
  type TcOptions,
} from '../../src/native/index.js';

const BPF_NOEXIST = 1;
const BPF_EXIST = 2;

export interface FakeMapSpec {
  keySize: number;
  /** Per CPU for a per-CPU map (the addon's calls take valueSize × CPUs). */
  valueSize: number;
  maxEntries: number;
  perCpu?: boolean;
}

export interface FakeMap {
  readonly name: string;
  readonly spec: FakeMapSpec;
  /** hex(key) → value, in insertion order (the iteration order). */
  readonly entries: Map<string, Buffer>;
}

/** Every map of build/bpf/sluice.o with its real key and value sizes; small max_entries. */
export function sluiceMapSpecs(maxEntries = 64): Record<string, FakeMapSpec> {
  return {
    [MAP_ENDPOINTS]: { keySize: endpointCodec.KEY_SIZE, valueSize: endpointCodec.SIZE, maxEntries },
    [MAP_METRICS]: { keySize: metricsCodec.KEY_SIZE, valueSize: metricsCodec.SIZE, maxEntries, perCpu: true },
    [MAP_EVENTS]: { keySize: 0, valueSize: 0, maxEntries: 4096 },
    [MAP_IPCACHE]: { keySize: ipcacheCodec.KEY_SIZE, valueSize: ipcacheCodec.VALUE_SIZE, maxEntries },
    [MAP_CIDR]: { keySize: ipcacheCodec.CIDR_KEY_SIZE, valueSize: ipcacheCodec.VALUE_SIZE, maxEntries },
    [MAP_POLICY]: { keySize: policyCodec.KEY_SIZE, valueSize: policyCodec.SIZE, maxEntries },
    [MAP_FQDN]: { keySize: fqdnCodec.KEY_SIZE, valueSize: fqdnCodec.SIZE, maxEntries },
    [MAP_FQDN_RULES]: { keySize: fqdnCodec.RULES_KEY_SIZE, valueSize: fqdnCodec.RULES_SIZE, maxEntries },
    [MAP_DNS_NAT]: { keySize: dnsCodec.NAT_KEY_SIZE, valueSize: dnsCodec.NAT_SIZE, maxEntries },
    [MAP_CONFIG]: { keySize: 4, valueSize: dnsCodec.CONFIG_SIZE, maxEntries: 1 },
    [MAP_LOCAL]: { keySize: localCodec.KEY_SIZE, valueSize: localCodec.SIZE, maxEntries },
    [MAP_DNS_BUDGET]: { keySize: 4, valueSize: dnsCodec.BUDGET_SIZE, maxEntries },
    [MAP_LB_SVC]: { keySize: lbCodec.SVC_KEY_SIZE, valueSize: lbCodec.SVC_SIZE, maxEntries },
    [MAP_LB_BE]: { keySize: lbCodec.BE_KEY_SIZE, valueSize: lbCodec.BE_SIZE, maxEntries },
    [MAP_LB_NETNS]: { keySize: 8, valueSize: 4, maxEntries },
    [MAP_LB_AFF]: { keySize: lbCodec.SOCK_KEY_SIZE, valueSize: lbCodec.SOCK_SIZE, maxEntries },
    [MAP_LB_REV]: { keySize: lbCodec.SOCK_KEY_SIZE, valueSize: lbCodec.SOCK_SIZE, maxEntries },
    [MAP_LB_FLOW]: { keySize: lbCodec.FLOW_KEY_SIZE, valueSize: lbCodec.SOCK_SIZE, maxEntries },
  };
}

function nativeError(code: string, errno: number, syscall: string): NativeError {
  return new NativeError({ code, errno, syscall });
}

export class FakeBpfAddon implements BpfAddon {
  readonly cpus: number;
  readonly #specs: Record<string, FakeMapSpec>;
  readonly #progNames: readonly string[];
  readonly #maps = new Map<number, FakeMap>();
  readonly #progs = new Map<number, string>();
  readonly #open = new Set<number>();
  /** "netns|ifname|direction" → prog fd, what tcAttach left. */
  readonly attachments = new Map<string, number>();
  /** Records the next ringbufConsume returns, per ring handle. */
  readonly #rings = new Map<number, Buffer[]>();
  #nextFd = 100;
  loads = 0;

  constructor(specs: Record<string, FakeMapSpec> = sluiceMapSpecs(), opts: { cpus?: number; progs?: readonly string[] } = {}) {
    this.#specs = specs;
    this.cpus = opts.cpus ?? 2;
    this.#progNames = opts.progs ?? [PROG_FROM_POD, PROG_TO_POD, PROG_FROM_NODE, ...LB_PROGS.map(([, p]) => p)];
  }

  /** The map called `name` (the test's view of what the kernel holds). */
  map(name: string): FakeMap {
    for (const m of this.#maps.values()) if (m.name === name) return m;
    throw new Error(`fake addon: no map ${name} loaded`);
  }

  /** Grows or shrinks a map's capacity (a test's "the operator raised --max-…"). */
  setMaxEntries(name: string, maxEntries: number): void {
    this.map(name).spec.maxEntries = maxEntries;
  }

  /** Queues a record for ringbufConsume on `handle`. */
  pushEvent(handle: number, record: Buffer): void {
    this.#rings.get(handle)?.push(record);
  }

  // --- objects

  objLoad(_path: string, opts: ObjLoadOptions): ObjLoadResult {
    this.loads++;
    const maps: Record<string, number> = {};
    for (const [name, spec] of Object.entries(this.#specs)) {
      const fd = this.#nextFd++;
      this.#maps.set(fd, { name, spec: { ...spec, maxEntries: opts.maxEntries?.[name] ?? spec.maxEntries }, entries: new Map() });
      this.#open.add(fd);
      maps[name] = fd;
    }
    const progs: Record<string, number> = {};
    for (const name of this.#progNames) {
      const fd = this.#nextFd++;
      this.#progs.set(fd, name);
      this.#open.add(fd);
      progs[name] = fd;
    }
    return { progs, maps };
  }

  close(fd: number): void {
    if (!this.#open.delete(fd)) throw nativeError('EBADF', 9, 'close');
  }

  /** Whether an fd is still open (the Datapath closes every one it owns). */
  isOpen(fd: number): boolean {
    return this.#open.has(fd);
  }

  mapInfo(fd: number): MapInfo {
    const m = this.#map(fd, 'bpf_obj_get_info_by_fd');
    return { type: 0, keySize: m.spec.keySize, valueSize: m.spec.valueSize, maxEntries: m.spec.maxEntries, flags: 0, id: fd, name: m.name.slice(0, 15) };
  }

  numPossibleCpus(): number {
    return this.cpus;
  }

  // --- maps

  #map(fd: number, syscall: string): FakeMap {
    const m = this.#maps.get(fd);
    if (!m || !this.#open.has(fd)) throw nativeError('EBADF', 9, syscall);
    return m;
  }

  #valueSize(m: FakeMap): number {
    return m.spec.perCpu ? (Math.ceil(m.spec.valueSize / 8) * 8) * this.cpus : m.spec.valueSize;
  }

  #checkKey(m: FakeMap, key: Buffer, syscall: string): string {
    if (key.length !== m.spec.keySize) throw new RangeError(`${syscall} on ${m.name}: key of ${key.length} bytes, the map's are ${m.spec.keySize}`);
    return key.toString('hex');
  }

  mapLookup(fd: number, key: Buffer, valueSize: number): Buffer | undefined {
    const m = this.#map(fd, 'bpf_map_lookup_elem');
    const k = this.#checkKey(m, key, 'bpf_map_lookup_elem');
    if (valueSize !== this.#valueSize(m)) throw new RangeError(`bpf_map_lookup_elem on ${m.name}: value of ${valueSize} bytes, the map's are ${this.#valueSize(m)}`);
    const v = m.entries.get(k);
    return v && Buffer.from(v);
  }

  mapUpdate(fd: number, key: Buffer, value: Buffer, flags: number): void {
    const m = this.#map(fd, 'bpf_map_update_elem');
    const k = this.#checkKey(m, key, 'bpf_map_update_elem');
    if (value.length !== this.#valueSize(m)) throw new RangeError(`bpf_map_update_elem on ${m.name}: value of ${value.length} bytes, the map's are ${this.#valueSize(m)}`);
    const exists = m.entries.has(k);
    if (flags === BPF_NOEXIST && exists) throw nativeError('EEXIST', 17, 'bpf_map_update_elem');
    if (flags === BPF_EXIST && !exists) throw nativeError('ENOENT', 2, 'bpf_map_update_elem');
    if (!exists && m.entries.size >= m.spec.maxEntries) throw nativeError('E2BIG', 7, 'bpf_map_update_elem');
    m.entries.set(k, Buffer.from(value));
  }

  mapDelete(fd: number, key: Buffer): boolean {
    const m = this.#map(fd, 'bpf_map_delete_elem');
    return m.entries.delete(this.#checkKey(m, key, 'bpf_map_delete_elem'));
  }

  mapGetNextKey(fd: number, key: Buffer | null, keySize: number): Buffer | undefined {
    const m = this.#map(fd, 'bpf_map_get_next_key');
    if (keySize !== m.spec.keySize) throw new RangeError(`bpf_map_get_next_key on ${m.name}: key of ${keySize} bytes`);
    const keys = [...m.entries.keys()];
    // As a hash map does: a key that is gone restarts the walk at the first.
    const at = key === null ? -1 : keys.indexOf(key.toString('hex'));
    const next = keys[at + 1];
    return next === undefined ? undefined : Buffer.from(next, 'hex');
  }

  mapLookupBatch(fd: number, keySize: number, valueSize: number, maxCount: number): BatchLookupResult {
    const m = this.#map(fd, 'bpf_map_lookup_batch');
    if (keySize !== m.spec.keySize || valueSize !== this.#valueSize(m)) throw new RangeError(`bpf_map_lookup_batch on ${m.name}: wrong sizes`);
    const rows = [...m.entries].slice(0, maxCount);
    return {
      keys: Buffer.concat(rows.map(([k]) => Buffer.from(k, 'hex'))),
      values: Buffer.concat(rows.map(([, v]) => v)),
      count: rows.length,
    };
  }

  mapUpdateBatch(fd: number, keys: Buffer, values: Buffer, count: number, flags: number): void {
    const m = this.#map(fd, 'bpf_map_update_batch');
    const ks = m.spec.keySize;
    const vs = this.#valueSize(m);
    for (let i = 0; i < count; i++) this.mapUpdate(fd, keys.subarray(i * ks, (i + 1) * ks), values.subarray(i * vs, (i + 1) * vs), flags);
  }

  /** As the kernel's generic batch delete: stops at the first key that is gone (ENOENT), the ones before it deleted. */
  mapDeleteBatch(fd: number, keys: Buffer, count: number): number {
    const m = this.#map(fd, 'bpf_map_delete_batch');
    const ks = m.spec.keySize;
    let n = 0;
    for (let i = 0; i < count; i++) {
      if (!this.mapDelete(fd, keys.subarray(i * ks, (i + 1) * ks))) throw nativeError('ENOENT', 2, 'bpf_map_delete_batch');
      n++;
    }
    return n;
  }

  // --- ring buffers

  ringbufOpen(mapFd: number): number {
    this.#map(mapFd, 'ring_buffer__new');
    const handle = this.#nextFd++;
    this.#rings.set(handle, []);
    return handle;
  }

  ringbufConsume(handle: number, maxRecords: number): Buffer[] {
    const ring = this.#rings.get(handle);
    if (!ring) throw nativeError('EBADF', 9, 'ring_buffer__consume');
    return ring.splice(0, maxRecords);
  }

  ringbufEpollFd(handle: number): number {
    if (!this.#rings.has(handle)) throw nativeError('EBADF', 9, 'ring_buffer__epoll_fd');
    return handle;
  }

  ringbufClose(handle: number): void {
    this.#rings.delete(handle);
  }

  // --- tc

  #slot(netns: string | null, ifname: string, direction: TcDirection): string {
    return `${netns ?? ''}|${ifname}|${direction}`;
  }

  tcAttach(netns: string | null, ifname: string, direction: TcDirection, progFd: number, opts?: TcOptions): TcAttachResult {
    if (!this.#progs.has(progFd) || !this.#open.has(progFd)) throw nativeError('EBADF', 9, 'bpf_tc_attach');
    this.attachments.set(this.#slot(netns, ifname, direction), progFd);
    return { priority: opts?.priority ?? 1, handle: opts?.handle ?? 1, progId: progFd };
  }

  tcDetach(netns: string | null, ifname: string, direction: TcDirection): boolean {
    return this.attachments.delete(this.#slot(netns, ifname, direction));
  }

  tcQuery(netns: string | null, ifname: string, direction: TcDirection): number | undefined {
    return this.attachments.get(this.#slot(netns, ifname, direction));
  }

  /** pin path → [cgroup, attach, program fd] of each cgroup link. */
  readonly cgroupLinks = new Map<string, [string, CgroupAttach, number]>();

  cgroupLink(cgroupPath: string, progFd: number, attach: CgroupAttach, pinPath: string): 'created' | 'updated' {
    const had = this.cgroupLinks.has(pinPath);
    this.cgroupLinks.set(pinPath, [cgroupPath, attach, progFd]);
    return had ? 'updated' : 'created';
  }
}

/** A Datapath over a fresh in-memory addon (every sluice map, both programs). */
export function fakeDatapath(specs?: Record<string, FakeMapSpec>, opts?: { cpus?: number }): { addon: FakeBpfAddon; dp: Datapath } {
  const addon = new FakeBpfAddon(specs, opts);
  const dp = Datapath.fromLoaded(addon, addon.objLoad('fake.o', {}));
  return { addon, dp };
}
