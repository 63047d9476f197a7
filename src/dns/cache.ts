// What the DNS proxy has learned: name → addresses, each with its own
// lifetime (max(TTL, --fqdn-min-ttl) + --fqdn-grace from the last trusted
// answer that contained it), at most --fqdn-max-ips-per-name per name (the
// least recently answered goes first, to within a second: ORDER). Pure bookkeeping: no I/O, times in
// monotonic milliseconds passed in by the caller.
//
// The cache is keyed by name, never by rule: which rules an address is
// allowed for is derived (FqdnAllows), so a policy added or changed later
// applies to what was already learned.

import { runSteps } from '../policy/index.js';

const MIN_REFRESH_SLACK_MS = 1000;
const MAX_REFRESH_SLACK_MS = 5000;

/**
 * The refresh slack: an answer that moves an address's expiry later by less
 * than this leaves the entry as it is. Under load a name is answered many
 * times a second, and every change costs a map write (a syscall), a journal
 * line and, in the proxy, the answer's whole learning (a repeat within the
 * slack is released by the answer memo unparsed). Expiries then trail the
 * last answer by less than the slack: earlier, never later, than the
 * contract's lifetime. The slack is half of --fqdn-grace (the padding the
 * lifetime has for exactly such imprecision), at least 1 s and at most 5 s:
 * with the default 10 s grace an allow lasts at least max(TTL, min TTL) + 5 s
 * after the last answer, and a name asked without pause costs one write per
 * 5 s.
 */
export function refreshSlackMs(graceMs: number): number {
  return Math.min(MAX_REFRESH_SLACK_MS, Math.max(MIN_REFRESH_SLACK_MS, graceMs / 2));
}

/*
 * ORDER: names, and each name's addresses, are kept least recently answered
 * first, to within the refresh slack: an answer that changes nothing leaves
 * them where they are (the answers of a name asked without pause move it at
 * least once a slack, as its expiries move). Moving a name on every answer
 * cost two operations on a Map of up to --fqdn-max-names keys, and a rehash
 * of it every few thousand answers, on the proxy's thread.
 */

export interface CacheOptions {
  minTtlMs: number;
  graceMs: number;
  maxIpsPerName: number;
  /** Names kept at most; the least recently answered name goes first (ORDER). */
  maxNames: number;
}

export interface NameEntry {
  name: string;
  ips: Array<{ ip: string; expiresMs: number }>;
}

export class FqdnCache {
  readonly opts: CacheOptions;
  /** refreshSlackMs(opts.graceMs). */
  readonly refreshSlackMs: number;
  /** name → (ip → expiry); both maps in least-recently-answered-first order (ORDER). */
  readonly #names = new Map<string, Map<string, number>>();
  /**
   * ip → the names that map to it: the name itself while there is one (the
   * common case: a Set per address was ~40% of the cache's memory at 100k
   * addresses), a Set (in insertion order) once there are more.
   */
  readonly #byIp = new Map<string, string | Set<string>>();
  /** Names evicted so far to stay within maxNames (the DNS proxy's memo forgets on a change). */
  evictedNames = 0;
  /**
   * At or before every expiry the cache holds (SKIP): a sweep whose limit is
   * before it has nothing to forget and walks nothing. Each expiry written
   * lowers it; a whole walk sets it to the earliest it kept (and what was
   * written meanwhile, #earliestSinceWalk).
   */
  #earliest = Infinity;
  #earliestSinceWalk = Infinity;

  constructor(opts: CacheOptions) {
    this.opts = opts;
    this.refreshSlackMs = refreshSlackMs(opts.graceMs);
  }

