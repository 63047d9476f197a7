import { describe, expect, it } from 'vitest';
import { dispatch, type Handlers } from './dispatch.js';
import { AgentApiError, ApiCode } from './errors.js';
import type { Flow } from '../observe/index.js';

const flow: Flow = {
  seq: 7,
  time: '2026-12-06T00:00:00.000Z',
  verdict: 'dropped',
  reason: 'policy-denied',
  reasonCode: 3,
  direction: 'egress',
  pod: 'x/a',
  src: '10.0.0.2',
  dst: '10.0.0.3',
  peer: 'x/b',
  protocol: 'TCP',
  srcPort: 40000,
  dstPort: 80,
};

/** Handlers that answer fixed data and record every call they get. */
function fakeHandlers(): { handlers: Handlers; calls: Array<[string, unknown]> } {
  const calls: Array<[string, unknown]> = [];
  const handlers: Handlers = {
    status: (p) => {
      calls.push(['status', p]);
      return { nodeName: 'n1', mode: 'standalone', podCidrs: ['10.0.0.0/24'], endpoints: 1, allocations: 1, manifests: [] };
    },
    policies: () => [],
    fqdn: async (p) => {
      calls.push(['fqdn', p]);
      if (p.pod === 'x/gone') throw new AgentApiError(ApiCode.NOT_FOUND, 'no endpoint for pod x/gone on this node');
      return [{ name: 'example.test', ips: [{ ip: '192.0.2.1', expiresInMs: 1000 }], rules: [] }];
    },
    flows: (p) => {
      calls.push(['flows', p]);
      return [flow];
    },
    metrics: () => {
      throw Object.assign(new Error('map read failed'), { code: 'EPERM' });
    },
    endpoints: () => [],
    explain: (p) => {
      calls.push(['explain', p]);
      return { ...p, judged: '80/TCP', verdict: 'allow', reason: 'not isolated', rules: [], paths: [] };
    },
  };
  return { handlers, calls };
}

async function failure(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  return p.then(
    () => expect.unreachable('the request succeeded'),
    (err: { code?: string; message: string }) => err,
  );
}

describe('dispatch', () => {
  it('runs the method\'s handler with its checked params', async () => {
    const { handlers, calls } = fakeHandlers();
    await expect(dispatch(handlers, { method: 'flows', params: { pod: 'x/a', verdict: 'dropped' } })).resolves.toEqual([flow]);
    await expect(dispatch(handlers, { method: 'status' })).resolves.toMatchObject({ nodeName: 'n1' });
    expect(calls).toEqual([
      ['flows', { pod: 'x/a', verdict: 'dropped' }],
      ['status', {}],
    ]);
  });

  it('answers an unknown method with SLUICE_API_UNKNOWN_METHOD, whatever Object.prototype holds', async () => {
    const { handlers, calls } = fakeHandlers();
    for (const method of ['nope', 'constructor', '__proto__', 'toString']) {
      const err = await failure(dispatch(handlers, { method }));
      expect(err.code).toBe(ApiCode.UNKNOWN_METHOD);
      expect(err.message).toBe(`unknown method ${method}`);
    }
    expect(calls).toEqual([]);
  });

  it('answers params that do not fit with SLUICE_API_BAD_PARAMS before any handler runs', async () => {
    const { handlers, calls } = fakeHandlers();
    const err = await failure(dispatch(handlers, { method: 'flows', params: { verdict: 'maybe' } }));
    expect(err.code).toBe(ApiCode.BAD_PARAMS);
    expect(err.message).toMatch(/verdict must be "allowed", "dropped" or "audit"/);
    expect((await failure(dispatch(handlers, { method: 'fqdn', params: { pod: 1 } }))).code).toBe(ApiCode.BAD_PARAMS);
    const missing = await failure(dispatch(handlers, { method: 'explain', params: { from: 'x/a', to: 'y/b' } }));
    expect(missing).toMatchObject({ code: ApiCode.BAD_PARAMS, message: 'explain: port required' });
    expect((await failure(dispatch(handlers, { method: 'explain', params: { from: 'x/a', to: 'y/b', port: 80 } }))).code).toBe(ApiCode.BAD_PARAMS);
    expect(calls).toEqual([]);
    await dispatch(handlers, { method: 'explain', params: { from: 'x/a', to: 'y/b', port: '80' } });
    expect(calls).toEqual([['explain', { from: 'x/a', to: 'y/b', port: '80' }]]);
  });

  it('lets a handler\'s own error through with its code', async () => {
    const { handlers } = fakeHandlers();
    const notFound = await failure(dispatch(handlers, { method: 'fqdn', params: { pod: 'x/gone' } }));
    expect(notFound).toMatchObject({ code: ApiCode.NOT_FOUND, message: 'no endpoint for pod x/gone on this node' });
    // A synchronous throw becomes a rejection too (the server answers it, never crashes on it).
    expect(await failure(dispatch(handlers, { method: 'metrics' }))).toMatchObject({ code: 'EPERM', message: 'map read failed' });
  });
});
