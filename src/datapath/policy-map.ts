// sluice_policy_v1: the one longest-prefix trie of every endpoint's allow
// entries. Its keys come from policyCodec.encodeKeys (a port range is several
// prefixes), stamped with a generation's policy_id; every entry allows, so
// the writer deals in key sets. Batches: a generation is written and retired
// in one call each, as the transactional switch needs.
import type { BpfMapOps } from '../native/index.js';
import * as policyCodec from './codec/policy.js';
import { DatapathError } from './errors.js';
import { isMapFull } from './maps.js';

const BPF_ANY = 0;

export type PolicyKeyFields = ReturnType<typeof policyCodec.decodeKey>;

export class PolicyMap {
  readonly name: string;
  readonly #n: BpfMapOps;
  readonly #fd: number;

  constructor(addon: BpfMapOps, fd: number, name: string) {
    this.#n = addon;
    this.#fd = fd;
    this.name = name;
  }

  /** Writes trie keys (policy_id already in them), each allowing with `rule`; SLUICE_MAP_FULL when they do not fit. */
  write(keys: readonly Buffer[], rule = 0): void {
    if (!keys.length) return;
    const value = policyCodec.encode(rule);
    try {
      this.#n.mapUpdateBatch(this.#fd, Buffer.concat(keys), Buffer.concat(keys.map(() => value)), keys.length, BPF_ANY);
    } catch (err) {
      if (isMapFull(err)) throw new DatapathError('SLUICE_MAP_FULL', `${this.name} is full`, { cause: err });
      throw err;
    }
  }

  /**
   * Deletes keys: one batch, or key by key when the batch stops part-way (a
   * key already gone ends a batch delete). Returns the keys that could not be
   * deleted for another reason than being gone (the caller retries them).
   */
  delete(keys: readonly Buffer[]): Buffer[] {
    if (!keys.length) return [];
    try {
      this.#n.mapDeleteBatch(this.#fd, Buffer.concat(keys), keys.length);
      return [];
    } catch {
      const left: Buffer[] = [];
      for (const k of keys) {
        try {
          this.#n.mapDelete(this.#fd, k);
        } catch (err) {
          if ((err as { code?: string }).code !== 'ENOENT') left.push(k);
        }
      }
      return left;
    }
  }

  /** The rule an exact trie key allows with, or undefined when the key is not in the map. */
  get(key: Buffer): number | undefined {
    const v = this.#n.mapLookup(this.#fd, key, policyCodec.SIZE);
    return v?.readUInt32LE(policyCodec.OFFSETS.rule);
  }

  /** Every key in the map (a restarted agent finds generations no endpoint uses). */
  *keys(): Generator<{ raw: Buffer; key: PolicyKeyFields }> {
    for (let k = this.#n.mapGetNextKey(this.#fd, null, policyCodec.KEY_SIZE); k; k = this.#n.mapGetNextKey(this.#fd, k, policyCodec.KEY_SIZE)) {
      yield { raw: k, key: policyCodec.decodeKey(k) };
    }
  }
}
