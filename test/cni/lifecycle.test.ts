// ADD → traffic → CHECK → DEL through the real sluice-cni binary and a real
// agent on a simulated node, dual-stack.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cleanup, cni, podArgs, TestNode, type Netns } from '../helpers/agent.js';

const cleanup = new Cleanup();
let node: TestNode;
let podA: Netns;
let podB: Netns;
const resultA: Record<string, unknown> = {};

beforeAll(async () => {
  node = new TestNode(cleanup, { podCidr: '10.60.0.0/24,fd00:60::/64', nodeIp: '10.60.255.1/32' });
  await node.start();
  podA = node.podNetns(cleanup);
  podB = node.podNetns(cleanup);
});
afterAll(() => cleanup.run());

describe('pod lifecycle', () => {
  it('ADD wires a dual-stack pod and answers in the asked version', () => {
    const r = cni({ command: 'ADD', containerId: 'ctr-a', netns: podA.path, ifname: 'eth0', args: podArgs('x', 'a'), config: node.conf('1.1.0') });
    expect(r.status, r.stdout).toBe(0);
    Object.assign(resultA, r.json);
    expect(r.json).toMatchObject({
      cniVersion: '1.1.0',
      interfaces: [{ name: expect.stringMatching(/^slc[0-9a-f]{11}$/), mtu: 1500 }, { name: 'eth0', sandbox: podA.path, mtu: 1500 }],
      ips: [
        { address: expect.stringMatching(/^10\.60\.0\.\d+\/32$/), gateway: '169.254.1.1', interface: 1 },
        { address: expect.stringMatching(/^fd00:60::[0-9a-f]+\/128$/), gateway: 'fe80::1', interface: 1 },
      ],
      routes: [{ dst: '0.0.0.0/0', gw: '169.254.1.1' }, { dst: '::/0', gw: 'fe80::1' }],
    });
    const addrs = podA.exec('ip', ['-o', 'addr', 'show', 'dev', 'eth0']);
    expect(addrs).toContain(((r.json!.ips as Array<{ address: string }>)[0]!).address);
    expect(podA.exec('ip', ['route'])).toMatch(/default via 169\.254\.1\.1 dev eth0/);
  });

  it('the node reaches the pod, and pods reach each other over v4 and v6', () => {
    const r = cni({ command: 'ADD', containerId: 'ctr-b', netns: podB.path, ifname: 'eth0', args: podArgs('x', 'b'), config: node.conf('1.0.0') });
    expect(r.status, r.stdout).toBe(0);
    const [a4, a6] = (resultA.ips as Array<{ address: string }>).map((i) => i.address.split('/')[0]!);
    const [b4, b6] = (r.json!.ips as Array<{ address: string }>).map((i) => i.address.split('/')[0]!);
    expect(node.ns.ping(a4!)).toBe(true);
    expect(podB.ping(a4!)).toBe(true);
    expect(podA.ping(b4!)).toBe(true);
    expect(podA.exec('ping', ['-6', '-c', '1', '-W', '2', b6!], { allowFail: true })).toMatch(/1 received/);
    expect(podB.exec('ping', ['-6', '-c', '1', '-W', '2', a6!], { allowFail: true })).toMatch(/1 received/);
  });

  it('CHECK passes on a healthy pod', () => {
    const r = cni({ command: 'CHECK', containerId: 'ctr-a', netns: podA.path, ifname: 'eth0', args: podArgs('x', 'a'), config: node.conf('1.1.0', { prevResult: resultA }) });
    expect(r.status, r.stdout).toBe(0);
  });

  it('DEL removes everything and is idempotent', () => {
    for (const id of ['ctr-a', 'ctr-b']) {
      for (let i = 0; i < 2; i++) {
        const r = cni({ command: 'DEL', containerId: id, netns: id === 'ctr-a' ? podA.path : podB.path, ifname: 'eth0', config: node.conf() });
        expect(r.status, r.stdout).toBe(0);
        expect(r.stdout).toBe('');
      }
    }
    expect(node.hostVeths()).toEqual([]);
    expect(node.allocations()).toEqual([]);
    expect(node.endpointRecords()).toEqual([]);
    expect(node.mapEntries()).toEqual([]);
    expect(podA.exec('ip', ['-o', 'link'])).not.toContain('eth0');
  });
});
