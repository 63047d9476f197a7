// The one store every policy source feeds (the standalone directory today,
// Kubernetes informers later). Objects are read-only once stored. Consumers
// subscribe to a level-triggered "changed" signal and re-read with list/get,
// so relists and replays are harmless.

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  resourceVersion?: string;
  uid?: string;
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

export type ChangeListener = (kinds: ReadonlySet<Kind>) => void;

/**
 * A listener threw after the store had taken the new objects: they are
 * stored (and stay stored); what failed is a consumer acting on them. Thrown
 * by replaceOwned after every listener has heard, so the caller can report
 * the truth instead of "rejected, the previous objects stay in force".
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

export class ObjectStore {
  readonly #objects = new Map<Kind, Map<string, KubeObject>>(KINDS.map((k) => [k, new Map()]));
  readonly #listeners: ChangeListener[] = [];

  get<T extends KubeObject = KubeObject>(kind: Kind, key: string): T | undefined {
    return this.#objects.get(kind)!.get(key) as T | undefined;
  }

  list<T extends KubeObject = KubeObject>(kind: Kind, namespace?: string): T[] {
    const all = [...this.#objects.get(kind)!.values()] as T[];
    return namespace === undefined ? all : all.filter((o) => o.metadata.namespace === namespace);
  }

  /**
   * Replaces the objects that `owner` contributed with `objects`, in one step
   * (a file, or an informer's kind). Listeners hear once, after the swap;
   * every one of them hears even if another throws, and then a
   * StoreListenerError reports what threw (the swap stands).
   */
  replaceOwned(owner: string, objects: readonly KubeObject[]): void {
    const changed = new Set<Kind>();
    for (const [kind, byKey] of this.#objects) {
      for (const [key, o] of byKey) {
        if (ownerOf.get(o) === owner) {
          byKey.delete(key);
          changed.add(kind);
        }
      }
    }
    for (const o of objects) {
      const frozen = deepFreeze(o);
      ownerOf.set(frozen, owner);
      this.#objects.get(o.kind as Kind)!.set(objectKey(o), frozen);
      changed.add(o.kind as Kind);
    }
    if (!changed.size) return;
    const errors: unknown[] = [];
    for (const l of this.#listeners.slice()) {
      try {
        l(changed);
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length) throw new StoreListenerError(errors);
  }

  /** Which source contributed the object, if any. */
  ownerOf(kind: Kind, key: string): string | undefined {
    const o = this.#objects.get(kind)!.get(key);
    return o ? ownerOf.get(o) : undefined;
  }

  onChange(listener: ChangeListener): () => void {
    this.#listeners.push(listener);
    return () => {
      const i = this.#listeners.indexOf(listener);
      if (i >= 0) this.#listeners.splice(i, 1);
    };
  }
}

const ownerOf = new WeakMap<object, string>();

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}
