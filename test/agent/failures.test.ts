// Failures fail closed and loudly, tell the truth, and never destroy live
// state on bad local data (issue 12, item 5). A real agent in a TestNode, real
// pods through the real sluice-cni, datapath failures made real with tiny
// --max-* map sizes, damaged state files written where the agent keeps them.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Cleanup, cni, podArgs, SLUICE, TestNode, type Netns } from '../helpers/agent.js';
import { probeQuery, startAuthServer, type Zone } from '../helpers/dns.js';
import { isRoot, sh } from '../helpers/netns.js';
import { makeWorld } from '../helpers/world.js';
import { until as waitUntil } from '../helpers/wait.js';

const cleanup = new Cleanup();
const procs: ChildProcess[] = [];
afterAll(() => {
  for (const p of procs) p.kill('SIGKILL');
  cleanup.run();
});

const SERVER = `import socket,sys
s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.setsockopt(socket.SOL_IP,19,1);s.bind(('0.0.0.0',int(sys.argv[1])));s.listen(128)
while True:
  c,_=s.accept();c.close()`;

function serve(ns: Netns, port: number): void {
  procs.push(spawn('nsenter', [`--net=${ns.path}`, 'python3', '-c', SERVER, String(port)], { stdio: 'ignore' }));
}

/** TCP connect from `ns` to ip:port within 300 ms. */
function connects(ns: Netns, ip: string, port: number): boolean {
  const r = spawnSync('nsenter', [`--net=${ns.path}`, 'python3', '-c', `import socket;s=socket.socket();s.settimeout(0.3);s.connect(('${ip}',${port}));s.close()`]);
  return r.status === 0;
}

const until = (what: string, cond: () => boolean | Promise<boolean>, ms = 5000) => waitUntil(what, cond, ms, 50);

interface Status {
  problems?: string[];
  manifests: Array<{ file: string; ok: boolean; error?: string }>;
}

function status(node: TestNode): { code: number | null; json: Status } {
  const r = spawnSync(process.execPath, [SLUICE, 'status', '--run-dir', node.runDir, '-o', 'json'], { encoding: 'utf8' });
  return { code: r.status, json: JSON.parse(r.stdout) as Status };
}

/** Entries in the node's pinned policy map (every generation of every endpoint). */
function policyEntries(node: TestNode): number {
  const out = sh('bpftool', ['-j', 'map', 'dump', 'pinned', join(node.bpffs, 'sluice_policy_v1')], { allowFail: true });
  return out ? (JSON.parse(out) as unknown[]).length : 0;
}

const PODS = `apiVersion: v1
kind: Namespace
metadata: { name: r }
---
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: r, labels: { role: client } }
---
apiVersion: v1
kind: Pod
metadata: { name: server, namespace: r, labels: { role: server } }
`;

/** Selects the server: ingress from the client on port 80 (and `extra` more ports). */
function policy(extraPorts = 0): string {
  const ports = [80, ...Array.from({ length: extraPorts }, (_, i) => 1000 + i * 7)].map((p) => `{ port: ${p} }`).join(', ');
  return `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: only-80, namespace: r }
spec:
  podSelector: { matchLabels: { role: server } }
  ingress: [ { from: [ { podSelector: { matchLabels: { role: client } } } ], ports: [ ${ports} ] } ]
`;
}

function add(node: TestNode, id: string, ns: Netns, name: string) {
  return cni({ command: 'ADD', containerId: id, netns: ns.path, ifname: 'eth0', args: podArgs('r', name), config: node.conf() });
}

function ipOf(r: ReturnType<typeof cni>): string {
  return (r.json!.ips as Array<{ address: string }>)[0]!.address.split('/')[0]!;
}

