// sluice_fqdn_v1: which destination addresses each FQDN rule allows, until
// when. The DNS proxy's learning writes it (through the agent's FqdnService),
// the datapath reads it for every new flow an FQDN rule may allow.
import type { BpfMapHandle, BpfMapOps } from '../native/index.js';
import * as fqdnCodec from './codec/fqdn.js';
import { DatapathError } from './errors.js';
import { BpfMap, isMapFull, type MapCodec } from './maps.js';

export interface FqdnAllowKey {
  /** The FQDN rule's identity (compiled policy's fqdnRules). */
  rule: number;
  ip: string;
}

export interface FqdnAllowEntry extends FqdnAllowKey {
  /** CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns): new flows drop after it. */
  expiresNs: bigint;
}

const codec: MapCodec<FqdnAllowKey, bigint> = {
  keySize: fqdnCodec.KEY_SIZE,
  valueSize: fqdnCodec.SIZE,
  encodeKey: (k) => fqdnCodec.encodeKey(k.rule, k.ip),
  decodeKey: fqdnCodec.decodeKey,
  encodeValue: fqdnCodec.encode,
  decodeValue: fqdnCodec.decode,
};

export class FqdnAllowMap {
  readonly #map: BpfMap<FqdnAllowKey, bigint>;
  /** put's: one syscall per write (the proxy writes per learned answer); absent with a fake addon. */
  readonly #handle: BpfMapHandle | undefined;

  constructor(addon: BpfMapOps, fd: number, name: string) {
    this.#map = new BpfMap(addon, fd, name, codec);
    this.#handle = addon.MapHandle ? new addon.MapHandle(fd) : undefined;
  }

  /** Lets go of the handle's fd (Datapath.close). */
  close(): void {
    this.#handle?.close();
  }

  get name(): string {
    return this.#map.name;
  }

  /** Allows `ip` under `rule` until `expiresNs`; SLUICE_MAP_FULL when the map is full. */
  put(rule: number, ip: string, expiresNs: bigint): void {
    if (!this.#handle) return this.#map.set({ rule, ip }, expiresNs);
    try {
      this.#handle.update(fqdnCodec.encodeKey(rule, ip), fqdnCodec.encode(expiresNs), 0 /* BPF_ANY */);
    } catch (err) {
      if (isMapFull(err)) throw new DatapathError('SLUICE_MAP_FULL', `${this.name} is full`, { cause: err });
      throw err;
    }
  }

  /** Whether there was such an allow. */
  delete(rule: number, ip: string): boolean {
    return this.#map.delete({ rule, ip });
  }

  /** When the allow of `ip` under `rule` expires, or undefined when there is none. */
  get(rule: number, ip: string): bigint | undefined {
    return this.#map.get({ rule, ip });
  }

  /** What the map holds now (a restarted agent adopts it). */
  *entries(): Generator<FqdnAllowEntry> {
    for (const [k, expiresNs] of this.#map.entries()) yield { ...k, expiresNs };
  }
}
