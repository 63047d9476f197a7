// The transparent DNS proxy. Intercepted queries (bpf/lib/dns.h rewrote them
// to PROXY_V4/PROXY_V6:PROXY_PORT) arrive here; the datapath's NAT entry says
// which pod asked (its veth) and which server it asked. A query to a trusted
// resolver is forwarded there; anything else is refused (or redirected). A
// trusted answer is learned and programmed BEFORE it is released to the pod,
// so the pod's first connect already finds its allow.
//
// Upstream answers must come from the address the query went to, carry the
// (random) id we sent and echo the question; anything else is counted as
// spoofed and dropped. Over UDP a query leaves from the pod's own address
// (a transparent socket per pod, `podSource`), so the resolver sees the pod
// (CoreDNS autopath, `pods verified`); otherwise, and over TCP, from a pool
// of the node's sockets on kernel-chosen random ports. Every packet is hostile input: a failure to parse is counted
// and dropped, never thrown out of a handler.
//
// Fair share: every pod (by its host veth, from the NAT entry) has a budget
// of queries waiting on upstreams and of TCP connections; over it a query is
// dropped (a connection closed) and counted for that pod, decided before the
// packet is even parsed. The queries-per-second budget is enforced earlier,
// in eBPF (datapath setDnsRateLimit), so a flood never reaches our sockets.
// Log lines a pod can trigger are rate-limited and carry names under `dns`.
//
// MEMO: most upstream answers repeat one already learned (the same bytes but
// for the id and the TTLs) and move no expiry by the cache's refresh slack:
// they teach nothing. With `answerMemo`, every answer learned and programmed
// is remembered in a native memo (native/answermemo.cc) with, per address, the
// window its expiry may fall in and change nothing; the upstream sockets judge
// each datagram against it as they read it, and an answer judged unchanged is
// only matched to its query (id, source, the question's bytes) and released —
// no parse, no learning. Hits of a batch go first, so every verdict holds for
// the cache as it was when it was made: what the batch's other answers change
// (FqdnService forgets their names' memo entries) cannot have happened yet.
// A hit writes nothing, so a wrong one could only release an answer whose
// allows the agent would have written again: fail closed.
//
// REFRESH: a repeat that would move an expiry (it must be learned) while its
// allows are still programmed for at least the grace is released by the
// upstream socket before it is learned, and learned right after as any
// answer, but not sent again. What it opens is open when it reaches the pod;
// only the later expiries follow, microseconds on. Should that write fail,
// the allows keep their earlier expiry (at least the grace away) and the pod
// keeps its answer: counted and logged, no SERVFAIL.
import dgram from 'node:dgram';
import net from 'node:net';
import type { Logger } from '../log/index.js';
import { ipv4Number, Ipv4Texts } from '../net/index.js';
import { RandomIds } from './ids.js';
import { RateLimitedLog } from './log-limit.js';
import { normalizeName, type DnsMode } from '../policy/index.js';
import {
  errorResponse,
  learnFrom,
  MalformedError,
  parseQuery,
  parseResponse,
  RCODE_REFUSED,
  RCODE_SERVFAIL,
  sameQuestion,
  truncatedResponse,
  type Learned,
  type ParsedQuery,
  type Question,
} from './message.js';

const PROTO_TCP = 6;
const PROTO_UDP = 17;
const UPSTREAM_PORT = 53;
const POOL_SIZE = 16;
/** The first pending-key slot of a pod socket (below: the two pools'). */
const POD_SLOT_BASE = 2 * POOL_SIZE;
const UPSTREAM_TIMEOUT_MS = 5000;
const TCP_IDLE_MS = 30_000;
/** A pod's transparent upstream socket with nothing waiting is closed after this long unused. */
const POD_SOCKET_IDLE_MS = 300_000;
/**
 * Per-pod state is kept for at most this many pods (host veths); beyond it
 * (never between two policy syncs in practice: retainPods prunes) pods share
 * one overflow entry, so the map cannot grow without bound.
 */
const MAX_POD_STATES = 16_384;
/**
 * The largest answer sent to a pod over UDP (the DNS Flag Day 2020 size):
 * bigger would be fragmented on the way to the pod, and the datapath only
 * reverse-translates whole datagrams. Bigger answers go out truncated.
 */
const MAX_UDP_ANSWER = 1232;
/** Socket receive buffers: bursts queue in the kernel while a handler runs. */
const RECV_BUFFER_BYTES = 4 << 20;

export interface NatInfo {
  daddr: string;
  ifindex: number;
}

export interface ClientPolicy {
  /** "namespace/name", for logs. */
  pod: string;
  dns: DnsMode;
  /** FQDN rule ids of this endpoint (MatchedOnly: the name must match one). */
  rules: readonly number[];
}

export interface ProxyDeps {
  /** The NAT entry of a pod's flow; the object may be the next call's too (the proxy copies what it keeps). */
  nat(protocol: number, ip: string, port: number): NatInfo | undefined;
  client(ifindex: number): ClientPolicy | undefined;
  /** Rule ids matching a normalized name. */
  rulesFor(name: string): readonly number[];
  /**
   * Programs what an answer teaches; throws if it cannot (the pod gets
   * SERVFAIL). `deferred` (only with flushLearned): the writes may wait for
   * flushLearned(), which the proxy calls before it sends that answer.
   */
  learn(learned: Learned, deferred: boolean): void;
  /**
   * Writes what the deferred learn() calls since the last flush left queued
   * (the answers of one receive batch: one map update for all of them);
   * returns the answers that could not be programmed, with why (they get
   * SERVFAIL), or undefined when every one was. Absent: learn() writes at once.
   */
  flushLearned?(): ReadonlyMap<Learned, unknown> | undefined;
  /** MEMO (with `batch` only): the memo the upstream sockets judge answers by, and what to remember in it. */
  answerMemo?: {
    readonly memo: AnswerMemo;
    /**
     * After `learned` was programmed (and before anything else is learned):
     * into[3k], into[3k + 1] is the window [lo, hi) of monotonic ms within
     * which a repeat's expiry for learned.addresses[k] changes nothing, and
     * into[3k + 2] the earliest expiry its allows have (REFRESH); false
     * when nothing may be remembered now.
     */
    windows(learned: Learned, into: Float64Array): boolean;
  };
  trusted: readonly string[];
  /**
   * Also trusted: a backend of a trusted Service address. A pod's query to
   * the cluster DNS ClusterIP reaches the datapath already translated to a
   * CoreDNS pod (Service translation at the socket), which must not wait for
   * the resolver list to catch up with the endpoints.
   */
  trustedBackend?: (ip: string) => boolean;
  untrusted: 'refuse' | 'redirect';
  /** Where trusted resolvers listen; 53 unless a test runs its own resolver on a high port. */
  upstreamPort?: number;
  /** Per-pod budgets; DEFAULT_LIMITS for what is not given. */
  limits?: Partial<ProxyLimits>;
  /** How long a forwarded query waits for its answer (5 s; tests make it short). */
  upstreamTimeoutMs?: number;
  /** UDP queries to these upstreams leave from the pod's own address; absent: from the node's. */
  podSource?: PodSource;
  /** Metrics hooks (src/metrics); absent: none. */
  observer?: ProxyObserver;
  /**
   * The UDP sockets' fast path (the agent's: native recvmmsg batches and
   * synchronous sends, native/udpbatch.cc); absent: Node's dgram (unit tests).
   */
  batch?: UdpSockets;
}

