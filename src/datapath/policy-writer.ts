// Programs compiled policy into the maps, transactionally from the
// datapath's point of view:
//
//   1. an endpoint whose entries changed gets them written under a fresh
//      policy_id, which no packet consults yet;
//   2. one update of its endpoint entry flips identity, flags and policy_id
//      at once (a single map update is atomic for the programs);
//   3. the ipcache and the ipBlock prefixes are brought up to date;
//   4. the old generation's entries are deleted.
//
// So a packet is judged by the old policy or the new one, never by a mix.
// Identities that exist only in the new state are unknown to the old
// entries, and vice versa: during the swap that can only deny.
//
// One exception, for an edit that changes only an endpoint's entries (same
// identity, flags, FQDN rules and addresses) whose generation nobody else
// uses, and whose new entries are no live generation's: the generation is
// changed in place, its added keys written first and its removed keys
// deleted in step 4. In between, the endpoint allows the union of old and
// new, so a packet is allowed only if the old or the new policy allows it:
// never what both deny. It costs the entries that changed, not all of them
// (a one-rule edit among 13,000 entries). If the added keys cannot be
// written, they are rolled back and the endpoint fails closed, as above. If entries
// cannot be written (map full), the endpoint is flipped to POLICY_FAILED and
// drops everything: fail closed, reported by the caller.
//
// A failure anywhere part-way never throws out of apply and never leaks: the
// new generation's entries are rolled back, the old generations waiting to
// be deleted stay on a list that the next apply retries, and the endpoints
// concerned end POLICY_FAILED (every endpoint, when the ipcache or the
// ipBlock prefixes could not be brought up to date: a half-updated ipcache
// could judge a peer by its old identity). A failed endpoint is rewritten by
// the next apply whatever changed, so a retry can recover it.
import { createHash } from 'node:crypto';
import { runSteps, type CompiledPolicy, type EndpointPolicy, type PolicyEntry } from '../policy/index.js';
import type { BpfAddon, NativeError } from '../native/index.js';
import * as endpointCodec from './codec/endpoint.js';
import * as fqdnCodec from './codec/fqdn.js';
import * as ipcacheCodec from './codec/ipcache.js';
import * as policyCodec from './codec/policy.js';
import type { Datapath } from './datapath.js';
import { MAP_CIDR, MAP_ENDPOINTS, MAP_FQDN_RULES, MAP_IPCACHE, MAP_POLICY } from './datapath.js';
import { DIR_FROM_POD, DIR_TO_POD } from './codec/metrics.js';

const BPF_ANY = 0;

export interface ProgramTarget {
  /** Endpoint key in the compiled policy. */
  key: string;
  ifindex: number;
  /** The pod's own addresses: the only sources its packets may carry. */
  ips: readonly string[];
}

export interface ApplyReport {
  /** Endpoints whose policy generation was rewritten. */
  rewritten: number;
  /** Endpoints that could not be programmed and now drop everything. */
  failed: Array<{ key: string; error: string }>;
  entries: number;
}

/**
 * One policy generation: the trie keys (and FQDN rule list) under one
 * policy_id. Endpoints with identical entries point at the same one (the
 * endpoint entry carries identity and flags, the generation only what is
 * allowed); it is deleted once no endpoint points at it any more.
 */
interface Generation {
  policyId: number;
  digest: string;
  keys: Buffer[];
  /** keys[i] without its policy_id, as hex: what an in-place change compares. */
  hex: string[];
  /** Whether a sluice_fqdn_rules entry was written under policyId. */
  fqdnRules: boolean;
  /** Endpoint keys whose entry points at it. */
  users: Set<string>;
}

interface Programmed {
  policyId: number;
  signature: string;
  /** ifindex, addresses, identity, flags and FQDN rules: what must hold for an in-place change of the entries. */
  head?: string;
  /** Absent while the endpoint fails closed (policy_id 0). */
  gen?: Generation;
  endpoint: Buffer;
}

/** Flags for the endpoint entry from its compiled policy. */
function flagsOf(p: EndpointPolicy): number {
  return (
    (p.ingressIsolated ? endpointCodec.FLAG_INGRESS_ISOLATED : 0) |
    (p.egressIsolated ? endpointCodec.FLAG_EGRESS_ISOLATED : 0) |
    (p.ingressAudit ? endpointCodec.FLAG_INGRESS_AUDIT : 0) |
    (p.egressAudit ? endpointCodec.FLAG_EGRESS_AUDIT : 0) |
    (p.dnsIntercept ? endpointCodec.FLAG_DNS_INTERCEPT : 0) |
    (p.fqdnRules.length ? endpointCodec.FLAG_FQDN : 0)
  );
}

