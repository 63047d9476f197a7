// DNS-aware egress, end to end: a node running the real agent, pods made by
// the real sluice-cni, and a "world" of test hosts behind the node: a real
// authoritative server (nsd), a real recursive forwarder (unbound) in front
// of it for the chains that cross zones, a rogue server (dnsmasq), a spoofing
// server, and web/echo servers answering on every address of 198.18.0.0/16.
//
// Addresses: everything the pods talk to lives in the world netns, which
// owns 198.18.0.0/16 and fd00:18::/32 outright (local routes, "AnyIP"), so
// every name in the zone can have an address of its own that no earlier test
// has connected to. The node reaches the world over a veth in 198.19.0.0/24.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callAgent } from '../../src/cli/client.js';
import { Cleanup, SLUICE, TestNode, type Netns } from '../helpers/agent.js';
import { dig, probeLookupConnect, probeQuery, probeSendRaw, startAuthServer, startDnsmasq, startForwarder, type Zone } from '../helpers/dns.js';
import { isRoot } from '../helpers/netns.js';
import { makeWorld } from '../helpers/world.js';
import { reach, startEchoServers } from '../helpers/servers.js';

const NSD = '198.18.0.53';
const NSD6 = 'fd00:18::53';
const UNBOUND = '198.18.0.54';
const SPOOFER = '198.18.0.55';
const SPOOF_FROM = '198.18.0.56';
const ROGUE = '198.18.0.66';
const ROGUE_ANSWER = '198.18.1.66';
const LOOP_TRIES = 200;
const POD_CIDR = '10.72.0.0/24,fd00:72::/64';

// ------------------------------------------------------------------ world

const fqZone: Zone = {
  origin: 'fq.test',
  defaultTtl: 300,
  records: [
    { name: 'api', type: 'A', value: '198.18.1.10' },
    { name: 'api', type: 'AAAA', value: 'fd00:18:1::10' },
    { name: 'other', type: 'A', value: '198.18.1.11' },
    { name: 'pat', type: 'A', value: '198.18.1.21' },
    { name: 'a.pat', type: 'A', value: '198.18.1.22' },
    { name: 'b.x.pat', type: 'A', value: '198.18.1.23' },
    { name: 'x.y.deep', type: 'A', value: '198.18.1.24' },
    { name: 'deep', type: 'A', value: '198.18.1.25' },
    { name: 'port', type: 'A', value: '198.18.1.30' },
    { name: 'short', type: 'A', value: '198.18.1.40', ttl: 1 },
    { name: 'alias', type: 'CNAME', value: 'target.other.test.' },
    { name: 'rogue', type: 'A', value: '198.18.1.60' },
    { name: 'tcp', type: 'A', value: '198.18.1.70' },
    { name: 'keep', type: 'A', value: '198.18.1.80' },
    { name: 'after', type: 'A', value: '198.18.1.81' },
    { name: 'strict', type: 'A', value: '198.18.1.85' },
    { name: 'many', type: 'A', value: '198.18.1.86' },
    { name: 'nagain', type: 'A', value: '198.18.1.87' },
    ...Array.from({ length: LOOP_TRIES }, (_, i) => ({ name: `n${i}`, type: 'A' as const, value: `198.18.2.${i + 1}` })),
    ...Array.from({ length: 40 }, (_, i) => ({ name: 'wide', type: 'A' as const, value: `198.18.5.${i + 1}` })),
  ],
};
const otherZone: Zone = { origin: 'other.test', records: [{ name: 'target', type: 'A', value: '198.18.1.50' }] };
// CoreDNS autopath answers a search-path expansion with a CNAME to the name
// the client meant; the forwarder chases it into the other zone.
const clusterZone: Zone = { origin: 'cluster.local', records: [{ name: 'web.auto.test.fq.svc', type: 'CNAME', value: 'web.auto.test.' }] };
const autoZone: Zone = { origin: 'auto.test', records: [{ name: 'web', type: 'A', value: '198.18.1.90' }] };
const ZONES = [fqZone, otherZone, clusterZone, autoZone];


/**
 * A "trusted" server gone bad, or a man on the path: for every query it first
 * sends forged answers — from another address, with another ID, for another
 * question — each naming an address of 198.18.3.0/24, then the genuine answer
 * with an address of 198.18.4.0/24 (the same last byte).
 */
