// CNI spec 1.1 conformance of sluice-cni + agent: every operation in every
// supported version, idempotent DEL in every "absent" shape, CHECK catching
// tampering, GC, STATUS, and every error code with nothing left behind.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cleanup, cni, podArgs, TestNode, type CniCall, type Netns } from '../helpers/agent.js';

const VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
const cleanup = new Cleanup();
let node: TestNode;
let seq = 0;

beforeAll(async () => {
  node = new TestNode(cleanup, { podCidr: '10.62.0.0/24,fd00:62::/64', nodeIp: '10.62.255.1/32' });
  await node.start();
});
afterAll(() => cleanup.run());

function pod(): Netns {
  return node.podNetns(cleanup);
}

function add(netns: Netns, version = '1.1.0', containerId = `c${++seq}`, extra: Partial<CniCall> = {}) {
  const r = cni({ command: 'ADD', containerId, netns: netns.path, ifname: 'eth0', args: podArgs('x', containerId), config: node.conf(version), ...extra });
  return { ...r, containerId };
}

function del(containerId: string, netns: string | undefined, version = '1.1.0') {
  return cni({ command: 'DEL', containerId, netns, ifname: 'eth0', config: node.conf(version) });
}

/** Nothing of any attachment: no veth, no address, no record, no map entry. */
function expectNothingLeft(): void {
  expect(node.hostVeths()).toEqual([]);
  expect(node.allocations()).toEqual([]);
  expect(node.endpointRecords()).toEqual([]);
  expect(node.mapEntries()).toEqual([]);
}

function expectError(r: { status: number; json: Record<string, unknown> | undefined; stdout: string }, code: number, version?: string): void {
  expect(r.status, r.stdout).not.toBe(0);
  expect(r.json, r.stdout).toMatchObject({ code, msg: expect.any(String) });
  if (version) expect(r.json!.cniVersion).toBe(version);
}

describe('VERSION', () => {
  it.each(VERSIONS)('answers %s with every supported version', (v) => {
    const r = cni({ command: 'VERSION', config: { cniVersion: v } });
    expect(r.status).toBe(0);
    expect(r.json).toEqual({ cniVersion: v, supportedVersions: [...VERSIONS] });
  });
  it('answers without any config', () => {
    expect(cni({ command: 'VERSION', config: '' }).json).toEqual({ cniVersion: '1.1.0', supportedVersions: [...VERSIONS] });
  });
});

describe('ADD and DEL in every version', () => {
  it.each(VERSIONS)('%s: result shape as that version defines it', (v) => {
    const ns = pod();
    const r = add(ns, v);
    expect(r.status, r.stdout).toBe(0);
    const json = r.json as { cniVersion: string; ips: Array<Record<string, unknown>>; interfaces: Array<Record<string, unknown>> };
    expect(json.cniVersion).toBe(v);
    expect(json.ips).toHaveLength(2);
    if (v.startsWith('0.')) expect(json.ips.map((i) => i.version)).toEqual(['4', '6']);
    else expect(json.ips.every((i) => !('version' in i))).toBe(true);
    if (v === '1.1.0') expect(json.interfaces[1]!.mtu).toBe(1500);
    else expect(json.interfaces.every((i) => !('mtu' in i))).toBe(true);
    expect(json.interfaces[1]).toMatchObject({ name: 'eth0', sandbox: ns.path, mac: expect.stringMatching(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/) });
    expect(del(r.containerId, ns.path, v).status).toBe(0);
    expectNothingLeft();
  });

  it('a retried ADD returns the same result and allocates nothing new', () => {
    const ns = pod();
    const first = add(ns, '1.0.0', 'retry');
    const again = add(ns, '1.0.0', 'retry');
    expect(again.status).toBe(0);
    expect(again.json).toEqual(first.json);
    expect(node.allocations()).toHaveLength(2);
    del('retry', ns.path);
    expectNothingLeft();
  });
});

