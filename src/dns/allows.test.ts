import { describe, expect, it } from 'vitest';
import type { NameSelector } from '../policy/index.js';
import { FqdnAllows, type AllowSink, type FqdnRuleSpec } from './allows.js';
import { FqdnCache } from './cache.js';

/** The datapath map, in memory: what it holds and every write it got. */
class MemorySink implements AllowSink {
  readonly held = new Map<string, number>();
  readonly log: string[] = [];
  /** Puts fail (map full) while this says so. */
  full: (rule: number, ip: string) => boolean = () => false;

  put(rule: number, ip: string, expiresMs: number): void {
    if (this.full(rule, ip)) throw Object.assign(new Error('map full'), { code: 'SLUICE_MAP_FULL' });
    this.held.set(`${rule}/${ip}`, expiresMs);
    this.log.push(`put ${rule} ${ip} ${expiresMs}`);
  }

  delete(rule: number, ip: string): void {
    this.held.delete(`${rule}/${ip}`);
    this.log.push(`delete ${rule} ${ip}`);
  }

  take(): string[] {
    return this.log.splice(0);
  }

  state(): Record<string, number> {
    return Object.fromEntries([...this.held].sort(([x], [y]) => x.localeCompare(y)));
  }
}

const name = (text: string): NameSelector => ({ kind: 'name', text });
const pattern = (text: string): NameSelector => ({ kind: 'pattern', text });

const GITHUB: FqdnRuleSpec = { id: 1, selectors: [name('api.github.com')] };
const CONTENT: FqdnRuleSpec = { id: 2, selectors: [pattern('*.githubusercontent.com')] };
const EVERYTHING: FqdnRuleSpec = { id: 3, selectors: [pattern('*')] };

const LIFETIME_MS = 60_000; // ttl 60, min TTL 0, no grace

function setup(rules: FqdnRuleSpec[], opts: { maxIpsPerName?: number } = {}) {
  const cache = new FqdnCache({ minTtlMs: 0, graceMs: 0, maxIpsPerName: opts.maxIpsPerName ?? 8, maxNames: 100 });
  const sink = new MemorySink();
  const allows = new FqdnAllows(cache, sink);
  allows.setRules(rules);
  /** What the proxy's learn does: cache, then bring the sink in line for what changed. */
  const learn = (names: string[], ips: string[], nowMs: number, ttl = 60) => allows.update(cache.learn(names, ips.map((ip) => ({ ip, ttl })), nowMs));
  return { cache, sink, allows, learn };
}

