// Keeps the datapath in line with the policy store and the endpoints: a
// change (a manifest edit, a pod added or removed) marks the state dirty
// (src/agent/reconciler.ts), and one sync re-reads everything, compiles
// what changed (a policy parsed once per stored object, each identity's
// policy once and reused while its context holds: src/policy/compile.ts
// CompileCache) and applies the difference transactionally
// (src/datapath/policy-writer.ts). Level-triggered: the trigger carries no
// data, the engine re-reads.
//
// sync() never throws. A datapath failure (a full map, a native error, a bug
// in compile) leaves the endpoints it concerns failing closed (the writer
// flips them to POLICY_FAILED), is logged once per distinct error, shows in
// `sluice status` (health()), is returned to the caller (a CNI ADD fails with
// "try again later"), and is retried by a timer until a sync succeeds. The
// store keeps the objects it was given: they are accepted, only their
// programming failed, and status says exactly that.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PolicyCondition } from '../api/index.js';
import type { EndpointRecord } from '../cni/index.js';
import { PolicyWriter, type Datapath, type ProgramTarget } from '../datapath/index.js';
import type { Logger } from '../log/index.js';
import {
  CompileCache,
  compileSteps,
  newAllocators,
  parseFqdnPolicy,
  parseNetworkPolicy,
  type AllocatorSeed,
  type Allocators,
  type CompiledPolicy,
  type EndpointInput,
  type FqdnPolicy,
  type NamedPort,
  type NetworkPolicy,
  type PolicyInput,
  type Protocol,
} from '../policy/index.js';
import { objectKey, type KubeObject, type ObjectStore } from '../store/index.js';

export function endpointKey(rec: { containerId: string; ifname: string }): string {
  return `${rec.containerId}.${rec.ifname}`;
}

interface PodSpec {
  containers?: Array<{ ports?: Array<{ name?: string; containerPort: number; protocol?: Protocol }> }>;
}

function namedPorts(pod: KubeObject | undefined): NamedPort[] {
  const spec = pod?.spec as PodSpec | undefined;
  return (spec?.containers ?? []).flatMap((c) =>
    (c.ports ?? []).filter((p) => p.name).map((p) => ({ name: p.name!, protocol: p.protocol ?? 'TCP', port: p.containerPort })),
  );
}

// A policy's Accepted condition is the API's (src/api/methods.ts).
export type { PolicyCondition } from '../api/index.js';

/** One endpoint whose policy could not be programmed: it drops everything. */
export interface SyncFailure {
  /** endpointKey() of the endpoint. */
  key: string;
  error: string;
  /** SLUICE_MAP_FULL when a map was full (CNI: try again later), else SLUICE_DATAPATH. */
  code: 'SLUICE_MAP_FULL' | 'SLUICE_DATAPATH';
}

export interface SyncReport {
  failed: SyncFailure[];
}

/** One sync as metrics see it (PolicyEngineOptions.onSynced). */
export interface SyncStats {
  /** Reading, compiling and writing the maps (up to the failure, for a sync that threw). */
  seconds: number;
  /** Endpoints whose datapath entries this sync rewrote. */
  rewritten: number;
  /** Syncs since start that rewrote something (this one included). */
  generation: number;
  /** Nothing failed. */
  ok: boolean;
}

/** `status` → policyHealth: the last sync's failures, if any. */
export interface PolicyHealth {
  ok: boolean;
  /** Since when the datapath has been failing (ISO time). */
  since?: string;
  /** What failed as a whole (a throw out of compile or the writer). */
  error?: string;
  failed: Array<{ endpoint: string; error: string }>;
}

/** While a sync fails, it is retried this often (level-triggered: it re-reads everything). */
const RETRY_MS = 2000;

/**
 * A sync's work runs in slices of at most about this long, each followed by
 * a turn of the event loop: the DNS proxy shares the thread, and a lookup
 * must not wait for a 10,000-rule compile (see docs/development.md).
 */
