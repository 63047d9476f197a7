// The CNI handlers against in-memory fakes of every port (test/fakes/cni.ts,
// test/fakes/netlink.ts), run through runSkel as the agent runs them, so the
// assertions are on the spec JSON the runtime would read.
//
// The ADD failure matrix is generated: a successful ADD's call log is the
// list of steps, and each step is failed in turn on a fresh node, so a step
// added to ADD later is covered without touching this file. After each
// failure the whole node (links, addresses, routes and neighbours in every
// namespace, the agent's IPAM, the delegated plugin's allocations, the
// endpoint registry) must be exactly as it was before the ADD.
import { describe, expect, it } from 'vitest';
import { FakeCniNode, type NodeSnapshot } from '../../test/fakes/cni.js';
import { DatapathError } from '../datapath/index.js';
import { IpamError } from '../ipam/index.js';
import { NativeError } from '../native/index.js';
import { CniCode, CniError } from './errors.js';
import { GATEWAY_V4, GATEWAY_V6, makeHandlers, SluiceCniCode } from './handlers.js';
import { runSkel, type CniCommand } from './skel.js';
import { hostVethName } from './veth-name.js';
import { SUPPORTED_VERSIONS } from './versions.js';

const NETNS = '/var/run/netns/pod-a';
const OTHER_NETNS = '/var/run/netns/pod-other';
const CNI_PATH = '/opt/cni/bin';
const DELEGATED_IPAM = { type: 'host-local', subnet: '10.99.0.0/24' };

interface Call {
  command: CniCommand;
  containerId?: string;
  netns?: string;
  ifname?: string;
  args?: string;
  path?: string;
  config?: Record<string, unknown>;
}

