// Kubernetes mode's PolicySource: reflectors (list+watch) on Namespaces,
// Pods, NetworkPolicies and FQDNPolicies into the agent's store, and on
// Nodes into a table of their own (pod CIDRs and addresses, for routes to
// other nodes and for sharing out status writes). Synced when every first
// list is in. A pod whose object the watch has not delivered yet when its
// CNI ADD arrives is fetched directly (ensurePod), so its labels are known
// before its policy is programmed.
import type { Logger } from '../log/index.js';
import { Deferred, type PolicySink, type PolicySource } from '../sources/index.js';
import { type KubeObject, type ObjectStore } from '../store/index.js';
import { isKubeApiError, KubeApiError, type KubeApi, type KubeList } from './api.js';
import { nodeInfo, trimEndpointSlice, trimFqdnPolicy, trimNamespace, trimNetworkPolicy, trimNode, trimPod, trimService, type NodeInfo } from './objects.js';
import { Reflector, type RawObject, type ReflectorSink, type ReflectorStatus } from './reflector.js';

export const FQDN_POLICIES_PATH = '/apis/sluice.dev/v1alpha1/fqdnpolicies';

/** The Nodes as last listed/watched. */
export class NodeTable implements ReflectorSink {
  readonly #nodes = new Map<string, KubeObject>();
  readonly #listeners: Array<() => void> = [];
  #depth = 0;
  #changed = false;

  upsert(_owner: string, obj: KubeObject): void {
    const before = JSON.stringify(this.#nodes.get(obj.metadata.name));
    if (before === JSON.stringify(obj)) return;
    this.#nodes.set(obj.metadata.name, obj);
    this.#changed = true;
  }

  delete(_owner: string, _kind: string, key: string): boolean {
    const had = this.#nodes.delete(key);
    this.#changed ||= had;
    return had;
  }

  batch<T>(fn: () => T): T {
    this.#depth++;
    try {
      return fn();
    } finally {
      if (--this.#depth === 0 && this.#changed) {
        this.#changed = false;
        for (const l of this.#listeners) l();
      }
    }
  }

  onChange(fn: () => void): void {
    this.#listeners.push(fn);
  }

  list(): NodeInfo[] {
    return [...this.#nodes.values()].map((n) => ({
      name: n.metadata.name,
      podCidrs: (n.spec as { podCIDRs: string[] }).podCIDRs,
      internalIps: (n.status as { internalIps: string[] }).internalIps,
      ready: (n.status as { ready: boolean }).ready,
    }));
  }
}

export interface KubernetesSourceStatus {
  server: string;
  reflectors: ReflectorStatus[];
}

