// The one store every policy source feeds (the standalone directory today,
// Kubernetes informers later). Objects are read-only once stored.
//
// Changes are per object and cost what they change: an upsert or a delete
// touches one entry, and an owner's objects (a file, an informer's kind) are
// indexed by owner so replacing them costs that owner's objects, never the
// whole store. Notifications are batched: listeners hear once per batch
// (`batch(fn)`, or each lone upsert/delete) with exactly what changed — the
// kinds, and the keys upserted and deleted per kind — so a consumer can mark
// only those dirty. A consumer that prefers level-triggered behaviour ignores
// the details and re-reads with list/get, so relists and replays are harmless.

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  resourceVersion?: string;
  uid?: string;
  /** metadata.generation (a policy's status says which generation it judged). */
  generation?: number;
  /** Only sluice.dev/… annotations are kept from the API. */
  annotations?: Record<string, string>;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [k: string]: unknown;
}

export type Kind = 'Namespace' | 'Pod' | 'NetworkPolicy' | 'FQDNPolicy' | 'Service' | 'EndpointSlice';
export const KINDS: readonly Kind[] = ['Namespace', 'Pod', 'NetworkPolicy', 'FQDNPolicy', 'Service', 'EndpointSlice'];

export function objectKey(o: { metadata: ObjectMeta }): string {
  return o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name;
}

/**
 * What one batch changed, net: an object upserted and deleted again within
 * the batch (or rewritten with equal content) is not in it. `upserted` holds
 * added and modified keys, `deleted` removed ones; a key is in at most one of
 * them, and `kinds` is exactly the kinds with a key in either.
 */
export interface StoreChange {
  readonly kinds: ReadonlySet<Kind>;
  readonly upserted: ReadonlyMap<Kind, ReadonlySet<string>>;
  readonly deleted: ReadonlyMap<Kind, ReadonlySet<string>>;
}

/**
 * Called once per batch that changed something. `kinds` is `change.kinds`
 * (the level-triggered view existing consumers use); `change` has the keys.
 */
export type ChangeListener = (kinds: ReadonlySet<Kind>, change: StoreChange) => void;

/**
 * Where a source delivers its objects. Every object has an owner (a file,
 * an informer): an owner changes and deletes only its own objects, and the
 * store refuses an object another owner holds (StoreConflictError).
 * Listeners hear once per outermost `batch`; an upsert or delete outside a
 * batch is a batch of its own.
 */
export interface ObjectSink {
  upsert(owner: string, obj: KubeObject): void;
  /** Removes the object if `owner` holds it; true if it did. */
  delete(owner: string, kind: Kind, key: string): boolean;
  batch<T>(fn: () => T): T;
}

/**
 * A listener threw after the store had taken the new objects: they are
 * stored (and stay stored); what failed is a consumer acting on them. Thrown
 * at the end of the batch, after every listener has heard, so the caller can
 * report the truth instead of "rejected, the previous objects stay in force".
 */
export class StoreListenerError extends Error {
  override readonly name = 'StoreListenerError';
  readonly code = 'SLUICE_STORE_LISTENER';
  readonly errors: readonly unknown[];
  constructor(errors: readonly unknown[]) {
    super(`accepted, but acting on it failed: ${errors.map((e) => (e as Error)?.message ?? String(e)).join('; ')}`, { cause: errors[0] });
    this.errors = errors;
  }
}

/**
 * An owner tried to store (or replace) an object another owner holds. The
 * store is unchanged by the refused object: one object has one source of truth.
 */
export class StoreConflictError extends Error {
  override readonly name = 'StoreConflictError';
  readonly code = 'SLUICE_STORE_CONFLICT';
  readonly kind: Kind;
  readonly key: string;
  readonly holder: string;
  constructor(kind: Kind, key: string, holder: string, owner: string) {
    super(`${kind} ${key} is held by ${holder}; ${owner} cannot change it`);
    this.kind = kind;
    this.key = key;
    this.holder = holder;
  }
}

/** An unknown kind is a programming error (sources validate kinds first). */
export class StoreKindError extends Error {
  override readonly name = 'StoreKindError';
  readonly code = 'SLUICE_STORE_KIND';
}

interface Entry {
  readonly obj: KubeObject;
  readonly owner: string;
}

export class ObjectStore implements ObjectSink {
  readonly #objects = new Map<Kind, Map<string, Entry>>(KINDS.map((k) => [k, new Map()]));
  /** owner → kind → keys it holds: what replaceOwned walks instead of the whole store. */
  readonly #owned = new Map<string, Map<Kind, Set<string>>>();
  readonly #listeners: ChangeListener[] = [];
  /** Open batches (they nest); listeners hear when the outermost one ends. */
  #depth = 0;
  /** Per kind and key touched in this batch, the object it had before the batch (undefined: none). */
  #before = new Map<Kind, Map<string, KubeObject | undefined>>();

  get<T extends KubeObject = KubeObject>(kind: Kind, key: string): T | undefined {
    return this.#kind(kind).get(key)?.obj as T | undefined;
  }

