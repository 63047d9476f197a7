// Learning into a full sluice_fqdn_v1, end to end: the real agent (its map
// sized to a few entries with --max-fqdn-entries), a pod made by the real
// sluice-cni, nsd in a world netns. The proxy writes the allows of each batch
// of answers it reads with one map update, before it sends any of them: when
// the map fills part-way through, exactly the answers whose addresses did not
// fit get SERVFAIL, every other answer goes out, and an address is open to
// the pod exactly when its answer went out.
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callAgent } from '../../src/cli/client.js';
import { Cleanup, TestNode, type Netns } from '../helpers/agent.js';
import { startAuthServer, type Zone } from '../helpers/dns.js';
import { isRoot } from '../helpers/netns.js';
import { reach, startEchoServers } from '../helpers/servers.js';
import { makeWorld } from '../helpers/world.js';

const NSD = '198.18.0.53';
const POD_CIDR = '10.73.0.0/24';
const CAPACITY = 4;
const NAMES = 10;

const zone: Zone = {
  origin: 'full.test',
  defaultTtl: 300,
  records: Array.from({ length: NAMES }, (_, i) => ({ name: `f${i}`, type: 'A' as const, value: `198.18.7.${i + 1}` })),
};

const POLICY = `apiVersion: v1
kind: Namespace
metadata: { name: full }
---
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: full, labels: { app: client } }
---
apiVersion: sluice.dev/v1alpha1
kind: FQDNPolicy
metadata: { name: web, namespace: full }
spec:
  podSelector: { matchLabels: { app: client } }
  egress:
  - toFQDNs: [ { matchPattern: "*.full.test" } ]
    ports: [ { port: 80 } ]
`;

/**
 * Every query from one socket at once (so their answers arrive together),
 * then the answers for up to 3 s: {id: [rcode, first A or null]} as JSON.
 */
const BURST_PY = `import socket,struct,sys,json,time
server,names=sys.argv[1],sys.argv[2].split(',')
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(0.2)
def q(i,n):
  out=struct.pack('>HHHHHH',i,0x0100,1,0,0,0)
  for l in n.split('.'): out+=bytes([len(l)])+l.encode()
  return out+b'\\0'+struct.pack('>HH',1,1)
for i,n in enumerate(names): s.sendto(q(i+1,n),(server,53))
got={};end=time.time()+3
while len(got)<len(names) and time.time()<end:
  try: d,_=s.recvfrom(4096)
  except socket.timeout: continue
  qid,flags,qd,an=struct.unpack('>HHHH',d[:8]);i=12
  while d[i]: i+=d[i]+1
  i+=5;ip=None
  for _ in range(an):
    i+=2 if d[i]&0xc0==0xc0 else 0
    t,c,ttl,l=struct.unpack('>HHIH',d[i:i+10]);i+=10
    if t==1 and ip is None: ip=socket.inet_ntoa(d[i:i+4])
    i+=l
  got[qid]=[['NOERROR','FORMERR','SERVFAIL','NXDOMAIN','NOTIMP','REFUSED'][flags&15],ip]
print(json.dumps(got))`;

const cleanup = new Cleanup();
let node: TestNode;
let client: Netns;

describe.skipIf(!isRoot)('learning into a full FQDN allow map, a batch of answers at a time', () => {
  beforeAll(async () => {
    node = new TestNode(cleanup, {
      podCidr: POD_CIDR,
      nodeIp: '10.73.255.1/32',
      extraArgs: ['--dns-trusted', NSD, '--max-fqdn-entries', String(CAPACITY), '--fqdn-min-ttl', '60s'],
    });
    const world = makeWorld(cleanup, node, {
      tag: 'f',
      node: ['198.19.0.1/24'],
      world: ['198.19.0.2/24'],
      owns: ['198.18.0.0/16'],
      addresses: [NSD],
      podCidrs: [POD_CIDR],
    });
    await startAuthServer(cleanup, world, { address: NSD, zones: [zone] });
    startEchoServers(cleanup, world, { tcp: [80] });
    node.writeManifest('full.yaml', POLICY);
    await node.start();
    client = node.addPod(cleanup, 'full', 'client');
    const deadline = Date.now() + 5000;
    while (!reach(node.ns, '198.18.7.1', 80)) {
      if (Date.now() > deadline) throw new Error('web servers in the world netns did not come up');
    }
  }, 120_000);

  afterAll(() => cleanup.run());

  it('answers SERVFAIL for just the answers whose addresses did not fit, and opens exactly the others', async () => {
    const names = Array.from({ length: NAMES }, (_, i) => `f${i}.full.test`);
    const r = spawnSync('nsenter', [`--net=${client.path}`, 'python3', '-c', BURST_PY, NSD, names.join(',')], { encoding: 'utf8', timeout: 10_000 });
    expect(r.status, r.stderr).toBe(0);
    const got = JSON.parse(r.stdout) as Record<string, [string, string | null]>;
    expect(Object.keys(got)).toHaveLength(NAMES);
    const answered = Object.values(got).filter(([rcode]) => rcode === 'NOERROR');
    const servfail = Object.values(got).filter(([rcode]) => rcode === 'SERVFAIL');
    // The map holds CAPACITY allows: that many answers went out, the rest could not be programmed.
    expect(answered).toHaveLength(CAPACITY);
    expect(servfail).toHaveLength(NAMES - CAPACITY);
    for (const [, ip] of answered) expect(reach(client, ip!, 80), `${ip} was answered`).toBe(true);
    for (let i = 0; i < NAMES; i++) {
      const [rcode] = got[String(i + 1)]!;
      if (rcode === 'SERVFAIL') expect(reach(client, `198.18.7.${i + 1}`, 80, 'tcp', 0.3), `${names[i]} got SERVFAIL`).toBe(false);
    }
    const status = (await callAgent(node.runDir, 'status')) as { fqdn: { entries: number; proxy: Record<string, number> } };
    expect(status.fqdn.entries).toBe(CAPACITY);
    expect(status.fqdn.proxy).toMatchObject({ learnedAnswers: CAPACITY, servfail: NAMES - CAPACITY, errors: 0 });
  }, 60_000);
});
