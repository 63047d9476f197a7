// The datapath's typed maps on the real object, side by side with the
// in-memory fake addon the unit tests use (test/fakes/bpf-addon.ts): the same
// calls must leave the same observable state, and fail the same way, or the
// unit tests prove nothing about the kernel.
import { mkdirSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as policyCodec from '../../src/datapath/codec/policy.js';
import { Datapath, MAP_FQDN, metricsCodec } from '../../src/datapath/index.js';
import { FakeBpfAddon } from '../fakes/bpf-addon.js';
import { Cleanup, uniqueName } from '../helpers/netns.js';

const cleanup = new Cleanup();
const bpffs = `/sys/fs/bpf/${uniqueName('tm')}`;
const MAX_FQDN = 3;
let real: Datapath;
let fake: Datapath;

beforeAll(() => {
  mkdirSync(bpffs, { recursive: true });
  cleanup.add(() => rmSync(bpffs, { recursive: true, force: true }));
  real = Datapath.open({ bpffs, maxFqdnEntries: MAX_FQDN });
  cleanup.add(() => real.close());
  const addon = new FakeBpfAddon();
  fake = Datapath.fromLoaded(addon, addon.objLoad('fake.o', { maxEntries: { [MAP_FQDN]: MAX_FQDN } }));
  cleanup.add(() => fake.close());
});

afterAll(() => cleanup.run());

/** Runs `f` on the kernel's datapath and on the fake one; returns both results (or the error codes). */
function both<T>(f: (dp: Datapath) => T): { kernel: T | { error: string }; fake: T | { error: string } } {
  const run = (dp: Datapath): T | { error: string } => {
    try {
      return f(dp);
    } catch (err) {
      return { error: String((err as { code?: string }).code ?? err) };
    }
  };
  return { kernel: run(real), fake: run(fake) };
}

function expectSame<T>(f: (dp: Datapath) => T, expected: T | { error: string }): void {
  const r = both(f);
  expect(r.kernel).toEqual(expected);
  expect(r.fake).toEqual(expected);
}

const sortBy = <T>(xs: T[], key: (x: T) => string): T[] => xs.sort((a, b) => key(a).localeCompare(key(b)));

describe('typed maps: kernel and fake agree', () => {
  it('FQDN allows: put, get, delete, entries', () => {
    expectSame((dp) => {
      dp.fqdnAllows.put(100, '192.0.2.10', 5n);
      dp.fqdnAllows.put(100, '2001:db8::10', 6n);
      dp.fqdnAllows.put(100, '192.0.2.10', 7n); // replaces
      return { deleted: dp.fqdnAllows.delete(100, '2001:db8::10'), again: dp.fqdnAllows.delete(100, '2001:db8::10'), get: dp.fqdnAllows.get(100, '192.0.2.10'), entries: [...dp.fqdnAllows.entries()] };
    }, { deleted: true, again: false, get: 7n, entries: [{ rule: 100, ip: '192.0.2.10', expiresNs: 7n }] });
  });

  it('a full FQDN map is SLUICE_MAP_FULL, and nothing was written', () => {
    expectSame((dp) => {
      dp.fqdnAllows.put(101, '192.0.2.11', 1n);
      dp.fqdnAllows.put(101, '192.0.2.12', 1n);
      return dp.fqdnAllows.put(101, '192.0.2.13', 1n);
    }, { error: 'SLUICE_MAP_FULL' });
    expectSame((dp) => dp.fqdnAllows.get(101, '192.0.2.13'), undefined);
  });

  it('policy: a generation written in one batch, then retired with a key already gone', () => {
    const gen = (policyId: number): Buffer[] => [
      ...policyCodec.encodeKeys({ policyId, peer: 300, direction: metricsCodec.DIR_FROM_POD, protocol: 6, portMin: 80, portMax: 83 }),
      ...policyCodec.encodeKeys({ policyId, peer: 0, direction: metricsCodec.DIR_TO_POD, protocol: 0, portMin: 0, portMax: 65535 }),
    ];
    expectSame((dp) => {
      dp.policy.write(gen(1), 4);
      dp.policy.write(gen(2));
      dp.policy.delete([gen(1)[0]!]);
      const left = dp.policy.delete(gen(1));
      return { left, rule: dp.policy.get(gen(2)[0]!), keys: sortBy([...dp.policy.keys()].map((k) => k.key), (k) => JSON.stringify(k)) };
    }, {
      left: [],
      rule: 0,
      keys: sortBy(
        gen(2).map((k) => policyCodec.decodeKey(k)),
        (k) => JSON.stringify(k),
      ),
    });
  });

  it('endpoints, ipcache, ipBlock prefixes and FQDN rule lists round-trip', () => {
    expectSame((dp) => {
      dp.upsertEndpoint(7, { identity: 300, flags: 1, policyId: 2, ips: ['10.1.0.5'] });
      dp.ipcache.set('10.1.0.5', 300);
      dp.cidrs.set('192.0.2.0/24', 70_000);
      dp.fqdnRules.set(2, [100, 101]);
      return { ep: dp.getEndpoint(7), ipcache: dp.dumpIpcache(), cidrs: dp.dumpCidrs(), rules: dp.fqdnRules.get(2), none: dp.fqdnRules.get(3) };
    }, {
      ep: { identity: 300, flags: 1, policyId: 2, ips: ['10.1.0.5'] },
      ipcache: new Map([['10.1.0.5', 300]]),
      cidrs: new Map([['192.0.2.0/24', 70_000]]),
      rules: [100, 101],
      none: undefined,
    });
  });

  it('the DNS translation table misses a flow never redirected', () => {
    expectSame((dp) => dp.dnsNat.lookup(17, '10.1.0.5', 40000), undefined);
  });
});