describe('FqdnAllows.update', () => {
  it('allows an address for every rule matching a name it was learned under', () => {
    const { sink, learn, allows } = setup([GITHUB, CONTENT, EVERYTHING]);
    expect(learn(['api.github.com'], ['140.82.112.5'], 0)).toBe(2);
    expect(sink.state()).toEqual({ '1/140.82.112.5': LIFETIME_MS, '3/140.82.112.5': LIFETIME_MS });
    expect(allows.programmed('140.82.112.5')).toEqual(new Map([[1, LIFETIME_MS], [3, LIFETIME_MS]]));
    expect(allows.entries).toBe(2);
  });

  it('writes nothing for a name no rule matches', () => {
    const { sink, learn } = setup([GITHUB, CONTENT]);
    expect(learn(['evil.example'], ['203.0.113.66'], 0)).toBe(0);
    expect(sink.log).toEqual([]);
  });

  it('allows the addresses of a CNAME chain under the rules of every name in it', () => {
    const { sink, learn } = setup([GITHUB, CONTENT]);
    learn(['api.github.com.ns.svc.cluster.local', 'api.github.com'], ['140.82.112.5'], 0);
    learn(['raw.githubusercontent.com', 'github.map.fastly.net'], ['185.199.108.133'], 0);
    expect(sink.state()).toEqual({ '1/140.82.112.5': LIFETIME_MS, '2/185.199.108.133': LIFETIME_MS });
  });

  it('keeps one entry per (rule, address) with the latest expiry of its names', () => {
    const { sink, learn } = setup([CONTENT]);
    learn(['raw.githubusercontent.com'], ['185.199.108.133'], 0, 600);
    learn(['objects.githubusercontent.com'], ['185.199.108.133'], 1_000, 60);
    expect(sink.state()).toEqual({ '2/185.199.108.133': 600_000 });
    expect(sink.take()).toEqual(['put 2 185.199.108.133 600000']);
  });

  it('is idempotent: an unchanged address is not rewritten', () => {
    const { sink, learn, allows } = setup([GITHUB]);
    learn(['api.github.com'], ['140.82.112.5'], 0);
    sink.take();
    expect(allows.update(['140.82.112.5', '140.82.112.5', '192.0.2.99'])).toBe(0);
    expect(sink.log).toEqual([]);
  });

  it('rewrites an entry when an answer moves its expiry', () => {
    const { sink, learn } = setup([GITHUB]);
    learn(['api.github.com'], ['140.82.112.5'], 0);
    sink.take();
    expect(learn(['api.github.com'], ['140.82.112.5'], 30_000)).toBe(1);
    expect(sink.take()).toEqual([`put 1 140.82.112.5 ${30_000 + LIFETIME_MS}`]);
  });

  it('deletes the entry of an address the cache evicted', () => {
    const { sink, learn, allows } = setup([GITHUB], { maxIpsPerName: 1 });
    learn(['api.github.com'], ['140.82.112.5'], 0);
    learn(['api.github.com'], ['140.82.112.6'], 1);
    expect(sink.state()).toEqual({ '1/140.82.112.6': 1 + LIFETIME_MS });
    expect(allows.programmed('140.82.112.5').size).toBe(0);
    expect(allows.entries).toBe(1);
  });

  it('deletes what a sweep forgot', () => {
    const { sink, learn, allows, cache } = setup([GITHUB]);
    learn(['api.github.com'], ['140.82.112.5'], 0);
    learn(['api.github.com'], ['140.82.112.6'], 50_000);
    expect(allows.update(cache.sweep(LIFETIME_MS + 1, 0))).toBe(1);
    expect(sink.state()).toEqual({ '1/140.82.112.6': 50_000 + LIFETIME_MS });
  });

  it('keeps the entry while another name of the same rule still maps to the address', () => {
    const { sink, learn, allows, cache } = setup([CONTENT], { maxIpsPerName: 1 });
    learn(['a.githubusercontent.com'], ['185.199.108.133'], 0, 600);
    learn(['b.githubusercontent.com'], ['185.199.108.133'], 0, 60);
    learn(['a.githubusercontent.com'], ['185.199.108.134'], 1, 600); // evicts .133 from a
    expect(sink.state()).toEqual({ '2/185.199.108.133': 60_000, '2/185.199.108.134': 1 + 600_000 });
    expect(allows.update(cache.sweep(60_001, 0))).toBe(1);
    expect(sink.state()).toEqual({ '2/185.199.108.134': 1 + 600_000 });
  });

  it('throws on a failed write, records only what was written, and a later update finishes the job', () => {
    const { sink, learn, allows } = setup([GITHUB, EVERYTHING]);
    sink.full = (rule) => rule === 3;
    expect(() => learn(['api.github.com'], ['140.82.112.5'], 0)).toThrow('map full');
    expect(sink.state()).toEqual({ '1/140.82.112.5': LIFETIME_MS });
    expect(allows.programmed('140.82.112.5')).toEqual(new Map([[1, LIFETIME_MS]]));
    sink.full = () => false;
    sink.take();
    expect(allows.update(['140.82.112.5'])).toBe(1);
    expect(sink.take()).toEqual([`put 3 140.82.112.5 ${LIFETIME_MS}`]);
  });
});

describe('FqdnAllows, label by label', () => {
  // Names as message.ts hands them over: presentation format, so the label
  // "dot.example" is `dot\.example`.
  it('opens an escaped look-alike for no rule, and the real name only for its own', () => {
    const exact: FqdnRuleSpec = { id: 1, selectors: [name('dot.example.test')] };
    const one: FqdnRuleSpec = { id: 2, selectors: [pattern('*.example.test')] };
    const many: FqdnRuleSpec = { id: 3, selectors: [pattern('**.example.test')] };
    const { sink, learn, allows } = setup([exact, one, many]);
    expect(learn(['dot\\.example.test'], ['203.0.113.66'], 0)).toBe(0);
    expect(learn(['x\\.dot.example.test'], ['203.0.113.67'], 0)).toBe(0);
    expect(allows.rulesFor('dot\\.example.test')).toEqual([]);
    learn(['dot.example.test'], ['192.0.2.1'], 0);
    expect(sink.state()).toEqual({ '1/192.0.2.1': LIFETIME_MS, '2/192.0.2.1': LIFETIME_MS, '3/192.0.2.1': LIFETIME_MS });
  });

  it('keeps an address learned under both spellings allowed only through the real name', () => {
    const { sink, learn, cache } = setup([{ id: 1, selectors: [name('dot.example.test')] }], { maxIpsPerName: 1 });
    learn(['dot.example.test'], ['192.0.2.1'], 0);
    learn(['dot\\.example.test'], ['192.0.2.1'], 10_000);
    // The later answer for the look-alike does not lengthen the allow...
    expect(sink.state()).toEqual({ '1/192.0.2.1': LIFETIME_MS });
    // ...and evicting the real name's address removes it, whatever the look-alike holds.
    learn(['dot.example.test'], ['192.0.2.2'], 20_000);
    expect(cache.namesOf('192.0.2.1').map((n) => n.name)).toEqual(['dot\\.example.test']);
    expect(sink.state()).toEqual({ '1/192.0.2.2': 20_000 + LIFETIME_MS });
  });
});

