// Files that change together reach the store in one run, so the agent's
// coalescing reconciler programs the whole burst in one sync.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Reconciler } from '../agent/reconciler.js';
import { ObjectStore } from '../store/index.js';
import { StandaloneSource } from './index.js';

const silent = pino({ level: 'silent' });
const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** A policy of `rules` ingress rules, big enough that parsing it spans turns of the event loop. */
const netpol = (name: string, rules: number) =>
  `apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: ${name}\n  namespace: x\nspec:\n  podSelector: {}\n  ingress:\n` +
  Array.from({ length: rules }, (_, i) => `  - from: [{ipBlock: {cidr: 10.${i >> 8}.${i & 255}.0/24}}]\n    ports: [{protocol: TCP, port: ${1000 + i}}]\n`).join('');

describe('StandaloneSource, a burst of files', () => {
  it('delivers files written together in one run: one batch each, one sync for all', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-burst-'));
    const store = new ObjectStore();
    const src = new StandaloneSource(dir, store, silent);
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }), () => src.stop());
    await src.start();
    const synced: number[][] = [];
    const reconciler = new Reconciler({ sync: () => (synced.push(['a', 'b', 'c', 'd'].map((n) => store.get('NetworkPolicy', `x/${n}`) ? 1 : 0)), { failed: [] }) });
    cleanups.push(() => reconciler.stop());
    let batches = 0;
    store.onChange(() => {
      batches++;
      reconciler.markDirty();
    });

    const next = src.nextSync();
    for (const n of ['a', 'b', 'c', 'd']) writeFileSync(join(dir, `${n}.yaml`), netpol(n, 300));
    await next;
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));

    expect(src.status().map((s) => [s.file, s.ok, s.objects])).toEqual([
      ['a.yaml', true, 1],
      ['b.yaml', true, 1],
      ['c.yaml', true, 1],
      ['d.yaml', true, 1],
    ]);
    expect(batches).toBe(4); // consumers still hear one change per file
    expect(synced).toEqual([[1, 1, 1, 1]]); // and one sync sees them all
    expect(reconciler.syncs).toBe(1);
  });
});
