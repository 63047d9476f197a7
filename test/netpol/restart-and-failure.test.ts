// Enforcement outlives the agent: SIGKILL it and allowed stays allowed,
// denied stays denied, through the restart (no flush, no open window). And a
// policy that does not fit in the map fails closed with its own drop reason.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cleanup, cni, podArgs, TestNode, type Netns } from '../helpers/agent.js';
import { until as waitUntil } from '../helpers/wait.js';

const cleanup = new Cleanup();
const servers: ChildProcess[] = [];
afterAll(() => {
  for (const s of servers) s.kill('SIGKILL');
  cleanup.run();
});

const SERVER = `import socket,sys
s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('0.0.0.0',int(sys.argv[1])));s.listen(128)
while True:
  c,_=s.accept();c.close()`;

function serve(ns: Netns, port: number): void {
  servers.push(spawn('nsenter', [`--net=${ns.path}`, 'python3', '-c', SERVER, String(port)], { stdio: 'ignore' }));
}

/** TCP connect from `ns` to ip:port within 300 ms, optionally from a fixed source port. */
function connects(ns: Netns, ip: string, port: number, sport = 0): boolean {
  const bind = sport ? `s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('0.0.0.0',${sport}));` : '';
  const r = spawnSync('nsenter', [`--net=${ns.path}`, 'python3', '-c', `import socket;s=socket.socket();${bind}s.settimeout(0.3);s.connect(('${ip}',${port}));s.close()`]);
  return r.status === 0;
}

const until = (what: string, cond: () => boolean | Promise<boolean>, ms = 3000) => waitUntil(what, cond, ms, 50);

const MANIFESTS = `apiVersion: v1
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

const POLICY = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: only-80, namespace: r }
spec:
  podSelector: { matchLabels: { role: server } }
  ingress: [ { from: [ { podSelector: { matchLabels: { role: client } } } ], ports: [ { port: 80 } ] } ]
`;

async function twoPods(node: TestNode, prefix: string): Promise<{ client: Netns; server: Netns; serverIp: string }> {
  node.writeManifest('pods.yaml', MANIFESTS);
  const client = cleanup.netns('c');
  const server = cleanup.netns('s');
  const ips: string[] = [];
  for (const [name, ns] of [['client', client], ['server', server]] as const) {
    const r = cni({ command: 'ADD', containerId: `${prefix}-${name}`, netns: ns.path, ifname: 'eth0', args: podArgs('r', name), config: node.conf() });
    expect(r.status, r.stdout).toBe(0);
    ips.push((r.json!.ips as Array<{ address: string }>)[0]!.address.split('/')[0]!);
  }
  serve(server, 80);
  serve(server, 81);
  return { client, server, serverIp: ips[1]! };
}

describe('restart safety', () => {
  let node: TestNode;
  beforeAll(async () => {
    node = new TestNode(cleanup, { podCidr: '10.68.0.0/24', nodeIp: '10.68.255.1/32' });
    await node.start();
  });

  it('keeps allowed allowed and denied denied while the agent is dead and across its restart', async () => {
    const { client, serverIp } = await twoPods(node, 'rs');
    await until('server up', () => connects(client, serverIp, 80) && connects(client, serverIp, 81));
    node.writeManifest('policy.yaml', POLICY);
    await until('policy enforced', () => !connects(client, serverIp, 81));
    // The pods' labels may land a moment after their ADD: wait for the client's identity.
    await until('port 80 allowed', () => connects(client, serverIp, 80));

    await node.stop('SIGKILL');
    for (let i = 0; i < 3; i++) {
      expect(connects(client, serverIp, 80)).toBe(true);
      expect(connects(client, serverIp, 81)).toBe(false);
    }
    // Probe continuously while the agent starts and adopts the maps.
    let probes = 0;
    let wrong = 0;
    let starting = true;
    const started = node.start().finally(() => (starting = false));
    while (starting) {
      await new Promise((r) => setImmediate(r));
      probes++;
      if (!connects(client, serverIp, 80) || connects(client, serverIp, 81)) wrong++;
    }
    await started;
    expect(probes).toBeGreaterThan(0);
    expect(wrong).toBe(0);
    expect(connects(client, serverIp, 80)).toBe(true);
    expect(connects(client, serverIp, 81)).toBe(false);
    expect(node.log()).toMatch(/"agent ready"/);

    // And it still follows edits after the restart.
    node.writeManifest('policy.yaml', POLICY.replace('port: 80', 'port: 81'));
    await until('edit enforced', () => connects(client, serverIp, 81) && !connects(client, serverIp, 80));
  });
});

describe('conntrack never waives policy for a new connection', () => {
  it('a SYN on the 5-tuple of a just-closed allowed connection is judged by the new policy', async () => {
    const node = new TestNode(cleanup, { podCidr: '10.71.0.0/24', nodeIp: '10.71.255.1/32' });
    await node.start();
    const { client, serverIp } = await twoPods(node, 'ct');
    node.writeManifest('policy.yaml', POLICY);
    await until('port 80 allowed', () => connects(client, serverIp, 80));
    // An allowed connection from a fixed source port, closed at once: its
    // conntrack entry lingers in the closing state.
    expect(connects(client, serverIp, 80, 40001)).toBe(true);
    node.writeManifest('policy.yaml', POLICY.replace('port: 80', 'port: 81'));
    await until('edit enforced', () => !connects(client, serverIp, 80));
    // Same 5-tuple, seconds later: must be denied.
    expect(connects(client, serverIp, 80, 40001)).toBe(false);
    expect(connects(client, serverIp, 81, 40002)).toBe(true);
  });
});

describe('a policy that does not fit', () => {
  it('fails closed: the endpoint drops everything with reason policy-failed, and it is logged', async () => {
    const node = new TestNode(cleanup, { podCidr: '10.69.0.0/24', nodeIp: '10.69.255.1/32', extraArgs: ['--max-policy-entries', '4'] });
    await node.start();
    const { client, serverIp } = await twoPods(node, 'mf');
    await until('server up', () => connects(client, serverIp, 80));
    const ports = Array.from({ length: 10 }, (_, i) => `{ port: ${1000 + i * 7} }`).join(', ');
    node.writeManifest('policy.yaml', POLICY.replace('[ { port: 80 } ]', `[ { port: 80 }, ${ports} ]`));
    await until('fail closed', () => !connects(client, serverIp, 80));
    expect(node.log()).toMatch(/policy could not be programmed/);
    const out = spawnSync(process.execPath, ['build/bin/sluice', 'observe', '--run-dir', node.runDir, '--verdict', 'dropped', '-o', 'json'], { encoding: 'utf8' }).stdout;
    expect(out).toMatch(/"reason":"policy-failed"/);
    // Once it fits again, traffic flows again.
    node.writeManifest('policy.yaml', POLICY);
    await until('recovered', () => connects(client, serverIp, 80));
  });
});