/**
 * Batched UDP sockets: a bound fd in, one callback per batch of datagrams
 * out. Sends made during a batch callback may be queued and sent together
 * after it (then send() says true, and a datagram the kernel refuses then is
 * reported to onSendFailed).
 *
 * A batch allocates nothing per datagram: datagram i of `count` is
 * data[meta[4i], meta[4i] + meta[4i+1]), from port meta[4i+2] & 0xffff; with
 * UDP_FROM_V6 set there its source is hosts6![i], else meta[4i+3] is its IPv4
 * source as a number (a.b.c.d = a << 24 | b << 16 | c << 8 | d). `data` and
 * `meta` are reused by the next batch (native/udpbatch.cc).
 */
export interface UdpSockets {
  open(
    fd: number,
    onBatch: (count: number, data: Buffer, meta: Uint32Array, hosts6: string[] | undefined) => void,
    onSendFailed?: (count: number) => void,
    /** Judges every datagram read (its verdict in the port field, from bit UDP_MEMO_SHIFT). */
    memo?: AnswerMemo,
  ): BatchSocket;
  /** A bound UDP socket fd on a kernel-chosen port (the upstream pool's). */
  bind(family: 4 | 6): number;
}

/** A batched socket (native/udpbatch.cc's UdpBatch, or a test's stand-in). */
export interface BatchSocket {
  send(buf: Buffer, address: string, port: number): boolean;
  /**
   * RELEASE: send(), and the answer expected: one the socket's memo judges a
   * hit or a refresh, from address:port with the query's id and question bytes and at
   * most maxBytes long, goes to clientAddress:clientPort through `via` (a
   * socket of the same kind) with id clientId as it is read; its verdict then
   * has MEMO_RELEASED.
   */
  sendExpecting?(buf: Buffer, address: string | number, port: number, via: BatchSocket, clientAddress: string | number, clientPort: number, clientId: number, questionLength: number, maxBytes: number): boolean;
  /** The query with this id settled otherwise: its answer is expected no more. */
  unexpect?(id: number): void;
  pause(): void;
  close(): void;
}

/** In a UdpSockets batch's port field: the datagram came from IPv6. */
export const UDP_FROM_V6 = 1 << 16;
/** In a UdpSockets batch's port field, from this bit: the memo's verdict (MEMO_HIT, MEMO_REFRESH, MEMO_ADDRESSES, MEMO_RELEASED). */
export const UDP_MEMO_SHIFT = 17;
/** The memo's verdict: the answer repeats a remembered one and changes nothing. */
export const MEMO_HIT = 1;
/** … and it has addresses (it counts as learned). */
export const MEMO_ADDRESSES = 2;
/** … and the socket already sent it to its pod (RELEASE): the query is only settled (a refresh: learned, not sent). */
export const MEMO_RELEASED = 4;
/** The memo's verdict: a repeat that moves an expiry, whose allows are programmed for at least the grace (REFRESH). */
export const MEMO_REFRESH = 8;

/** The native memo of answers that change nothing, as the proxy uses it (src/native NativeAnswerMemo). */
export interface AnswerMemo {
  remember(msg: Buffer, ranges: Float64Array, count: number): boolean;
}
/** Windows of at most this many addresses are remembered (the native memo's limit on records). */
const MEMO_MAX_ADDRESSES = 32;

/**
 * Where an answer goes back: the socket a UDP query came in on (to the pod's
 * address and port), or a TCP connection (which needs neither).
 */
interface Replier {
  send(msg: Buffer, port: number, address: string): void;
  /** A batched UDP socket's own socket, when it can release answers itself (RELEASE). */
  batch?: BatchSocket & Required<Pick<BatchSocket, 'sendExpecting' | 'unexpect'>>;
}

/** What the proxy needs of a UDP socket: dgram's, or a batched one. */
interface UdpLike extends Replier {
  /** Stops reading, still sends (batched sockets; dgram's cannot). */
  pause?(): void;
  close(): void;
}

/** Why the proxy answered as it did (sluice_dns_responses_total's reason). */
export type AnswerReason = 'upstream' | 'too-big' | 'unknown-endpoint' | 'name-not-allowed' | 'untrusted-resolver' | 'learn-failed' | 'busy';

/**
 * Called on the query path: each call must be cheap (a counter, one
 * histogram observation) and must not throw.
 */
export interface ProxyObserver {
  /** A query arrived from a pod (counted before any check). */
  query(protocol: 'udp' | 'tcp'): void;
  /**
   * An answer went back to the pod, `seconds` after its query arrived (the
   * upstream and the learning included): the upstream's (forwarded, or
   * truncated to fit UDP), or the proxy's own REFUSED or SERVFAIL.
   */
  answered(result: 'forwarded' | 'truncated' | 'refused' | 'servfail', reason: AnswerReason, seconds: number): void;
}

/** Sending from the pod's address: the agent's transparent sockets (and the datapath steering answers back). */
export interface PodSource {
  /** Whether queries to `upstream` leave from the pod (not for the node's own or loopback addresses). */
  appliesTo(upstream: string): boolean;
  /** A UDP socket fd that sends from `address` on a kernel-chosen port (IP_TRANSPARENT); throws if it cannot. */
  socket(family: 4 | 6, address: string): number;
}

/** What one pod may hold in the proxy at once (the flags --dns-pod-max-inflight, --dns-tcp-max-per-pod, --dns-tcp-max). */
export interface ProxyLimits {
  /** Queries of one pod waiting on upstreams (UDP and TCP); over it a query is dropped. */
  podMaxInflight: number;
  /** Concurrent TCP DNS connections of one pod; over it a new connection is closed at once. */
  tcpMaxPerPod: number;
  /** Concurrent TCP DNS connections of all pods (each holds a descriptor, and the agent serves CNI too). */
  tcpMax: number;
}

export const DEFAULT_LIMITS: Readonly<ProxyLimits> = { podMaxInflight: 64, tcpMaxPerPod: 8, tcpMax: 512 };

