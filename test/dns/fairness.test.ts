// One pod must not starve everybody's DNS (PRODUCT.md §5: "one pod flooding
// the proxy with queries cannot delay another pod's lookups"). A node running
// the real agent, two pods made by the real sluice-cni and selected by one
// FQDNPolicy (so all their DNS goes through the proxy), and a real nsd on a
// test host. The flooder pod runs dnsperf as fast as it can for a bounded
// time; meanwhile the victim pod does lookups one after another. Every victim
// lookup must be answered within 1 s, and the flooder's excess must be
// dropped and counted for that pod (`sluice status`).
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callAgent } from '../../src/cli/client.js';
import { Cleanup, TestNode, type Netns } from '../helpers/agent.js';
import { probeQuery, startAuthServer, type Zone } from '../helpers/dns.js';
import { isRoot } from '../helpers/netns.js';
import { makeWorld } from '../helpers/world.js';

const NSD = '198.18.0.53';
const POD_CIDR = '10.73.0.0/24';
/** How long the flood lasts (dnsperf -l), and the victim's lookups meanwhile. */
const FLOOD_S = 4;
const VICTIM_LOOKUPS = 10;
const VICTIM_TIMEOUT_S = 1;
/** The budgets under test, as an operator would set them (the defaults). */
const POD_QPS = 200;

const zone: Zone = {
  origin: 'fair.test',
  defaultTtl: 300,
  records: [
    { name: 'victim', type: 'A', value: '198.18.1.1' },
    ...Array.from({ length: 16 }, (_, i) => ({ name: `f${i}`, type: 'A' as const, value: `198.18.2.${i + 1}` })),
  ],
};

const POLICY = `apiVersion: v1
kind: Namespace
metadata: { name: fair }
---
apiVersion: v1
kind: Pod
metadata: { name: flooder, namespace: fair, labels: { app: dns } }
---
apiVersion: v1
kind: Pod
metadata: { name: victim, namespace: fair, labels: { app: dns } }
---
apiVersion: sluice.dev/v1alpha1
kind: FQDNPolicy
metadata: { name: fair, namespace: fair }
spec:
  podSelector: { matchLabels: { app: dns } }
  egress:
  - toFQDNs: [ { matchPattern: "*.fair.test" } ]
    ports: [ { port: 80, protocol: TCP } ]
`;

interface PodDnsRow {
  pod: string;
  rateLimited: number;
  overInflight: number;
  tcpOverLimit: number;
}

interface DnsperfResult {
  sent: number;
  completed: number;
  lost: number;
  qps: number;
  output: string;
}