  list<T extends KubeObject = KubeObject>(kind: Kind, namespace?: string): T[] {
    const out: T[] = [];
    for (const e of this.#kind(kind).values()) if (namespace === undefined || e.obj.metadata.namespace === namespace) out.push(e.obj as T);
    return out;
  }

  /** How many objects of `kind` are stored. */
  size(kind: Kind): number {
    return this.#kind(kind).size;
  }

  /** Which source contributed the object, if any. */
  ownerOf(kind: Kind, key: string): string | undefined {
    return this.#kind(kind).get(key)?.owner;
  }

  /** The objects `owner` holds, in no particular order. */
  owned(owner: string): KubeObject[] {
    const out: KubeObject[] = [];
    for (const [kind, keys] of this.#owned.get(owner) ?? []) for (const key of keys) out.push(this.#kind(kind).get(key)!.obj);
    return out;
  }

  /**
   * Stores `obj` for `owner`. An object equal to the stored one is no change
   * (listeners do not hear of it), so replays and relists cost nothing
   * downstream. Throws StoreConflictError if another owner holds it.
   */
  upsert(owner: string, obj: KubeObject): void {
    this.batch(() => this.#upsert(owner, obj));
  }

  delete(owner: string, kind: Kind, key: string): boolean {
    return this.batch(() => this.#delete(owner, kind, key));
  }

  /**
   * Replaces the objects that `owner` contributed with `objects`, as one
   * transaction: every object is checked first (a conflict with another
   * owner changes nothing), then the owner's objects that are not in
   * `objects` are deleted and the others upserted, in one batch. Costs the
   * owner's objects plus the new ones, not the store's.
   */
  replaceOwned(owner: string, objects: readonly KubeObject[]): void {
    const next = new Map<Kind, Set<string>>();
    for (const o of objects) {
      const kind = o.kind as Kind;
      const key = objectKey(o);
      const holder = this.#kind(kind).get(key)?.owner;
      if (holder !== undefined && holder !== owner) throw new StoreConflictError(kind, key, holder, owner);
      let keys = next.get(kind);
      if (!keys) next.set(kind, (keys = new Set()));
      keys.add(key);
    }
    this.batch(() => {
      for (const [kind, keys] of [...(this.#owned.get(owner) ?? [])]) {
        for (const key of [...keys]) if (!next.get(kind)?.has(key)) this.#delete(owner, kind, key);
      }
      for (const o of objects) this.#upsert(owner, o);
    });
  }

  /**
   * Runs `fn`; listeners hear once, when the outermost batch ends, with the
   * net change. What `fn` stored before it threw stays stored and is heard.
   * Every listener hears even if another throws; then a StoreListenerError
   * reports what threw (the changes stand), unless `fn` itself threw.
   */
  batch<T>(fn: () => T): T {
    this.#depth++;
    let result: T;
    try {
      result = fn();
    } catch (err) {
      if (--this.#depth === 0) {
        try {
          this.#flush();
        } catch {
          // fn's own error is the one the caller must see; listeners already heard.
        }
      }
      throw err;
    }
    if (--this.#depth === 0) this.#flush();
    return result;
  }

  onChange(listener: ChangeListener): () => void {
    this.#listeners.push(listener);
    return () => {
      const i = this.#listeners.indexOf(listener);
      if (i >= 0) this.#listeners.splice(i, 1);
    };
  }

  #kind(kind: Kind): Map<string, Entry> {
    const m = this.#objects.get(kind);
    if (!m) throw new StoreKindError(`unknown kind ${JSON.stringify(kind)}`);
    return m;
  }

  #upsert(owner: string, obj: KubeObject): void {
    const kind = obj.kind as Kind;
    const byKey = this.#kind(kind);
    const key = objectKey(obj);
    const prev = byKey.get(key);
    if (prev && prev.owner !== owner) throw new StoreConflictError(kind, key, prev.owner, owner);
    if (prev && (prev.obj === obj || deepEqual(prev.obj, obj))) return;
    this.#touch(kind, key, prev?.obj);
    byKey.set(key, { obj: deepFreeze(obj), owner });
    let kinds = this.#owned.get(owner);
    if (!kinds) this.#owned.set(owner, (kinds = new Map()));
    let keys = kinds.get(kind);
    if (!keys) kinds.set(kind, (keys = new Set()));
    keys.add(key);
  }

  #delete(owner: string, kind: Kind, key: string): boolean {
    const byKey = this.#kind(kind);
    const prev = byKey.get(key);
    if (!prev || prev.owner !== owner) return false;
    this.#touch(kind, key, prev.obj);
    byKey.delete(key);
    const kinds = this.#owned.get(owner)!;
    const keys = kinds.get(kind)!;
    keys.delete(key);
    if (!keys.size) kinds.delete(kind);
    if (!kinds.size) this.#owned.delete(owner);
    return true;
  }

  /** Remembers what the key held before the batch, at its first touch. */
  #touch(kind: Kind, key: string, before: KubeObject | undefined): void {
    let m = this.#before.get(kind);
    if (!m) this.#before.set(kind, (m = new Map()));
    if (!m.has(key)) m.set(key, before);
  }

  #flush(): void {
    const touched = this.#before;
    this.#before = new Map();
    const kinds = new Set<Kind>();
    const upserted = new Map<Kind, Set<string>>();
    const deleted = new Map<Kind, Set<string>>();
    for (const [kind, keys] of touched) {
      const byKey = this.#kind(kind);
      for (const [key, before] of keys) {
        const now = byKey.get(key)?.obj;
        if (now === before || (now && before && deepEqual(now, before))) continue;
        const into = now ? upserted : deleted;
        let set = into.get(kind);
        if (!set) into.set(kind, (set = new Set()));
        set.add(key);
        kinds.add(kind);
      }
    }
    if (!kinds.size) return;
    const change: StoreChange = { kinds, upserted, deleted };
    const errors: unknown[] = [];
    for (const l of this.#listeners.slice()) {
      try {
        l(kinds, change);
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length) throw new StoreListenerError(errors);
  }
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

/** Structural equality of parsed manifests (plain JSON-like values). */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((v, i) => deepEqual(v, bb[i]));
  }
  const ak = Object.keys(a);
  const bo = b as Record<string, unknown>;
  if (ak.length !== Object.keys(bo).length) return false;
  return ak.every((k) => Object.prototype.hasOwnProperty.call(bo, k) && deepEqual((a as Record<string, unknown>)[k], bo[k]));
}