/** One pod's share of the proxy, by host veth ifindex (`podStats`). */
export interface PodDnsStats {
  /** Queries now waiting on an upstream. */
  inflight: number;
  /** TCP DNS connections now open. */
  tcpConnections: number;
  /** Queries dropped: the pod had podMaxInflight queries waiting already. */
  overInflight: number;
  /** Connections closed at once: over tcpMaxPerPod, or tcpMax in total. */
  tcpOverLimit: number;
}

/** Makes a bound socket and returns its fd (Node takes it over). */
export type BindFd = (family: 4 | 6, type: 'udp' | 'tcp', address: string, port: number) => number;

/** Where a datagram came from. */
export type Peer = Pick<dgram.RemoteInfo, 'address' | 'port'>;

export interface ProxyStats {
  queries: number;
  forwarded: number;
  answered: number;
  refused: number;
  servfail: number;
  malformed: number;
  spoofed: number;
  unattributed: number;
  upstreamTimeouts: number;
  learnedAnswers: number;
  /** UDP answers too big for the pod's path, sent with TC set. */
  truncated: number;
  /** Bugs: a handler threw (logged); the packet was dropped. */
  errors: number;
  /** Queries dropped because their pod had too many waiting (all pods). */
  overInflight: number;
  /** TCP connections closed at once, over a pod's or the total limit (all pods). */
  tcpOverLimit: number;
  /** UDP queries sent from the pod's own address (podSource). */
  fromPod: number;
  /** Queries sent from the node instead because the pod's socket could not be made. */
  fromPodFailed: number;
  /** UDP datagrams (queries or answers) the kernel refused to send: lost, as UDP may lose them. */
  sendFailed: number;
  /** Trusted answers released without parsing or learning: they repeated a learned one and changed nothing (MEMO). */
  unchanged: number;
  /** Trusted answers released before they were learned: repeats whose allows were programmed for at least the grace (REFRESH). */
  releasedBeforeLearning: number;
  /** … whose learning then failed (map full): their allows kept their earlier expiry. */
  refreshFailed: number;
}

/**
 * A pod's transparent upstream socket: one per pod address and upstream, so
 * two upstreams that are one server behind the node's NAT (a Service and its
 * endpoint) never share a 5-tuple, which conntrack would have to re-port.
 */
interface PodSocket {
  readonly sock: UdpLike;
  readonly address: string;
  readonly upstream: string;
  /** Its slot in the pending queries' keys (slot * 65536 + id). */
  readonly slot: number;
  ifindex: number;
  lastUsed: number;
}

interface Pending {
  deadline: number;
  upstream: string;
  /** The upstream as a number when it is IPv4 (a batched socket reports sources so), else -1. */
  upstream4: number;
  question: Question;
  questionWire: Buffer;
  clientId: number;
  /** The answer goes back through `via` to clientPort at clientAddress (fields, not a closure per query). */
  via: Replier;
  clientPort: number;
  clientAddress: string;
  /** UDP: the largest answer the pod's path carries whole. */
  maxBytes?: number;
  /** Whose in-flight budget this query takes (given back when it settles). */
  pod: PodDnsStats;
  /** performance.now() when the query arrived from the pod. */
  receivedMs: number;
  /** RELEASE: the socket that expects its answer (told when the query settles otherwise). */
  expectedBy?: Replier['batch'];
  /** REFRESH: the answer is at the pod already; it is learned, not sent. */
  released?: boolean;
}

type Refusal = { rcode: number; why: string; reason: AnswerReason };
/** The upstream a query goes to, or why it does not (no object per forwarded query). */
type Decision = string | Refusal;

function newStats(): ProxyStats {
  return { queries: 0, forwarded: 0, answered: 0, refused: 0, servfail: 0, malformed: 0, spoofed: 0, unattributed: 0, upstreamTimeouts: 0, learnedAnswers: 0, truncated: 0, errors: 0, overInflight: 0, tcpOverLimit: 0, fromPod: 0, fromPodFailed: 0, sendFailed: 0, unchanged: 0, releasedBeforeLearning: 0, refreshFailed: 0 };
}

/** The pending-key slot of socket `index` of the IPv`family` pool. */
function poolSlot(family: 4 | 6, index: number): number {
  return family === 6 ? POOL_SIZE + index : index;
}

function newPod(): PodDnsStats {
  return { inflight: 0, tcpConnections: 0, overInflight: 0, tcpOverLimit: 0 };
}

