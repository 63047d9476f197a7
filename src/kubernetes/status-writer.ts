// FQDNPolicy.status.conditions[type=Accepted], written by exactly one agent
// per policy and only when what it would say changes.
//
// One writer per policy: rendezvous hashing of the policy's uid over the
// nodes where a Sluice agent runs (its DaemonSet pod has addresses) and
// which are Ready; every agent computes the same answer from the same
// objects, so no two agents write one policy, and when the writer's node
// goes, the next in line takes over. No write storms: an agent writes a
// policy only when (generation, accepted, reason, message) differs from what
// it last wrote for it, one write at a time, with backoff on failure; a
// policy that vanished (404) is forgotten.
import { createHash } from 'node:crypto';
import type { Logger } from '../log/index.js';
import type { KubeObject } from '../store/index.js';
import type { KubeApi } from './api.js';

export interface FqdnCondition {
  /** "namespace/name". */
  policy: string;
  accepted: boolean;
  reason: string;
  message: string;
}

/** The agent's DaemonSet pods carry this label (deploy/03-daemonset.yaml). */
export const AGENT_POD_LABEL = ['app.kubernetes.io/name', 'sluice'] as const;

function score(uid: string, node: string): string {
  return createHash('sha256').update(`${uid}\0${node}`).digest('hex');
}

/** Which of `nodes` writes the status of the policy with `uid` (rendezvous hashing). */
export function statusWriterFor(uid: string, nodes: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = '';
  for (const n of nodes) {
    const s = score(uid, n);
    if (best === undefined || s > bestScore) {
      best = n;
      bestScore = s;
    }
  }
  return best;
}

export class FqdnStatusWriter {
  readonly #api: KubeApi;
  readonly #self: string;
  readonly #log: Logger;
  /** uid → what was last written (or is being written). */
  readonly #written = new Map<string, string>();
  #queue = new Map<string, { ns: string; name: string; uid: string; body: unknown; memo: string }>();
  #busy = false;
  #stopped = false;
  #backoffMs = 500;
  /** Writes done (for tests and status). */
  writes = 0;

  constructor(api: KubeApi, self: string, log: Logger) {
    this.#api = api;
    this.#self = self;
    this.#log = log;
  }

  /**
   * The current conditions, the FQDNPolicy objects they are about, and the
   * nodes that may write (Ready, with an agent). Queues the writes this
   * agent owns whose content changed.
   */
  update(conditions: readonly FqdnCondition[], policies: readonly KubeObject[], writers: readonly string[]): void {
    const byKey = new Map(policies.map((p) => [`${p.metadata.namespace}/${p.metadata.name}`, p]));
    const live = new Set<string>();
    for (const c of conditions) {
      const pol = byKey.get(c.policy);
      const uid = pol?.metadata.uid;
      if (!pol || !uid) continue;
      live.add(uid);
      if (statusWriterFor(uid, writers) !== this.#self) {
        this.#written.delete(uid);
        continue;
      }
      const generation = pol.metadata.generation ?? 0;
      const memo = JSON.stringify([generation, c.accepted, c.reason, c.message]);
      if (this.#written.get(uid) === memo) continue;
      this.#written.set(uid, memo);
      const [ns, name] = c.policy.split('/') as [string, string];
      const condition = {
        type: 'Accepted',
        status: c.accepted ? 'True' : 'False',
        reason: c.reason,
        message: c.message || (c.accepted ? 'the policy is valid and in force' : ''),
        observedGeneration: generation,
        lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      };
      this.#queue.set(uid, { ns, name, uid, memo, body: { status: { conditions: [condition] } } });
    }
    for (const uid of [...this.#written.keys()]) if (!live.has(uid)) this.#written.delete(uid);
    void this.#drain();
  }

  stop(): void {
    this.#stopped = true;
  }

  async #drain(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      while (!this.#stopped && this.#queue.size) {
        const [uid, job] = this.#queue.entries().next().value!;
        this.#queue.delete(uid);
        if (this.#written.get(uid) !== job.memo) continue; // superseded
        try {
          await this.#api.mergePatch(`/apis/sluice.dev/v1alpha1/namespaces/${encodeURIComponent(job.ns)}/fqdnpolicies/${encodeURIComponent(job.name)}/status`, job.body);
          this.writes++;
          this.#backoffMs = 500;
        } catch (err) {
          const status = (err as { status?: number }).status;
          if (status === 404) {
            this.#written.delete(uid);
            continue;
          }
          this.#log.warn({ policy: `${job.ns}/${job.name}`, error: (err as Error).message }, 'could not write FQDNPolicy status; retrying');
          if (!this.#queue.has(uid)) this.#queue.set(uid, job);
          await new Promise((r) => setTimeout(r, this.#backoffMs).unref());
          this.#backoffMs = Math.min(this.#backoffMs * 2, 30_000);
        }
      }
    } finally {
      this.#busy = false;
    }
  }
}

/** Nodes that may write status: Ready, and running a Sluice agent pod. */
export function statusWriters(nodes: ReadonlyArray<{ name: string; ready: boolean }>, pods: readonly KubeObject[]): string[] {
  const withAgent = new Set(
    pods
      .filter((p) => p.metadata.labels?.[AGENT_POD_LABEL[0]] === AGENT_POD_LABEL[1] && (p.status as { podIPs?: unknown[] } | undefined)?.podIPs?.length)
      .map((p) => (p.spec as { nodeName?: string } | undefined)?.nodeName ?? ''),
  );
  return nodes.filter((n) => n.ready && withAgent.has(n.name)).map((n) => n.name).sort();
}

/** The writers, or `self` alone when no agent runs as a DaemonSet pod (an agent started by hand). */
export function statusWritersOr(self: string, nodes: ReadonlyArray<{ name: string; ready: boolean }>, pods: readonly KubeObject[]): string[] {
  const w = statusWriters(nodes, pods);
  return w.length ? w : [self];
}
