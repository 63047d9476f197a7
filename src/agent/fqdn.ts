// The agent's FQDN side: the DNS proxy, what it learned (cache + journal),
// and the sluice_fqdn_v1 entries derived from both and the compiled policy.
import type { FqdnNameRow, PodDnsRow } from '../api/index.js';
import type { Datapath, FqdnAllowMap } from '../datapath/index.js';
import {
  DnsProxy,
  FqdnAllows,
  FqdnCache,
  FqdnJournal,
  monoNowMs,
  monoNsToMs,
  PROXY_PORT,
  PROXY_V4,
  PROXY_V6,
  type AllowSink,
  type ClientPolicy,
  type Learned,
  type ProxyLimits,
  type ProxyObserver,
  type ProxyStats,
} from '../dns/index.js';
import type { Logger } from '../log/index.js';
import type { NativeAnswerMemo } from '../native/index.js';
import type { CompiledPolicy, RuleRef } from '../policy/index.js';
import { runSliced } from './policy-engine.js';
import { nativeProxyHost, type ProxyHost } from './proxy-host.js';

/**
 * How much earlier than the cache's refresh slack a memo window closes: the
 * proxy judges an answer as it is read, the cache when it learns one, a
 * moment later (src/dns/proxy.ts, MEMO).
 */
const MEMO_MARGIN_MS = 50;

/** An expired address stays (drops say "expired", not "never learned") this long. */
const KEEP_EXPIRED_MS = 60_000;
/**
 * How often the cache is swept. Nothing waits for it (an expired allow stops
 * matching in the datapath by its own expiry; the sweep only forgets what
 * expired KEEP_EXPIRED_MS ago), and a sliced walk costs ~1.8x one at once:
 * every 2 s it costs what a walk at once every second did.
 */
const SWEEP_MS = 2000;
/** A sweep runs in slices this short beside the proxy (a walk of 100,000 names at once held lookups ~3–5 ms). */
const SWEEP_SLICE_MS = 1;
/** The allows of the addresses a sweep forgot are brought in line this many at a time (deletes: a syscall each). */
const SWEEP_ALLOWS_STEP = 64;
/** The journal's compaction runs in slices this short: the proxy's lookups wait for no longer. */
const COMPACT_SLICE_MS = 1;

/** What the FQDN side uses of the datapath: its two maps and the DNS budget counters. */
export type FqdnDatapath = Pick<Datapath, 'fqdnAllows' | 'dnsNat' | 'dnsRateLimitDrops'>;

export interface FqdnConfig {
  stateDir: string;
  minTtlMs: number;
  graceMs: number;
  maxIpsPerName: number;
  maxNames: number;
  trusted: string[];
  untrusted: 'refuse' | 'redirect';
  /** Per-pod budgets in the proxy (the queries-per-second one is the datapath's). */
  limits: ProxyLimits;
  /** Listen on the IPv6 proxy address too. */
  ipv6: boolean;
  /**
   * --dns-upstream-source pod: UDP queries leave from the pod's own address
   * to upstreams for which this says yes (not the node's own addresses).
   */
  podSource?: (upstream: string) => boolean;
  /**
   * The backends of the Service whose frontend `ip` is (none if it is not
   * one): a name that resolves to a ClusterIP opens its backends too, since
   * the pod's connection is translated to one before policy judges it.
   */
  backendsOf?: (ip: string) => readonly string[];
  /** The DNS proxy's metrics hooks. */
  observer?: ProxyObserver;
}

/** One of the proxy's listening sockets. */
export interface ProxyListener {
  type: 'udp' | 'tcp';
  address: string;
  port: number;
}

/** `status` → fqdn. */
export interface FqdnStatus {
  names: number;
  ips: number;
  /** (rule, address) pairs in sluice_fqdn_v1. */
  entries: number;
  /** Since the agent started; rateLimited: the datapath's drops over the pods' budgets. */
  proxy: ProxyStats & { rateLimited: number };
  /** The pods that had DNS dropped or hold some now. */
  pods: PodDnsRow[];
  /** The resolvers whose answers are trusted now. */
  trusted: string[];
}

// The rows `status` and `fqdn` answer with are the API's (src/api/methods.ts).
export type { FqdnNameRow, PodDnsRow } from '../api/index.js';

