// The API over the agent's real socket (a unix socket in a temp directory;
// no root): what `sluice` and the integration tests see on the wire.
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentApiError, ApiCode, call, request, socketPath, type Handlers } from '../api/index.js';
import { listen } from './server.js';

const handlers: Handlers = {
  status: () => ({ nodeName: 'n1', mode: 'standalone', podCidrs: ['10.0.0.0/24'], endpoints: 0, allocations: 0, manifests: [] }),
  policies: () => [],
  fqdn: ({ pod }) => {
    if (pod !== undefined) throw new AgentApiError(ApiCode.NOT_FOUND, `no endpoint for pod ${pod} on this node`);
    return [];
  },
  flows: () => [],
  metrics: () => [{ reason: 'policy-denied', reasonCode: 3, direction: 'egress', audit: false, packets: 2n ** 63n, bytes: 1500n }],
  endpoints: () => [],
  explain: (p) => ({ ...p, judged: '80/TCP', verdict: 'allow', reason: 'not isolated', rules: [], paths: [] }),
};

/** The raw answer line to a raw request line. */
function rawExchange(runDir: string, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(socketPath(runDir));
    let buf = '';
    sock.on('connect', () => sock.write(`SLUICE-API/1\n${line}\n`));
    sock.on('data', (d: Buffer) => (buf += d.toString()));
    sock.on('end', () => resolve(buf));
    sock.on('error', reject);
  });
}

describe('agent socket, SLUICE-API/1', () => {
  let dir: string;
  let server: Server;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-api-'));
    server = await listen(socketPath(dir), { cni: async () => Buffer.alloc(0), api: handlers }, pino({ level: 'silent' }));
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers a typed call with the handler\'s result, 64-bit counters as strings', async () => {
    const status = await call(dir, 'status');
    expect(status.nodeName).toBe('n1');
    const metrics = await call(dir, 'metrics');
    expect(metrics).toEqual([{ reason: 'policy-denied', reasonCode: 3, direction: 'egress', audit: false, packets: '9223372036854775808', bytes: '1500' }]);
  });

  it('answers errors with their codes', async () => {
    await expect(request(dir, 'nope')).rejects.toMatchObject({ code: 'SLUICE_API_UNKNOWN_METHOD', message: 'unknown method nope' });
    await expect(request(dir, 'flows', { verdict: 'maybe' })).rejects.toMatchObject({ code: 'SLUICE_API_BAD_PARAMS' });
    await expect(call(dir, 'fqdn', { pod: 'x/a' })).rejects.toMatchObject({ code: 'SLUICE_API_NOT_FOUND', message: 'no endpoint for pod x/a on this node' });
    await expect(call(dir, 'fqdn', { pod: 'x/a' })).rejects.toBeInstanceOf(AgentApiError);
  });

  it('answers a malformed request line with SLUICE_API_BAD_REQUEST, one JSON line', async () => {
    const answer = await rawExchange(dir, '{"method":');
    expect(answer.endsWith('\n')).toBe(true);
    expect(JSON.parse(answer)).toMatchObject({ ok: false, error: { code: 'SLUICE_API_BAD_REQUEST' } });
    expect(JSON.parse(await rawExchange(dir, '{"params":{}}'))).toEqual({ ok: false, error: { code: 'SLUICE_API_BAD_REQUEST', message: 'method missing' } });
  });

  it('keeps the answer\'s shape: {ok, result}', async () => {
    expect(await rawExchange(dir, '{"method":"policies"}')).toBe('{"ok":true,"result":[]}\n');
  });

  it('reports an agent that is not there as SLUICE_AGENT_UNREACHABLE', async () => {
    await expect(call(join(dir, 'nowhere'), 'status')).rejects.toMatchObject({ code: 'SLUICE_AGENT_UNREACHABLE' });
  });
});
