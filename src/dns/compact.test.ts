// The cache's address index and the allows' record of what the sink holds
// are kept compact (a lone name as a string, rule/expiry pairs in a flat
// array): these tests hold them to what a plain Set / Map per address gives,
// order included, through random learning, eviction, sweeps and rule changes.
import { describe, expect, it } from 'vitest';
import type { NameSelector } from '../policy/index.js';
import { FqdnAllows, type AllowSink, type FqdnRuleSpec } from './allows.js';
import { FqdnCache } from './cache.js';
import { mulberry32 } from '../../test/helpers/prng.js';

/** The reference: ip → names (a Set, insertion order), rebuilt from entries() the way the index was kept. */
class SetIndex {
  readonly byIp = new Map<string, Set<string>>();
  add(ip: string, name: string): void {
    let s = this.byIp.get(ip);
    if (!s) this.byIp.set(ip, (s = new Set()));
    s.add(name);
  }
  remove(ip: string, name: string): void {
    const s = this.byIp.get(ip);
    if (!s) return;
    s.delete(name);
    if (!s.size) this.byIp.delete(ip);
  }
}

describe('FqdnCache address index', () => {
  it('lists the names of an address in the order they took it, as it goes from one name to many and back', () => {
    const cache = new FqdnCache({ minTtlMs: 0, graceMs: 0, maxIpsPerName: 1, maxNames: 100 });
    const ip = '192.0.2.7';
    cache.learn(['a.test'], [{ ip, ttl: 10 }], 0);
    expect(cache.namesOf(ip).map((n) => n.name)).toEqual(['a.test']);
    cache.learn(['b.test', 'c.test'], [{ ip, ttl: 20 }], 0);
    expect(cache.namesOf(ip)).toEqual([
      { name: 'a.test', expiresMs: 10_000 },
      { name: 'b.test', expiresMs: 20_000 },
      { name: 'c.test', expiresMs: 20_000 },
    ]);
    // a.test takes another address: with a cap of 1 it lets go of ip.
    cache.learn(['a.test'], [{ ip: '192.0.2.8', ttl: 10 }], 0);
    expect(cache.namesOf(ip).map((n) => n.name)).toEqual(['b.test', 'c.test']);
    cache.learn(['b.test'], [{ ip: '192.0.2.9', ttl: 10 }], 0);
    expect(cache.namesOf(ip).map((n) => n.name)).toEqual(['c.test']);
    // Back to two: the newcomer comes after the one left.
    cache.learn(['a.test'], [{ ip, ttl: 10 }], 0);
    expect(cache.namesOf(ip).map((n) => n.name)).toEqual(['c.test', 'a.test']);
    cache.learn(['c.test'], [{ ip: '192.0.2.10', ttl: 10 }], 0);
    cache.learn(['a.test'], [{ ip: '192.0.2.11', ttl: 10 }], 0);
    expect(cache.namesOf(ip)).toEqual([]);
    expect([...cache.ips()]).not.toContain(ip);
    expect(cache.size.ips).toBe(3); // .9, .10, .11
  });

  it('agrees with a Set per address through random answers, evictions and sweeps', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const rand = mulberry32(seed);
      const cache = new FqdnCache({ minTtlMs: 0, graceMs: 0, maxIpsPerName: 3, maxNames: 12 });
      const names = Array.from({ length: 16 }, (_, i) => `n${i}.test`);
      const ips = Array.from({ length: 10 }, (_, i) => `198.51.100.${i}`);
      let now = 0;
      for (let step = 0; step < 400; step++) {
        now += Math.floor(rand() * 3000);
        if (rand() < 0.1) cache.sweep(now, 1000);
        else {
          const chain = [...new Set(Array.from({ length: 1 + Math.floor(rand() * 2) }, () => names[Math.floor(rand() * names.length)]!))];
          const answer = [...new Set(Array.from({ length: 1 + Math.floor(rand() * 3) }, () => ips[Math.floor(rand() * ips.length)]!))];
          cache.learn(chain, answer.map((ip) => ({ ip, ttl: 1 + Math.floor(rand() * 5) })), now);
        }
        // The reference index, built from the names' own records (entries(),
        // least recently answered first) with a Set per address.
        const ref = new SetIndex();
        const expiry = new Map<string, number>();
        for (const e of cache.entries()) for (const { ip, expiresMs } of e.ips) expiry.set(`${e.name} ${ip}`, expiresMs);
        // Insertion order of the real index is the order the pairs were indexed;
        // compare as sets with expiries, and the key set exactly.
        for (const e of cache.entries()) for (const { ip } of e.ips) ref.add(ip, e.name);
        expect(new Set(cache.ips())).toEqual(new Set(ref.byIp.keys()));
        expect(cache.size.ips).toBe(ref.byIp.size);
        for (const ip of ips) {
          const got = cache.namesOf(ip);
          expect(new Set(got.map((n) => n.name))).toEqual(ref.byIp.get(ip) ?? new Set());
          for (const n of got) expect(n.expiresMs).toBe(expiry.get(`${n.name} ${ip}`));
          expect(new Set(got.map((n) => n.name)).size).toBe(got.length);
        }
      }
    }
  });
});