describe.skipIf(!isRoot)('a datapath failure during ADD', () => {
  it('a full endpoint map: ADD answers 11 (try again later), leaves nothing behind and leaks no policy entry', async () => {
    const node = new TestNode(cleanup, { podCidr: '10.81.0.0/24', nodeIp: '10.81.255.1/32', extraArgs: ['--max-endpoints', '1'] });
    node.writeManifest('pods.yaml', PODS);
    // Every pod selected, so each endpoint has entries of its own.
    node.writeManifest('policy.yaml', policy().replace('{ matchLabels: { role: server } }', '{}'));
    await node.start();
    const first = add(node, 'ef-client', cleanup.netns('c'), 'client');
    expect(first.status, first.stdout).toBe(0);
    const entries = policyEntries(node);
    expect(entries).toBeGreaterThan(0);

    const second = add(node, 'ef-server', cleanup.netns('s'), 'server');
    // Before the fix: 999 (the endpoint-map write threw out of the writer),
    // with the new generation's entries left in the policy map.
    expect(second.status).not.toBe(0);
    expect(second.json).toMatchObject({ code: 11, msg: 'datapath map full' });
    expect(node.hostVeths()).toHaveLength(1);
    expect(node.endpointRecords()).toHaveLength(1);
    expect(node.allocations()).toHaveLength(1);
    expect(node.mapEntries()).toHaveLength(1);
    expect(policyEntries(node)).toBe(entries);
    // Nothing is left failing once the ADD is rolled back.
    expect(status(node).json.problems).toEqual([]);
  });

  it('a policy that does not fit a new pod: ADD answers 11 and leaves nothing behind', async () => {
    const node = new TestNode(cleanup, { podCidr: '10.82.0.0/24', nodeIp: '10.82.255.1/32', extraArgs: ['--max-policy-entries', '4'] });
    node.writeManifest('pods.yaml', PODS);
    node.writeManifest('policy.yaml', policy(10));
    await node.start();
    expect(add(node, 'pf-client', cleanup.netns('c'), 'client').status).toBe(0);
    const r = add(node, 'pf-server', cleanup.netns('s'), 'server');
    // Before the fix: 0, a pod whose every packet is dropped.
    expect(r.json).toMatchObject({ code: 11 });
    expect(node.hostVeths()).toHaveLength(1);
    expect(node.allocations()).toHaveLength(1);
    expect(node.endpointRecords()).toHaveLength(1);
  });
});

describe.skipIf(!isRoot)('a datapath failure on a policy edit', () => {
  it('the edit is accepted, the endpoint fails closed, status says so (exit 1), and it recovers', async () => {
    const node = new TestNode(cleanup, { podCidr: '10.83.0.0/24', nodeIp: '10.83.255.1/32', extraArgs: ['--max-policy-entries', '4'] });
    node.writeManifest('pods.yaml', PODS);
    await node.start();
    const client = cleanup.netns('c');
    const server = cleanup.netns('s');
    expect(add(node, 'pe-client', client, 'client').status).toBe(0);
    const serverIp = ipOf(add(node, 'pe-server', server, 'server'));
    serve(server, 80);
    await until('server up', () => connects(client, serverIp, 80));

    node.writeManifest('policy.yaml', policy(10));
    await until('fail closed', () => !connects(client, serverIp, 80));
    const s = status(node);
    expect(s.code).toBe(1);
    // The manifest is what it is: accepted, not "rejected, the previous objects stay".
    expect(s.json.manifests.find((m) => m.file === 'policy.yaml')).toMatchObject({ ok: true });
    expect(s.json.problems).toEqual([expect.stringMatching(/endpoint pe-server\.eth0: policy could not be programmed .*drops all traffic/)]);

    node.writeManifest('policy.yaml', policy());
    await until('recovered', () => connects(client, serverIp, 80));
    await until('status clean', () => status(node).code === 0);
    expect(status(node).json.problems).toEqual([]);
  });
});

