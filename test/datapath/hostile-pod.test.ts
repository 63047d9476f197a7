// The outside audit, as a test: a node that has a real address on another
// interface (as every real node does) reaching its own pods the way kubelet
// probes do, and a hostile pod forging packets — another pod's, the node's
// and the DNS proxy's source addresses, DNS reflection, a conntrack hairpin,
// neighbour-discovery-shaped packets, and fragment tricks. Everything through
// the real agent, the real sluice-cni and real packets (test/helpers/forge.py
// writes frames on the pod's eth0 with AF_PACKET).
//
// Addresses: the node owns 198.19.1.1 / fd00:19:1::1 on its link to the
// world netns, which owns 198.18.10.0/24 and fd00:18:10::/48 (local routes);
// a real nsd answers there, and UDP/TCP echo servers listen on every world
// address.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callAgent } from '../../src/cli/client.js';
import { Cleanup, cni, podArgs, TestNode, type Netns } from '../helpers/agent.js';
import { startAuthServer, type Zone } from '../helpers/dns.js';
import { isRoot } from '../helpers/netns.js';
import { makeWorld } from '../helpers/world.js';

const POD_CIDR = '10.73.0.0/24,fd00:73::/64';
const NODE4 = '198.19.1.1';
const NODE6 = 'fd00:19:1::1';
const NSD = '198.18.10.53';
const NSD6 = 'fd00:18:10::53';
/** A world host pod a's policy denies. */
const DENIED = '198.18.10.80';
const DENIED6 = 'fd00:18:10::80';
const PROXY6 = 'fd5c:1ce::53';
const PORT = 7000;
const FORGE = join(import.meta.dirname, '..', 'helpers', 'forge.py');

const zone: Zone = { origin: 'sec.test', records: [{ name: 'ok', type: 'A', value: '198.18.10.10' }] };

const MANIFESTS = `apiVersion: v1
kind: Namespace
metadata: { name: x }
---
apiVersion: v1
kind: Pod
metadata: { name: a, namespace: x, labels: { app: a } }
---
apiVersion: v1
kind: Pod
metadata: { name: b, namespace: x, labels: { app: b } }
---
apiVersion: v1
kind: Pod
metadata: { name: c, namespace: x, labels: { app: c } }
---
# a: DNS through the proxy; egress to the pods of x (itself included) and ok.sec.test only.
apiVersion: sluice.dev/v1alpha1
kind: FQDNPolicy
metadata: { name: a-dns, namespace: x }
spec:
  podSelector: { matchLabels: { app: a } }
  egress: [ { toFQDNs: [ { matchName: ok.sec.test } ] } ]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: a-egress, namespace: x }
spec:
  podSelector: { matchLabels: { app: a } }
  policyTypes: [ Egress ]
  egress: [ { to: [ { podSelector: {} } ] } ]
---
# c admits b only, on ${PORT} (UDP and TCP). The node always reaches it.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: c-ingress, namespace: x }
spec:
  podSelector: { matchLabels: { app: c } }
  policyTypes: [ Ingress ]
  ingress:
  - from: [ { podSelector: { matchLabels: { app: b } } } ]
    ports: [ { port: ${PORT}, protocol: UDP }, { port: ${PORT}, protocol: TCP } ]
`;

/** UDP (echo) and TCP (echo) on PORT, both families; every datagram and connection logged as a JSON line. */
const LISTENER = `import socket,threading,json,sys
out=open(sys.argv[1],'a',buffering=1)
lock=threading.Lock()
def log(**k):
  with lock: out.write(json.dumps(k)+'\\n')
def udp():
  s=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM);s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,0)
  s.bind(('::',${PORT}))
  while True:
    d,a=s.recvfrom(65535);log(proto='udp',src=a[0].replace('::ffff:',''),sport=a[1],len=len(d),head=d[:32].decode('latin1'))
    s.sendto(d[:64],a)
def tcp():
  s=socket.socket(socket.AF_INET6);s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
  s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,0);s.bind(('::',${PORT}));s.listen(64)
  while True:
    c,a=s.accept();log(proto='tcp',src=a[0].replace('::ffff:',''),sport=a[1]);c.sendall(b'hi');c.close()
threading.Thread(target=tcp,daemon=True).start()
udp()`;

