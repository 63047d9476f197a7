// The endpoint registry against a fake datapath and a fake reconciler: an
// ADD's record is programmed only once the sync that includes it answered,
// and a failure at each step leaves nothing behind.
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EndpointRecord } from '../cni/index.js';
import type { Datapath } from '../datapath/index.js';
import { EndpointRegistry, type ChangeReport } from './endpoints.js';
import { Reconciler, ReconcilerStoppedError } from './reconciler.js';

class FakeDatapath {
  calls: string[] = [];
  attachFails = false;
  attach(_ns: null, ifname: string): void {
    this.calls.push(`attach ${ifname}`);
    if (this.attachFails) throw new Error('EPERM attach');
  }
  deleteEndpoint(ifindex: number): void {
    this.calls.push(`delete ${ifindex}`);
  }
}

function record(id: string, ifindex: number): EndpointRecord {
  return {
    containerId: id,
    ifname: 'eth0',
    netns: '/var/run/netns/x',
    hostIfname: `slc${id}`,
    hostIfindex: ifindex,
    hostMac: '02:00:00:00:00:01',
    podMac: '02:00:00:00:00:02',
    mtu: 1500,
    ips: [`10.0.0.${ifindex}/32`],
    pod: { namespace: 'x', name: id },
    result: { cniVersion: '1.0.0' },
    createdAt: '2026-01-01T00:00:00Z',
  } as unknown as EndpointRecord;
}

let dir: string;
let dp: FakeDatapath;
let registry: EndpointRegistry;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'slt-endpoints-'));
  dp = new FakeDatapath();
  registry = new EndpointRegistry(dir, dp as unknown as Datapath, pino({ level: 'silent' }));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const files = () => readdirSync(join(dir, 'endpoints'));

describe('EndpointRegistry with the reconciler', () => {
  it('parallel ADDs share one sync, and each attaches only after the sync that includes it', async () => {
    const seen: string[][] = [];
    const reconciler = new Reconciler({
      sync: () => {
        seen.push(registry.list().map((r) => r.containerId));
        dp.calls.push('sync');
        return { failed: [] };
      },
    });
    registry.onChange(() => reconciler.request());
    await Promise.all([registry.register(record('a', 11)), registry.register(record('b', 12))]);
    expect(seen).toEqual([['a', 'b']]);
    expect(dp.calls).toEqual(['sync', 'attach slca', 'attach slcb']);
    expect(files().sort()).toEqual(['a.eth0.json', 'b.eth0.json']);
  });

  it('the sync reports the endpoint failed: ADD fails with its code, record, entry and file are gone, and a sync without it runs', async () => {
    const reports: ChangeReport[] = [{ failed: [{ key: 'a.eth0', error: 'E2BIG map full', code: 'SLUICE_MAP_FULL' }] }, { failed: [] }];
    const seen: string[][] = [];
    registry.onChange(async () => {
      seen.push(registry.list().map((r) => r.containerId));
      return reports.shift();
    });
    await expect(registry.register(record('a', 11))).rejects.toMatchObject({ code: 'SLUICE_MAP_FULL' });
    expect(seen).toEqual([['a'], []]);
    expect(dp.calls).toEqual(['delete 11']);
    expect(registry.list()).toEqual([]);
    expect(files()).toEqual([]);
  });

  it('attaching fails after the sync: rolled back the same way', async () => {
    let syncs = 0;
    registry.onChange(() => void syncs++);
    dp.attachFails = true;
    await expect(registry.register(record('a', 11))).rejects.toThrow('EPERM attach');
    expect(syncs).toBe(2);
    expect(dp.calls).toEqual(['attach slca', 'delete 11']);
    expect(registry.list()).toEqual([]);
    expect(files()).toEqual([]);
  });

  it('the reconciler stops while the ADD waits: the ADD fails and leaves nothing', async () => {
    const reconciler = new Reconciler({ sync: () => ({ failed: [] }) }, () => undefined); // never runs a sync
    registry.onChange(() => reconciler.request());
    const add = registry.register(record('a', 11));
    reconciler.stop();
    await expect(add).rejects.toBeInstanceOf(ReconcilerStoppedError);
    expect(dp.calls).toEqual(['delete 11']);
    expect(registry.list()).toEqual([]);
    expect(existsSync(join(dir, 'endpoints', 'a.eth0.json'))).toBe(false);
  });
});
