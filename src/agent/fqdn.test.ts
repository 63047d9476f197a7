// The agent's FQDN side against an in-memory datapath: which (rule, address)
// allows land in sluice_fqdn_v1, what a restarted agent adopts, and how a
// full map fails and recovers — the same Datapath and typed maps the agent
// runs, over a fake addon instead of the kernel.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { fakeDatapath, sluiceMapSpecs, type FakeBpfAddon } from '../../test/fakes/bpf-addon.js';
import * as dnsCodec from '../datapath/codec/dns.js';
import { MAP_DNS_BUDGET, MAP_FQDN, type Datapath } from '../datapath/index.js';
import { DEFAULT_LIMITS, monoMsToNs, monoNowMs, PROXY_V4, PROXY_V6 } from '../dns/index.js';
import type { CompiledPolicy, EndpointPolicy, FqdnRuleInfo } from '../policy/index.js';
import { FqdnService, type FqdnConfig } from './fqdn.js';
import type { ProxyHost } from './proxy-host.js';

const API = 100;
const OTHER = 101;
const EP_KEY = 'default/client';
const IFINDEX = 12;

function rule(id: number, name: string): FqdnRuleInfo {
  return { id, ref: { policy: 'default/egress', kind: 'FQDNPolicy', direction: 'egress', rule: id - API }, selectors: [{ kind: 'name', text: name }] };
}

function compiled(rules: FqdnRuleInfo[]): CompiledPolicy {
  const ep: EndpointPolicy = {
    identity: 300,
    ingressIsolated: false,
    egressIsolated: true,
    ingressAudit: false,
    egressAudit: false,
    ingressBy: [],
    egressBy: ['FQDNPolicy default/egress'],
    selectedBy: ['FQDNPolicy default/egress'],
    entries: [],
    fqdnRules: rules.map((r) => r.id),
    dnsIntercept: true,
    dns: 'AllowAll',
  };
  return { identities: new Map(), ipcache: new Map(), cidrs: new Map(), endpoints: new Map([[EP_KEY, ep]]), fqdnRules: new Map(rules.map((r) => [r.id, r])), warnings: [] };
}

const ENDPOINTS = [{ key: EP_KEY, ifindex: IFINDEX, pod: 'default/client' }];

let cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

function service(opts: { maxEntries?: number; seed?: (dp: Datapath) => void; host?: ProxyHost; podSource?: FqdnConfig['podSource'] } = {}): { svc: FqdnService; addon: FakeBpfAddon; dp: Datapath } {
  const stateDir = mkdtempSync(join(tmpdir(), 'sluice-fqdn-'));
  cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }));
  const { addon, dp } = fakeDatapath(sluiceMapSpecs(opts.maxEntries ?? 64));
  opts.seed?.(dp);
  const cfg: FqdnConfig = { stateDir, minTtlMs: 0, graceMs: 0, maxIpsPerName: 16, maxNames: 1000, trusted: ['127.0.0.1'], untrusted: 'refuse', limits: DEFAULT_LIMITS, ipv6: true, podSource: opts.podSource };
  const svc = new FqdnService(dp, cfg, pino({ level: 'silent' }), opts.host);
  cleanups.push(() => svc.stop());
  return { svc, addon, dp };
}

/** What sluice_fqdn_v1 holds, as "rule ip". */
function allowed(dp: Datapath): string[] {
  return [...dp.fqdnAllows.entries()].map((e) => `${e.rule} ${e.ip}`).sort();
}