/**
 * The endpoint's trie keys with policy_id 0, deduplicated. The keys of a
 * generation are these with its id stamped in, so one encoding serves both
 * the change check and the write.
 */
function* encodeEntries(p: EndpointPolicy): Generator<void, { generic: Buffer[]; hex: string[] }, void> {
  const seen = new Set<string>();
  const generic: Buffer[] = [];
  const hex: string[] = [];
  let n = 0;
  for (const e of p.entries) {
    if (++n % ENCODE_STEP === 0) yield;
    const enc = entryKeys(e);
    enc.hex.forEach((h, i) => {
      if (seen.has(h)) return;
      seen.add(h);
      generic.push(enc.bufs[i]!);
      hex.push(h);
    });
  }
  return { generic, hex };
}

/**
 * One entry's trie keys (policy_id 0), by entry object: the compiler hands
 * out the same entry objects again for the policies an edit left alone, so
 * an edit re-encodes only what it changed.
 */
const entryEncodings = new WeakMap<PolicyEntry, { bufs: Buffer[]; hex: string[] }>();

function entryKeys(e: PolicyEntry): { bufs: Buffer[]; hex: string[] } {
  let enc = entryEncodings.get(e);
  if (!enc) {
    const bufs = policyCodec.encodeKeys({
      policyId: 0,
      peer: e.peer,
      direction: e.direction === 'egress' ? DIR_FROM_POD : DIR_TO_POD,
      protocol: e.protocol,
      portMin: e.portMin,
      portMax: e.portMax,
    });
    enc = { bufs, hex: bufs.map((b) => b.toString('hex')) };
    entryEncodings.set(e, enc);
  }
  return enc;
}

/** One compiled policy's encoding and the digest its generations are compared by. */
interface Encoded {
  generic: Buffer[];
  /** generic as hex. */
  hex: string[];
  /** FQDN rules and every trie key: equal digests, one generation serves both. */
  digest: string;
}

/**
 * Encodings by compiled policy object. The compiler hands every endpoint of
 * an identity the same object, and the same object again while nothing it
 * depends on changed (src/policy/compile.ts CompileCache), so an unchanged
 * endpoint is recognised without encoding its entries again.
 */
const encodings = new WeakMap<EndpointPolicy, Encoded>();

function* encoded(p: EndpointPolicy): Generator<void, Encoded, void> {
  let e = encodings.get(p);
  if (!e) {
    const { generic, hex } = yield* encodeEntries(p);
    yield;
    const hash = createHash('sha256').update(`${p.fqdnRules.join(',')}|`);
    for (const h of [...hex].sort()) hash.update(h).update(',');
    e = { generic, hex, digest: hash.digest('hex') };
    encodings.set(p, e);
  }
  return e;
}

function withPolicyId(keys: readonly Buffer[], policyId: number): Buffer[] {
  return keys.map((k) => {
    const b = Buffer.from(k);
    b.writeUInt32LE(policyId, policyCodec.KEY_OFFSETS.policy_id);
    return b;
  });
}

function deleteQuietly(n: BpfAddon, fd: number, key: Buffer): void {
  try {
    n.mapDelete(fd, key);
  } catch {
    // already gone
  }
}

/**
 * Deletes `keys` from a map: one batch, or key by key when the batch stops
 * part-way (a key already gone ends a batch delete). Returns the keys that
 * could not be deleted for another reason than being gone.
 */
function deleteKeys(n: BpfAddon, fd: number, keys: readonly Buffer[]): Buffer[] {
  if (!keys.length) return [];
  try {
    n.mapDeleteBatch(fd, Buffer.concat(keys), keys.length);
    return [];
  } catch {
    const left: Buffer[] = [];
    for (const k of keys) {
      try {
        n.mapDelete(fd, k);
      } catch (err) {
        if ((err as NativeError).code !== 'ENOENT') left.push(k);
      }
    }
    return left;
  }
}

function errorText(err: unknown): string {
  return `${(err as NativeError)?.code ?? ''} ${(err as Error)?.message ?? String(err)}`.trim();
}

