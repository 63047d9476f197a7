// 100 parallel ADDs get 100 distinct addresses; 100 parallel DELs leave
// nothing; an ADD whose sluice-cni is SIGKILLed at a random point, and an
// agent SIGKILLed mid-burst, leave only state that DEL/GC and a restart clean.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cleanup, cni, cniAsync, podArgs, TestNode, type Netns } from '../helpers/agent.js';

const PODS = 100;
const cleanup = new Cleanup();
let node: TestNode;

beforeAll(async () => {
  node = new TestNode(cleanup, { podCidr: '10.64.0.0/24,fd00:64::/64', nodeIp: '10.64.255.1/32' });
  await node.start();
});
afterAll(() => cleanup.run());

function expectNothingLeft(): void {
  expect(node.hostVeths()).toEqual([]);
  expect(node.allocations()).toEqual([]);
  expect(node.endpointRecords()).toEqual([]);
  expect(node.mapEntries()).toEqual([]);
}

describe('concurrency', () => {
  it(`${PODS} parallel ADDs succeed with distinct IPs, ${PODS} parallel DELs leave nothing`, async () => {
    const pods: Netns[] = Array.from({ length: PODS }, () => cleanup.netns('p'));
    const adds = await Promise.all(
      pods.map((ns, i) => cniAsync({ command: 'ADD', containerId: `par${i}`, netns: ns.path, ifname: 'eth0', args: podArgs('x', `p${i}`), config: node.conf() })),
    );
    for (const r of adds) expect(r.status, r.stdout).toBe(0);
    const v4 = adds.map((r) => (r.json!.ips as Array<{ address: string }>)[0]!.address);
    const v6 = adds.map((r) => (r.json!.ips as Array<{ address: string }>)[1]!.address);
    expect(new Set(v4).size).toBe(PODS);
    expect(new Set(v6).size).toBe(PODS);
    expect(node.hostVeths()).toHaveLength(PODS);
    expect(node.mapEntries()).toHaveLength(PODS);
    // A sample of the pods really has working networking.
    for (const i of [0, 49, 99]) expect(pods[i]!.ping('10.64.255.1')).toBe(true);

    const dels = await Promise.all(pods.map((ns, i) => cniAsync({ command: 'DEL', containerId: `par${i}`, netns: ns.path, ifname: 'eth0', config: node.conf() })));
    for (const r of dels) expect(r.status, r.stdout).toBe(0);
    expectNothingLeft();
  });

  it('an ADD whose plugin process is SIGKILLed at a random point leaves nothing that DEL does not clean', async () => {
    for (let round = 0; round < 12; round++) {
      const ns = cleanup.netns('k');
      const id = `kill${round}`;
      // Kill anywhere from before the request is sent to after the answer.
      const delayMs = Math.random() * 12;
      const r = await cniAsync({ command: 'ADD', containerId: id, netns: ns.path, ifname: 'eth0', config: node.conf() }, undefined, (child) => {
        setTimeout(() => child.kill('SIGKILL'), delayMs);
      });
      // Killed or not, a plugin that answered answered properly.
      if (r.stdout) expect(r.json, r.stdout).toBeDefined();
      // The runtime's answer to a failed/killed ADD is DEL.
      const d = cni({ command: 'DEL', containerId: id, netns: ns.path, ifname: 'eth0', config: node.conf() });
      expect(d.status, d.stdout).toBe(0);
      expect(ns.exec('ip', ['-o', 'link'])).not.toContain('eth0');
      expectNothingLeft();
    }
  });

  it('an agent SIGKILLed in the middle of a burst of ADDs recovers to a state GC cleans fully', async () => {
    const pods = Array.from({ length: 20 }, () => cleanup.netns('g'));
    const burst = Promise.all(pods.map((ns, i) => cniAsync({ command: 'ADD', containerId: `gc${i}`, netns: ns.path, ifname: 'eth0', config: node.conf() })));
    await new Promise((r) => setTimeout(r, 30));
    await node.stop('SIGKILL');
    const results = await burst;
    const ok = results.filter((r) => r.status === 0).length;
    // Whatever did not complete got a proper CNI error.
    for (const r of results) if (r.status !== 0) expect(r.json?.code, r.stdout).toBe(11);
    await node.start();
    // Every ADD the client saw succeed survived the restart (one the agent
    // finished just before dying may too); anything half-done is gone, and
    // records, veths, map entries and addresses agree.
    const records = node.endpointRecords().length;
    expect(records).toBeGreaterThanOrEqual(ok);
    expect(node.hostVeths()).toHaveLength(records);
    expect(node.mapEntries()).toHaveLength(records);
    expect(node.allocations()).toHaveLength(records * 2);
    const gc = cni({ command: 'GC', config: node.conf('1.1.0', { 'cni.dev/valid-attachments': [] }) });
    expect(gc.status, gc.stdout).toBe(0);
    expectNothingLeft();
  });
});
