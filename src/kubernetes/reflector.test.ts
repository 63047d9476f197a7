// The reflector against a fake API that behaves like kube-apiserver where
// the reflector can tell: paged lists with a resourceVersion, watches from a
// version that stream events and end, "410 Gone" for a version too old, 404
// for a collection not served, and an API that is down for a while.
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { ObjectStore, type KubeObject } from '../store/index.js';
import { KubeApiError, type KubeApi, type WatchEvent } from './api.js';
import { trimNamespace, trimPod } from './objects.js';
import { Reflector, type RawObject } from './reflector.js';

const log = pino({ level: 'silent' });

interface Stream {
  params: Record<string, string>;
  onEvent: (e: WatchEvent<RawObject>) => void;
  onDone: (err: unknown) => void;
  open: boolean;
}

class FakeApi implements KubeApi {
  readonly server = 'https://fake';
  rv = 100;
  objects = new Map<string, RawObject>();
  streams: Stream[] = [];
  lists: string[] = [];
  down = false;
  missing = false;
  /** A watch from a version below this is answered 410 (compacted). */
  compactedBelow = 0;

  put(name: string, labels: Record<string, string> = {}, extra: Record<string, unknown> = {}): RawObject {
    const obj: RawObject = { metadata: { name, namespace: 'ns', labels, resourceVersion: String(++this.rv) }, ...extra };
    const had = this.objects.has(name);
    this.objects.set(name, obj);
    this.emit({ type: had ? 'MODIFIED' : 'ADDED', object: obj });
    return obj;
  }

  remove(name: string): void {
    const obj = this.objects.get(name)!;
    this.objects.delete(name);
    this.emit({ type: 'DELETED', object: { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.rv) } } });
  }

  emit(e: WatchEvent<RawObject>): void {
    for (const s of this.streams) if (s.open) s.onEvent(e);
  }

  closeAll(err: unknown = null): void {
    for (const s of this.streams.filter((x) => x.open)) {
      s.open = false;
      s.onDone(err);
    }
  }

  async get<T>(path: string): Promise<T> {
    if (this.down) throw new KubeApiError(`GET ${path}: connect ECONNREFUSED`, 0);
    // As the client's bundle throws it: its own copy of the class, not this one (load-client.ts).
    if (this.missing) throw Object.assign(new Error(`GET ${path}: 404 the server could not find the requested resource`), { name: 'KubeApiError', code: 'SLUICE_KUBE_API', status: 404 });
    this.lists.push(path);
    const q = new URL(`http://x${path}`).searchParams;
    const limit = Number(q.get('limit') ?? 1e9);
    const from = Number(q.get('continue') ?? 0);
    const all = [...this.objects.values()];
    const items = all.slice(from, from + limit);
    const next = from + limit < all.length ? String(from + limit) : undefined;
    return { items, metadata: { resourceVersion: String(this.rv), ...(next ? { continue: next } : {}) } } as T;
  }

  async watch<T>(_path: string, params: Record<string, string>, onEvent: (e: WatchEvent<T>) => void, onDone: (err: unknown) => void): Promise<() => void> {
    if (this.down) {
      onDone(new KubeApiError('watch: connect ECONNREFUSED', 0));
      return () => {};
    }
    const s: Stream = { params, onEvent: onEvent as unknown as Stream['onEvent'], onDone, open: true };
    this.streams.push(s);
    if (Number(params.resourceVersion) < this.compactedBelow) {
      queueMicrotask(() => s.onEvent({ type: 'ERROR', object: { code: 410, message: 'too old resource version' } as unknown as RawObject }));
    }
    return () => {
      s.open = false;
    };
  }

  async mergePatch<T>(): Promise<T> {
    throw new Error('not used');
  }

  open(): Stream | undefined {
    return this.streams.filter((s) => s.open).at(-1);
  }
}

