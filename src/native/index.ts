// The only module that loads build/Release/sluice_native.node. The addon is
// syscall-shaped: Buffers and plain numbers/strings in and out, no policy.
// Callers validate their inputs; the addon's own checks are a last line of
// defence (wrong types throw TypeError/RangeError rather than crash).
//
// Errors from the OS are NativeError with the errno name, the failing call and
// details (verifier log, netlink extack message, path). Expected absence is a
// value: lookups of missing things return undefined, deletes return false.
//
// Every netlink/tc/sysctl function takes `netns` first: a path such as
// /var/run/netns/<name> or /proc/<pid>/ns/net, or null for the caller's own
// namespace. The addon does the work on a short-lived helper thread inside
// that namespace; the JS thread never changes namespace.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// ---------------------------------------------------------------------------
// errors

export interface NativeErrorInit {
  /** errno name such as "ENOENT", or "E<n>" when the number has no name. */
  code: string;
  errno: number;
  /** The failing call: "bpf_map_update_elem", "RTM_NEWLINK", "open", ... */
  syscall: string;
  details?: string;
  /** strerror text, used in the message. */
  description?: string;
}

/** Thrown by the addon for OS-level failures (never for bad argument types). */
export class NativeError extends Error {
  override readonly name = 'NativeError';
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;
  /** Verifier/libbpf log, netlink extack message or the path involved; may be empty. */
  readonly details: string;

  constructor(init: NativeErrorInit) {
    super(NativeError.#message(init));
    this.code = init.code;
    this.errno = init.errno;
    this.syscall = init.syscall;
    this.details = init.details ?? '';
  }

  static #message(init: NativeErrorInit): string {
    let msg = `${init.syscall}: ${init.code}`;
    if (init.description) msg += ` (${init.description})`;
    const details = (init.details ?? '').trim();
    if (!details) return msg;
    // Short details (extack text, a path) belong in the message; long ones
    // (libbpf/verifier logs) stay in .details, with a hint: libbpf's first
    // line and, for a verifier rejection, the verifier's reason (the line
    // before its "processed N insns" summary).
    const lines = details.split('\n').filter((l) => l.trim() !== '');
    if (lines.length === 1 && details.length <= 200) return `${msg}: ${details}`;
    let hint = (lines[0] ?? '').slice(0, 200);
    const summary = lines.findIndex((l) => /^processed \d+ insns/.test(l));
    const reason = summary > 0 ? lines[summary - 1] : undefined;
    if (reason) hint += ` / verifier: ${reason.slice(0, 200)}`;
    return `${msg}: ${hint} (see .details)`;
  }
}

// ---------------------------------------------------------------------------
// types

/** Path of a network namespace file, or null for the caller's own. */
export type NetnsPath = string | null;

export const BPF_ANY = 0;
export const BPF_NOEXIST = 1;
export const BPF_EXIST = 2;

export interface ObjLoadOptions {
  /** Directory on bpffs where LIBBPF_PIN_BY_NAME maps are pinned and reused. */
  pinRoot?: string;
  /** Per map name: max_entries override applied before load. */
  maxEntries?: Record<string, number>;
  /** Per map name: an existing map fd to use instead of creating the map. */
  reuseMaps?: Record<string, number>;
}

export interface ObjLoadResult {
  /** Program fds by function name. The caller owns them (close()). */
  progs: Record<string, number>;
  /** Map fds by map name. The caller owns them (close()). */
  maps: Record<string, number>;
}

export interface MapInfo {
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  id: number;
  name: string;
}

export interface ProgInfo {
  id: number;
  type: number;
  name: string;
  /** 8-byte program tag as 16 hex chars. */
  tag: string;
}

export interface BatchLookupResult {
  /** count * keySize bytes. */
  keys: Buffer;
  /** count * valueSize bytes. */
  values: Buffer;
  count: number;
}

export interface TestRunOptions {
  repeat?: number;
  /** Context in; for tc programs a struct __sk_buff. */
  ctx?: Buffer;
  /** Room for the output packet; default data.length + 256. */
  dataOutSize?: number;
}

export interface TestRunResult {
  retval: number;
  data: Buffer;
  durationNs: number;
}

export type TcDirection = 'ingress' | 'egress';

export interface TcOptions {
  /** Filter priority, default 1. */
  priority?: number;
  /** Filter handle, default 1. */
  handle?: number;
}

export interface TcAttachResult {
  priority: number;
  handle: number;
  progId: number;
}

export interface VethOptions {
  /** Namespace to create the peer in directly; null/absent = same as `netns`. */
  peerNetns?: string | null;
  /** MTU for both ends. */
  mtu?: number;
  mac?: string;
  peerMac?: string;
}

