// Standalone mode: a directory of Kubernetes-style YAML (multi-document files
// allowed) is the source of truth. Each file is one unit: if any document in
// it fails to parse or validate, the whole file is rejected, reported, and the
// objects it held before stay in force. Edits apply within ~100 ms.
import { watch, type FSWatcher } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { Logger } from '../log/index.js';
import { objectKey, type KubeObject, type ObjectStore } from '../store/index.js';
import { validateObject, ValidationError } from './validate.js';

/** Coalesces bursts of events (editors write several times per save). */
const DEBOUNCE_MS = 20;
const YAML_FILE = /\.ya?ml$/;

export interface FileStatus {
  file: string;
  ok: boolean;
  error?: string;
  objects: number;
}

export function parseManifest(text: string, file: string): KubeObject[] {
  const docs = parseAllDocuments(text, { prettyErrors: true });
  const objects: KubeObject[] = [];
  docs.forEach((doc, i) => {
    const where = `${file}#${i + 1}`;
    if (doc.errors.length) throw new ValidationError(`${where}: ${doc.errors[0]!.message}`);
    const value = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) return; // empty document
    const items = (value as { kind?: unknown }).kind === 'List' ? ((value as { items?: unknown[] }).items ?? []) : [value];
    for (const item of items) objects.push(validateObject(item, where));
  });
  const seen = new Set<string>();
  for (const o of objects) {
    const key = `${o.kind}/${objectKey(o)}`;
    if (seen.has(key)) throw new ValidationError(`${file}: ${key} is defined twice`);
    seen.add(key);
  }
  return objects;
}

export class StandaloneSource {
  readonly #dir: string;
  readonly #store: ObjectStore;
  readonly #log: Logger;
  readonly #status = new Map<string, FileStatus>();
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #pending = new Set<string>();
  #running: Promise<void> = Promise.resolve();
  readonly #onSync: Array<() => void> = [];

  constructor(dir: string, store: ObjectStore, log: Logger) {
    this.#dir = dir;
    this.#store = store;
    this.#log = log;
  }

  /** Loads every file, then watches the directory. */
  async start(): Promise<void> {
    const files = (await readdir(this.#dir)).filter((f) => YAML_FILE.test(f));
    for (const f of files.sort()) await this.#load(f);
    this.#watcher = watch(this.#dir, (_event, file) => {
      if (file && YAML_FILE.test(file)) this.#schedule(file);
    });
    this.#watcher.on('error', (err) => this.#log.error({ err }, 'watching the standalone directory failed'));
  }

  stop(): void {
    this.#watcher?.close();
    if (this.#timer) clearTimeout(this.#timer);
  }

  /** Per-file state: what was accepted, what was rejected and why. */
  status(): FileStatus[] {
    return [...this.#status.values()].sort((a, b) => a.file.localeCompare(b.file));
  }

  /** Resolves after the next batch of file events has been applied (tests). */
  nextSync(): Promise<void> {
    return new Promise((r) => this.#onSync.push(r));
  }

  #schedule(file: string): void {
    this.#pending.add(file);
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      const files = [...this.#pending];
      this.#pending.clear();
      this.#running = this.#running.then(async () => {
        for (const f of files) await this.#load(f);
        for (const r of this.#onSync.splice(0)) r();
      });
    }, DEBOUNCE_MS);
  }

  async #load(file: string): Promise<void> {
    const owner = `file:${file}`;
    let text: string;
    try {
      text = await readFile(join(this.#dir, file), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        this.#store.replaceOwned(owner, []);
        this.#status.delete(file);
        this.#log.info({ file }, 'manifest removed');
        return;
      }
      throw err;
    }
    try {
      const objects = parseManifest(text, file);
      this.#checkConflicts(owner, objects);
      this.#store.replaceOwned(owner, objects);
      this.#status.set(file, { file, ok: true, objects: objects.length });
      this.#log.info({ file, objects: objects.length }, 'manifest applied');
    } catch (err) {
      const prev = this.#status.get(file);
      this.#status.set(file, { file, ok: false, error: (err as Error).message, objects: prev?.ok ? prev.objects : (prev?.objects ?? 0) });
      this.#log.error({ file, error: (err as Error).message }, 'manifest rejected; its previous objects stay in force');
    }
  }

  /** An object may be defined by one file only. */
  #checkConflicts(owner: string, objects: readonly KubeObject[]): void {
    for (const o of objects) {
      const existing = this.#store.get(o.kind as never, objectKey(o));
      if (existing && existingOwner(this.#store, o) !== owner) {
        throw new ValidationError(`${o.kind} ${objectKey(o)} is already defined in another file`);
      }
    }
  }
}

function existingOwner(store: ObjectStore, o: KubeObject): string | undefined {
  return store.ownerOf(o.kind as never, objectKey(o));
}
