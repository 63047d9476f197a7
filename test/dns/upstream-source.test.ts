// Where the DNS proxy's forwarded queries come from, end to end: by default
// (--dns-upstream-source pod) a resolver sees the asking pod's own address,
// as CoreDNS needs it for autopath and `pods verified`; the answer finds its
// way back to the proxy, never to the pod, whether the resolver is behind
// the node (its answer arrives routed towards the pod, and the datapath turns
// it back in through lo) or a pod on the same node (its answer leaves that
// pod, and the datapath marks it before routing). With
// --dns-upstream-source node the resolver sees the node.
//
// The resolvers are dnsmasq with --log-queries ("query[A] NAME from ADDR"):
// one in the world behind the node (IPv4 and IPv6), one in a pod.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callAgent } from '../../src/cli/client.js';
import { Cleanup, podIps, TestNode, type Netns } from '../helpers/agent.js';
import { dig, probeQuery, startDnsmasq, type DnsServer } from '../helpers/dns.js';
import { isRoot } from '../helpers/netns.js';
import { makeWorld } from '../helpers/world.js';

const REMOTE = '198.18.0.53';
const REMOTE6 = 'fd00:18::53';
const ANSWER = '198.18.7.7';
const POD_CIDR = '10.73.0.0/24,fd00:73::/64';
const NODE_IP = '10.73.255.1';
/** A "Service" address the node translates to REMOTE (DNAT in the node's netfilter, as kube-proxy does). */
const SERVICE = '10.96.73.53';

const POLICY = `apiVersion: v1
kind: Namespace
metadata: { name: up }
---
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: up, labels: { app: client } }
---
apiVersion: v1
kind: Pod
metadata: { name: resolver, namespace: up, labels: { app: resolver } }
---
apiVersion: v1
kind: Pod
metadata: { name: hostile, namespace: up, labels: { app: hostile } }
---
apiVersion: sluice.dev/v1alpha1
kind: FQDNPolicy
metadata: { name: web, namespace: up }
spec:
  podSelector: { matchLabels: { app: client } }
  egress:
  - toFQDNs: [ { matchPattern: "*.up.test" } ]
`;

const cleanup = new Cleanup();
let node: TestNode;
let client: Netns;
let resolverPod: Netns;
let hostile: Netns;
let remote: DnsServer;
let remote6: DnsServer;
let local: DnsServer;
let clientIp: { v4: string; v6: string };
let resolverIp: string;

const pod = (name: string): Netns => node.addPod(cleanup, 'up', name);

/** The addresses a resolver's log says `name` was asked from. */
function askedFrom(server: DnsServer, name: string): string[] {
  return [...server.log().matchAll(/query\[\w+\] (\S+) from (\S+)/g)].filter((m) => m[1] === name).map((m) => m[2]!);
}

async function proxyStats(): Promise<Record<string, number>> {
  const s = (await callAgent(node.runDir, 'status')) as { fqdn: { proxy: Record<string, number> } };
  return s.fqdn.proxy;
}

async function restartWith(source: 'pod' | 'node'): Promise<void> {
  await node.stop();
  node.opts.extraArgs = ['--dns-trusted', `${REMOTE},${REMOTE6},${resolverIp},${SERVICE}`, '--dns-upstream-source', source];
  await node.start();
}