export interface LinkInfo {
  ifindex: number;
  name: string;
  mtu: number;
  /** Lowercase colon-separated hardware address; "" if the link has none. */
  mac: string;
  up: boolean;
  /** rtnetlink kind ("veth", "bridge", ...); absent for physical links and lo. */
  kind?: string;
  /** IFLA_LINK: for a veth, the peer's ifindex in the peer's namespace. */
  peerIfindex?: number;
  /** IFLA_LINK_NETNSID: the peer's namespace id, when it is another namespace. */
  linkNetnsid?: number;
}

export interface LinkSetOptions {
  up?: boolean;
  mtu?: number;
  mac?: string;
  newName?: string;
  /** Move the link into this namespace (other changes apply there). */
  netnsPath?: string;
}

export interface AddrOptions {
  /** IPv6 only: skip duplicate address detection so the address works at once. */
  noDad?: boolean;
}

export interface AddrInfo {
  ifindex: number;
  ifname: string;
  family: 4 | 6;
  address: string;
  prefixLen: number;
}

export type RouteScope = 'universe' | 'link' | 'host';

export interface Route {
  /** CIDR; "0.0.0.0/0" or "::/0" for the default route. */
  dst: string;
  gateway?: string;
  dev?: string;
  src?: string;
  /** Default: 'link' without a gateway, 'universe' with one. */
  scope?: RouteScope;
  onlink?: boolean;
  /** Default: main (254); local (255) for type 'local'. */
  table?: number;
  /** 'unicast' (default) or 'local': delivered to this host, like an address without one (AnyIP). */
  type?: 'unicast' | 'local';
  metric?: number;
}

export interface Neigh {
  dev: string;
  ip: string;
  mac: string;
  /** NUD_PERMANENT when true, otherwise NUD_REACHABLE (ages to STALE). */
  permanent?: boolean;
}

/** Everything the addon exports (besides its internal init). */
export interface NativeAddon {
  // --- BPF objects and programs
  objLoad(path: string, opts: ObjLoadOptions): ObjLoadResult;
  close(fd: number): void;
  objPin(fd: number, path: string): void;
  /** undefined when nothing is pinned at path. */
  objGet(path: string): number | undefined;
  mapInfo(fd: number): MapInfo;
  progInfo(fd: number): ProgInfo;
  numPossibleCpus(): number;
  progTestRun(progFd: number, data: Buffer, opts?: TestRunOptions): TestRunResult;

  // --- maps (sizes must match the map; per-CPU values are roundup8(value) * ncpus)
  mapLookup(fd: number, key: Buffer, valueSize: number): Buffer | undefined;
  mapUpdate(fd: number, key: Buffer, value: Buffer, flags: number): void;
  /**
   * A map for a hot path: its own dup of `fd`, whose shape is read once, so
   * each lookup or update is one syscall (mapLookup and mapUpdate read the
   * shape of the fd every call). The caller closes it. native/bpf.cc.
   */
  MapHandle: new (fd: number) => BpfMapHandle;
  mapDelete(fd: number, key: Buffer): boolean;
  /** key null = first key; undefined = no more keys. */
  mapGetNextKey(fd: number, key: Buffer | null, keySize: number): Buffer | undefined;
  mapLookupBatch(fd: number, keySize: number, valueSize: number, maxCount: number): BatchLookupResult;
  mapUpdateBatch(fd: number, keys: Buffer, values: Buffer, count: number, flags: number): void;
  /** Returns how many of the keys were present (and are now deleted). */
  mapDeleteBatch(fd: number, keys: Buffer, count: number): number;

  // --- ring buffers
  ringbufOpen(mapFd: number): number;
  /** Non-blocking; copies at most maxRecords records. */
  ringbufConsume(handle: number, maxRecords: number): Buffer[];
  ringbufEpollFd(handle: number): number;
  ringbufClose(handle: number): void;

  // --- tc (clsact, direct-action)
  tcAttach(netns: NetnsPath, ifname: string, direction: TcDirection, progFd: number, opts?: TcOptions): TcAttachResult;
  tcDetach(netns: NetnsPath, ifname: string, direction: TcDirection, opts?: TcOptions): boolean;
  /** Program id attached at (handle, priority), or undefined. */
  tcQuery(netns: NetnsPath, ifname: string, direction: TcDirection, opts?: TcOptions): number | undefined;