describe('FqdnAllows rules', () => {
  it('reports whether a rule set changed', () => {
    const { allows } = setup([GITHUB]);
    expect(allows.setRules([{ id: 1, selectors: [name('api.github.com')] }])).toBe(false);
    expect(allows.setRules([{ id: 1, selectors: [name('api.github.com'), name('github.com')] }])).toBe(true);
    expect(allows.setRules([{ id: 7, selectors: [name('api.github.com'), name('github.com')] }])).toBe(true);
  });

  it('answers rulesFor from the current rules, not from a memo of the old ones', () => {
    const { allows } = setup([GITHUB]);
    expect(allows.rulesFor('api.github.com')).toEqual([1]);
    allows.setRules([GITHUB, { id: 9, selectors: [pattern('*.github.com')] }]);
    expect(allows.rulesFor('api.github.com')).toEqual([1, 9]);
    allows.setRules([]);
    expect(allows.rulesFor('api.github.com')).toEqual([]);
  });

  it('applies a rule added later to what was already learned (resync)', () => {
    const { sink, learn, allows } = setup([]);
    learn(['raw.githubusercontent.com'], ['185.199.108.133'], 0);
    expect(sink.log).toEqual([]);
    allows.setRules([CONTENT]);
    expect(allows.resync()).toBe(1);
    expect(sink.state()).toEqual({ '2/185.199.108.133': LIFETIME_MS });
  });

  it('removes the entries of a rule that went away (resync)', () => {
    const { sink, learn, allows } = setup([GITHUB, EVERYTHING]);
    learn(['api.github.com'], ['140.82.112.5'], 0);
    allows.setRules([GITHUB]);
    expect(allows.resync()).toBe(1);
    expect(sink.state()).toEqual({ '1/140.82.112.5': LIFETIME_MS });
  });
});

describe('FqdnAllows.adopt (agent restart)', () => {
  it('does not rewrite adopted entries that are still right', () => {
    const { sink, cache, allows } = setup([GITHUB]);
    cache.learnAbsolute(['api.github.com'], [{ ip: '140.82.112.5', expiresMs: 5_000 }]);
    allows.adopt([{ rule: 1, ip: '140.82.112.5', expiresMs: 5_000 }]);
    expect(allows.resync()).toBe(0);
    expect(sink.log).toEqual([]);
    expect(allows.entries).toBe(1);
  });

  it('deletes adopted entries nothing justifies any more, and fixes stale expiries', () => {
    const { sink, cache, allows } = setup([GITHUB]);
    cache.learnAbsolute(['api.github.com'], [{ ip: '140.82.112.5', expiresMs: 9_000 }]);
    allows.adopt([
      { rule: 1, ip: '140.82.112.5', expiresMs: 5_000 },
      { rule: 4, ip: '140.82.112.5', expiresMs: 5_000 }, // a rule that no longer exists
      { rule: 1, ip: '192.0.2.1', expiresMs: 5_000 }, // an address the cache does not know
    ]);
    expect(allows.resync()).toBe(3);
    expect(sink.log.sort()).toEqual(['delete 1 192.0.2.1', 'delete 4 140.82.112.5', 'put 1 140.82.112.5 9000']);
    expect(allows.entries).toBe(1);
    expect(allows.programmed('192.0.2.1').size).toBe(0);
  });
});

/** A sink that also writes many puts at once, as the datapath's one syscall: each batch logged as its size. */
class BatchSink extends MemorySink {
  putMany(rules: readonly number[], ips: readonly string[], expiresMs: readonly number[], count: number): ReadonlyMap<number, unknown> | undefined {
    this.log.push(`batch of ${count}`);
    let failed: Map<number, unknown> | undefined;
    for (let i = 0; i < count; i++) {
      try {
        this.put(rules[i]!, ips[i]!, expiresMs[i]!);
      } catch (err) {
        (failed ??= new Map()).set(i, err);
      }
    }
    return failed;
  }
}

