import { describe, expect, it } from 'vitest';
import { ObjectStore, StoreConflictError, StoreListenerError, type Kind, type KubeObject, type StoreChange } from './index.js';

const pod = (name: string, app: string, ns = 'x'): KubeObject => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns, labels: { app } } });
const netpol = (name: string): KubeObject => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace: 'x' }, spec: { podSelector: {} } });

/** Every notification, with its keys as sorted arrays (easy to compare). */
function record(store: ObjectStore): Array<{ kinds: Kind[]; upserted: Record<string, string[]>; deleted: Record<string, string[]> }> {
  const heard: Array<{ kinds: Kind[]; upserted: Record<string, string[]>; deleted: Record<string, string[]> }> = [];
  const flat = (m: StoreChange['upserted']) => Object.fromEntries([...m].map(([k, keys]) => [k, [...keys].sort()]));
  store.onChange((kinds, change) => {
    expect(kinds).toBe(change.kinds);
    heard.push({ kinds: [...kinds].sort(), upserted: flat(change.upserted), deleted: flat(change.deleted) });
  });
  return heard;
}

describe('ObjectStore per-object changes', () => {
  it('upserts and deletes one object at a time, each heard with its key', () => {
    const store = new ObjectStore();
    const heard = record(store);
    store.upsert('a', pod('p1', 'web'));
    store.upsert('a', pod('p1', 'db'));
    expect(store.get('Pod', 'x/p1')?.metadata.labels).toEqual({ app: 'db' });
    expect(store.delete('a', 'Pod', 'x/p1')).toBe(true);
    expect(store.get('Pod', 'x/p1')).toBeUndefined();
    expect(store.delete('a', 'Pod', 'x/p1')).toBe(false);
    expect(heard).toEqual([
      { kinds: ['Pod'], upserted: { Pod: ['x/p1'] }, deleted: {} },
      { kinds: ['Pod'], upserted: { Pod: ['x/p1'] }, deleted: {} },
      { kinds: ['Pod'], upserted: {}, deleted: { Pod: ['x/p1'] } },
    ]);
  });

  it('an equal object is no change, and nobody hears of it', () => {
    const store = new ObjectStore();
    store.upsert('a', pod('p1', 'web'));
    const stored = store.get('Pod', 'x/p1');
    const heard = record(store);
    store.upsert('a', pod('p1', 'web'));
    expect(heard).toEqual([]);
    expect(store.get('Pod', 'x/p1')).toBe(stored);
  });

  it('stores objects frozen', () => {
    const store = new ObjectStore();
    store.upsert('a', pod('p1', 'web'));
    expect(Object.isFrozen(store.get('Pod', 'x/p1')!.metadata.labels)).toBe(true);
  });

  it('an owner cannot change or delete what another owner holds', () => {
    const store = new ObjectStore();
    store.upsert('a', pod('p1', 'web'));
    const heard = record(store);
    expect(() => store.upsert('b', pod('p1', 'thief'))).toThrow(StoreConflictError);
    expect(() => store.upsert('b', pod('p1', 'thief'))).toThrow(expect.objectContaining({ code: 'SLUICE_STORE_CONFLICT', holder: 'a' }));
    expect(store.delete('b', 'Pod', 'x/p1')).toBe(false);
    expect(store.get('Pod', 'x/p1')?.metadata.labels).toEqual({ app: 'web' });
    expect(store.ownerOf('Pod', 'x/p1')).toBe('a');
    expect(heard).toEqual([]);
  });

  it('lists by kind and namespace', () => {
    const store = new ObjectStore();
    store.batch(() => {
      store.upsert('a', pod('p1', 'web'));
      store.upsert('a', pod('p2', 'web', 'y'));
      store.upsert('a', netpol('n1'));
    });
    expect(store.list('Pod').map((o) => o.metadata.name).sort()).toEqual(['p1', 'p2']);
    expect(store.list('Pod', 'y').map((o) => o.metadata.name)).toEqual(['p2']);
    expect(store.size('NetworkPolicy')).toBe(1);
    expect(store.owned('a')).toHaveLength(3);
  });
});

