// A real container through a real runtime: a private containerd + runc run a
// locally built busybox image with `ctr run --cni`, which calls the real
// sluice-cni against a real agent on a simulated node. The container gets an
// address from the node's pod CIDR, reaches another pod and is reached by the
// node; when its task is killed, ctr's own cleanup runs CNI DEL and nothing of
// the container is left on the node.
//
// ctr 1.6 sets up CNI only in `ctr run --cni` and tears it down only in the
// cleanup of a foreground (non --detach) `ctr run`, with CNI_NETNS empty, after
// the task is deleted. So the container runs `sleep` with ctr in the
// foreground, the test execs into it, then SIGKILLs the task.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cleanup, cni, podArgs, SLUICE_CNI, TestNode, uniqueName, type Netns } from '../helpers/agent.js';
import { Containerd } from '../helpers/containerd.js';
import { buildBusyboxImage } from '../helpers/oci-image.js';

const IMAGE = 'localhost/slt-busybox:1';
const CONFLIST_VERSION = '1.0.0';
const cleanup = new Cleanup();
let node: TestNode;
let ctrd: Containerd;
let other: Netns;
let otherIp: string;
let containerIp: string;
let before: { veths: string[]; allocations: string[]; records: string[]; map: number[] };
let run: ReturnType<Containerd['spawnCtrWithCni']> | undefined;
const id = uniqueName('ctr');
let execs = 0;

beforeAll(async () => {
  node = new TestNode(cleanup, { podCidr: '10.70.0.0/24', nodeIp: '10.70.255.1/32' });
  await node.start();
  ctrd = new Containerd(cleanup);
  await ctrd.start();
  const image = buildBusyboxImage(join(ctrd.dir, 'image'), IMAGE);
  ctrd.importImage(image.archive);
  // 1.0.0, not 1.1.0: Debian's containerd 1.6.20 vendors libcni 1.1.x, which
  // knows results up to 1.0.0 and fails ADD with `unsupported CNI result
  // version "1.1.0"` after the plugin has answered in the version it was asked.
  const { cniVersion: _v, name: _n, ...plugin } = node.conf(CONFLIST_VERSION);
  ctrd.installCni({ cniVersion: CONFLIST_VERSION, name: 'sluice', plugins: [plugin] }, SLUICE_CNI);

  other = node.podNetns(cleanup);
  const r = cni({ command: 'ADD', containerId: 'slt-other', netns: other.path, ifname: 'eth0', args: podArgs('x', 'other'), config: node.conf() });
  if (r.status !== 0) throw new Error(`ADD of the other pod failed: ${r.stdout}`);
  otherIp = (r.json!.ips as Array<{ address: string }>)[0]!.address.split('/')[0]!;
  before = { veths: node.hostVeths(), allocations: node.allocations(), records: node.endpointRecords(), map: node.mapEntries() };
});

afterAll(() => cleanup.run());

/** The agent's log lines for CNI requests about one container. */
function cniRequests(containerId: string): Array<{ command: string; status: number }> {
  return node
    .log()
    .split('\n')
    .flatMap((l) => {
      try {
        const j = JSON.parse(l) as { msg?: string; status?: number; cni?: { command?: string; containerId?: string } };
        return j.msg === 'CNI request' && j.cni?.containerId === containerId ? [{ command: j.cni.command ?? '', status: j.status ?? -1 }] : [];
      } catch {
        return [];
      }
    });
}

function exec(...cmd: string[]): { status: number; out: string } {
  execs += 1;
  const r = ctrd.ctr(['tasks', 'exec', '--exec-id', `e${execs}`, '--fifo-dir', join(ctrd.dir, 'fifo'), id, ...cmd]);
  return { status: r.status, out: r.stdout + r.stderr };
}

async function until<T>(what: string, probe: () => T | undefined | false, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('containerd: ctr run --cni with sluice-cni', () => {
  it('imports the locally built busybox OCI image', () => {
    expect(ctrd.imageRefs()).toContain(IMAGE);
    expect(ctrd.ctrOk(['images', 'check'])).toMatch(/localhost\/slt-busybox:1\s.*complete.*true/);
  });

  it('runs a container whose eth0 sluice-cni wires from the pod CIDR', async () => {
    run = ctrd.spawnCtrWithCni(['run', '--rm', '--cni', ...ctrd.runFlags, IMAGE, id, 'sleep', '3600']);
    await until('the task to run', () => {
      if (run!.child.exitCode !== null) throw new Error(`ctr run exited ${run!.child.exitCode}: ${run!.output()}`);
      return ctrd.tasks().get(id) === 'RUNNING';
    });
    // The network is set up before the task starts, so ADD already happened.
    expect(cniRequests(`slt-${id}`)).toEqual([{ command: 'ADD', status: 0 }]);

    const addr = exec('ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0');
    expect(addr.status, addr.out).toBe(0);
    const m = /inet (10\.70\.0\.\d+)\/32 /.exec(addr.out);
    expect(m, addr.out).not.toBeNull();
    containerIp = m![1]!;
    expect(containerIp).not.toBe(otherIp);
    const route = exec('ip', 'route', 'show');
    expect(route.out).toMatch(/^default via 169\.254\.1\.1 dev eth0/m);

    expect(node.hostVeths()).toHaveLength(before.veths.length + 1);
    expect(node.allocations()).toHaveLength(before.allocations.length + 1);
    expect(node.endpointRecords()).toHaveLength(before.records.length + 1);
    expect(node.mapEntries()).toHaveLength(before.map.length + 1);
  });

  it('the container reaches another pod, and the node reaches the container', () => {
    const ping = exec('ping', '-c', '1', '-W', '2', otherIp);
    expect(ping.status, ping.out).toBe(0);
    expect(ping.out).toMatch(/1 packets received/);
    expect(node.ns.ping(containerIp)).toBe(true);
    expect(other.ping(containerIp)).toBe(true);
  });

  it('killing the task makes ctr run tear down through CNI DEL, leaving nothing of the container', async () => {
    expect(run, 'the container was started').toBeDefined();
    ctrd.ctrOk(['tasks', 'kill', '--signal', 'SIGKILL', id]);
    const code = await Promise.race([run!.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 15_000))]);
    expect(code, run!.output()).toBe(137);
    expect(cniRequests(`slt-${id}`)).toEqual([
      { command: 'ADD', status: 0 },
      { command: 'DEL', status: 0 },
    ]);
    expect(ctrd.tasks().has(id)).toBe(false);
    expect(ctrd.containerIds()).not.toContain(id);
    expect(node.hostVeths()).toEqual(before.veths);
    expect(node.allocations()).toEqual(before.allocations);
    expect(node.endpointRecords()).toEqual(before.records);
    expect(node.mapEntries()).toEqual(before.map);
    expect(node.ns.ping(containerIp)).toBe(false);
    // The other pod is untouched by the container's DEL.
    expect(other.ping('10.70.255.1')).toBe(true);

    const r = cni({ command: 'DEL', containerId: 'slt-other', netns: other.path, ifname: 'eth0', config: node.conf() });
    expect(r.status, r.stdout).toBe(0);
    expect(node.hostVeths()).toEqual([]);
    expect(node.allocations()).toEqual([]);
    expect(node.endpointRecords()).toEqual([]);
    expect(node.mapEntries()).toEqual([]);
  });
});
