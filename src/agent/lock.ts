// Serialization for CNI requests: operations on one attachment never overlap
// (a DEL racing its own ADD), and GC runs alone (it sweeps everything that is
// not a valid attachment, which would include an ADD in flight).

export class AttachmentLocks {
  readonly #tails = new Map<string, Promise<void>>();
  #shared = 0;
  #exclusive: Promise<void> = Promise.resolve();
  #drained: Array<() => void> = [];

  /** Runs fn with the lock for `key` held (and no GC running). */
  async withKey<T>(key: string, fn: () => Promise<T>): Promise<T> {
    await this.#exclusive;
    this.#shared++;
    const prev = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.#tails.set(key, tail);
    try {
      await prev;
      return await fn();
    } finally {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
      this.#shared--;
      if (this.#shared === 0) for (const d of this.#drained.splice(0)) d();
    }
  }

  /** Runs fn once every keyed operation in flight has finished, holding off new ones. */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const before = this.#exclusive;
    let release!: () => void;
    this.#exclusive = before.then(() => new Promise<void>((r) => (release = r)));
    await before;
    if (this.#shared > 0) await new Promise<void>((r) => this.#drained.push(r));
    try {
      return await fn();
    } finally {
      release();
    }
  }
}