class MapSink implements AllowSink {
  readonly #map: FqdnAllowMap;
  /**
   * Adopted allows kept until their own expiry whatever the cache says
   * (rule|ip → entry): after a damaged restore the cache cannot explain
   * what the pinned map holds, and a resync must not delete live allows.
   */
  readonly retained = new Map<string, { rule: number; ip: string; expiresMs: number }>();
  constructor(map: FqdnAllowMap) {
    this.#map = map;
  }
  put(rule: number, ip: string, expiresMs: number): void {
    if (this.retained.size) this.retained.delete(`${rule}|${ip}`); // managed from the cache again (no key string per write when none is kept)
    this.#map.putMs(rule, ip, expiresMs); // a full map: SLUICE_MAP_FULL
  }
  putMany(rules: readonly number[], ips: readonly string[], expiresMs: readonly number[], count: number): ReadonlyMap<number, unknown> | undefined {
    if (this.retained.size) for (let i = 0; i < count; i++) this.retained.delete(`${rules[i]}|${ips[i]}`);
    return this.#map.putMany(rules, ips, expiresMs, count);
  }
  delete(rule: number, ip: string): void {
    const kept = this.retained.get(`${rule}|${ip}`);
    if (kept && kept.expiresMs + KEEP_EXPIRED_MS > monoNowMs()) return; // until its own expiry (sweepRetained)
    this.retained.delete(`${rule}|${ip}`);
    this.#map.delete(rule, ip);
  }
  /** Deletes the retained allows that have expired; returns how many are left. */
  sweepRetained(now: number): number {
    for (const [k, e] of this.retained) {
      if (e.expiresMs + KEEP_EXPIRED_MS > now) continue;
      this.retained.delete(k);
      this.#map.delete(e.rule, e.ip);
    }
    return this.retained.size;
  }
  *dump(): Generator<{ rule: number; ip: string; expiresMs: number }> {
    for (const e of this.#map.entries()) yield { rule: e.rule, ip: e.ip, expiresMs: monoNsToMs(e.expiresNs) };
  }
}

export class FqdnService {
  readonly #dp: FqdnDatapath;
  readonly #host: ProxyHost;
  readonly #cfg: FqdnConfig;
  readonly #log: Logger;
  readonly cache: FqdnCache;
  readonly #allows: FqdnAllows;
  readonly #journal: FqdnJournal;
  readonly #proxy: DnsProxy;
  #clients = new Map<number, ClientPolicy>();
  /** Host veth ifindex → "namespace/name" of every endpoint, for per-pod DNS rows. */
  #podNames = new Map<number, string>();
  readonly #unprogrammed = new Set<string>();
  /** The addresses one answer touched (#learn's, cleared for each: no Set per answer). */
  readonly #touched = new Set<string>();
  // The #deferredCount learns since the last #flushLearned (one receive batch
  // of answers), entry i in each: the answer, its addresses, whether it
  // changed anything (then it is journaled once its writes are in). Kept
  // across batches: emptying an array gives its storage up.
  readonly #deferredLearned: Array<Learned | undefined> = [];
  readonly #deferredAddresses: Array<ReadonlyArray<{ ip: string; expiresMs: number }> | undefined> = [];
  readonly #deferredChanged: boolean[] = [];
  #deferredCount = 0;
  #compiled: CompiledPolicy | undefined;
  #sweeper: NodeJS.Timeout | undefined;
  readonly #sink: MapSink;
  #resyncPending = false;
  /** What a damaged restore left to report (status), until the retained allows expire. */
  #damage: string[] = [];
  readonly #listeners: Array<ProxyListener & { fd: number }> = [];
  /** The journal compaction under way, if one is. */
  #compaction: Promise<unknown> | undefined;
  /** The sweep under way (in slices), if one is. */
  #sweeping: Promise<unknown> | undefined;
  #stopped = false;
  /** The proxy's memo of answers that change nothing (MEMO in src/dns/proxy.ts), with a batched host. */
  readonly #memo: NativeAnswerMemo | undefined;
  /** cache.evictedNames when the memo last heard of it. */
  #memoEvictions = 0;

