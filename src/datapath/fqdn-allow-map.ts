// sluice_fqdn_v1: which destination addresses each FQDN rule allows, until
// when. The DNS proxy's learning writes it (through the agent's FqdnService),
// the datapath reads it for every new flow an FQDN rule may allow.
import { getSystemErrorName } from 'node:util';
import { BPF_ANY, NativeError, type BpfMapHandle, type BpfMapOps } from '../native/index.js';
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

const TWO_32 = 2 ** 32;

export class FqdnAllowMap {
  readonly #map: BpfMap<FqdnAllowKey, bigint>;
  /** The writes' handle: one syscall per put, one per putMany; absent with a fake addon. */
  readonly #handle: BpfMapHandle | undefined;
  // The handle's writes are encoded into these, reused (the proxy writes for
  // nearly every learned answer: nothing allocated per write). putMany's grow
  // to the largest batch.
  readonly #key = Buffer.alloc(fqdnCodec.KEY_SIZE);
  readonly #value = Buffer.alloc(fqdnCodec.SIZE);
  #keys = Buffer.alloc(0);
  #values = Buffer.alloc(0);
  #errors = new Int32Array(0);

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
    this.#value.writeBigUInt64LE(expiresNs, fqdnCodec.OFFSETS.expires_ns);
    this.#update(rule, ip);
  }

  /**
   * put() with the expiry in CLOCK_MONOTONIC milliseconds, stored in ns as
   * src/dns/clock.ts's monoMsToNs makes them (to the µs), without a BigInt.
   */
  putMs(rule: number, ip: string, expiresMs: number): void {
    writeMsAsNs(this.#value, fqdnCodec.OFFSETS.expires_ns, expiresMs);
    if (!this.#handle) return this.#map.set({ rule, ip }, fqdnCodec.decode(this.#value));
    this.#update(rule, ip);
  }

  /**
   * putMs() of rules[i], ips[i], expiresMs[i] for i < count, in one syscall
   * (BPF_MAP_UPDATE_BATCH; a plain update for one). Each is written or not on
   * its own: returns the failed ones' errors by index (SLUICE_MAP_FULL when the
   * map is full), undefined when all were written.
   */
  putMany(rules: readonly number[], ips: readonly string[], expiresMs: readonly number[], count: number): Map<number, Error> | undefined {
    if (count === 1) return this.#putOne(rules[0]!, ips[0]!, expiresMs[0]!);
    const handle = this.#handle;
    if (!handle) {
      let failed: Map<number, Error> | undefined;
      for (let i = 0; i < count; i++) {
        const err = this.#putOne(rules[i]!, ips[i]!, expiresMs[i]!)?.get(0);
        if (err) (failed ??= new Map()).set(i, err);
      }
      return failed;
    }
    if (this.#errors.length < count) {
      this.#keys = Buffer.alloc(count * fqdnCodec.KEY_SIZE);
      this.#values = Buffer.alloc(count * fqdnCodec.SIZE);
      this.#errors = new Int32Array(count);
    }
    const keys = this.#keys;
    keys.fill(0, 0, count * fqdnCodec.KEY_SIZE);
    for (let i = 0; i < count; i++) {
      keyInto(keys, i * fqdnCodec.KEY_SIZE, rules[i]!, ips[i]!);
      writeMsAsNs(this.#values, i * fqdnCodec.SIZE + fqdnCodec.OFFSETS.expires_ns, expiresMs[i]!);
    }
    if (!handle.updateBatch(keys, this.#values, count, BPF_ANY, this.#errors)) return undefined;
    const failed = new Map<number, Error>();
    for (let i = 0; i < count; i++) {
      const errno = this.#errors[i]!;
      if (errno) failed.set(i, this.#mapError(new NativeError({ code: getSystemErrorName(-errno), errno, syscall: 'bpf_map_update_batch' })));
    }
    return failed;
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

  #putOne(rule: number, ip: string, expiresMs: number): Map<number, Error> | undefined {
    try {
      this.putMs(rule, ip, expiresMs);
      return undefined;
    } catch (err) {
      if (!(err instanceof Error)) throw err;
      return new Map([[0, err]]);
    }
  }

  /** The handle's write of #value under (rule, ip). */
  #update(rule: number, ip: string): void {
    this.#key.fill(0);
    keyInto(this.#key, 0, rule, ip);
    try {
      this.#handle!.update(this.#key, this.#value, BPF_ANY);
    } catch (err) {
      throw this.#mapError(err);
    }
  }

  #mapError<E>(err: E): E | DatapathError {
    return isMapFull(err) ? new DatapathError('SLUICE_MAP_FULL', `${this.name} is full`, { cause: err }) : err;
  }
}

/** fqdnCodec.encodeKeyInto for an address as the proxy has it (a colon means IPv6). */
function keyInto(buf: Buffer, offset: number, rule: number, ip: string): void {
  fqdnCodec.encodeKeyInto(buf, offset, ip.includes(':') ? 6 : 4, rule, ip);
}

/**
 * CLOCK_MONOTONIC ms as the map's u64 ns, floored to the µs as monoMsToNs
 * (src/dns/clock.ts) does, in two u32 halves: exact while the µs fit a
 * double's integers (285 years), where the ns would not (104 days).
 */
function writeMsAsNs(buf: Buffer, offset: number, ms: number): void {
  const us = Math.max(0, Math.floor(ms * 1000));
  const usHigh = Math.floor(us / TWO_32);
  const lowNs = (us - usHigh * TWO_32) * 1000; // < 2^42: exact
  const carry = Math.floor(lowNs / TWO_32);
  buf.writeUInt32LE(lowNs - carry * TWO_32, offset);
  buf.writeUInt32LE(usHigh * 1000 + carry, offset + 4);
}