describe('DEL is idempotent', () => {
  it('never-added container', () => {
    const r = del('never-added', pod().path);
    expect(r.status, r.stdout).toBe(0);
    expect(r.stdout).toBe('');
  });
  it('netns already gone', () => {
    const ns = pod();
    const r = add(ns);
    ns.destroy();
    expect(del(r.containerId, ns.path).status).toBe(0);
    expectNothingLeft();
  });
  it('empty CNI_NETNS', () => {
    const ns = pod();
    const r = add(ns);
    expect(del(r.containerId, undefined).status).toBe(0);
    expect(del(r.containerId, '').status).toBe(0);
    expectNothingLeft();
  });
  it('interface already gone from the pod', () => {
    const ns = pod();
    const r = add(ns);
    ns.exec('ip', ['link', 'del', 'eth0']);
    expect(del(r.containerId, ns.path).status).toBe(0);
    expectNothingLeft();
  });
  it('agent down: the veth goes at once, the release is queued and applied when the agent starts', async () => {
    const ns = pod();
    const r = add(ns);
    await node.stop();
    try {
      const d = del(r.containerId, ns.path);
      expect(d.status, d.stdout).toBe(0);
      expect(ns.exec('ip', ['-o', 'link'])).not.toContain('eth0');
      expect(node.hostVeths()).toEqual([]);
      const queue = join(node.stateDir, 'cni-pending-del');
      expect(readdirSync(queue)).toEqual([`${r.containerId}.eth0`]);
      expect(node.allocations()).toHaveLength(2); // released once the agent is back
      // STATUS fails with 50, ADD with 11, while the agent is down.
      expectError(cni({ command: 'STATUS', config: node.conf() }), 50, '1.1.0');
      expectError(add(pod()), 11);
    } finally {
      await node.start();
    }
    expect(readdirSync(join(node.stateDir, 'cni-pending-del'))).toEqual([]);
    expectNothingLeft();
  });
});

describe('CHECK', () => {
  function check(containerId: string, ns: Netns, prevResult: unknown, version = '1.1.0') {
    return cni({ command: 'CHECK', containerId, netns: ns.path, ifname: 'eth0', config: node.conf(version, { prevResult }) });
  }

  it('passes on a healthy pod, in every version that has CHECK', () => {
    const ns = pod();
    const r = add(ns);
    for (const v of ['0.4.0', '1.0.0', '1.1.0']) expect(check(r.containerId, ns, r.json, v).status).toBe(0);
    del(r.containerId, ns.path);
  });

  it('is not defined before 0.4.0', () => {
    const ns = pod();
    const r = add(ns, '0.3.1');
    expectError(check(r.containerId, ns, r.json, '0.3.1'), 1, '0.3.1');
    del(r.containerId, ns.path);
  });

  it('fails for an unknown container', () => {
    expectError(check('unknown', pod(), undefined), 3);
  });

  it.each([
    ['the default route removed', (ns: Netns) => ns.exec('ip', ['route', 'del', 'default'])],
    ['the address removed', (ns: Netns, ip: string) => ns.exec('ip', ['addr', 'del', ip, 'dev', 'eth0'])],
    ['the interface down', (ns: Netns) => ns.exec('ip', ['link', 'set', 'eth0', 'down'])],
    ['the MTU changed', (ns: Netns) => ns.exec('ip', ['link', 'set', 'eth0', 'mtu', '1400'])],
    ['the tc program detached', (_ns: Netns, _ip: string, host: string) => node.ns.exec('tc', ['qdisc', 'del', 'dev', host, 'clsact'])],
  ])('fails after tampering: %s', (_what, tamper) => {
    const ns = pod();
    const r = add(ns);
    expect(check(r.containerId, ns, r.json).status).toBe(0);
    const json = r.json as { ips: Array<{ address: string }>; interfaces: Array<{ name: string }> };
    tamper(ns, json.ips[0]!.address, json.interfaces[0]!.name);
    expectError(check(r.containerId, ns, r.json), 102);
    del(r.containerId, ns.path);
  });

  it('fails when prevResult does not match', () => {
    const ns = pod();
    const r = add(ns);
    const forged = { ...r.json, ips: [{ address: '10.62.0.250/32', gateway: '169.254.1.1' }] };
    expectError(check(r.containerId, ns, forged), 102);
    del(r.containerId, ns.path);
  });
});