interface Answer {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

function conf(version: string = '1.1.0', extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { cniVersion: version, name: 'sluice', type: 'sluice-cni', ...extra };
}

/** One CNI invocation through runSkel, as the agent serves it: exit status and stdout JSON. */
async function cni(node: FakeCniNode, c: Call): Promise<Answer> {
  const env: Record<string, string> = { CNI_COMMAND: c.command, CNI_PATH: c.path ?? CNI_PATH };
  if (c.containerId !== undefined) env.CNI_CONTAINERID = c.containerId;
  if (c.netns !== undefined) env.CNI_NETNS = c.netns;
  if (c.ifname !== undefined) env.CNI_IFNAME = c.ifname;
  if (c.args !== undefined) env.CNI_ARGS = c.args;
  let out = '';
  const status = await runSkel(makeHandlers(node.deps), {
    env,
    readStdin: () => (c.config ? JSON.stringify(c.config) : ''),
    writeStdout: (s) => (out += s),
  });
  return { status, json: out === '' ? undefined : JSON.parse(out) };
}

function add(node: FakeCniNode, containerId: string, opts: { netns?: string; version?: string; extra?: Record<string, unknown> } = {}): Promise<Answer> {
  return cni(node, {
    command: 'ADD',
    containerId,
    netns: opts.netns ?? NETNS,
    ifname: 'eth0',
    args: `K8S_POD_NAMESPACE=default;K8S_POD_NAME=${containerId}`,
    config: conf(opts.version, opts.extra),
  });
}

function del(node: FakeCniNode, containerId: string, opts: { netns?: string; version?: string; extra?: Record<string, unknown>; path?: string } = {}): Promise<Answer> {
  return cni(node, { command: 'DEL', containerId, netns: opts.netns, ifname: 'eth0', path: opts.path, config: conf(opts.version, opts.extra) });
}

/** A node with a pod namespace for the ADD under test and one other pod already attached. */
async function nodeWithNeighbour(scenario: Scenario): Promise<FakeCniNode> {
  const node = new FakeCniNode({ pools: scenario.pools });
  node.netlink.addLink(null, 'eth0');
  node.netlink.addNetns(NETNS);
  node.netlink.addNetns(OTHER_NETNS);
  const other = await add(node, 'neighbour', { netns: OTHER_NETNS, extra: scenario.extra });
  expect(other.status).toBe(0);
  return node;
}

interface Scenario {
  name: string;
  pools?: string[];
  extra?: Record<string, unknown>;
}

const SCENARIOS: Scenario[] = [
  { name: 'agent IPAM, dual-stack' },
  { name: 'agent IPAM, IPv4 only', pools: ['10.244.1.'] },
  { name: 'agent IPAM, IPv6 only', pools: ['fd00:244::'] },
  { name: 'delegated IPAM', extra: { ipam: DELEGATED_IPAM } },
];

/** Steps of ADD that run before it changes anything: their errors reach the runtime without the "ADD failed" prefix. */
const PREFLIGHT = new Set(['node.netnsExists', 'endpoints.get']);

interface Step {
  port: string;
  op: string;
  nth: number;
}

/** The steps of one successful ADD on a node like the one the matrix uses. */
async function stepsOf(scenario: Scenario): Promise<Step[]> {
  const node = await nodeWithNeighbour(scenario);
  node.log.reset();
  expect((await add(node, 'victim', { extra: scenario.extra })).status).toBe(0);
  return node.log.calls.map(({ port, op, nth }) => ({ port, op, nth }));
}

function injected(step: Step): Error {
  const what = `injected failure of ${step.port}.${step.op}#${step.nth}`;
  return step.port === 'netlink' ? new NativeError({ code: 'EIO', errno: 5, syscall: step.op, details: what }) : new Error(what);
}

function expectNothingOf(node: FakeCniNode, containerId: string, netns = NETNS): void {
  expect(node.netlink.linkGet(null, hostVethName(containerId, 'eth0'))).toBeUndefined();
  if (node.netlink.hasNetns(netns)) expect(node.netlink.linkGet(netns, 'eth0')).toBeUndefined();
  expect(node.endpoints.get(containerId, 'eth0')).toBeUndefined();
  expect(node.ipam.owners().some((o) => o.containerId === containerId)).toBe(false);
  expect(Object.keys(node.delegate.snapshot()).some((k) => k.startsWith(`${containerId}/`))).toBe(false);
}

describe('ADD on fakes', () => {
  for (const version of SUPPORTED_VERSIONS) {
    it(`returns the spec result for cniVersion ${version} and wires both ends`, async () => {
      const node = new FakeCniNode();
      node.netlink.addNetns(NETNS);
      const r = await add(node, 'c1', { version });
      expect(r.status).toBe(0);
      const hostIfname = hostVethName('c1', 'eth0');
      const host = node.netlink.linkGet(null, hostIfname)!;
      const pod = node.netlink.linkGet(NETNS, 'eth0')!;
      const v0 = version.startsWith('0.');
      expect(r.json).toEqual({
        cniVersion: version,
        interfaces: [
          { name: hostIfname, mac: host.mac, ...(version === '1.1.0' ? { mtu: 1500 } : {}) },
          { name: 'eth0', mac: pod.mac, ...(version === '1.1.0' ? { mtu: 1500 } : {}), sandbox: NETNS },
        ],
        ips: [
          { ...(v0 ? { version: '4' } : {}), address: '10.244.1.2/32', gateway: GATEWAY_V4, interface: 1 },
          { ...(v0 ? { version: '6' } : {}), address: 'fd00:244::2/128', gateway: GATEWAY_V6, interface: 1 },
        ],
        routes: [
          { dst: '0.0.0.0/0', gw: GATEWAY_V4 },
          { dst: '::/0', gw: GATEWAY_V6 },
        ],
        dns: {},
      });
      // Both ends up with the MTU; the pod has its addresses, the gateway
      // neighbours (the host end's MAC) and default routes; the node routes
      // each address to the host end with a neighbour entry for the pod's MAC.
      expect([host.up, pod.up, host.mtu, pod.mtu]).toEqual([true, true, 1500, 1500]);
      expect(node.netlink.addrList(NETNS, 'eth0').map((a) => `${a.address}/${a.prefixLen}`)).toEqual(['10.244.1.2/32', 'fd00:244::2/128']);
      expect(node.netlink.neighbours(NETNS)).toEqual([
        { dev: 'eth0', ip: GATEWAY_V4, mac: host.mac, permanent: true },
        { dev: 'eth0', ip: GATEWAY_V6, mac: host.mac, permanent: true },
      ]);
      expect([...node.netlink.routeList(NETNS, 4), ...node.netlink.routeList(NETNS, 6)]).toEqual([
        { dst: '0.0.0.0/0', gateway: GATEWAY_V4, dev: 'eth0', onlink: true },
        { dst: '::/0', gateway: GATEWAY_V6, dev: 'eth0', onlink: false },
      ]);
      expect([...node.netlink.routeList(null, 4), ...node.netlink.routeList(null, 6)]).toEqual([
        { dst: '10.244.1.2/32', dev: hostIfname, scope: 'link' },
        { dst: 'fd00:244::2/128', dev: hostIfname, scope: 'link' },
      ]);
      expect(node.netlink.neighbours(null)).toEqual([
        { dev: hostIfname, ip: '10.244.1.2', mac: pod.mac, permanent: true },
        { dev: hostIfname, ip: 'fd00:244::2', mac: pod.mac, permanent: true },
      ]);
      const rec = node.endpoints.get('c1', 'eth0')!;
      expect(rec).toMatchObject({
        containerId: 'c1',
        ifname: 'eth0',
        netns: NETNS,
        hostIfname,
        hostIfindex: host.ifindex,
        hostMac: host.mac,
        podMac: pod.mac,
        mtu: 1500,
        ips: ['10.244.1.2/32', 'fd00:244::2/128'],
        pod: { namespace: 'default', name: 'c1' },
        createdAt: node.clock.toISOString(),
      });
      expect(rec.delegatedIpam).toBeUndefined();
      expect(node.endpoints.programmed(rec)).toBe(true);
    });
  }

  it('takes the MTU from the config for both ends and the result', async () => {
    const node = new FakeCniNode();
    node.netlink.addNetns(NETNS);
    const r = await add(node, 'c1', { extra: { mtu: 1400 } });
    expect(r.status).toBe(0);
    expect(r.json.interfaces.map((i: { mtu: number }) => i.mtu)).toEqual([1400, 1400]);
    expect(node.netlink.linkGet(NETNS, 'eth0')!.mtu).toBe(1400);
    expect(node.netlink.linkGet(null, hostVethName('c1', 'eth0'))!.mtu).toBe(1400);
  });

  it('with delegated IPAM: the plugin address as a /32, its DNS, and what DEL needs recorded', async () => {
    const node = new FakeCniNode();
    node.netlink.addNetns(NETNS);
    const r = await add(node, 'c1', { extra: { ipam: DELEGATED_IPAM } });
    expect(r.status).toBe(0);
    expect(r.json.ips).toEqual([{ address: '10.99.0.10/32', gateway: GATEWAY_V4, interface: 1 }]);
    expect(r.json.routes).toEqual([{ dst: '0.0.0.0/0', gw: GATEWAY_V4 }]);
    expect(r.json.dns).toEqual({ nameservers: ['10.99.0.53'] });
    expect(node.ipam.snapshot()).toEqual({}); // the agent's own IPAM is not used
    expect(node.delegate.snapshot()).toEqual({ 'c1/eth0': '10.99.0.10/24' });
    const addCall = node.log.calls.find((c) => c.port === 'delegate' && c.op === 'ADD')!;
    expect(addCall.args[0]).toMatchObject({ ipam: DELEGATED_IPAM, env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0', CNI_NETNS: NETNS, CNI_PATH } });
    expect(node.endpoints.get('c1', 'eth0')).toMatchObject({ delegatedIpam: DELEGATED_IPAM, cniPath: CNI_PATH });
  });

  it('answers a retried ADD with the same result and changes nothing', async () => {
    const node = new FakeCniNode();
    node.netlink.addNetns(NETNS);
    const first = await add(node, 'c1');
    const before = node.snapshot();
    const again = await add(node, 'c1');
    expect(again).toEqual(first);
    expect(node.snapshot()).toEqual(before);
  });

  it('replaces an attachment whose datapath state is gone (a retried ADD after a partial loss)', async () => {
    const node = new FakeCniNode();
    node.netlink.addNetns(NETNS);
    expect((await add(node, 'c1')).status).toBe(0);
    node.endpoints.forgetProgram('c1', 'eth0');
    const r = await add(node, 'c1');
    expect(r.status).toBe(0);
    const rec = node.endpoints.get('c1', 'eth0')!;
    expect(node.endpoints.programmed(rec)).toBe(true);
    expect(node.netlink.linkGet(null, rec.hostIfname)!.ifindex).toBe(rec.hostIfindex);
    expect(node.netlink.linkList(null).filter((l) => l.kind === 'veth')).toHaveLength(1);
  });

  it('rejects a netns that does not exist with code 4 and touches nothing', async () => {
    const node = new FakeCniNode();
    const before = node.snapshot();
    const r = await add(node, 'c1', { netns: '/var/run/netns/nope' });
    expect(r.status).toBe(1);
    expect(r.json).toMatchObject({ code: CniCode.INVALID_ENV, msg: 'CNI_NETNS "/var/run/netns/nope" is not a network namespace' });
    expect(node.snapshot()).toEqual(before);
  });
});

describe('ADD fails at every step and rolls back', () => {
  for (const scenario of SCENARIOS) {
    it(`${scenario.name}: every step of a successful ADD, failed in turn`, async () => {
      const steps = await stepsOf(scenario);
      const ops = new Set(steps.map((s) => `${s.port}.${s.op}`));
      // The log is the real list of steps; make sure it is not vacuous.
      for (const op of ['netlink.linkAddVeth', 'netlink.linkSet', 'netlink.addrAdd', 'netlink.routeAdd', 'netlink.neighAdd', 'endpoints.register']) expect(ops).toContain(op);
      expect(ops).toContain(scenario.extra?.ipam ? 'delegate.ADD' : 'ipam.allocate');

      for (const step of steps) {
        const label = `${step.port}.${step.op}#${step.nth}`;
        const node = await nodeWithNeighbour(scenario);
        const before: NodeSnapshot = node.snapshot();
        node.log.reset();
        const error = injected(step);
        node.log.failAt(step.port, step.op, step.nth, () => error);
        const r = await add(node, 'victim', { extra: scenario.extra });
        expect(node.log.pendingFaults(), label).toEqual([]);
        expect(r.status, label).toBe(1);
        const prefix = PREFLIGHT.has(`${step.port}.${step.op}`) ? '' : 'ADD failed: ';
        expect(r.json, label).toEqual({ cniVersion: '1.1.0', code: CniCode.INTERNAL, msg: `${prefix}${error.message}`, ...(step.port === 'netlink' ? { details: error.message.replace(/^[^:]+: EIO: /, '') } : {}) });
        expectNothingOf(node, 'victim');
        expect(node.snapshot(), label).toEqual(before);
        // A delegated address that was handed out went back through the plugin's DEL.
        const delegatedAdd = node.log.calls.some((c) => c.port === 'delegate' && c.op === 'ADD');
        if (delegatedAdd && step.op !== 'ADD') {
          expect(node.log.calls.some((c) => c.port === 'delegate' && c.op === 'DEL'), label).toBe(true);
        }
        // The runtime's retry then succeeds on what the rollback left.
        expect((await add(node, 'victim', { extra: scenario.extra })).status, label).toBe(0);
      }
    });
  }

  const cases: Array<{ name: string; extra?: Record<string, unknown>; step: Step; error: () => Error; code: number; msg: string | RegExp }> = [
    {
      name: 'veth exists (EEXIST from the kernel)',
      step: { port: 'netlink', op: 'linkAddVeth', nth: 1 },
      error: () => new NativeError({ code: 'EEXIST', errno: 17, syscall: 'RTM_NEWLINK' }),
      code: SluiceCniCode.INTERFACE_EXISTS,
      msg: `interface eth0 or ${hostVethName('victim', 'eth0')} already exists`,
    },
    {
      name: 'the pool is exhausted',
      step: { port: 'ipam', op: 'allocate', nth: 1 },
      error: () => new IpamError('SLUICE_IPAM_EXHAUSTED', 'no free address in 10.244.1.0/24'),
      code: SluiceCniCode.IP_EXHAUSTED,
      msg: 'no free IP address',
    },
    {
      name: 'the datapath map is full (programming failed)',
      step: { port: 'endpoints', op: 'register', nth: 1 },
      error: () => new DatapathError('SLUICE_MAP_FULL', 'policy for victim/eth0 could not be programmed: map full'),
      code: CniCode.TRY_AGAIN_LATER,
      msg: 'datapath map full',
    },
    {
      name: 'the kernel says E2BIG while programming',
      step: { port: 'endpoints', op: 'register', nth: 1 },
      error: () => new NativeError({ code: 'E2BIG', errno: 7, syscall: 'bpf_map_update_elem' }),
      code: CniCode.TRY_AGAIN_LATER,
      msg: 'datapath map full',
    },
    {
      name: 'programming fails otherwise',
      step: { port: 'endpoints', op: 'register', nth: 1 },
      error: () => new DatapathError('SLUICE_DATAPATH', 'attach failed'),
      code: CniCode.INTERNAL,
      msg: 'ADD failed: attach failed',
    },
    {
      name: 'the delegated plugin fails with its own code',
      extra: { ipam: DELEGATED_IPAM },
      step: { port: 'delegate', op: 'ADD', nth: 1 },
      error: () => new CniError(CniCode.TRY_AGAIN_LATER, 'IPAM plugin host-local: busy'),
      code: CniCode.TRY_AGAIN_LATER,
      msg: 'IPAM plugin host-local: busy',
    },
  ];
  for (const c of cases) {
    it(`maps ${c.name} to code ${c.code} and leaves nothing`, async () => {
      const node = await nodeWithNeighbour({ name: c.name, extra: c.extra });
      const before = node.snapshot();
      node.log.failAt(c.step.port, c.step.op, c.step.nth + node.log.calls.filter((x) => x.port === c.step.port && x.op === c.step.op).length, c.error);
      const r = await add(node, 'victim', { extra: c.extra });
      expect(node.log.pendingFaults()).toEqual([]);
      expect(r.status).toBe(1);
      expect(r.json.code).toBe(c.code);
      if (typeof c.msg === 'string') expect(r.json.msg).toBe(c.msg);
      else expect(r.json.msg).toMatch(c.msg);
      expectNothingOf(node, 'victim');
      expect(node.snapshot()).toEqual(before);
    });
  }

  it('a host veth of the same name already there is code 101 and stays', async () => {
    const node = new FakeCniNode();
    node.netlink.addNetns(NETNS);
    node.netlink.addLink(null, hostVethName('victim', 'eth0'), 'veth');
    const before = node.snapshot();
    const r = await add(node, 'victim');
    expect(r.json).toMatchObject({ code: SluiceCniCode.INTERFACE_EXISTS, msg: `host interface ${hostVethName('victim', 'eth0')} already exists` });
    expect(node.snapshot()).toEqual(before);
  });

  it('an eth0 already in the pod netns is code 101 and stays', async () => {
    const node = new FakeCniNode();
    node.netlink.addNetns(NETNS);
    node.netlink.addLink(NETNS, 'eth0');
    const before = node.snapshot();
    const r = await add(node, 'victim');
    expect(r.json).toMatchObject({ code: SluiceCniCode.INTERFACE_EXISTS, msg: `interface eth0 already exists in ${NETNS}` });
    expect(node.snapshot()).toEqual(before);
  });

  it('a delegated plugin that returns no address: code 999, and its allocation is released', async () => {
    const node = new FakeCniNode();
    node.netlink.addNetns(NETNS);
    node.delegate.addResult = () => ({ cniVersion: '1.1.0', ips: [] });
    const r = await add(node, 'victim', { extra: { ipam: DELEGATED_IPAM } });
    expect(r.json).toMatchObject({ code: CniCode.INTERNAL, msg: 'IPAM plugin host-local returned no addresses' });
    expect(node.delegate.snapshot()).toEqual({});
  });

  it('a delegated plugin whose result cannot be read: code 999, and its allocation is released', async () => {
    const node = new FakeCniNode();
    node.netlink.addNetns(NETNS);
    node.delegate.addResult = () => ({ cniVersion: '1.1.0', ips: [{ gateway: '10.99.0.1' }] });
    const r = await add(node, 'victim', { extra: { ipam: DELEGATED_IPAM } });
    expect(r.json).toMatchObject({ code: CniCode.INTERNAL, msg: 'ADD failed: IPAM result ip without address' });
    expect(node.delegate.snapshot()).toEqual({});
    expectNothingOf(node, 'victim');
  });

  it('reports a reversal that failed too, in details, and still runs the others', async () => {
    const node = new FakeCniNode();
    node.netlink.addNetns(NETNS);
    node.log.failAt('endpoints', 'register', 1, () => new DatapathError('SLUICE_DATAPATH', 'attach failed'));
    node.log.failAt('netlink', 'linkDel', 1, () => new NativeError({ code: 'EBUSY', errno: 16, syscall: 'RTM_DELLINK' }));
    const r = await add(node, 'victim');
    expect(r.json.code).toBe(CniCode.INTERNAL);
    expect(r.json.msg).toBe('ADD failed: attach failed');
    expect(r.json.details).toBe('cleanup also failed: delete veth: RTM_DELLINK: EBUSY');
    // The address went back even though the veth could not be deleted.
    expect(node.ipam.snapshot()).toEqual({});
  });
});

describe('DEL on fakes', () => {
  for (const version of SUPPORTED_VERSIONS) {
    it(`of an unknown container succeeds with no output (cniVersion ${version}), with or without a netns`, async () => {
      const node = new FakeCniNode();
      node.netlink.addNetns(NETNS);
      const before = node.snapshot();
      for (const netns of [undefined, NETNS, '/var/run/netns/gone']) {
        expect(await del(node, 'never-added', { netns, version })).toEqual({ status: 0, json: undefined });
      }
      expect(node.snapshot()).toEqual(before);
    });
  }

  it('removes the veth, the address and the endpoint; a second DEL is a no-op', async () => {
    const node = new FakeCniNode();
    node.netlink.addNetns(NETNS);
    const before = node.snapshot();
    expect((await add(node, 'c1')).status).toBe(0);
    expect(await del(node, 'c1', { netns: NETNS })).toEqual({ status: 0, json: undefined });
    expect(node.snapshot()).toEqual(before);
    expect(await del(node, 'c1', { netns: NETNS })).toEqual({ status: 0, json: undefined });
    expect(node.snapshot()).toEqual(before);
  });

  it('after the netns is gone (the runtime removed it first)', async () => {
    const node = new FakeCniNode();
    node.netlink.addNetns(NETNS);
    expect((await add(node, 'c1')).status).toBe(0);
    node.netlink.removeNetns(NETNS);
    expect((await del(node, 'c1', { netns: NETNS })).status).toBe(0);
    expectNothingOf(node, 'c1');
    expect(node.snapshot().netlink).toEqual({ host: { links: [], addrs: [], routes: [], neighs: [] } });
  });

  it('without CNI_NETNS (allowed for DEL): the host end takes the pod end with it', async () => {
    const node = new FakeCniNode();
    node.netlink.addNetns(NETNS);
    const before = node.snapshot();
    expect((await add(node, 'c1')).status).toBe(0);
    expect((await del(node, 'c1')).status).toBe(0);
    expect(node.snapshot()).toEqual(before);
  });

  it('when the interface is already gone (deleted behind the agent)', async () => {
    const node = new FakeCniNode();
    node.netlink.addNetns(NETNS);
    const before = node.snapshot();
    expect((await add(node, 'c1')).status).toBe(0);
    node.netlink.linkDel(NETNS, 'eth0');
    expect((await del(node, 'c1', { netns: NETNS })).status).toBe(0);
    expect(node.snapshot()).toEqual(before);
  });

  it('with delegated IPAM releases through the plugin, finding it by the CNI_PATH recorded at ADD', async () => {
    const node = new FakeCniNode();
    node.netlink.addNetns(NETNS);
    expect((await add(node, 'c1', { extra: { ipam: DELEGATED_IPAM } })).status).toBe(0);
    node.log.reset();
    const r = await cni(node, { command: 'DEL', containerId: 'c1', netns: NETNS, ifname: 'eth0', path: '', config: conf('1.1.0', { ipam: DELEGATED_IPAM }) });
    expect(r.status).toBe(0);
    expect(node.delegate.snapshot()).toEqual({});
    const call = node.log.calls.find((c) => c.port === 'delegate' && c.op === 'DEL')!;
    expect(call.args[0]).toMatchObject({ env: { CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0', CNI_PATH } });
    expectNothingOf(node, 'c1');
  });

  it('a failure is code 999 with "DEL failed", and a retried DEL finishes the job', async () => {
    const node = new FakeCniNode();
    node.netlink.addNetns(NETNS);
    const before = node.snapshot();
    expect((await add(node, 'c1')).status).toBe(0);
    node.log.failAt('endpoints', 'unregister', 1 + node.log.calls.filter((c) => c.op === 'unregister').length, () => new Error('map busy'));
    expect((await del(node, 'c1', { netns: NETNS })).json).toMatchObject({ code: CniCode.INTERNAL, msg: 'DEL failed: map busy' });
    expect((await del(node, 'c1', { netns: NETNS })).status).toBe(0);
    expect(node.snapshot()).toEqual(before);
  });
});

describe('GC on fakes', () => {
  it('is not defined before cniVersion 1.1.0', async () => {
    const node = new FakeCniNode();
    for (const version of SUPPORTED_VERSIONS.filter((v) => v !== '1.1.0')) {
      const r = await cni(node, { command: 'GC', config: conf(version, { 'cni.dev/valid-attachments': [] }) });
      expect(r.json).toMatchObject({ cniVersion: version, code: CniCode.INCOMPATIBLE_VERSION });
    }
  });

  it('removes what is not a valid attachment and keeps the rest', async () => {
    const node = new FakeCniNode();
    node.netlink.addLink(null, 'eth0');
    node.netlink.addNetns(NETNS);
    node.netlink.addNetns(OTHER_NETNS);
    expect((await add(node, 'keep', { netns: NETNS })).status).toBe(0);
    const kept = node.snapshot();
    expect((await add(node, 'stale', { netns: OTHER_NETNS })).status).toBe(0);
    node.ipam.allocate({ containerId: 'leaked-address', ifname: 'eth0' });
    node.netlink.addLink(null, hostVethName('leaked-veth', 'eth0'), 'veth');
    // A valid attachment without a record (quarantined) keeps its veth; a veth not named by us is not ours.
    node.netlink.addLink(null, hostVethName('quarantined', 'eth0'), 'veth');
    node.netlink.addLink(null, 'veth-someone', 'veth');
    const valid = [
      { containerID: 'keep', ifname: 'eth0' },
      { containerID: 'quarantined', ifname: 'eth0' },
    ];
    const r = await cni(node, { command: 'GC', config: conf('1.1.0', { 'cni.dev/valid-attachments': valid }) });
    expect(r).toEqual({ status: 0, json: undefined });
    expectNothingOf(node, 'stale', OTHER_NETNS);
    expect(node.snapshot().ipam).toEqual(kept.ipam);
    expect(node.snapshot().endpoints).toEqual(kept.endpoints);
    expect(node.netlink.linkList(null).map((l) => l.name).sort()).toEqual(['eth0', hostVethName('keep', 'eth0'), hostVethName('quarantined', 'eth0'), 'veth-someone'].sort());
    expect(node.snapshot().netlink[NETNS]).toEqual(kept.netlink[NETNS]);
    expect(node.snapshot().netlink[OTHER_NETNS]).toEqual({ links: [], addrs: [], routes: [], neighs: [] });
  });

  it('with delegated IPAM: stale attachments are released through the plugin and the plugin runs its own GC', async () => {
    const node = new FakeCniNode();
    node.netlink.addNetns(NETNS);
    node.netlink.addNetns(OTHER_NETNS);
    const extra = { ipam: DELEGATED_IPAM };
    expect((await add(node, 'keep', { netns: NETNS, extra })).status).toBe(0);
    expect((await add(node, 'stale', { netns: OTHER_NETNS, extra })).status).toBe(0);
    node.log.reset();
    const r = await cni(node, { command: 'GC', config: conf('1.1.0', { ...extra, 'cni.dev/valid-attachments': [{ containerID: 'keep', ifname: 'eth0' }] }) });
    expect(r.status).toBe(0);
    expect(node.delegate.snapshot()).toEqual({ 'keep/eth0': '10.99.0.10/24' });
    expect(node.log.calls.filter((c) => c.port === 'delegate').map((c) => c.op)).toEqual(['DEL', 'GC']);
    expectNothingOf(node, 'stale', OTHER_NETNS);
  });

  it('sweeps every stale attachment even if one fails, then reports the failure', async () => {
    const node = new FakeCniNode();
    node.netlink.addNetns(NETNS);
    node.netlink.addNetns(OTHER_NETNS);
    expect((await add(node, 'stale1', { netns: NETNS })).status).toBe(0);
    expect((await add(node, 'stale2', { netns: OTHER_NETNS })).status).toBe(0);
    node.log.reset();
    node.log.failAt('endpoints', 'unregister', 1, () => new Error('map busy'));
    const r = await cni(node, { command: 'GC', config: conf('1.1.0', { 'cni.dev/valid-attachments': [] }) });
    expect(r.json).toMatchObject({ code: CniCode.INTERNAL, msg: 'GC could not remove every stale attachment', details: 'stale1/eth0: map busy' });
    // stale2 went; stale1 went too, on the second pass over addresses that
    // still have an owner, which retried its teardown.
    expectNothingOf(node, 'stale2', OTHER_NETNS);
    expectNothingOf(node, 'stale1');
    expect(node.log.calls.filter((c) => c.op === 'unregister').map((c) => c.args[0])).toEqual(['stale1', 'stale2', 'stale1']);
    const again = await cni(node, { command: 'GC', config: conf('1.1.0', { 'cni.dev/valid-attachments': [] }) });
    expect(again).toEqual({ status: 0, json: undefined });
    expect(node.snapshot().ipam).toEqual({});
  });
});

describe('CHECK and STATUS on fakes', () => {
  it('CHECK passes after ADD and catches a missing address with code 102', async () => {
    const node = new FakeCniNode();
    node.netlink.addNetns(NETNS);
    const r = await add(node, 'c1');
    const check = () => cni(node, { command: 'CHECK', containerId: 'c1', netns: NETNS, ifname: 'eth0', config: conf('1.1.0', { prevResult: r.json }) });
    expect(await check()).toEqual({ status: 0, json: undefined });
    node.netlink.tamperAddrDel(NETNS, 'eth0', '10.244.1.2/32');
    expect((await check()).json).toMatchObject({ code: SluiceCniCode.CHECK_FAILED, msg: 'address 10.244.1.2/32 is missing on eth0' });
  });

  it('STATUS answers with no output', async () => {
    expect(await cni(new FakeCniNode(), { command: 'STATUS', config: conf() })).toEqual({ status: 0, json: undefined });
  });
});
