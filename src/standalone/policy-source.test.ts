// The standalone directory through the PolicySource seam: what a consumer
// of the store hears per file edit, synced, status and problems.
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { PolicySource } from '../sources/index.js';
import { ObjectStore, type StoreChange } from '../store/index.js';
import { StandaloneSource, type FileStatus } from './index.js';

const silent = pino({ level: 'silent' });
const dirs: string[] = [];
const sources: PolicySource[] = [];
afterEach(() => {
  for (const s of sources.splice(0)) s.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const pod = (name: string, app: string) => `apiVersion: v1\nkind: Pod\nmetadata: { name: ${name}, namespace: x, labels: { app: ${app} } }\n`;
const netpol = (name: string) => `apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: { name: ${name}, namespace: x }\nspec: { podSelector: {} }\n`;
const docs = (...d: string[]) => d.join('---\n');

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-ps-'));
  dirs.push(dir);
  return dir;
}

/** Each notification as `Kind:key` lists. */
function record(store: ObjectStore): Array<{ upserted: string[]; deleted: string[] }> {
  const heard: Array<{ upserted: string[]; deleted: string[] }> = [];
  const flat = (m: StoreChange['upserted']) => [...m].flatMap(([k, keys]) => [...keys].map((key) => `${k}:${key}`)).sort();
  store.onChange((_kinds, change) => heard.push({ upserted: flat(change.upserted), deleted: flat(change.deleted) }));
  return heard;
}

async function started(dir: string, store: ObjectStore): Promise<StandaloneSource> {
  const src = new StandaloneSource(dir, silent);
  sources.push(src);
  const asSource: PolicySource<FileStatus[]> = src;
  await asSource.start(store);
  await asSource.waitSynced();
  return src;
}

/** Applies one write and waits for the source to have handled it. */
async function edit(src: StandaloneSource, path: string, text: string): Promise<void> {
  const sync = src.nextSync();
  writeFileSync(path, text);
  await sync;
}

describe('StandaloneSource as a PolicySource', () => {
  it('is synced with every file in the sink, one batch per file', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'a.yaml'), docs(pod('a1', 'web'), pod('a2', 'web')));
    writeFileSync(join(dir, 'b.yaml'), netpol('n1'));
    const store = new ObjectStore();
    const heard = record(store);
    const src = await started(dir, store);
    expect(heard).toEqual([
      { upserted: ['Pod:x/a1', 'Pod:x/a2'], deleted: [] },
      { upserted: ['NetworkPolicy:x/n1'], deleted: [] },
    ]);
    expect(src.name).toBe('standalone');
    expect(src.status()).toEqual([
      { file: 'a.yaml', ok: true, objects: 2 },
      { file: 'b.yaml', ok: true, objects: 1 },
    ]);
    expect(src.problems()).toEqual([]);
    expect(store.ownerOf('Pod', 'x/a1')).toBe('file:a.yaml');
  });

  it('delivers a file edit as a diff: only changed objects upserted, removed ones deleted', async () => {
    const dir = tempDir();
    const file = join(dir, 'a.yaml');
    writeFileSync(file, docs(pod('a1', 'web'), pod('a2', 'web'), pod('a3', 'web'), netpol('n1')));
    const store = new ObjectStore();
    const src = await started(dir, store);
    const a1 = store.get('Pod', 'x/a1');
    const heard = record(store);

    await edit(src, file, docs(pod('a1', 'web'), pod('a2', 'db'), pod('a4', 'new'), netpol('n1')));
    expect(heard).toEqual([{ upserted: ['Pod:x/a2', 'Pod:x/a4'], deleted: ['Pod:x/a3'] }]);
    // The untouched object is the very same stored object.
    expect(store.get('Pod', 'x/a1')).toBe(a1);
    expect(src.status()).toEqual([{ file: 'a.yaml', ok: true, objects: 4 }]);

    // The same content again (an editor's second write) changes nothing and nobody hears.
    await edit(src, file, docs(pod('a1', 'web'), pod('a2', 'db'), pod('a4', 'new'), netpol('n1')));
    expect(heard).toHaveLength(1);
  });

  it('a rejected file is rejected whole: nothing heard, its previous objects stay', async () => {
    const dir = tempDir();
    const file = join(dir, 'a.yaml');
    writeFileSync(file, docs(pod('a1', 'web'), pod('a2', 'web')));
    const store = new ObjectStore();
    const src = await started(dir, store);
    const heard = record(store);
    await edit(src, file, docs(pod('a1', 'db'), 'apiVersion: v1\nkind: Pod\nmetadata: { name: BAD }\n'));
    expect(heard).toEqual([]);
    expect(store.get('Pod', 'x/a1')?.metadata.labels).toEqual({ app: 'web' });
    expect(store.get('Pod', 'x/a2')).toBeDefined();
    expect(src.status()).toEqual([expect.objectContaining({ file: 'a.yaml', ok: false, objects: 2 })]);

    // Fixed: the diff is against what is in force, not against the rejected version.
    await edit(src, file, docs(pod('a1', 'db')));
    expect(heard).toEqual([{ upserted: ['Pod:x/a1'], deleted: ['Pod:x/a2'] }]);
    expect(src.status()).toEqual([{ file: 'a.yaml', ok: true, objects: 1 }]);
  });

  it('an object another source holds rejects the file whole, and nobody hears a partial change', async () => {
    const dir = tempDir();
    const file = join(dir, 'a.yaml');
    writeFileSync(file, docs(pod('a1', 'web')));
    const store = new ObjectStore();
    store.upsert('kubernetes', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'k1', namespace: 'x' } });
    const src = await started(dir, store);
    const heard = record(store);
    await edit(src, file, docs(pod('a1', 'db'), pod('a2', 'new'), pod('k1', 'thief')));
    expect(heard).toEqual([]);
    expect(store.get('Pod', 'x/a1')?.metadata.labels).toEqual({ app: 'web' });
    expect(store.get('Pod', 'x/a2')).toBeUndefined();
    expect(store.ownerOf('Pod', 'x/k1')).toBe('kubernetes');
    expect(src.status()).toEqual([expect.objectContaining({ file: 'a.yaml', ok: false, objects: 1, error: expect.stringMatching(/held by kubernetes/) })]);
  });

  it('a removed file deletes exactly its objects', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'a.yaml'), docs(pod('a1', 'web'), netpol('n1')));
    writeFileSync(join(dir, 'b.yaml'), pod('b1', 'web'));
    const store = new ObjectStore();
    const src = await started(dir, store);
    const heard = record(store);
    const sync = src.nextSync();
    rmSync(join(dir, 'a.yaml'));
    await sync;
    expect(heard).toEqual([{ upserted: [], deleted: ['NetworkPolicy:x/n1', 'Pod:x/a1'] }]);
    expect(src.status()).toEqual([{ file: 'b.yaml', ok: true, objects: 1 }]);
  });

  it('reports a vanished directory as a problem while it lasts', async () => {
    const parent = tempDir();
    const dir = join(parent, 'm');
    mkdirSync(dir);
    writeFileSync(join(dir, 'a.yaml'), pod('a1', 'web'));
    const store = new ObjectStore();
    const src = await started(dir, store);
    renameSync(dir, join(parent, 'away'));
    await vi.waitFor(() => expect(src.problems()).toEqual([expect.stringMatching(/^standalone directory: cannot read the directory .*ENOENT.*stays in force\)$/)]), { timeout: 3000, interval: 20 });
    expect(store.get('Pod', 'x/a1')).toBeDefined();
    renameSync(join(parent, 'away'), dir);
    await vi.waitFor(() => expect(src.problems()).toEqual([]), { timeout: 3000, interval: 20 });
  });

  it('a directory that cannot be read at start fails start and waitSynced', async () => {
    const dir = join(tempDir(), 'missing');
    const src = new StandaloneSource(dir, silent);
    sources.push(src);
    await expect(src.start(new ObjectStore())).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(src.waitSynced()).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('needs a sink: from the constructor or from start', async () => {
    const src = new StandaloneSource(tempDir(), silent);
    sources.push(src);
    await expect(src.start()).rejects.toThrow(/no sink/);
  });
});
