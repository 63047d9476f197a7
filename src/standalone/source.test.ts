import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ObjectStore } from '../store/index.js';
import { parseManifest, StandaloneSource } from './source.js';

const silent = pino({ level: 'silent' });
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const podYaml = (name: string, app: string) => `apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: x, labels: { app: ${app} } }
spec:
  containers:
  - name: c
    ports: [ { name: http, containerPort: 80 } ]
`;

describe('parseManifest', () => {
  it('reads multi-document files and defaults', () => {
    const objs = parseManifest(`apiVersion: v1\nkind: Namespace\nmetadata: { name: x }\n---\n${podYaml('a', 'web')}---\n`, 'f.yaml');
    expect(objs.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(['Namespace/x', 'Pod/a']);
    expect(objs[0]!.metadata.labels).toEqual({ 'kubernetes.io/metadata.name': 'x' });
  });
  it.each([
    ['bad yaml', 'kind: [unclosed'],
    ['unknown kind', 'apiVersion: v1\nkind: Secret\nmetadata: { name: s }'],
    ['wrong apiVersion', 'apiVersion: v2\nkind: Pod\nmetadata: { name: p }'],
    ['bad name', 'apiVersion: v1\nkind: Pod\nmetadata: { name: Bad_Name }'],
    ['bad label', 'apiVersion: v1\nkind: Pod\nmetadata: { name: p, labels: { "a b": c } }'],
    ['bad port', 'apiVersion: v1\nkind: Pod\nmetadata: { name: p }\nspec: { containers: [ { name: c, ports: [ { containerPort: 70000 } ] } ] }'],
    ['bad port name', 'apiVersion: v1\nkind: Pod\nmetadata: { name: p }\nspec: { containers: [ { name: c, ports: [ { name: "1234", containerPort: 80 } ] } ] }'],
    ['duplicate', `${podYaml('a', 'web')}---\n${podYaml('a', 'web')}`],
    ['namespaced Namespace', 'apiVersion: v1\nkind: Namespace\nmetadata: { name: n, namespace: x }'],
  ])('rejects %s', (_what, text) => {
    expect(() => parseManifest(text, 'f.yaml')).toThrow();
  });
});

describe('StandaloneSource', () => {
  it('applies edits, rejects a bad file whole and keeps its previous objects', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-sa-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'pods.yaml'), podYaml('a', 'web'));
    const store = new ObjectStore();
    const src = new StandaloneSource(dir, store, silent);
    await src.start();
    try {
      expect(store.get('Pod', 'x/a')?.metadata.labels).toEqual({ app: 'web' });

      let sync = src.nextSync();
      writeFileSync(join(dir, 'pods.yaml'), podYaml('a', 'db'));
      await sync;
      expect(store.get('Pod', 'x/a')?.metadata.labels).toEqual({ app: 'db' });

      // One good and one bad document: nothing of the new version applies.
      sync = src.nextSync();
      writeFileSync(join(dir, 'pods.yaml'), `${podYaml('b', 'new')}---\napiVersion: v1\nkind: Pod\nmetadata: { name: BAD }\n`);
      await sync;
      expect(store.get('Pod', 'x/b')).toBeUndefined();
      expect(store.get('Pod', 'x/a')?.metadata.labels).toEqual({ app: 'db' });
      expect(src.status()).toEqual([expect.objectContaining({ file: 'pods.yaml', ok: false, error: expect.stringMatching(/metadata.name/) })]);

      // The same object from a second file is a conflict, rejected.
      sync = src.nextSync();
      writeFileSync(join(dir, 'other.yaml'), podYaml('a', 'thief'));
      await sync;
      expect(store.get('Pod', 'x/a')?.metadata.labels).toEqual({ app: 'db' });

      sync = src.nextSync();
      unlinkSync(join(dir, 'pods.yaml'));
      await sync;
      expect(store.get('Pod', 'x/a')).toBeUndefined();
    } finally {
      src.stop();
    }
  });
});

/** Polls `cond` (bounded: 3 s) — the recheck runs every 500 ms. */
async function until(what: string, cond: () => boolean): Promise<void> {
  await vi.waitFor(() => {
    if (!cond()) throw new Error(`timed out waiting for ${what}`);
  }, { timeout: 3000, interval: 20 });
}

