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
import { compile, newAllocators, parseNetworkPolicy, type Allocators, type CompiledPolicy, type EndpointInput, type NamedPort, type NetworkPolicy, type Protocol } from '../policy/index.js';
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

export class PolicyEngine {
  readonly #store: ObjectStore;
  readonly #endpoints: () => EndpointRecord[];
  readonly #writer: PolicyWriter;
  readonly #log: Logger;
  readonly #identitiesFile: string;
  readonly #alloc: Allocators;
  /** Last valid version of each NetworkPolicy: an invalid edit keeps it in force. */
  readonly #lastGood = new Map<string, NetworkPolicy>();
  #compiled: CompiledPolicy | undefined;
  #persisted = '';

  constructor(store: ObjectStore, endpoints: () => EndpointRecord[], datapath: Datapath, stateDir: string, log: Logger) {
    this.#store = store;
    this.#endpoints = endpoints;
    this.#writer = new PolicyWriter(datapath);
    this.#log = log;
    this.#identitiesFile = join(stateDir, 'identities.json');
    let seed: { pods?: Array<[string, number]>; cidrs?: Array<[string, number]> } = {};
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

  #policies(): NetworkPolicy[] {
    const seen = new Set<string>();
    for (const obj of this.#store.list('NetworkPolicy')) {
      const key = objectKey(obj);
      seen.add(key);
      try {
        this.#lastGood.set(key, parseNetworkPolicy(obj as never));
      } catch (err) {
        this.#log.error({ policy: key, error: (err as Error).message }, 'invalid NetworkPolicy: the previous version stays in force');
      }
    }
    for (const key of this.#lastGood.keys()) if (!seen.has(key)) this.#lastGood.delete(key);
    return [...this.#lastGood.values()];
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
    const compiled = compile({ namespaces, endpoints, policies: this.#policies(), nodeIps }, this.#alloc);
    const report = this.#writer.apply(
      compiled,
      records.map((r) => ({ key: endpointKey(r), ifindex: r.hostIfindex })),
    );
    this.#compiled = compiled;
    this.#persistIdentities();
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
    const text = JSON.stringify({ pods: this.#alloc.pods.snapshot(), cidrs: this.#alloc.cidrs.snapshot() });
    if (text === this.#persisted) return;
    writeFileSync(`${this.#identitiesFile}.tmp`, text);
    renameSync(`${this.#identitiesFile}.tmp`, this.#identitiesFile);
    this.#persisted = text;
  }
}