/** Recorded for an endpoint that fails closed: matches no signature, so the next apply rewrites it. */
function failedState(endpoint: Buffer): Programmed {
  return { policyId: 0, signature: '', endpoint };
}

export class PolicyWriter {
  readonly #dp: Datapath;
  /** The datapath's addon (real, or the fake in unit tests). */
  readonly #n: BpfAddon;
  readonly #programmed = new Map<string, Programmed>();
  /** Live generations by digest: an endpoint whose entries equal one's points at it. */
  readonly #generations = new Map<string, Generation>();
  #ipcache = new Map<string, number>();
  #cidrs = new Map<string, number>();
  #nextPolicyId = 1;
  /** Old generations' entries still to delete (a failed delete is retried by the next apply). */
  #stale: Buffer[] = [];
  #staleRules: number[] = [];

  constructor(dp: Datapath) {
    this.#dp = dp;
    this.#n = dp.bpf;
    // Never reuse a generation a pinned endpoint entry may still point at.
    for (const ep of dp.listEndpoints().values()) this.#nextPolicyId = Math.max(this.#nextPolicyId, (ep.policyId ?? 0) + 1);
    // Start from what the pinned maps hold, so the first apply diffs
    // against reality instead of flushing.
    this.#ipcache = dp.dumpIpcache();
    this.#cidrs = dp.dumpCidrs();
  }

  apply(compiled: CompiledPolicy, targets: readonly ProgramTarget[]): ApplyReport {
    return runSteps(this.applySteps(compiled, targets));
  }

