import { describe, expect, it } from 'vitest';
import { FqdnCache, refreshSlackMs, type CacheOptions } from './cache.js';

const MIN_TTL_MS = 10_000;
const GRACE_MS = 2_000;
const REFRESH_SLACK_MS = refreshSlackMs(GRACE_MS);

function cache(opts: Partial<CacheOptions> = {}): FqdnCache {
  return new FqdnCache({ minTtlMs: MIN_TTL_MS, graceMs: GRACE_MS, maxIpsPerName: 4, maxNames: 100, ...opts });
}

const ips = (c: FqdnCache, name: string): string[] => c.entries().find((e) => e.name === name)?.ips.map((i) => i.ip) ?? [];
const names = (c: FqdnCache): string[] => c.entries().map((e) => e.name);
const expiry = (c: FqdnCache, name: string, ip: string): number | undefined => c.namesOf(ip).find((n) => n.name === name)?.expiresMs;

describe('FqdnCache lifetimes', () => {
  it('is max(TTL, min TTL) + grace', () => {
    const c = cache();
    expect(c.lifetimeMs(0)).toBe(MIN_TTL_MS + GRACE_MS);
    expect(c.lifetimeMs(5)).toBe(MIN_TTL_MS + GRACE_MS);
    expect(c.lifetimeMs(10)).toBe(MIN_TTL_MS + GRACE_MS);
    expect(c.lifetimeMs(300)).toBe(300_000 + GRACE_MS);
  });

  it('counts from the answer: now + lifetime, for every name of the chain', () => {
    const c = cache();
    const touched = c.learn(['www.example.com', 'cdn.example.net'], [{ ip: '192.0.2.1', ttl: 60 }, { ip: '2001:db8::1', ttl: 1 }], 1_000);
    expect(touched).toEqual(new Set(['192.0.2.1', '2001:db8::1']));
    for (const name of ['www.example.com', 'cdn.example.net']) {
      expect(expiry(c, name, '192.0.2.1')).toBe(1_000 + 60_000 + GRACE_MS);
      expect(expiry(c, name, '2001:db8::1')).toBe(1_000 + MIN_TTL_MS + GRACE_MS);
    }
    expect(c.size).toEqual({ names: 2, ips: 2 });
  });

  it('takes the expiry of the last answer that contained the address, longer or shorter', () => {
    const c = cache();
    c.learn(['example.com'], [{ ip: '192.0.2.1', ttl: 600 }], 0);
    c.learn(['example.com'], [{ ip: '192.0.2.1', ttl: 60 }], 50_000);
    expect(expiry(c, 'example.com', '192.0.2.1')).toBe(50_000 + 60_000 + GRACE_MS);
    c.learn(['example.com'], [{ ip: '192.0.2.1', ttl: 600 }], 70_000);
    expect(expiry(c, 'example.com', '192.0.2.1')).toBe(70_000 + 600_000 + GRACE_MS);
  });

  it('keeps one expiry per (name, address): another name answering the address does not touch it', () => {
    const c = cache();
    c.learn(['a.example'], [{ ip: '192.0.2.1', ttl: 600 }], 0);
    c.learn(['b.example'], [{ ip: '192.0.2.1', ttl: 60 }], 1_000);
    expect(c.namesOf('192.0.2.1')).toEqual([
      { name: 'a.example', expiresMs: 600_000 + GRACE_MS },
      { name: 'b.example', expiresMs: 1_000 + 60_000 + GRACE_MS },
    ]);
  });

  it('walks the names of an address without arrays (forEachNameOf), as namesOf lists them', () => {
    const c = cache();
    c.learn(['a.example'], [{ ip: '192.0.2.1', ttl: 600 }, { ip: '192.0.2.2', ttl: 60 }], 0);
    c.learn(['b.example', 'c.example'], [{ ip: '192.0.2.1', ttl: 60 }], 1_000);
    for (const ip of ['192.0.2.1', '192.0.2.2', '192.0.2.99']) {
      const walked: Array<{ name: string; expiresMs: number }> = [];
      c.forEachNameOf(ip, (name, expiresMs) => walked.push({ name, expiresMs }));
      expect(walked).toEqual(c.namesOf(ip));
    }
    expect(c.namesOf('192.0.2.1')).toHaveLength(3);
  });

  it('adds what an answer touched to the Set it is given (the proxy passes one for every answer) and returns it', () => {
    const c = cache();
    const touched = new Set(['left.over']);
    expect(c.learnAbsolute(['a.example'], [{ ip: '192.0.2.1', expiresMs: 5_000 }], 0, touched)).toBe(touched);
    expect(touched).toEqual(new Set(['left.over', '192.0.2.1']));
    touched.clear();
    expect(c.learnAbsolute(['a.example'], [{ ip: '192.0.2.1', expiresMs: 5_000 + REFRESH_SLACK_MS - 1 }], 0, touched).size).toBe(0);
  });

  it('records nothing for an answer without addresses', () => {
    const c = cache();
    expect(c.learn(['example.com'], [], 0).size).toBe(0);
    expect(c.size).toEqual({ names: 0, ips: 0 });
  });
});

