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
  /** What the sink holds: ip → rule → expiry. */
  readonly #programmed = new Map<string, Map<number, number>>();

  constructor(cache: FqdnCache, sink: AllowSink) {
    this.#cache = cache;
    this.#sink = sink;
  }

  /** Starts from what the datapath already holds (a restarted agent). */
  adopt(existing: Iterable<{ rule: number; ip: string; expiresMs: number }>): void {
    for (const e of existing) this.#programmedFor(e.ip).set(e.rule, e.expiresMs);
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
    const want = new Map<number, number>();
    for (const { name, expiresMs } of this.#cache.namesOf(ip)) {
      for (const rule of this.rulesFor(name)) want.set(rule, Math.max(want.get(rule) ?? 0, expiresMs));
    }
    return want;
  }

  /**
   * Brings the sink in line for these addresses. Throws on the first failed
   * write (map full): what was written stays recorded, so a later update
   * retries the rest; the caller answers SERVFAIL.
   */
  update(ips: Iterable<string>): number {
    let writes = 0;
    for (const ip of ips) {
      const want = this.desired(ip);
      const have = this.#programmed.get(ip);
      for (const [rule, exp] of want) {
        if (have?.get(rule) === exp) continue;
        this.#sink.put(rule, ip, exp);
        this.#programmedFor(ip).set(rule, exp);
        writes++;
      }
      if (!have) continue;
      for (const rule of [...have.keys()]) {
        if (want.has(rule)) continue;
        this.#sink.delete(rule, ip);
        have.delete(rule);
        writes++;
      }
      if (!have.size) this.#programmed.delete(ip);
    }
    return writes;
  }

  /** Every address the cache or the sink knows (after a rule change or a restart). */
  resync(): number {
    return this.update(new Set([...this.#cache.ips(), ...this.#programmed.keys()]));
  }

  /** rule → expiry the datapath holds for `ip`. */
  programmed(ip: string): ReadonlyMap<number, number> {
    return this.#programmed.get(ip) ?? new Map();
  }

  get entries(): number {
    let n = 0;
    for (const m of this.#programmed.values()) n += m.size;
    return n;
  }

  #programmedFor(ip: string): Map<number, number> {
    let m = this.#programmed.get(ip);
    if (!m) this.#programmed.set(ip, (m = new Map()));
    return m;
  }
}