describe('GC', () => {
  it('removes every attachment not in cni.dev/valid-attachments, and leaks without a record', () => {
    const nsA = pod();
    const nsB = pod();
    const a = add(nsA);
    const b = add(nsB);
    expect(node.hostVeths()).toHaveLength(2);
    const r = cni({ command: 'GC', config: node.conf('1.1.0', { 'cni.dev/valid-attachments': [{ containerID: a.containerId, ifname: 'eth0' }] }) });
    expect(r.status, r.stdout).toBe(0);
    expect(node.hostVeths()).toHaveLength(1);
    expect(node.endpointRecords()).toEqual([`${a.containerId}.eth0.json`]);
    expect(node.allocations()).toHaveLength(2);
    expect(nsB.exec('ip', ['-o', 'link'])).not.toContain('eth0');
    expect(nsA.ping('10.62.255.1')).toBe(true);
    // An empty list removes everything.
    expect(cni({ command: 'GC', config: node.conf('1.1.0', { 'cni.dev/valid-attachments': [] }) }).status).toBe(0);
    expectNothingLeft();
    void b;
  });
  it('is not defined before 1.1.0', () => {
    expectError(cni({ command: 'GC', config: node.conf('1.0.0', { 'cni.dev/valid-attachments': [] }) }), 1, '1.0.0');
  });
});

describe('STATUS', () => {
  it('succeeds with the agent up', () => {
    const r = cni({ command: 'STATUS', config: node.conf() });
    expect(r.status, r.stdout).toBe(0);
    expect(r.stdout).toBe('');
  });
});