describe('FqdnCache names', () => {
  it('keeps names that differ only in label boundaries apart (presentation format, as message.ts reads them)', () => {
    const c = cache();
    c.learn(['dot\\.example.test'], [{ ip: '203.0.113.66', ttl: 60 }], 0);
    c.learn(['dot.example.test'], [{ ip: '192.0.2.1', ttl: 60 }], 0);
    expect(names(c)).toEqual(['dot\\.example.test', 'dot.example.test']);
    expect(ips(c, 'dot\\.example.test')).toEqual(['203.0.113.66']);
    expect(ips(c, 'dot.example.test')).toEqual(['192.0.2.1']);
    expect(c.namesOf('203.0.113.66').map((n) => n.name)).toEqual(['dot\\.example.test']);
  });
});

describe('FqdnCache refreshes', () => {
  it('has a refresh slack of half the grace, at least 1 s and at most 5 s', () => {
    expect([0, 1_000, 2_000, 4_000, 10_000, 60_000].map(refreshSlackMs)).toEqual([1_000, 1_000, 1_000, 2_000, 5_000, 5_000]);
    const c = cache({ graceMs: 10_000 });
    expect(c.refreshSlackMs).toBe(5_000);
    c.learn(['example.com'], [{ ip: '192.0.2.1', ttl: 60 }], 0);
    // With the default grace, an answer 4.999 s later changes nothing: the allow still outlasts max(TTL, min TTL) by 5 s.
    expect(c.learn(['example.com'], [{ ip: '192.0.2.1', ttl: 60 }], 4_999)).toEqual(new Set());
    expect(expiry(c, 'example.com', '192.0.2.1')).toBe(70_000);
    expect(c.learn(['example.com'], [{ ip: '192.0.2.1', ttl: 60 }], 5_000)).toEqual(new Set(['192.0.2.1']));
    expect(expiry(c, 'example.com', '192.0.2.1')).toBe(75_000);
  });

  it('leaves an entry as it is for an answer that moves its expiry by less than REFRESH_SLACK_MS', () => {
    const c = cache();
    c.learn(['example.com'], [{ ip: '192.0.2.1', ttl: 60 }], 0);
    expect(c.learn(['example.com'], [{ ip: '192.0.2.1', ttl: 60 }], REFRESH_SLACK_MS - 1)).toEqual(new Set());
    expect(expiry(c, 'example.com', '192.0.2.1')).toBe(60_000 + GRACE_MS);
    expect(c.learn(['example.com'], [{ ip: '192.0.2.1', ttl: 60 }], REFRESH_SLACK_MS)).toEqual(new Set(['192.0.2.1']));
    expect(expiry(c, 'example.com', '192.0.2.1')).toBe(REFRESH_SLACK_MS + 60_000 + GRACE_MS);
  });

  it('leaves the order as it is for such an answer (ORDER), and still records a new name of the chain', () => {
    const c = cache({ maxIpsPerName: 2 });
    c.learn(['example.com'], [{ ip: '192.0.2.1', ttl: 60 }], 0);
    c.learn(['example.com'], [{ ip: '192.0.2.2', ttl: 60 }], 1);
    expect(c.learn(['example.com'], [{ ip: '192.0.2.1', ttl: 60 }], 2)).toEqual(new Set()); // within the slack: stays first
    expect(ips(c, 'example.com')).toEqual(['192.0.2.1', '192.0.2.2']);
    c.learn(['example.com'], [{ ip: '192.0.2.3', ttl: 60 }], 3);
    expect(ips(c, 'example.com')).toEqual(['192.0.2.2', '192.0.2.3']);
    expect(c.learn(['www.example.com', 'example.com'], [{ ip: '192.0.2.2', ttl: 60 }], 4)).toEqual(new Set(['192.0.2.2']));
    expect(names(c)).toContain('www.example.com');
    expect(ips(c, 'example.com')).toEqual(['192.0.2.2', '192.0.2.3']); // unchanged for the known name
  });

  it('does not move a name an answer changed nothing for, and moves one it changed', () => {
    const c = cache();
    c.learn(['a.example'], [{ ip: '192.0.2.1', ttl: 60 }], 0);
    c.learn(['b.example'], [{ ip: '192.0.2.2', ttl: 60 }], 1);
    c.learn(['a.example'], [{ ip: '192.0.2.1', ttl: 60 }], REFRESH_SLACK_MS - 1);
    expect(names(c)).toEqual(['a.example', 'b.example']);
    c.learn(['a.example'], [{ ip: '192.0.2.1', ttl: 60 }], REFRESH_SLACK_MS);
    expect(names(c)).toEqual(['b.example', 'a.example']);
  });
});

