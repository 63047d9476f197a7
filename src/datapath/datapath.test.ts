// The datapath's typed maps over an in-memory addon: what each call puts in
// the kernel's bytes and reads back, without a kernel (test/datapath has the
// real object).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeBpfAddon, fakeDatapath, sluiceMapSpecs } from '../../test/fakes/bpf-addon.js';
import * as dnsCodec from './codec/dns.js';
import * as endpointCodec from './codec/endpoint.js';
import * as fqdnCodec from './codec/fqdn.js';
import * as ipcacheCodec from './codec/ipcache.js';
import * as metricsCodec from './codec/metrics.js';
import * as policyCodec from './codec/policy.js';
import { Datapath, MAP_CONFIG, MAP_DNS_BUDGET, MAP_DNS_NAT, MAP_ENDPOINTS, MAP_FQDN, MAP_IPCACHE, MAP_METRICS, MAP_POLICY, PROG_FROM_NODE, PROG_FROM_POD, PROG_TO_POD } from './datapath.js';
import { DropReason } from './drop-reasons.js';

const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;

function hex(b: Buffer): string {
  return b.toString('hex');
}

let dirs: string[] = [];
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

describe('Datapath over an injected addon', () => {
  it('open() refuses a directory that is not on a bpffs before loading anything', () => {
    const addon = new FakeBpfAddon();
    const dir = mkdtempSync(join(tmpdir(), 'sluice-dp-'));
    dirs.push(dir);
    expect(() => Datapath.open({ bpffs: dir }, addon)).toThrow(expect.objectContaining({ code: 'SLUICE_BPFFS_MISSING' }));
    expect(addon.loads).toBe(0);
  });

  it('an object without both entry programs is refused', () => {
    const addon = new FakeBpfAddon(sluiceMapSpecs(), { progs: [PROG_FROM_POD] });
    expect(() => Datapath.fromLoaded(addon, addon.objLoad('x.o', {}))).toThrow(expect.objectContaining({ code: 'SLUICE_DATAPATH', message: expect.stringContaining(PROG_TO_POD) }));
  });

  it('endpoints: written in the codec layout, read back, listed and deleted', () => {
    const { addon, dp } = fakeDatapath();
    const ep = { identity: 7, flags: endpointCodec.FLAG_INGRESS_ISOLATED, policyId: 3, ips: ['10.1.0.5', 'fd00::5'] };
    dp.upsertEndpoint(12, ep);
    expect([...addon.map(MAP_ENDPOINTS).entries]).toEqual([[hex(endpointCodec.encodeKey(12)), endpointCodec.encode(ep)]]);
    expect(dp.getEndpoint(12)).toEqual(ep);
    expect(dp.getEndpoint(13)).toBeUndefined();
    expect(dp.listEndpoints()).toEqual(new Map([[12, ep]]));
    expect(dp.deleteEndpoint(12)).toBe(true);
    expect(dp.deleteEndpoint(12)).toBe(false);
    expect(addon.map(MAP_ENDPOINTS).entries.size).toBe(0);
  });

  it('a full endpoint map is SLUICE_MAP_FULL naming the map; replacing an entry still works', () => {
    const { dp } = fakeDatapath(sluiceMapSpecs(1));
    dp.upsertEndpoint(1, { identity: 7, flags: 0 });
    expect(() => dp.upsertEndpoint(2, { identity: 8, flags: 0 })).toThrow(expect.objectContaining({ code: 'SLUICE_MAP_FULL', message: `${MAP_ENDPOINTS} is full` }));
    dp.upsertEndpoint(1, { identity: 9, flags: 0 });
    expect(dp.getEndpoint(1)?.identity).toBe(9);
  });

  it('the ipcache and the ipBlock prefixes dump as they are pinned', () => {
    const { dp } = fakeDatapath();
    dp.ipcache.set('10.1.0.5', 300);
    dp.ipcache.set('fd00::5', 300);
    dp.cidrs.set('192.0.2.0/24', 70_000);
    expect(dp.dumpIpcache()).toEqual(new Map([['10.1.0.5', 300], ['fd00::5', 300]]));
    expect(dp.dumpCidrs()).toEqual(new Map([['192.0.2.0/24', 70_000]]));
  });

  it('metrics sum the per-CPU slots and sort by reason, then direction, audit last', () => {
    const { addon, dp } = fakeDatapath(undefined, { cpus: 3 });
    const perCpu = (rows: Array<[number, number]>) => Buffer.concat(rows.map(([packets, bytes]) => metricsCodec.encode({ packets: BigInt(packets), bytes: BigInt(bytes) })));
    const m = addon.map(MAP_METRICS).entries;
    m.set(hex(metricsCodec.encodeKey({ reason: DropReason.POLICY_DENIED, direction: metricsCodec.DIR_TO_POD })), perCpu([[1, 100], [0, 0], [2, 200]]));
    m.set(hex(metricsCodec.encodeKey({ reason: 0, direction: metricsCodec.DIR_FROM_POD })), perCpu([[5, 500], [5, 500], [5, 500]]));
    m.set(hex(metricsCodec.encodeKey({ reason: DropReason.POLICY_DENIED, direction: metricsCodec.DIR_TO_POD, audit: 1 })), perCpu([[1, 60], [0, 0], [0, 0]]));
    expect(dp.metrics()).toEqual([
      { reason: 0, direction: metricsCodec.DIR_FROM_POD, audit: 0, packets: 15n, bytes: 1500n },
      { reason: DropReason.POLICY_DENIED, direction: metricsCodec.DIR_TO_POD, audit: 0, packets: 3n, bytes: 300n },
      { reason: DropReason.POLICY_DENIED, direction: metricsCodec.DIR_TO_POD, audit: 1, packets: 1n, bytes: 60n },
    ]);
  });

  it('--datapath-redirect shares the config entry with the DNS budget: setting one keeps the other', () => {
    const { addon, dp } = fakeDatapath();
    dp.setDnsRateLimit(20, 40);
    dp.setRedirect(true);
    expect([...addon.map(MAP_CONFIG).entries]).toEqual([[hex(Buffer.alloc(4)), dnsCodec.encodeConfig({ dns: { qps: 20, burst: 40 }, redirect: true })]]);
    dp.setDnsRateLimit(10, 20);
    const value = [...addon.map(MAP_CONFIG).entries.values()][0]!;
    expect(value.readUInt32LE(dnsCodec.CONFIG_OFFSETS.flags)).toBe(dnsCodec.CFG_F_REDIRECT);
    dp.setRedirect(false);
    expect([...addon.map(MAP_CONFIG).entries.values()][0]!.readUInt32LE(dnsCodec.CONFIG_OFFSETS.flags)).toBe(0);
  });

  it('the local delivery index: pod address → host veth and both MACs', () => {
    const { dp } = fakeDatapath();
    dp.localEndpoints.set('10.1.0.5', { ifindex: 42, podMac: '0a:1b:2c:3d:4e:5f', hostMac: 'fe:ed:00:00:00:01' });
    dp.localEndpoints.set('fd00::5', { ifindex: 42, podMac: '0a:1b:2c:3d:4e:5f', hostMac: 'fe:ed:00:00:00:01' });
    expect(dp.localEndpoints.get('10.1.0.5')).toEqual({ ifindex: 42, podMac: '0a:1b:2c:3d:4e:5f', hostMac: 'fe:ed:00:00:00:01' });
    expect(new Map(dp.localEndpoints.dump()).size).toBe(2);
    expect(() => dp.localEndpoints.set('10.1.0.6', { ifindex: 1, podMac: 'nope', hostMac: 'fe:ed:00:00:00:01' })).toThrow(/MAC/);
  });

  it('the DNS budget goes in the one config entry; drops over it are read per host ifindex', () => {
    const { addon, dp } = fakeDatapath();
    dp.setDnsRateLimit(20, 40);
    expect([...addon.map(MAP_CONFIG).entries]).toEqual([[hex(Buffer.alloc(4)), dnsCodec.encodeConfig({ dns: { qps: 20, burst: 40 }, redirect: false })]]);
    const budget = Buffer.alloc(dnsCodec.BUDGET_SIZE);
    budget.writeBigUInt64LE(5n, dnsCodec.BUDGET_OFFSETS.dropped);
    const key = Buffer.alloc(4);
    key.writeUInt32LE(12);
    addon.map(MAP_DNS_BUDGET).entries.set(hex(key), budget);
    expect(dp.dnsRateLimitDrops()).toEqual(new Map([[12, 5n]]));
  });

  it('close() closes every program and map fd it owns, once', () => {
    const addon = new FakeBpfAddon();
    const loaded = addon.objLoad('x.o', {});
    const dp = Datapath.fromLoaded(addon, loaded);
    dp.close();
    dp.close();
    for (const fd of [...Object.values(loaded.progs), ...Object.values(loaded.maps)]) expect(addon.isOpen(fd)).toBe(false);
  });

  it('attach puts both entry programs on the veth; detach removes them', () => {
    const { addon, dp } = fakeDatapath();
    dp.attach('/run/netns/x', 'sl1234');
    expect(dp.attached('/run/netns/x', 'sl1234')).toBe(true);
    expect(addon.attachments.get('/run/netns/x|sl1234|ingress')).toBe(dp.progFd(PROG_FROM_POD));
    expect(addon.attachments.get('/run/netns/x|sl1234|egress')).toBe(dp.progFd(PROG_TO_POD));
    dp.detach('/run/netns/x', 'sl1234');
    expect(dp.attached('/run/netns/x', 'sl1234')).toBe(false);
  });

  it('attachNodeLink puts sluice_from_node on a node link\'s ingress only', () => {
    const { addon, dp } = fakeDatapath();
    expect(dp.nodeLinkAttached(null, 'eth0')).toBe(false);
    dp.attachNodeLink(null, 'eth0');
    expect(dp.nodeLinkAttached(null, 'eth0')).toBe(true);
    expect(addon.attachments.get('|eth0|ingress')).toBe(dp.progFd(PROG_FROM_NODE));
    expect(addon.attachments.has('|eth0|egress')).toBe(false);
  });
});