export interface KubernetesSourceOptions {
  /** Backoff bounds for every reflector (tests shorten them). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

export class KubernetesSource implements PolicySource<KubernetesSourceStatus> {
  readonly name = 'kubernetes';
  readonly nodes = new NodeTable();
  readonly #api: KubeApi;
  readonly #log: Logger;
  readonly #opts: KubernetesSourceOptions;
  readonly #synced = new Deferred();
  #reflectors: Reflector[] = [];
  #pods: Reflector | undefined;
  #store: PolicySink | undefined;

  constructor(api: KubeApi, log: Logger, opts: KubernetesSourceOptions = {}) {
    this.#api = api;
    this.#log = log;
    this.#opts = opts;
  }

  async start(sink: PolicySink): Promise<void> {
    this.#store = sink;
    const make = (kind: string, path: string, trim: (raw: RawObject) => KubeObject | undefined, into: ReflectorSink = sink, missingIsEmpty = false) =>
      new Reflector(this.#api, into, { kind, path, owner: `kubernetes/${kind}`, trim, missingIsEmpty, ...this.#opts }, this.#log);
    this.#pods = make('Pod', '/api/v1/pods', trimPod);
    this.#reflectors = [
      make('Node', '/api/v1/nodes', trimNode, this.nodes),
      make('Namespace', '/api/v1/namespaces', trimNamespace),
      this.#pods,
      make('NetworkPolicy', '/apis/networking.k8s.io/v1/networkpolicies', trimNetworkPolicy),
      make('FQDNPolicy', FQDN_POLICIES_PATH, trimFqdnPolicy, sink, true),
      make('Service', '/api/v1/services', trimService),
      make('EndpointSlice', '/apis/discovery.k8s.io/v1/endpointslices', trimEndpointSlice),
    ];
    for (const r of this.#reflectors) r.start();
    Promise.all(this.#reflectors.map((r) => r.synced)).then(
      () => this.#synced.resolve(),
      (err) => this.#synced.reject(err),
    );
  }

  waitSynced(): Promise<void> {
    return this.#synced.promise;
  }

  status(): KubernetesSourceStatus {
    return { server: this.#api.server, reflectors: this.#reflectors.map((r) => r.status()) };
  }

  problems(): string[] {
    return this.#reflectors.flatMap((r) => {
      const s = r.status();
      if (s.error) return [`kubernetes ${s.kind}: ${s.error} (since ${s.since})`];
      if (!s.synced) return [`kubernetes ${s.kind}: not listed yet`];
      return [];
    });
  }

  stop(): void {
    for (const r of this.#reflectors) r.stop();
  }

  /**
   * Makes sure the store holds the pod `namespace/name` (a CNI ADD can come
   * before the watch delivers a new pod): fetched from the API if not,
   * retried until `deadlineMs`. Throws a KubeApiError when the API cannot
   * say (unreachable, the pod not found in time): the ADD answers "try
   * again later" rather than program a pod without its labels.
   */
  async ensurePod(store: Pick<ObjectStore, 'get'>, namespace: string, name: string, uid: string | undefined, deadlineMs = 5000): Promise<void> {
    const have = (): boolean => {
      const pod = store.get('Pod', `${namespace}/${name}`);
      return !!pod && (!uid || !pod.metadata.uid || pod.metadata.uid === uid);
    };
    if (have()) return;
    const until = Date.now() + deadlineMs;
    let last: unknown;
    for (let i = 0; i < 100 && Date.now() < until; i++) {
      try {
        const raw = await this.#api.get<RawObject>(`/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`, Math.max(500, until - Date.now()));
        const got = raw.metadata as { uid?: string } | undefined;
        if (!uid || got?.uid === uid) {
          if (!have()) this.#pods?.inject(raw);
          return;
        }
        last = new KubeApiError(`pod ${namespace}/${name} has uid ${got?.uid}, not ${uid}`, 409);
      } catch (err) {
        last = err;
      }
      if (have()) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    const why = (last as Error)?.message ?? 'no answer';
    throw new KubeApiError(`pod ${namespace}/${name} is not known to the agent and could not be read from the API: ${why}`, (last as KubeApiError)?.status ?? 0);
  }
}

/** The node's pod CIDRs from Node.spec.podCIDRs (what kube-controller-manager allocated), waited for. */
export class NodePodCidrs {
  readonly origin: string;
  constructor(
    readonly api: KubeApi,
    readonly nodeName: string,
    readonly timeoutMs = 60_000,
  ) {
    this.origin = `Node ${nodeName} spec.podCIDRs (or --pod-cidr)`;
  }
  async podCidrs(): Promise<string[]> {
    const until = Date.now() + this.timeoutMs;
    let last = '';
    for (let i = 0; i < 10_000 && Date.now() < until; i++) {
      try {
        const node = nodeInfo(await this.api.get<RawObject>(`/api/v1/nodes/${encodeURIComponent(this.nodeName)}`));
        if (node.podCidrs.length) return node.podCidrs;
        last = 'the Node has no spec.podCIDRs yet';
      } catch (err) {
        last = (err as Error).message;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
    throw new KubeApiError(`no pod CIDR for node ${this.nodeName} after ${this.timeoutMs / 1000} s: ${last}`, 0);
  }
}

/**
 * Kubernetes mode's default trusted resolvers: the cluster DNS Service's
 * ClusterIPs (kube-system/kube-dns, what kubelet writes into pods'
 * resolv.conf) and the addresses of its endpoints (a pod may ask CoreDNS
 * directly). Read when the agent starts.
 */
export class ClusterDnsResolvers {
  readonly origin: string;
  constructor(
    readonly api: KubeApi,
    readonly namespace = 'kube-system',
    readonly service = 'kube-dns',
  ) {
    this.origin = `--dns-trusted, the ${namespace}/${service} Service`;
  }
  async trustedResolvers(): Promise<string[]> {
    const out = new Set<string>();
    try {
      const svc = await this.api.get<{ spec?: { clusterIP?: string; clusterIPs?: string[] } }>(`/api/v1/namespaces/${this.namespace}/services/${this.service}`);
      for (const ip of svc.spec?.clusterIPs ?? [svc.spec?.clusterIP ?? '']) if (ip && ip !== 'None') out.add(ip);
      const q = new URLSearchParams({ labelSelector: `kubernetes.io/service-name=${this.service}` });
      const slices = await this.api.get<KubeList<{ endpoints?: Array<{ addresses?: string[] }> }>>(`/apis/discovery.k8s.io/v1/namespaces/${this.namespace}/endpointslices?${q}`);
      for (const s of slices.items ?? []) for (const e of s.endpoints ?? []) for (const a of e.addresses ?? []) out.add(a);
    } catch (err) {
      if (!isKubeApiError(err, 404)) throw err;
    }
    return [...out].sort();
  }

  /** Asks again every `intervalMs` (CoreDNS may come after the agent, and move). */
  watch(onChange: (ips: string[]) => void, intervalMs = 5000): () => void {
    let last = '';
    let busy = false;
    const timer = setInterval(() => {
      if (busy) return;
      busy = true;
      this.trustedResolvers()
        .then((ips) => {
          const key = ips.join(',');
          if (key !== last) {
            last = key;
            onChange(ips);
          }
        })
        .catch(() => {
          // the API away: keep the last list
        })
        .finally(() => (busy = false));
    }, intervalMs);
    timer.unref();
    return () => clearInterval(timer);
  }
}