describe('FqdnCache per-name address cap', () => {
  it('evicts the least recently answered address and reports it', () => {
    const c = cache({ maxIpsPerName: 2 });
    c.learn(['example.com'], [{ ip: '192.0.2.1', ttl: 60 }], 0);
    c.learn(['example.com'], [{ ip: '192.0.2.2', ttl: 60 }], 1);
    const touched = c.learn(['example.com'], [{ ip: '192.0.2.3', ttl: 60 }], 2);
    expect(touched).toEqual(new Set(['192.0.2.3', '192.0.2.1']));
    expect(ips(c, 'example.com')).toEqual(['192.0.2.2', '192.0.2.3']);
    expect(c.namesOf('192.0.2.1')).toEqual([]);
    expect(c.size.ips).toBe(2);
  });

  it('evicts expired addresses before live ones, however recently answered', () => {
    const c = cache({ maxIpsPerName: 2, minTtlMs: 0, graceMs: 0 });
    c.learn(['example.com'], [{ ip: '192.0.2.1', ttl: 3600 }], 0);
    c.learn(['example.com'], [{ ip: '192.0.2.2', ttl: 1 }], 1);
    c.learn(['example.com'], [{ ip: '192.0.2.3', ttl: 60 }], 5_000);
    expect(ips(c, 'example.com')).toEqual(['192.0.2.1', '192.0.2.3']);
  });

  it('counts a refresh as an answer (the refreshed address survives)', () => {
    const c = cache({ maxIpsPerName: 2 });
    c.learn(['example.com'], [{ ip: '192.0.2.1', ttl: 60 }], 0);
    c.learn(['example.com'], [{ ip: '192.0.2.2', ttl: 60 }], 1);
    c.learn(['example.com'], [{ ip: '192.0.2.1', ttl: 60 }], REFRESH_SLACK_MS);
    c.learn(['example.com'], [{ ip: '192.0.2.3', ttl: 60 }], REFRESH_SLACK_MS + 1);
    expect(ips(c, 'example.com')).toEqual(['192.0.2.1', '192.0.2.3']);
  });

  it('keeps the last addresses of an answer that alone exceeds the cap', () => {
    const c = cache({ maxIpsPerName: 2 });
    const touched = c.learn(['example.com'], ['192.0.2.1', '192.0.2.2', '192.0.2.3'].map((ip) => ({ ip, ttl: 60 })), 0);
    expect(ips(c, 'example.com')).toEqual(['192.0.2.2', '192.0.2.3']);
    expect(touched).toEqual(new Set(['192.0.2.1', '192.0.2.2', '192.0.2.3']));
    expect(c.size.ips).toBe(2);
  });

  it('evicts per name: the address stays known under another name', () => {
    const c = cache({ maxIpsPerName: 1 });
    c.learn(['a.example', 'b.example'], [{ ip: '192.0.2.1', ttl: 60 }], 0);
    c.learn(['b.example'], [{ ip: '192.0.2.2', ttl: 60 }], 1);
    expect(c.namesOf('192.0.2.1').map((n) => n.name)).toEqual(['a.example']);
    expect(c.namesOf('192.0.2.2').map((n) => n.name)).toEqual(['b.example']);
  });
});

