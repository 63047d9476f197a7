// The ipBlock prefixes of a compile, indexed for "which of them lie inside
// this CIDR?". Answering it by scanning every prefix for every ipBlock made
// ipBlock expansion cost prefixes × ipBlocks (64 million containment tests
// for 8,000 ipBlocks). Prefixes inside C are exactly those of C's family
// whose network address lies in [C.base, C.base + size(C)) and whose length
// is at least C's, so one binary search over the prefixes sorted by network
// address finds the run to look at.
//
// Answers come in the order the prefixes were added, as the scan gave them:
// the compiled entries keep their order.
import { cidrSize, cidrWithin, type Cidr } from '../net/index.js';

interface Indexed {
  prefix: Cidr;
  /** Position in insertion order. */
  order: number;
}

export class PrefixIndex {
  readonly #byFamily = new Map<number, Indexed[]>();

  /** `prefixes` in the order answers should keep. */
  constructor(prefixes: Iterable<Cidr>) {
    let order = 0;
    for (const prefix of prefixes) {
      let list = this.#byFamily.get(prefix.family);
      if (!list) this.#byFamily.set(prefix.family, (list = []));
      list.push({ prefix, order: order++ });
    }
    for (const list of this.#byFamily.values()) list.sort((a, b) => (a.prefix.base < b.prefix.base ? -1 : a.prefix.base > b.prefix.base ? 1 : a.order - b.order));
  }

  /** Every indexed prefix p with p ⊆ c, in insertion order. */
  within(c: Cidr): Cidr[] {
    const list = this.#byFamily.get(c.family);
    if (!list) return [];
    const end = c.base + cidrSize(c);
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid]!.prefix.base < c.base) lo = mid + 1;
      else hi = mid;
    }
    const hits: Indexed[] = [];
    for (let i = lo; i < list.length && list[i]!.prefix.base < end; i++) {
      if (list[i]!.prefix.prefixLen >= c.prefixLen) hits.push(list[i]!);
    }
    // The range test is the whole containment test; checked once more so
    // the index can never answer what the plain definition would not.
    return hits
      .filter((h) => cidrWithin(h.prefix, c))
      .sort((a, b) => a.order - b.order)
      .map((h) => h.prefix);
  }
}