export const SLICE_MS = 4;

/** Runs `steps` to the end, letting the event loop turn whenever a slice has taken `sliceMs`. */
export async function runSliced<T>(steps: Generator<void, T, void>, sliceMs: number): Promise<T> {
  let until = performance.now() + sliceMs;
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
    if (performance.now() >= until) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      until = performance.now() + sliceMs;
    }
  }
}

function failureCode(err: unknown, text: string): SyncFailure['code'] {
  const code = (err as { code?: unknown })?.code;
  return code === 'SLUICE_MAP_FULL' || code === 'E2BIG' || code === 'ENOSPC' || /^(E2BIG|ENOSPC|SLUICE_MAP_FULL)\b/.test(text) ? 'SLUICE_MAP_FULL' : 'SLUICE_DATAPATH';
}

export interface PolicyEngineOptions {
  /** --dns-intercept all */
  dnsInterceptAll?: boolean;
  /** The endpoint registered under endpointKey() now (default: a scan of the list). */
  endpoint?: (key: string) => EndpointRecord | undefined;
  /**
   * This node's name: a Pod object of another node with addresses (from the
   * API) is a remote peer, in the ipcache with its labels' identity.
   */
  nodeName?: string;
  /** The node's own addresses (identity "host"); read when a sync starts. */
  nodeIps?: () => string[];
  /**
   * How long one slice of a sync may hold the event loop before it lets
   * other work (DNS proxy packets, CNI requests) run; default SLICE_MS.
   */
  sliceMs?: number;
  /** Called after every compile that reached the datapath. */
  onCompiled?: (compiled: CompiledPolicy, records: EndpointRecord[]) => void;
  /** Called after every sync, failed ones included (metrics); must not throw. */
  onSynced?: (stats: SyncStats) => void;
}

/** Last valid version of each policy of one kind: an invalid edit keeps it in force. */
class LastGood<T> {
  readonly #good = new Map<string, T>();
  /**
   * Parses by stored object: the store hands back the same object until it
   * changes, so a sync re-parses only what changed, and the compiler sees the
   * same parsed policy (its cache is keyed on it).
   */
  readonly #parsed = new WeakMap<KubeObject, T>();
  readonly conditions = new Map<string, PolicyCondition>();
  constructor(
    readonly kind: PolicyCondition['kind'],
    readonly parse: (obj: KubeObject) => T,
  ) {}