describe('FqdnCache name cap', () => {
  it('evicts the least recently answered name with its addresses', () => {
    const c = cache({ maxNames: 2 });
    c.learn(['a.example'], [{ ip: '192.0.2.1', ttl: 60 }], 0);
    c.learn(['b.example'], [{ ip: '192.0.2.2', ttl: 60 }, { ip: '192.0.2.9', ttl: 60 }], 1);
    c.learn(['a.example'], [{ ip: '192.0.2.1', ttl: 60 }], REFRESH_SLACK_MS); // a is now the most recent
    const touched = c.learn(['c.example'], [{ ip: '192.0.2.3', ttl: 60 }, { ip: '192.0.2.9', ttl: 60 }], REFRESH_SLACK_MS + 1);
    expect(names(c)).toEqual(['a.example', 'c.example']);
    expect(touched).toEqual(new Set(['192.0.2.3', '192.0.2.9', '192.0.2.2']));
    expect(c.namesOf('192.0.2.2')).toEqual([]);
    expect(c.namesOf('192.0.2.9').map((n) => n.name)).toEqual(['c.example']);
    expect(new Set(c.ips())).toEqual(new Set(['192.0.2.1', '192.0.2.3', '192.0.2.9']));
  });

  it('lists entries least recently answered first', () => {
    const c = cache();
    c.learn(['a.example'], [{ ip: '192.0.2.1', ttl: 60 }], 0);
    c.learn(['b.example'], [{ ip: '192.0.2.2', ttl: 60 }], 1);
    c.learn(['a.example'], [{ ip: '192.0.2.3', ttl: 60 }], 2);
    expect(c.entries()).toEqual([
      { name: 'b.example', ips: [{ ip: '192.0.2.2', expiresMs: 1 + 60_000 + GRACE_MS }] },
      {
        name: 'a.example',
        ips: [
          { ip: '192.0.2.1', expiresMs: 0 + 60_000 + GRACE_MS },
          { ip: '192.0.2.3', expiresMs: 2 + 60_000 + GRACE_MS },
        ],
      },
    ]);
  });
});