  // --- links
  linkAddVeth(netns: NetnsPath, name: string, peerName: string, opts: VethOptions): void;
  linkGet(netns: NetnsPath, name: string): LinkInfo | undefined;
  linkGetByIndex(netns: NetnsPath, ifindex: number): LinkInfo | undefined;
  linkList(netns: NetnsPath): LinkInfo[];
  linkSet(netns: NetnsPath, name: string, opts: LinkSetOptions): void;
  linkDel(netns: NetnsPath, name: string): boolean;
  /** linkDel on a libuv worker: many deletes overlap the kernel's RCU wait. */
  linkDelAsync(netns: NetnsPath, name: string): Promise<boolean>;

  // --- addresses
  addrAdd(netns: NetnsPath, ifname: string, cidr: string, opts?: AddrOptions): void;
  addrDel(netns: NetnsPath, ifname: string, cidr: string): boolean;
  addrList(netns: NetnsPath, ifname?: string): AddrInfo[];

  // --- routes (main table unless route.table is set)
  routeAdd(netns: NetnsPath, r: Route): void;
  routeReplace(netns: NetnsPath, r: Route): void;
  routeDel(netns: NetnsPath, r: Route): boolean;
  /** Main-table unicast routes of one family. */
  routeList(netns: NetnsPath, family: 4 | 6): Route[];

  // --- neighbours
  neighAdd(netns: NetnsPath, n: Neigh): void;

  // --- policy routing: `ip rule add fwmark M/MASK [ipproto P] [sport S] lookup TABLE pref PRIORITY` (idempotent)
  ruleAdd(netns: NetnsPath, r: { family: 4 | 6; fwmark: number; fwmask: number; table: number; priority: number; ipProto?: number; sport?: number }): void;

  // --- sysctl (key relative to /proc/sys, e.g. "net/ipv4/conf/eth0/proxy_arp")
  sysctlWrite(netns: NetnsPath, key: string, value: string): void;
  /** undefined when the key does not exist. */
  sysctlRead(netns: NetnsPath, key: string): string | undefined;

  // --- sockets (in the caller's netns)
  /**
   * A non-blocking UDP or TCP socket bound (IP_FREEBIND, SO_REUSEADDR) to
   * `address`:`port`, which need not be an interface address; IPv6 sockets
   * are v6-only. Returns the fd, for dgram `bind({ fd })` or net `listen({ fd })`.
   */
  socketBind(family: 4 | 6, type: 'udp' | 'tcp', address: string, port: number): number;
  /**
   * A non-blocking UDP socket that sends from `address` (IP_TRANSPARENT: any
   * address, a pod's) on a kernel-chosen port, with SO_MARK `mark`; IPv6
   * sockets are v6-only. Returns the fd, for dgram `bind({ fd })`.
   */
  socketTransparent(family: 4 | 6, address: string, mark: number): number;
  /** The network namespace's cookie (SO_NETNS_COOKIE), a u64 as a decimal string: bpf_get_netns_cookie() of its sockets. */
  netnsCookie(netns: NetnsPath): string;
  /**
   * A reachability probe from inside `netns` on a libuv worker: a TCP connect
   * or a connected-UDP datagram and the wait for an answer, for at most
   * `timeoutMs`. The outcome is a value (see ProbeResult); it rejects only
   * when no probe could be made (no such netns, no socket).
   */
  probe(netns: NetnsPath, family: 4 | 6, protocol: 'tcp' | 'udp', address: string, port: number, timeoutMs: number): Promise<ProbeResult>;

  // --- cgroup programs
  /**
   * A bpf_link of `progFd` on the cgroup (v2) at `cgroupPath` for `attach`, pinned at `pinPath`; a link
   * already pinned there gets the program replaced in place. 'created' or 'updated'.
   */
  cgroupLink(cgroupPath: string, progFd: number, attach: CgroupAttach, pinPath: string): 'created' | 'updated';

  // --- the DNS proxy's UDP sockets
  /**
   * Takes a bound non-blocking UDP socket `fd` (it closes it on close()):
   * datagrams are read with recvmmsg, up to 64 per call of `onBatch`. A
   * send() made while an onBatch (of any UdpBatch) runs is queued and goes
   * out with the socket's other queued ones in one sendmmsg when the callback
   * returns (true; a datagram the kernel refuses then is counted to
   * `onSendFailed`); any other send() is one synchronous sendto (false: the
   * kernel refused it). Each batch comes as UdpBatchData, which allocates
   * nothing per datagram. See native/udpbatch.cc.
   */
  UdpBatch: new (fd: number, onBatch: UdpBatchData, onSendFailed?: (count: number) => void, memo?: NativeAnswerMemo) => UdpBatchSocket;
  /**
   * The DNS proxy's memo of answers that change nothing (native/answermemo.cc):
   * `slots` a power of two; the lifetime of an address is max(TTL s × 1000,
   * minTtlMs) + graceMs, as the FQDN cache's. A UdpBatch given one judges
   * each datagram it reads by it (the verdict in bits 17 and up of its port field).
   */
  /** secondSight: an answer is remembered the second time it is learned (native/answermemo.cc, SECOND SIGHT). */
  AnswerMemo: new (slots: number, minTtlMs: number, graceMs: number, secondSight?: boolean) => NativeAnswerMemo;

