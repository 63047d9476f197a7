import { mkdtempSync, rmSync, writeFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
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
