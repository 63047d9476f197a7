// What the reflectors, the source and the status writer need from the
// Kubernetes API, and its error, without the client library: only
// client.ts (loaded in Kubernetes mode only, a bundle of its own) imports
// @kubernetes/client-node.
/** A failed request: `status` is the HTTP status (0: no answer at all). */
export class KubeApiError extends Error {
  override readonly name = 'KubeApiError';
  readonly code = 'SLUICE_KUBE_API';
  constructor(
    message: string,
    readonly status: number,
    readonly reason?: string,
  ) {
    super(message);
  }
}

export interface KubeList<T> {
  items: T[];
  metadata: { resourceVersion?: string; continue?: string };
}

/** One watch event as the API streams it. */
export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

/** What the reflector needs from the API (a fake implements it in unit tests). */
export interface KubeApi {
  /** The API server's address, for messages. */
  readonly server: string;
  get<T>(path: string, timeoutMs?: number): Promise<T>;
  /**
   * Streams a watch. `onEvent` gets each event; `onDone` is called exactly
   * once when the stream ends (null: the server closed it, as it does at
   * its timeout) or fails. Returns a function that aborts it.
   */
  watch<T>(path: string, params: Record<string, string>, onEvent: (e: WatchEvent<T>) => void, onDone: (err: unknown) => void): Promise<() => void>;
  /** A JSON merge patch (application/merge-patch+json). */
  mergePatch<T>(path: string, body: unknown, timeoutMs?: number): Promise<T>;
}

/**
 * Whether `err` is a KubeApiError (with that HTTP status, if given). By its
 * code, not `instanceof`: the client is a bundle of its own (load-client.ts),
 * so its errors are instances of that bundle's copy of the class.
 */
export function isKubeApiError(err: unknown, status?: number): err is KubeApiError {
  const e = err as { code?: unknown; status?: unknown } | null;
  return !!e && e.code === 'SLUICE_KUBE_API' && (status === undefined || e.status === status);
}