  // --- handing the proxy's sockets to a successor agent (native/handover.cc)
  /** A copy of `fd` (close-on-exec): the socket lives on while either is open. */
  fdDup(fd: number): number;
  fdClose(fd: number): void;

  // --- memory
  /** malloc_trim(0): gives what the C heap's arenas hold free back to the system; true if any was. */
  mallocTrim(): boolean;
  /** One line of `payload` (ending in a newline) on connected unix socket `connFd`, `fds` attached (SCM_RIGHTS). */
  handoverSend(connFd: number, payload: string, fds: number[]): void;
  /**
   * Blocking: connects to the unix socket at `path`, sends `request` and waits
   * up to `timeoutMs` for one line of answer and the fds attached to it; null
   * when nobody listens there (no file, or a dead agent's).
   */
  handoverRequest(path: string, request: string, timeoutMs: number): { payload: string; fds: number[] } | null;
}

/**
 * One batch of `count` datagrams: datagram i is data[meta[4i], meta[4i] +
 * meta[4i+1]), from port meta[4i+2] & 0xffff; with bit 16 (1 << 16) set in
 * meta[4i+2] its source is hosts6![i] (text), else meta[4i+3] is its IPv4
 * source as a number (a.b.c.d = a << 24 | b << 16 | c << 8 | d). `data` and
 * `meta` are reused by the next batch: valid only during the call.
 */
export type UdpBatchData = (count: number, data: Buffer, meta: Uint32Array, hosts6: string[] | undefined) => void;

/** See native/answermemo.cc and src/dns/proxy.ts (MEMO). */
export interface NativeAnswerMemo {
  /**
   * After `msg` was learned and programmed: ranges[3k], ranges[3k + 1] is the window [lo, hi) (monotonic ms) of the
   * k-th A/AAAA record's expiry, ranges[3k + 2] the earliest expiry its allows have; false: not memoizable.
   */
  remember(msg: Buffer, ranges: Float64Array, count: number): boolean;
  /**
   * 0, or MEMO_HIT (| MEMO_ADDRESSES) when `msg` repeats a remembered answer and changes nothing at `nowMs`, or
   * MEMO_REFRESH (| MEMO_ADDRESSES) when it would move an expiry but its allows have at least the grace left.
   */
  check(msg: Buffer, nowMs: number): number;
  /** The remembered answers whose question or a CNAME target is `name` (normalized) miss from now on. */
  forget(name: string): void;
  /** Every remembered answer misses from now on. */
  clear(): void;
  readonly hits: number;
  readonly misses: number;
  /** Checks that found a refresh (neither hits nor misses). */
  readonly refreshes: number;
  readonly stored: number;
}

export interface UdpBatchSocket {
  send(buf: Buffer, address: string, port: number): boolean;
  /**
   * send(), and (when the query was accepted and its question is at most 100
   * bytes) its answer expected: an answer this socket's memo judges a hit or a refresh,
   * with the query's id (buf's first two bytes), from address:port, with the
   * query's question bytes (buf[12, 12 + questionLength)) and at most
   * maxBytes long, is sent to clientAddress:clientPort through `via` with id
   * clientId as it is read, and its verdict has MEMO_RELEASED
   * (native/udpbatch.cc, RELEASE). address and clientAddress: text, or IPv4
   * addresses as numbers (a.b.c.d = a << 24 | b << 16 | c << 8 | d).
   */
  sendExpecting(buf: Buffer, address: string | number, port: number, via: UdpBatchSocket, clientAddress: string | number, clientPort: number, clientId: number, questionLength: number, maxBytes: number): boolean;
  /** The query with this id is settled otherwise: its answer is expected no more. */
  unexpect(id: number): void;
  /** Stops reading: datagrams wait in the socket's queue (for whoever holds it next); send() still works. */
  pause(): void;
  close(): void;
  /** Datagrams larger than 64 KiB − 1 dropped on receipt (cannot happen over UDP/IPv4; a jumbogram could). */
  readonly truncated: number;
}

/**
 * TCP: connected, refused (an RST came back), timeout; UDP: reply, refused
 * (ICMP port unreachable), timeout; either: error, with the errno name
 * (EHOSTUNREACH…). localPort is the probe socket's own port (0 if unknown).
 */
