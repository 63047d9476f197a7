// Audit mode end to end (PRODUCT.md §4): a NetworkPolicy annotated
// sluice.dev/enforcement: audit, or an FQDNPolicy with spec.enforcement:
// Audit, is compiled and judged like any other by the real datapath, but
// what it alone would drop passes and is reported as an audit verdict, with
// its reason and policy, in the flow log (sluice observe) and the datapath's
// counters. Pods come from the real sluice-cni; traffic is real TCP.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Reply } from '../../src/api/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callAgent } from '../../src/cli/client.js';
import { Cleanup, podIps, SLUICE, TestNode, type Netns } from '../helpers/agent.js';
import { isRoot } from '../helpers/netns.js';
import { until } from '../helpers/wait.js';

const POD_CIDR = '10.75.0.0/24';

const PODS = `apiVersion: v1
kind: Namespace
metadata: { name: au }
---
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: au, labels: { app: client } }
---
apiVersion: v1
kind: Pod
metadata: { name: web, namespace: au, labels: { app: web } }
---
apiVersion: v1
kind: Pod
metadata: { name: other, namespace: au, labels: { app: other } }
`;

/** web: ingress only from app=other, in the given enforcement. */
const webIngress = (enforcement: string) => `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: web-ingress, namespace: au, annotations: { sluice.dev/enforcement: ${enforcement} } }
spec:
  podSelector: { matchLabels: { app: web } }
  ingress: [ { from: [ { podSelector: { matchLabels: { app: other } } } ] } ]
`;

/** Answers each TCP connection on 8080 with its pod's name. */
const SERVER = `import socket,sys
s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('0.0.0.0',8080));s.listen(64)
while True:
  c,_=s.accept();c.sendall(sys.argv[1].encode());c.close()`;

/** What the agent's API answers (bigints arrive as strings). */
type FlowRow = Reply<'flows'>[number];
type MetricRow = Reply<'metrics'>[number];

const cleanup = new Cleanup();
const procs: ChildProcess[] = [];
let node: TestNode;
const pods: Record<string, Netns> = {};
const ips: Record<string, string> = {};

/** One TCP connection from a pod: the server's name, or ERR. */
function connect(from: string, to: string): string {
  const r = spawnSync('nsenter', [`--net=${pods[from]!.path}`, 'python3', '-c', `import socket;s=socket.socket();s.settimeout(1)
try:
  s.connect(('${ips[to]}',8080));print(s.recv(100).decode(), s.getsockname()[1])
except OSError as e: print('ERR', e.errno or type(e).__name__)`], { encoding: 'utf8', timeout: 5000 });
  return r.stdout.trim();
}


const flows = async (verdict?: string): Promise<FlowRow[]> => (await callAgent(node.runDir, 'flows', verdict ? { verdict } : {})) as FlowRow[];
/** Packets counted under (reason, direction, audit). */
async function counted(reason: string, direction: string, audit: boolean): Promise<number> {
  const rows = (await callAgent(node.runDir, 'metrics')) as MetricRow[];
  return rows.filter((r) => r.reason === reason && r.direction === direction && r.audit === audit).reduce((n, r) => n + Number(r.packets), 0);
}
const sluice = (args: string[]) => spawnSync(process.execPath, [SLUICE, ...args, '--run-dir', node.runDir], { encoding: 'utf8' });

