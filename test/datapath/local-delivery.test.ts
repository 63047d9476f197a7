// Local delivery (--datapath-redirect, issue 18): a packet between two pods of
// one node is judged for the sender's egress and the receiver's ingress in
// sluice_from_pod and delivered straight into the receiver's netns
// (bpf_redirect_peer), never through the node's routing and netfilter. Seen
// here by a counting rule in the node's FORWARD chain (every pod-to-pod
// packet of the normal path crosses it), while the receiver's ingress policy
// still decides: a denied connection is dropped with its reason, counted
// under ingress and reported as the receiver's flow. With the switch off,
// the same traffic crosses FORWARD again. Pods from the real sluice-cni;
// real TCP, UDP and ICMP, IPv4 and IPv6.
import { spawnSync } from 'node:child_process';
import type { Reply } from '../../src/api/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callAgent } from '../../src/cli/client.js';
import { Cleanup, podIps, TestNode, type Netns } from '../helpers/agent.js';
import { isRoot } from '../helpers/netns.js';
import { holdConnection as holdFrom, reach, startEchoServers, talk as talkFrom } from '../helpers/servers.js';
import { until } from '../helpers/wait.js';

const POD_CIDR = '10.76.0.0/24,fd00:76::/64';

const PODS = `apiVersion: v1
kind: Namespace
metadata: { name: ld }
---
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: ld, labels: { app: client } }
---
apiVersion: v1
kind: Pod
metadata: { name: web, namespace: ld, labels: { app: web } }
---
apiVersion: v1
kind: Pod
metadata: { name: other, namespace: ld, labels: { app: other } }
`;

/** web: ingress only from app=other. */
const WEB_INGRESS = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: web-ingress, namespace: ld }
spec:
  podSelector: { matchLabels: { app: web } }
  ingress: [ { from: [ { podSelector: { matchLabels: { app: other } } } ] } ]
