// Keeps the datapath in line with the policy store and the endpoints: every
// change (a manifest edit, a pod added or removed) recompiles everything and
// applies the difference transactionally (src/datapath/policy-writer.ts).
// Level-triggered: the trigger carries no data, the engine re-reads.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EndpointRecord } from '../cni/index.js';
import { PolicyWriter, type Datapath } from '../datapath/index.js';
import type { Logger } from '../log/index.js';
import { native } from '../native/index.js';
import {
  compile,
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

/** status.conditions[type=Accepted] of one policy, as the API server would hold it. */
export interface PolicyCondition {
  kind: 'NetworkPolicy' | 'FQDNPolicy';
  policy: string;
  accepted: boolean;
  reason: 'Valid' | 'Invalid';
  message: string;
  /** Invalid now, but an earlier valid version is in force. */
  previousInForce: boolean;
}

export interface PolicyEngineOptions {
  /** --dns-intercept all */
  dnsInterceptAll?: boolean;
  /** Called after every compile that reached the datapath. */
  onCompiled?: (compiled: CompiledPolicy, records: EndpointRecord[]) => void;
}

/** Last valid version of each policy of one kind: an invalid edit keeps it in force. */
class LastGood<T> {
  readonly #good = new Map<string, T>();
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
        this.#good.set(key, this.parse(obj));
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
  readonly #log: Logger;
  readonly #identitiesFile: string;
  readonly #alloc: Allocators;
  readonly #netpols = new LastGood<NetworkPolicy>('NetworkPolicy', (o) => parseNetworkPolicy(o as never));
  readonly #fqdnPols = new LastGood<FqdnPolicy>('FQDNPolicy', (o) => parseFqdnPolicy(o as never));
  readonly #opts: PolicyEngineOptions;
  #compiled: CompiledPolicy | undefined;
  #warned = new Set<string>();
  #persisted = '';

  constructor(store: ObjectStore, endpoints: () => EndpointRecord[], datapath: Datapath, stateDir: string, log: Logger, opts: PolicyEngineOptions = {}) {
    this.#opts = opts;
    this.#store = store;
    this.#endpoints = endpoints;
    this.#writer = new PolicyWriter(datapath);
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

  /** status.conditions of every policy in the store. */
  conditions(): PolicyCondition[] {
    return [...this.#netpols.conditions.values(), ...this.#fqdnPols.conditions.values()];
  }

  /** Recompiles and programs the datapath; returns once the maps hold the result. */
  sync(): void {
    const started = process.hrtime.bigint();
    const records = this.#endpoints();
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
    const nodeIps = native()
      .addrList(null)
      .map((a) => a.address);
    const compiled = compile(
      {
        namespaces,
        endpoints,
        policies: this.#netpols.refresh(this.#store.list('NetworkPolicy'), this.#log),
        fqdnPolicies: this.#fqdnPols.refresh(this.#store.list('FQDNPolicy'), this.#log),
        dnsInterceptAll: this.#opts.dnsInterceptAll,
        nodeIps,
      },
      this.#alloc,
    );
    const report = this.#writer.apply(
      compiled,
      records.map((r) => ({ key: endpointKey(r), ifindex: r.hostIfindex })),
    );
    this.#compiled = compiled;
    this.#persistIdentities();
    this.#opts.onCompiled?.(compiled, records);
    // Logged once each, as invalid policies are: every sync recompiles.
    for (const w of compiled.warnings) if (!this.#warned.has(w)) this.#log.warn(w);
    this.#warned = new Set(compiled.warnings);
    for (const f of report.failed) this.#log.error({ endpoint: f.key, error: f.error }, 'policy could not be programmed: the endpoint drops all traffic until it can');
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    if (report.rewritten > 0) this.#log.info({ rewritten: report.rewritten, entries: report.entries, identities: compiled.identities.size, ms: Math.round(ms * 10) / 10 }, 'policy programmed');
  }

  /** After the first sync of a start-up: drop what an earlier agent left. */
  collectGarbage(): void {
    const n = this.#writer.collectGarbage();
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
