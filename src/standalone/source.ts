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
//
// It is a PolicySource: each file's accepted version is delivered as a diff
// against the previous one (only changed objects upserted, removed ones
// deleted), in one batch, so consumers hear one change per file naming only
// what changed, and a rewrite that changes nothing costs nothing downstream.
import { watch, type FSWatcher } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log/index.js';
import type { PolicySink, PolicySource } from '../sources/index.js';
import { Deferred } from '../sources/index.js';
import { deepEqual, objectKey, StoreListenerError, type Kind, type KubeObject } from '../store/index.js';
import { ManifestParser } from './manifest.js';
import { ValidationError } from './validate.js';

export { parseManifest } from './manifest.js';

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

/** One object's identity across kinds: `Kind/namespace/name`. */
function ref(o: KubeObject): string {
  return `${o.kind}/${objectKey(o)}`;
}

export class StandaloneSource implements PolicySource<FileStatus[]> {
  readonly name = 'standalone';
  readonly #dir: string;
  #sink: PolicySink | undefined;
  readonly #log: Logger;
  readonly #status = new Map<string, FileStatus>();
  /** Per file, the objects of its accepted version (what the sink holds for it), by ref. */
  readonly #accepted = new Map<string, Map<string, KubeObject>>();
  /** Which file holds each object (by ref): an object may be defined by one file only. */
  readonly #holder = new Map<string, string>();
  readonly #synced = new Deferred();
  /** Per file, its documents' last parse: an edit re-parses only what it changed. */
  readonly #parsers = new Map<string, ManifestParser>();
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

  /** The sink may be given here (then start() needs none) or to start(sink). */
  constructor(dir: string, log: Logger);
  constructor(dir: string, sink: PolicySink, log: Logger);
  constructor(dir: string, sinkOrLog: PolicySink | Logger, log?: Logger) {
    this.#dir = dir;
    if (log) {
      this.#sink = sinkOrLog as PolicySink;
      this.#log = log;
    } else {
      this.#log = sinkOrLog as Logger;
    }
  }

