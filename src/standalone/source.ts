// Standalone mode: a directory of Kubernetes-style YAML (multi-document files
// allowed) is the source of truth. Each file is one unit: if any document in
// it fails to parse or validate, the whole file is rejected, reported, and the
// objects it held before stay in force. Edits apply within ~100 ms.
//
// The watcher never dies silently. A file that cannot be read (EACCES,
// EISDIR, an I/O error) is reported like a rejected one: its previous objects
// stay in force and it is retried. A file that vanishes is removed only while
// the directory itself is there: a directory that is removed (or unreadable)
// keeps every object in force, is reported, and is watched anew (a fresh
// inotify watch, a full rescan) as soon as it is back. A consumer that fails
// after the store took the objects (the datapath could not be programmed) is
// reported as exactly that, never as a rejected manifest.
import { watch, type FSWatcher } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { Logger } from '../log/index.js';
import { objectKey, StoreListenerError, type KubeObject, type ObjectStore } from '../store/index.js';
import { validateObject, ValidationError } from './validate.js';

/** Coalesces bursts of events (editors write several times per save). */
const DEBOUNCE_MS = 20;
const YAML_FILE = /\.ya?ml$/;
/**
 * How often the directory's identity is checked and failed reads retried: a
 * removed and recreated directory is a new inode the old watch never hears of.
 */
const RECHECK_MS = 500;

export interface FileStatus {
  file: string;
  /** The file's current objects are the ones in force. */
  ok: boolean;
  /** Why it was rejected or unreadable; or, with ok, what failed after the objects were accepted. */
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
  #recheck: NodeJS.Timeout | undefined;
  #pending = new Set<string>();
  /** Files whose last read failed (not ENOENT): read again at every recheck. */
  readonly #unreadable = new Set<string>();
  #running: Promise<void> = Promise.resolve();
  readonly #onSync: Array<() => void> = [];
  /** dev:ino of the directory being watched; '' while none is. */
  #watching = '';
  /** Why the directory itself cannot be watched or listed, if it cannot. */
  #dirError: string | undefined;
  #stopped = false;

  constructor(dir: string, store: ObjectStore, log: Logger) {
    this.#dir = dir;
    this.#store = store;
    this.#log = log;
  }

