// Typed maps: one BPF map fd, its codec, and the calls of the addon over it.
// Every map the agent reads or writes goes through one of these (or through
// Datapath, which holds them), so no other module holds a map fd or encodes
// a key. The addon is a parameter: unit tests pass an in-memory fake.
import type { BpfMapOps, NativeError } from '../native/index.js';
import { DatapathError } from './errors.js';

const BPF_ANY = 0;

/** What the bytes of one map's keys and values mean. */
export interface MapCodec<K, V> {
  keySize: number;
  valueSize: number;
  encodeKey(key: K): Buffer;
  decodeKey(buf: Buffer): K;
  encodeValue(value: V): Buffer;
  decodeValue(buf: Buffer): V;
}

/** A full map says so the same way everywhere: E2BIG (hash) or ENOSPC (trie, array). */
export function isMapFull(err: unknown): boolean {
  const code = (err as NativeError | undefined)?.code;
  return code === 'E2BIG' || code === 'ENOSPC';
}

export class BpfMap<K, V> {
  readonly name: string;
  readonly #n: BpfMapOps;
  readonly #fd: number;
  readonly #codec: MapCodec<K, V>;

  constructor(addon: BpfMapOps, fd: number, name: string, codec: MapCodec<K, V>) {
    this.#n = addon;
    this.#fd = fd;
    this.name = name;
    this.#codec = codec;
  }

  get(key: K): V | undefined {
    const v = this.#n.mapLookup(this.#fd, this.#codec.encodeKey(key), this.#codec.valueSize);
    return v && this.#codec.decodeValue(v);
  }

  /** Creates or replaces; a full map is SLUICE_MAP_FULL (callers fail closed on it). */
  set(key: K, value: V): void {
    try {
      this.#n.mapUpdate(this.#fd, this.#codec.encodeKey(key), this.#codec.encodeValue(value), BPF_ANY);
    } catch (err) {
      if (isMapFull(err)) throw new DatapathError('SLUICE_MAP_FULL', `${this.name} is full`, { cause: err });
      throw err;
    }
  }

  /** Whether the key was there. */
  delete(key: K): boolean {
    return this.#n.mapDelete(this.#fd, this.#codec.encodeKey(key));
  }

  /**
   * Entry by entry (get_next_key, then lookup): an entry deleted meanwhile is
   * skipped, not an error, so the map may change under the walk.
   */
  *entries(): Generator<[K, V]> {
    const { keySize, valueSize } = this.#codec;
    for (let k = this.#n.mapGetNextKey(this.#fd, null, keySize); k; k = this.#n.mapGetNextKey(this.#fd, k, keySize)) {
      const v = this.#n.mapLookup(this.#fd, k, valueSize);
      if (v) yield [this.#codec.decodeKey(k), this.#codec.decodeValue(v)];
    }
  }

  /** Every entry in one batch call (a snapshot, for diffing). */
  dump(): Array<[K, V]> {
    const { keySize, valueSize } = this.#codec;
    const { keys, values, count } = this.#n.mapLookupBatch(this.#fd, keySize, valueSize, this.#n.mapInfo(this.#fd).maxEntries);
    const out: Array<[K, V]> = [];
    for (let i = 0; i < count; i++) {
      out.push([this.#codec.decodeKey(keys.subarray(i * keySize, (i + 1) * keySize)), this.#codec.decodeValue(values.subarray(i * valueSize, (i + 1) * valueSize))]);
    }
    return out;
  }
}