describe('FqdnCache sweep', () => {
  it('sweeps in steps of `step` names, following the live cache between them', () => {
    const c = cache();
    for (let i = 0; i < 10; i++) c.learnAbsolute([`n${i}.example`], [{ ip: `192.0.2.${i}`, expiresMs: i % 2 ? 1_000 : 9_000 }]);
    const steps = c.sweepSteps(5_000, 1_000, 3);
    let yields = 0;
    expect(steps.next().done).toBe(false); // 3 names walked
    yields++;
    // Between steps: a name learned now comes at the end of the walk, one removed never comes.
    c.learnAbsolute(['late.example'], [{ ip: '192.0.2.100', expiresMs: 1_000 }]);
    c.learnAbsolute(['n9.example'], [{ ip: '192.0.2.9', expiresMs: 500 }], 0); // shorter: changed, to the end
    let r = steps.next();
    while (!r.done) {
      yields++;
      r = steps.next();
    }
    expect(yields).toBe(3); // 11 names: after 3, 6, 9
    expect(r.value).toEqual(new Set(['192.0.2.1', '192.0.2.3', '192.0.2.5', '192.0.2.7', '192.0.2.9', '192.0.2.100']));
    expect(names(c)).toEqual(['n0.example', 'n2.example', 'n4.example', 'n6.example', 'n8.example']);
    expect(c.size).toEqual({ names: 5, ips: 5 });
  });


  it('walks nothing while nothing can have expired by the limit (SKIP), and walks again once something may have', () => {
    const c = cache();
    /** One sweep with a yield per name walked: how many names it walked, and what it forgot. */
    const sweep = (nowMs: number, keepMs = 1_000): { walked: number; forgot: Set<string> } => {
      const steps = c.sweepSteps(nowMs, keepMs, 1);
      let walked = 0;
      for (let r = steps.next(); ; r = steps.next(), walked++) if (r.done) return { walked, forgot: r.value };
    };
    expect(sweep(1e9).walked).toBe(0); // empty
    c.learnAbsolute(['a.example'], [{ ip: '192.0.2.1', expiresMs: 20_000 }]);
    c.learnAbsolute(['b.example'], [{ ip: '192.0.2.2', expiresMs: 30_000 }]);
    expect(sweep(20_000)).toEqual({ walked: 0, forgot: new Set() }); // limit 19,000: before the earliest
    expect(sweep(21_001)).toEqual({ walked: 2, forgot: new Set(['192.0.2.1']) });
    // The walk kept 30,000 as the earliest: nothing to walk before it.
    expect(sweep(30_999).walked).toBe(0);
    // A shorter expiry written since lowers it at once.
    c.learnAbsolute(['c.example'], [{ ip: '192.0.2.3', expiresMs: 5_000 }]);
    expect(sweep(6_001)).toEqual({ walked: 2, forgot: new Set(['192.0.2.3']) });
    expect(sweep(31_001)).toEqual({ walked: 1, forgot: new Set(['192.0.2.2']) });
    expect(c.size).toEqual({ names: 0, ips: 0 });
    // A walk cut short leaves the bound as it was: the next one still walks.
    c.learnAbsolute(['d.example', 'e.example'], [{ ip: '192.0.2.4', expiresMs: 1_000 }]);
    const cut = c.sweepSteps(10_000, 1_000, 1);
    cut.next();
    expect(sweep(10_000).forgot).toEqual(new Set(['192.0.2.4']));
  });

  it('forgets addresses expired more than keepMs ago, and names left empty', () => {
    const c = cache();
    c.learnAbsolute(['a.example'], [{ ip: '192.0.2.1', expiresMs: 1_000 }, { ip: '192.0.2.2', expiresMs: 5_000 }]);
    c.learnAbsolute(['b.example'], [{ ip: '192.0.2.1', expiresMs: 9_000 }]);
    c.learnAbsolute(['c.example'], [{ ip: '192.0.2.3', expiresMs: 1_000 }]);

    expect(c.sweep(1_500, 1_000).size).toBe(0); // expired, but within keepMs
    const touched = c.sweep(2_000, 1_000); // 1_000 + 1_000 <= 2_000
    expect(touched).toEqual(new Set(['192.0.2.1', '192.0.2.3']));
    expect(names(c)).toEqual(['a.example', 'b.example']);
    expect(ips(c, 'a.example')).toEqual(['192.0.2.2']);
    expect(c.namesOf('192.0.2.1')).toEqual([{ name: 'b.example', expiresMs: 9_000 }]);
    expect(c.namesOf('192.0.2.3')).toEqual([]);
    expect(c.size).toEqual({ names: 2, ips: 2 });

    c.sweep(100_000, 0);
    expect(c.size).toEqual({ names: 0, ips: 0 });
    expect(c.entries()).toEqual([]);
  });
});