`;

/** What the agent's API answers (bigints arrive as strings). */
type FlowRow = Reply<'flows'>[number];
type MetricRow = Reply<'metrics'>[number];

const cleanup = new Cleanup();
let node: TestNode;
const pods: Record<string, Netns> = {};
const v4: Record<string, string> = {};
const v6: Record<string, string> = {};

const flows = async (verdict?: string): Promise<FlowRow[]> => (await callAgent(node.runDir, 'flows', verdict ? { verdict } : {})) as FlowRow[];
async function counted(reason: string, direction: string): Promise<number> {
  const rows = (await callAgent(node.runDir, 'metrics')) as MetricRow[];
  return rows.filter((r) => r.reason === reason && r.direction === direction && !r.audit).reduce((n, r) => n + Number(r.packets), 0);
}

/** Packets between pod addresses the node's FORWARD chain saw (both families). */
function forwarded(): number {
  let n = 0;
  for (const tool of ['iptables', 'ip6tables']) {
    const out = node.ns.exec(tool, ['-w', '-L', 'FORWARD', '-v', '-n', '-x']);
    for (const line of out.split('\n')) if (line.includes('sluice-test-pod2pod')) n += Number(line.trim().split(/\s+/)[0]);
  }
  return n;
}

const talk = (from: string, ip: string, port?: number, sport?: number) => talkFrom(pods[from]!, ip, port, sport);
const holdConnection = (from: string, ip: string) => holdFrom(pods[from]!, ip);

/** The TTL (hop limit) of an echo reply from `ip`, as the pod sees it. */
function pingTtl(from: string, ip: string): number | undefined {
  const r = spawnSync('nsenter', [`--net=${pods[from]!.path}`, 'ping', '-c', '1', '-W', '1', ip], { encoding: 'utf8' });
  const m = /ttl=(\d+)/.exec(r.stdout);
  return m ? Number(m[1]) : undefined;
}

describe.skipIf(!isRoot)('local delivery: pod to pod on one node skips the node stack, both policies judged', () => {
  beforeAll(async () => {
    node = new TestNode(cleanup, { podCidr: POD_CIDR, nodeIp: '10.76.255.1/32', extraArgs: ['--datapath-redirect', 'true'] });
    node.writeManifest('pods.yaml', PODS);
    node.writeManifest('policy.yaml', WEB_INGRESS);
    await node.start();
    for (const name of ['client', 'web', 'other']) {
      pods[name] = node.addPod(cleanup, 'ld', name);
      ({ v4: v4[name]!, v6: v6[name]! } = podIps(pods[name]));
      startEchoServers(cleanup, pods[name], { tcp: [8080], udp: [8081] });
    }
    // Counting rules (no target) for pod-to-pod packets the node forwards.
    node.ns.exec('iptables', ['-w', '-I', 'FORWARD', '-s', '10.76.0.0/24', '-d', '10.76.0.0/24', '-m', 'comment', '--comment', 'sluice-test-pod2pod']);
    node.ns.exec('ip6tables', ['-w', '-I', 'FORWARD', '-s', 'fd00:76::/64', '-d', 'fd00:76::/64', '-m', 'comment', '--comment', 'sluice-test-pod2pod']);
    await until('the servers', () => reach(pods.other!, v4.web!, 8080) && reach(pods.web!, v4.other!, 8080));
  }, 60_000);

  afterAll(() => cleanup.run());

  it('allowed traffic between local pods (TCP, UDP, ICMP; IPv4 and IPv6) never crosses the node\'s FORWARD chain', async () => {
    const before = forwarded();
    const ingressBefore = await counted('forwarded', 'ingress');
    const ports: number[] = [];
    for (let i = 0; i < 3; i++) {
      const p = talk('other', v4.web!);
      expect(p).toMatch(/^\d+$/);
      ports.push(Number(p));
      expect(talk('other', v6.web!)).toMatch(/^\d+$/);
      expect(talk('web', v4.other!)).toMatch(/^\d+$/);
    }
    expect(reach(pods.other!, v4.web!, 8081, 'udp')).toBe(true);
    expect(reach(pods.other!, v6.web!, 8081, 'udp')).toBe(true);
    // The stack would have decremented the hop limit once: so does the redirect.
    expect(pingTtl('other', v4.web!)).toBe(63);
    expect(pingTtl('other', v6.web!)).toBe(63);
    expect(forwarded()).toBe(before);
    // web's ingress was judged (and counted) in other's sluice_from_pod.
    expect((await counted('forwarded', 'ingress')) - ingressBefore).toBeGreaterThan(20);
    await until('web\'s ingress flows', async () => (await flows('allowed')).some((f) => f.pod === 'ld/web' && f.direction === 'ingress' && ports.includes(f.srcPort)));
  });

  it('a connection web\'s ingress policy denies is dropped on the redirect path with its reason, counter and flow event', async () => {
    const before = forwarded();
    const deniedBefore = await counted('policy-denied', 'ingress');
    expect(talk('client', v4.web!)).toMatch(/^ERR/);
    expect(talk('client', v6.web!)).toMatch(/^ERR/);
    expect(reach(pods.client!, v4.web!, 8081, 'udp')).toBe(false);
    expect((await counted('policy-denied', 'ingress')) - deniedBefore).toBeGreaterThanOrEqual(3);
    await until('the drop flows', async () => {
      const drops = (await flows('dropped')).filter((f) => f.pod === 'ld/web' && f.src === v4.client && f.dstPort === 8080);
      return drops.length > 0;
    });
    expect((await flows('dropped')).filter((f) => f.pod === 'ld/web' && f.src === v4.client && f.dstPort === 8080).at(-1)).toMatchObject({
      reason: 'policy-denied',
      direction: 'ingress',
      dst: v4.web,
      dstPort: 8080,
    });
    expect(forwarded()).toBe(before);
    // client is not isolated: the same pod reaches other directly.
    expect(talk('client', v4.other!)).toMatch(/^\d+$/);
  });

  it('the node\'s own traffic to pods (kubelet probes) still passes web\'s ingress policy', () => {
    const r = spawnSync('nsenter', [`--net=${node.ns.path}`, 'python3', '-c', `import socket;s=socket.create_connection(('${v4.web}',8080),timeout=1)`]);
    expect(r.status).toBe(0);
  });

  it('--datapath-redirect false: the same traffic goes through the node\'s stack again, and policy still holds', async () => {
    node.opts.extraArgs = ['--datapath-redirect', 'false'];
    await node.start(); // a handover to an agent with the switch off
    const before = forwarded();
    expect(talk('other', v4.web!)).toMatch(/^\d+$/);
    expect(talk('other', v6.web!)).toMatch(/^\d+$/);
    expect(forwarded()).toBeGreaterThan(before);
    const deniedBefore = await counted('policy-denied', 'ingress');
    expect(talk('client', v4.web!)).toMatch(/^ERR/);
    expect(await counted('policy-denied', 'ingress')).toBeGreaterThan(deniedBefore);
    // And back on.
    node.opts.extraArgs = ['--datapath-redirect', 'true'];
    await node.start();
    const again = forwarded();
    expect(talk('other', v4.web!)).toMatch(/^\d+$/);
    expect(forwarded()).toBe(again);
  });
  it('a new connection on the 5-tuple of a closed local flow is judged again', async () => {
    const sport = 40123;
    expect(talk('other', v4.web!, 8080, sport)).toBe(String(sport));
    // Its conntrack entry lingers (closing); web now admits no one.
    node.writeManifest('policy.yaml', WEB_INGRESS.replace('app: other', 'app: nobody'));
    try {
      await until('web closed to other', () => talk('other', v4.web!).startsWith('ERR'));
      expect(talk('other', v4.web!, 8080, sport)).toMatch(/^ERR/);
    } finally {
      node.writeManifest('policy.yaml', WEB_INGRESS);
      await until('web open to other again', () => /^\d+$/.test(talk('other', v4.web!)));
    }
  });

  it('connections open when the policy and then the switch change keep working', async () => {
    const held = [holdConnection('other', v4.web!), holdConnection('other', v6.web!)];
    try {
      for (const h of held) expect(await h.roundTrip()).toBe(true);
      // web admits no one now: new connections fail, established ones stay open.
      node.writeManifest('policy.yaml', WEB_INGRESS.replace('app: other', 'app: nobody'));
      await until('web closed to other', () => talk('other', v4.web!).startsWith('ERR'));
      for (const h of held) expect(await h.roundTrip()).toBe(true);
      // Their packets now take the node's stack, where web's veth knows
      // nothing of them: their one local entry still carries them.
      node.opts.extraArgs = ['--datapath-redirect', 'false'];
      await node.start();
      for (const h of held) expect(await h.roundTrip()).toBe(true);
      node.opts.extraArgs = ['--datapath-redirect', 'true'];
      await node.start();
      for (const h of held) expect(await h.roundTrip()).toBe(true);
      expect(talk('other', v4.web!)).toMatch(/^ERR/);
    } finally {
      for (const h of held) h.close();
      node.opts.extraArgs = ['--datapath-redirect', 'true'];
      node.writeManifest('policy.yaml', WEB_INGRESS);
    }
  });
});
