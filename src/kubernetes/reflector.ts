// One kind's list+watch into a sink (the agent's ObjectStore, or the node
// table): the informer of client-go, reduced to what the agent needs.
//
//   list (paged) ──► one batch: every object upserted, every object the sink
//   held that the list lacks deleted ──► synced ──► watch from the list's
//   resourceVersion (bookmarks on, a server-side timeout of 5–10 min) ──►
//   events applied in batches (those that arrive in one turn of the event
//   loop together) ──► the watch ends: watch again from the last version
//   seen; "410 Gone" (the version is too old): list again.
//
// A failure (the API down or restarting, a timeout, a refused request) is
// retried with exponential backoff (0.5 s doubling to 30 s, with jitter) and
// shown in status()/problems(); what the sink holds stays in force meanwhile
// (enforcement never drops because the API is away). Objects are trimmed to
// what the agent reads before they reach the sink, so a change in a field
// nobody reads (a pod's conditions) is an equal rewrite the store ignores.
import type { ReflectorState } from '../api/index.js';
import type { Logger } from '../log/index.js';
import { Deferred } from '../sources/index.js';
import type { KubeObject } from '../store/index.js';
import { isKubeApiError, KubeApiError, type KubeApi, type KubeList, type WatchEvent } from './api.js';

/** Where a reflector delivers (ObjectSink's shape, with the kind as a plain string). */
export interface ReflectorSink {
  upsert(owner: string, obj: KubeObject): void;
  delete(owner: string, kind: string, key: string): boolean;
  batch<T>(fn: () => T): T;
}

/** An object as the API sends it (the reflector reads only its metadata). */
export interface RawObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; [k: string]: unknown };
  [k: string]: unknown;
}