describe('StandaloneSource when reads fail', () => {
  it('reports an unreadable file (EISDIR), keeps its objects and keeps watching', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-sa-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'pods.yaml'), podYaml('a', 'web'));
    const store = new ObjectStore();
    const src = new StandaloneSource(dir, store, silent);
    await src.start();
    try {
      // pods.yaml becomes a directory: reading it fails with EISDIR.
      rmSync(join(dir, 'pods.yaml'));
      mkdirSync(join(dir, 'pods.yaml'));
      await until('the read error reported', () => src.status().some((s) => s.file === 'pods.yaml' && !s.ok && /EISDIR/.test(s.error ?? '')));
      expect(store.get('Pod', 'x/a')?.metadata.labels).toEqual({ app: 'web' });

      // The watcher is alive: another file's edit still applies.
      const sync = src.nextSync();
      writeFileSync(join(dir, 'more.yaml'), podYaml('b', 'db'));
      await sync;
      expect(store.get('Pod', 'x/b')?.metadata.labels).toEqual({ app: 'db' });

      // And the unreadable one is read again once it is a file again.
      rmSync(join(dir, 'pods.yaml'), { recursive: true });
      writeFileSync(join(dir, 'pods.yaml'), podYaml('a', 'api'));
      await until('pods.yaml applied again', () => store.get('Pod', 'x/a')?.metadata.labels?.app === 'api');
      expect(src.status().find((s) => s.file === 'pods.yaml')).toEqual({ file: 'pods.yaml', ok: true, objects: 1 });
    } finally {
      src.stop();
    }
  });

  it('keeps every object while the directory is gone, and watches it anew when it is back', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'sluice-sa-'));
    dirs.push(parent);
    const dir = join(parent, 'manifests');
    mkdirSync(dir);
    writeFileSync(join(dir, 'pods.yaml'), podYaml('a', 'web'));
    writeFileSync(join(dir, 'old.yaml'), podYaml('o', 'old'));
    const store = new ObjectStore();
    const src = new StandaloneSource(dir, store, silent);
    await src.start();
    try {
      renameSync(dir, join(parent, 'moved-away'));
      await until('the directory reported missing', () => /ENOENT/.test(src.directoryError() ?? ''));
      expect(store.get('Pod', 'x/a')?.metadata.labels).toEqual({ app: 'web' });
      expect(store.get('Pod', 'x/o')).toBeDefined();

      mkdirSync(dir);
      writeFileSync(join(dir, 'pods.yaml'), podYaml('a', 'db'));
      await until('the new directory read', () => store.get('Pod', 'x/a')?.metadata.labels?.app === 'db');
      expect(src.directoryError()).toBeUndefined();
      // A file the new directory does not have is gone, as a removed file is.
      expect(store.get('Pod', 'x/o')).toBeUndefined();
      // And edits in the new directory are heard through the new watch.
      const sync = src.nextSync();
      writeFileSync(join(dir, 'pods.yaml'), podYaml('a', 'api'));
      await sync;
      expect(store.get('Pod', 'x/a')?.metadata.labels).toEqual({ app: 'api' });
    } finally {
      src.stop();
    }
  });

  it('a consumer failing after the store took the objects is reported as applied, not rejected', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-sa-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'pods.yaml'), podYaml('a', 'web'));
    const store = new ObjectStore();
    const src = new StandaloneSource(dir, store, silent);
    await src.start();
    let heard = 0;
    store.onChange(() => {
      throw new Error('map full');
    });
    store.onChange(() => void heard++);
    try {
      const sync = src.nextSync();
      writeFileSync(join(dir, 'pods.yaml'), podYaml('a', 'db'));
      await sync;
      expect(store.get('Pod', 'x/a')?.metadata.labels).toEqual({ app: 'db' });
      expect(heard).toBe(1); // the second listener heard despite the first one's throw
      const st = src.status().find((s) => s.file === 'pods.yaml')!;
      expect(st).toMatchObject({ ok: true, objects: 1, error: expect.stringMatching(/map full/) });
      expect(st.error).not.toMatch(/previous/);
    } finally {
      src.stop();
    }
  });
});
