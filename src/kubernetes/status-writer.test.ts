import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { KubeObject } from '../store/index.js';
import { KubeApiError, type KubeApi } from './api.js';
import { FqdnStatusWriter, statusWriterFor, statusWriters, statusWritersOr } from './status-writer.js';

const log = pino({ level: 'silent' });

class PatchApi implements KubeApi {
  readonly server = 'https://fake';
  patches: Array<{ path: string; body: unknown }> = [];
  failNext = 0;
  gone = new Set<string>();
  async get<T>(): Promise<T> {
    throw new Error('not used');
  }
  async watch(): Promise<() => void> {
    throw new Error('not used');
  }
  async mergePatch<T>(path: string, body: unknown): Promise<T> {
    if (this.failNext > 0) {
      this.failNext--;
      throw new KubeApiError(`PATCH ${path}: 500`, 500);
    }
    if ([...this.gone].some((g) => path.includes(g))) throw new KubeApiError(`PATCH ${path}: 404`, 404);
    this.patches.push({ path, body });
    return {} as T;
  }
}

const pol = (name: string, uid: string, generation = 1): KubeObject => ({ apiVersion: 'sluice.dev/v1alpha1', kind: 'FQDNPolicy', metadata: { namespace: 'ns', name, uid, generation }, spec: {} });
const settle = () => new Promise((r) => setTimeout(r, 20));

describe('statusWriterFor', () => {
  it('every agent picks the same writer, spread over the nodes, and only the departed node\'s policies move', () => {
    const nodes = ['n1', 'n2', 'n3'];
    const uids = Array.from({ length: 300 }, (_, i) => `uid-${i}`);
    const before = uids.map((u) => statusWriterFor(u, nodes));
    expect(uids.map((u) => statusWriterFor(u, [...nodes].reverse()))).toEqual(before);
    for (const n of nodes) expect(before.filter((w) => w === n).length).toBeGreaterThan(60);
    const after = uids.map((u) => statusWriterFor(u, ['n1', 'n3']));
    uids.forEach((_, i) => {
      if (before[i] !== 'n2') expect(after[i]).toBe(before[i]);
    });
    expect(statusWriterFor('x', [])).toBeUndefined();
  });

  it('writers: Ready nodes with a running agent pod; else the agent alone', () => {
    const agent = (node: string, ips: boolean): KubeObject => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { namespace: 'kube-system', name: `sluice-${node}`, labels: { 'app.kubernetes.io/name': 'sluice' } },
      spec: { nodeName: node, hostNetwork: true },
      ...(ips ? { status: { podIPs: [{ ip: '10.0.0.1' }] } } : {}),
    });
    const nodes = [
      { name: 'n1', ready: true },
      { name: 'n2', ready: false },
      { name: 'n3', ready: true },
      { name: 'n4', ready: true },
    ];
    expect(statusWriters(nodes, [agent('n1', true), agent('n2', true), agent('n3', true), agent('n4', false)])).toEqual(['n1', 'n3']);
    expect(statusWritersOr('me', nodes, [])).toEqual(['me']);
  });
});

describe('FqdnStatusWriter', () => {
  it('writes its own policies once per change, retries a failure, forgets a deleted policy', async () => {
    const api = new PatchApi();
    const w = new FqdnStatusWriter(api, 'n1', log);
    const policies = [pol('a', 'ua'), pol('b', 'ub')];
    const conds = [
      { policy: 'ns/a', accepted: true, reason: 'Valid', message: '' },
      { policy: 'ns/b', accepted: false, reason: 'Invalid', message: 'bad pattern' },
    ];
    w.update(conds, policies, ['n1']);
    await settle();
    expect(api.patches.map((p) => p.path)).toEqual(['/apis/sluice.dev/v1alpha1/namespaces/ns/fqdnpolicies/a/status', '/apis/sluice.dev/v1alpha1/namespaces/ns/fqdnpolicies/b/status']);
    expect(api.patches[1]!.body).toMatchObject({ status: { conditions: [{ type: 'Accepted', status: 'False', reason: 'Invalid', message: 'bad pattern', observedGeneration: 1 }] } });
    // The same again (every sync calls update): nothing.
    w.update(conds, policies, ['n1']);
    w.update(conds, policies, ['n1']);
    await settle();
    expect(api.patches).toHaveLength(2);
    // A new generation of a: written once, after a failed attempt.
    api.failNext = 1;
    w.update(conds, [pol('a', 'ua', 2), pol('b', 'ub')], ['n1']);
    await new Promise((r) => setTimeout(r, 700));
    expect(api.patches).toHaveLength(3);
    expect(api.patches[2]!.body).toMatchObject({ status: { conditions: [{ observedGeneration: 2 }] } });
    // Another node's policies are not ours.
    const other = new FqdnStatusWriter(api, 'n9', log);
    other.update(conds, policies, ['n1']);
    await settle();
    expect(api.patches).toHaveLength(3);
    // Deleted meanwhile: 404 is not retried.
    api.gone.add('/fqdnpolicies/b/');
    w.update([{ ...conds[0]! }, { ...conds[1]!, message: 'worse' }], [pol('a', 'ua', 2), pol('b', 'ub')], ['n1']);
    await new Promise((r) => setTimeout(r, 100));
    expect(api.patches).toHaveLength(3);
    w.stop();
  });
});
