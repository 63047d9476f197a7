// An agent upgrade with DNS under way (issue 17): a successor started beside
// the running agent takes its DNS and health sockets over
// (src/agent/handover.ts). A pod resolving 200 names a second, each tried
// ONCE with a 2 s timeout, sees every lookup answered across two handovers
// in a row; the predecessors stay dormant and exit 0 on SIGTERM; learned
// names carry over, a name learned by the successor opens on the pod's first
// connect, and an address nobody learned stays closed.
import { spawnSync, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cleanup, SLUICE, TestNode, type Netns } from '../helpers/agent.js';
import { probeLookupConnect, probeQuery, probeStream, startAuthServer, type Zone } from '../helpers/dns.js';
import { isRoot } from '../helpers/netns.js';
import { reach, startEchoServers } from '../helpers/servers.js';
import { makeWorld } from '../helpers/world.js';

const NSD = '198.18.30.53';
const POD_CIDR = '10.74.0.0/24';
const METRICS = '127.0.0.1:19963';
const NAMES = 50;
const zone: Zone = {
  origin: 'ho.test',
  defaultTtl: 300,
  records: [
    ...Array.from({ length: NAMES }, (_, i) => ({ name: `n${i}`, type: 'A' as const, value: `198.18.31.${i + 1}` })),
    { name: 'fresh', type: 'A', value: '198.18.32.1' },
  ],
};
const names = Array.from({ length: NAMES }, (_, i) => `n${i}.ho.test`);

const MANIFEST = `apiVersion: v1
kind: Namespace
metadata: { name: ho }
---
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: ho, labels: { app: client } }
---
apiVersion: sluice.dev/v1alpha1
kind: FQDNPolicy
metadata: { name: web, namespace: ho }
spec:
  podSelector: { matchLabels: { app: client } }
  egress: [ { toFQDNs: [ { matchPattern: "*.ho.test" } ], ports: [ { port: 80 } ] } ]
`;

const cleanup = new Cleanup();
let node: TestNode;
let client: Netns;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function learnedNames(): string[] {
  const r = spawnSync(process.execPath, [SLUICE, 'fqdn', '-o', 'json', '--run-dir', node.runDir], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as Array<{ name: string }>).map((n) => n.name);
}

/** GET http://METRICS/healthz from the node's netns: the status code, or 0. */
function healthz(): number {
  const r = spawnSync('nsenter', [`--net=${node.ns.path}`, 'python3', '-c', `import urllib.request;print(urllib.request.urlopen('http://${METRICS}/healthz',timeout=2).status)`], { encoding: 'utf8' });
  return r.status === 0 ? Number(r.stdout.trim()) : 0;
}

/** Per handover in the log: ms from the old agent's 'handing over' to the new one's 'DNS proxy listening'. */
function handoverGaps(log: string): number[] {
  const lines = log
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { time: string; msg: string; pid: number })
    .map((l) => ({ ...l, ms: Date.parse(l.time) }));
  const gaps: number[] = [];
  for (const [i, l] of lines.entries()) {
    if (!l.msg.startsWith('handing over')) continue;
    const served = lines.slice(i).find((m) => m.msg === 'DNS proxy listening' && m.pid !== l.pid);
    if (served) gaps.push(served.ms - l.ms);
  }
  return gaps;
}

function exited(p: ChildProcess): Promise<number | null> {
  if (p.exitCode !== null) return Promise.resolve(p.exitCode);
  return new Promise((r) => p.once('exit', (code) => r(code)));
}

describe.skipIf(!isRoot)('agent upgrade: the DNS sockets handed over', () => {
  beforeAll(async () => {
    node = new TestNode(cleanup, { podCidr: POD_CIDR, nodeIp: '10.74.255.1/32', extraArgs: ['--dns-trusted', NSD, '--metrics-addr', METRICS] });
    const world = makeWorld(cleanup, node, { tag: 'h', node: ['198.19.30.1/24'], world: ['198.19.30.2/24'], owns: ['198.18.0.0/16'], addresses: [NSD], podCidrs: [POD_CIDR] });
    await startAuthServer(cleanup, world, { address: NSD, zones: [zone] });
    startEchoServers(cleanup, world, { tcp: [80] });
    node.writeManifest('ho.yaml', MANIFEST);
    await node.start();
    client = node.addPod(cleanup, 'ho', 'client');
    const deadline = Date.now() + 5000;
    while (!reach(node.ns, '198.18.31.1', 80)) {
      if (Date.now() > deadline) throw new Error('the echo servers in the world netns did not come up');
      await sleep(50);
    }
  }, 60_000);

  afterAll(() => cleanup.run());

  it('answers every lookup, first try, across two handovers; the predecessors go dormant and exit 0 when stopped', async () => {
    const streaming = probeStream(client, { server: NSD, names, rate: 200, seconds: 6, timeoutS: 2, attempts: 1 });
    await sleep(1500);
    const first = await node.start();
    await sleep(1500);
    const second = await node.start();
    const r = await streaming;
    // How long each handover kept DNS waiting: from the old agent pausing its listeners to the successor serving them.
    console.error(`handover: ${JSON.stringify(r)}; DNS waited ${handoverGaps(node.log()).join(' and ')} ms`);
    expect(r.lookups).toBeGreaterThan(1000);
    expect(r).toMatchObject({ failed: 0, unanswered: 0 });
    // The handovers are seen in the log, each from a different pid.
    const log = node.log();
    expect(log.match(/took over the sockets of the agent that was running/g)).toHaveLength(2);
    expect(log.match(/handed the sockets over; dormant until stopped/g)).toHaveLength(2);
    for (const old of [first, second]) {
      expect(old, 'a predecessor').toBeDefined();
      expect(old!.exitCode, 'dormant, not exited').toBeNull();
    }
    // The health listener went over too: the successor answers on the same address.
    expect(healthz()).toBe(200);
    for (const old of [first!, second!]) {
      old.kill('SIGTERM');
      expect(await exited(old)).toBe(0);
    }
    expect(healthz()).toBe(200);
  }, 60_000);

  it('keeps what was learned, learns on (a fresh name opens on the first connect), and keeps the rest closed', async () => {
    expect(learnedNames()).toEqual(expect.arrayContaining(names));
    const fresh = await probeLookupConnect(client, { server: NSD, names: ['fresh.ho.test'], port: 80, timeoutS: 1 });
    expect(fresh.failures, JSON.stringify(fresh.results)).toBe(0);
    // Never learned: closed.
    expect(reach(client, '198.18.33.1', 80)).toBe(false);
    // The TCP listener came over as well.
    const tcp = await probeQuery(client, { server: NSD, name: 'n1.ho.test', tcp: true, timeoutS: 2 });
    expect(tcp.rcode).toBe('NOERROR');
    expect(tcp.answers.map((a) => a.value)).toEqual(['198.18.31.2']);
  }, 30_000);
});