  refresh(objs: readonly KubeObject[], log: Logger): T[] {
    const seen = new Set<string>();
    for (const obj of objs) {
      const key = objectKey(obj);
      seen.add(key);
      try {
        let parsed = this.#parsed.get(obj);
        if (parsed === undefined) {
          parsed = this.parse(obj);
          this.#parsed.set(obj, parsed);
        }
        this.#good.set(key, parsed);
        this.conditions.set(key, { kind: this.kind, policy: key, accepted: true, reason: 'Valid', message: '', previousInForce: false });
      } catch (err) {
        const message = (err as Error).message;
        const previousInForce = this.#good.has(key);
        if (this.conditions.get(key)?.message !== message) {
          log.error({ kind: this.kind, policy: key, error: message }, previousInForce ? `invalid ${this.kind}: the previous version stays in force` : `invalid ${this.kind}: rejected`);
        }
        this.conditions.set(key, { kind: this.kind, policy: key, accepted: false, reason: 'Invalid', message, previousInForce });
      }
    }
    for (const key of [...this.#good.keys()]) if (!seen.has(key)) this.#good.delete(key);
    for (const key of [...this.conditions.keys()]) if (!seen.has(key)) this.conditions.delete(key);
    return [...this.#good.values()];
  }
}

export class PolicyEngine {
  readonly #store: ObjectStore;
  readonly #endpoints: () => EndpointRecord[];
  readonly #writer: PolicyWriter;
  readonly #datapath: Datapath;
  readonly #log: Logger;
  readonly #identitiesFile: string;
  readonly #alloc: Allocators;
  readonly #netpols = new LastGood<NetworkPolicy>('NetworkPolicy', (o) => parseNetworkPolicy(o as never));
  readonly #fqdnPols = new LastGood<FqdnPolicy>('FQDNPolicy', (o) => parseFqdnPolicy(o as never));
  readonly #opts: PolicyEngineOptions;
  /** Per-identity results carried from one compile to the next. */
  readonly #cache = new CompileCache();
  #compiled: CompiledPolicy | undefined;
  /** What #compiled was compiled from (`sluice explain` recompiles it with every pod an endpoint). */
  #input: PolicyInput | undefined;
  #warned = new Set<string>();
  #persisted = '';
  #health: PolicyHealth = { ok: true, failed: [] };
  /** The failures last logged, so a retry that fails the same way logs nothing new. */
  #logged = '';
  #retry: NodeJS.Timeout | undefined;
  #stopped = false;
  #generation = 0;
  /** The sync in progress: syncs never overlap (a retry waits for the running one). */
  #running: Promise<SyncReport> = Promise.resolve({ failed: [] });

  constructor(store: ObjectStore, endpoints: () => EndpointRecord[], datapath: Datapath, stateDir: string, log: Logger, opts: PolicyEngineOptions = {}) {
    this.#opts = opts;
    this.#store = store;
    this.#endpoints = endpoints;
    this.#writer = new PolicyWriter(datapath);
    this.#datapath = datapath;
    this.#log = log;
    this.#identitiesFile = join(stateDir, 'identities.json');
    let seed: AllocatorSeed = {};
    if (existsSync(this.#identitiesFile)) {
      try {
        seed = JSON.parse(readFileSync(this.#identitiesFile, 'utf8'));
      } catch (err) {
        log.warn({ err }, 'unreadable identities file: numbering afresh');
      }
    }
    this.#alloc = newAllocators(seed);
  }

  get compiled(): CompiledPolicy | undefined {
    return this.#compiled;
  }

  /** The input of the last compile that reached the datapath. */
  get lastInput(): PolicyInput | undefined {
    return this.#input;
  }

  /** Syncs since start that rewrote some endpoint's datapath entries. */
  get generation(): number {
    return this.#generation;
  }

  /** status.conditions of every policy in the store. */
  conditions(): PolicyCondition[] {
    return [...this.#netpols.conditions.values(), ...this.#fqdnPols.conditions.values()];
  }

  /**
   * Recompiles and programs the datapath; resolves once the maps hold the
   * result. Never rejects: what could not be programmed is returned (and
   * fails closed in the datapath), logged, shown by health() and retried.
   * The work runs in slices (runSliced) with turns of the event loop in
   * between; calls queue behind the sync in progress, never overlap.
   */
  sync(): Promise<SyncReport> {
    const next = this.#running.then(() => this.#sync());
    this.#running = next;
    return next;
  }

  async #sync(): Promise<SyncReport> {
    if (this.#retry) clearTimeout(this.#retry);
    this.#retry = undefined;
    const records = this.#endpoints();
    const targets: ProgramTarget[] = records.map((r) => ({ key: endpointKey(r), ifindex: r.hostIfindex, ips: r.ips.map((c) => c.split('/')[0]!) }));
    // An endpoint removed while this sync ran (its DEL deleted its entry)
    // must not be written back: asked just before each write.
    const lookup = this.#opts.endpoint ?? ((key: string) => this.#endpoints().find((r) => endpointKey(r) === key));
    const current = (t: ProgramTarget): boolean => lookup(t.key)?.hostIfindex === t.ifindex;
    const started = performance.now();
    let failed: SyncFailure[];
    let error: string | undefined;
    let rewritten = 0;
    let seconds: number | undefined;
    try {
      ({ failed, error, rewritten, seconds } = await this.#syncOnce(records, targets, current));
    } catch (err) {
      // Compile or the writer threw: nothing says which endpoint is right,
      // so every endpoint fails closed until a sync succeeds.
      const text = `${(err as { code?: string })?.code ?? ''} ${(err as Error)?.message ?? String(err)}`.trim();
      const code = failureCode(err, text);
      error = text;
      failed = targets.map((t) => ({ key: t.key, error: text, code }));
      try {
        this.#writer.failClosed(targets.filter(current));
      } catch (again) {
        this.#log.error({ err: again }, 'could not flip the endpoints to policy-failed either; endpoints without an entry drop everything');
      }
    }
    this.#report(failed, error);
    if (rewritten > 0) this.#generation++;
    this.#opts.onSynced?.({ seconds: seconds ?? (performance.now() - started) / 1000, rewritten, generation: this.#generation, ok: !failed.length && !error });
    return { failed };
  }

  /** Resolves once no sync is running or queued. */
  async idle(): Promise<void> {
    await this.#running;
  }

  /** Stops the retry timer (agent stop). */
  stop(): void {
    this.#stopped = true;
    if (this.#retry) clearTimeout(this.#retry);
  }

  health(): PolicyHealth {
    return this.#health;
  }

  #report(failed: SyncFailure[], error: string | undefined): void {
    if (!failed.length && !error) {
      if (!this.#health.ok) this.#log.info('policy programmed again: every endpoint is enforcing its policy');
      this.#health = { ok: true, failed: [] };
      this.#logged = '';
      return;
    }
    this.#health = {
      ok: false,
      since: this.#health.since ?? new Date().toISOString(),
      ...(error ? { error } : {}),
      failed: failed.map((f) => ({ endpoint: f.key, error: f.error })),
    };
    const text = JSON.stringify([error, failed.map((f) => [f.key, f.error])]);
    if (text !== this.#logged) {
      if (error) this.#log.error({ error, endpoints: failed.length }, failed.length ? 'programming the datapath failed: every endpoint drops all traffic until a sync succeeds' : 'policy programmed, but acting on it failed; retrying');
      for (const f of failed.filter((f) => f.error !== error)) this.#log.error({ endpoint: f.key, error: f.error }, 'policy could not be programmed: the endpoint drops all traffic until it can');
      this.#logged = text;
    }
    if (!this.#stopped) {
      this.#retry = setTimeout(() => void this.sync(), RETRY_MS);
      this.#retry.unref();
    }
  }

  async #syncOnce(records: EndpointRecord[], targets: ProgramTarget[], current: (t: ProgramTarget) => boolean): Promise<{ failed: SyncFailure[]; error?: string; rewritten: number; seconds: number }> {
    const started = process.hrtime.bigint();
    const namespaces = new Map(this.#store.list('Namespace').map((ns) => [ns.metadata.name, ns.metadata.labels ?? {}]));
    const endpoints: EndpointInput[] = records.map((rec) => {
      const ns = rec.pod.namespace ?? '';
      const pod = rec.pod.name ? this.#store.get('Pod', `${ns}/${rec.pod.name}`) : undefined;
      return {
        key: endpointKey(rec),
        namespace: ns,
        name: rec.pod.name ?? rec.containerId,
        ips: rec.ips.map((c) => c.split('/')[0]!),
        labels: pod?.metadata.labels ?? {},
        namedPorts: namedPorts(pod),
      };
    });
    const nodeIps = this.#opts.nodeIps?.() ?? [];
    const sliceMs = this.#opts.sliceMs ?? SLICE_MS;
    const input = {
      namespaces,
      endpoints,
      remotePods: this.#remotePods(),
      policies: this.#netpols.refresh(this.#store.list('NetworkPolicy'), this.#log),
      fqdnPolicies: this.#fqdnPols.refresh(this.#store.list('FQDNPolicy'), this.#log),
      dnsInterceptAll: this.#opts.dnsInterceptAll,
      nodeIps,
    };
    const compiled = await runSliced(compileSteps(input, this.#alloc, this.#cache), sliceMs);
    const compiledAt = process.hrtime.bigint();
    const report = await runSliced(this.#writer.applySteps(compiled, targets, current), sliceMs);
    const writtenAt = process.hrtime.bigint();
    this.#compiled = compiled;
    this.#input = input;
    this.#persistIdentities();
    let derived: string | undefined;
    try {
      this.#opts.onCompiled?.(compiled, records);
    } catch (err) {
      // The policy is in force; what failed is deriving from it (e.g. the
      // FQDN allows: a full map). Reported and retried, nothing opens.
      derived = `after programming: ${(err as { code?: string })?.code ?? ''} ${(err as Error)?.message ?? String(err)}`.replace(/: +/, ': ').trim();
    }
    // Logged once each, as invalid policies are: every sync recompiles.
    for (const w of compiled.warnings) if (!this.#warned.has(w)) this.#log.warn(w);
    this.#warned = new Set(compiled.warnings);
    const ms = (from: bigint, to: bigint) => Math.round(Number(to - from) / 1e5) / 10;
    if (report.rewritten > 0) {
      const done = process.hrtime.bigint();
      // Where a sync's time went: reading + compiling, the maps, the rest (identities file, FQDN allows).
      const phases = { compileMs: ms(started, compiledAt), writeMs: ms(compiledAt, writtenAt), afterMs: ms(writtenAt, done) };
      this.#log.info({ rewritten: report.rewritten, entries: report.entries, identities: compiled.identities.size, ms: ms(started, done), ...phases }, 'policy programmed');
    }
    return {
      failed: report.failed.map((f) => ({ key: f.key, error: f.error, code: failureCode(f, f.error) })),
      error: derived,
      rewritten: report.rewritten,
      seconds: Number(writtenAt - started) / 1e9,
    };
  }

  /**
   * Pods of other nodes, as the API reports them: running, with addresses,
   * not on the host's network (their address is their node's). A local
   * pod's object never counts (it is an endpoint, or not yet one).
   */
  #remotePods(): Array<Omit<EndpointInput, 'key'>> {
    const self = this.#opts.nodeName;
    if (!self) return [];
    const out: Array<Omit<EndpointInput, 'key'>> = [];
    for (const pod of this.#store.list('Pod')) {
      const spec = pod.spec as { nodeName?: string; hostNetwork?: boolean } | undefined;
      const ips = ((pod.status as { podIPs?: Array<{ ip: string }> } | undefined)?.podIPs ?? []).map((p) => p.ip);
      if (!ips.length || spec?.hostNetwork || !spec?.nodeName || spec.nodeName === self) continue;
      out.push({ namespace: pod.metadata.namespace ?? '', name: pod.metadata.name, ips, labels: pod.metadata.labels ?? {}, namedPorts: namedPorts(pod) });
    }
    return out;
  }

  /**
   * After the first sync of a start-up: drop what an earlier agent left,
   * except the policy generations the entries of `keepIfindexes` point at
   * (endpoints whose record is quarantined keep the policy they had).
   */
  collectGarbage(keepIfindexes: Iterable<number> = []): void {
    const keep = new Set<number>();
    for (const ifindex of keepIfindexes) {
      const policyId = this.#datapath.getEndpoint(ifindex)?.policyId;
      if (policyId) keep.add(policyId);
    }
    const n = this.#writer.collectGarbage(keep);
    if (n) this.#log.info({ entries: n }, 'removed stale policy entries');
  }

  #persistIdentities(): void {
    const text = JSON.stringify({ pods: this.#alloc.pods.snapshot(), cidrs: this.#alloc.cidrs.snapshot(), fqdnRules: this.#alloc.fqdnRules.snapshot() });
    if (text === this.#persisted) return;
    writeFileSync(`${this.#identitiesFile}.tmp`, text);
    renameSync(`${this.#identitiesFile}.tmp`, this.#identitiesFile);
    this.#persisted = text;
  }
}