describe.skipIf(!isRoot)('an unreadable endpoint record', () => {
  it("is quarantined across restarts: the pod's veth, address and connectivity survive until its DEL", async () => {
    const node = new TestNode(cleanup, { podCidr: '10.84.0.0/24', nodeIp: '10.84.255.1/32' });
    node.writeManifest('pods.yaml', PODS);
    await node.start();
    const client = cleanup.netns('c');
    const server = cleanup.netns('s');
    expect(add(node, 'cr-client', client, 'client').status).toBe(0);
    const serverIp = ipOf(add(node, 'cr-server', server, 'server'));
    serve(server, 80);
    await until('server up', () => connects(client, serverIp, 80));
    const veths = node.hostVeths().sort();
    const allocations = node.allocations().sort();

    await node.stop('SIGKILL');
    const record = join(node.stateDir, 'endpoints', 'cr-server.eth0.json');
    writeFileSync(record, '{"containerId": "cr-server", "ifn');
    await node.start();
    // Before the fix: the record was skipped, the veth deleted and the IP freed.
    expect(node.hostVeths().sort()).toEqual(veths);
    expect(node.allocations().sort()).toEqual(allocations);
    expect(connects(client, serverIp, 80)).toBe(true);
    expect(existsSync(`${record}.corrupt`)).toBe(true);
    expect(node.log()).toMatch(/unreadable endpoint record quarantined/);
    const s = status(node);
    expect(s.code).toBe(1);
    expect(s.json.problems).toEqual([expect.stringMatching(/cr-server\.eth0\.json\.corrupt is unreadable/)]);

    // Still quarantined after another restart (the *.corrupt file is kept).
    await node.stop('SIGKILL');
    await node.start();
    expect(node.hostVeths().sort()).toEqual(veths);
    expect(connects(client, serverIp, 80)).toBe(true);

    // A DEL resolves it: everything of that attachment goes.
    const del = cni({ command: 'DEL', containerId: 'cr-server', netns: server.path, ifname: 'eth0', args: podArgs('r', 'server'), config: node.conf() });
    expect(del.status, del.stdout).toBe(0);
    expect(node.hostVeths()).toHaveLength(1);
    expect(node.allocations()).toHaveLength(1);
    expect(readdirSync(join(node.stateDir, 'endpoints')).filter((f) => f.startsWith('cr-server'))).toEqual([]);
    expect(status(node).json.problems).toEqual([]);
  });
});

// ------------------------------------------------------------------ FQDN

const NSD = '198.18.0.53';
const API = '198.18.1.10';
const ZONE: Zone = { origin: 'fq.test', defaultTtl: 3600, records: [{ name: 'api', type: 'A', value: API }] };
const FQDN_MANIFEST = `apiVersion: v1
kind: Namespace
metadata: { name: f }
---
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: f, labels: { app: client } }
---
apiVersion: sluice.dev/v1alpha1
kind: FQDNPolicy
metadata: { name: api, namespace: f }
spec:
  podSelector: { matchLabels: { app: client } }
  egress:
  - toFQDNs: [ { matchName: api.fq.test } ]
    ports: [ { port: 80 } ]
`;

/** A node with a world (nsd serving fq.test, TCP servers on 80 and 81) and a pod f/client selected by FQDN_MANIFEST. */
async function fqdnNode(tag: string, podCidr: string, extraArgs: string[] = []): Promise<{ node: TestNode; pod: Netns }> {
  const node = new TestNode(cleanup, { podCidr, nodeIp: `${podCidr.split('.').slice(0, 2).join('.')}.255.1/32`, extraArgs: ['--dns-trusted', NSD, ...extraArgs] });
  const world = makeWorld(cleanup, node, { tag, node: ['198.19.0.1/24'], world: ['198.19.0.2/24'], owns: ['198.18.0.0/16'], addresses: [NSD], podCidrs: [podCidr] });
  await startAuthServer(cleanup, world, { address: NSD, zones: [ZONE] });
  serve(world, 80);
  serve(world, 81);
  node.writeManifest('f.yaml', FQDN_MANIFEST);
  await node.start();
  const pod = cleanup.netns('fqc');
  const r = cni({ command: 'ADD', containerId: `${tag}-client`, netns: pod.path, ifname: 'eth0', args: podArgs('f', 'client'), config: node.conf() });
  expect(r.status, r.stdout).toBe(0);
  return { node, pod };
}

