// Which (FQDN rule, address) pairs are allowed, until when: derived from the
// cache and the rules, and kept in the datapath through an AllowSink. An
// address is allowed for a rule while any name the rule matches maps to it;
// its expiry is the latest of those names'.
import { NameMatcher, type NameSelector } from '../policy/index.js';
import type { FqdnCache } from './cache.js';

export interface AllowSink {
  put(rule: number, ip: string, expiresMs: number): void;
  delete(rule: number, ip: string): void;
}

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
   */
  update(ips: Iterable<string>): number {
    let writes = 0;
    for (const ip of ips) {
      const want = this.#wanted(ip);
      const wantLength = this.#wantLength;
      const have = this.#programmed.get(ip);
      for (let i = 0; i < wantLength; i += 2) {
        const rule = want[i]!;
        const exp = want[i + 1]!;
        if (have !== undefined && getPair(have, rule) === exp) continue;
        this.#sink.put(rule, ip, exp);
        this.#record(ip, rule, exp);
        writes++;
      }
      if (!have) continue;
      const pairs = this.#programmed.get(ip)!; // #record may have replaced it
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