/** UDP echo on 80 and TCP accept on 80, every world address. */
const WORLD_ECHO = `import socket,threading
def tcp():
  s=socket.socket(socket.AF_INET6);s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
  s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,0);s.setsockopt(socket.SOL_IP,19,1);s.bind(('::',80));s.listen(64)
  while True:
    c,_=s.accept();c.close()
threading.Thread(target=tcp,daemon=True).start()
s=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM);s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,0);s.setsockopt(socket.SOL_IP,19,1)
s.bind(('::',80))
while True:
  d,a=s.recvfrom(4096);s.sendto(d,a)`;

interface Pod {
  ns: Netns;
  v4: string;
  v6: string;
  log?: string;
}

const cleanup = new Cleanup();
const procs: ChildProcess[] = [];
let node: TestNode;
let world: Netns;
const pods: Record<'a' | 'b' | 'c', Pod> = {} as never;

function bg(ns: Netns, args: string[]): void {
  const p = spawn('nsenter', [`--net=${ns.path}`, ...args], { stdio: 'ignore' });
  procs.push(p);
}

function makePod(name: 'a' | 'b' | 'c'): Pod {
  const net = cleanup.netns(`p${name}`);
  const r = cni({ command: 'ADD', containerId: `hp-${name}`, netns: net.path, ifname: 'eth0', args: podArgs('x', name), config: node.conf() });
  expect(r.status, r.stdout).toBe(0);
  const ips = (JSON.parse(r.stdout) as { ips: Array<{ address: string }> }).ips.map((i) => i.address.split('/')[0]!);
  return { ns: net, v4: ips.find((i) => !i.includes(':'))!, v6: ips.find((i) => i.includes(':'))! };
}

/** What the pod's listener saw, since the start. */
function seen(p: Pod): Array<{ proto: string; src: string; sport?: number; len?: number; head?: string }> {
  return readFileSync(p.log!, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as never);
}

