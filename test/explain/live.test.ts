// `sluice test --live` and `sluice explain` against a running agent: one
// standalone node, pods made by the real sluice-cni with servers in them,
// NetworkPolicies as manifests. A right assertions file passes with every
// probe agreeing; a wrong expectation fails with the explain chain; a
// datapath that does not do what the compiled policy says (a blackhole route
// standing in for it) fails as a probe disagreement.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cleanup, podIps, SLUICE, TestNode, type Netns } from '../helpers/agent.js';
import { isRoot } from '../helpers/netns.js';

const POD_CIDR = '10.78.0.0/24,fd00:78::/64';
const NODE_IP = '10.78.255.1';

const MANIFESTS = `apiVersion: v1
kind: Namespace
metadata: { name: app }
---
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: app, labels: { app: client } }
---
apiVersion: v1
kind: Pod
metadata: { name: other, namespace: app, labels: { app: other } }
spec: { containers: [ { name: c, ports: [ { name: http, containerPort: 8080 } ] } ] }
---
apiVersion: v1
kind: Pod
metadata: { name: web, namespace: app, labels: { app: web } }
spec: { containers: [ { name: c, ports: [ { name: http, containerPort: 8080 }, { name: echo, containerPort: 5353, protocol: UDP } ] } ] }
---
# web admits only the client, on its two ports.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: web-ingress, namespace: app }
spec:
  podSelector: { matchLabels: { app: web } }
  ingress:
  - from: [ { podSelector: { matchLabels: { app: client } } } ]
    ports: [ { port: http }, { port: echo, protocol: UDP } ]
---
# the client may talk to web only.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: client-egress, namespace: app }
spec:
  podSelector: { matchLabels: { app: client } }
  policyTypes: [ Egress ]
  egress: [ { to: [ { podSelector: { matchLabels: { app: web } } } ] } ]
`;

/** TCP 8080 accepts and closes; UDP 5353 echoes. Both families. Prints "ready" once bound. */
const SERVER = `import socket,threading
t=socket.socket(socket.AF_INET6);t.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);t.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,0);t.bind(('::',8080));t.listen(64)
u=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM);u.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,0);u.bind(('::',5353))
def tcp():
  while True:
    c,_=t.accept();c.close()
threading.Thread(target=tcp,daemon=True).start()
print('ready',flush=True)
while True:
  d,a=u.recvfrom(100);u.sendto(d,a)`;

const ASSERTIONS_OK = `apiVersion: sluice.dev/v1alpha1
kind: Assertions
assertions:
- { from: app/client, to: app/web, port: 8080/TCP, expect: allow }
- { from: app/client, to: app/web, port: http, expect: allow }
- { from: app/client, to: app/web, port: 5353/UDP, expect: allow }
- { from: app/other, to: app/web, port: 8080/TCP, expect: deny }
- { from: app/other, to: app/web, port: echo, expect: deny }
- { from: app/client, to: app/other, port: 8080, expect: deny }
---
apiVersion: sluice.dev/v1alpha1
kind: Assertions
assertions:
- { from: app/web, to: app/other, port: 8080/TCP, expect: allow }
- { from: ${NODE_IP}, to: app/web, port: 8080/TCP, expect: allow }
- { from: app/other, to: app/web, port: 8080/SCTP, expect: deny }
`;

/** The second expectation is wrong: the client may talk to web only. */
const WRONG = `apiVersion: sluice.dev/v1alpha1
kind: Assertions
assertions:
- { from: app/client, to: app/web, port: 8080/TCP, expect: allow }
- { from: app/client, to: app/other, port: 8080/TCP, expect: allow }
`;

