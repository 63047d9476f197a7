// Map fill levels over the in-memory addon: batch-counted hash maps, walked
// tries, the per-CPU map's value size, and a walk that cannot run away.
import { describe, expect, it } from 'vitest';
import { fakeDatapath, sluiceMapSpecs } from '../../test/fakes/bpf-addon.js';
import * as policyCodec from './codec/policy.js';
import { MAP_POLICY } from './datapath.js';
import { mapFillSteps, type MapFill } from './map-fill.js';

function run(steps: Generator<void, MapFill[], void>): { fill: Map<string, MapFill>; yields: number } {
  let yields = 0;
  for (;;) {
    const s = steps.next();
    if (s.done) return { fill: new Map(s.value.map((m) => [m.map, m])), yields };
    yields++;
  }
}

/** `n` distinct trie keys (their bytes are all the fake looks at). */
function policyKeys(n: number): string[] {
  return Array.from({ length: n }, (_, i) => {
    const k = Buffer.alloc(policyCodec.KEY_SIZE);
    k.writeUInt32LE(i, policyCodec.KEY_SIZE - 4);
    return k.toString('hex');
  });
}

describe('mapFillSteps', () => {
  it('counts each map\'s entries against its max_entries, named without sluice_ and the layout version', () => {
    const { addon, dp } = fakeDatapath(sluiceMapSpecs(64));
    dp.ipcache.set('10.0.0.1', 300);
    dp.ipcache.set('10.0.0.2', 301);
    dp.ipcache.set('fd00::1', 300);
    for (const k of policyKeys(5)) addon.map(MAP_POLICY).entries.set(k, Buffer.alloc(policyCodec.SIZE));
    const { fill } = run(mapFillSteps(dp));
    expect(fill.get('ipcache')).toEqual({ map: 'ipcache', entries: 3, capacity: 64 });
    expect(fill.get('policy')).toEqual({ map: 'policy', entries: 5, capacity: 64 });
    expect(fill.get('dns_nat')).toEqual({ map: 'dns_nat', entries: 0, capacity: 64 });
    // Every map the fake declares but the ring buffer and the arrays (it has no conntrack, fragment or next-hop map).
    expect([...fill.keys()].sort()).toEqual(['cidr', 'dns_budget', 'dns_nat', 'endpoints', 'fqdn', 'fqdn_rules', 'ipcache', 'lb_aff', 'lb_be', 'lb_flow', 'lb_netns', 'lb_rev', 'lb_svc', 'policy']);
  });

  it('yields between maps and within a long trie walk', () => {
    const { addon, dp } = fakeDatapath(sluiceMapSpecs(4096));
    for (const k of policyKeys(3000)) addon.map(MAP_POLICY).entries.set(k, Buffer.alloc(policyCodec.SIZE));
    const { fill, yields } = run(mapFillSteps(dp));
    expect(fill.get('policy')!.entries).toBe(3000);
    // One per map, plus two inside the 3,000-key walk (every 1,024 keys).
    expect(yields).toBe(fill.size + 2);
  });

  it('a walk whose key vanished restarts at the first (as the kernel does) and stops at the capacity', () => {
    const { addon, dp } = fakeDatapath(sluiceMapSpecs(2048));
    const keys = policyKeys(1500);
    const trie = addon.map(MAP_POLICY).entries;
    for (const k of keys) trie.set(k, Buffer.alloc(policyCodec.SIZE));
    const steps = mapFillSteps(dp, [MAP_POLICY]);
    steps.next(); // paused after 1,024 keys, at keys[1023]
    trie.delete(keys[1023]!);
    let s = steps.next();
    while (!s.done) s = steps.next();
    expect(s.value).toEqual([{ map: 'policy', entries: 2048, capacity: 2048 }]);
  });

  it('leaves out a map the datapath does not have', () => {
    const specs = sluiceMapSpecs(8);
    delete specs[MAP_POLICY];
    const { dp } = fakeDatapath(specs);
    expect(run(mapFillSteps(dp)).fill.has('policy')).toBe(false);
  });
});