const SPOOFER_PY = `import socket,struct,sys
real=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);real.bind((sys.argv[1],53))
fake=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);fake.bind((sys.argv[2],53))
n=0
def name(q):
  out=b''
  for l in q.split('.'): out+=bytes([len(l)])+l.encode()
  return out+b'\\0'
def answer(qid,q,ip):
  h=struct.pack('>HHHHHH',qid,0x8180,1,1,0,0)
  return h+name(q)+struct.pack('>HH',1,1)+b'\\xc0\\x0c'+struct.pack('>HHIH',1,1,300,4)+socket.inet_aton(ip)
while True:
  d,a=real.recvfrom(4096)
  qid=struct.unpack('>H',d[:2])[0];i=12;labels=[]
  while d[i]: labels.append(d[i+1:i+1+d[i]].decode());i+=d[i]+1
  q='.'.join(labels);n=n%250+1
  fake.sendto(answer(qid,q,'198.18.3.%d'%n),a)
  real.sendto(answer(qid^0x5a5a,q,'198.18.3.%d'%n),a)
  real.sendto(answer(qid,'forged.'+q,'198.18.3.%d'%n),a)
  real.sendto(answer(qid,q,'198.18.4.%d'%n),a)`;

const POLICY = `apiVersion: v1
kind: Namespace
metadata: { name: fq }
---
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: fq, labels: { app: client } }
---
apiVersion: v1
kind: Pod
metadata: { name: bystander, namespace: fq, labels: { app: bystander } }
---
apiVersion: sluice.dev/v1alpha1
kind: FQDNPolicy
metadata: { name: web, namespace: fq }
spec:
  podSelector: { matchLabels: { app: client } }
  egress:
  - toFQDNs: [ { matchName: API.fq.test. }, { matchPattern: "n*.fq.test" }, { matchName: wide.fq.test } ]
  - toFQDNs: [ { matchPattern: "*.pat.fq.test" }, { matchPattern: "**.deep.fq.test" } ]
    ports: [ { port: 80 } ]
  - toFQDNs: [ { matchName: port.fq.test } ]
    ports: [ { port: 443, protocol: TCP } ]
  - toFQDNs: [ { matchName: short.fq.test }, { matchName: alias.fq.test }, { matchName: web.auto.test } ]
  - toFQDNs: [ { matchName: rogue.fq.test }, { matchName: tcp.fq.test }, { matchPattern: "*.spoof.test" } ]
  - toFQDNs: [ { matchName: keep.fq.test }, { matchName: after.fq.test } ]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: one-host, namespace: fq }
spec:
  podSelector: { matchLabels: { app: client } }
  policyTypes: [ Egress ]
  egress: [ { to: [ { ipBlock: { cidr: 198.18.6.1/32 } } ], ports: [ { port: 80 } ] } ]
---
apiVersion: v1
kind: Namespace
metadata: { name: strict }
---
apiVersion: v1
kind: Pod
metadata: { name: s, namespace: strict, labels: { app: s } }
---
apiVersion: sluice.dev/v1alpha1
kind: FQDNPolicy
metadata: { name: only-strict, namespace: strict }
spec:
  podSelector: {}
  dns: MatchedOnly
  egress:
  - toFQDNs: [ { matchName: strict.fq.test } ]
    ports: [ { port: 80, protocol: TCP } ]
`;

const cleanup = new Cleanup();
const procs: ChildProcess[] = [];
let node: TestNode;
let world: Netns;
let client: Netns;
let bystander: Netns;
let strict: Netns;

function bg(ns: Netns, args: string[]): void {
  const p = spawn('nsenter', [`--net=${ns.path}`, ...args], { stdio: 'ignore' });
  procs.push(p);
}

const pod = (ns: string, name: string): Netns => node.addPod(cleanup, ns, name);

async function lookup(ns: Netns, name: string, server = NSD, opts: { type?: 'A' | 'AAAA'; tcp?: boolean } = {}) {
  return probeQuery(ns, { server, name, type: opts.type ?? 'A', tcp: opts.tcp, timeoutS: 2 });
}

