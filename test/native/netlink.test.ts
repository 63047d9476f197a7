// Pod wiring with the addon against the real kernel: a "node" namespace holds
// the host side of a veth whose peer is created directly as eth0 in a "pod"
// namespace; addresses, routes and a static neighbour are set with the addon,
// then ping proves the wiring and the list functions are checked against what
// was set. Nothing touches the real host's interfaces.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { native } from '../../src/native/index.js';
import type { NativeAddon } from '../../src/native/index.js';
import { Cleanup, isRoot, sh, uniqueName } from '../helpers/netns.js';
import type { Netns } from '../helpers/netns.js';

const NODE_V4 = '10.244.7.1';
const POD_V4 = '10.244.7.5';
const NODE_V6 = 'fd00:7::1';
const POD_V6 = 'fd00:7::5';

describe.skipIf(!isRoot)('native netlink: pod wiring', () => {
  const cleanup = new Cleanup();
  let n: NativeAddon;
  let node: Netns;
  let pod: Netns;
  let hostIf: string;

  beforeAll(() => {
    n = native();
    node = cleanup.netns('nd');
    pod = cleanup.netns('pd');
    hostIf = uniqueName('h');
  });
  afterAll(() => cleanup.run());

  it('creates a veth whose peer is eth0 directly inside the pod netns', () => {
    n.linkAddVeth(node.path, hostIf, 'eth0', { peerNetns: pod.path, mtu: 1400, peerMac: '02:00:0a:f4:07:05' });

    const host = n.linkGet(node.path, hostIf);
    const eth0 = n.linkGet(pod.path, 'eth0');
    expect(host).toMatchObject({ name: hostIf, mtu: 1400, kind: 'veth', up: false });
    expect(eth0).toMatchObject({ name: 'eth0', mtu: 1400, kind: 'veth', mac: '02:00:0a:f4:07:05' });
    // Each end points at the other's ifindex, in the other namespace.
    expect(host?.peerIfindex).toBe(eth0?.ifindex);
    expect(eth0?.peerIfindex).toBe(host?.ifindex);
    expect(typeof eth0?.linkNetnsid).toBe('number');
    // The peer never existed in the node netns.
    expect(n.linkGet(node.path, 'eth0')).toBeUndefined();
    expect(n.linkGetByIndex(pod.path, eth0?.ifindex ?? -1)?.name).toBe('eth0');
  });

  it('configures links, addresses, routes and a neighbour, and ping works over v4 and v6', () => {
    n.linkSet(node.path, hostIf, { up: true });
    n.linkSet(pod.path, 'eth0', { up: true });

    // Node side: a /32 for the gateway address plus a link route to the pod.
    n.addrAdd(node.path, hostIf, `${NODE_V4}/32`);
    n.addrAdd(node.path, hostIf, `${NODE_V6}/64`, { noDad: true });
    n.routeAdd(node.path, { dst: `${POD_V4}/32`, dev: hostIf, scope: 'link' });

    // Pod side: /32 address, link route to the gateway, default via it.
    n.addrAdd(pod.path, 'eth0', `${POD_V4}/32`);
    n.addrAdd(pod.path, 'eth0', `${POD_V6}/64`, { noDad: true });
    n.routeAdd(pod.path, { dst: `${NODE_V4}/32`, dev: 'eth0' });
    n.routeAdd(pod.path, { dst: '0.0.0.0/0', gateway: NODE_V4, dev: 'eth0' });
    n.routeAdd(pod.path, { dst: '10.244.99.0/24', gateway: NODE_V4, dev: 'eth0', onlink: true, metric: 50 });

    const hostMac = n.linkGet(node.path, hostIf)?.mac ?? '';
    expect(hostMac).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    n.neighAdd(pod.path, { dev: 'eth0', ip: NODE_V4, mac: hostMac, permanent: true });
    expect(pod.exec('ip', ['neigh', 'show', NODE_V4, 'dev', 'eth0'])).toMatch(new RegExp(`${hostMac}.*PERMANENT`));

    expect(pod.ping(NODE_V4)).toBe(true);
    expect(pod.ping(NODE_V6)).toBe(true);
    expect(node.ping(POD_V4)).toBe(true);
    expect(node.ping(POD_V6)).toBe(true);
    // Sanity check of the probe itself: the node has no route to this one.
    expect(node.ping('10.244.123.1')).toBe(false);
  });

  it('lists what was set', () => {
    const links = n.linkList(pod.path);
    expect(links.map((l) => l.name).sort()).toEqual(['eth0', 'lo']);
    expect(links.find((l) => l.name === 'eth0')).toMatchObject({ up: true, mtu: 1400 });

    const addrs = n.addrList(pod.path, 'eth0');
    expect(addrs).toContainEqual(
      expect.objectContaining({ ifname: 'eth0', family: 4, address: POD_V4, prefixLen: 32 }),
    );
    expect(addrs).toContainEqual(expect.objectContaining({ family: 6, address: POD_V6, prefixLen: 64 }));
    expect(addrs.every((a) => a.ifname === 'eth0')).toBe(true);
    expect(n.addrList(pod.path).some((a) => a.ifname === 'lo' && a.address === '127.0.0.1')).toBe(true);

    const v4 = n.routeList(pod.path, 4);
    expect(v4).toContainEqual(
      expect.objectContaining({ dst: '0.0.0.0/0', gateway: NODE_V4, dev: 'eth0', scope: 'universe', table: 254 }),
    );
    expect(v4).toContainEqual(expect.objectContaining({ dst: `${NODE_V4}/32`, dev: 'eth0', scope: 'link' }));
    expect(v4).toContainEqual(
      expect.objectContaining({ dst: '10.244.99.0/24', gateway: NODE_V4, onlink: true, metric: 50 }),
    );
    const v6 = n.routeList(pod.path, 6);
    expect(v6).toContainEqual(expect.objectContaining({ dst: 'fd00:7::/64', dev: 'eth0' }));
    expect(v6.every((r) => r.dst.includes(':'))).toBe(true);

    expect(n.routeList(node.path, 4)).toContainEqual(
      expect.objectContaining({ dst: `${POD_V4}/32`, dev: hostIf, scope: 'link' }),
    );
  });

  it('replaces and deletes routes and addresses, reporting absence as false', () => {
    n.routeReplace(pod.path, { dst: '0.0.0.0/0', gateway: NODE_V4, dev: 'eth0', src: POD_V4 });
    const defaults = n.routeList(pod.path, 4).filter((r) => r.dst === '0.0.0.0/0');
    expect(defaults).toHaveLength(1);
    expect(defaults[0]?.src).toBe(POD_V4);

    expect(n.routeDel(pod.path, { dst: '10.244.99.0/24' })).toBe(true);
    expect(n.routeDel(pod.path, { dst: '10.244.99.0/24' })).toBe(false);
    expect(n.routeList(pod.path, 4).some((r) => r.dst === '10.244.99.0/24')).toBe(false);

    expect(n.addrDel(pod.path, 'eth0', `${POD_V6}/64`)).toBe(true);
    expect(n.addrDel(pod.path, 'eth0', `${POD_V6}/64`)).toBe(false);
    expect(n.addrDel(pod.path, 'nosuchlink', `${POD_V6}/64`)).toBe(false);
    expect(n.addrList(pod.path, 'eth0').some((a) => a.address === POD_V6)).toBe(false);
    expect(n.addrList(pod.path, 'nosuchlink')).toEqual([]);
  });

  it('reads and writes sysctls inside the namespace only', () => {
    const key = `net/ipv4/conf/${hostIf}/proxy_arp`;
    expect(n.sysctlRead(node.path, key)).toBe('0');
    n.sysctlWrite(node.path, key, '1');
    expect(n.sysctlRead(node.path, key)).toBe('1');
    expect(node.exec('cat', [`/proc/sys/${key}`]).trim()).toBe('1');
    // The link only exists in the node netns, so the key does not exist here.
    expect(n.sysctlRead(null, key)).toBeUndefined();
    expect(n.sysctlRead(pod.path, 'net/ipv4/conf/eth0/forwarding')).toBe('0');
  });

  it('renames, reconfigures and moves a link to another netns in one linkSet', () => {
    const a = uniqueName('a');
    const b = uniqueName('b');
    n.linkAddVeth(node.path, a, b, {});
    n.linkSet(node.path, b, { netnsPath: pod.path, newName: 'eth1', mtu: 1300, mac: '02:00:00:00:aa:01', up: true });
    expect(n.linkGet(node.path, b)).toBeUndefined();
    expect(n.linkGet(pod.path, 'eth1')).toMatchObject({ mtu: 1300, mac: '02:00:00:00:aa:01', up: true });
    expect(sh('ip', ['-n', pod.name, '-o', 'link', 'show', 'eth1'])).toContain('mtu 1300');
    expect(n.linkDel(node.path, a)).toBe(true);
    // Deleting one end of a veth deletes the pair.
    expect(n.linkGet(pod.path, 'eth1')).toBeUndefined();
    expect(n.linkDel(node.path, a)).toBe(false);
  });
});

describe('linkDelAsync', () => {
  const c = new Cleanup();
  afterAll(() => c.run());
  it('deletes off the event loop, many at once, and reports absence and errors like linkDel', async () => {
    const n = native();
    const ns = c.netns('adel');
    const names = Array.from({ length: 8 }, (_, i) => `sltad${i}`);
    for (const name of names) n.linkAddVeth(ns.path, name, `${name}p`, {});
    const results = await Promise.all(names.map((name) => n.linkDelAsync(ns.path, name)));
    expect(results).toEqual(names.map(() => true));
    expect(n.linkList(ns.path).filter((l) => l.name.startsWith('sltad'))).toEqual([]);
    await expect(n.linkDelAsync(ns.path, names[0]!)).resolves.toBe(false);
    await expect(n.linkDelAsync('/var/run/netns/slt-missing-ns', 'x')).rejects.toMatchObject({ code: 'ENOENT', syscall: 'open' });
  });
});