/** Sends hand-made frames out of the pod's eth0. */
function forge(from: Pod, packets: object[]): void {
  const r = spawnSync('nsenter', [`--net=${from.ns.path}`, 'python3', FORGE, 'eth0'], { input: JSON.stringify(packets), encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
}

/** UDP echo round trip, or a TCP connect, from `ns` (optionally from a fixed source port). */
function reach(ns: Netns, ip: string, port: number, proto: 'tcp' | 'udp', opts: { sport?: number; size?: number; timeoutS?: number } = {}): boolean {
  const fam = ip.includes(':') ? 'socket.AF_INET6' : 'socket.AF_INET';
  const bind = opts.sport ? `s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('',${opts.sport}));` : '';
  const t = opts.timeoutS ?? 0.7;
  const code =
    proto === 'tcp'
      ? `import socket;s=socket.socket(${fam});${bind}s.settimeout(${t});s.connect(('${ip}',${port}))`
      : `import socket;s=socket.socket(${fam},socket.SOCK_DGRAM);${bind}s.settimeout(${t});s.sendto(b'p'*${opts.size ?? 1},('${ip}',${port}));assert len(s.recv(65535))>0`;
  return spawnSync('nsenter', [`--net=${ns.path}`, 'python3', '-c', code]).status === 0;
}

/** Packets dropped for any of `reasons` (pod egress and ingress together). */
async function drops(...reasons: string[]): Promise<number> {
  const rows = (await callAgent(node.runDir, 'metrics')) as Array<{ reason: string; direction: string; packets: string | number }>;
  return rows.filter((r) => reasons.includes(r.reason)).reduce((sum, r) => sum + Number(r.packets), 0);
}

/** A DNS query for ok.sec.test A, as hex. */
function dnsQueryHex(id: number): string {
  const name = Buffer.concat([...'ok.sec.test'.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
  const h = Buffer.alloc(12);
  h.writeUInt16BE(id, 0);
  h.writeUInt16BE(0x0100, 2);
  h.writeUInt16BE(1, 4);
  return Buffer.concat([h, name, Buffer.from([0, 1, 0, 1])]).toString('hex');
}

async function until(check: () => boolean, ms = 2000): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (check()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

const settle = () => new Promise((r) => setTimeout(r, 400));

describe.skipIf(!isRoot)('a hostile pod, and the node reaching its pods', () => {
  beforeAll(async () => {
    // No address on lo: the node's address lives on its link to the world.
    node = new TestNode(cleanup, { podCidr: POD_CIDR, extraArgs: ['--dns-trusted', `${NSD},${NSD6}`] });
    cleanup.add(() => {
      for (const p of procs) p.kill('SIGKILL');
    });
    world = makeWorld(cleanup, node, {
      tag: 'h',
      node: [`${NODE4}/24`, `${NODE6}/64`],
      world: ['198.19.1.2/24', 'fd00:19:1::2/64'],
      owns: ['198.18.10.0/24', 'fd00:18:10::/48'],
      addresses: [NSD, NSD6],
      podCidrs: POD_CIDR.split(','),
    });
    await startAuthServer(cleanup, world, { address: NSD, zones: [zone] });
    await startAuthServer(cleanup, world, { address: NSD6, zones: [zone] });
    bg(world, ['python3', '-c', WORLD_ECHO]);

    node.writeManifest('x.yaml', MANIFESTS);
    await node.start();
    for (const name of ['a', 'b', 'c'] as const) {
      pods[name] = makePod(name);
      pods[name].log = join(node.dir, `${name}.log`);
      bg(pods[name].ns, ['python3', '-c', LISTENER, pods[name].log!]);
    }
    // Listeners up, and the policy in force: b reaches c, a does not.
    expect(await until(() => reach(pods.b.ns, pods.c.v4, PORT, 'udp'), 5000)).toBe(true);
    expect(reach(pods.a.ns, pods.c.v4, PORT, 'udp')).toBe(false);
  }, 90_000);

  afterAll(() => cleanup.run());

  describe('the node reaches its own pods (kubelet probes), whatever policy says', () => {
    it('never picks the DNS proxy address as the source towards a pod', () => {
      for (const ip of [pods.c.v4, pods.c.v6]) {
        const route = node.ns.exec('ip', ['route', 'get', ip]);
        expect(route).not.toMatch(/169\.254\.20\.53|fd5c:1ce::53/);
        expect(route).toMatch(ip.includes(':') ? NODE6 : NODE4);
      }
    });

    it('ICMP, TCP and UDP from the node reach a pod with an ingress policy and one without, v4 and v6', () => {
      for (const p of [pods.b, pods.c]) {
        for (const ip of [p.v4, p.v6]) {
          expect(node.ns.ping(ip, 1, 1), `ping ${ip}`).toBe(true);
          expect(reach(node.ns, ip, PORT, 'tcp'), `tcp ${ip}`).toBe(true);
          expect(reach(node.ns, ip, PORT, 'udp'), `udp ${ip}`).toBe(true);
        }
      }
    });
  });

  describe('a pod can send only as itself', () => {
    it('(a) as another pod: b is the one c admits, but a forging b reaches nothing (v4, v6)', async () => {
      const before = await drops('spoofed-source');
      forge(pods.a, [
        { family: 4, src: pods.b.v4, dst: pods.c.v4, proto: 'udp', sport: 41001, dport: PORT, payload: 'forged-as-b-4' },
        { family: 6, src: pods.b.v6, dst: pods.c.v6, proto: 'udp', sport: 41001, dport: PORT, payload: 'forged-as-b-6' },
        { family: 4, src: pods.b.v4, dst: pods.c.v4, proto: 'tcp', sport: 41002, dport: PORT, flags: 'S' },
      ]);
      await settle();
      expect(seen(pods.c).filter((e) => e.head?.startsWith('forged') || e.sport === 41002)).toEqual([]);
      expect(await drops('spoofed-source')).toBeGreaterThanOrEqual(before + 3);
      // Reported as flow events, on a's veth, with the forged source.
      const flows = (await callAgent(node.runDir, 'flows', { pod: 'x/a', verdict: 'dropped' })) as Array<{ reason: string; src: string }>;
      expect(flows.filter((f) => f.reason === 'spoofed-source').map((f) => f.src)).toEqual(expect.arrayContaining([pods.b.v4, pods.b.v6]));
      // The real b still gets through.
      expect(reach(pods.b.ns, pods.c.v6, PORT, 'udp')).toBe(true);
    });

    it("(b) as the node's IPv6 and IPv4 addresses: no node-traffic pass", async () => {
      forge(pods.a, [
        { family: 6, src: NODE6, dst: pods.c.v6, proto: 'udp', sport: 41003, dport: PORT, payload: 'forged-as-node-6' },
        { family: 4, src: NODE4, dst: pods.c.v4, proto: 'udp', sport: 41003, dport: PORT, payload: 'forged-as-node-4' },
      ]);
      await settle();
      expect(seen(pods.c).filter((e) => e.head?.startsWith('forged-as-node'))).toEqual([]);
    });

    it("(c) as the DNS proxy, with a translation entry planted by a forged query: nothing reaches c", async () => {
      forge(pods.a, [
        // The planting query, "from" c's port 7000, then the "reply".
        { family: 6, src: pods.c.v6, dst: NSD6, proto: 'udp', sport: PORT, dport: 53, hex: dnsQueryHex(0x4242) },
        { family: 6, src: PROXY6, dst: pods.c.v6, proto: 'udp', sport: 9953, dport: PORT, payload: 'forged-as-proxy-6' },
        { family: 4, src: pods.c.v4, dst: NSD, proto: 'udp', sport: PORT, dport: 53, hex: dnsQueryHex(0x4243) },
        { family: 4, src: '169.254.20.53', dst: pods.c.v4, proto: 'udp', sport: 9953, dport: PORT, payload: 'forged-as-proxy-4' },
      ]);
      await settle();
      expect(seen(pods.c).filter((e) => e.head?.startsWith('forged-as-proxy'))).toEqual([]);
    });

    it('(d) DNS reflection: a query "from" c makes no answer land in c (v4, v6)', async () => {
      forge(pods.a, [
        { family: 4, src: pods.c.v4, dst: NSD, proto: 'udp', sport: PORT, dport: 53, hex: dnsQueryHex(0x5151) },
        { family: 6, src: pods.c.v6, dst: NSD6, proto: 'udp', sport: PORT, dport: 53, hex: dnsQueryHex(0x5152) },
      ]);
      await settle();
      // A reflected answer would come "from" the resolver, port 53.
      expect(seen(pods.c).filter((e) => e.sport === 53)).toEqual([]);
      // The proxy never even saw them.
      const status = (await callAgent(node.runDir, 'status')) as { fqdn: { proxy: { forwarded: number } } };
      expect(status.fqdn.proxy.forwarded).toBe(0);
    });

    it('(e) conntrack hairpin: a forged packet from a denied host to the pod itself opens nothing', async () => {
      expect(reach(pods.a.ns, DENIED, 80, 'udp', { sport: 45555 })).toBe(false);
      forge(pods.a, [
        { family: 4, src: DENIED, dst: pods.a.v4, proto: 'udp', sport: 80, dport: 45555, payload: 'hairpin' },
        { family: 6, src: DENIED6, dst: pods.a.v6, proto: 'udp', sport: 80, dport: 45556, payload: 'hairpin' },
      ]);
      await settle();
      expect(reach(pods.a.ns, DENIED, 80, 'udp', { sport: 45555 })).toBe(false);
      expect(reach(pods.a.ns, DENIED6, 80, 'udp', { sport: 45556 })).toBe(false);
    });

    it('neighbour-discovery-shaped packets pass without policy only as ND: hop limit 255, on the link', async () => {
      // a is FQDN-selected: egress nothing allows drops as no-fqdn-allow.
      const before = await drops('policy-denied', 'no-fqdn-allow');
      // Type 135 (NS) towards a world host: hop limit 64, and 255 but off the link.
      forge(pods.a, [
        { family: 6, src: pods.a.v6, dst: DENIED6, proto: 'icmp', icmp_type: 135, ttl: 64, payload: 'nd-data-1' },
        { family: 6, src: pods.a.v6, dst: DENIED6, proto: 'icmp', icmp_type: 135, ttl: 255, payload: 'nd-data-2' },
        { family: 6, src: pods.a.v6, dst: DENIED6, proto: 'icmp', icmp_type: 131, ttl: 1, payload: 'mld-data' },
      ]);
      await settle();
      expect(await drops('policy-denied', 'no-fqdn-allow')).toBeGreaterThanOrEqual(before + 3);
      // Real neighbour discovery still works both ways: the node (and b, through it) reach c over IPv6.
      expect(node.ns.ping(pods.a.v6, 1, 1)).toBe(true);
      expect(reach(pods.b.ns, pods.c.v6, PORT, 'tcp')).toBe(true);
    });
  });

  describe('fragments', () => {
    it('an allowed datagram that is fragmented arrives whole (v4, v6)', async () => {
      for (const ip of [pods.c.v4, pods.c.v6]) expect(reach(pods.b.ns, ip, PORT, 'udp', { size: 4000 }), ip).toBe(true);
      expect(seen(pods.c).filter((e) => e.proto === 'udp' && e.len === 4000).length).toBeGreaterThanOrEqual(2);
    });

    it('a denied datagram stays denied, fragment by fragment', async () => {
      const before = await drops('frag-not-found');
      expect(reach(pods.a.ns, pods.c.v4, PORT, 'udp', { size: 4000 })).toBe(false);
      expect(reach(pods.a.ns, pods.c.v6, PORT, 'udp', { size: 4000 })).toBe(false);
      expect(seen(pods.c).filter((e) => e.src === pods.a.v4 || e.src === pods.a.v6)).toEqual([]);
      expect(await drops('frag-not-found')).toBeGreaterThan(before);
    });

    it('tricks open nothing: no first fragment, a tiny first fragment, a header overlap, a denied duplicate first', async () => {
      const notFound = await drops('frag-not-found');
      const bad = await drops('bad-fragment');
      const big = 'z'.repeat(64);
      forge(pods.b, [
        // Later fragments alone (their first never came), to a port c admits from b.
        { family: 4, src: pods.b.v4, dst: pods.c.v4, proto: 'udp', sport: 42001, dport: PORT, payload: big, frag_id: 101, fragments: [[16, 56]] },
        { family: 6, src: pods.b.v6, dst: pods.c.v6, proto: 'udp', sport: 42001, dport: PORT, payload: big, frag_id: 102, fragments: [[16, 56]] },
        // A TCP first fragment without the whole header (flags in the second).
        { family: 4, src: pods.b.v4, dst: pods.c.v4, proto: 'tcp', sport: 42002, dport: PORT, flags: 'S', frag_id: 103, fragments: [[0, 8], [8, 12]] },
        // A later fragment overwriting the TCP header the first was judged by.
        { family: 6, src: pods.b.v6, dst: pods.c.v6, proto: 'tcp', sport: 42003, dport: PORT, flags: 'S', payload: big, frag_id: 104, fragments: [[0, 48], [8, 76]] },
      ]);
      await settle();
      expect(await drops('frag-not-found')).toBeGreaterThanOrEqual(notFound + 2);
      expect(await drops('bad-fragment')).toBeGreaterThanOrEqual(bad + 2);
      // A first fragment to a port c does not admit, then the rest: nothing arrives.
      forge(pods.b, [{ family: 4, src: pods.b.v4, dst: pods.c.v4, proto: 'udp', sport: 42004, dport: PORT + 1, payload: big, frag_id: 105, fragments: [[0, 24], [24, 48]] }]);
      await settle();
      expect(seen(pods.c).filter((e) => (e.sport ?? 0) >= 42001 && (e.sport ?? 0) <= 42004)).toEqual([]);
    });
  });
});
