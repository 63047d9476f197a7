// /healthz, /readyz and /metrics on --metrics-addr (127.0.0.1:9963 by
// default): what the DaemonSet's liveness and readiness probes ask, and what
// Prometheus scrapes. /healthz answers while the agent's event loop turns (a
// wedged agent stops answering, and kubelet restarts it); /readyz answers 200
// once the agent has started (datapath loaded and attached, its sources
// synced, the DNS proxy listening, the CNI socket served) and 503 with the
// reasons otherwise; /metrics is the Prometheus text format (src/metrics,
// docs/operations.md).
import { createServer, type Server } from 'node:http';
import type { Logger } from '../log/index.js';

export interface HealthChecks {
  /** Why the agent is not ready; empty when it is. */
  notReady(): string[];
  /** The exposition for /metrics (absent: 404). */
  metrics?: { readonly contentType: string; render(): Promise<string> };
}

/** "host:port", "[v6]:port" or ":port". */
export function parseListenAddr(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${JSON.stringify(text)} is not HOST:PORT`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

/** `fd`: a listening socket on `addr` already (a predecessor's: src/agent/handover.ts). */
export async function serveHealth(addr: string, checks: HealthChecks, log: Logger, fd?: number): Promise<Server> {
  const { host, port } = parseListenAddr(addr);
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405).end();
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok\n');
      return;
    }
    if (path === '/readyz') {
      const why = checks.notReady();
      res.writeHead(why.length ? 503 : 200, { 'Content-Type': 'text/plain' }).end(why.length ? `${why.join('\n')}\n` : 'ok\n');
      return;
    }
    const metrics = checks.metrics;
    if (path === '/metrics' && metrics) {
      metrics.render().then(
        (text) => res.writeHead(200, { 'Content-Type': metrics.contentType }).end(text),
        (err: unknown) => {
          log.error({ err }, 'rendering /metrics failed');
          res.writeHead(500, { 'Content-Type': 'text/plain' }).end('metrics unavailable\n');
        },
      );
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end(`not found: /healthz, /readyz${metrics ? ', /metrics' : ''}\n`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const done = () => {
      server.off('error', reject);
      resolve();
    };
    if (fd === undefined) server.listen(port, host, done);
    else server.listen({ fd }, done);
  });
  log.info({ addr }, `health endpoints listening (/healthz, /readyz${checks.metrics ? ', /metrics' : ''})`);
  return server;
}