describe.skipIf(!isRoot)('a datapath failure after a manifest is accepted', () => {
  it('is reported as accepted-but-failing (never "rejected, previous objects in force"), fails closed and is retried', async () => {
    const { node, pod } = await fqdnNode('m', '10.86.0.0/24', ['--max-fqdn-entries', '1']);
    const answer = await probeQuery(pod, { server: NSD, name: 'api.fq.test', type: 'A', timeoutS: 2 });
    expect(answer.answers.map((a) => a.value)).toEqual([API]);
    await until('port 80 allowed', () => connects(pod, API, 80));
    // A second policy for the same name: its rule needs a second entry for
    // the learned address, and the FQDN map holds one.
    node.writeManifest('more.yaml', FQDN_MANIFEST.split('---').slice(2).join('---').replace('name: api,', 'name: api81,').replace('port: 80', 'port: 81'));
    await until('the manifest handled', () => status(node).json.manifests.some((m) => m.file === 'more.yaml'));
    const s = status(node);
    // Before the fix: { ok: false, error: 'FQDN map is full' } and the log said
    // "manifest rejected; its previous objects stay in force" — while the store held it.
    expect(s.json.manifests.find((m) => m.file === 'more.yaml')).toMatchObject({ ok: true });
    expect(node.log()).not.toMatch(/manifest rejected/);
    expect(s.code).toBe(1);
    expect(s.json.problems).toEqual([expect.stringMatching(/acting on it failed .*SLUICE_MAP_FULL/)]);
    // Fail closed: the new rule's port stays shut, the old one keeps working.
    expect(connects(pod, API, 81)).toBe(false);
    expect(connects(pod, API, 80)).toBe(true);
    expect(node.log()).toMatch(/policy programmed, but acting on it failed; retrying/);
  });
});

describe.skipIf(!isRoot)('a damaged FQDN snapshot', () => {
  it('does not make the first resync delete the allows the pinned map holds', async () => {
    const { node, pod } = await fqdnNode('s', '10.85.0.0/24');
    expect(connects(pod, API, 80)).toBe(false); // not learned yet
    const answer = await probeQuery(pod, { server: NSD, name: 'api.fq.test', type: 'A', timeoutS: 2 });
    expect(answer.answers.map((a) => a.value)).toEqual([API]);
    expect(connects(pod, API, 80)).toBe(true);

    // As if compaction had moved the name into the snapshot, and the
    // snapshot were then damaged: the journal is empty, the snapshot torn.
    await node.stop('SIGKILL');
    const dir = join(node.stateDir, 'fqdn');
    writeFileSync(join(dir, 'journal.jsonl'), '');
    writeFileSync(join(dir, 'snapshot.json'), `{"version":1,"names":[["api.fq.test",[["${API}",`);
    await node.start();
    // Before the fix: the first resync deleted the adopted allow.
    expect(connects(pod, API, 80)).toBe(true);
    expect(existsSync(join(dir, 'snapshot.json.corrupt'))).toBe(true);
    expect(node.log()).toMatch(/learned FQDN mappings damaged/);
    const s = status(node);
    expect(s.code).toBe(1);
    expect(s.json.problems).toEqual([expect.stringMatching(/^fqdn: learned mappings damaged .*snapshot\.json.*1 adopted allows kept until they expire/)]);
    // And learning goes on: a new answer is allowed as ever.
    await probeQuery(pod, { server: NSD, name: 'api.fq.test', type: 'A', timeoutS: 2 });
    expect(connects(pod, API, 80)).toBe(true);
  });
});
