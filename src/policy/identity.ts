// Stable numeric identities. A number, once given to a key, stays with it for
// as long as the key exists (and across restarts, when the caller persists
// `snapshot()`), so a recompile changes only what really changed.

/** Reserved peers. 0 is the wildcard ("any peer") in policy keys. */
export const ID_ANY = 0;
export const ID_HOST = 1;
export const POD_ID_MIN = 256;
export const POD_ID_MAX = 0x00ff_ffff;
export const CIDR_ID_MIN = 0x0100_0000;
export const CIDR_ID_MAX = 0x7fff_ffff;
/** FQDNPolicy rules: the peer in their policy entries, the key of their learned addresses. */
export const FQDN_ID_MIN = 0x8000_0000;
export const FQDN_ID_MAX = 0x8fff_ffff;

export class IdentityAllocator {
  readonly #byKey = new Map<string, number>();
  readonly #used = new Set<number>();
  readonly #min: number;
  readonly #max: number;
  #next: number;

  constructor(min: number, max: number, seed: Iterable<[string, number]> = []) {
    this.#min = min;
    this.#max = max;
    this.#next = min;
    for (const [k, id] of seed) {
      if (id < min || id > max || this.#used.has(id)) continue;
      this.#byKey.set(k, id);
      this.#used.add(id);
    }
  }

  get(key: string): number {
    const have = this.#byKey.get(key);
    if (have !== undefined) return have;
    for (let tries = 0; tries <= this.#max - this.#min; tries++) {
      const id = this.#next;
      this.#next = id >= this.#max ? this.#min : id + 1;
      if (this.#used.has(id)) continue;
      this.#byKey.set(key, id);
      this.#used.add(id);
      return id;
    }
    throw new Error('identity space exhausted');
  }

  /** Forgets every key not in `live`. */
  retain(live: ReadonlySet<string>): void {
    for (const [k, id] of this.#byKey) {
      if (live.has(k)) continue;
      this.#byKey.delete(k);
      this.#used.delete(id);
    }
  }

  snapshot(): Array<[string, number]> {
    return [...this.#byKey];
  }
}