  /**
   * apply() in steps: it yields after each endpoint it wrote and every few
   * hundred ipcache or prefix updates, so a caller can let other work run in
   * between (the kernel sees the same sequence of map updates either way).
   * `wanted` is asked, just before a target is written, whether it still
   * exists: one removed meanwhile (its entry already deleted by its DEL) is
   * skipped and released rather than written back. Nothing else may call
   * into this writer until the generator is done.
   */
  *applySteps(compiled: CompiledPolicy, targets: readonly ProgramTarget[], wanted?: (t: ProgramTarget) => boolean): Generator<void, ApplyReport, void> {
    const n = this.#n;
    const policyFd = this.#dp.mapFd(MAP_POLICY);
    const report: ApplyReport = { rewritten: 0, failed: [], entries: 0 };
    const rulesFd = this.#dp.mapFd(MAP_FQDN_RULES);
    const stale = this.#stale;
    const staleRules = this.#staleRules;
    const live = new Set<string>();

    let worked = 0;
    for (const t of targets) {
      if (report.rewritten + report.failed.length !== worked) {
        worked = report.rewritten + report.failed.length;
        yield;
      }
      const p = compiled.endpoints.get(t.key);
      if (!p) continue;
      // Encoding may take steps: whether the target still exists is asked after it.
      const { generic, hex, digest } = yield* encoded(p);
      if (wanted && !wanted(t)) continue;
      live.add(t.key);
      const head = `${t.ifindex}|${t.ips.join(',')}|${p.identity}|${flagsOf(p)}|${p.fqdnRules.join(',')}`;
      const signature = `${t.ifindex}|${t.ips.join(',')}|${p.identity}|${flagsOf(p)}|${digest}`;
      const prev = this.#programmed.get(t.key);
      if (prev && prev.signature === signature) {
        report.entries += prev.gen?.keys.length ?? 0;
        continue;
      }
      // Only the entries changed, in a generation of its own: change it in place.
      const own = prev?.gen;
      if (own && prev.head === head && own.users.size === 1 && own.users.has(t.key) && !this.#generations.has(digest)) {
        const error = this.#delta(own, generic, hex, digest, policyFd, stale);
        if (error === undefined) {
          this.#programmed.set(t.key, { ...prev, signature });
          report.rewritten++;
          report.entries += own.keys.length;
          continue;
        }
        // The added keys are rolled back: the endpoint fails closed, its generation goes.
        report.failed.push({ key: t.key, error });
        const failedEntry = endpointCodec.encode({ identity: p.identity, flags: endpointCodec.FLAG_POLICY_FAILED, policyId: 0, ips: t.ips });
        if (this.#flipFailed(t.ifindex, failedEntry)) {
          this.#release(t.key, prev, stale, staleRules);
          this.#programmed.set(t.key, failedState(failedEntry));
        } else {
          this.#programmed.set(t.key, { ...prev, signature: '' });
        }
        continue;
      }
      // An endpoint with the same entries already has them in force: point
      // at its generation. Else write a new one, which no packet consults yet.
      let gen = this.#generations.get(digest);
      const fresh = !gen;
      let endpoint: Buffer;
      if (gen) {
        endpoint = endpointCodec.encode({ identity: p.identity, flags: flagsOf(p), policyId: gen.policyId, ips: t.ips });
      } else {
        const policyId = this.#nextPolicyId++;
        const keys = withPolicyId(generic, policyId);
        let fqdnRules = false;
        try {
          // In batches: the generation is no endpoint's yet, so a turn of the event loop between them is harmless.
          for (let i = 0; i < keys.length; i += WRITE_STEP) {
            if (i) yield;
            const chunk = keys.slice(i, i + WRITE_STEP);
            n.mapUpdateBatch(policyFd, Buffer.concat(chunk), Buffer.concat(chunk.map(() => policyCodec.encode(0))), chunk.length, BPF_ANY);
          }
          if (p.fqdnRules.length) {
            fqdnRules = true;
            n.mapUpdate(rulesFd, fqdnCodec.encodeRulesKey(policyId), fqdnCodec.encodeRules(p.fqdnRules), BPF_ANY);
          }
          gen = { policyId, digest, keys, hex, fqdnRules, users: new Set() };
          endpoint = endpointCodec.encode({ identity: p.identity, flags: flagsOf(p), policyId, ips: t.ips });
        } catch (err) {
          // Roll back what made it in; the endpoint drops everything.
          stale.push(...deleteKeys(this.#n, policyFd, keys));
          if (fqdnRules) deleteQuietly(this.#n, rulesFd, fqdnCodec.encodeRulesKey(policyId));
          endpoint = endpointCodec.encode({ identity: p.identity, flags: endpointCodec.FLAG_POLICY_FAILED, policyId: 0, ips: t.ips });
          report.failed.push({ key: t.key, error: errorText(err) });
        }
      }
      // A fresh generation is written in steps: asked again just before the switch.
      if (fresh && wanted && !wanted(t)) {
        if (gen) {
          stale.push(...gen.keys);
          if (gen.fqdnRules) deleteQuietly(this.#n, rulesFd, fqdnCodec.encodeRulesKey(gen.policyId));
        }
        live.delete(t.key);
        continue;
      }
      try {
        n.mapUpdate(this.#dp.mapFd(MAP_ENDPOINTS), endpointCodec.encodeKey(t.ifindex), endpoint, BPF_ANY);
      } catch (err) {
        // The entry was not switched (a full endpoint map for a new one): no
        // packet uses a generation written for it, so that goes; a new
        // endpoint has no entry and its programs drop everything, an old one
        // is flipped to POLICY_FAILED if that can be written, else keeps its
        // generation recorded so it is neither leaked nor deleted under its feet.
        if (gen && fresh) {
          stale.push(...deleteKeys(this.#n, policyFd, gen.keys));
          if (gen.fqdnRules) deleteQuietly(this.#n, rulesFd, fqdnCodec.encodeRulesKey(gen.policyId));
        }
        if (!report.failed.some((f) => f.key === t.key)) report.failed.push({ key: t.key, error: errorText(err) });
        const failedEntry = endpointCodec.encode({ identity: p.identity, flags: endpointCodec.FLAG_POLICY_FAILED, policyId: 0, ips: t.ips });
        if (prev && this.#flipFailed(t.ifindex, failedEntry)) {
          this.#release(t.key, prev, stale, staleRules);
          this.#programmed.set(t.key, failedState(failedEntry));
        } else if (prev) {
          this.#programmed.set(t.key, { ...prev, signature: '' });
        }
        continue;
      }
      if (gen) {
        if (fresh) this.#generations.set(digest, gen);
        gen.users.add(t.key);
      }
      // Switched: the old generation goes once nobody points at it.
      if (prev && prev.gen !== gen) this.#release(t.key, prev, stale, staleRules);
      this.#programmed.set(t.key, gen ? { policyId: gen.policyId, signature, head, gen, endpoint } : failedState(endpoint));
      report.rewritten++;
      report.entries += gen?.keys.length ?? 0;
    }
    for (const [key, prev] of this.#programmed) {
      if (live.has(key)) continue;
      this.#release(key, prev, stale, staleRules);
      this.#programmed.delete(key);
    }

    try {
      yield* this.#syncIpcache(compiled.ipcache);
      yield* this.#syncCidrs(compiled.cidrs);
    } catch (err) {
      const error = errorText(err);
      for (const t of targets) {
        if (!live.has(t.key)) continue;
        const failedEntry = endpointCodec.encode({ identity: compiled.endpoints.get(t.key)!.identity, flags: endpointCodec.FLAG_POLICY_FAILED, policyId: 0, ips: t.ips });
        this.#failOne(t, failedEntry);
        const f = report.failed.find((x) => x.key === t.key);
        if (f) f.error = error;
        else report.failed.push({ key: t.key, error });
      }
    }
    this.#stale = deleteKeys(this.#n, policyFd, stale);
    this.#staleRules = [];
    for (const id of staleRules) deleteQuietly(this.#n, rulesFd, fqdnCodec.encodeRulesKey(id));
    return report;
  }

  /**
   * Every target drops everything (POLICY_FAILED) until the next apply
   * succeeds: for a caller that cannot tell which endpoints are right.
   */
  failClosed(targets: readonly ProgramTarget[]): void {
    for (const t of targets) this.#failOne(t, endpointCodec.encode({ identity: 0, flags: endpointCodec.FLAG_POLICY_FAILED, policyId: 0, ips: t.ips }));
    this.#stale = deleteKeys(this.#n, this.#dp.mapFd(MAP_POLICY), this.#stale);
  }

  /** Flips one endpoint to POLICY_FAILED; its generation is deleted only once nothing points at it. */
  #failOne(t: ProgramTarget, failedEntry: Buffer): void {
    const prev = this.#programmed.get(t.key);
    if (this.#flipFailed(t.ifindex, failedEntry)) {
      if (prev) {
        const rules: number[] = [];
        this.#release(t.key, prev, this.#stale, rules);
        for (const id of rules) deleteQuietly(this.#n, this.#dp.mapFd(MAP_FQDN_RULES), fqdnCodec.encodeRulesKey(id));
      }
      this.#programmed.set(t.key, failedState(failedEntry));
    } else if (prev) {
      this.#programmed.set(t.key, { ...prev, signature: '' });
    }
  }

  /**
   * Changes a generation's entries in place to `generic` (stamped with its
   * policy_id): the added keys are written now, the removed ones queued on
   * `stale` (deleted once the ipcache is up to date, like an old
   * generation). Returns the error when the added keys could not be
   * written; they are rolled back then and the generation is as it was.
   */
  #delta(gen: Generation, generic: readonly Buffer[], hex: readonly string[], digest: string, policyFd: number, stale: Buffer[]): string | undefined {
    const had = new Map(gen.hex.map((h, i) => [h, gen.keys[i]!]));
    const want = new Set(hex);
    const keys: Buffer[] = [];
    const added: Buffer[] = [];
    hex.forEach((h, i) => {
      let k = had.get(h);
      if (!k) {
        k = withPolicyId([generic[i]!], gen.policyId)[0]!;
        added.push(k);
      }
      keys.push(k);
    });
    try {
      if (added.length) this.#n.mapUpdateBatch(policyFd, Buffer.concat(added), Buffer.concat(added.map(() => policyCodec.encode(0))), added.length, BPF_ANY);
    } catch (err) {
      stale.push(...deleteKeys(this.#n, policyFd, added));
      return errorText(err);
    }
    // A key of this generation whose delete failed earlier, waiting on the
    // stale list for a retry, may be wanted again now: it must not go.
    if (stale.length) {
      const off = policyCodec.KEY_OFFSETS.policy_id;
      const keep = stale.filter((k) => {
        if (k.readUInt32LE(off) !== gen.policyId) return true;
        const g = Buffer.from(k);
        g.writeUInt32LE(0, off);
        return !want.has(g.toString('hex'));
      });
      stale.length = 0;
      for (const k of keep) stale.push(k);
    }
    gen.hex.forEach((h, i) => {
      if (!want.has(h)) stale.push(gen.keys[i]!);
    });
    if (this.#generations.get(gen.digest) === gen) this.#generations.delete(gen.digest);
    gen.keys = keys;
    gen.hex = [...hex];
    gen.digest = digest;
    this.#generations.set(digest, gen);
    return undefined;
  }

  /** `key` no longer points at its generation; the last one out queues its entries for deletion. */
  #release(key: string, prev: Programmed, stale: Buffer[], staleRules: number[]): void {
    const gen = prev.gen;
    if (!gen) return;
    gen.users.delete(key);
    if (gen.users.size) return;
    if (this.#generations.get(gen.digest) === gen) this.#generations.delete(gen.digest);
    stale.push(...gen.keys);
    if (gen.fqdnRules) staleRules.push(gen.policyId);
  }

  #flipFailed(ifindex: number, failedEntry: Buffer): boolean {
    try {
      this.#n.mapUpdate(this.#dp.mapFd(MAP_ENDPOINTS), endpointCodec.encodeKey(ifindex), failedEntry, BPF_ANY);
      return true;
    } catch {
      return false;
    }
  }

  /** The endpoint entry last written for `key`, to re-assert on re-attach. */
  endpointEntry(key: string): Buffer | undefined {
    return this.#programmed.get(key)?.endpoint;
  }

  /**
   * Deletes every policy entry of a generation no endpoint uses: what a
   * previous agent left behind. Run once after the first apply.
   */
  collectGarbage(keep: ReadonlySet<number> = new Set()): number {
    const n = this.#n;
    const fd = this.#dp.mapFd(MAP_POLICY);
    const inUse = new Set([...[...this.#programmed.values()].map((p) => p.policyId), ...keep]);
    const dead: Buffer[] = [];
    for (let k = n.mapGetNextKey(fd, null, policyCodec.KEY_SIZE); k; k = n.mapGetNextKey(fd, k, policyCodec.KEY_SIZE)) {
      if (!inUse.has(policyCodec.decodeKey(k).policyId)) dead.push(k);
    }
    if (dead.length) n.mapDeleteBatch(fd, Buffer.concat(dead), dead.length);
    const rulesFd = this.#dp.mapFd(MAP_FQDN_RULES);
    const deadLists: Buffer[] = [];
    for (let k = n.mapGetNextKey(rulesFd, null, fqdnCodec.RULES_KEY_SIZE); k; k = n.mapGetNextKey(rulesFd, k, fqdnCodec.RULES_KEY_SIZE)) {
      if (!inUse.has(fqdnCodec.decodeRulesKey(k))) deadLists.push(k);
    }
    for (const k of deadLists) deleteQuietly(this.#n, rulesFd, k);
    return dead.length + deadLists.length;
  }

  #syncIpcache(want: ReadonlyMap<string, number>): Generator<void, void, void> {
    return syncTable(this.#n, this.#dp.mapFd(MAP_IPCACHE), this.#ipcache, want, ipcacheCodec.encodeKey);
  }

  #syncCidrs(want: ReadonlyMap<string, number>): Generator<void, void, void> {
    return syncTable(this.#n, this.#dp.mapFd(MAP_CIDR), this.#cidrs, want, ipcacheCodec.encodeCidrKey);
  }
}

/** Entries encoded between two yields of applySteps. */
const ENCODE_STEP = 2048;
/** Policy keys per batch update of a fresh generation (a yield between batches). */
const WRITE_STEP = 8192;

/** Map updates between two yields of a table sync. */
const TABLE_STEP = 256;

/**
 * Brings an address → identity map (the ipcache, the ipBlock prefixes) in
 * line with `want`. What is recorded (`have`) follows each write, so a
 * failure part-way leaves it true to the map and the next apply diffs
 * against reality.
 */
function* syncTable(n: BpfAddon, fd: number, have: Map<string, number>, want: ReadonlyMap<string, number>, encodeKey: (text: string) => Buffer): Generator<void, void, void> {
  let writes = 0;
  for (const [text, id] of want) {
    if (have.get(text) === id) continue;
    n.mapUpdate(fd, encodeKey(text), ipcacheCodec.encodeValue(id), BPF_ANY);
    have.set(text, id);
    if (++writes % TABLE_STEP === 0) yield;
  }
  for (const text of [...have.keys()]) {
    if (want.has(text)) continue;
    n.mapDelete(fd, encodeKey(text));
    have.delete(text);
    if (++writes % TABLE_STEP === 0) yield;
  }
}