describe('FqdnAllowMap', () => {
  it('put, get, delete and entries over (rule, address) → expiry in monotonic ns', () => {
    const { addon, dp } = fakeDatapath();
    const allows = dp.fqdnAllows;
    allows.put(100, '192.0.2.10', 5_000_000_000n);
    allows.put(100, '2001:db8::10', 6_000_000_000n);
    allows.put(101, '192.0.2.10', 7_000_000_000n);
    expect(addon.map(MAP_FQDN).entries.get(hex(fqdnCodec.encodeKey(100, '192.0.2.10')))).toEqual(fqdnCodec.encode(5_000_000_000n));
    expect(allows.get(100, '2001:db8::10')).toBe(6_000_000_000n);
    expect(allows.get(102, '192.0.2.10')).toBeUndefined();
    expect(allows.delete(101, '192.0.2.10')).toBe(true);
    expect(allows.delete(101, '192.0.2.10')).toBe(false);
    expect([...allows.entries()]).toEqual([
      { rule: 100, ip: '192.0.2.10', expiresNs: 5_000_000_000n },
      { rule: 100, ip: '2001:db8::10', expiresNs: 6_000_000_000n },
    ]);
    expect(dp.fqdnAllows).toBe(allows); // one owner per map
  });

  it('a full map is SLUICE_MAP_FULL naming sluice_fqdn_v1', () => {
    const { dp } = fakeDatapath(sluiceMapSpecs(1));
    dp.fqdnAllows.put(100, '192.0.2.10', 1n);
    expect(() => dp.fqdnAllows.put(100, '192.0.2.11', 1n)).toThrow(expect.objectContaining({ code: 'SLUICE_MAP_FULL', message: `${MAP_FQDN} is full` }));
  });
});