describe.skipIf(!isRoot)('audit mode: would-be drops pass and are reported', () => {
  beforeAll(async () => {
    node = new TestNode(cleanup, { podCidr: POD_CIDR, nodeIp: '10.75.255.1/32' });
    cleanup.add(() => {
      for (const p of procs) p.kill('SIGKILL');
    });
    node.writeManifest('pods.yaml', PODS);
    await node.start();
    for (const name of ['client', 'web', 'other']) {
      pods[name] = node.addPod(cleanup, 'au', name);
      ips[name] = podIps(pods[name]).v4;
    }
    for (const name of ['web', 'other']) procs.push(spawn('nsenter', [`--net=${pods[name]!.path}`, 'python3', '-c', SERVER, name], { stdio: 'ignore' }));
    await until('the servers', () => connect('client', 'web').startsWith('web ') && connect('client', 'other').startsWith('other '));
  }, 60_000);

  afterAll(() => cleanup.run());

  it('an audit-mode NetworkPolicy never drops: the connection it denies passes, reported as audit with reason and policy', async () => {
    node.writeManifest('policy.yaml', webIngress('audit'));
    // Applied once the agent reports the endpoint as audited; nothing drops meanwhile either.
    await until('web audited', async () => {
      const before = await counted('policy-denied', 'ingress', true);
      connect('client', 'web');
      return (await counted('policy-denied', 'ingress', true)) > before;
    });
    const droppedBefore = await counted('policy-denied', 'ingress', false);
    const auditedBefore = await counted('policy-denied', 'ingress', true);
    const ports: number[] = [];
    for (let i = 0; i < 5; i++) {
      const [name, port] = connect('client', 'web').split(' ');
      expect(name).toBe('web');
      ports.push(Number(port));
    }
    // One audit per new connection (its first packet); later packets ride conntrack.
    expect((await counted('policy-denied', 'ingress', true)) - auditedBefore).toBe(5);
    expect(await counted('policy-denied', 'ingress', false)).toBe(droppedBefore);
    await until('the audit flows', async () => {
      const audits = (await flows('audit')).filter((f) => ports.includes(f.srcPort));
      return audits.length === 5;
    });
    for (const f of (await flows('audit')).filter((f) => ports.includes(f.srcPort))) {
      expect(f).toMatchObject({ verdict: 'audit', reason: 'policy-denied', direction: 'ingress', pod: 'au/web', src: ips.client, dst: ips.web, dstPort: 8080, policies: ['au/web-ingress'] });
    }
    expect((await flows('dropped')).filter((f) => f.pod === 'au/web')).toEqual([]);
    // What the audit policy allows is not an audit.
    expect(connect('other', 'web')).toMatch(/^web /);
    expect((await flows('audit')).filter((f) => f.src === ips.other)).toEqual([]);

    const table = sluice(['observe', '--verdict', 'audit', '--pod', 'au/web']);
    expect(table.status, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/AUDIT\s+policy-denied\s+ingress\s+au\/web .* policy au\/web-ingress/);
    const json = sluice(['observe', '--verdict', 'audit', '-o', 'json']).stdout.trim().split('\n').map((l) => JSON.parse(l) as FlowRow);
    expect(json.length).toBeGreaterThanOrEqual(5);
    expect(json.every((f) => f.verdict === 'audit')).toBe(true);
  });

  it('switched to enforce, the same policy drops what it audited (and names itself on the drop)', async () => {
    node.writeManifest('policy.yaml', webIngress('enforce'));
    await until('web enforced', () => connect('client', 'web').startsWith('ERR'));
    expect(connect('other', 'web')).toMatch(/^web /);
    const drops = (await flows('dropped')).filter((f) => f.pod === 'au/web' && f.src === ips.client);
    expect(drops.length).toBeGreaterThan(0);
    expect(drops.at(-1)).toMatchObject({ reason: 'policy-denied', direction: 'ingress', policies: ['au/web-ingress'] });
  });

  it('an audit policy never narrows an enforcing one: with both on client egress, the enforcing one alone decides', async () => {
    node.writeManifest('policy.yaml', `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: client-to-web, namespace: au }
spec:
  podSelector: { matchLabels: { app: client } }
  policyTypes: [ Egress ]
  egress: [ { to: [ { podSelector: { matchLabels: { app: web } } } ] } ]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: client-deny-all, namespace: au, annotations: { sluice.dev/enforcement: audit } }
spec: { podSelector: { matchLabels: { app: client } }, policyTypes: [ Egress ] }
`);
    await until('client egress enforced', () => connect('client', 'other').startsWith('ERR'));
    const auditsBefore = await counted('policy-denied', 'egress', true);
    expect(connect('client', 'web')).toMatch(/^web /);
    expect(connect('client', 'other')).toMatch(/^ERR/);
    expect(await counted('policy-denied', 'egress', true)).toBe(auditsBefore);
    const drops = (await flows('dropped')).filter((f) => f.pod === 'au/client' && f.dst === ips.other);
    expect(drops.at(-1)).toMatchObject({ reason: 'policy-denied', direction: 'egress', policies: ['au/client-to-web'] });
  });

  it('an audit-mode FQDNPolicy: egress to an address no DNS answer named passes, reported as audit no-fqdn-allow', async () => {
    node.writeManifest('policy.yaml', `apiVersion: sluice.dev/v1alpha1
kind: FQDNPolicy
metadata: { name: only-example, namespace: au }
spec:
  podSelector: { matchLabels: { app: client } }
  enforcement: Audit
  egress: [ { toFQDNs: [ { matchName: api.example.test } ], ports: [ { port: 443 } ] } ]
`);
    await until('client audited by the FQDNPolicy', async () => {
      const before = await counted('no-fqdn-allow', 'egress', true);
      connect('client', 'other');
      return (await counted('no-fqdn-allow', 'egress', true)) > before;
    });
    const [name, port] = connect('client', 'other').split(' ');
    expect(name).toBe('other');
    await until('its audit flow', async () => (await flows('audit')).some((f) => f.srcPort === Number(port)));
    expect((await flows('audit')).find((f) => f.srcPort === Number(port))).toMatchObject({ reason: 'no-fqdn-allow', direction: 'egress', pod: 'au/client', dst: ips.other, policies: ['FQDNPolicy au/only-example'] });
    // Enforced, the same policy drops it.
    node.writeManifest('policy.yaml', readFileSync(join(node.manifests, 'policy.yaml'), 'utf8').replace('enforcement: Audit', 'enforcement: Enforce'));
    await until('client enforced by the FQDNPolicy', () => connect('client', 'other').startsWith('ERR'));
  });
});
