// Which (FQDN rule, address) pairs are allowed, until when: derived from the
// cache and the rules, and kept in the datapath through an AllowSink. An
// address is allowed for a rule while any name the rule matches maps to it;
// its expiry is the latest of those names'.
import { NameMatcher, type NameSelector } from '../policy/index.js';
import type { FqdnCache } from './cache.js';

export interface AllowSink {
  put(rule: number, ip: string, expiresMs: number): void;
  delete(rule: number, ip: string): void;
  /**
   * Puts i < count at once (the datapath's: one syscall), each written or not
   * on its own; returns the failed ones' errors by index, undefined when all
   * were written. Absent: update(…, true) writes at once.
   */
  putMany?(rules: readonly number[], ips: readonly string[], expiresMs: readonly number[], count: number): ReadonlyMap<number, unknown> | undefined;
}

/** What flush() could not write: the addresses, and one of the errors (for the log). */
export interface AllowFailure {
  ips: ReadonlySet<string>;
  error: unknown;
}

/** Deferred puts queued at most this many before they are written anyway (the sink's buffers stay small). */
const MAX_QUEUED = 1024;

export interface FqdnRuleSpec {
  id: number;
  selectors: readonly NameSelector[];
}

export class FqdnAllows {
  readonly #cache: FqdnCache;
  readonly #sink: AllowSink;
  #rules: Array<{ id: number; matcher: NameMatcher }> = [];
  #signature = '';
  /** name → ids of the rules matching it (names repeat far more than rules change). */
  #memo = new Map<string, number[]>();
  /**
   * What the sink holds: ip → [rule, expiry, rule, expiry, …] in the order
   * the rules were first written. A flat array, not a Map per address: an
   * address is nearly always allowed for one or two rules, and a Map each
   * was most of this class's memory at 100k addresses.
   */
  readonly #programmed = new Map<string, number[]>();
  /**
   * What one address should hold, as update works it out: [rule, expiry, …]
   * in first-seen order, each rule once, in the first #wantLength elements.
   * One array for every call, never shrunk (update runs for nearly every
   * answer the proxy learns, and garbage per answer is what its pauses are
   * made of).
   */
  readonly #want: number[] = [];
  #wantLength = 0;
  /** Adds one name of the address to #want (made once: no closure per call). */
  readonly #wantName = (name: string, expiresMs: number): void => {
    const want = this.#want;
    for (const rule of this.rulesFor(name)) {
      const at = indexOfRule(want, this.#wantLength, rule);
      if (at >= 0) {
        want[at + 1] = Math.max(want[at + 1]!, expiresMs);
        continue;
      }
      const i = this.#wantLength;
      want[i] = rule;
      want[i + 1] = Math.max(0, expiresMs); // never below 0, as a Map's `get(rule) ?? 0` made it (a replayed expiry can be from before boot)
      this.#wantLength += 2;
    }
  };

  // Deferred puts (update(…, true)) not yet in the sink, entry i in each
  // array: flush() writes them with one putMany. Each (rule, address) is
  // queued once (a later answer's expiry replaces the queued one), with what
  // #programmed said before it, so a failed write is undone exactly.
  readonly #queuedRules: number[] = [];
  readonly #queuedIps: string[] = [];
  readonly #queuedExpiries: number[] = [];
  /** The expiry recorded before the queued write; NaN: none (the map has no such key). */
  readonly #queuedBefore: number[] = [];
  #queued = 0;
  /** The addresses with a queued put (so most puts find no earlier one without a scan). */
  readonly #queuedAddresses = new Set<string>();
  /** What the deferred writes since the last flush() could not write. */
  #failedIps: Set<string> | undefined;
  #failure: unknown;

  constructor(cache: FqdnCache, sink: AllowSink) {
    this.#cache = cache;
    this.#sink = sink;
  }

  /** Starts from what the datapath already holds (a restarted agent). */
  adopt(existing: Iterable<{ rule: number; ip: string; expiresMs: number }>): void {
    for (const e of existing) this.#record(e.ip, e.rule, e.expiresMs);
  }