  get size(): { names: number; ips: number } {
    return { names: this.#names.size, ips: this.#byIp.size };
  }

  lifetimeMs(ttlSeconds: number): number {
    return Math.max(ttlSeconds * 1000, this.opts.minTtlMs) + this.opts.graceMs;
  }

  /**
   * Records one trusted answer: every address for every name of the chain.
   * Returns the addresses whose allows may have changed (learned, refreshed
   * by the refresh slack or more, shortened, or evicted): empty when the
   * answer changed nothing worth writing down.
   */
  learn(names: readonly string[], addresses: ReadonlyArray<{ ip: string; ttl: number }>, nowMs: number): Set<string> {
    return this.learnAbsolute(
      names,
      addresses.map((a) => ({ ip: a.ip, expiresMs: nowMs + this.lifetimeMs(a.ttl) })),
      nowMs,
    );
  }

  /**
   * As learn, with expiries already computed (journal replay, the agent's
   * proxy). Over the per-name cap, addresses expired by `nowMs` go first,
   * then the least recently answered. The addresses touched are added to
   * `touched` (a caller that learns every answer passes one Set, cleared, each
   * time) and returned.
   */
  learnAbsolute(names: readonly string[], addresses: ReadonlyArray<{ ip: string; expiresMs: number }>, nowMs = -Infinity, touched = new Set<string>()): Set<string> {
    if (!addresses.length) return touched;
    for (const name of names) {
      let ips = this.#names.get(name);
      const known = ips !== undefined;
      ips ??= new Map();
      let changed = !known;
      for (const { ip, expiresMs } of addresses) {
        const had = ips.get(ip);
        // Within the refresh slack: left as it is, in place (see ORDER).
        if (had !== undefined && expiresMs >= had && expiresMs - had < this.refreshSlackMs) continue;
        if (had !== undefined) ips.delete(ip); // to the end: most recently answered last
        ips.set(ip, expiresMs);
        if (expiresMs < this.#earliest) this.#earliest = expiresMs;
        if (expiresMs < this.#earliestSinceWalk) this.#earliestSinceWalk = expiresMs;
        if (had === undefined) this.#index(ip, name);
        touched.add(ip);
        changed = true;
      }
      if (changed) {
        if (known) this.#names.delete(name); // to the end, as its addresses
        this.#names.set(name, ips);
      }
      if (ips.size > this.opts.maxIpsPerName) {
        for (const [ip, exp] of ips) {
          if (ips.size <= this.opts.maxIpsPerName) break;
          if (exp > nowMs) continue;
          ips.delete(ip);
          this.#unindex(ip, name);
          touched.add(ip);
        }
      }
      while (ips.size > this.opts.maxIpsPerName) {
        const oldest = ips.keys().next().value as string;
        ips.delete(oldest);
        this.#unindex(oldest, name);
        touched.add(oldest);
      }
    }
    while (this.#names.size > this.opts.maxNames) {
      const [oldest, ips] = this.#names.entries().next().value as [string, Map<string, number>];
      this.#names.delete(oldest);
      this.evictedNames++;
      for (const ip of ips.keys()) {
        this.#unindex(ip, oldest);
        touched.add(ip);
      }
    }
    return touched;
  }

  /** Forgets addresses that expired more than `keepMs` ago; returns them (sweepSteps at once). */
  sweep(nowMs: number, keepMs: number): Set<string> {
    return runSteps(this.sweepSteps(nowMs, keepMs));
  }

  /**
   * sweep() in steps of `step` names: the agent runs it in slices beside the
   * DNS proxy, so a cache of 100,000 names never holds a lookup for the whole
   * walk (~3–5 ms). The walk follows the live cache: a name learned or moved
   * meanwhile comes again at the end (sweeping is idempotent), one removed
   * before its turn never comes. The names are walked by key, not by entry:
   * no [key, value] pair per name (~140 bytes a name against ~40; young
   * garbage is what the proxy's pauses are made of). SKIP: with nothing
   * expired by the limit, there is no walk at all.
   */
  *sweepSteps(nowMs: number, keepMs: number, step = 256): Generator<void, Set<string>, void> {
    const touched = new Set<string>();
    const limit = nowMs - keepMs;
    if (this.#earliest > limit) return touched;
    this.#earliestSinceWalk = Infinity;
    let kept = Infinity;
    // One callback for every name's addresses (the name it is walking set beside it), not one per name.
    let name = '';
    const sweepIp = (exp: number, ip: string, ips: Map<string, number>): void => {
      if (exp > limit) {
        if (exp < kept) kept = exp;
        return;
      }
      ips.delete(ip);
      this.#unindex(ip, name);
      touched.add(ip);
    };
    let n = 0;
    for (const key of this.#names.keys()) {
      const ips = this.#names.get(key)!;
      name = key;
      ips.forEach(sweepIp);
      if (!ips.size) this.#names.delete(key);
      if (++n % step === 0) yield;
    }
    // Every expiry now held was kept by this walk or written during it (a walk cut short changes nothing).
    this.#earliest = Math.min(kept, this.#earliestSinceWalk);
    return touched;
  }

  /** The expiry of `ip` under `name`, or undefined when the name does not map to it. */
  expiryOf(name: string, ip: string): number | undefined {
    return this.#names.get(name)?.get(ip);
  }

  /** namesOf without the arrays: `fn` for each name that maps to `ip`, with that mapping's expiry. */
  forEachNameOf(ip: string, fn: (name: string, expiresMs: number) => void): void {
    const names = this.#byIp.get(ip);
    if (names === undefined) return;
    if (typeof names === 'string') fn(names, this.#names.get(names)!.get(ip)!);
    else for (const name of names) fn(name, this.#names.get(name)!.get(ip)!);
  }

  /** Names that currently map to `ip`, with that mapping's expiry. */
  namesOf(ip: string): Array<{ name: string; expiresMs: number }> {
    const names = this.#byIp.get(ip);
    if (names === undefined) return [];
    return (typeof names === 'string' ? [names] : [...names]).map((name) => ({ name, expiresMs: this.#names.get(name)!.get(ip)! }));
  }

  ips(): IterableIterator<string> {
    return this.#byIp.keys();
  }

  /**
   * The names one at a time, for work done in slices: the iteration follows
   * the live cache (a name learned meanwhile comes at the end, one removed
   * before its turn never comes).
   */
  *eachEntry(): Generator<NameEntry> {
    for (const [name, ips] of this.#names) yield { name, ips: [...ips].map(([ip, expiresMs]) => ({ ip, expiresMs })) };
  }

  entries(): NameEntry[] {
    return [...this.#names].map(([name, ips]) => ({ name, ips: [...ips].map(([ip, expiresMs]) => ({ ip, expiresMs })) }));
  }

  #index(ip: string, name: string): void {
    const s = this.#byIp.get(ip);
    if (s === undefined) this.#byIp.set(ip, name);
    else if (typeof s !== 'string') s.add(name);
    else if (s !== name) this.#byIp.set(ip, new Set([s, name]));
  }

  #unindex(ip: string, name: string): void {
    const s = this.#byIp.get(ip);
    if (s === undefined) return;
    if (typeof s === 'string') {
      if (s === name) this.#byIp.delete(ip);
      return;
    }
    s.delete(name);
    if (s.size === 1) this.#byIp.set(ip, s.values().next().value as string);
    else if (!s.size) this.#byIp.delete(ip);
  }
}