describe.skipIf(!isRoot)('DNS proxy: queries leave from the pod\'s own address (--dns-upstream-source)', () => {
  beforeAll(async () => {
    node = new TestNode(cleanup, { podCidr: POD_CIDR, nodeIp: `${NODE_IP}/32`, extraArgs: ['--dns-trusted', `${REMOTE},${REMOTE6}`] });
    const world = makeWorld(cleanup, node, {
      tag: 'u',
      node: ['198.19.0.1/24', 'fd00:19::1/64'],
      world: ['198.19.0.2/24', 'fd00:19::2/64'],
      owns: ['198.18.0.0/16', 'fd00:18::/32'],
      addresses: [REMOTE, REMOTE6],
      podCidrs: POD_CIDR.split(','),
    });
    remote = await startDnsmasq(cleanup, world, { mode: 'rogue', address: REMOTE, answer: ANSWER, logQueries: true });
    remote6 = await startDnsmasq(cleanup, world, { mode: 'rogue', address: REMOTE6, answer: ANSWER, logQueries: true });
    // The world's fresh link needs its IPv6 link-local address (DAD, ~1 s)
    // before it can resolve the node's: until then its answers wait.
    const deadline = Date.now() + 10_000;
    while (dig(node.ns, REMOTE6, 'version.bind', { type: 'TXT', class: 'CH', timeoutS: 1 }).status === 'timeout') {
      if (Date.now() > deadline) throw new Error('the world did not answer over IPv6');
    }
    // kube-proxy's way to a Service: a route for the range, DNAT on the way out.
    node.ns.exec('ip', ['route', 'add', `${SERVICE}/32`, 'via', '198.19.0.2']);
    node.ns.exec('iptables', ['-t', 'nat', '-A', 'OUTPUT', '-d', SERVICE, '-p', 'udp', '--dport', '53', '-j', 'DNAT', '--to-destination', REMOTE]);
    // The demanding node: strict reverse-path filtering, and marks taken into the reverse lookup
    // (src_valid_mark, as wg-quick sets it). The steering's rule must not make resolvers look local
    // to it (test/dns/fqdn.test.ts runs the kernel's defaults).
    node.ns.exec('sysctl', ['-w', 'net.ipv4.conf.all.src_valid_mark=1']);
    node.ns.exec('sysctl', ['-w', 'net.ipv4.conf.all.rp_filter=1']);
    node.writeManifest('up.yaml', POLICY);
    await node.start();
    client = pod('client');
    resolverPod = pod('resolver');
    hostile = pod('hostile');
    clientIp = podIps(client);
    resolverIp = podIps(resolverPod).v4;
    local = await startDnsmasq(cleanup, resolverPod, { mode: 'rogue', address: resolverIp, answer: ANSWER, logQueries: true });
    // The resolver pod's address is known only now: trust it too.
    await restartWith('pod');
  }, 120_000);

  afterAll(() => cleanup.run());

  it('a resolver behind the node sees the pod\'s IPv4 and IPv6 address, and the answers reach the pod', async () => {
    const before = await proxyStats();
    const v4 = await probeQuery(client, { server: REMOTE, name: 'remote4.up.test', timeoutS: 2 });
    expect(v4.rcode).toBe('NOERROR');
    expect(v4.answers.map((a) => a.value)).toEqual([ANSWER]);
    const v6 = await probeQuery(client, { server: REMOTE6, name: 'remote6.up.test', timeoutS: 2 });
    expect(v6.rcode).toBe('NOERROR');
    expect(askedFrom(remote, 'remote4.up.test')).toEqual([clientIp.v4]);
    expect(askedFrom(remote6, 'remote6.up.test')).toEqual([clientIp.v6]);
    // Learned (the answer went through the proxy, not around it).
    const learned = (await callAgent(node.runDir, 'fqdn')) as Array<{ name: string }>;
    expect(learned.map((l) => l.name)).toContain('remote4.up.test');
    const after = await proxyStats();
    expect(after.fromPod! - before.fromPod!).toBe(2);
    expect(after.fromPodFailed).toBe(0);
  });

  it('through a Service address the node translates (DNAT), the resolver sees the pod and the answer comes back from the Service', async () => {
    const r = await probeQuery(client, { server: SERVICE, name: 'service.up.test', timeoutS: 2 });
    expect(r.rcode).toBe('NOERROR');
    expect(r.answers.map((a) => a.value)).toEqual([ANSWER]);
    expect(askedFrom(remote, 'service.up.test')).toEqual([clientIp.v4]);
  });

  it('a resolver pod on the same node sees the asking pod\'s address', async () => {
    const r = await probeQuery(client, { server: resolverIp, name: 'local.up.test', timeoutS: 2 });
    expect(r.rcode).toBe('NOERROR');
    expect(r.answers.map((a) => a.value)).toEqual([ANSWER]);
    expect(askedFrom(local, 'local.up.test')).toEqual([clientIp.v4]);
  });

  it('keeps answering across many queries in a row, alternating resolvers', async () => {
    let ok = 0;
    for (let i = 0; i < 20; i++) {
      const r = await probeQuery(client, { server: i % 2 ? REMOTE : resolverIp, name: `many${i}.up.test`, timeoutS: 2 });
      if (r.rcode === 'NOERROR' && r.answers.length === 1) ok++;
    }
    expect(ok).toBe(20);
    expect(askedFrom(remote, 'many1.up.test')).toEqual([clientIp.v4]);
    expect(askedFrom(local, 'many0.up.test')).toEqual([clientIp.v4]);
  });

  it('a pod cannot get a packet taken for an answer anywhere but at the proxy, which rejects it', async () => {
    // The proxy's sockets for the client (one per resolver it asked): its address, kernel-chosen ports.
    const ours = await probeQuery(client, { server: REMOTE, name: 'port.up.test', timeoutS: 2 });
    expect(ours.rcode).toBe('NOERROR');
    // `ss -Hunl`: State Recv-Q Send-Q Local:Port Peer:Port
    const ports = node.ns
      .exec('ss', ['-Hunl', 'src', clientIp.v4])
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => l.trim().split(/\s+/)[3]!.split(':').pop()!);
    expect(ports.length).toBeGreaterThan(0);
    const before = await proxyStats();
    // Another pod sends "an answer" from its own port 53 to that address and each port: the datapath
    // diverts it to the proxy (it is addressed to the proxy's socket), where it is not from the
    // resolver asked: counted as spoofed, learned nowhere, and never delivered to the client.
    const forged = `import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(('0.0.0.0',53));m=bytes.fromhex('${'1234818000010001000000000470726f6702757004746573740000010001c00c000100010000012c0004c6120909'}')\nfor p in (${ports.join(',')},): s.sendto(m,('${clientIp.v4}',p))`;
    hostile.exec('python3', ['-c', forged]);
    const deadline = Date.now() + 5000;
    while ((await proxyStats()).spoofed! - before.spoofed! < ports.length) {
      if (Date.now() > deadline) throw new Error('the forged answer never reached the proxy');
      await new Promise((r) => setTimeout(r, 50));
    }
    expect((await proxyStats()).spoofed! - before.spoofed!).toBe(ports.length);
    const learned = (await callAgent(node.runDir, 'fqdn')) as Array<{ name: string }>;
    expect(learned.map((l) => l.name)).not.toContain('prog.up.test');
  });

  it('the resolvers see the node instead with --dns-upstream-source node', async () => {
    await restartWith('node');
    try {
      const r = await probeQuery(client, { server: REMOTE, name: 'node.up.test', timeoutS: 2 });
      expect(r.rcode).toBe('NOERROR');
      const l = await probeQuery(client, { server: resolverIp, name: 'nodelocal.up.test', timeoutS: 2 });
      expect(l.rcode).toBe('NOERROR');
      const from = [...askedFrom(remote, 'node.up.test'), ...askedFrom(local, 'nodelocal.up.test')];
      expect(from).toHaveLength(2);
      for (const a of from) expect([clientIp.v4, resolverIp]).not.toContain(a);
      expect((await proxyStats()).fromPod).toBe(0);
    } finally {
      await restartWith('pod');
    }
  });
});
