// The seam between where policy comes from and the agent. A PolicySource
// (the standalone directory today, Kubernetes informers next) is started
// with the sink it feeds (the agent's ObjectStore), delivers per-object
// upserts and deletes, batched so consumers hear each coherent change once,
// says when its first full picture is in the sink, and reports its own
// status. The agent compiles nothing before every source is synced, so no
// endpoint is ever judged by a partial policy set.
import type { ObjectSink } from '../store/index.js';

export type { ObjectSink as PolicySink } from '../store/index.js';

export interface PolicySource<Status = unknown> {
  /** Names the source in logs and status ('standalone', 'kubernetes'). */
  readonly name: string;
  /**
   * Starts delivering into `sink`. Resolves once the source runs; a source
   * that cannot start at all (its directory is missing, its API unreachable
   * for good) rejects, and the agent does not start.
   */
  start(sink: ObjectSink): Promise<void>;
  /** Resolves once the sink holds the source's first full picture; rejects if it never will (start failed). */
  waitSynced(): Promise<void>;
  /** Source-specific detail (per-file state for the directory), shown by `sluice status`. */
  status(): Status;
  /** What is failing in the source right now, one line each; empty when healthy. */
  problems(): string[];
  /** Stops delivering. What it delivered stays in the sink, in force. */
  stop(): void;
}

/**
 * A promise resolved or rejected from outside, marked handled so that a
 * start failure nobody waits on is not an unhandled rejection (whoever
 * awaits it still sees the rejection).
 */
export class Deferred<T = void> {
  readonly promise: Promise<T>;
  resolve!: (v: T) => void;
  reject!: (err: unknown) => void;
  constructor() {
    this.promise = new Promise<T>((res, rej) => {
      this.resolve = res;
      this.reject = rej;
    });
    this.promise.catch(() => {});
  }
}