describe('bad input: the spec error, and nothing left behind', () => {
  const cases: Array<[string, () => CniCall, number]> = [
    ['invalid JSON', () => ({ command: 'ADD', containerId: 'bad1', netns: pod().path, ifname: 'eth0', config: '{"cniVersion": "1.1.0",' }), 6],
    ['config not an object', () => ({ command: 'ADD', containerId: 'bad2', netns: pod().path, ifname: 'eth0', config: '[1,2]' }), 6],
    ['unsupported version', () => ({ command: 'ADD', containerId: 'bad3', netns: pod().path, ifname: 'eth0', config: node.conf('0.2.0') }), 1],
    ['missing cniVersion', () => ({ command: 'ADD', containerId: 'bad4', netns: pod().path, ifname: 'eth0', config: { ...node.conf(), cniVersion: undefined } }), 7],
    ['missing name', () => ({ command: 'ADD', containerId: 'bad5', netns: pod().path, ifname: 'eth0', config: { ...node.conf(), name: undefined } }), 7],
    ['MTU out of range', () => ({ command: 'ADD', containerId: 'bad6', netns: pod().path, ifname: 'eth0', config: node.conf('1.1.0', { mtu: 70000 }) }), 7],
    ['agentSocket not a string', () => ({ command: 'ADD', containerId: 'bad7', netns: pod().path, ifname: 'eth0', config: node.conf('1.1.0', { agentSocket: 42 }) }), 7],
    ['unknown CNI_COMMAND', () => ({ command: 'FROB', containerId: 'bad8', netns: pod().path, ifname: 'eth0', config: node.conf() }), 4],
    ['missing CNI_COMMAND', () => ({ command: 'ADD', env: { CNI_COMMAND: undefined }, containerId: 'bad9', netns: pod().path, ifname: 'eth0', config: node.conf() }), 4],
    ['missing CNI_CONTAINERID', () => ({ command: 'ADD', netns: pod().path, ifname: 'eth0', config: node.conf() }), 4],
    ['invalid CNI_CONTAINERID', () => ({ command: 'ADD', containerId: '../etc', netns: pod().path, ifname: 'eth0', config: node.conf() }), 4],
    ['missing CNI_IFNAME', () => ({ command: 'ADD', containerId: 'bad10', netns: pod().path, config: node.conf() }), 4],
    ['CNI_IFNAME too long', () => ({ command: 'ADD', containerId: 'bad11', netns: pod().path, ifname: 'eth0123456789abcdef', config: node.conf() }), 4],
    ['missing CNI_NETNS', () => ({ command: 'ADD', containerId: 'bad12', ifname: 'eth0', config: node.conf() }), 4],
    ['non-existent netns', () => ({ command: 'ADD', containerId: 'bad13', netns: '/var/run/netns/slt-does-not-exist', ifname: 'eth0', config: node.conf() }), 4],
    ['a netns path that is not a netns', () => ({ command: 'ADD', containerId: 'bad14', netns: '/etc/hostname', ifname: 'eth0', config: node.conf() }), 4],
    ['malformed CNI_ARGS', () => ({ command: 'ADD', containerId: 'bad15', netns: pod().path, ifname: 'eth0', args: 'K8S_POD_NAME', config: node.conf() }), 4],
    ['unknown CNI_ARGS without IgnoreUnknown', () => ({ command: 'ADD', containerId: 'bad16', netns: pod().path, ifname: 'eth0', args: 'FOO=bar', config: node.conf() }), 4],
    ['delegated IPAM plugin missing', () => ({ command: 'ADD', containerId: 'bad17', netns: pod().path, ifname: 'eth0', config: node.conf('1.1.0', { ipam: { type: 'no-such-ipam' } }) }), 7],
  ];
  it.each(cases)('%s', (_what, make, code) => {
    const call = make();
    expectError(cni(call), code);
    expectNothingLeft();
  });

  it('an interface name clash in the pod', () => {
    const ns = pod();
    ns.exec('ip', ['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'other0']);
    expectError(add(ns, '1.1.0', 'clash'), 101);
    expect(ns.exec('ip', ['-o', 'link'])).toContain('other0'); // theirs, untouched
    expectNothingLeft();
  });
});

describe('IP range exhausted', () => {
  const local = new Cleanup();
  afterAll(() => local.run());
  it('answers 100 and leaves the range as it was', async () => {
    // A /30 holds two pod addresses (.1 and .2).
    const small = new TestNode(local, { podCidr: '10.63.0.0/30' });
    await small.start();
    const call = (id: string) => cni({ command: 'ADD', containerId: id, netns: local.netns('pod').path, ifname: 'eth0', config: small.conf() });
    expect(call('e1').status).toBe(0);
    expect(call('e2').status).toBe(0);
    const r = call('e3');
    expectError(r, 100);
    expect(small.allocations().sort()).toEqual(['10.63.0.1', '10.63.0.2']);
    expect(small.hostVeths()).toHaveLength(2);
    expect(existsSync(join(small.stateDir, 'endpoints', 'e3.eth0.json'))).toBe(false);
  });
});

describe('delegated IPAM (conflist ipam section)', () => {
  it('takes the address from host-local, and DEL releases it there', () => {
    const dataDir = join(node.dir, 'host-local');
    const ipam = { type: 'host-local', ranges: [[{ subnet: '10.65.0.0/24' }]], dataDir };
    const ns = pod();
    const r = cni({ command: 'ADD', containerId: 'hl1', netns: ns.path, ifname: 'eth0', config: node.conf('1.0.0', { ipam }) });
    expect(r.status, r.stdout).toBe(0);
    const address = (r.json!.ips as Array<{ address: string }>)[0]!.address;
    expect(address).toMatch(/^10\.65\.0\.\d+\/32$/);
    expect(node.allocations()).toEqual([]); // the agent's own IPAM is not used
    expect(readdirSync(join(dataDir, 'sluice'))).toContain(address.split('/')[0]);
    expect(ns.ping('10.62.255.1')).toBe(true);
    expect(cni({ command: 'DEL', containerId: 'hl1', netns: ns.path, ifname: 'eth0', config: node.conf('1.0.0', { ipam }) }).status).toBe(0);
    expect(readdirSync(join(dataDir, 'sluice'))).not.toContain(address.split('/')[0]);
    expectNothingLeft();
  });
});
