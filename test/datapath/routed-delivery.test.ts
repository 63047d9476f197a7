// Pods on two nodes (--datapath-redirect, issue 18): a TCP connection between
// a pod of one node and a pod of another skips both nodes' stacks. Its
// packets leave the sending pod's node with bpf_redirect/bpf_redirect_neigh
// after the FIB lookup (sluice_from_pod) and enter the receiving pod from the
// node's link with bpf_redirect_peer (sluice_from_node), after the receiving
// pod's ingress policy admitted the flow there. Seen by counting rules in
// both nodes' FORWARD chains (every forwarded TCP packet between the pods
// crosses them on the normal path), while policy still decides: a denied SYN
// is dropped on the receiving node with its reason, counter and flow event.
// Two real agents in standalone mode, one per node netns, the nodes joined by
// one link with direct routes to each other's pod CIDRs (as --routing direct
// makes them in Kubernetes mode); pods from the real sluice-cni.
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Reply } from '../../src/api/index.js';
import { callAgent } from '../../src/cli/client.js';
import { Cleanup, podIps, TestNode, type Netns } from '../helpers/agent.js';
import { isRoot } from '../helpers/netns.js';
import { PEER_ROUTE_METRIC } from '../../src/agent/routes.js';
import { linkNodes, type NodeLink } from '../helpers/node-link.js';
import { holdConnection, reach, startEchoServers, talk } from '../helpers/servers.js';
import { until } from '../helpers/wait.js';

const FORGE = new URL('../helpers/forge.py', import.meta.url).pathname;

const NODES = {
  n1: { podCidr: '10.78.1.0/24,fd00:78:1::/64', nodeIp: '10.78.255.1/32' },
  n2: { podCidr: '10.78.2.0/24,fd00:78:2::/64', nodeIp: '10.78.255.2/32' },
} as const;
type NodeName = keyof typeof NODES;

/** client and other on n1, web on n2; web admits app=client only. */
const PLACEMENT: Record<string, NodeName> = { client: 'n1', other: 'n1', web: 'n2' };

const POLICY = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: web-ingress, namespace: rd }
spec:
  podSelector: { matchLabels: { app: web } }
  ingress: [ { from: [ { podSelector: { matchLabels: { app: client } } } ] } ]
