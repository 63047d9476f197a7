// The policy engine against the in-memory addon: a sync runs in slices and
// lets the event loop (the DNS proxy's thread) turn in between, an endpoint
// removed while a sync runs is not written back, and syncs never overlap.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fakeDatapath, sluiceMapSpecs, type FakeBpfAddon } from '../../test/fakes/bpf-addon.js';
import type { EndpointRecord } from '../cni/index.js';
import * as endpointCodec from '../datapath/codec/endpoint.js';
import * as policyCodec from '../datapath/codec/policy.js';
import { MAP_ENDPOINTS, MAP_POLICY, type Datapath } from '../datapath/index.js';
import { ObjectStore } from '../store/index.js';
import { PolicyEngine, runSliced, type PolicyEngineOptions, type SyncStats } from './policy-engine.js';

const PODS = 120;

function record(i: number): EndpointRecord {
  return {
    containerId: `c${i}`,
    ifname: 'eth0',
    netns: '/var/run/netns/x',
    hostIfname: `slc${i}`,
    hostIfindex: 100 + i,
    hostMac: '02:00:00:00:00:01',
    podMac: '02:00:00:00:00:02',
    mtu: 1500,
    ips: [`10.0.${i >> 8}.${i & 255}/32`],
    pod: { namespace: 'x', name: `p${i}` },
    result: { cniVersion: '1.0.0' },
    createdAt: '2026-01-01T00:00:00Z',
  } as unknown as EndpointRecord;
}

/** Every pod its own identity (label app=pI), isolated by a policy with 20 ipBlock rules per pod. */
function world(store: ObjectStore): void {
  store.batch(() => {
    store.upsert('t', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'x' } });
    for (let i = 0; i < PODS; i++) store.upsert('t', { apiVersion: 'v1', kind: 'Pod', metadata: { namespace: 'x', name: `p${i}`, labels: { app: `p${i}` } } });
    store.upsert('t', {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { namespace: 'x', name: 'all' },
      spec: {
        podSelector: {},
        ingress: Array.from({ length: 20 }, (_, r) => ({ from: [{ ipBlock: { cidr: `192.168.${r}.0/24` } }], ports: [{ port: 80 + r }] })),
      },
    });
  });
}

let dir: string;
let store: ObjectStore;
let records: EndpointRecord[];
let addon: FakeBpfAddon;
let dp: Datapath;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'slt-engine-'));
  store = new ObjectStore();
  world(store);
  records = Array.from({ length: PODS }, (_, i) => record(i));
  ({ addon, dp } = fakeDatapath(sluiceMapSpecs(200_000)));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function engine(opts: PolicyEngineOptions = {}): PolicyEngine {
  return new PolicyEngine(store, () => records, dp, dir, pino({ level: 'silent' }), { nodeIps: () => ['10.200.0.1'], ...opts });
}

/** Counts turns of the event loop (setImmediate callbacks) until `done` settles. */
async function turnsDuring<T>(work: Promise<T>): Promise<{ value: T; turns: number }> {
  let turns = 0;
  let settled = false;
  const tick = () => {
    if (settled) return;
    turns++;
    setImmediate(tick);
  };
  setImmediate(tick);
  const value = await work;
  settled = true;
  return { value, turns };
}