async function until(what: string, fn: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function setup(opts: { pageSize?: number; missingIsEmpty?: boolean } = {}) {
  const api = new FakeApi();
  const store = new ObjectStore();
  const batches: string[][] = [];
  store.onChange((_kinds, change) => batches.push([...(change.upserted.get('Pod') ?? []), ...[...(change.deleted.get('Pod') ?? [])].map((k) => `-${k}`)]));
  const r = new Reflector(api, store, { kind: 'Pod', path: '/api/v1/pods', owner: 'kubernetes/Pod', trim: trimPod, minBackoffMs: 10, maxBackoffMs: 40, ...opts }, log);
  const names = () => store.list('Pod').map((p: KubeObject) => p.metadata.name).sort();
  return { api, store, r, batches, names };
}

describe('Reflector', () => {
  it('lists (paged) into one batch, then applies watch events, each turn in one batch', async () => {
    const { api, r, batches, names, store } = setup({ pageSize: 2 });
    for (const n of ['a', 'b', 'c', 'd', 'e']) api.put(n, { app: n });
    r.start();
    await r.synced;
    expect(names()).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(api.lists.length).toBe(3);
    expect(batches).toEqual([['ns/a', 'ns/b', 'ns/c', 'ns/d', 'ns/e']]);
    await until('a watch', () => !!api.open());
    expect(api.open()!.params.resourceVersion).toBe('105');
    // Three events in one turn: one batch.
    api.put('f', { app: 'f' });
    api.put('a', { app: 'changed' });
    api.remove('b');
    await until('the events applied', () => batches.length === 2);
    expect(batches[1]!.sort()).toEqual(['-ns/b', 'ns/a', 'ns/f']);
    expect(store.get('Pod', 'ns/a')!.metadata.labels).toEqual({ app: 'changed' });
    expect(r.status()).toMatchObject({ synced: true, objects: 5, events: 3 });
    r.stop();
  });

  it('a field nobody reads changes nothing downstream (the trimmed object is equal)', async () => {
    const { api, r, batches } = setup();
    api.put('a', { app: 'a' }, { status: { phase: 'Running', podIPs: [{ ip: '10.1.0.5' }], conditions: [{ type: 'Ready', status: 'False' }] } });
    r.start();
    await r.synced;
    await until('a watch', () => !!api.open());
    api.put('a', { app: 'a' }, { status: { phase: 'Running', podIPs: [{ ip: '10.1.0.5' }], conditions: [{ type: 'Ready', status: 'True' }] } });
    api.put('z', {});
    await until('z', () => batches.length === 2);
    expect(batches[1]).toEqual(['ns/z']);
    r.stop();
  });

  it('a watch that ends is resumed from the last version seen, not relisted', async () => {
    const { api, r } = setup();
    api.put('a');
    r.start();
    await r.synced;
    await until('a watch', () => !!api.open());
    api.put('b');
    await new Promise((res) => setImmediate(res));
    api.closeAll();
    await until('a second watch', () => api.streams.length === 2 && !!api.open());
    expect(api.open()!.params.resourceVersion).toBe('102');
    expect(api.lists.length).toBe(1);
    r.stop();
  });

  it('410 Gone: lists again, and what was deleted meanwhile leaves the sink', async () => {
    const { api, r, names } = setup();
    api.put('a');
    api.put('b');
    r.start();
    await r.synced;
    await until('a watch', () => !!api.open());
    // While nobody watched: b deleted, c added; the history is compacted.
    api.closeAll();
    api.streams = [];
    api.objects.delete('b');
    api.put('c');
    api.compactedBelow = api.rv;
    await until('relisted', () => api.lists.length === 2);
    await until('the sink follows the list', () => names().join() === 'a,c');
    r.stop();
  });

  it('an API that is down: retried with backoff, reported, and what is in force stays', async () => {
    const { api, r, names } = setup();
    api.put('a');
    r.start();
    await r.synced;
    await until('a watch', () => !!api.open());
    api.down = true;
    api.closeAll(new Error('connection reset'));
    await until('the failure reported', () => !!r.status().error);
    expect(r.status().error).toMatch(/ECONNREFUSED|connection reset/);
    expect(names()).toEqual(['a']);
    api.down = false;
    await until('watching again', () => !!api.open() && !r.status().error);
    api.put('b');
    await until('b', () => names().length === 2);
    r.stop();
  });

  it('a collection that is not served (CRD not installed) counts as empty and is asked again', async () => {
    const { api, r, names } = setup({ missingIsEmpty: true });
    api.missing = true;
    r.start();
    await r.synced;
    expect(names()).toEqual([]);
    expect(r.status().error).toMatch(/not served/);
    api.missing = false;
    api.put('a');
    await until('listed once served', () => names().length === 1 && !r.status().error);
    r.stop();
  });

  it('without missingIsEmpty a 404 is retried, never synced', async () => {
    const { api, r } = setup();
    api.missing = true;
    r.start();
    let synced = false;
    void r.synced.then(() => (synced = true));
    await until('the failure reported', () => !!r.status().error);
    await new Promise((res) => setTimeout(res, 50));
    expect(synced).toBe(false);
    r.stop();
  });
});

describe('trimming', () => {
  it('a pod keeps labels, node, named ports and running addresses only', () => {
    const raw = {
      metadata: { name: 'p', namespace: 'ns', uid: 'u1', labels: { app: 'x' }, resourceVersion: '7', managedFields: [{}], annotations: { a: 'b' } },
      spec: { nodeName: 'n1', containers: [{ name: 'c', image: 'i', ports: [{ name: 'http', containerPort: 80 }, { containerPort: 81 }] }] },
      status: { phase: 'Running', podIP: '10.0.0.1', podIPs: [{ ip: '10.0.0.1' }, { ip: 'fd00::1' }], conditions: [] },
    };
    expect(trimPod(raw)).toEqual({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p', namespace: 'ns', labels: { app: 'x' }, uid: 'u1' },
      spec: { nodeName: 'n1', containers: [{ ports: [{ name: 'http', containerPort: 80, protocol: 'TCP' }] }] },
      status: { podIPs: [{ ip: '10.0.0.1' }, { ip: 'fd00::1' }] },
    });
    // A finished pod's addresses may already be another pod's.
    expect(trimPod({ ...raw, status: { ...raw.status, phase: 'Succeeded' } }).status).toBeUndefined();
    expect(trimNamespace({ metadata: { name: 'x', labels: { 'kubernetes.io/metadata.name': 'x' }, resourceVersion: '1' } })).toEqual({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'x', labels: { 'kubernetes.io/metadata.name': 'x' } },
    });
  });
});