export interface ProbeResult {
  outcome: 'connected' | 'reply' | 'refused' | 'timeout' | 'error';
  error?: string;
  localPort: number;
}

export type CgroupAttach = 'connect4' | 'connect6' | 'sendmsg4' | 'sendmsg6' | 'recvmsg4' | 'recvmsg6' | 'getpeername4' | 'getpeername6';

/**
 * The addon's BPF surface: what src/datapath needs, and all an in-memory fake
 * must implement to stand in for the kernel in unit tests (Datapath takes it
 * as a parameter; the default is native()).
 */
export type BpfAddon = Pick<
  NativeAddon,
  | 'objLoad'
  | 'close'
  | 'mapInfo'
  | 'numPossibleCpus'
  | 'mapLookup'
  | 'mapUpdate'
  | 'mapDelete'
  | 'mapGetNextKey'
  | 'mapLookupBatch'
  | 'mapUpdateBatch'
  | 'mapDeleteBatch'
  | 'ringbufOpen'
  | 'ringbufConsume'
  | 'ringbufEpollFd'
  | 'ringbufClose'
  | 'tcAttach'
  | 'tcDetach'
  | 'tcQuery'
  | 'cgroupLink'
> &
  Partial<Pick<NativeAddon, 'MapHandle'>>;

/** The map calls alone: what one typed map (src/datapath/maps.ts) uses. */
export type BpfMapOps = Pick<NativeAddon, 'mapInfo' | 'mapLookup' | 'mapUpdate' | 'mapDelete' | 'mapGetNextKey' | 'mapLookupBatch' | 'mapUpdateBatch' | 'mapDeleteBatch'> &
  /** The hot paths' handle (absent in the unit tests' in-memory fakes: then mapLookup / mapUpdate). */
  Partial<Pick<NativeAddon, 'MapHandle'>>;

/** See NativeAddon.MapHandle. */
export interface BpfMapHandle {
  /** The value into `out` (the map's value size); false: no such key. */
  lookup(key: Buffer, out: Buffer): boolean;
  /** Throws NativeError (E2BIG: the map is full). */
  update(key: Buffer, value: Buffer, flags: number): void;
  /**
   * Entries i < count of `keys` and `values` (packed, key and value size each;
   * the buffers may be longer) with one BPF_MAP_UPDATE_BATCH where the kernel
   * has it. Each entry is tried once and written or not on its own:
   * errors[i] is its errno (E2BIG: the map is full), 0 when written. Returns
   * how many failed.
   */
  updateBatch(keys: Buffer, values: Buffer, count: number, flags: number, errors: Int32Array): number;
  close(): void;
}

interface RawAddon extends NativeAddon {
  init(errorClass: typeof NativeError): void;
}

// ---------------------------------------------------------------------------
// loading

const ADDON_FILE = 'sluice_native.node';

let loaded: { path: string; addon: NativeAddon } | undefined;

function candidates(): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  return [
    // src/native/index.ts (vitest, tsx)
    resolve(here, '../../build/Release', ADDON_FILE),
    // bundled into build/bin/<file>
    resolve(here, '../Release', ADDON_FILE),
  ];
}

/**
 * Loads the addon once and returns it. `override` (or SLUICE_NATIVE_ADDON)
 * names the .node file explicitly; otherwise it is found next to the sources
 * or the bundle.
 */
export function loadNative(override?: string): NativeAddon {
  const explicit = override ?? process.env['SLUICE_NATIVE_ADDON'];
  if (loaded) {
    if (explicit && resolve(explicit) !== loaded.path) {
      throw new Error(`native addon already loaded from ${loaded.path}; cannot switch to ${resolve(explicit)}`);
    }
    return loaded.addon;
  }
  const tried = explicit ? [resolve(explicit)] : candidates();
  const path = tried.find((p) => existsSync(p));
  if (!path) {
    throw new Error(
      `sluice native addon not found (tried: ${tried.join(', ')}). Run \`make build\` to compile it` +
        (explicit ? ', or fix SLUICE_NATIVE_ADDON / the override path.' : '.'),
    );
  }
  const require = createRequire(import.meta.url);
  let raw: RawAddon;
  try {
    raw = require(path) as RawAddon;
  } catch (err) {
    throw new Error(`failed to load native addon ${path}: ${(err as Error).message}`, { cause: err });
  }
  raw.init(NativeError);
  loaded = { path, addon: raw };
  return raw;
}

/** The addon, loaded on first use. */
export function native(): NativeAddon {
  return loaded?.addon ?? loadNative();
}
