// The agent's connection to the Kubernetes API: configuration and
// credentials from @kubernetes/client-node's KubeConfig (in-cluster service
// account in a pod, else --kubeconfig, else ~/.kube/config), watches through
// its Watch (a streamed GET of JSON lines), and plain JSON requests (lists,
// gets, status patches) over node:https with the same credentials, so every
// object arrives exactly as the API wrote it (no model classes, no Dates).
import { existsSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { KubeConfig, Watch } from '@kubernetes/client-node';

import { KubeApiError, type KubeApi, type WatchEvent } from './api.js';

export { KubeApiError } from './api.js';
export type { KubeApi, KubeList, WatchEvent } from './api.js';

export interface KubeClientOptions {
  /** --kubeconfig; empty: in-cluster when in a pod, else ~/.kube/config. */
  kubeconfig?: string;
}

const IN_CLUSTER_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/** Loads the configuration the way PRODUCT.md §3 says: --kubeconfig, else in-cluster, else ~/.kube/config. */
export function loadKubeConfig(opts: KubeClientOptions = {}): { kc: KubeConfig; origin: string } {
  const kc = new KubeConfig();
  if (opts.kubeconfig) {
    if (!existsSync(opts.kubeconfig)) throw new KubeApiError(`--kubeconfig ${opts.kubeconfig}: no such file`, 0);
    kc.loadFromFile(opts.kubeconfig);
    return { kc, origin: opts.kubeconfig };
  }
  if (process.env.KUBERNETES_SERVICE_HOST && existsSync(IN_CLUSTER_TOKEN)) {
    kc.loadFromCluster();
    return { kc, origin: 'in-cluster service account' };
  }
  kc.loadFromDefault();
  if (!kc.getCurrentCluster()) throw new KubeApiError('no Kubernetes configuration: not in a pod, no --kubeconfig, no ~/.kube/config (or pass --standalone DIR)', 0);
  return { kc, origin: process.env.KUBECONFIG || '~/.kube/config' };
}

export class KubeClient implements KubeApi {
  readonly server: string;
  readonly #kc: KubeConfig;
  readonly #watch: Watch;

  constructor(kc: KubeConfig) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new KubeApiError('the Kubernetes configuration names no current cluster', 0);
    this.#kc = kc;
    this.server = cluster.server.replace(/\/+$/, '');
    this.#watch = new Watch(kc);
  }

  get<T>(path: string, timeoutMs = 10_000): Promise<T> {
    return this.#request<T>('GET', path, undefined, undefined, timeoutMs);
  }

  mergePatch<T>(path: string, body: unknown, timeoutMs = 10_000): Promise<T> {
    return this.#request<T>('PATCH', path, JSON.stringify(body), 'application/merge-patch+json', timeoutMs);
  }

  async watch<T>(path: string, params: Record<string, string>, onEvent: (e: WatchEvent<T>) => void, onDone: (err: unknown) => void): Promise<() => void> {
    const ctl = await this.#watch.watch(path, params, (type: string, object: T) => onEvent({ type: type as WatchEvent<T>['type'], object }), onDone);
    return () => ctl.abort();
  }

  async #request<T>(method: string, path: string, body: string | undefined, contentType: string | undefined, timeoutMs: number): Promise<T> {
    const url = new URL(this.server + path);
    const opts: RequestOptions = { method, headers: { Accept: 'application/json' } };
    await this.#kc.applyToHTTPSOptions(opts);
    if (contentType) opts.headers = { ...opts.headers, 'Content-Type': contentType };
    const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
    return new Promise<T>((resolve, reject) => {
      const req = send(url, { ...opts, timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => reject(new KubeApiError(`${method} ${path}: ${err.message}`, 0)));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) {
            try {
              resolve(JSON.parse(text) as T);
            } catch {
              reject(new KubeApiError(`${method} ${path}: the answer is not JSON`, status));
            }
            return;
          }
          let message = text.slice(0, 300);
          let reason: string | undefined;
          try {
            const st = JSON.parse(text) as { message?: string; reason?: string };
            message = st.message ?? message;
            reason = st.reason;
          } catch {
            // not a Status object
          }
          reject(new KubeApiError(`${method} ${path}: ${status} ${message}`, status, reason));
        });
      });
      req.on('timeout', () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
      req.on('error', (err) => reject(new KubeApiError(`${method} ${path}: ${err.message}`, 0)));
      if (body !== undefined) req.write(body);
      req.end();
    });
  }
}