function addresses(r: { answers: Array<{ type: string; value: string }> }, type = 'A'): string[] {
  return r.answers.filter((a) => a.type === type).map((a) => a.value);
}

async function proxyStats(): Promise<Record<string, number>> {
  const s = (await callAgent(node.runDir, 'status')) as { fqdn: { proxy: Record<string, number> } };
  return s.fqdn.proxy;
}

async function learned(pod?: string): Promise<Array<{ name: string; ips: Array<{ ip: string; expiresInMs: number }>; rules: unknown[] }>> {
  return (await callAgent(node.runDir, 'fqdn', pod ? { pod } : undefined)) as never;
}

function sluice(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [SLUICE, ...args, '--run-dir', node.runDir], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe.skipIf(!isRoot)('DNS-aware egress (FQDNPolicy + transparent DNS proxy)', () => {
  beforeAll(async () => {
    node = new TestNode(cleanup, {
      podCidr: POD_CIDR,
      nodeIp: '10.72.255.1/32',
      extraArgs: ['--dns-trusted', `${NSD},${NSD6},${UNBOUND},${SPOOFER}`, '--fqdn-min-ttl', '1s', '--fqdn-grace', '1s', '--fqdn-max-ips-per-name', '16'],
    });
    cleanup.add(() => {
      for (const p of procs) p.kill('SIGKILL');
    });
    world = makeWorld(cleanup, node, {
      tag: 'w',
      node: ['198.19.0.1/24', 'fd00:19::1/64'],
      world: ['198.19.0.2/24', 'fd00:19::2/64'],
      owns: ['198.18.0.0/16', 'fd00:18::/32'],
      addresses: [NSD, UNBOUND, SPOOFER, SPOOF_FROM, ROGUE, NSD6],
      podCidrs: POD_CIDR.split(','),
    });

    await startAuthServer(cleanup, world, { address: NSD, zones: ZONES });
    await startAuthServer(cleanup, world, { address: NSD6, zones: ZONES });
    await startForwarder(cleanup, world, { address: UNBOUND, upstream: NSD, zones: ZONES.map((z) => z.origin), cache: false });
    await startDnsmasq(cleanup, world, { mode: 'rogue', address: ROGUE, answer: ROGUE_ANSWER });
    bg(world, ['python3', '-c', SPOOFER_PY, SPOOFER, SPOOF_FROM]);
    startEchoServers(cleanup, world, { tcp: [80, 443], udp: [443] });

    node.writeManifest('fq.yaml', POLICY);
    await node.start();
    client = pod('fq', 'client');
    bystander = pod('fq', 'bystander');
    strict = pod('strict', 's');
    // The world answers (so a "blocked" below is the policy, not a dead host).
    const deadline = Date.now() + 5000;
    while (!reach(node.ns, '198.18.1.11', 80)) {
      if (Date.now() > deadline) throw new Error('web servers in the world netns did not come up');
    }
  }, 120_000);

  afterAll(() => cleanup.run());

  it('blocks an allowed name\'s address before any lookup, with reason "no FQDN allow"', async () => {
    expect(reach(node.ns, '198.18.1.10', 443)).toBe(true);
    expect(reach(client, '198.18.1.10', 443)).toBe(false);
    const observed = sluice(['observe', '--pod', 'fq/client', '--verdict', 'dropped', '-o', 'json']);
    expect(observed.status, observed.stderr).toBe(0);
    expect(observed.stdout).toMatch(/198\.18\.1\.10/);
    expect(observed.stdout).toMatch(/fqdn/i);
  });

  it('opens an address for the very first connect after the answer: 200 lookups, zero failures', async () => {
    const names = Array.from({ length: LOOP_TRIES }, (_, i) => `n${i}.fq.test`);
    for (const n of names.slice(0, 5)) {
      // Never looked up: still closed.
      expect(reach(client, fqZone.records.find((r) => `${r.name}.fq.test` === n)!.value, 80, 'tcp', 0.2)).toBe(false);
    }
    const r = await probeLookupConnect(client, { server: NSD, names, port: 80, timeoutS: 1 });
    expect(r.results).toHaveLength(LOOP_TRIES);
    expect(r.results.filter((x) => !x.connected).map((x) => `${x.name}: ${x.rcode} ${x.ip} ${x.error}`)).toEqual([]);
    expect(r.failures).toBe(0);
    expect(new Set(r.results.map((x) => x.ip)).size).toBe(LOOP_TRIES);
  }, 60_000);

  it('opens a learned address for the pods the rule selects, not for other isolated pods', async () => {
    const r = await lookup(client, 'api.fq.test');
    expect(addresses(r)).toEqual(['198.18.1.10']);
    expect(reach(client, '198.18.1.10', 443)).toBe(true);
    expect(reach(strict, '198.18.1.10', 443)).toBe(false); // selected by another FQDNPolicy only
    expect(reach(bystander, '198.18.1.10', 443)).toBe(true); // selected by none: not isolated
    const o = await lookup(client, 'other.fq.test');
    expect(addresses(o)).toEqual(['198.18.1.11']);
    expect(reach(client, '198.18.1.11', 80)).toBe(false); // resolved, but no rule matches it
  });

  it('allows the union of NetworkPolicy egress and FQDNPolicy rules', async () => {
    expect(reach(client, '198.18.6.1', 80)).toBe(true); // NetworkPolicy ipBlock, no lookup needed
    expect(reach(client, '198.18.6.1', 443)).toBe(false);
    expect(reach(client, '198.18.6.2', 80)).toBe(false);
    await lookup(client, 'api.fq.test');
    expect(reach(client, '198.18.1.10', 443)).toBe(true); // and the FQDN rule, beside it
  });

  it('learns AAAA and enforces over IPv6, with DNS over IPv6 too', async () => {
    expect(reach(bystander, 'fd00:18:1::10', 80)).toBe(true);
    expect(reach(client, 'fd00:18:1::10', 80)).toBe(false);
    const r = await lookup(client, 'api.fq.test', NSD6, { type: 'AAAA' });
    expect(r.rcode).toBe('NOERROR');
    expect(addresses(r, 'AAAA')).toEqual(['fd00:18:1::10']);
    expect(reach(client, 'fd00:18:1::10', 80)).toBe(true);
  });

  it('restricts ports and protocols to the rule\'s', async () => {
    await lookup(client, 'port.fq.test');
    expect(reach(client, '198.18.1.30', 443, 'tcp')).toBe(true);
    expect(reach(client, '198.18.1.30', 80, 'tcp')).toBe(false);
    expect(reach(client, '198.18.1.30', 443, 'udp')).toBe(false);
    // A rule without ports opens every port and protocol.
    await lookup(client, 'api.fq.test');
    expect(reach(client, '198.18.1.10', 443, 'udp')).toBe(true);
    expect(reach(client, '198.18.1.10', 80, 'tcp')).toBe(true);
  });

  it('matches patterns: * inside one label, **. for one or more labels, and not beyond', async () => {
    const cases: Array<[string, string, boolean]> = [
      ['a.pat.fq.test', '198.18.1.22', true],
      ['b.x.pat.fq.test', '198.18.1.23', false], // * spans one label only
      ['pat.fq.test', '198.18.1.21', false], // *. needs a label
      ['x.y.deep.fq.test', '198.18.1.24', true],
      ['deep.fq.test', '198.18.1.25', false], // **. needs at least one
    ];
    for (const [name, ip, allowed] of cases) {
      const r = await lookup(client, name);
      expect(addresses(r), name).toEqual([ip]);
      expect(reach(client, ip, 80), name).toBe(allowed);
    }
  });

  it('follows CNAME chains across zones: a rule on the alias opens the target\'s address', async () => {
    expect(reach(client, '198.18.1.50', 80)).toBe(false);
    const r = await lookup(client, 'alias.fq.test', UNBOUND);
    expect(r.answers.map((a) => a.type)).toEqual(['CNAME', 'A']);
    expect(reach(client, '198.18.1.50', 80)).toBe(true);
  });

  it('opens a name\'s rule from an autopath-style answer (name.ns.svc.cluster.local CNAME name)', async () => {
    expect(reach(client, '198.18.1.90', 80)).toBe(false);
    const r = await lookup(client, 'web.auto.test.fq.svc.cluster.local', UNBOUND);
    expect(r.answers.map((a) => `${a.name} ${a.type} ${a.value}`)).toEqual([
      'web.auto.test.fq.svc.cluster.local CNAME web.auto.test',
      'web.auto.test A 198.18.1.90',
    ]);
    expect(reach(client, '198.18.1.90', 80)).toBe(true);
  });

  it('learns from DNS over TCP', async () => {
    expect(reach(client, '198.18.1.70', 80)).toBe(false);
    const r = await lookup(client, 'tcp.fq.test', NSD, { tcp: true });
    expect(addresses(r)).toEqual(['198.18.1.70']);
    expect(reach(client, '198.18.1.70', 80)).toBe(true);
    // dig's TCP client too (length-prefixed, its own framing).
    const d = dig(client, NSD, 'keep.fq.test', { tcp: true });
    expect(d.status).toBe('NOERROR');
  });

  it('keeps at most --fqdn-max-ips-per-name addresses of a name', async () => {
    const r = await lookup(client, 'wide.fq.test', NSD, { tcp: true });
    expect(addresses(r)).toHaveLength(40);
    const rows = (await learned()).filter((x) => x.name === 'wide.fq.test');
    expect(rows).toHaveLength(1);
    expect(rows[0]!.ips).toHaveLength(16);
    const open = addresses(r).filter((ip) => reach(client, ip, 80, 'tcp', 0.1));
    expect(open.sort()).toEqual(rows[0]!.ips.map((i) => i.ip).sort());
  });

  it('answers REFUSED under dns: MatchedOnly for names no rule matches', async () => {
    const refused = await lookup(strict, 'other.fq.test');
    expect(refused.rcode).toBe('REFUSED');
    const ok = await lookup(strict, 'strict.fq.test');
    expect(ok.rcode).toBe('NOERROR');
    expect(reach(strict, '198.18.1.85', 80)).toBe(true);
    expect(reach(strict, '198.18.1.85', 443)).toBe(false);
    // The default (AllowAll) resolves names no rule matches.
    expect((await lookup(client, 'other.fq.test')).rcode).toBe('NOERROR');
  });

  it('never learns from a server of the pod\'s own choosing: a rogue server is refused', async () => {
    // The rogue server would answer an allowed name with its own address.
    expect(dig(world, ROGUE, 'rogue.fq.test').answers.map((a) => a.value)).toEqual([ROGUE_ANSWER]);
    const before = await proxyStats();
    const r = await lookup(client, 'rogue.fq.test', ROGUE);
    expect(r.rcode).toBe('REFUSED');
    const tcp = await lookup(client, 'rogue.fq.test', ROGUE, { tcp: true });
    expect(tcp.rcode).toBe('REFUSED');
    expect(reach(client, ROGUE_ANSWER, 80)).toBe(false);
    expect((await proxyStats()).refused).toBeGreaterThanOrEqual(before.refused! + 2);
    // The trusted server's answer for the same name does open.
    await lookup(client, 'rogue.fq.test');
    expect(reach(client, '198.18.1.60', 80)).toBe(true);
    expect(reach(client, ROGUE_ANSWER, 80)).toBe(false);
  });

  it('never opens anything from a spoofed answer: wrong address, wrong ID or wrong question', async () => {
    const before = await proxyStats();
    for (let i = 1; i <= 5; i++) {
      const r = await lookup(client, `h${i}.spoof.test`, SPOOFER);
      // The genuine answer (198.18.4.n) got through; the forgeries did not.
      expect(addresses(r)).toEqual([`198.18.4.${i}`]);
      expect(reach(client, `198.18.4.${i}`, 80)).toBe(true);
      expect(reach(client, `198.18.3.${i}`, 80)).toBe(false);
    }
    const names = (await learned()).map((x) => x.name);
    expect(names.filter((n) => n.startsWith('forged.'))).toEqual([]);
    expect((await proxyStats()).spoofed).toBeGreaterThanOrEqual(before.spoofed! + 10);
  });

  it('expires an address after max(TTL, --fqdn-min-ttl) + --fqdn-grace, keeping established connections alive', async () => {
    await lookup(client, 'short.fq.test');
    const script = `import socket,time,json
s=socket.socket();s.settimeout(1);s.connect(('198.18.1.40',80))
s.sendall(b'before');a=s.recv(64)
time.sleep(4)
s.sendall(b'after');b=s.recv(64)
n=socket.socket();n.settimeout(0.5)
try:
  n.connect(('198.18.1.40',80));fresh=True
except OSError: fresh=False
print(json.dumps({'a':a.decode(),'b':b.decode(),'fresh':fresh}))`;
    const r = spawnSync('nsenter', [`--net=${client.path}`, 'python3', '-c', script], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ a: 'before', b: 'after', fresh: false });
    // A new lookup opens it again.
    await lookup(client, 'short.fq.test');
    expect(reach(client, '198.18.1.40', 80)).toBe(true);
  }, 30_000);

  it('releases a repeat of a learned answer as it came (the answer memo), and learns one that moves the expiry (released first: its allows have more than the grace left)', async () => {
    const first = await lookup(client, 'nagain.fq.test');
    expect(addresses(first)).toEqual(['198.18.1.87']);
    // Learned again (the agent's memo keeps an answer from its second learning on).
    expect(addresses(await lookup(client, 'nagain.fq.test'))).toEqual(['198.18.1.87']);
    const s0 = await proxyStats();
    const expiry = async () => (await learned('fq/client')).find((n) => n.name === 'nagain.fq.test')!.ips[0]!.expiresInMs;
    const e0 = await expiry();
    // Within the refresh slack: nothing to learn, released from the memo.
    expect(addresses(await lookup(client, 'nagain.fq.test'))).toEqual(['198.18.1.87']);
    const s1 = await proxyStats();
    expect(s1.unchanged! - s0.unchanged!).toBe(1);
    expect(s1.learnedAnswers! - s0.learnedAnswers!).toBe(1);
    expect(reach(client, '198.18.1.87', 80)).toBe(true);
    // Past it: learned again, the expiry moved by about the time that passed. Its allows
    // had ~299 s left (TTL 300 s), more than the 1 s grace: released before it was learned.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(addresses(await lookup(client, 'nagain.fq.test'))).toEqual(['198.18.1.87']);
    const s2 = await proxyStats();
    expect(s2.unchanged).toBe(s1.unchanged);
    expect(s2.releasedBeforeLearning! - s1.releasedBeforeLearning!).toBe(1);
    expect(s2.learnedAnswers! - s1.learnedAnswers!).toBe(1);
    const e2 = await expiry();
    expect(e2).toBeGreaterThan(e0 - 500); // unrefreshed it would have counted down ≥1.5 s; refreshed it is back near the full lifetime
    expect(reach(client, '198.18.1.87', 80)).toBe(true);
  }, 30_000);

  it('learns a remembered answer again once another answer changed its name (the memo forgets the name)', async () => {
    // The AAAA's window passes first, so the AAAA lookup below surely moves its expiry.
    expect(addresses(await lookup(client, 'api.fq.test', NSD, { type: 'AAAA' }), 'AAAA')).toEqual(['fd00:18:1::10']);
    await new Promise((r) => setTimeout(r, 1_500));
    await lookup(client, 'api.fq.test');
    const s0 = await proxyStats();
    expect(addresses(await lookup(client, 'api.fq.test'))).toEqual(['198.18.1.10']);
    const s1 = await proxyStats();
    expect(s1.unchanged! - s0.unchanged!).toBe(1); // the A answer is remembered, its window open
    // The AAAA answer changes what the cache holds for the name: its remembered answers are forgotten.
    await lookup(client, 'api.fq.test', NSD, { type: 'AAAA' });
    const s2 = await proxyStats();
    expect(s2.unchanged).toBe(s1.unchanged);
    expect(addresses(await lookup(client, 'api.fq.test'))).toEqual(['198.18.1.10']);
    const s3 = await proxyStats();
    expect(s3.unchanged).toBe(s1.unchanged); // learned again, though its own window is still open
    expect(s3.learnedAnswers! - s2.learnedAnswers!).toBe(1);
    expect(reach(client, '198.18.1.10', 443)).toBe(true);
  }, 30_000);

  it('survives malformed and truncated packets from pods', async () => {
    const before = await proxyStats();
    const hex = ['', '00', 'ffff', '1234010000010000000000000377777700', 'c00c'.repeat(64), '0000'.repeat(300)];
    for (const h of hex) await probeSendRaw(client, { server: NSD, hex: h || '00', count: 200 });
    const ok = await lookup(client, 'api.fq.test');
    expect(ok.rcode).toBe('NOERROR');
    expect((await proxyStats()).malformed).toBeGreaterThan(before.malformed!);
  });

  it('lists what it learned, per pod, through `sluice fqdn`', async () => {
    const all = await learned();
    const api = all.find((x) => x.name === 'api.fq.test');
    expect(api?.ips.map((i) => i.ip).sort()).toEqual(['198.18.1.10', 'fd00:18:1::10']);
    expect(api!.ips.every((i) => i.expiresInMs > 250_000)).toBe(true);
    // The strict pod's rules don't cover api.fq.test.
    const strictRows = await learned('strict/s');
    expect(strictRows.map((x) => x.name)).toEqual(['strict.fq.test']);
    const table = sluice(['fqdn', '--pod', 'fq/client']);
    expect(table.status, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/api\.fq\.test\s+198\.18\.1\.10/);
    expect(table.stdout).toMatch(/fq\/web/);
  });

  it('rejects an invalid FQDNPolicy edit whole, reports it, and keeps the previous version in force', async () => {
    // The edit would also open other.fq.test: none of it may apply.
    const bad = POLICY.replace('{ matchName: keep.fq.test }', '{ matchName: keep.fq.test }, { matchName: other.fq.test }').replace('"*.pat.fq.test"', '"*.pat..fq.test"');
    expect(bad).not.toBe(POLICY);
    node.writeManifest('fq.yaml', bad);
    let file: { ok: boolean; error?: string } | undefined;
    const deadline = Date.now() + 5000;
    while (!file || file.ok) {
      if (Date.now() > deadline) throw new Error('the invalid edit was not reported');
      await new Promise((r) => setTimeout(r, 50));
      const s = (await callAgent(node.runDir, 'status')) as { manifests: Array<{ file: string; ok: boolean; error?: string }> };
      file = s.manifests.find((m) => m.file === 'fq.yaml');
    }
    expect(file.error).toMatch(/FQDNPolicy fq\/web: spec\.egress\[1\]\.toFQDNs\[0\]\.matchPattern/);
    expect(node.log()).toMatch(/pat\.\.fq\.test/);
    const status = sluice(['status']);
    expect(status.status).toBe(1);
    expect(status.stdout).toMatch(/fq\.yaml/);
    await lookup(client, 'other.fq.test');
    expect(reach(client, '198.18.1.11', 80)).toBe(false);
    await lookup(client, 'a.pat.fq.test');
    expect(reach(client, '198.18.1.22', 80)).toBe(true);
    node.writeManifest('fq.yaml', POLICY);
    const back = Date.now() + 5000;
    for (;;) {
      const s = (await callAgent(node.runDir, 'status')) as { manifests: Array<{ file: string; ok: boolean }> };
      if (s.manifests.find((m) => m.file === 'fq.yaml')?.ok) break;
      if (Date.now() > back) throw new Error('the fixed manifest was not applied');
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  it('keeps allowed allowed and denied denied across SIGKILL and restart, and restores learned IPs', async () => {
    await lookup(client, 'keep.fq.test');
    expect(reach(client, '198.18.1.80', 80)).toBe(true);
    await node.stop('SIGKILL');
    expect(reach(client, '198.18.1.80', 80)).toBe(true);
    expect(reach(client, '198.18.1.11', 80)).toBe(false);
    expect(reach(client, '198.18.1.81', 80)).toBe(false);
    // DNS is dropped while the agent is down (the client retries), and opens nothing.
    expect((await lookup(client, 'after.fq.test')).rcode).toBeNull();
    expect(reach(client, '198.18.1.81', 80)).toBe(false);
    await node.start();
    const names = (await learned('fq/client')).map((x) => x.name);
    expect(names).toEqual(expect.arrayContaining(['keep.fq.test', 'api.fq.test', 'n0.fq.test', 'n199.fq.test']));
    expect(reach(client, '198.18.1.80', 80)).toBe(true);
    expect(reach(client, '198.18.1.11', 80)).toBe(false);
    // Resolution resumed with the agent.
    const r = await probeLookupConnect(client, { server: NSD, names: ['after.fq.test'], port: 80, timeoutS: 1 });
    expect(r.failures).toBe(0);
  }, 60_000);
});