describe('FqdnAllows.update deferred (one receive batch of answers) and flush', () => {
  function setupBatch(rules: FqdnRuleSpec[], opts: { maxIpsPerName?: number } = {}) {
    const cache = new FqdnCache({ minTtlMs: 0, graceMs: 0, maxIpsPerName: opts.maxIpsPerName ?? 8, maxNames: 100 });
    const sink = new BatchSink();
    const allows = new FqdnAllows(cache, sink);
    allows.setRules(rules);
    /** What the agent's deferred learn does: cache, then queue what changed. */
    const learn = (names: string[], ips: string[], nowMs: number, ttl = 60) => allows.update(cache.learn(names, ips.map((ip) => ({ ip, ttl })), nowMs), true);
    return { cache, sink, allows, learn };
  }

  it('queues the puts of many answers and writes them in one batch, each (rule, address) once with its latest expiry', () => {
    const { sink, learn, allows } = setupBatch([GITHUB, CONTENT]);
    expect(learn(['api.github.com'], ['140.82.112.5'], 0)).toBe(1);
    expect(learn(['raw.githubusercontent.com'], ['185.199.108.133'], 0)).toBe(1);
    expect(learn(['api.github.com'], ['140.82.112.5', '140.82.112.6'], 5_000)).toBe(2); // moves .5's expiry: queued once
    expect(sink.log).toEqual([]); // nothing written before the flush
    expect(allows.programmed('140.82.112.5')).toEqual(new Map([[1, 5_000 + LIFETIME_MS]])); // recorded already
    expect(allows.flush()).toBeUndefined();
    expect(sink.take()).toEqual(['batch of 3', `put 1 140.82.112.5 ${5_000 + LIFETIME_MS}`, `put 2 185.199.108.133 ${LIFETIME_MS}`, `put 1 140.82.112.6 ${5_000 + LIFETIME_MS}`]);
    expect(allows.flush()).toBeUndefined();
    expect(sink.log).toEqual([]); // nothing left
  });

  it('undoes the record of a put the sink refused, reports its address, and a later update writes it again', () => {
    const { sink, learn, allows } = setupBatch([GITHUB]);
    learn(['api.github.com'], ['140.82.112.5'], 0);
    allows.flush();
    sink.take();
    sink.full = (_rule, ip) => ip !== '140.82.112.7';
    learn(['api.github.com'], ['140.82.112.5', '140.82.112.6', '140.82.112.7'], 5_000); // a refresh and two new addresses
    const failure = allows.flush();
    expect(failure?.ips).toEqual(new Set(['140.82.112.5', '140.82.112.6']));
    expect(failure?.error).toMatchObject({ message: 'map full' });
    // What the map still holds: the old expiry of the refresh, nothing for the new one that failed.
    expect(allows.programmed('140.82.112.5')).toEqual(new Map([[1, LIFETIME_MS]]));
    expect(allows.programmed('140.82.112.6').size).toBe(0);
    expect(allows.programmed('140.82.112.7')).toEqual(new Map([[1, 5_000 + LIFETIME_MS]]));
    expect(allows.flush()).toBeUndefined(); // reported once
    sink.full = () => false;
    sink.take();
    expect(allows.update(['140.82.112.5', '140.82.112.6', '140.82.112.7'])).toBe(2);
    expect(sink.state()).toEqual({ '1/140.82.112.5': 5_000 + LIFETIME_MS, '1/140.82.112.6': 5_000 + LIFETIME_MS, '1/140.82.112.7': 5_000 + LIFETIME_MS });
  });

  it('writes the queue before a delete of a queued key, so the map never keeps what was deleted', () => {
    const { sink, learn, allows } = setupBatch([GITHUB], { maxIpsPerName: 1 });
    learn(['api.github.com'], ['140.82.112.5'], 0);
    learn(['api.github.com'], ['140.82.112.6'], 1); // evicts .5, queued a moment ago
    // The delete of .5 comes after the put queued for it (with .6's, queued just before).
    expect(sink.take()).toEqual(['batch of 2', `put 1 140.82.112.5 ${LIFETIME_MS}`, `put 1 140.82.112.6 ${1 + LIFETIME_MS}`, 'delete 1 140.82.112.5']);
    expect(allows.flush()).toBeUndefined();
    expect(sink.log).toEqual([]);
    expect(sink.state()).toEqual({ '1/140.82.112.6': 1 + LIFETIME_MS });
    expect(allows.entries).toBe(1);
  });

  it('with a sink that has no putMany, writes at once and throws as update does', () => {
    const { sink, cache, allows } = setup([GITHUB]);
    expect(allows.update(cache.learn(['api.github.com'], [{ ip: '140.82.112.5', ttl: 60 }], 0), true)).toBe(1);
    expect(sink.take()).toEqual([`put 1 140.82.112.5 ${LIFETIME_MS}`]);
    sink.full = () => true;
    expect(() => allows.update(cache.learn(['api.github.com'], [{ ip: '140.82.112.6', ttl: 60 }], 0), true)).toThrow('map full');
    expect(allows.programmed('140.82.112.6').size).toBe(0);
    expect(allows.flush()).toBeUndefined();
  });
});