describe('PolicyEngine', () => {
  it('a sync lets the event loop turn between slices, and programs the same as one that never yields', async () => {
    const sliced = engine({ sliceMs: 0 });
    const { value, turns } = await turnsDuring(sliced.sync());
    expect(value.failed).toEqual([]);
    // One compiled identity per pod, one written endpoint per pod: a turn after each.
    expect(turns).toBeGreaterThan(PODS);
    const slicedEntries = [...addon.map(MAP_POLICY).entries.keys()].length;
    // Every pod has the same entries (the 20 ipBlock rules): one shared generation.
    expect(slicedEntries).toBeGreaterThanOrEqual(20);
    expect(addon.map(MAP_ENDPOINTS).entries.size).toBe(PODS);

    // The control: a slice longer than the whole sync never lets the loop turn.
    rmSync(dir, { recursive: true, force: true });
    dir = mkdtempSync(join(tmpdir(), 'slt-engine-'));
    ({ addon, dp } = fakeDatapath(sluiceMapSpecs(200_000)));
    const whole = engine({ sliceMs: 1e9 });
    const again = await turnsDuring(whole.sync());
    expect(again.value.failed).toEqual([]);
    expect(again.turns).toBeLessThanOrEqual(1);
    expect([...addon.map(MAP_POLICY).entries.keys()].length).toBe(slicedEntries);
  });

  it('an endpoint removed (its entry deleted by its DEL) while a sync runs is not written back', async () => {
    const e = engine({ sliceMs: 0 });
    const gone = records[PODS - 1]!;
    const running = e.sync();
    // Let the sync start, then remove the last endpoint the way a DEL does.
    await new Promise<void>((resolve) => setImmediate(resolve));
    records = records.slice(0, -1);
    dp.deleteEndpoint(gone.hostIfindex);
    const report = await running;
    expect(report.failed).toEqual([]);
    expect(dp.getEndpoint(gone.hostIfindex)).toBeUndefined();
    expect(dp.getEndpoint(records[0]!.hostIfindex)).toMatchObject({ policyId: expect.any(Number) });
    expect(addon.map(MAP_ENDPOINTS).entries.size).toBe(PODS - 1);
    // Nothing of it stays behind: its generation's entries are not in the map.
    const used = new Set([...dp.listEndpoints().values()].map((ep) => ep.policyId));
    for (const key of addon.map(MAP_POLICY).entries.keys()) expect(used.has(policyCodec.decodeKey(Buffer.from(key, 'hex')).policyId)).toBe(true);
  });

  it('syncs called together run one after the other, never interleaved', async () => {
    const seen: string[] = [];
    const e = engine({
      sliceMs: 0,
      // Read as a sync starts; onCompiled runs as it ends.
      nodeIps: () => (seen.push('start'), []),
      onCompiled: () => void seen.push('end'),
    });
    const reports = await Promise.all([e.sync(), e.sync(), e.sync()]);
    expect(reports.every((r) => r.failed.length === 0)).toBe(true);
    // Each sync yields dozens of times; overlapping ones would start before the first ended.
    expect(seen).toEqual(['start', 'end', 'start', 'end', 'start', 'end']);
    expect(addon.map(MAP_ENDPOINTS).entries.size).toBe(PODS);
    for (const v of addon.map(MAP_ENDPOINTS).entries.values()) expect(endpointCodec.decode(v).flags & endpointCodec.FLAG_POLICY_FAILED).toBe(0);
  });

  it('reports each sync to onSynced: its time, the generation (syncs that rewrote something), and whether it failed', async () => {
    const syncs: SyncStats[] = [];
    const e = engine({ onSynced: (st) => void syncs.push(st) });
    await e.sync();
    await e.sync(); // nothing changed: nothing rewritten
    // An edit that cannot be written: the policy map holds one entry.
    addon.setMaxEntries(MAP_POLICY, 1);
    store.upsert('t', { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: 'x', name: 'more' }, spec: { podSelector: {}, ingress: [{ ports: [{ port: 9999 }] }] } });
    await e.sync();
    e.stop();
    expect(syncs.map(({ generation, ok }) => ({ generation, ok }))).toEqual([
      { generation: 1, ok: true },
      { generation: 1, ok: true },
      { generation: syncs[2]!.rewritten > 0 ? 2 : 1, ok: false },
    ]);
    expect(syncs[0]!.rewritten).toBe(PODS);
    expect(syncs[1]!.rewritten).toBe(0);
    for (const st of syncs) expect(st.seconds).toBeGreaterThan(0);
    expect(e.generation).toBe(syncs[2]!.generation);
  });
});

describe('runSliced', () => {
  it('runs a generator to its value, turning the loop only once a slice is used up', async () => {
    function* steps(n: number): Generator<void, number, void> {
      let sum = 0;
      for (let i = 0; i < n; i++) {
        sum += i;
        yield;
      }
      return sum;
    }
    expect(await runSliced(steps(1000), 1e9)).toBe(499500);
    const { value, turns } = await turnsDuring(runSliced(steps(50), 0));
    expect(value).toBe(1225);
    // A turn after each of the 50 yields but the one the counter started in.
    expect(turns).toBeGreaterThanOrEqual(49);
  });
});