`;

type FlowRow = Reply<'flows'>[number];
type MetricRow = Reply<'metrics'>[number];

const cleanup = new Cleanup();
const nodes = {} as Record<NodeName, TestNode>;
let link: NodeLink;
const pods: Record<string, Netns> = {};
const v4: Record<string, string> = {};
const v6: Record<string, string> = {};

/** The pods as each node's manifests list them: its own by name, the other node's with their addresses. */
function podsYaml(self: NodeName): string {
  const docs = ['apiVersion: v1\nkind: Namespace\nmetadata: { name: rd }\n'];
  for (const [name, at] of Object.entries(PLACEMENT)) {
    const status = at === self ? '' : `status: { podIPs: [ { ip: "${v4[name]}" }, { ip: "${v6[name]}" } ] }\n`;
    docs.push(`apiVersion: v1\nkind: Pod\nmetadata: { name: ${name}, namespace: rd, labels: { app: ${name} } }\nspec: { nodeName: ${at} }\n${status}`);
  }
  return docs.join('---\n');
}

/** TCP packets between pod addresses a node's FORWARD chain saw (both families). */
function forwardedTcp(node: NodeName): number {
  let n = 0;
  for (const tool of ['iptables', 'ip6tables']) {
    const out = nodes[node].ns.exec(tool, ['-w', '-L', 'FORWARD', '-v', '-n', '-x']);
    for (const line of out.split('\n')) if (line.includes('sluice-test-routed')) n += Number(line.trim().split(/\s+/)[0]);
  }
  return n;
}
const forwardedBoth = () => forwardedTcp('n1') + forwardedTcp('n2');

/** Packets sent out of a node's link. */
const txPackets = (node: NodeName, ifname: string): number => JSON.parse(nodes[node].ns.exec('ip', ['-s', '-j', 'link', 'show', ifname]))[0].stats64.tx.packets;

async function counted(node: NodeName, reason: string, direction: string): Promise<number> {
  const rows = (await callAgent(nodes[node].runDir, 'metrics')) as MetricRow[];
  return rows.filter((r) => r.reason === reason && r.direction === direction && !r.audit).reduce((n, r) => n + Number(r.packets), 0);
}
const flows = async (node: NodeName, verdict: string): Promise<FlowRow[]> => (await callAgent(nodes[node].runDir, 'flows', { verdict })) as FlowRow[];

async function restartBoth(redirect: boolean): Promise<void> {
  for (const n of Object.values(nodes)) {
    n.opts.extraArgs = [...n.opts.extraArgs!.filter((a, i, all) => a !== '--datapath-redirect' && all[i - 1] !== '--datapath-redirect'), '--datapath-redirect', String(redirect)];
    await n.start(); // a handover
  }
}

describe.skipIf(!isRoot)('routed delivery: pod to pod across two nodes skips both nodes\' stacks, policy judged', () => {
  beforeAll(async () => {
    for (const name of ['n1', 'n2'] as const) {
      const { podCidr, nodeIp } = NODES[name];
      nodes[name] = new TestNode(cleanup, { podCidr, nodeIp, extraArgs: ['--node-name', name, '--datapath-redirect', 'true'] });
    }
    // The link between the nodes, before the agents start (they attach sluice_from_node to it).
    link = linkNodes({ ns: nodes.n1.ns, podCidr: NODES.n1.podCidr }, { ns: nodes.n2.ns, podCidr: NODES.n2.podCidr }, { v4: '10.78.254', v6: 'fd00:78:254::' });
    for (const { ns } of Object.values(nodes)) {
      // Counting rules (no target) for the forwarded TCP packets between the pod CIDRs.
      ns.exec('iptables', ['-w', '-I', 'FORWARD', '-p', 'tcp', '-s', '10.78.0.0/16', '-d', '10.78.0.0/16', '-m', 'comment', '--comment', 'sluice-test-routed']);
      ns.exec('ip6tables', ['-w', '-I', 'FORWARD', '-p', 'tcp', '-s', 'fd00:78::/32', '-d', 'fd00:78::/32', '-m', 'comment', '--comment', 'sluice-test-routed']);
    }
    for (const n of Object.values(nodes)) {
      n.writeManifest('pods.yaml', 'apiVersion: v1\nkind: Namespace\nmetadata: { name: rd }\n');
      await n.start();
    }
    for (const [name, at] of Object.entries(PLACEMENT)) {
      pods[name] = nodes[at].addPod(cleanup, 'rd', name);
      ({ v4: v4[name]!, v6: v6[name]! } = podIps(pods[name]));
      startEchoServers(cleanup, pods[name], { tcp: [8080], udp: [8081] });
    }
    for (const name of ['n1', 'n2'] as const) nodes[name].writeManifest('pods.yaml', podsYaml(name));
    nodes.n2.writeManifest('policy.yaml', POLICY);
    await until('web reachable from client, not from other', () => reach(pods.client!, v4.web!, 8080) && !reach(pods.other!, v4.web!, 8080));
  }, 90_000);

  afterAll(() => cleanup.run());

  it('allowed TCP between pods of two nodes (IPv4 and IPv6, both ways) never crosses either node\'s FORWARD chain', async () => {
    const before = forwardedBoth();
    const ingressBefore = await counted('n2', 'forwarded', 'ingress');
    const ports: number[] = [];
    for (let i = 0; i < 3; i++) {
      const p = talk(pods.client!, v4.web!);
      expect(p).toMatch(/^\d+$/);
      ports.push(Number(p));
      expect(talk(pods.client!, v6.web!)).toMatch(/^\d+$/);
      // The other way round: web opens, client is not isolated.
      expect(talk(pods.web!, v4.client!)).toMatch(/^\d+$/);
      expect(talk(pods.web!, v6.client!)).toMatch(/^\d+$/);
    }
    expect(forwardedBoth()).toBe(before);
    // web's ingress was judged (and counted) on n2's link, by sluice_from_node.
    expect((await counted('n2', 'forwarded', 'ingress')) - ingressBefore).toBeGreaterThan(20);
    await until('web\'s ingress flows', async () => (await flows('n2', 'allowed')).some((f) => f.pod === 'rd/web' && f.direction === 'ingress' && ports.includes(f.srcPort)));
    // UDP and ICMP keep the nodes' stacks (only a TCP SYN opens a routed flow).
    expect(reach(pods.client!, v4.web!, 8081, 'udp')).toBe(true);
    expect(reach(pods.client!, v6.web!, 8081, 'udp')).toBe(true);
    const ping = spawnSync('nsenter', [`--net=${pods.client!.path}`, 'ping', '-c', '1', '-W', '1', v4.web!], { encoding: 'utf8' });
    // Two routers' worth of hops, as the stacks would have counted.
    expect(/ttl=(\d+)/.exec(ping.stdout)?.[1]).toBe('62');
  });

  it('a SYN web\'s ingress denies is dropped on web\'s node with its reason, counter and flow event', async () => {
    const before = forwardedBoth();
    const deniedBefore = await counted('n2', 'policy-denied', 'ingress');
    expect(talk(pods.other!, v4.web!)).toMatch(/^ERR/);
    expect(talk(pods.other!, v6.web!)).toMatch(/^ERR/);
    expect((await counted('n2', 'policy-denied', 'ingress')) - deniedBefore).toBeGreaterThanOrEqual(2);
    await until('the drop flow', async () => (await flows('n2', 'dropped')).some((f) => f.pod === 'rd/web' && f.src === v4.other && f.dstPort === 8080));
    expect((await flows('n2', 'dropped')).filter((f) => f.pod === 'rd/web' && f.src === v4.other && f.dstPort === 8080).at(-1)).toMatchObject({
      reason: 'policy-denied',
      direction: 'ingress',
      dst: v4.web,
    });
    expect(forwardedBoth()).toBe(before);
  });

  it('a SYN from the link claiming the node\'s own address is never taken for the node\'s traffic', async () => {
    // n1 writes frames on its link to n2's: web's policy would admit n2's own
    // address (kubelet probes), but a packet from outside with it is a martian.
    nodes.n1.ns.exec('ip', ['neigh', 'replace', link.b[0]!, 'lladdr', JSON.parse(nodes.n2.ns.exec('ip', ['-j', 'link', 'show', link.ifnames.b]))[0].address, 'dev', link.ifnames.a, 'nud', 'permanent']);
    const forge = (src: string, sport: number) => {
      const r = spawnSync('nsenter', [`--net=${nodes.n1.ns.path}`, 'python3', FORGE, link.ifnames.a], {
        input: JSON.stringify([{ family: 4, src, dst: v4.web, proto: 'tcp', sport, dport: 8080, flags: 'S', ttl: 63 }]),
        encoding: 'utf8',
      });
      expect(r.status, r.stderr).toBe(0);
    };
    const node2 = NODES.n2.nodeIp.split('/')[0]!;
    const fromNode = async () => (await flows('n2', 'allowed')).filter((f) => f.pod === 'rd/web' && f.src === node2 && f.srcPort === 41001);
    forge(node2, 41001);
    // The control: the same frame from other's address is judged (and dropped) on the routed path.
    forge(v4.other!, 41002);
    await until('the control\'s drop', async () => (await flows('n2', 'dropped')).some((f) => f.pod === 'rd/web' && f.srcPort === 41002));
    expect(await fromNode()).toEqual([]);
  });

  it('a routed flow follows a route change within 100 ms: the next hop cached per pod pair is asked of the FIB again', async () => {
    const held = holdConnection(pods.client!, v4.web!);
    const restore = (node: NodeName, peer: NodeName, gateway: string, ifname: string) =>
      nodes[node].ns.exec('ip', ['route', 'replace', NODES[peer].podCidr.split(',')[0]!, 'via', gateway, 'dev', ifname, 'metric', String(PEER_ROUTE_METRIC)]);
    let second: NodeLink | undefined;
    try {
      expect(await held.roundTrip()).toBe(true);
      // A second link: both nodes' IPv4 routes to the other's pods move to it (same prefix and metric).
      second = linkNodes({ ns: nodes.n1.ns, podCidr: NODES.n1.podCidr }, { ns: nodes.n2.ns, podCidr: NODES.n2.podCidr }, { v4: '10.78.253' });
      const ends = second.ifnames;
      await until('both agents attached sluice_from_node to the second link', async () => {
        const [s1, s2] = await Promise.all([callAgent(nodes.n1.runDir, 'status'), callAgent(nodes.n2.runDir, 'status')]);
        return !!(s1 as Reply<'status'>).datapath?.nodeLinks.includes(ends.a) && !!(s2 as Reply<'status'>).datapath?.nodeLinks.includes(ends.b);
      });
      const before = { tx: txPackets('n1', ends.a), forwarded: forwardedBoth() };
      await new Promise((r) => setTimeout(r, 250));
      expect(await held.roundTrip()).toBe(true);
      expect(talk(pods.client!, v4.web!)).toMatch(/^\d+$/);
      // The held flow's and the new connection's packets left by the second link, still routed.
      expect(txPackets('n1', ends.a) - before.tx).toBeGreaterThanOrEqual(5);
      expect(forwardedBoth()).toBe(before.forwarded);
    } finally {
      held.close();
      if (second) {
        nodes.n1.ns.exec('ip', ['link', 'del', second.ifnames.a]);
        restore('n1', 'n2', link.b[0]!, link.ifnames.a);
        restore('n2', 'n1', link.a[0]!, link.ifnames.b);
      }
    }
  });

  it('--datapath-redirect false on both nodes: TCP crosses both FORWARD chains again, policy holds, open connections keep flowing', async () => {
    const held = [holdConnection(pods.client!, v4.web!), holdConnection(pods.client!, v6.web!)];
    try {
      for (const h of held) expect(await h.roundTrip()).toBe(true);
      await restartBoth(false);
      const before = forwardedBoth();
      for (const h of held) expect(await h.roundTrip()).toBe(true);
      expect(talk(pods.client!, v4.web!)).toMatch(/^\d+$/);
      expect(forwardedBoth()).toBeGreaterThan(before);
      expect(talk(pods.other!, v4.web!)).toMatch(/^ERR/);
      await restartBoth(true);
      for (const h of held) expect(await h.roundTrip()).toBe(true);
      const again = forwardedBoth();
      expect(talk(pods.client!, v4.web!)).toMatch(/^\d+$/);
      expect(forwardedBoth()).toBe(again);
    } finally {
      for (const h of held) h.close();
    }
  });
});
