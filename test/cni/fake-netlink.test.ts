// The fake netlink the CNI handlers' unit tests use (test/fakes/netlink.ts),
// side by side with the kernel: the same calls in two test namespaces (one
// stands in for the node) must give the same answers and fail with the same
// codes, or src/cni/handlers.test.ts proves nothing about the real ADD.
//
// What the fake leaves out, and the comparison therefore drops: the kernel's
// own additions on a link that comes up (IPv6 link-local addresses and
// routes, prefix routes of an address), ifindexes and generated MACs, and
// route attributes the handlers never read back (CHECK reads dst, gateway
// and dev).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Netlink } from '../../src/cni/index.js';
import { native, type Route } from '../../src/native/index.js';
import { FakeNetlink } from '../fakes/netlink.js';
import { Cleanup, type Netns } from '../helpers/netns.js';

const cleanup = new Cleanup();
let node: Netns;
let pod: Netns;
let fake: FakeNetlink;

beforeAll(() => {
  node = cleanup.netns('fnn');
  pod = cleanup.netns('fnp');
  fake = new FakeNetlink();
  fake.addNetns(node.path);
  fake.addNetns(pod.path);
});

afterAll(() => cleanup.run());

type Outcome<T> = T | { error: string };

/** Runs `f` on the kernel's netlink and on the fake one; returns both results (or the error codes). */
function both<T>(f: (nl: Netlink) => T): { kernel: Outcome<T>; fake: Outcome<T> } {
  const run = (nl: Netlink): Outcome<T> => {
    try {
      return f(nl);
    } catch (err) {
      return { error: String((err as { code?: string }).code ?? err) };
    }
  };
  return { kernel: run(native()), fake: run(fake) };
}

function expectSame<T>(f: (nl: Netlink) => T, expected: Outcome<T>): void {
  const r = both(f);
  expect(r.kernel).toEqual(expected);
  expect(r.fake).toEqual(expected);
}

function link(nl: Netlink, netns: string, name: string) {
  const l = nl.linkGet(netns, name);
  return l ? { name: l.name, mtu: l.mtu, up: l.up, kind: l.kind, mac: /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(l.mac) } : undefined;
}

/** The routes the test adds (no kernel-made link-local or prefix routes), as CHECK reads them. */
function routes(nl: Netlink, netns: string, family: 4 | 6): Array<Pick<Route, 'dst' | 'gateway' | 'dev'>> {
  return nl
    .routeList(netns, family)
    .filter((r) => !r.dst.startsWith('fe80:') && !(r.gateway === undefined && r.dst.startsWith('fd00:')))
    .map((r) => ({ dst: r.dst, ...(r.gateway ? { gateway: r.gateway } : {}), ...(r.dev ? { dev: r.dev } : {}) }))
    .sort((a, b) => a.dst.localeCompare(b.dst));
}

function addrs(nl: Netlink, netns: string, ifname: string): string[] {
  return nl
    .addrList(netns, ifname)
    .filter((a) => !a.address.startsWith('fe80:'))
    .map((a) => `${a.address}/${a.prefixLen}`)
    .sort();
}