/** Length-prefixed DNS messages from a TCP byte stream (RFC 1035 4.2.2). */
class Framer {
  #buf: Buffer = Buffer.alloc(0);
  push(chunk: Buffer, onMessage: (msg: Buffer) => void): void {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : chunk;
    while (this.#buf.length >= 2) {
      const len = this.#buf.readUInt16BE(0);
      if (this.#buf.length < 2 + len) break;
      onMessage(Buffer.from(this.#buf.subarray(2, 2 + len)));
      this.#buf = this.#buf.subarray(2 + len);
    }
  }
}

function frame(msg: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(msg.length, 0);
  return Buffer.concat([len, msg]);
}

export class DnsProxy {
  readonly stats = newStats();
  readonly #deps: ProxyDeps;
  readonly #log: Logger;
  /** For everything a pod can trigger. */
  readonly #rlog: RateLimitedLog;
  readonly #limits: ProxyLimits;
  /** ifindex → that pod's share; pruned by retainPods. */
  readonly #pods = new Map<number, PodDnsStats>();
  /** Shared by the pods beyond MAX_POD_STATES. */
  readonly #overflowPod = newPod();
  readonly #servers: Array<UdpLike | net.Server> = [];
  readonly #tcpConns = new Set<net.Socket>();
  readonly #pools = new Map<4 | 6, UdpLike[]>();
  /** upstream → pod address → its transparent upstream socket (podSource); no key string per query. */
  readonly #podSockets = new Map<string, Map<string, PodSocket>>();
  /**
   * slot * 65536 + id → pending upstream query (a number: no key string per
   * query). Slots: IPv4 pool socket i is i, IPv6 pool socket i POOL_SIZE + i,
   * each pod socket its own from POD_SLOT_BASE up.
   */
  readonly #pending = new Map<number, Pending>();
  #nextPodSlot = POD_SLOT_BASE;
  /**
   * IPv4 pod address (a batched socket's number) → its text, for the NAT
   * lookup and the answer: a node has few pods, and each query made its
   * string again. Bounded: cleared when it reaches MAX_POD_STATES.
   */
  readonly #podAddressTexts = new Ipv4Texts(MAX_POD_STATES);
  /** Query ids and pool socket picks (CSPRNG values, fetched in bulk). */
  readonly #ids = new RandomIds();
  /** Each TCP upstream connection's pending queries (id → query), for the sweeper. */
  readonly #tcpPending = new Set<Map<number, Pending>>();
  readonly #upstreamPort: number;
  readonly #upstreamTimeoutMs: number;
  readonly #observer: ProxyObserver | undefined;
  #sweeper: NodeJS.Timeout | undefined;
  /** A batched socket's datagrams are being handled: learning may be deferred to the batch's end. */
  #inBatch = false;
  /** This batch called learn() deferred: #releaseHeld flushes. */
  #learnDeferred = false;
  /**
   * The #heldCount answers of this batch waiting for their map writes
   * (#releaseHeld), each with its view and what it taught: arrays kept
   * across batches (emptying one gives its storage up, and each batch grew it again).
   */
  readonly #held: Array<Pending | undefined> = [];
  readonly #heldAnswers: Array<Buffer | undefined> = [];
  readonly #heldLearned: Array<Learned | undefined> = [];
  #heldCount = 0;
  /** MEMO: the windows of one answer to remember (reused). */
  readonly #windows = new Float64Array(3 * MEMO_MAX_ADDRESSES);

  constructor(deps: ProxyDeps, log: Logger) {
    this.#deps = deps;
    this.#log = log;
    this.#rlog = new RateLimitedLog(log);
    this.#limits = { ...DEFAULT_LIMITS, ...deps.limits };
    this.#upstreamPort = deps.upstreamPort ?? UPSTREAM_PORT;
    this.#upstreamTimeoutMs = deps.upstreamTimeoutMs ?? UPSTREAM_TIMEOUT_MS;
    this.#observer = deps.observer;
  }

  /** Queries forwarded and not yet answered (UDP and TCP). */
  inflight(): number {
    let n = this.#pending.size;
    for (const p of this.#tcpPending) n += p.size;
    return n;
  }

  /** Each pod's share (copies), by host veth ifindex. */
  podStats(): Map<number, PodDnsStats> {
    return new Map([...this.#pods].map(([ifindex, p]) => [ifindex, { ...p }]));
  }

  /**
   * Forgets the pods whose veth is not in `ifindexes` (gone), so per-pod
   * state stays bounded by the node's pods. Their queries still in flight
   * settle against the forgotten entry, harmlessly.
   */
  retainPods(ifindexes: ReadonlySet<number>): void {
    for (const ifindex of this.#pods.keys()) if (!ifindexes.has(ifindex)) this.#pods.delete(ifindex);
    for (const ps of this.#eachPodSocket()) if (!ifindexes.has(ps.ifindex)) this.#closePodSocket(ps);
  }

  /** Pod addresses that have a transparent upstream socket now (each once). */
  podSocketAddresses(): string[] {
    return [...new Set(this.#eachPodSocket().map((ps) => ps.address))];
  }

  /** Every pod socket (a copy: closing one meanwhile is fine). */
  #eachPodSocket(): PodSocket[] {
    return [...this.#podSockets.values()].flatMap((byAddress) => [...byAddress.values()]);
  }

  #pod(ifindex: number): PodDnsStats {
    let p = this.#pods.get(ifindex);
    if (p) return p;
    if (this.#pods.size >= MAX_POD_STATES) return this.#overflowPod;
    p = newPod();
    this.#pods.set(ifindex, p);
    return p;
  }

  /** Over its in-flight budget: the query is dropped (the pod retries) and counted. */
  #overInflight(pod: PodDnsStats, ifindex: number): boolean {
    if (pod.inflight < this.#limits.podMaxInflight) return false;
    pod.overInflight++;
    this.stats.overInflight++;
    this.#rlog.warn('over-inflight', () => ({ pod: this.#deps.client(ifindex)?.pod ?? `ifindex ${ifindex}`, limit: this.#limits.podMaxInflight }), 'DNS proxy: a pod has too many queries in flight; dropping its new ones');
    return true;
  }

  /**
   * Listens on UDP and TCP `port` of each address. `bindFd`, when given,
   * makes each bound socket (the agent binds addresses that exist only as
   * `local` routes, which needs IP_FREEBIND: see src/agent/fqdn.ts).
   */
  async start(addresses: readonly string[], port: number, bindFd?: BindFd): Promise<void> {
    for (const address of addresses) {
      const family = net.isIPv6(address) ? 6 : 4;
      this.#servers.push(await this.#listenUdp(family, address, port, bindFd));
      const tcp = net.createServer({ allowHalfOpen: false }, (c) => this.#guard(() => this.#onTcpClient(c)));
      tcp.on('error', (err) => this.#rlog.error('tcp-server', { err }, 'DNS proxy TCP server error'));
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        const tcpFd = bindFd?.(family, 'tcp', address, port);
        tcp.listen(tcpFd === undefined ? { host: address, port, exclusive: true } : { fd: tcpFd, exclusive: true }, () => {
          tcp.off('error', reject);
          resolve();
        });
      });
      this.#servers.push(tcp);
    }
    this.#sweeper = setInterval(() => this.#expirePending(), 500);
    this.#sweeper.unref();
  }

  /** The UDP listener on address:port: batched when the agent's fast path and a bound fd are there, else dgram. */
  async #listenUdp(family: 4 | 6, address: string, port: number, bindFd?: BindFd): Promise<UdpLike> {
    const fd = bindFd?.(family, 'udp', address, port);
    const batch = this.#deps.batch;
    if (batch && fd !== undefined) {
      const sock: UdpLike = this.#batched(batch, fd, (msg, address, port) =>
        typeof address === 'number' ? this.#udpQuery(msg, this.#podAddressTexts.of(address), port, sock, address) : this.#udpQuery(msg, address, port, sock),
      );
      return sock;
    }
    const udp = dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4', reuseAddr: true, recvBufferSize: RECV_BUFFER_BYTES });
    udp.on('message', (msg, rinfo) => this.#udpQuery(msg, rinfo.address, rinfo.port, udp));
    udp.on('error', (err) => this.#rlog.error('udp-socket', { err }, 'DNS proxy UDP socket error'));
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(fd === undefined ? { address, port } : { fd }, () => {
        udp.off('error', reject);
        resolve();
      });
    });
    return udp;
  }

  /**
   * A batched socket on `fd`: each datagram of a batch to `onDatagram`, its
   * source an IPv4 address as a number or an IPv6 one as text, its bytes a
   * view of the batch's (valid until the handler returns); a send the kernel
   * refuses (its queue full) loses the datagram, as UDP may, and is counted.
   * An upstream socket (`upstream`: its slot, and the memo that judges what it
   * reads) settles the answers it released itself (RELEASE) by their id.
   */
  #batched(batch: UdpSockets, fd: number, onDatagram: (msg: Buffer, address: number | string, port: number, verdict: number) => void, upstream?: { slot: number; memo: AnswerMemo | undefined }): UdpLike {
    const memo = upstream?.memo;
    // With a memo, its hits first (MEMO), then the rest; without, one pass.
    const pass = (count: number, data: Buffer, meta: Uint32Array, hosts6: string[] | undefined, hits: boolean): void => {
      for (let i = 0, at = 0; i < count; i++, at += 4) {
        const port = meta[at + 2]!;
        const verdict = port >>> UDP_MEMO_SHIFT;
        if (memo && (verdict & MEMO_HIT) !== 0 !== hits) continue;
        const offset = meta[at]!;
        // Already at its pod (RELEASE), and a hit: settled by the id alone, no view of it made.
        if ((verdict & (MEMO_RELEASED | MEMO_HIT)) === (MEMO_RELEASED | MEMO_HIT)) {
          this.#settleReleased(upstream!.slot, (data[offset]! << 8) | data[offset + 1]!, verdict);
          continue;
        }
        onDatagram(data.subarray(offset, offset + meta[at + 1]!), port & UDP_FROM_V6 ? hosts6![i]! : meta[at + 3]!, port & 0xffff, verdict);
      }
    };
    const bs = batch.open(
      fd,
      (count, data, meta, hosts6) => {
        this.#inBatch = true;
        try {
          if (memo) pass(count, data, meta, hosts6, true);
          pass(count, data, meta, hosts6, false);
        } finally {
          this.#inBatch = false;
          this.#releaseHeld();
        }
      },
      (count) => {
        this.stats.sendFailed += count;
      },
      memo,
    );
    return {
      send: (m, port, address) => {
        if (!bs.send(m, address, port)) this.stats.sendFailed++;
      },
      pause: () => bs.pause(),
      close: () => bs.close(),
      ...(bs.sendExpecting && bs.unexpect ? { batch: bs as NonNullable<Replier['batch']> } : {}),
    };
  }

  /**
   * Stops serving. With `drainMs`, the listeners close first (what arrives
   * then waits in their kernel queues, for a successor holding the same
   * sockets) and the queries already forwarded get up to `drainMs` to be
   * answered before the rest closes.
   */
  async close(drainMs = 0): Promise<void> {
    if (this.#sweeper) clearInterval(this.#sweeper);
    const servers = this.#servers.splice(0);
    // A UDP listener that can still send answers the drained queries through it.
    const paused = drainMs > 0 ? servers.filter((s): s is UdpLike => !(s instanceof net.Server) && !!s.pause) : [];
    const closing = servers.map((s) => {
      if (s instanceof net.Server) return new Promise<void>((r) => s.close(() => r()));
      if (paused.includes(s)) s.pause!();
      else s.close();
      return undefined;
    });
    if (drainMs > 0) {
      const until = performance.now() + drainMs;
      while (this.inflight() > 0 && performance.now() < until) await new Promise((r) => setTimeout(r, 2));
    }
    for (const s of paused) s.close();
    for (const c of this.#tcpConns) c.destroy();
    this.#tcpPending.clear();
    await Promise.all(closing);
    for (const pool of this.#pools.values()) for (const s of pool) s.close();
    this.#pools.clear();
    for (const ps of this.#eachPodSocket()) this.#closePodSocket(ps);
    this.#pending.clear();
  }

  /** No handler may throw: a bug is logged and counted, the proxy lives on. */
  #guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#handlerError(err);
    }
  }

  #handlerError(err: unknown): void {
    this.stats.errors++;
    this.#rlog.error('handler-error', { err }, 'DNS proxy: unexpected error handling a packet');
  }

  #decide(nat: NatInfo, q: ParsedQuery): Decision {
    const client = this.#deps.client(nat.ifindex);
    if (!client) return { rcode: RCODE_REFUSED, why: 'unknown endpoint', reason: 'unknown-endpoint' };
    if (client.dns === 'MatchedOnly') {
      const rules = this.#deps.rulesFor(normalizeName(q.question.name));
      if (!rules.some((r) => client.rules.includes(r))) return { rcode: RCODE_REFUSED, why: 'name matches no rule (dns: MatchedOnly)', reason: 'name-not-allowed' };
    }
    if (this.#deps.trusted.includes(nat.daddr) || this.#deps.trustedBackend?.(nat.daddr)) return nat.daddr;
    const first = this.#deps.trusted[0];
    if (this.#deps.untrusted === 'redirect' && first) return first;
    return { rcode: RCODE_REFUSED, why: `${nat.daddr} is not a trusted resolver`, reason: 'untrusted-resolver' };
  }

  #refuse(q: ParsedQuery, d: Refusal, via: Replier, port: number, address: string, receivedMs: number): void {
    if (d.rcode === RCODE_REFUSED) this.stats.refused++;
    else this.stats.servfail++;
    this.#rlog.debug('refused', { dns: { qname: q.question.name }, why: d.why }, 'DNS query refused');
    via.send(errorResponse(q, d.rcode), port, address);
    this.#answered(d.rcode === RCODE_REFUSED ? 'refused' : 'servfail', d.reason, receivedMs);
  }

  /** Tells the observer an answer went back, `receivedMs` (performance.now()) after its query arrived. */
  #answered(result: Parameters<ProxyObserver['answered']>[0], reason: AnswerReason, receivedMs: number): void {
    this.#observer?.answered(result, reason, (performance.now() - receivedMs) / 1000);
  }

  // ------------------------------------------------------------------ UDP

  /**
   * One datagram from a pod, as the listening socket received it; `reply`
   * sends back to the pod. This is the socket's whole handler, public so the
   * fuzz test can feed the parser path without a network. Never throws.
   * The proxy writes into `msg` (a forwarded query is sent from it, with the
   * upstream id written in) and keeps nothing of it once this returns.
   */
  handleUdpQuery(msg: Buffer, from: Peer, reply: (m: Buffer) => void): void {
    this.#udpQuery(msg, from.address, from.port, { send: (m) => reply(m) });
  }

  /**
   * One datagram that arrived on upstream socket `index` of the IPv`family`
   * pool: that socket's whole handler, public for the same reason. Never throws.
   */
  handleUpstreamUdp(family: 4 | 6, index: number, msg: Buffer, from: Peer): void {
    this.#udpAnswer(poolSlot(family, index), msg, from.address, from.port);
  }

  // The handlers of every datagram guard themselves (no closure per datagram for #guard).

  /** `address4`: the source as a number when it is IPv4 and the socket reported it so (else -1). */
  #udpQuery(msg: Buffer, address: string, port: number, via: Replier, address4 = -1): void {
    try {
      this.#onUdpQuery(msg, address, port, via, address4);
    } catch (err) {
      this.#handlerError(err);
    }
  }

  /** `address`: an IPv4 source as a number (a batched socket's), or any as text; `verdict`: the memo's (MEMO). */
  #udpAnswer(slot: number, msg: Buffer, address: number | string, port: number, verdict = 0): void {
    try {
      this.#onUdpAnswer(slot, msg, address, port, verdict);
    } catch (err) {
      this.#handlerError(err);
    }
  }

  #onUdpQuery(msg: Buffer, address: string, port: number, via: Replier, address4: number): void {
    const receivedMs = performance.now();
    this.stats.queries++;
    this.#observer?.query('udp');
    const nat = this.#deps.nat(PROTO_UDP, address, port);
    if (!nat) {
      this.stats.unattributed++;
      return;
    }
    // Before parsing: an over-budget pod costs one NAT lookup per packet.
    const pod = this.#pod(nat.ifindex);
    if (this.#overInflight(pod, nat.ifindex)) return;
    const q = this.#parseQuery(msg);
    if (!q) return;
    const d = this.#decide(nat, q);
    if (typeof d !== 'string') return this.#refuse(q, d, via, port, address, receivedMs);
    this.#forwardUdp(msg, q, d, via, port, address, address4, pod, nat.ifindex, receivedMs);
  }

  #parseQuery(msg: Buffer): ParsedQuery | undefined {
    try {
      return parseQuery(msg);
    } catch (err) {
      if (!(err instanceof MalformedError)) throw err;
      this.stats.malformed++;
      return undefined;
    }
  }

  #pool(family: 4 | 6): UdpLike[] {
    let pool = this.#pools.get(family);
    if (pool) return pool;
    pool = [];
    const batch = this.#deps.batch;
    if (batch) {
      for (let i = 0; i < POOL_SIZE; i++) {
        const index = i;
        pool.push(this.#batched(batch, batch.bind(family), (m, address, port, verdict) => this.#udpAnswer(poolSlot(family, index), m, address, port, verdict), { slot: poolSlot(family, index), memo: this.#deps.answerMemo?.memo }));
      }
      this.#pools.set(family, pool);
      return pool;
    }
    for (let i = 0; i < POOL_SIZE; i++) {
      const s = dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4', recvBufferSize: RECV_BUFFER_BYTES });
      const index = i;
      s.on('message', (m, r) => this.#udpAnswer(poolSlot(family, index), m, r.address, r.port));
      s.on('error', (err) => this.#rlog.warn('upstream-socket', { err }, 'DNS proxy upstream socket error'));
      s.bind(0); // a kernel-chosen (randomized) port
      pool.push(s);
    }
    this.#pools.set(family, pool);
    return pool;
  }

  /**
   * The pod's transparent socket for its `address` (made on its first query),
   * or undefined: not for this upstream, or it cannot be made (then the query
   * leaves from the node, counted and logged).
   */
  #podSocket(family: 4 | 6, address: string, upstream: string, ifindex: number): PodSocket | undefined {
    const src = this.#deps.podSource;
    // `address` is a datagram's source (an address): a colon means IPv6.
    if (!src || address.includes(':') !== (family === 6) || !src.appliesTo(upstream)) return undefined;
    let byAddress = this.#podSockets.get(upstream);
    let ps = byAddress?.get(address);
    if (!ps) {
      let fd: number;
      try {
        fd = src.socket(family, address);
      } catch (err) {
        this.stats.fromPodFailed++;
        this.#rlog.warn('pod-socket', { err, address }, "DNS proxy: cannot send from the pod's address; forwarding from the node's");
        return undefined;
      }
      const slot = this.#nextPodSlot++;
      let sock: UdpLike;
      const batch = this.#deps.batch;
      if (batch) {
        sock = this.#batched(batch, fd, (m, address, port, verdict) => this.#udpAnswer(slot, m, address, port, verdict), { slot, memo: this.#deps.answerMemo?.memo });
      } else {
        const d = dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4' });
        d.on('message', (m, r) => this.#udpAnswer(slot, m, r.address, r.port));
        d.on('error', (err) => this.#rlog.warn('upstream-socket', { err }, 'DNS proxy upstream socket error'));
        d.bind({ fd });
        sock = d;
      }
      ps = { sock, address, upstream, slot, ifindex, lastUsed: 0 };
      if (!byAddress) this.#podSockets.set(upstream, (byAddress = new Map()));
      byAddress.set(address, ps);
    }
    ps.ifindex = ifindex; // an address a new pod took over
    ps.lastUsed = Date.now();
    return ps;
  }

  #closePodSocket(ps: PodSocket): void {
    const byAddress = this.#podSockets.get(ps.upstream);
    byAddress?.delete(ps.address);
    if (byAddress?.size === 0) this.#podSockets.delete(ps.upstream);
    try {
      ps.sock.close();
    } catch {
      // already closed
    }
  }

  #forwardUdp(msg: Buffer, q: ParsedQuery, upstream: string, via: Replier, podPort: number, podAddress: string, podAddress4: number, pod: PodDnsStats, ifindex: number, receivedMs: number): void {
    const family = upstream.includes(':') ? 6 : 4; // a valid address (the NAT entry's, or a trusted one)
    const ps = this.#podSocket(family, podAddress, upstream, ifindex);
    let sock: UdpLike;
    let slot: number;
    if (ps) {
      sock = ps.sock;
      slot = ps.slot;
    } else {
      const pool = this.#pool(family);
      const index = this.#ids.below(pool.length);
      sock = pool[index]!;
      slot = poolSlot(family, index);
    }
    let id = this.#ids.next();
    for (let tries = 0; this.#pending.has(slot * 65536 + id); tries++) {
      if (tries > 64) return void this.#refuse(q, { rcode: RCODE_SERVFAIL, why: 'too many queries in flight', reason: 'busy' }, via, podPort, podAddress, receivedMs);
      id = this.#ids.next();
    }
    // The datagram is ours until the handler returns (a send copies it): the
    // upstream's id goes in place, no copy.
    const out = msg;
    out.writeUInt16BE(id, 0);
    // RELEASE: an answer the memo vouches for goes back from the upstream socket itself.
    const expectedBy = sock.batch && via.batch ? sock.batch : undefined;
    const upstream4 = ipv4Number(upstream);
    this.#pending.set(slot * 65536 + id, {
      deadline: Date.now() + this.#upstreamTimeoutMs,
      upstream,
      upstream4,
      question: q.question,
      questionWire: q.questionWire,
      clientId: q.id,
      via,
      clientPort: podPort,
      clientAddress: podAddress,
      maxBytes: MAX_UDP_ANSWER,
      pod,
      receivedMs,
      expectedBy,
      released: false, // set here, not added later: one shape for every pending query
    });
    pod.inflight++;
    this.stats.forwarded++;
    if (ps) this.stats.fromPod++;
    if (!expectedBy) return sock.send(out, this.#upstreamPort, upstream);
    // IPv4 addresses as numbers: the socket makes no text of them and parses none.
    const to = upstream4 >= 0 ? upstream4 : upstream;
    if (!expectedBy.sendExpecting(out, to, this.#upstreamPort, via.batch!, podAddress4 >= 0 ? podAddress4 : podAddress, podPort, q.id, q.questionWire.length, MAX_UDP_ANSWER)) this.stats.sendFailed++;
  }

  #onUdpAnswer(slot: number, msg: Buffer, address: number | string, port: number, verdict: number): void {
    if (msg.length < 12) {
      this.stats.malformed++;
      return;
    }
    const id = (msg[0]! << 8) | msg[1]!;
    const key = slot * 65536 + id;
    const p = this.#pending.get(key);
    if (!p || port !== this.#upstreamPort || (typeof address === 'number' ? address !== p.upstream4 : address !== p.upstream)) {
      this.stats.spoofed++;
      return;
    }
    // MEMO: the memo vouches for everything after the question; the question's bytes are the query's.
    const qw = p.questionWire;
    if (verdict & MEMO_HIT && msg.length >= 12 + qw.length && msg.compare(qw, 0, qw.length, 12, 12 + qw.length) === 0) {
      this.#countUnchanged(verdict);
      this.#sendAnswer(msg, p);
    } else {
      // REFRESH: the socket sent it (it checked source, id and question); learned here, settled whatever the parse says.
      if (verdict & MEMO_RELEASED) {
        p.released = true;
        this.stats.releasedBeforeLearning++;
      }
      if (!this.#release(msg, p) && !p.released) return;
    }
    this.#pending.delete(key);
    p.pod.inflight--;
    p.expectedBy?.unexpect(id);
  }

  /**
   * RELEASE: the answer to query `id` on socket `slot` was sent to its pod by
   * the socket, which checked what #onUdpAnswer checks (source, id, question,
   * size) and the memo vouched for it: the query is only settled here.
   */
  #settleReleased(slot: number, id: number, verdict: number): void {
    try {
      const key = slot * 65536 + id;
      const p = this.#pending.get(key);
      if (!p) return;
      this.#pending.delete(key);
      p.pod.inflight--;
      this.#countUnchanged(verdict);
      this.stats.answered++;
      this.#answered('forwarded', 'upstream', p.receivedMs);
    } catch (err) {
      this.#handlerError(err);
    }
  }

  /** MEMO: an answer released as it came (one with addresses counts as learned: what it teaches is programmed). */
  #countUnchanged(verdict: number): void {
    this.stats.unchanged++;
    if (verdict & MEMO_ADDRESSES) this.stats.learnedAnswers++;
  }

  /**
   * Checks an upstream answer against its query, learns from it and sends it
   * to the pod. False if it is not the answer (keep waiting for the real one).
   */
  #release(msg: Buffer, p: Pending): boolean {
    let res: ReturnType<typeof parseResponse>;
    try {
      res = parseResponse(msg);
    } catch (err) {
      if (!(err instanceof MalformedError)) throw err;
      this.stats.malformed++;
      return false;
    }
    if (!sameQuestion(p.question, res.question)) {
      this.stats.spoofed++;
      return false;
    }
    const learned = learnFrom(res);
    if (learned.addresses.length) {
      // In a batch of upstream answers, the map writes wait for the batch's end, and so does the answer.
      const hold = this.#inBatch && this.#deps.flushLearned !== undefined;
      this.#learnDeferred ||= hold; // even if it throws: what it queued is written at the batch's end
      try {
        this.#deps.learn(learned, hold);
      } catch (err) {
        this.#learnFailed(msg, p, err);
        return true;
      }
      if (hold) {
        const i = this.#heldCount++;
        this.#held[i] = p;
        this.#heldAnswers[i] = msg;
        this.#heldLearned[i] = learned;
        return true;
      }
      this.stats.learnedAnswers++;
    }
    this.#remember(msg, learned);
    this.#sendAnswer(msg, p);
    return true;
  }

  /** MEMO: an answer whose learning is programmed, for its repeats to be released as they are. */
  #remember(msg: Buffer, learned: Learned): void {
    const m = this.#deps.answerMemo;
    const count = learned.addresses.length;
    if (!m || count > MEMO_MAX_ADDRESSES || !m.windows(learned, this.#windows)) return;
    m.memo.remember(msg, this.#windows, count);
  }

  /**
   * The end of a batch: the held answers' writes go to the map (one update for
   * all), then each answer goes to its pod, or SERVFAIL where its addresses
   * could not be programmed. `msg` views are still valid (the batch's
   * callback has not returned).
   */
  #releaseHeld(): void {
    if (!this.#learnDeferred) return;
    this.#learnDeferred = false;
    const count = this.#heldCount;
    this.#heldCount = 0;
    let failed: ReadonlyMap<Learned, unknown> | undefined;
    let flushError: unknown;
    try {
      failed = this.#deps.flushLearned!();
    } catch (err) {
      flushError = err ?? new Error('flushLearned threw'); // fail closed: nothing of the batch is known to be programmed
    }
    for (let i = 0; i < count; i++) {
      const p = this.#held[i]!;
      const msg = this.#heldAnswers[i]!;
      const learned = this.#heldLearned[i]!;
      this.#held[i] = this.#heldAnswers[i] = this.#heldLearned[i] = undefined;
      try {
        if (flushError !== undefined || failed?.has(learned)) {
          this.#learnFailed(msg, p, flushError ?? failed!.get(learned));
          continue;
        }
        this.stats.learnedAnswers++;
        this.#remember(msg, learned);
        this.#sendAnswer(msg, p);
      } catch (err) {
        this.#handlerError(err);
      }
    }
  }

  #learnFailed(msg: Buffer, p: Pending, err: unknown): void {
    if (p.released) {
      // REFRESH: the pod has the answer, and its allows their earlier expiry (at least the grace away).
      this.stats.refreshFailed++;
      this.stats.answered++;
      this.#rlog.error('learn-failed', { err, dns: { qname: p.question.name } }, 'could not program the later expiries of a DNS answer already released: its allows keep their earlier ones');
      return this.#answered('forwarded', 'upstream', p.receivedMs);
    }
    this.#rlog.error('learn-failed', { err, dns: { qname: p.question.name } }, 'could not program what a DNS answer allows: answering SERVFAIL');
    this.stats.servfail++;
    p.via.send(errorResponse({ id: p.clientId, flags: msg.readUInt16BE(2) & 0x7900, questionWire: p.questionWire }, RCODE_SERVFAIL), p.clientPort, p.clientAddress);
    this.#answered('servfail', 'learn-failed', p.receivedMs);
  }

  /** The upstream's answer to the pod (truncated if it does not fit the pod's UDP path); REFRESH: already there. */
  #sendAnswer(msg: Buffer, p: Pending): void {
    this.stats.answered++;
    if (p.released) return this.#answered('forwarded', 'upstream', p.receivedMs);
    if (p.maxBytes !== undefined && msg.length > p.maxBytes) {
      this.stats.truncated++;
      p.via.send(truncatedResponse(p.clientId, msg.readUInt16BE(2), p.questionWire), p.clientPort, p.clientAddress);
      this.#answered('truncated', 'too-big', p.receivedMs);
      return;
    }
    msg.writeUInt16BE(p.clientId, 0);
    p.via.send(msg, p.clientPort, p.clientAddress);
    this.#answered('forwarded', 'upstream', p.receivedMs);
  }

  /** Queries nobody answered in time, UDP and TCP alike: dropped, their budget given back. */
  #expirePending(): void {
    const now = Date.now();
    const expire = <K>(pending: Map<K, Pending>): void => {
      for (const [key, p] of pending) {
        if (p.deadline > now) continue;
        pending.delete(key);
        p.pod.inflight--;
        if (typeof key === 'number') p.expectedBy?.unexpect(key % 65536);
        this.stats.upstreamTimeouts++;
      }
    };
    expire(this.#pending);
    for (const pending of this.#tcpPending) expire(pending);
    // Idle pod sockets go (a pod that asked once does not hold a descriptor for
    // its lifetime); one with queries still waiting would have been used since.
    for (const ps of this.#eachPodSocket()) if (now - ps.lastUsed > POD_SOCKET_IDLE_MS) this.#closePodSocket(ps);
  }

  // ------------------------------------------------------------------ TCP

  #onTcpClient(c: net.Socket): void {
    const found = this.#deps.nat(PROTO_TCP, c.remoteAddress ?? '', c.remotePort ?? 0);
    if (!found) {
      this.stats.unattributed++;
      c.destroy();
      return;
    }
    const nat: NatInfo = { daddr: found.daddr, ifindex: found.ifindex }; // the connection's, for its lifetime
    // Each connection holds a descriptor (two, with its upstream) in the
    // process that also serves CNI: bounded per pod and in total.
    const pod = this.#pod(nat.ifindex);
    if (pod.tcpConnections >= this.#limits.tcpMaxPerPod || this.#tcpConns.size >= this.#limits.tcpMax) {
      pod.tcpOverLimit++;
      this.stats.tcpOverLimit++;
      this.#rlog.warn(
        'tcp-over-limit',
        () => ({ pod: this.#deps.client(nat.ifindex)?.pod ?? `ifindex ${nat.ifindex}`, podConnections: pod.tcpConnections, connections: this.#tcpConns.size }),
        'DNS proxy: too many TCP connections; closing the new one',
      );
      c.destroy();
      return;
    }
    pod.tcpConnections++;
    this.#tcpConns.add(c);
    c.setTimeout(TCP_IDLE_MS, () => c.destroy());
    const framer = new Framer();
    const upstreams = new Map<string, { sock: net.Socket; pending: Map<number, Pending> }>();
    const reply: Replier = { send: (m) => void (c.writable && c.write(frame(m))) };
    c.on('data', (chunk) =>
      this.#guard(() =>
        framer.push(chunk, (msg) =>
          this.#guard(() => {
            const receivedMs = performance.now();
            this.stats.queries++;
            this.#observer?.query('tcp');
            // This also bounds the connection's pending map (by podMaxInflight).
            if (this.#overInflight(pod, nat.ifindex)) return;
            const q = this.#parseQuery(msg);
            if (!q) return;
            const upstream = this.#decide(nat, q);
            if (typeof upstream !== 'string') return this.#refuse(q, upstream, reply, 0, '', receivedMs);
            let up = upstreams.get(upstream);
            if (!up) {
              up = this.#tcpUpstream(upstream, c);
              upstreams.set(upstream, up);
            }
            // Bounded like UDP: with every id in flight on this connection, an unbounded retry never ends.
            let id = this.#ids.next();
            for (let tries = 0; up.pending.has(id); tries++) {
              if (tries > 64) return this.#refuse(q, { rcode: RCODE_SERVFAIL, why: 'too many queries in flight', reason: 'busy' }, reply, 0, '', receivedMs);
              id = this.#ids.next();
            }
            const out = Buffer.from(msg);
            out.writeUInt16BE(id, 0);
            up.pending.set(id, { deadline: Date.now() + this.#upstreamTimeoutMs, upstream, upstream4: -1, question: q.question, questionWire: q.questionWire, clientId: q.id, via: reply, clientPort: 0, clientAddress: '', pod, receivedMs });
            pod.inflight++;
            this.stats.forwarded++;
            up.sock.write(frame(out));
          }),
        ),
      ),
    );
    const done = (): void => {
      if (!this.#tcpConns.delete(c)) return;
      pod.tcpConnections--;
      for (const up of upstreams.values()) {
        up.sock.destroy();
        // Nobody will read these answers: the budget goes back now.
        for (const p of up.pending.values()) p.pod.inflight--;
        up.pending.clear();
        this.#tcpPending.delete(up.pending);
      }
    };
    c.on('close', done);
    c.on('error', () => c.destroy());
  }

  #tcpUpstream(upstream: string, client: net.Socket): { sock: net.Socket; pending: Map<number, Pending> } {
    const pending = new Map<number, Pending>();
    this.#tcpPending.add(pending);
    const sock = net.connect({ host: upstream, port: this.#upstreamPort });
    const framer = new Framer();
    sock.on('data', (chunk) =>
      this.#guard(() =>
        framer.push(chunk, (msg) =>
          this.#guard(() => {
            if (msg.length < 12) {
              this.stats.malformed++;
              return;
            }
            const id = msg.readUInt16BE(0);
            const p = pending.get(id);
            if (!p) {
              this.stats.spoofed++;
              return;
            }
            // By the id read before #release, which writes the pod's id into msg.
            if (!this.#release(msg, p)) return;
            pending.delete(id);
            p.pod.inflight--;
          }),
        ),
      ),
    );
    // An upstream gone mid-conversation: the pod's connection goes too, so it retries.
    sock.on('error', () => client.destroy());
    sock.on('close', () => client.destroy());
    return { sock, pending };
  }
}