const cleanup = new Cleanup();
const procs: ChildProcess[] = [];
const pods: Record<string, Netns> = {};
const ips: Record<string, { v4: string; v6: string }> = {};
let node: TestNode;
let dir: string;

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function sluice(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [SLUICE, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function serve(name: string): Promise<void> {
  const child = spawn('nsenter', [`--net=${pods[name]!.path}`, 'python3', '-c', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  procs.push(child);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server in ${name} not ready`)), 10_000);
    child.stdout.once('data', () => {
      clearTimeout(timer);
      resolve();
    });
    child.once('exit', (code) => reject(new Error(`server in ${name} exited ${code}`)));
  });
}

describe.skipIf(!isRoot)('sluice test --live and sluice explain against a running agent', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'slt-live-'));
    cleanup.add(() => rmSync(dir, { recursive: true, force: true }));
    cleanup.add(() => {
      for (const p of procs) p.kill('SIGKILL');
    });
    node = new TestNode(cleanup, { podCidr: POD_CIDR, nodeIp: `${NODE_IP}/32` });
    node.writeManifest('app.yaml', MANIFESTS);
    await node.start();
    for (const name of ['client', 'other', 'web']) {
      pods[name] = node.addPod(cleanup, 'app', name);
      ips[name] = podIps(pods[name]);
    }
    await serve('web');
    await serve('other');
  }, 120_000);

  afterAll(() => cleanup.run());

  it('a right assertions file passes: one ok line each, every probe agreeing, then the count', () => {
    const r = sluice('test', file('ok.yaml', ASSERTIONS_OK), '--live', '--run-dir', node.runDir);
    expect(r.stderr).toBe('');
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines.filter((l) => /^(ok|FAIL)/.test(l))).toHaveLength(9);
    expect(lines.filter((l) => l.startsWith('FAIL'))).toEqual([]);
    expect(lines.at(-1)).toBe('9 passed, 0 failed');
    expect(r.status).toBe(0);
    const line = (n: number) => lines[n - 1]!;
    expect(line(1)).toBe(`ok    app/client -> app/web 8080/TCP: allow (app/client-egress, app/web-ingress) [probe: ${ips.web!.v4}: connected; ${ips.web!.v6}: connected]`);
    expect(line(2)).toMatch(/^ok {4}app\/client -> app\/web http \(8080\/TCP\): allow .*\[probe: .*connected; .*connected\]$/);
    expect(line(3)).toMatch(/^ok {4}app\/client -> app\/web 5353\/UDP: allow .*\[probe: .*: reply; .*: reply\]$/);
    // Denied TCP: the SYN is dropped; denied UDP: silence, and the agent's flow log has the drop.
    expect(line(4)).toMatch(/^ok {4}app\/other -> app\/web 8080\/TCP: deny \(app\/web-ingress\) \[probe: .*: timeout; .*: timeout\]$/);
    expect(line(5)).toMatch(/^ok {4}app\/other -> app\/web echo \(5353\/UDP\): deny \(app\/web-ingress\) \[probe: .*: timeout, dropped \(policy-denied\); .*: timeout, dropped \(policy-denied\)\]$/);
    expect(line(6)).toMatch(/^ok {4}app\/client -> app\/other 8080\/TCP: deny \(app\/client-egress\) \[probe: .*timeout.*\]$/);
    expect(line(7)).toMatch(/^ok {4}app\/web -> app\/other 8080\/TCP: allow \[probe: .*connected.*\]$/);
    expect(line(8)).toBe(`ok    ${NODE_IP} -> app/web 8080/TCP: allow [probe: not probed (the source is not a pod on this node)]`);
    expect(line(9)).toBe('ok    app/other -> app/web 8080/SCTP: deny (app/web-ingress) [probe: not probed (SCTP is not probed)]');
  }, 60_000);

  it('a wrong expectation fails with its explain chain, and exits 1', () => {
    const wrong = file('wrong.yaml', WRONG);
    const r = sluice('test', wrong, '--live', '--run-dir', node.runDir);
    expect(r.status).toBe(1);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines.filter((l) => /^(ok|FAIL)/.test(l)).map((l) => l.split(' ')[0])).toEqual(['ok', 'FAIL']);
    const fail = lines.findIndex((l) => l.startsWith('FAIL'));
    expect(lines[fail]).toMatch(/^FAIL {2}app\/client -> app\/other 8080\/TCP: expected allow, got deny \[probe: .*timeout.*\]$/);
    const chain = lines.slice(fail + 1, -1);
    expect(chain.every((l) => l.startsWith('      '))).toBe(true);
    expect(chain[0]).toBe('      reason: app/client is isolated for egress by app/client-egress; no egress rule allows app/other on 8080/TCP');
    expect(chain).toContain('      rules:  app/client-egress');
    expect(chain.some((l) => /egress +app\/client +deny: /.test(l))).toBe(true);
    expect(chain.at(-1)).toBe(`      (${wrong}#1 assertion 2)`);
    expect(lines.at(-1)).toBe('1 passed, 1 failed');
  }, 60_000);

  it('-o json: one object per assertion, in order, with the same exit status', () => {
    const r = sluice('test', file('wrong-json.yaml', WRONG), '--live', '--run-dir', node.runDir, '-o', 'json');
    expect(r.status).toBe(1);
    const objs = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(objs).toHaveLength(2);
    expect(objs[0]).toMatchObject({ from: 'app/client', to: 'app/web', port: '8080/TCP', expect: 'allow', verdict: 'allow', rules: ['app/client-egress', 'app/web-ingress'], ok: true, probe: { agrees: true } });
    expect(objs[1]).toMatchObject({ from: 'app/client', to: 'app/other', port: '8080/TCP', expect: 'allow', verdict: 'deny', rules: ['app/client-egress'], ok: false, probe: { agrees: true } });
    expect((objs[1]!.probe as { probes: Array<{ verdict: string }> }).probes.map((p) => p.verdict)).toEqual(['deny', 'deny']);
  }, 60_000);

  it('a probe that contradicts the compiled verdict is a failure of its own', () => {
    // The client's packets to web vanish on web's side: policy allows, the network does not.
    pods.web!.exec('ip', ['route', 'add', 'blackhole', `${ips.client!.v4}/32`]);
    try {
      const r = sluice('test', file('probe.yaml', 'apiVersion: sluice.dev/v1alpha1\nkind: Assertions\nassertions:\n- { from: app/client, to: ' + ips.web!.v4 + ', port: 8080/TCP, expect: allow }\n'), '--live', '--run-dir', node.runDir);
      expect(r.status).toBe(1);
      const lines = r.stdout.trimEnd().split('\n');
      expect(lines[0]).toBe(`FAIL  app/client -> ${ips.web!.v4} 8080/TCP: probe disagrees with the compiled allow: timeout (so: deny)`);
      expect(lines.at(-1)).toBe('0 passed, 1 failed');
    } finally {
      pods.web!.exec('ip', ['route', 'del', 'blackhole', `${ips.client!.v4}/32`], { allowFail: true });
    }
  }, 60_000);

  it('sluice explain, live: the table and the JSON object (verdict, rules, reason)', () => {
    const table = sluice('explain', '--from', 'app/other', '--to', 'app/web', '--port', 'http', '--run-dir', node.runDir);
    expect(table.status).toBe(0);
    const text = table.stdout;
    expect(text.split('\n').slice(0, 3)).toEqual(['verdict: deny', 'flow:    app/other -> app/web on 8080/TCP', 'rules:   app/web-ingress']);
    expect(text).toContain('reason:  app/web is isolated for ingress by app/web-ingress; no ingress rule allows app/other on 8080/TCP\n');
    expect(text).toMatch(/\n {4}ingress app\/web {2}deny: /);
    const json = sluice('explain', '--from', 'app/client', '--to', ips.web!.v6, '--port', '8080', '--run-dir', node.runDir, '-o', 'json');
    expect(json.status).toBe(0);
    const e = JSON.parse(json.stdout) as Record<string, unknown>;
    expect(Object.keys(e).slice(0, 3)).toEqual(['verdict', 'rules', 'reason']);
    expect(e).toMatchObject({ verdict: 'allow', rules: ['app/client-egress', 'app/web-ingress'], judged: '8080/TCP', paths: [{ source: ips.client!.v6, destination: ips.web!.v6 }] });
    expect(e).not.toHaveProperty('netns');
    // The node's own address reaches its pods whatever their policy.
    const fromNode = JSON.parse(sluice('explain', '--from', NODE_IP, '--to', 'app/web', '--port', '9999', '--run-dir', node.runDir, '-o', 'json').stdout) as { verdict: string; reason: string };
    expect(fromNode.verdict).toBe('allow');
    expect(fromNode.reason).toContain("the node's own address");
  }, 60_000);

  it('a pod the agent does not know: exit 2 for an assertion (with its place), exit 1 for explain', () => {
    const r = sluice('test', file('nopod.yaml', 'apiVersion: sluice.dev/v1alpha1\nkind: Assertions\nassertions:\n- { from: app/ghost, to: app/web, port: 80, expect: deny }\n'), '--live', '--run-dir', node.runDir);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(`sluice: ${join(dir, 'nopod.yaml')}#1 assertion 1: no pod app/ghost\n`);
    const e = sluice('explain', '--from', 'app/ghost', '--to', 'app/web', '--port', '80', '--run-dir', node.runDir);
    expect(e.status).toBe(1);
    expect(e.stderr).toBe('sluice: no pod app/ghost\n');
  }, 60_000);
});