  /**
   * Loads every file, then watches the directory; resolves (and so does
   * waitSynced) once every file has been applied or reported.
   */
  async start(sink?: PolicySink): Promise<void> {
    try {
      if (sink) this.#sink = sink;
      if (!this.#sink) throw new TypeError('StandaloneSource.start: no sink to deliver to');
      const files = (await readdir(this.#dir)).filter((f) => YAML_FILE.test(f));
      this.#watching = await this.#identity();
      this.#watch();
      await this.#loadAll(files.sort());
      this.#recheck = setInterval(() => this.#enqueue(() => this.#checkDirectory()), RECHECK_MS);
      this.#recheck.unref();
    } catch (err) {
      this.#synced.reject(err);
      throw err;
    }
    this.#synced.resolve();
  }

  /** The directory is read whole by start(): synced is when start() has finished. */
  waitSynced(): Promise<void> {
    return this.#synced.promise;
  }

  problems(): string[] {
    return this.#dirError ? [`standalone directory: ${this.#dirError} (every object it held stays in force)`] : [];
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
          await this.#loadAll(files);
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
      await this.#loadAll([...files.sort(), ...known]);
      return;
    }
    await this.#loadAll([...this.#unreadable]);
  }

  /**
   * Loads files that changed together (one debounce window, a scan): each
   * is read and parsed first (yielding, as parsing does), then all are
   * handed to the sink in one synchronous run, in order. Each file is still
   * its own batch (consumers hear one change per file), but no turn of the
   * event loop falls between them, so the reconciler, which syncs on the
   * next turn, programs the whole burst in one sync instead of one per file.
   * The outcome is the same as loading them one after the other: the
   * conflict check between files runs at delivery, in order.
   */
  async #loadAll(files: readonly string[]): Promise<void> {
    const read: Array<{ file: string; got: Read }> = [];
    for (const file of files) read.push({ file, got: await this.#read(file) });
    const parsed: Array<{ file: string; got: Read | { objects: KubeObject[] } | { error: Error } }> = [];
    for (const { file, got } of read) {
      if (!('text' in got)) {
        parsed.push({ file, got });
        continue;
      }
      try {
        let parser = this.#parsers.get(file);
        if (!parser) this.#parsers.set(file, (parser = new ManifestParser()));
        parsed.push({ file, got: { objects: await parser.parseYielding(got.text, file) } });
      } catch (err) {
        parsed.push({ file, got: { error: err as Error } });
      }
    }
    for (const { file, got } of parsed) this.#deliver(file, got);
  }

  /** The file's text, or that it is gone (the directory being there), or why it cannot be read. */
  async #read(file: string): Promise<Read> {
    try {
      return { text: await readFile(join(this.#dir, file), 'utf8') };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && (await this.#dirPresent())) return { removed: true };
      return { unreadable: err };
    }
  }

  #deliver(file: string, got: Read | { objects: KubeObject[] } | { error: Error }): void {
    if ('removed' in got) {
      this.#unreadable.delete(file);
      if (!this.#status.has(file)) return;
      this.#replace(file, []);
      this.#status.delete(file);
      this.#parsers.delete(file);
      this.#log.info({ file }, 'manifest removed');
      return;
    }
    if ('unreadable' in got) {
      // Unreadable (or the whole directory is gone): nothing changes in the
      // store, the file is reported and read again at the next recheck.
      const error = `cannot read: ${errText(got.unreadable)}`;
      const prev = this.#status.get(file);
      if (prev?.error !== error) this.#log.error({ file, error }, 'manifest unreadable; its previous objects stay in force');
      this.#status.set(file, { file, ok: false, error, objects: prev?.objects ?? 0 });
      this.#unreadable.add(file);
      return;
    }
    this.#unreadable.delete(file);
    let objects: KubeObject[];
    try {
      if ('error' in got) throw got.error;
      if ('text' in got) throw new TypeError('StandaloneSource: a file delivered unparsed');
      objects = got.objects;
      this.#checkConflicts(file, objects);
    } catch (err) {
      const prev = this.#status.get(file);
      this.#status.set(file, { file, ok: false, error: (err as Error).message, objects: prev?.objects ?? 0 });
      this.#log.error({ file, error: (err as Error).message }, 'manifest rejected; its previous objects stay in force');
      return;
    }
    this.#replace(file, objects);
  }

  /**
   * Hands the file's new version to the sink as a diff, in one batch, and
   * records the outcome truthfully. The sink refusing an object (another
   * source holds it) undoes the file's changes within the batch, so nobody
   * hears of them, and rejects the file as a conflict would.
   */
  #replace(file: string, objects: KubeObject[]): void {
    const sink = this.#sink!;
    const owner = `file:${file}`;
    const prev = this.#accepted.get(file) ?? new Map<string, KubeObject>();
    const next = new Map(objects.map((o) => [ref(o), o]));
    let upserted = 0;
    let deleted = 0;
    try {
      sink.batch(() => {
        const undo: Array<() => void> = [];
        try {
          for (const [r, o] of prev) {
            if (next.has(r)) continue;
            sink.delete(owner, o.kind as Kind, objectKey(o));
            undo.push(() => sink.upsert(owner, o));
            deleted++;
          }
          for (const [r, o] of next) {
            const before = prev.get(r);
            if (before && deepEqual(before, o)) continue;
            sink.upsert(owner, o);
            undo.push(() => (before ? sink.upsert(owner, before) : void sink.delete(owner, o.kind as Kind, objectKey(o))));
            upserted++;
          }
        } catch (err) {
          for (const u of undo.reverse()) u();
          throw err;
        }
        // Taken: the bookkeeping follows before listeners hear.
        for (const r of prev.keys()) if (!next.has(r)) this.#holder.delete(r);
        for (const r of next.keys()) this.#holder.set(r, file);
        if (next.size) this.#accepted.set(file, next);
        else this.#accepted.delete(file);
      });
    } catch (err) {
      if (err instanceof StoreListenerError) {
        // The store holds the new objects; what failed is acting on them.
        this.#status.set(file, { file, ok: true, objects: objects.length, error: err.message });
        this.#log.error({ file, objects: objects.length, error: err.message }, 'manifest applied, but acting on it failed');
        return;
      }
      if ((err as { code?: unknown })?.code !== 'SLUICE_STORE_CONFLICT') throw err;
      const prevStatus = this.#status.get(file);
      this.#status.set(file, { file, ok: false, error: (err as Error).message, objects: prevStatus?.objects ?? 0 });
      this.#log.error({ file, error: (err as Error).message }, 'manifest rejected; its previous objects stay in force');
      return;
    }
    const prevStatus = this.#status.get(file);
    if (!upserted && !deleted && prevStatus?.ok) {
      // Nothing changed, nobody heard: what was last learnt about acting on these objects still stands.
      this.#log.debug({ file, objects: objects.length }, 'manifest unchanged');
      return;
    }
    this.#status.set(file, { file, ok: true, objects: objects.length });
    this.#log.info({ file, objects: objects.length, upserted, deleted }, 'manifest applied');
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
  #checkConflicts(file: string, objects: readonly KubeObject[]): void {
    for (const o of objects) {
      const holder = this.#holder.get(ref(o));
      if (holder !== undefined && holder !== file) {
        throw new ValidationError(`${o.kind} ${objectKey(o)} is already defined in another file`);
      }
    }
  }
}

/** What reading a file found. */
type Read = { text: string } | { removed: true } | { unreadable: unknown };

function errText(err: unknown): string {
  const code = (err as NodeJS.ErrnoException)?.code;
  const message = (err as Error)?.message ?? String(err);
  return code && !message.startsWith(code) ? `${code}: ${message}` : message;
}