describe('DnsNatTable', () => {
  function natValue(daddr: string, dport: number, ifindex: number): Buffer {
    const v = Buffer.alloc(dnsCodec.NAT_SIZE);
    const family = daddr.includes(':') ? 6 : 4;
    const bytes = family === 4 ? Buffer.from(daddr.split('.').map(Number)) : ipcacheCodec.encodeKey(daddr).subarray(ipcacheCodec.KEY_OFFSETS.addr);
    bytes.copy(v, dnsCodec.NAT_OFFSETS.daddr);
    v.writeUInt16BE(dport, dnsCodec.NAT_OFFSETS.dport_be);
    v.writeUInt32LE(ifindex, dnsCodec.NAT_OFFSETS.ifindex);
    return v;
  }

  it('finds the flow the datapath redirected, by protocol and client address and port, in both families', () => {
    const { addon, dp } = fakeDatapath();
    const nat = addon.map(MAP_DNS_NAT).entries;
    nat.set(hex(dnsCodec.encodeNatKey(IPPROTO_UDP, '10.1.0.5', 40000)), natValue('10.96.0.10', 53, 12));
    nat.set(hex(dnsCodec.encodeNatKey(IPPROTO_TCP, 'fd00::5', 40001)), natValue('fd00:96::a', 53, 12));
    expect(dp.dnsNat.lookup(IPPROTO_UDP, '10.1.0.5', 40000)).toEqual({ daddr: '10.96.0.10', dport: 53, ifindex: 12 });
    expect(dp.dnsNat.lookup(IPPROTO_TCP, 'fd00::5', 40001)).toEqual({ daddr: 'fd00:96::a', dport: 53, ifindex: 12 });
    // Another protocol or port is another flow.
    expect(dp.dnsNat.lookup(IPPROTO_TCP, '10.1.0.5', 40000)).toBeUndefined();
    expect(dp.dnsNat.lookup(IPPROTO_UDP, '10.1.0.5', 40002)).toBeUndefined();
  });
});