/** dnsperf in `ns`, bounded by -l and by a kill after twice that. */
function dnsperf(ns: Netns, dataFile: string, seconds: number): Promise<DnsperfResult> {
  return new Promise((resolve, reject) => {
    // -c 16 sockets, -q 30000 outstanding, -t 1 s timeout: as fast as it can
    // send, whatever the proxy does with it (a flood, not a polite client).
    const child = spawn('nsenter', [`--net=${ns.path}`, 'dnsperf', '-s', NSD, '-d', dataFile, '-l', String(seconds), '-c', '16', '-q', '30000', '-t', '1'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const killer = setTimeout(() => child.kill('SIGKILL'), seconds * 2000 + 5000);
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    child.on('error', reject);
    child.on('close', () => {
      clearTimeout(killer);
      const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? NaN);
      resolve({
        sent: num(/Queries sent:\s+(\d+)/),
        completed: num(/Queries completed:\s+(\d+)/),
        lost: num(/Queries lost:\s+(\d+)/),
        qps: num(/Queries per second:\s+([\d.]+)/),
        output: out,
      });
    });
  });
}

const cleanup = new Cleanup();
let node: TestNode;
let world: Netns;
let flooder: Netns;
let victim: Netns;

const pod = (name: string): Netns => node.addPod(cleanup, 'fair', name);

describe.skipIf(!isRoot)('DNS fairness: a flooding pod does not starve another pod\'s lookups', () => {
  beforeAll(async () => {
    node = new TestNode(cleanup, {
      podCidr: POD_CIDR,
      nodeIp: '10.73.255.1/32',
      extraArgs: ['--dns-trusted', NSD, '--dns-pod-qps', String(POD_QPS)],
    });
    world = makeWorld(cleanup, node, { tag: 'f', node: ['198.19.0.1/24'], world: ['198.19.0.2/24'], owns: ['198.18.0.0/16'], addresses: [NSD], podCidrs: [POD_CIDR] });
    await startAuthServer(cleanup, world, { address: NSD, zones: [zone] });

    node.writeManifest('fair.yaml', POLICY);
    await node.start();
    flooder = pod('flooder');
    victim = pod('victim');
    // Both pods resolve through the proxy before the flood.
    for (const ns of [flooder, victim]) expect((await probeQuery(ns, { server: NSD, name: 'victim.fair.test', timeoutS: 2 })).rcode).toBe('NOERROR');
  }, 120_000);

  afterAll(() => cleanup.run());

  it(`answers every one of ${VICTIM_LOOKUPS} victim lookups within ${VICTIM_TIMEOUT_S} s while another pod floods, and counts the flooder's excess`, async () => {
    const dataFile = join(node.dir, 'flood.txt');
    writeFileSync(dataFile, zone.records.filter((r) => r.name.startsWith('f')).map((r) => `${r.name}.fair.test A\n`).join(''));
    const flood = dnsperf(flooder, dataFile, FLOOD_S);
    // Let the flood fill whatever queue it can fill before the victim asks.
    await new Promise((r) => setTimeout(r, 500));
    const lookups: Array<{ rcode: string | null; ms: number; error: string | null }> = [];
    for (let i = 0; i < VICTIM_LOOKUPS; i++) {
      const r = await probeQuery(victim, { server: NSD, name: 'victim.fair.test', timeoutS: VICTIM_TIMEOUT_S });
      lookups.push({ rcode: r.rcode, ms: r.elapsed_ms, error: r.error });
      await new Promise((res) => setTimeout(res, 100));
    }
    const f = await flood;
    const status = (await callAgent(node.runDir, 'status')) as { fqdn: { proxy: Record<string, number>; pods?: PodDnsRow[] } };
    const row = status.fqdn.pods?.find((p) => p.pod === 'fair/flooder');
    const answered = lookups.filter((l) => l.rcode === 'NOERROR').length;
    console.log(
      [
        `flooder: ${f.sent} queries sent in ${FLOOD_S} s (${Math.round(f.sent / FLOOD_S)}/s), ${f.completed} answered, ${f.lost} lost`,
        `victim: ${answered}/${VICTIM_LOOKUPS} answered within ${VICTIM_TIMEOUT_S} s; ms: ${lookups.map((l) => (l.rcode ? l.ms.toFixed(1) : `(${l.error})`)).join(' ')}`,
        `flooder drops: ${JSON.stringify(row ?? null)}; proxy: ${JSON.stringify(status.fqdn.proxy)}`,
      ].join('\n'),
    );
    // The flood really was a flood: far beyond the pod's budget.
    expect(f.sent, f.output).toBeGreaterThan(POD_QPS * FLOOD_S * 5);
    expect(lookups.filter((l) => l.rcode !== 'NOERROR')).toEqual([]);
    expect(lookups.every((l) => l.ms < VICTIM_TIMEOUT_S * 1000)).toBe(true);
    // The excess was dropped and counted for the flooder, not for the victim.
    expect(row, JSON.stringify(status.fqdn)).toBeDefined();
    expect(row!.rateLimited + row!.overInflight).toBeGreaterThan(f.sent / 2);
    const victimRow = status.fqdn.pods?.find((p) => p.pod === 'fair/victim');
    expect(victimRow?.rateLimited ?? 0).toBe(0);
    expect(victimRow?.overInflight ?? 0).toBe(0);
  }, 60_000);
});
