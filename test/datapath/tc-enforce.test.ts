// The tc programs from bpf/ on a real veth: they count what passes, drop when
// the endpoint map says so (with a reason, counted and sent as a flow event),
// and drop on a veth with no endpoint entry (fail closed).
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Datapath, DropReason, endpointCodec, MAP_ENDPOINTS, MAP_METRICS, metricsCodec, REASON_FORWARDED } from '../../src/datapath/index.js';
import { native } from '../../src/native/index.js';
import { Cleanup, uniqueName, type Netns } from '../helpers/netns.js';

const cleanup = new Cleanup();
let node: Netns;
let pod: Netns;
let dp: Datapath;
let hostIf: string;
let ifindex: number;
const bpffs = `/sys/fs/bpf/${uniqueName('dp')}`;
const POD_IPS = ['10.250.0.2'];

function count(reason: number, direction: number): bigint {
  return dp.metrics().find((r) => r.reason === reason && r.direction === direction)?.packets ?? 0n;
}

beforeAll(() => {
  node = cleanup.netns('node');
  pod = cleanup.netns('pod');
  hostIf = uniqueName('v');
  const n = native();
  n.linkAddVeth(node.path, hostIf, 'eth0', { peerNetns: pod.path, mtu: 1500 });
  n.addrAdd(node.path, hostIf, '10.250.0.1/24');
  n.linkSet(node.path, hostIf, { up: true });
  n.addrAdd(pod.path, 'eth0', '10.250.0.2/24');
  n.linkSet(pod.path, 'eth0', { up: true });
  ifindex = n.linkGet(node.path, hostIf)!.ifindex;
  mkdirSync(bpffs, { recursive: true });
  cleanup.add(() => rmSync(bpffs, { recursive: true, force: true }));
  dp = Datapath.open({ bpffs });
  cleanup.add(() => dp.close());
});

afterAll(() => cleanup.run());