describe('BpfMap', () => {
  it('set on an existing key replaces it in place (no second entry)', () => {
    const { addon, dp } = fakeDatapath();
    dp.ipcache.set('10.1.0.5', 300);
    dp.ipcache.set('10.1.0.5', 301);
    expect(addon.map(MAP_IPCACHE).entries.size).toBe(1);
    expect(dp.ipcache.get('10.1.0.5')).toBe(301);
  });
});

describe('PolicyMap', () => {
  /** A generation's keys: TCP 80-81 (one /15 prefix) and UDP 53, to one peer. */
  function generation(policyId: number): Buffer[] {
    return [
      ...policyCodec.encodeKeys({ policyId, peer: 300, direction: metricsCodec.DIR_FROM_POD, protocol: IPPROTO_TCP, portMin: 80, portMax: 81 }),
      ...policyCodec.encodeKeys({ policyId, peer: 300, direction: metricsCodec.DIR_FROM_POD, protocol: IPPROTO_UDP, portMin: 53, portMax: 53 }),
    ];
  }

  it('writes a generation in one batch and lists its keys decoded', () => {
    const { dp } = fakeDatapath();
    dp.policy.write(generation(1), 9);
    expect([...dp.policy.keys()].map((k) => k.key)).toEqual([
      { prefixlen: policyCodec.PREFIX_FULL - 1, policyId: 1, peer: 300, direction: metricsCodec.DIR_FROM_POD, protocol: IPPROTO_TCP, port: 80 },
      { prefixlen: policyCodec.PREFIX_FULL, policyId: 1, peer: 300, direction: metricsCodec.DIR_FROM_POD, protocol: IPPROTO_UDP, port: 53 },
    ]);
    expect(dp.policy.get(generation(1)[0]!)).toBe(9);
    expect(dp.policy.get(generation(2)[0]!)).toBeUndefined();
  });

  it('a generation that does not fit is SLUICE_MAP_FULL naming the map', () => {
    const { dp } = fakeDatapath(sluiceMapSpecs(1));
    expect(() => dp.policy.write(generation(1))).toThrow(expect.objectContaining({ code: 'SLUICE_MAP_FULL', message: `${MAP_POLICY} is full` }));
  });

  it('delete retires a generation; keys already gone do not count as failures', () => {
    const { addon, dp } = fakeDatapath();
    dp.policy.write(generation(1));
    dp.policy.write(generation(2));
    const [first, second] = generation(1);
    dp.policy.delete([first!]);
    // The batch stops at the key already gone; the rest go key by key.
    expect(dp.policy.delete([first!, second!])).toEqual([]);
    expect([...dp.policy.keys()].map((k) => k.key.policyId)).toEqual([2, 2]);
    expect(addon.map(MAP_POLICY).entries.size).toBe(2);
  });
});
