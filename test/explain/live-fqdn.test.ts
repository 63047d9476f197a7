// `sluice test --live` and `sluice explain` on FQDN policy, against the real
// datapath: a node with the real agent and DNS proxy, a "world" netns behind
// it with an authoritative server (nsd) and servers on every address, a pod
// an FQDNPolicy selects (patterns, ports, and the union with a NetworkPolicy
// ipBlock). Before a lookup a name is judged as if answered (no address to
// probe); after it, on the addresses the proxy learned, and every probe from
// the pod must agree with the compiled verdict.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cleanup, SLUICE, TestNode, type Netns } from '../helpers/agent.js';
import { probeQuery, startAuthServer, type Zone } from '../helpers/dns.js';
import { isRoot } from '../helpers/netns.js';
import { makeWorld } from '../helpers/world.js';

const NSD = '198.18.0.53';
const POD_CIDR = '10.79.0.0/24,fd00:79::/64';

const ZONE: Zone = {
  origin: 'ex.test',
  defaultTtl: 300,
  records: [
    { name: 'api', type: 'A', value: '198.18.1.10' },
    { name: 'other', type: 'A', value: '198.18.1.11' },
    { name: 'a.pat', type: 'A', value: '198.18.1.22' },
    { name: 'b.x.pat', type: 'A', value: '198.18.1.23' },
  ],
};

/** TCP 80 and 443 accept and close; UDP 443 echoes; on every address the world owns. */
const WEB = `import socket,threading
def tcp(port):
  s=socket.socket(socket.AF_INET);s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.setsockopt(socket.SOL_IP,19,1)
  s.bind(('0.0.0.0',port));s.listen(512)
  while True:
    c,_=s.accept();c.close()
for p in (80,443): threading.Thread(target=tcp,args=(p,),daemon=True).start()
u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);u.bind(('0.0.0.0',443))
while True:
  d,a=u.recvfrom(100);u.sendto(d,a)`;

const MANIFESTS = `apiVersion: v1
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
metadata: { name: names, namespace: fq }
spec:
  podSelector: { matchLabels: { app: client } }
  egress:
  - toFQDNs: [ { matchName: api.ex.test } ]
    ports: [ { port: 443 } ]
  - toFQDNs: [ { matchPattern: "*.pat.ex.test" } ]
    ports: [ { port: 80 } ]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: one-host, namespace: fq }
spec:
  podSelector: { matchLabels: { app: client } }
  policyTypes: [ Egress ]
  egress: [ { to: [ { ipBlock: { cidr: 198.18.6.1/32 } } ], ports: [ { port: 80 } ] } ]
`;

const assertions = (list: string[]) => `apiVersion: sluice.dev/v1alpha1\nkind: Assertions\nassertions:\n${list.map((a) => `- ${a}\n`).join('')}`;

const cleanup = new Cleanup();
const procs: ChildProcess[] = [];
let node: TestNode;
let client: Netns;
let dir: string;