  /** New rule set: returns whether it changed (then call resync). */
  setRules(rules: readonly FqdnRuleSpec[]): boolean {
    const signature = JSON.stringify(rules.map((r) => [r.id, r.selectors]));
    if (signature === this.#signature) return false;
    this.#signature = signature;
    this.#rules = rules.map((r) => ({ id: r.id, matcher: new NameMatcher(r.selectors) }));
    this.#memo.clear();
    return true;
  }

  rulesFor(name: string): number[] {
    let ids = this.#memo.get(name);
    if (!ids) {
      ids = this.#rules.filter((r) => r.matcher.matches(name)).map((r) => r.id);
      if (this.#memo.size > 200_000) this.#memo.clear();
      this.#memo.set(name, ids);
    }
    return ids;
  }

  /** rule → expiry for one address, from the cache. */
  desired(ip: string): Map<number, number> {
    const want = this.#wanted(ip);
    const m = new Map<number, number>();
    for (let i = 0; i < this.#wantLength; i += 2) m.set(want[i]!, want[i + 1]!);
    return m;
  }

  /** desired(ip) as [rule, expiry, …] in #want's first #wantLength elements (valid until the next call). */
  #wanted(ip: string): number[] {
    this.#wantLength = 0;
    this.#cache.forEachNameOf(ip, this.#wantName);
    return this.#want;
  }

  /**
   * Brings the sink in line for these addresses. Throws on the first failed
   * write (map full): what was written stays recorded, so a later update
   * retries the rest; the caller answers SERVFAIL.
   *
   * `deferred` (with a sink that has putMany): the puts are queued for
   * flush(), which writes them at once and says which addresses failed;
   * they are recorded now and undone there if their write fails. Deletes
   * are not deferred: one of a key with a queued put writes the queue first,
   * so the map sees the two in the order they were made.
   */
  update(ips: Iterable<string>, deferred = false): number {
    const defer = deferred && this.#sink.putMany !== undefined;
    let writes = 0;
    for (const ip of ips) {
      const want = this.#wanted(ip);
      const wantLength = this.#wantLength;
      const have = this.#programmed.get(ip);
      for (let i = 0; i < wantLength; i += 2) {
        const rule = want[i]!;
        const exp = want[i + 1]!;
        const now = have && this.#programmed.get(ip); // a full queue's write may have undone a pair
        const before = now ? getPair(now, rule) : undefined;
        if (before === exp) continue;
        if (defer) {
          this.#record(ip, rule, exp); // before the queue: its write may happen (and fail) at once
          this.#queue(rule, ip, exp, before);
        } else {
          this.#sink.put(rule, ip, exp);
          this.#record(ip, rule, exp);
        }
        writes++;
      }
      if (!have) continue;
      let pairs = this.#programmed.get(ip); // #record may have replaced it, a full queue's write undone it
      if (pairs && this.#queuedAddresses.has(ip) && hasOtherRule(pairs, want, wantLength)) {
        this.#writeQueued();
        pairs = this.#programmed.get(ip);
      }
      if (!pairs) continue;
      for (let i = 0; i < pairs.length; ) {
        const rule = pairs[i]!;
        if (indexOfRule(want, wantLength, rule) >= 0) {
          i += 2;
          continue;
        }
        this.#sink.delete(rule, ip);
        pairs.splice(i, 2);
        writes++;
      }
      if (!pairs.length) this.#programmed.delete(ip);
    }
    return writes;
  }

  /**
   * Writes the deferred puts; returns what could not be written since the
   * last call (undefined: everything was), their records undone so a later
   * update writes them again.
   */
  flush(): AllowFailure | undefined {
    if (this.#queued) this.#writeQueued();
    const ips = this.#failedIps;
    if (!ips) return undefined;
    const failure = { ips, error: this.#failure };
    this.#failedIps = undefined;
    this.#failure = undefined;
    return failure;
  }

  #queue(rule: number, ip: string, expiresMs: number, before: number | undefined): void {
    if (this.#queuedAddresses.has(ip)) {
      for (let i = 0; i < this.#queued; i++) {
        if (this.#queuedRules[i] !== rule || this.#queuedIps[i] !== ip) continue;
        this.#queuedExpiries[i] = expiresMs; // the map only needs the latest; what it held before stays #queuedBefore
        return;
      }
    }
    const i = this.#queued++;
    this.#queuedRules[i] = rule;
    this.#queuedIps[i] = ip;
    this.#queuedExpiries[i] = expiresMs;
    this.#queuedBefore[i] = before ?? NaN;
    this.#queuedAddresses.add(ip);
    if (this.#queued >= MAX_QUEUED) this.#writeQueued();
  }

  /** One putMany for the queue; a failed put's record goes back to what the map still holds. */
  #writeQueued(): void {
    const count = this.#queued;
    this.#queued = 0;
    this.#queuedAddresses.clear();
    let failed: ReadonlyMap<number, unknown> | undefined;
    try {
      failed = this.#sink.putMany!(this.#queuedRules, this.#queuedIps, this.#queuedExpiries, count);
    } catch (err) {
      // Not one known written: every record undone (a write that did land is rewritten by a later update).
      failed = new Map(Array.from({ length: count }, (_, i) => [i, err]));
    }
    if (!failed) return;
    for (const [i, err] of failed) {
      const ip = this.#queuedIps[i]!;
      const before = this.#queuedBefore[i]!;
      if (Number.isNaN(before)) this.#unrecord(ip, this.#queuedRules[i]!);
      else this.#record(ip, this.#queuedRules[i]!, before);
      (this.#failedIps ??= new Set()).add(ip);
      if (this.#failure === undefined) this.#failure = err;
    }
  }

  /** Every address the cache or the sink knows (after a rule change or a restart). */
  resync(): number {
    return this.update(new Set([...this.#cache.ips(), ...this.#programmed.keys()]));
  }

  /** rule → expiry the datapath holds for `ip`. */
  programmed(ip: string): ReadonlyMap<number, number> {
    const pairs = this.#programmed.get(ip) ?? [];
    const m = new Map<number, number>();
    for (let i = 0; i < pairs.length; i += 2) m.set(pairs[i]!, pairs[i + 1]!);
    return m;
  }

  get entries(): number {
    let n = 0;
    for (const pairs of this.#programmed.values()) n += pairs.length / 2;
    return n;
  }

  /**
   * Sets one pair. A new array of the exact size rather than a push: an
   * array grown by push reserves room for ~17 elements.
   */
  #record(ip: string, rule: number, expiresMs: number): void {
    const pairs = this.#programmed.get(ip);
    if (pairs === undefined) {
      this.#programmed.set(ip, [rule, expiresMs]);
      return;
    }
    for (let i = 0; i < pairs.length; i += 2) {
      if (pairs[i] === rule) {
        pairs[i + 1] = expiresMs;
        return;
      }
    }
    this.#programmed.set(ip, [...pairs, rule, expiresMs]); // same key: keeps its place
  }

  /** Forgets one pair (its write failed: the map has no such key). */
  #unrecord(ip: string, rule: number): void {
    const pairs = this.#programmed.get(ip);
    const at = pairs === undefined ? -1 : indexOfRule(pairs, pairs.length, rule);
    if (at < 0) return;
    if (pairs!.length === 2) this.#programmed.delete(ip);
    else pairs!.splice(at, 2);
  }
}

/** Whether `pairs` holds a rule that is not among the first `length` elements of `want` (update deletes it). */
function hasOtherRule(pairs: readonly number[], want: readonly number[], length: number): boolean {
  for (let i = 0; i < pairs.length; i += 2) if (indexOfRule(want, length, pairs[i]!) < 0) return true;
  return false;
}

// [rule, expiry, …] pairs, each rule at most once, in first-write order (as the Map per address was).

/** Where `rule` is among the first `length` elements of pairs, or -1. */
function indexOfRule(pairs: readonly number[], length: number, rule: number): number {
  for (let i = 0; i < length; i += 2) if (pairs[i] === rule) return i;
  return -1;
}

function getPair(pairs: readonly number[], rule: number): number | undefined {
  for (let i = 0; i < pairs.length; i += 2) if (pairs[i] === rule) return pairs[i + 1];
  return undefined;
}