  /** Loads every file, then watches the directory. */
  async start(): Promise<void> {
    const files = (await readdir(this.#dir)).filter((f) => YAML_FILE.test(f));
    this.#watching = await this.#identity();
    this.#watch();
    for (const f of files.sort()) await this.#load(f);
    this.#recheck = setInterval(() => this.#enqueue(() => this.#checkDirectory()), RECHECK_MS);
    this.#recheck.unref();
  }

  stop(): void {
    this.#stopped = true;
    this.#watcher?.close();
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#recheck) clearInterval(this.#recheck);
  }

  /** Per-file state: what was accepted, what was rejected and why. */
  status(): FileStatus[] {
    return [...this.#status.values()].sort((a, b) => a.file.localeCompare(b.file));
  }

  /** What is wrong with the directory as a whole (gone, unreadable), if anything. */
  directoryError(): string | undefined {
    return this.#dirError;
  }

  /** Resolves after the next batch of file events has been applied (tests). */
  nextSync(): Promise<void> {
    return new Promise((r) => this.#onSync.push(r));
  }

  #watch(): void {
    this.#watcher?.close();
    const watcher = watch(this.#dir, (_event, file) => {
      if (file && YAML_FILE.test(file)) this.#schedule(file);
    });
    watcher.on('error', (err) => {
      // The next recheck watches anew (and rescans) once the directory is there.
      this.#log.error({ err, dir: this.#dir }, 'watching the standalone directory failed; watching it anew');
      watcher.close();
      if (this.#watcher === watcher) this.#watching = '';
    });
    this.#watcher = watcher;
  }

  /** Runs `work` after whatever is in flight; a throw is logged, never breaks the chain. */
  #enqueue(work: () => Promise<void>): void {
    this.#running = this.#running.then(async () => {
      if (this.#stopped) return;
      try {
        await work();
      } catch (err) {
        this.#log.error({ err, dir: this.#dir }, 'standalone directory: unexpected error; the previous objects stay in force');
      }
    });
  }

  #schedule(file: string): void {
    this.#pending.add(file);
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      const files = [...this.#pending];
      this.#pending.clear();
      this.#enqueue(async () => {
        try {
          for (const f of files) await this.#load(f);
        } finally {
          for (const r of this.#onSync.splice(0)) r();
        }
      });
    }, DEBOUNCE_MS);
  }

  async #identity(): Promise<string> {
    const st = await stat(this.#dir);
    if (!st.isDirectory()) throw Object.assign(new Error(`${this.#dir} is not a directory`), { code: 'ENOTDIR' });
    return `${st.dev}:${st.ino}`;
  }

  /**
   * The recheck: a directory that is gone or unreadable is reported (its
   * objects stay); one that is back, or new, is watched anew and rescanned;
   * files that could not be read are read again.
   */
  async #checkDirectory(): Promise<void> {
    let identity: string;
    let files: string[];
    try {
      identity = await this.#identity();
      files = identity === this.#watching ? [] : (await readdir(this.#dir)).filter((f) => YAML_FILE.test(f));
    } catch (err) {
      const error = `cannot read the directory ${this.#dir}: ${errText(err)}`;
      if (this.#dirError !== error) this.#log.error({ dir: this.#dir, error }, 'standalone directory unavailable; every object it held stays in force');
      this.#dirError = error;
      this.#watching = '';
      return;
    }
    if (this.#dirError) this.#log.info({ dir: this.#dir }, 'standalone directory readable again');
    this.#dirError = undefined;
    if (identity !== this.#watching) {
      // A new inode (or a failed watch): watch it, then reload everything,
      // including files known before that are no longer there.
      this.#watch();
      this.#watching = identity;
      const known = [...this.#status.keys()].filter((f) => !files.includes(f));
      this.#log.info({ dir: this.#dir, files: files.length }, 'watching the standalone directory anew; rescanning it');
      for (const f of [...files.sort(), ...known]) await this.#load(f);
      return;
    }
    for (const f of [...this.#unreadable]) await this.#load(f);
  }

  async #load(file: string): Promise<void> {
    const owner = `file:${file}`;
    let text: string;
    try {
      text = await readFile(join(this.#dir, file), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && (await this.#dirPresent())) {
        this.#unreadable.delete(file);
        if (!this.#status.has(file)) return;
        this.#replace(file, owner, []);
        this.#status.delete(file);
        this.#log.info({ file }, 'manifest removed');
        return;
      }
      // Unreadable (or the whole directory is gone): nothing changes in the
      // store, the file is reported and read again at the next recheck.
      const error = `cannot read: ${errText(err)}`;
      const prev = this.#status.get(file);
      if (prev?.error !== error) this.#log.error({ file, error }, 'manifest unreadable; its previous objects stay in force');
      this.#status.set(file, { file, ok: false, error, objects: prev?.objects ?? 0 });
      this.#unreadable.add(file);
      return;
    }
    this.#unreadable.delete(file);
    let objects: KubeObject[];
    try {
      objects = parseManifest(text, file);
      this.#checkConflicts(owner, objects);
    } catch (err) {
      const prev = this.#status.get(file);
      this.#status.set(file, { file, ok: false, error: (err as Error).message, objects: prev?.objects ?? 0 });
      this.#log.error({ file, error: (err as Error).message }, 'manifest rejected; its previous objects stay in force');
      return;
    }
    this.#replace(file, owner, objects);
  }

  /** Hands the file's objects to the store and records the outcome truthfully. */
  #replace(file: string, owner: string, objects: KubeObject[]): void {
    try {
      this.#store.replaceOwned(owner, objects);
    } catch (err) {
      if (!(err instanceof StoreListenerError)) throw err;
      // The store holds the new objects; what failed is acting on them.
      this.#status.set(file, { file, ok: true, objects: objects.length, error: err.message });
      this.#log.error({ file, objects: objects.length, error: err.message }, 'manifest applied, but acting on it failed');
      return;
    }
    this.#status.set(file, { file, ok: true, objects: objects.length });
    this.#log.info({ file, objects: objects.length }, 'manifest applied');
  }

  async #dirPresent(): Promise<boolean> {
    try {
      await this.#identity();
      return true;
    } catch {
      return false;
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

function errText(err: unknown): string {
  const code = (err as NodeJS.ErrnoException)?.code;
  const message = (err as Error)?.message ?? String(err);
  return code && !message.startsWith(code) ? `${code}: ${message}` : message;
}

function existingOwner(store: ObjectStore, o: KubeObject): string | undefined {
  return store.ownerOf(o.kind as never, objectKey(o));
}