  /** `host`: the node's routes and sockets for the proxy (a fake in unit tests). */
  constructor(dp: FqdnDatapath, cfg: FqdnConfig, log: Logger, host: ProxyHost = nativeProxyHost) {
    this.#dp = dp;
    this.#host = host;
    this.#cfg = cfg;
    this.#log = log;
    this.cache = new FqdnCache({ minTtlMs: cfg.minTtlMs, graceMs: cfg.graceMs, maxIpsPerName: cfg.maxIpsPerName, maxNames: cfg.maxNames });
    const sink = new MapSink(dp.fqdnAllows);
    this.#sink = sink;
    this.#allows = new FqdnAllows(this.cache, sink);
    this.#journal = new FqdnJournal(cfg.stateDir);
    // What the pinned map holds keeps enforcing; the first resync diffs against it.
    const adopted = [...sink.dump()];
    this.#allows.adopt(adopted);
    const restored = this.#journal.restore(this.cache);
    log.info({ names: restored.names, ips: this.cache.size.ips, skipped: restored.skipped, programmed: this.#allows.entries }, 'restored learned FQDN mappings');
    const damage = this.#journal.damage();
    if (damage.quarantined.length) {
      // Fail closed but non-destructive: the cache may not explain every
      // adopted allow, so none is deleted before its own expiry. Nothing new
      // opens either: only answers learned from now on add allows.
      for (const e of adopted) sink.retained.set(`${e.rule}|${e.ip}`, e);
      this.#damage = damage.corrupt.length ? damage.corrupt : damage.quarantined.map((f) => `${f}, from an earlier start`);
      log.error(
        { corrupt: damage.corrupt, quarantined: damage.quarantined, retained: sink.retained.size },
        'learned FQDN mappings damaged: the damaged files are kept as *.corrupt, and every allow the datapath holds stays until its own expiry',
      );
    }
    const nat = dp.dnsNat;
    this.#memo = host.batch ? host.answerMemo?.(cfg.minTtlMs, cfg.graceMs) : undefined;
    this.#memoEvictions = this.cache.evictedNames;
    const memo = this.#memo;
    this.#proxy = new DnsProxy(
      {
        nat: (protocol, ip, port) => nat.find(protocol, ip, port),
        client: (ifindex) => this.#clients.get(ifindex),
        rulesFor: (name) => this.#allows.rulesFor(name),
        learn: (l, deferred) => this.#learn(l, deferred),
        flushLearned: () => this.#flushLearned(),
        trusted: cfg.trusted,
        trustedBackend: cfg.backendsOf && ((ip) => cfg.trusted.some((t) => cfg.backendsOf!(t).includes(ip))),
        untrusted: cfg.untrusted,
        limits: cfg.limits,
        podSource: cfg.podSource && {
          appliesTo: cfg.podSource,
          socket: (family, address) => host.transparentSocket(family, address),
        },
        observer: cfg.observer,
        ...(host.batch ? { batch: host.batch } : {}),
        ...(memo ? { answerMemo: { memo, windows: (l: Learned, into: Float64Array) => this.#windows(l, into) } } : {}),
      },
      log.child({ component: 'dns-proxy' }),
    );
  }

  /**
   * Makes the proxy's addresses reachable on the node (local routes on lo:
   * see proxy-host.ts for why not addresses) and starts serving.
   */
  async start(inherited?: (l: ProxyListener) => number | undefined): Promise<void> {
    const addresses = [PROXY_V4, ...(this.#cfg.ipv6 ? [PROXY_V6] : [])];
    this.#host.routeLocal(addresses);
    // Before the first query can leave from a pod's address: its answer must find the way back.
    if (this.#cfg.podSource) this.#host.routeToProxy(this.#cfg.ipv6);
    // A predecessor's sockets (src/agent/handover.ts), with what it left queued in them, else new ones.
    await this.#proxy.start(addresses, PROXY_PORT, (family, type, address, port) => {
      const fd = inherited?.({ type, address, port }) ?? this.#host.bind(family, type, address, port);
      this.#listeners.push({ type, address, port, fd });
      return fd;
    });
    this.#sweeper = setInterval(() => void this.sweep(), SWEEP_MS);
    this.#sweeper.unref();
    this.#log.info({ addresses, port: PROXY_PORT, trusted: this.#cfg.trusted, untrusted: this.#cfg.untrusted, upstreamSource: this.#cfg.podSource ? 'pod' : 'node' }, 'DNS proxy listening');
  }

  /**
   * Replaces the trusted resolvers (Kubernetes: the cluster DNS Service and
   * its endpoints as they change). In place: the proxy reads the same list
   * for every query.
   */
  setTrusted(ips: readonly string[]): void {
    const t = this.#cfg.trusted;
    if (t.length === ips.length && t.every((ip, i) => ip === ips[i])) return;
    t.splice(0, t.length, ...ips);
    this.#log.info({ trusted: [...t] }, 'trusted DNS resolvers changed');
  }

  /** The proxy's listening sockets (for a successor: src/agent/handover.ts); open until stop(). */
  listeners(): ReadonlyArray<ProxyListener & { fd: number }> {
    return this.#listeners;
  }

  /** With `drainMs`: the queries already forwarded get that long to be answered (and learned). */
  async stop(drainMs = 0): Promise<void> {
    if (this.#sweeper) clearInterval(this.#sweeper);
    this.#stopped = true; // a sweep under way ends at its next step
    await this.#proxy.close(drainMs);
    this.#journal.close();
  }

  /**
   * After every policy compile: which endpoint (by host veth) has which DNS
   * policy, and the rules learned addresses are allowed for.
   */
  setPolicy(compiled: CompiledPolicy, endpoints: ReadonlyArray<{ key: string; ifindex: number; pod: string }>): void {
    this.#compiled = compiled;
    const clients = new Map<number, ClientPolicy>();
    for (const ep of endpoints) {
      const p = compiled.endpoints.get(ep.key);
      if (p) clients.set(ep.ifindex, { pod: ep.pod, dns: p.dns, rules: p.fqdnRules });
    }
    this.#clients = clients;
    this.#podNames = new Map(endpoints.map((ep) => [ep.ifindex, ep.pod]));
    // Pods gone: their share of the proxy goes too (bounded by the node's pods).
    this.#proxy.retainPods(new Set(this.#podNames.keys()));
    // A resync that failed part-way (a full map) is redone by the next call
    // (the policy engine retries), not only after the next rule change.
    if (this.#allows.setRules([...compiled.fqdnRules.values()]) || this.#resyncPending) {
      this.#memo?.clear(); // what an answer allows is re-derived: it is learned again before it is trusted as unchanged
      this.#resyncPending = true;
      const writes = this.#allows.resync();
      this.#resyncPending = false;
      if (writes) this.#log.info({ writes, entries: this.#allows.entries }, 'FQDN allows re-derived for the new rules');
    }
  }

  /**
   * One trusted answer: cache, then the map, then the journal — an answer
   * that only repeats what is known (within the cache's refresh slack) writes nothing.
   * `deferred`: the map writes are queued and #flushLearned settles the
   * answer (it may depend on a write an earlier answer of its batch queued).
   */
  #learn(l: Learned, deferred: boolean): void {
    const now = monoNowMs();
    const backendsOf = this.#cfg.backendsOf;
    // Each answered address, then the backends of the Service it is the frontend of (its TTL too),
    // in an array of the exact size (one grown by push reserves room for ~17).
    let count = l.addresses.length;
    if (backendsOf) for (const a of l.addresses) count += backendsOf(a.ip).length;
    const addresses = new Array<{ ip: string; expiresMs: number }>(count);
    let n = 0;
    for (const a of l.addresses) {
      const expiresMs = now + this.cache.lifetimeMs(a.ttl);
      addresses[n++] = { ip: a.ip, expiresMs };
      if (backendsOf) for (const ip of backendsOf(a.ip)) addresses[n++] = { ip, expiresMs };
    }
    const touched = this.#touched;
    touched.clear();
    this.cache.learnAbsolute(l.names, addresses, now, touched);
    if (this.#memo) this.#memoHears(l, touched.size > 0);
    // Addresses a failed write (map full) left behind go again with every answer.
    if (this.#unprogrammed.size) for (const ip of this.#unprogrammed) touched.add(ip);
    const changed = touched.size > 0;
    if (changed) {
      try {
        this.#allows.update(touched, deferred);
      } catch (err) {
        for (const ip of touched) this.#unprogrammed.add(ip);
        this.#memo?.clear();
        throw err;
      }
      this.#unprogrammed.clear(); // deferred: #flushLearned adds back what failed
    }
    if (deferred) {
      // Settled by #flushLearned even when it changed nothing: its addresses may wait on a write queued before it.
      const i = this.#deferredCount++;
      this.#deferredLearned[i] = l;
      this.#deferredAddresses[i] = addresses;
      this.#deferredChanged[i] = changed;
    } else if (changed) {
      this.#journal.appendSoon(l.names, addresses);
    }
  }

  /**
   * MEMO: what the memo must forget after `l` was learned: its names' answers
   * when it changed the cache (their windows moved), every answer when a name
   * was evicted (its allows go).
   */
  #memoHears(l: Learned, changed: boolean): void {
    const memo = this.#memo!;
    if (this.cache.evictedNames !== this.#memoEvictions) {
      this.#memoEvictions = this.cache.evictedNames;
      memo.clear();
    } else if (changed) {
      for (const name of l.names) memo.forget(name);
    }
  }

  /**
   * MEMO: for each address of `l` (just programmed), the window its next
   * expiry may fall in and change nothing: at or after what the cache holds
   * for it under every name of the chain (and for the backends it opens), and
   * less than the refresh slack past the earliest of those; and that
   * earliest, which its allows (each the latest of its rule's names) are at
   * or after (REFRESH). False while anything is left unprogrammed (every
   * answer must then be learned again).
   */
  #windows(l: Learned, into: Float64Array): boolean {
    if (this.#unprogrammed.size || this.#resyncPending) return false;
    const backendsOf = this.#cfg.backendsOf;
    const slack = this.cache.refreshSlackMs - MEMO_MARGIN_MS;
    for (let k = 0; k < l.addresses.length; k++) {
      const ip = l.addresses[k]!.ip;
      const backends = backendsOf?.(ip);
      let lo = -Infinity;
      let until = Infinity;
      for (const name of l.names) {
        // The address itself (b = -1), then each backend it opens.
        for (let b = -1; b < (backends?.length ?? 0); b++) {
          const had = this.cache.expiryOf(name, b < 0 ? ip : backends![b]!);
          if (had === undefined) return false;
          if (had > lo) lo = had;
          if (had < until) until = had;
        }
      }
      into[3 * k] = lo;
      into[3 * k + 1] = until + slack;
      into[3 * k + 2] = until;
    }
    return true;
  }

  /**
   * Every answer the proxy remembers is learned again: the Services' backends
   * changed (a name resolving to a frontend opens its backends).
   */
  backendsChanged(): void {
    this.#memo?.clear();
  }

  /**
   * Writes the deferred learns' allows (one map update for the batch); an
   * answer with an address that could not be programmed gets SERVFAIL (the
   * proxy's), the others are journaled — before the proxy sends any of them.
   */
  #flushLearned(): ReadonlyMap<Learned, unknown> | undefined {
    const count = this.#deferredCount;
    this.#deferredCount = 0;
    let failed: Map<Learned, unknown> | undefined;
    const failure = this.#allows.flush();
    if (failure) {
      for (const ip of failure.ips) this.#unprogrammed.add(ip);
      this.#memo?.clear();
    }
    for (let i = 0; i < count; i++) {
      const l = this.#deferredLearned[i]!;
      const addresses = this.#deferredAddresses[i]!;
      this.#deferredLearned[i] = this.#deferredAddresses[i] = undefined;
      if (failure && addresses.some((a) => failure.ips.has(a.ip))) {
        (failed ??= new Map()).set(l, failure.error);
        continue;
      }
      if (!this.#deferredChanged[i]) continue;
      try {
        this.#journal.appendSoon(l.names, addresses);
      } catch (err) {
        (failed ??= new Map()).set(l, err);
      }
    }
    return failed;
  }

  /**
   * Forgets what expired KEEP_EXPIRED_MS ago, from the cache and then the
   * map, in slices beside the proxy (every SWEEP_MS; resolves when done, or
   * with the sweep already under way).
   */
  sweep(): Promise<unknown> {
    if (this.#stopped) return Promise.resolve();
    this.#sweeping ??= runSliced(this.#sweepSteps(), SWEEP_SLICE_MS)
      .catch((err: unknown) => this.#log.error({ err }, 'FQDN sweep failed'))
      .finally(() => (this.#sweeping = undefined));
    return this.#sweeping;
  }

  /** One sweep, in steps: the cache's walk, then the allows of what it forgot a chunk at a time. */
  *#sweepSteps(): Generator<void, void, void> {
    const touched = yield* this.cache.sweepSteps(monoNowMs(), KEEP_EXPIRED_MS);
    if (this.#stopped) return;
    const chunk: string[] = [];
    for (const ip of touched) {
      chunk.push(ip);
      if (chunk.length < SWEEP_ALLOWS_STEP) continue;
      if (this.#stopped) return;
      this.#allows.update(chunk);
      chunk.length = 0;
      yield;
    }
    if (this.#stopped) return;
    if (chunk.length) this.#allows.update(chunk);
    if (this.#damage.length && this.#sink.sweepRetained(monoNowMs()) === 0) {
      this.#journal.clearQuarantine();
      this.#damage = [];
      this.#log.info('every allow kept from before the damaged FQDN restore has expired: the quarantined files are removed');
    }
    // In slices: rewriting the snapshot of 100k names at once held every lookup for tens of ms.
    if (!this.#compaction && this.#journal.wantsCompaction(this.cache)) {
      this.#compaction = runSliced(this.#journal.compactSteps(this.cache), COMPACT_SLICE_MS)
        .catch((err: unknown) => this.#log.error({ err }, 'compacting the learned FQDN journal failed; retried at the next sweep'))
        .finally(() => (this.#compaction = undefined));
    }
  }

  /** `sluice fqdn`: what is learned, for how long, under which rules. */
  list(filter?: { rules?: readonly number[] }): FqdnNameRow[] {
    const now = monoNowMs();
    const rows: FqdnNameRow[] = [];
    for (const e of this.cache.entries()) {
      const ruleIds = this.#allows.rulesFor(e.name).filter((r) => !filter?.rules || filter.rules.includes(r));
      if (filter?.rules && !ruleIds.length) continue;
      rows.push({
        name: e.name,
        ips: e.ips.map((i) => ({ ip: i.ip, expiresInMs: Math.round(i.expiresMs - now) })),
        rules: ruleIds.map((r) => this.#compiled?.fqdnRules.get(r)?.ref).filter((r): r is RuleRef => !!r),
      });
    }
    return rows;
  }

  /** What is wrong (`status` → problems): a damaged restore whose allows are still kept. */
  problems(): string[] {
    return this.#damage.map((d) => `learned mappings damaged (${d}); ${this.#sink.retained.size} adopted allows kept until they expire`);
  }

  /**
   * What `sluice explain` judges live: an address's names and a name's
   * addresses, each with the time it has left (≤ 0 once expired). A name's
   * addresses come from a scan of the cache: an explain is rare, a lookup is not.
   */
  learned(): { namesOf(ip: string): Array<{ name: string; expiresInMs: number }>; addressesOf(name: string): Array<{ ip: string; expiresInMs: number }> } {
    const now = monoNowMs();
    return {
      namesOf: (ip) => this.cache.namesOf(ip).map((n) => ({ name: n.name, expiresInMs: Math.round(n.expiresMs - now) })),
      addressesOf: (name) => (this.cache.entries().find((e) => e.name === name)?.ips ?? []).map((a) => ({ ip: a.ip, expiresInMs: Math.round(a.expiresMs - now) })),
    };
  }

  /** Names an address was learned under (flow events show them). */
  namesOf(ip: string): string[] {
    return this.cache.namesOf(ip).map((n) => n.name);
  }

  status(): FqdnStatus {
    let drops = new Map<number, bigint>();
    try {
      drops = this.#dp.dnsRateLimitDrops();
    } catch (err) {
      this.#log.warn({ err }, 'could not read the DNS budget drops from the datapath');
    }
    const held = this.#proxy.podStats();
    const pods: PodDnsRow[] = [];
    let rateLimited = 0;
    for (const [ifindex, pod] of this.#podNames) {
      const p = held.get(ifindex);
      const row = { pod, rateLimited: Number(drops.get(ifindex) ?? 0n), overInflight: p?.overInflight ?? 0, tcpOverLimit: p?.tcpOverLimit ?? 0, inflight: p?.inflight ?? 0, tcpConnections: p?.tcpConnections ?? 0 };
      rateLimited += row.rateLimited;
      if (row.rateLimited || row.overInflight || row.tcpOverLimit || row.inflight || row.tcpConnections) pods.push(row);
    }
    pods.sort((a, b) => a.pod.localeCompare(b.pod));
    return { names: this.cache.size.names, ips: this.cache.size.ips, entries: this.#allows.entries, proxy: { ...this.#proxy.stats, rateLimited }, pods, trusted: [...this.#cfg.trusted] };
  }
}
