// The map fill levels, counted at most once per `maxAgeMs`: counting reads
// every entry of every map (src/datapath/map-fill.ts), too costly for each
// scrape and each `sluice status`. Callers that ask while a count runs share it.
import type { MapFill } from '../datapath/index.js';

export class MapFillCache {
  readonly #count: () => Promise<readonly MapFill[]> | undefined;
  readonly #maxAgeMs: number;
  #value: readonly MapFill[] | undefined;
  #countedAt = -Infinity;
  #running: Promise<readonly MapFill[]> | undefined;

  /** `count` answers undefined while there is nothing to count (no datapath yet). */
  constructor(count: () => Promise<readonly MapFill[]> | undefined, maxAgeMs: number) {
    this.#count = count;
    this.#maxAgeMs = maxAgeMs;
  }

  /**
   * The last count if it is fresh enough, else a new one; rejects if
   * counting fails (the next call tries again); undefined if there is
   * nothing to count yet.
   */
  get(): Promise<readonly MapFill[]> | undefined {
    if (this.#value && performance.now() - this.#countedAt < this.#maxAgeMs) return Promise.resolve(this.#value);
    if (this.#running) return this.#running;
    let counting: Promise<readonly MapFill[]> | undefined;
    try {
      counting = this.#count();
    } catch (err) {
      return Promise.reject(err);
    }
    if (!counting) return undefined;
    this.#running = counting.then(
      (value) => {
        this.#value = value;
        this.#countedAt = performance.now();
        this.#running = undefined;
        return value;
      },
      (err: unknown) => {
        this.#running = undefined;
        throw err;
      },
    );
    return this.#running;
  }
}