function sluice(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [SLUICE, ...args, '--run-dir', node.runDir], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function test(name: string, list: string[]): ReturnType<typeof sluice> {
  const path = join(dir, name);
  writeFileSync(path, assertions(list));
  return sluice('test', path, '--live');
}

describe.skipIf(!isRoot)('sluice test --live on FQDN policy: names before and after a lookup, agreeing with the datapath', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'slt-livefq-'));
    cleanup.add(() => rmSync(dir, { recursive: true, force: true }));
    node = new TestNode(cleanup, { podCidr: POD_CIDR, nodeIp: '10.79.255.1/32', extraArgs: ['--dns-trusted', NSD] });
    cleanup.add(() => {
      for (const p of procs) p.kill('SIGKILL');
    });
    const world = makeWorld(cleanup, node, { tag: 'x', node: ['198.19.0.1/24'], world: ['198.19.0.2/24'], owns: ['198.18.0.0/16'], addresses: [NSD], podCidrs: [POD_CIDR.split(',')[0]!] });
    await startAuthServer(cleanup, world, { address: NSD, zones: [ZONE] });
    procs.push(spawn('nsenter', [`--net=${world.path}`, 'python3', '-c', WEB], { stdio: 'ignore' }));
    node.writeManifest('fq.yaml', MANIFESTS);
    await node.start();
    client = node.addPod(cleanup, 'fq', 'client');
    node.addPod(cleanup, 'fq', 'bystander');
    const deadline = Date.now() + 5000;
    const up = () => spawnSync('nsenter', [`--net=${node.ns.path}`, 'python3', '-c', "import socket;socket.create_connection(('198.18.1.11',443),0.5)"]).status === 0;
    while (!up()) if (Date.now() > deadline) throw new Error('the world\'s servers did not come up');
  }, 120_000);

  afterAll(() => cleanup.run());

  it('before any lookup: a name is judged as if answered (nothing to probe); its address is closed, and the probes agree', () => {
    const r = test('before.yaml', [
      '{ from: fq/client, to: api.ex.test, port: 443/TCP, expect: allow }',
      '{ from: fq/client, to: 198.18.1.10, port: 443/TCP, expect: deny }',
      '{ from: fq/client, to: a.pat.ex.test, port: 80, expect: allow }',
      '{ from: fq/client, to: b.x.pat.ex.test, port: 80, expect: deny }',
    ]);
    expect(r.stdout.split('\n').slice(0, 4)).toEqual([
      'ok    fq/client -> api.ex.test 443/TCP: allow (fq/names) [probe: not probed (no address to try: nothing learned for the name yet)]',
      'ok    fq/client -> 198.18.1.10 443/TCP: deny (fq/one-host, fq/names) [probe: timeout]',
      'ok    fq/client -> a.pat.ex.test 80/TCP: allow (fq/names) [probe: not probed (no address to try: nothing learned for the name yet)]',
      'ok    fq/client -> b.x.pat.ex.test 80/TCP: deny (fq/one-host, fq/names) [probe: not probed (no address to try: nothing learned for the name yet)]',
    ]);
    expect(r.status).toBe(0);
  }, 60_000);

  it('after the lookups: names and their addresses judged as the datapath does, ports and the ipBlock union included', async () => {
    for (const name of ['api.ex.test', 'a.pat.ex.test', 'b.x.pat.ex.test']) {
      const q = await probeQuery(client, { server: NSD, name, timeoutS: 2 });
      expect(q.rcode, name).toBe('NOERROR');
    }
    const r = test('after.yaml', [
      '{ from: fq/client, to: api.ex.test, port: 443/TCP, expect: allow }',
      '{ from: fq/client, to: 198.18.1.10, port: 443, expect: allow }',
      '{ from: fq/client, to: 198.18.1.10, port: 443/UDP, expect: deny }',
      '{ from: fq/client, to: api.ex.test, port: 80, expect: deny }',
      '{ from: fq/client, to: a.pat.ex.test, port: 80, expect: allow }',
      '{ from: fq/client, to: b.x.pat.ex.test, port: 80, expect: deny }',
      '{ from: fq/client, to: 198.18.1.11, port: 443, expect: deny }',
      '{ from: fq/client, to: 198.18.6.1, port: 80, expect: allow }',
      '{ from: fq/client, to: 198.18.6.1, port: 443, expect: deny }',
      '{ from: fq/bystander, to: 198.18.1.11, port: 443, expect: allow }',
    ]);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines.filter((l) => !l.startsWith('ok ')).join('\n')).toBe('10 passed, 0 failed');
    expect(lines[0]).toBe('ok    fq/client -> api.ex.test 443/TCP: allow (fq/names) [probe: connected]');
    expect(lines[1]).toBe('ok    fq/client -> 198.18.1.10 443/TCP: allow (fq/names) [probe: connected]');
    // The rule's port is 443/TCP: UDP is dropped on the client's egress, and the flow log says so.
    expect(lines[2]).toMatch(/^ok {4}fq\/client -> 198\.18\.1\.10 443\/UDP: deny \(fq\/one-host, fq\/names\) \[probe: timeout, dropped \([a-z-]+\)\]$/);
    expect(lines[3]).toBe('ok    fq/client -> api.ex.test 80/TCP: deny (fq/one-host, fq/names) [probe: timeout]');
    expect(lines[4]).toBe('ok    fq/client -> a.pat.ex.test 80/TCP: allow (fq/names) [probe: connected]');
    expect(lines[5]).toBe('ok    fq/client -> b.x.pat.ex.test 80/TCP: deny (fq/one-host, fq/names) [probe: timeout]');
    expect(lines[7]).toBe('ok    fq/client -> 198.18.6.1 80/TCP: allow (fq/one-host) [probe: connected]');
    expect(lines[9]).toBe('ok    fq/bystander -> 198.18.1.11 443/TCP: allow [probe: connected]');
    expect(r.status).toBe(0);
  }, 60_000);

  it('sluice explain of a learned name lists its addresses and the rule that opens them', () => {
    const e = JSON.parse(sluice('explain', '--from', 'fq/client', '--to', 'API.ex.test.', '--port', '443', '-o', 'json').stdout) as {
      verdict: string;
      rules: string[];
      reason: string;
      learned: Array<{ ip: string; expiresInMs: number }>;
      paths: Array<{ destination: string }>;
    };
    expect(e).toMatchObject({ verdict: 'allow', rules: ['fq/names'], paths: [{ destination: '198.18.1.10' }] });
    expect(e.learned.map((a) => a.ip)).toEqual(['198.18.1.10']);
    expect(e.learned[0]!.expiresInMs).toBeGreaterThan(0);
    expect(e.reason).toMatch(/is allowed by FQDNPolicy fq\/names egress rule 0 \(toFQDNs api\.ex\.test\): 198\.18\.1\.10 was learned for api\.ex\.test \(\d+s left\)$/);
  });
});