describe('FqdnService over an in-memory datapath', () => {
  it('programs each learned address under every rule whose names it was learned for, with its expiry', () => {
    const { svc, dp } = service();
    const now = monoNowMs();
    svc.cache.learn(['api.example.com'], [{ ip: '192.0.2.10', ttl: 30 }, { ip: '2001:db8::10', ttl: 30 }], now);
    svc.cache.learn(['unrelated.example.net'], [{ ip: '198.51.100.1', ttl: 30 }], now);
    svc.setPolicy(compiled([rule(API, 'api.example.com'), rule(OTHER, 'other.example.com')]), ENDPOINTS);
    expect(allowed(dp)).toEqual([`${API} 192.0.2.10`, `${API} 2001:db8::10`]);
    const expiresNs = dp.fqdnAllows.get(API, '192.0.2.10')!;
    // 30 s from when it was learned (no min TTL, no grace), on the datapath's clock.
    expect(Number(expiresNs - monoMsToNs(now + 30_000))).toBeLessThan(1e6);
    expect(svc.status().entries).toBe(2);
  });

  it('a rule no longer in force takes its allows out of the map', () => {
    const { svc, dp } = service();
    svc.cache.learn(['api.example.com'], [{ ip: '192.0.2.10', ttl: 30 }], monoNowMs());
    svc.setPolicy(compiled([rule(API, 'api.example.com')]), ENDPOINTS);
    expect(allowed(dp)).toEqual([`${API} 192.0.2.10`]);
    svc.setPolicy(compiled([]), ENDPOINTS);
    expect(allowed(dp)).toEqual([]);
    expect(svc.status().entries).toBe(0);
  });

  it('a restarted agent adopts what the pinned map holds, and the first resync removes what nothing learned explains', () => {
    const future = monoMsToNs(monoNowMs() + 60_000);
    const { svc, dp } = service({
      seed: (d) => {
        d.fqdnAllows.put(API, '192.0.2.10', future);
        d.fqdnAllows.put(API, '198.51.100.7', future);
      },
    });
    // Adopted, and still enforcing: nothing was deleted at start.
    expect(svc.status().entries).toBe(2);
    expect(allowed(dp)).toEqual([`${API} 192.0.2.10`, `${API} 198.51.100.7`]);
    svc.cache.learn(['api.example.com'], [{ ip: '192.0.2.10', ttl: 30 }], monoNowMs());
    svc.setPolicy(compiled([rule(API, 'api.example.com')]), ENDPOINTS);
    expect(allowed(dp)).toEqual([`${API} 192.0.2.10`]);
  });

  it('a full map fails the resync with SLUICE_MAP_FULL, and the next setPolicy redoes it once there is room', () => {
    const { svc, addon, dp } = service({ maxEntries: 1 });
    svc.cache.learn(['api.example.com'], [{ ip: '192.0.2.10', ttl: 30 }, { ip: '192.0.2.11', ttl: 30 }], monoNowMs());
    const policy = compiled([rule(API, 'api.example.com')]);
    expect(() => svc.setPolicy(policy, ENDPOINTS)).toThrow(expect.objectContaining({ code: 'SLUICE_MAP_FULL', message: `${MAP_FQDN} is full` }));
    expect(allowed(dp)).toHaveLength(1);
    addon.setMaxEntries(MAP_FQDN, 8);
    // Same rules: only the pending resync makes this call write anything.
    svc.setPolicy(policy, ENDPOINTS);
    expect(allowed(dp)).toEqual([`${API} 192.0.2.10`, `${API} 192.0.2.11`]);
  });

  it('a sweep forgets what expired over a minute ago, from the cache and then the map, in slices', async () => {
    const { svc, dp } = service({ maxEntries: 1024 });
    const now = monoNowMs();
    // 300 names of one address each (the cache's walk and the map's deletes both take several steps), half long expired.
    for (let i = 0; i < 300; i++) {
      const ip = i < 250 ? `198.51.100.${i}` : `203.0.113.${i - 250}`;
      svc.cache.learnAbsolute([`n${i}.example.com`], [{ ip, expiresMs: i % 2 ? now - 120_000 : now + 60_000 }]);
    }
    svc.setPolicy(compiled([{ ...rule(API, 'x'), selectors: [{ kind: 'pattern', text: '*.example.com' }] }]), ENDPOINTS);
    expect(allowed(dp)).toHaveLength(300);
    await svc.sweep();
    expect(svc.cache.size).toEqual({ names: 150, ips: 150 });
    expect(allowed(dp)).toHaveLength(150);
    expect([...dp.fqdnAllows.entries()].every((e) => Number(e.expiresNs) > Number(monoMsToNs(now)))).toBe(true);
  });

  it('status reports the datapath\'s DNS budget drops per pod', () => {
    const { svc, addon } = service();
    svc.setPolicy(compiled([]), ENDPOINTS);
    const key = Buffer.alloc(4);
    key.writeUInt32LE(IFINDEX);
    const budget = Buffer.alloc(dnsCodec.BUDGET_SIZE);
    budget.writeBigUInt64LE(5n, dnsCodec.BUDGET_OFFSETS.dropped);
    addon.map(MAP_DNS_BUDGET).entries.set(key.toString('hex'), budget);
    const st = svc.status();
    expect(st.proxy.rateLimited).toBe(5);
    expect(st.pods).toEqual([{ pod: 'default/client', rateLimited: 5, overInflight: 0, tcpOverLimit: 0, inflight: 0, tcpConnections: 0 }]);
  });

  const recordingHost = (routed: string[]): ProxyHost => ({
    routeLocal: (a) => void routed.push(`local ${a.join(' ')}`),
    routeToProxy: (ipv6) => void routed.push(`to-proxy ipv6=${ipv6}`),
    transparentSocket: () => {
      throw new Error('no transparent sockets in this test');
    },
    bind: () => {
      throw new Error('no sockets in this test');
    },
  });

  it('start() routes the proxy addresses, and the way back to its pod-source sockets, before binding', async () => {
    const routed: string[] = [];
    const { svc } = service({ host: recordingHost(routed), podSource: () => true });
    await expect(svc.start()).rejects.toThrow('no sockets in this test');
    expect(routed).toEqual([`local ${PROXY_V4} ${PROXY_V6}`, 'to-proxy ipv6=true']);
  });

  it('with queries sent from the node (--dns-upstream-source node) no rule is installed', async () => {
    const routed: string[] = [];
    const { svc } = service({ host: recordingHost(routed) });
    await expect(svc.start()).rejects.toThrow('no sockets in this test');
    expect(routed).toEqual([`local ${PROXY_V4} ${PROXY_V6}`]);
  });
});
