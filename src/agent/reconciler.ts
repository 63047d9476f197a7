// One coalescing reconciler between "something changed" and the policy sync.
//
// Sources (the store) and endpoint changes (CNI ADD/DEL) only mark the state
// dirty; one sync at a time runs, soon after (on the next turn of the event
// loop, so requests already read off their sockets and file events already
// delivered are folded into the same sync), and it picks up everything
// dirtied until it starts: a burst of edits or of ADDs costs a few syncs,
// not one each. The sync is level-triggered (it re-reads the store and the
// endpoints), so nothing about what changed has to be carried here.
//
// A caller that must know its change is in force (a CNI ADD: its endpoint
// entry must be written before the programs are attached) calls request():
// it resolves with the report of the first sync that starts after the call,
// the one whose generation includes the change, and no later one. What that
// report says failed stays the engine's to report and retry (status, logs,
// CNI code 11); the reconciler only carries it to the waiter.

/** What one sync reports: the endpoints that could not be programmed (they fail closed). */
export interface SyncOutcome {
  failed: ReadonlyArray<{ key: string; error: string; code: 'SLUICE_MAP_FULL' | 'SLUICE_DATAPATH' }>;
}

export interface Syncable<R extends SyncOutcome = SyncOutcome> {
  /** Brings the datapath in line with the current state; reports, never throws (a throw rejects the waiters). */
  sync(): R | Promise<R>;
}

/** Runs `fn` soon, after whatever the event loop already has in hand. */
export type Defer = (fn: () => void) => void;

const nextTurn: Defer = (fn) => void setImmediate(fn);

interface Waiter<R> {
  resolve: (report: R) => void;
  reject: (err: unknown) => void;
}

/** Thrown to waiters when the reconciler stops before their sync ran. */
export class ReconcilerStoppedError extends Error {
  readonly code = 'SLUICE_STOPPING';
  constructor() {
    super('the agent is stopping: the change was not programmed');
  }
}

export class Reconciler<R extends SyncOutcome = SyncOutcome> {
  readonly #target: Syncable<R>;
  readonly #defer: Defer;
  #dirty = false;
  #scheduled = false;
  #running = false;
  #stopped = false;
  /** Waiting for the next sync to start (it will include their change). */
  #waiters: Array<Waiter<R>> = [];
  /** Syncs run so far (bursts coalesce: fewer syncs than changes). */
  syncs = 0;

  constructor(target: Syncable<R>, defer: Defer = nextTurn) {
    this.#target = target;
    this.#defer = defer;
  }

  /** Something changed; a sync will pick it up. */
  markDirty(): void {
    if (this.#stopped) return;
    this.#dirty = true;
    this.#schedule();
  }

  /** Marks dirty and resolves with the report of the sync that includes this change. */
  request(): Promise<R> {
    if (this.#stopped) return Promise.reject(new ReconcilerStoppedError());
    return new Promise<R>((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      this.markDirty();
    });
  }

  /** No more syncs; whoever still waits is told the change was not programmed. */
  stop(): void {
    this.#stopped = true;
    for (const w of this.#waiters.splice(0)) w.reject(new ReconcilerStoppedError());
  }

  #schedule(): void {
    // A running sync reschedules itself when it ends if more became dirty.
    if (this.#scheduled || this.#running) return;
    this.#scheduled = true;
    this.#defer(() => void this.#run());
  }

  async #run(): Promise<void> {
    this.#scheduled = false;
    if (this.#stopped || !this.#dirty) return;
    this.#dirty = false;
    this.#running = true;
    // Everyone who asked before this sync starts is covered by it.
    const waiters = this.#waiters.splice(0);
    this.syncs++;
    try {
      const report = await this.#target.sync();
      for (const w of waiters) w.resolve(report);
    } catch (err) {
      for (const w of waiters) w.reject(err);
    } finally {
      this.#running = false;
      if (this.#dirty) this.#schedule();
    }
  }
}