describe('tc datapath on a veth', () => {
  it('pins its maps under --bpffs', () => {
    expect(native().objGet(`${bpffs}/sluice_endpoints_v3`)).toBeTypeOf('number');
  });

  it('passes and counts traffic of a programmed endpoint', () => {
    dp.upsertEndpoint(ifindex, { identity: 7, flags: 0, ips: POD_IPS });
    dp.attach(node.path, hostIf);
    expect(native().tcQuery(node.path, hostIf, 'ingress', { priority: 1, handle: 1 })).toBeTypeOf('number');
    const beforeOut = count(REASON_FORWARDED, metricsCodec.DIR_FROM_POD);
    const beforeIn = count(REASON_FORWARDED, metricsCodec.DIR_TO_POD);
    expect(pod.ping('10.250.0.1', 3)).toBe(true);
    // 3 echo requests out of the pod, 3 replies into it (plus ARP).
    expect(count(REASON_FORWARDED, metricsCodec.DIR_FROM_POD) - beforeOut).toBeGreaterThanOrEqual(3n);
    expect(count(REASON_FORWARDED, metricsCodec.DIR_TO_POD) - beforeIn).toBeGreaterThanOrEqual(3n);
  });

  it('drops everything once the endpoint map says so, with a reason and a flow event', () => {
    const events = dp.openEvents();
    try {
      events.drain();
      dp.upsertEndpoint(ifindex, { identity: 7, flags: endpointCodec.FLAG_DROP_ALL, ips: POD_IPS });
      expect(dp.getEndpoint(ifindex)).toEqual({ identity: 7, flags: endpointCodec.FLAG_DROP_ALL, policyId: 0, ips: POD_IPS });
      const before = count(DropReason.ENDPOINT_DISABLED, metricsCodec.DIR_FROM_POD);
      expect(pod.ping('10.250.0.1', 2)).toBe(false);
      expect(count(DropReason.ENDPOINT_DISABLED, metricsCodec.DIR_FROM_POD) - before).toBeGreaterThanOrEqual(2n);
      const drops = events.drain().filter((e) => e.reason === DropReason.ENDPOINT_DISABLED && e.family === 4);
      expect(drops.length).toBeGreaterThanOrEqual(1);
      expect(drops[0]).toMatchObject({ ifindex, direction: metricsCodec.DIR_FROM_POD, saddr: '10.250.0.2', daddr: '10.250.0.1', protocol: 1 });
    } finally {
      events.close();
    }
  });

  it('a map update opens it again, without re-attaching', () => {
    dp.upsertEndpoint(ifindex, { identity: 7, flags: 0, ips: POD_IPS });
    expect(pod.ping('10.250.0.1', 1)).toBe(true);
  });

  it('drops what the pod sends from an address that is not its own (spoofed-source)', () => {
    // The entry names another address as the pod's: its real one is now foreign.
    dp.upsertEndpoint(ifindex, { identity: 7, flags: 0, ips: ['10.250.0.3'] });
    const before = count(DropReason.SPOOFED_SOURCE, metricsCodec.DIR_FROM_POD);
    expect(pod.ping('10.250.0.1', 1)).toBe(false);
    expect(count(DropReason.SPOOFED_SOURCE, metricsCodec.DIR_FROM_POD) - before).toBeGreaterThanOrEqual(1n);
    // No IPv4 address at all: nothing IPv4 leaves the pod.
    dp.upsertEndpoint(ifindex, { identity: 7, flags: 0, ips: [] });
    expect(pod.ping('10.250.0.1', 1)).toBe(false);
    dp.upsertEndpoint(ifindex, { identity: 7, flags: 0, ips: POD_IPS });
    expect(pod.ping('10.250.0.1', 1)).toBe(true);
  });

  it('fails closed on a veth with no endpoint entry', () => {
    expect(dp.deleteEndpoint(ifindex)).toBe(true);
    expect(dp.deleteEndpoint(ifindex)).toBe(false);
    const before = count(DropReason.NO_ENDPOINT, metricsCodec.DIR_FROM_POD);
    expect(pod.ping('10.250.0.1', 1)).toBe(false);
    expect(count(DropReason.NO_ENDPOINT, metricsCodec.DIR_FROM_POD) - before).toBeGreaterThanOrEqual(1n);
  });

  it('a second load adopts the pinned maps and their contents', () => {
    dp.upsertEndpoint(ifindex, { identity: 9, flags: 0, ips: POD_IPS });
    const again = Datapath.open({ bpffs });
    try {
      expect(again.getEndpoint(ifindex)).toEqual({ identity: 9, flags: 0, policyId: 0, ips: POD_IPS });
      expect(again.listEndpoints().get(ifindex)).toEqual({ identity: 9, flags: 0, policyId: 0, ips: POD_IPS });
    } finally {
      again.close();
    }
  });

  it('unpins the maps of retired layouts (an upgrade from sluice_endpoints_v2 and sluice_metrics_v1), and nothing else', () => {
    native().objPin(dp.mapFd(MAP_ENDPOINTS), `${bpffs}/sluice_endpoints_v2`);
    native().objPin(dp.mapFd(MAP_METRICS), `${bpffs}/sluice_metrics_v1`);
    expect(existsSync(`${bpffs}/sluice_endpoints_v2`)).toBe(true);
    expect(Datapath.removeRetiredPins(bpffs)).toEqual(['sluice_endpoints_v2', 'sluice_metrics_v1']);
    expect(existsSync(`${bpffs}/sluice_endpoints_v2`)).toBe(false);
    expect(existsSync(`${bpffs}/sluice_metrics_v1`)).toBe(false);
    expect(existsSync(`${bpffs}/sluice_endpoints_v3`)).toBe(true);
    expect(existsSync(`${bpffs}/${MAP_METRICS}`)).toBe(true);
    expect(Datapath.removeRetiredPins(bpffs)).toEqual([]);
  });

  it('detaches cleanly', () => {
    dp.detach(node.path, hostIf);
    expect(native().tcQuery(node.path, hostIf, 'ingress', { priority: 1, handle: 1 })).toBeUndefined();
    expect(native().tcQuery(node.path, hostIf, 'egress', { priority: 1, handle: 1 })).toBeUndefined();
  });
});