describe('netlink: kernel and fake agree on what the CNI handlers use', () => {
  it('a veth pair across namespaces, its wiring, and its deletion taking everything on it', () => {
    expectSame((nl) => {
      nl.linkAddVeth(node.path, 'fnh0', 'eth0', { peerNetns: pod.path, mtu: 1400 });
      return [link(nl, node.path, 'fnh0'), link(nl, pod.path, 'eth0')];
    }, [
      { name: 'fnh0', mtu: 1400, up: false, kind: 'veth', mac: true },
      { name: 'eth0', mtu: 1400, up: false, kind: 'veth', mac: true },
    ]);
    // Either name taken is EEXIST.
    expectSame((nl) => nl.linkAddVeth(node.path, 'fnh0', 'eth1', { peerNetns: pod.path }), { error: 'EEXIST' });
    expectSame((nl) => nl.linkAddVeth(node.path, 'fnh1', 'eth0', { peerNetns: pod.path }), { error: 'EEXIST' });
    expectSame((nl) => [nl.linkGet(node.path, 'fnh1'), nl.linkGet(pod.path, 'eth1')], [undefined, undefined]);

    expectSame((nl) => {
      const hostMac = nl.linkGet(node.path, 'fnh0')!.mac;
      nl.linkSet(pod.path, 'eth0', { up: true });
      nl.addrAdd(pod.path, 'eth0', '10.77.0.2/32');
      nl.addrAdd(pod.path, 'eth0', 'fd00:77::2/128', { noDad: true });
      nl.neighAdd(pod.path, { dev: 'eth0', ip: '169.254.1.1', mac: hostMac, permanent: true });
      nl.routeAdd(pod.path, { dst: '0.0.0.0/0', gateway: '169.254.1.1', dev: 'eth0', onlink: true });
      nl.neighAdd(pod.path, { dev: 'eth0', ip: 'fe80::1', mac: hostMac, permanent: true });
      nl.routeAdd(pod.path, { dst: '::/0', gateway: 'fe80::1', dev: 'eth0', onlink: false });
      nl.linkSet(node.path, 'fnh0', { up: true });
      nl.routeAdd(node.path, { dst: '10.77.0.2/32', dev: 'fnh0', scope: 'link' });
      nl.routeAdd(node.path, { dst: 'fd00:77::2/128', dev: 'fnh0', scope: 'link' });
      return {
        up: [link(nl, node.path, 'fnh0')!.up, link(nl, pod.path, 'eth0')!.up],
        addrs: addrs(nl, pod.path, 'eth0'),
        pod: [...routes(nl, pod.path, 4), ...routes(nl, pod.path, 6)],
        node: [...routes(nl, node.path, 4), ...nl.routeList(node.path, 6).filter((r) => r.dst === 'fd00:77::2/128').map((r) => ({ dst: r.dst, dev: r.dev }))],
      };
    }, {
      up: [true, true],
      addrs: ['10.77.0.2/32', 'fd00:77::2/128'],
      pod: [
        { dst: '0.0.0.0/0', gateway: '169.254.1.1', dev: 'eth0' },
        { dst: '::/0', gateway: 'fe80::1', dev: 'eth0' },
      ],
      node: [
        { dst: '10.77.0.2/32', dev: 'fnh0' },
        { dst: 'fd00:77::2/128', dev: 'fnh0' },
      ],
    });

    // The same address or route again is EEXIST; a missing device is ENODEV.
    expectSame((nl) => nl.addrAdd(pod.path, 'eth0', '10.77.0.2/32'), { error: 'EEXIST' });
    expectSame((nl) => nl.routeAdd(node.path, { dst: '10.77.0.2/32', dev: 'fnh0', scope: 'link' }), { error: 'EEXIST' });
    expectSame((nl) => nl.addrAdd(pod.path, 'nope0', '10.77.0.3/32'), { error: 'ENODEV' });
    expectSame((nl) => nl.routeAdd(node.path, { dst: '10.77.0.3/32', dev: 'nope0', scope: 'link' }), { error: 'ENODEV' });
    expectSame((nl) => nl.linkSet(node.path, 'nope0', { up: true }), { error: 'ENODEV' });
    expectSame((nl) => nl.neighAdd(node.path, { dev: 'nope0', ip: '10.77.0.3', mac: '02:00:00:00:00:01', permanent: true }), { error: 'ENODEV' });

    // Deleting the node end deletes the pair, its addresses and every route through it.
    expectSame((nl) => {
      const deleted = nl.linkDel(node.path, 'fnh0');
      return { deleted, pod: nl.linkGet(pod.path, 'eth0'), addrs: nl.addrList(pod.path, 'eth0'), podRoutes: [...routes(nl, pod.path, 4), ...routes(nl, pod.path, 6)], nodeRoutes: routes(nl, node.path, 4) };
    }, { deleted: true, pod: undefined, addrs: [], podRoutes: [], nodeRoutes: [] });
    // A missing link is false, not an error.
    expectSame((nl) => nl.linkDel(node.path, 'fnh0'), false);
  });

  it('linkDelAsync answers like linkDel', async () => {
    for (const nl of [native(), fake] as Netlink[]) {
      nl.linkAddVeth(node.path, 'fnh2', 'eth2', { peerNetns: pod.path });
      expect(await nl.linkDelAsync(pod.path, 'eth2')).toBe(true);
      expect(nl.linkGet(node.path, 'fnh2')).toBeUndefined();
      expect(await nl.linkDelAsync(pod.path, 'eth2')).toBe(false);
    }
  });

  it('a namespace path that is not there is ENOENT', () => {
    expectSame((nl) => nl.linkGet('/var/run/netns/sluice-no-such-netns', 'eth0'), { error: 'ENOENT' });
    expectSame((nl) => nl.linkAddVeth(node.path, 'fnh3', 'eth0', { peerNetns: '/var/run/netns/sluice-no-such-netns' }), { error: 'ENOENT' });
    expectSame((nl) => nl.linkGet(node.path, 'fnh3'), undefined);
  });

  it('a namespace that goes away takes the veth peer in the other namespace with it', async () => {
    const gone = cleanup.netns('fng');
    fake.addNetns(gone.path);
    for (const nl of [native(), fake] as Netlink[]) nl.linkAddVeth(node.path, 'fnh4', 'eth0', { peerNetns: gone.path });
    gone.destroy();
    fake.removeNetns(gone.path);
    // The kernel tears a namespace down asynchronously: wait for it, bounded.
    for (let i = 0; i < 100 && native().linkGet(node.path, 'fnh4'); i++) await new Promise((r) => setTimeout(r, 20));
    expect(native().linkGet(node.path, 'fnh4')).toBeUndefined();
    expect(fake.linkGet(node.path, 'fnh4')).toBeUndefined();
  });
});