describe('ObjectStore batches', () => {
  it('N upserts in a batch are one notification listing them all', () => {
    const store = new ObjectStore();
    const heard = record(store);
    let calls = 0;
    store.onChange(() => void calls++);
    const result = store.batch(() => {
      for (let i = 0; i < 50; i++) store.upsert('a', pod(`p${i}`, 'web'));
      store.upsert('a', netpol('n1'));
      return 'done';
    });
    expect(result).toBe('done');
    expect(calls).toBe(1);
    expect(heard).toHaveLength(1);
    expect(heard[0]!.kinds).toEqual(['NetworkPolicy', 'Pod']);
    expect(heard[0]!.upserted.Pod).toHaveLength(50);
    expect(heard[0]!.upserted.NetworkPolicy).toEqual(['x/n1']);
    expect(heard[0]!.deleted).toEqual({});
  });

  it('batches nest: listeners hear once, when the outermost ends', () => {
    const store = new ObjectStore();
    const heard = record(store);
    store.batch(() => {
      store.upsert('a', pod('p1', 'web'));
      store.batch(() => store.upsert('a', pod('p2', 'web')));
      expect(heard).toEqual([]);
    });
    expect(heard).toEqual([{ kinds: ['Pod'], upserted: { Pod: ['x/p1', 'x/p2'] }, deleted: {} }]);
  });

  it('reports the net change: added then removed is nothing, removed then restored is nothing', () => {
    const store = new ObjectStore();
    store.upsert('a', pod('keep', 'web'));
    const heard = record(store);
    store.batch(() => {
      store.upsert('a', pod('tmp', 'web'));
      store.delete('a', 'Pod', 'x/tmp');
      store.delete('a', 'Pod', 'x/keep');
      store.upsert('a', pod('keep', 'web'));
    });
    expect(heard).toEqual([]);
    store.batch(() => {
      store.upsert('a', pod('keep', 'db'));
      store.delete('a', 'Pod', 'x/keep');
    });
    expect(heard).toEqual([{ kinds: ['Pod'], upserted: {}, deleted: { Pod: ['x/keep'] } }]);
  });

  it('what a failing batch stored stays and is heard; the batch error is the one thrown', () => {
    const store = new ObjectStore();
    const heard = record(store);
    expect(() =>
      store.batch(() => {
        store.upsert('a', pod('p1', 'web'));
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(store.get('Pod', 'x/p1')).toBeDefined();
    expect(heard).toEqual([{ kinds: ['Pod'], upserted: { Pod: ['x/p1'] }, deleted: {} }]);
  });

  it('every listener hears even if one throws; then StoreListenerError, and the change stands', () => {
    const store = new ObjectStore();
    store.onChange(() => {
      throw new Error('map full');
    });
    const heard = record(store);
    expect(() => store.batch(() => store.upsert('a', pod('p1', 'web')))).toThrow(StoreListenerError);
    expect(heard).toHaveLength(1);
    expect(store.get('Pod', 'x/p1')).toBeDefined();
    try {
      store.upsert('a', pod('p1', 'db'));
      expect.unreachable();
    } catch (err) {
      expect(err).toMatchObject({ code: 'SLUICE_STORE_LISTENER', message: expect.stringMatching(/map full/) });
    }
  });

  it('an unsubscribed listener hears nothing more', () => {
    const store = new ObjectStore();
    let calls = 0;
    const off = store.onChange(() => void calls++);
    store.upsert('a', pod('p1', 'web'));
    off();
    store.upsert('a', pod('p2', 'web'));
    expect(calls).toBe(1);
  });
});

describe('ObjectStore.replaceOwned', () => {
  it('replaces an owner\'s objects as one batch naming only what changed', () => {
    const store = new ObjectStore();
    store.replaceOwned('file:a', [pod('p1', 'web'), pod('p2', 'web'), netpol('n1')]);
    store.replaceOwned('file:b', [pod('q1', 'web')]);
    const heard = record(store);
    store.replaceOwned('file:a', [pod('p1', 'web'), pod('p2', 'db'), pod('p3', 'new')]);
    expect(heard).toEqual([{ kinds: ['NetworkPolicy', 'Pod'], upserted: { Pod: ['x/p2', 'x/p3'] }, deleted: { NetworkPolicy: ['x/n1'] } }]);
    expect(store.list('Pod').map((o) => o.metadata.name).sort()).toEqual(['p1', 'p2', 'p3', 'q1']);
    expect(store.ownerOf('Pod', 'x/q1')).toBe('file:b');
    store.replaceOwned('file:a', []);
    expect(store.list('Pod').map((o) => o.metadata.name)).toEqual(['q1']);
    expect(store.owned('file:a')).toEqual([]);
  });

  it('is transactional: an object another owner holds changes nothing at all', () => {
    const store = new ObjectStore();
    store.replaceOwned('file:a', [pod('p1', 'web'), pod('p2', 'web')]);
    store.replaceOwned('file:b', [pod('q1', 'web')]);
    const heard = record(store);
    expect(() => store.replaceOwned('file:a', [pod('p1', 'db'), pod('q1', 'thief')])).toThrow(StoreConflictError);
    expect(heard).toEqual([]);
    expect(store.get('Pod', 'x/p1')?.metadata.labels).toEqual({ app: 'web' });
    expect(store.get('Pod', 'x/p2')).toBeDefined();
    expect(store.get('Pod', 'x/q1')?.metadata.labels).toEqual({ app: 'web' });
  });

  it('the same objects again are no change', () => {
    const store = new ObjectStore();
    store.replaceOwned('file:a', [pod('p1', 'web')]);
    const heard = record(store);
    store.replaceOwned('file:a', [pod('p1', 'web')]);
    expect(heard).toEqual([]);
  });
});

describe('ObjectStore cost', () => {
  it('a change to one object of 10,000 is heard as that object alone, and fast', () => {
    const store = new ObjectStore();
    const objects = Array.from({ length: 10_000 }, (_, i) => pod(`p${i}`, 'web'));
    // Ten owners of 1,000 each, as files are.
    for (let f = 0; f < 10; f++) store.replaceOwned(`file:${f}`, objects.slice(f * 1000, (f + 1) * 1000));
    expect(store.size('Pod')).toBe(10_000);
    const heard = record(store);

    store.upsert('file:3', pod('p3500', 'db'));
    store.delete('file:9', 'Pod', 'x/p9999');
    expect(heard).toEqual([
      { kinds: ['Pod'], upserted: { Pod: ['x/p3500'] }, deleted: {} },
      { kinds: ['Pod'], upserted: {}, deleted: { Pod: ['x/p9999'] } },
    ]);

    // 1,000 single-object changes cost what they change, not the store's
    // size each (O(all objects) per change would be 10^7 steps).
    const started = performance.now();
    for (let i = 0; i < 1000; i++) store.upsert('file:0', pod('p0', `v${i}`));
    expect(performance.now() - started).toBeLessThan(500);
    expect(heard).toHaveLength(1002);
    expect(heard.slice(2).every((h) => h.upserted.Pod?.length === 1)).toBe(true);
  });

  it('replacing one owner\'s objects names only what changed in it, not the other owners\' objects', () => {
    const store = new ObjectStore();
    for (let f = 0; f < 10; f++) store.replaceOwned(`file:${f}`, Array.from({ length: 1000 }, (_, i) => pod(`f${f}-${i}`, 'web')));
    const heard = record(store);
    const next = Array.from({ length: 1000 }, (_, i) => pod(`f4-${i}`, i === 7 ? 'db' : 'web'));
    store.replaceOwned('file:4', next.slice(0, 999));
    expect(heard).toEqual([{ kinds: ['Pod'], upserted: { Pod: ['x/f4-7'] }, deleted: { Pod: ['x/f4-999'] } }]);
    expect(store.size('Pod')).toBe(9999);
    expect(store.owned('file:5')).toHaveLength(1000);
  });
});