/** The sink as a Map per address, as FqdnAllows kept it: the reference for programmed(). */
class MapSink implements AllowSink {
  readonly held = new Map<string, Map<number, number>>();
  put(rule: number, ip: string, expiresMs: number): void {
    let m = this.held.get(ip);
    if (!m) this.held.set(ip, (m = new Map()));
    m.set(rule, expiresMs);
  }
  delete(rule: number, ip: string): void {
    const m = this.held.get(ip);
    m?.delete(rule);
    if (m && !m.size) this.held.delete(ip);
  }
}

describe('FqdnAllows record of the sink', () => {
  const pattern = (text: string): NameSelector => ({ kind: 'pattern', text });
  const name = (text: string): NameSelector => ({ kind: 'name', text });

  it('keeps rules in first-write order and updates an expiry in place', () => {
    const cache = new FqdnCache({ minTtlMs: 0, graceMs: 0, maxIpsPerName: 8, maxNames: 100 });
    const sink = new MapSink();
    const allows = new FqdnAllows(cache, sink);
    allows.setRules([
      { id: 7, selectors: [name('a.test')] },
      { id: 2, selectors: [pattern('*.test')] },
    ]);
    const ip = '203.0.113.1';
    allows.update(cache.learn(['a.test'], [{ ip, ttl: 10 }], 0));
    expect([...allows.programmed(ip)]).toEqual([[7, 10_000], [2, 10_000]]);
    allows.update(cache.learn(['a.test'], [{ ip, ttl: 30 }], 0));
    expect([...allows.programmed(ip)]).toEqual([[7, 30_000], [2, 30_000]]);
    // Rule 7 goes away: its pair goes, rule 2's stays; a new rule comes last.
    allows.setRules([{ id: 2, selectors: [pattern('*.test')] }, { id: 9, selectors: [pattern('a.*')] }]);
    allows.resync();
    expect([...allows.programmed(ip)]).toEqual([[2, 30_000], [9, 30_000]]);
    expect(allows.entries).toBe(2);
    allows.setRules([]);
    allows.resync();
    expect(allows.programmed(ip).size).toBe(0);
    expect(allows.entries).toBe(0);
    expect(sink.held.size).toBe(0);
  });

  it('agrees with the sink through random answers, sweeps, rule changes and an adopted start', () => {
    for (const seed of [11, 12, 13, 14]) {
      const rand = mulberry32(seed);
      const cache = new FqdnCache({ minTtlMs: 0, graceMs: 0, maxIpsPerName: 3, maxNames: 10 });
      const sink = new MapSink();
      // Start from what a previous agent left: some pairs no rule will explain.
      sink.put(5, '198.51.100.1', 99_000);
      sink.put(1, '198.51.100.1', 42_000);
      const allows = new FqdnAllows(cache, sink);
      allows.adopt([...sink.held].flatMap(([ip, m]) => [...m].map(([rule, expiresMs]) => ({ rule, ip, expiresMs }))));
      const names = Array.from({ length: 12 }, (_, i) => `h${i}.${i % 2 ? 'odd' : 'even'}.test`);
      const ips = Array.from({ length: 8 }, (_, i) => `198.51.100.${i}`);
      const ruleSets: FqdnRuleSpec[][] = [
        [{ id: 1, selectors: [pattern('*.odd.test')] }],
        [{ id: 1, selectors: [pattern('*.odd.test')] }, { id: 2, selectors: [pattern('**.test')] }],
        [{ id: 3, selectors: [pattern('*.even.test')] }, { id: 2, selectors: [pattern('**.test')] }, { id: 4, selectors: [name('h1.odd.test')] }],
      ];
      allows.setRules(ruleSets[0]!);
      allows.resync();
      let now = 0;
      for (let step = 0; step < 300; step++) {
        now += Math.floor(rand() * 2000);
        const r = rand();
        if (r < 0.08) {
          if (allows.setRules(ruleSets[Math.floor(rand() * ruleSets.length)]!)) allows.resync();
        } else if (r < 0.16) allows.update(cache.sweep(now, 500));
        else {
          const chain = [names[Math.floor(rand() * names.length)]!];
          const answer = [...new Set(Array.from({ length: 1 + Math.floor(rand() * 3) }, () => ips[Math.floor(rand() * ips.length)]!))];
          allows.update(cache.learn(chain, answer.map((ip) => ({ ip, ttl: 1 + Math.floor(rand() * 4) })), now));
        }
        let entries = 0;
        for (const ip of ips) {
          const held = sink.held.get(ip) ?? new Map<number, number>();
          // Same pairs in the same order as a Map per address written the same way.
          expect([...allows.programmed(ip)]).toEqual([...held]);
          entries += held.size;
        }
        expect(allows.entries).toBe(entries);
      }
    }
  });
});