export interface ReflectorOptions {
  /** The sink's kind ('Pod'). */
  kind: string;
  /** The collection's path: /api/v1/pods, /apis/networking.k8s.io/v1/networkpolicies. */
  path: string;
  /** The owner the sink records (one per reflector). */
  owner: string;
  /** What the sink keeps of an object; undefined: not kept (deleted if it was). */
  trim: (raw: RawObject) => KubeObject | undefined;
  /** Items per list page. */
  pageSize?: number;
  /**
   * A collection the API does not serve (404: a CRD not installed) is an
   * empty list, reported and listed again with backoff, rather than a
   * source that never syncs.
   */
  missingIsEmpty?: boolean;
  /** Backoff bounds (tests shorten them). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/** What `sluice status` shows of a reflector (the API's ReflectorState). */
export type ReflectorStatus = ReflectorState;

/** Thrown inside the loop for a watch that said its version is gone. */
class Expired extends Error {}

function keyOf(raw: RawObject): string {
  const m = raw.metadata ?? {};
  return m.namespace ? `${m.namespace}/${m.name}` : (m.name ?? '');
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

export class Reflector {
  readonly #api: KubeApi;
  readonly #sink: ReflectorSink;
  readonly #opts: Required<ReflectorOptions>;
  readonly #log: Logger;
  readonly #synced = new Deferred();
  /** Keys the sink holds from this reflector. */
  readonly #known = new Set<string>();
  #rv = '';
  #listedAt = 0;
  #stopped = false;
  #abort: (() => void) | undefined;
  #wake: (() => void) | undefined;
  #status: ReflectorStatus;
  #loggedError = '';
  /** Events received and not yet applied (applied together on the next turn). */
  #pending: Array<WatchEvent<RawObject>> = [];

  constructor(api: KubeApi, sink: ReflectorSink, opts: ReflectorOptions, log: Logger) {
    this.#api = api;
    this.#sink = sink;
    this.#opts = { pageSize: 500, minBackoffMs: 500, maxBackoffMs: 30_000, missingIsEmpty: false, ...opts };
    this.#log = log.child({ kind: opts.kind });
    this.#status = { kind: opts.kind, synced: false, objects: 0, resourceVersion: '', lists: 0, watches: 0, events: 0 };
  }

  /** Resolves once the first list is in the sink. */
  get synced(): Promise<void> {
    return this.#synced.promise;
  }

  start(): void {
    void this.#run();
  }

  stop(): void {
    this.#stopped = true;
    this.#abort?.();
    this.#wake?.();
  }

  status(): ReflectorStatus {
    return { ...this.#status, objects: this.#known.size, resourceVersion: this.#rv };
  }

  async #run(): Promise<void> {
    let backoff = this.#opts.minBackoffMs;
    while (!this.#stopped) {
      try {
        if (!this.#rv && !(await this.#list())) {
          await this.#pause(backoff);
          backoff = Math.min(backoff * 2, this.#opts.maxBackoffMs);
          continue;
        }
        const healthy = await this.#watchOnce();
        if (healthy) backoff = this.#opts.minBackoffMs;
        else {
          // A watch that ended at once with nothing in it: do not spin.
          await this.#pause(backoff);
          backoff = Math.min(backoff * 2, this.#opts.maxBackoffMs);
        }
      } catch (err) {
        if (this.#stopped) break;
        if (err instanceof Expired || isKubeApiError(err, 410)) {
          this.#log.info('watch expired (410 Gone): listing again');
          this.#rv = '';
          // Expired again right after a list: do not spin on it.
          if (Date.now() - this.#listedAt < 1000) {
            await this.#pause(backoff);
            backoff = Math.min(backoff * 2, this.#opts.maxBackoffMs);
          }
          continue;
        }
        this.#fail(err);
        await this.#pause(backoff * (0.75 + Math.random() / 2));
        backoff = Math.min(backoff * 2, this.#opts.maxBackoffMs);
      }
    }
  }

  /** Waits `ms`, or less if stopped. */
  #pause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#wake = resolve;
      void sleep(ms).then(resolve);
    });
  }

  #fail(err: unknown): void {
    const text = (err as Error)?.message ?? String(err);
    if (!this.#status.error) this.#status.since = new Date().toISOString();
    this.#status.error = text;
    if (text !== this.#loggedError) {
      this.#log.warn({ error: text, server: this.#api.server }, 'list/watch failed: retrying with backoff; what is in force stays in force');
      this.#loggedError = text;
    }
  }

  #ok(): void {
    if (this.#status.error) this.#log.info('list/watch working again');
    delete this.#status.error;
    delete this.#status.since;
    this.#loggedError = '';
  }

  /** Lists into the sink; false when the collection is not served (missingIsEmpty: it counts as empty). */
  async #list(): Promise<boolean> {
    const items: RawObject[] = [];
    let rv = '';
    let cont = '';
    let missing = false;
    for (let page = 0; page < 100_000; page++) {
      const q = new URLSearchParams({ limit: String(this.#opts.pageSize) });
      if (cont) q.set('continue', cont);
      let list: KubeList<RawObject>;
      try {
        list = await this.#api.get<KubeList<RawObject>>(`${this.#opts.path}?${q}`);
      } catch (err) {
        if (!(this.#opts.missingIsEmpty && isKubeApiError(err, 404))) throw err;
        missing = true;
        break;
      }
      items.push(...(list.items ?? []));
      rv = list.metadata?.resourceVersion ?? '';
      cont = list.metadata?.continue ?? '';
      if (!cont) break;
    }
    if (this.#stopped) return false;
    const seen = new Set<string>();
    this.#sink.batch(() => {
      for (const raw of items) {
        const key = keyOf(raw);
        seen.add(key);
        this.#apply(raw);
      }
      for (const key of [...this.#known]) if (!seen.has(key)) this.#remove(key);
    });
    this.#rv = missing ? '' : rv;
    this.#listedAt = Date.now();
    this.#status.lists++;
    if (missing) this.#fail(new KubeApiError(`${this.#opts.path} is not served (is its CustomResourceDefinition installed?): none in force`, 404));
    else this.#ok();
    this.#status.synced = true;
    this.#synced.resolve();
    return !missing;
  }

  /** One watch, to its end. True if it was healthy (it lasted, or it carried events). */
  async #watchOnce(): Promise<boolean> {
    const started = Date.now();
    let events = 0;
    const timeoutSeconds = String(300 + Math.floor(Math.random() * 300));
    const ended = new Deferred<unknown>();
    let settled = false;
    void ended.promise.finally(() => (settled = true)).catch(() => {});
    this.#abort = await this.#api.watch<RawObject>(
      this.#opts.path,
      { resourceVersion: this.#rv, allowWatchBookmarks: 'true', timeoutSeconds },
      (e) => {
        events++;
        if (e.type === 'ERROR') {
          const code = (e.object as { code?: number }).code;
          ended.reject(code === 410 ? new Expired('watch expired') : new KubeApiError(`watch ${this.#opts.path}: ${(e.object as { message?: string }).message ?? 'error event'}`, code ?? 0));
          return;
        }
        this.#pending.push(e);
        if (this.#pending.length === 1) setImmediate(() => this.#flush());
      },
      (err) => (err ? ended.reject(err) : ended.resolve(null)),
    );
    this.#status.watches++;
    // Watching: whatever failed before works again.
    await Promise.resolve();
    if (!settled) this.#ok();
    try {
      await ended.promise;
    } finally {
      this.#abort?.();
      this.#abort = undefined;
      this.#flush();
    }
    this.#ok();
    return events > 0 || Date.now() - started > 1000;
  }

  #flush(): void {
    const events = this.#pending;
    if (!events.length) return;
    this.#pending = [];
    this.#sink.batch(() => {
      for (const e of events) {
        if (e.type === 'ADDED' || e.type === 'MODIFIED') this.#apply(e.object);
        else if (e.type === 'DELETED') this.#remove(keyOf(e.object));
        const rv = e.object.metadata?.resourceVersion;
        if (rv) this.#rv = rv;
      }
    });
    this.#status.events += events.length;
  }

  #apply(raw: RawObject): void {
    const key = keyOf(raw);
    const obj = this.#opts.trim(raw);
    if (!obj) {
      this.#remove(key);
      return;
    }
    this.#sink.upsert(this.#opts.owner, obj);
    this.#known.add(key);
  }

  #remove(key: string): void {
    if (!this.#known.delete(key)) return;
    this.#sink.delete(this.#opts.owner, this.#opts.kind, key);
  }

  /** Puts one object in the sink out of band (a CNI ADD's pod fetched ahead of the watch). */
  inject(raw: RawObject): void {
    this.#sink.batch(() => this.#apply(raw));
  }
}
