// KubernetesSource.ensurePod (a CNI ADD's pod fetched ahead of the watch)
// and the cluster DNS resolvers, against a fake API.
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { ObjectStore } from '../store/index.js';
import { KubeApiError, type KubeApi } from './api.js';
import { ClusterDnsResolvers, KubernetesSource } from './source.js';

const log = pino({ level: 'silent' });

class GetApi implements KubeApi {
  readonly server = 'https://fake';
  objects = new Map<string, unknown>();
  down = false;
  gets: string[] = [];
  async get<T>(path: string): Promise<T> {
    this.gets.push(path);
    if (this.down) throw new KubeApiError(`GET ${path}: connect ECONNREFUSED`, 0);
    const base = path.split('?')[0]!;
    if (this.objects.has(base)) return this.objects.get(base) as T;
    // Lists of what the source watches: empty.
    if (!/\/namespaces\/[^/]+\/pods\//.test(base) && !base.includes('/services/')) return { items: [], metadata: { resourceVersion: '1' } } as T;
    throw new KubeApiError(`GET ${path}: 404 not found`, 404);
  }
  async watch(): Promise<() => void> {
    return () => {};
  }
  async mergePatch<T>(): Promise<T> {
    return {} as T;
  }
}

const pod = (uid: string) => ({ metadata: { name: 'p', namespace: 'ns', uid, labels: { app: 'web' }, resourceVersion: '5' }, spec: { nodeName: 'n1' }, status: { phase: 'Running', podIPs: [{ ip: '10.244.1.5' }] } });

describe('KubernetesSource.ensurePod', () => {
  async function started(api: GetApi) {
    const store = new ObjectStore();
    const src = new KubernetesSource(api, log, { minBackoffMs: 10, maxBackoffMs: 20 });
    await src.start(store);
    await src.waitSynced();
    return { store, src };
  }

  it('fetches a pod the watch has not delivered, with its labels, before the ADD goes on', async () => {
    const api = new GetApi();
    api.objects.set('/api/v1/namespaces/ns/pods/p', pod('u1'));
    const { store, src } = await started(api);
    expect(store.get('Pod', 'ns/p')).toBeUndefined();
    await src.ensurePod(store, 'ns', 'p', 'u1');
    expect(store.get('Pod', 'ns/p')?.metadata.labels).toEqual({ app: 'web' });
    // Known now: no second request.
    const n = api.gets.length;
    await src.ensurePod(store, 'ns', 'p', 'u1');
    expect(api.gets.length).toBe(n);
    src.stop();
  });

  it('an API that cannot answer, a pod that does not exist or is another incarnation: an error within the deadline, nothing stored', async () => {
    const api = new GetApi();
    const { store, src } = await started(api);
    await expect(src.ensurePod(store, 'ns', 'p', 'u1', 500)).rejects.toThrow(/not known to the agent.*404/);
    api.objects.set('/api/v1/namespaces/ns/pods/p', pod('u-old'));
    await expect(src.ensurePod(store, 'ns', 'p', 'u1', 500)).rejects.toThrow(/uid u-old, not u1/);
    api.down = true;
    const t = Date.now();
    await expect(src.ensurePod(store, 'ns', 'p', 'u1', 500)).rejects.toThrow(/ECONNREFUSED/);
    expect(Date.now() - t).toBeLessThan(3000);
    expect(store.get('Pod', 'ns/p')).toBeUndefined();
    src.stop();
  });
});

describe('ClusterDnsResolvers', () => {
  it('the Service\'s ClusterIPs and its endpoints\' addresses; none while the Service does not exist', async () => {
    const api = new GetApi();
    const r = new ClusterDnsResolvers(api);
    expect(await r.trustedResolvers()).toEqual([]);
    api.objects.set('/api/v1/namespaces/kube-system/services/kube-dns', { spec: { clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10'] } });
    api.objects.set('/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices', { items: [{ endpoints: [{ addresses: ['10.244.1.7'] }, { addresses: ['10.244.2.9'] }] }] });
    expect(await r.trustedResolvers()).toEqual(['10.244.1.7', '10.244.2.9', '10.96.0.10']);
    api.down = true;
    await expect(r.trustedResolvers()).rejects.toThrow(/ECONNREFUSED/);
  });
});
