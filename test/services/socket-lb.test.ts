// Service translation at the socket, end to end on a standalone node: pods
// made by the real sluice-cni, Services and EndpointSlices as manifests, the
// agent's cgroup programs rewriting a pod's connect()/sendmsg() to a backend,
// and the veth programs then judging the backend (egress) and the real client
// (ingress). No kube-proxy here: a Service address the agent did not
// translate has no route at all on this node.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callAgent } from '../../src/cli/client.js';
import { Cleanup, podIps, SLUICE, TestNode, type Netns } from '../helpers/agent.js';
import { isRoot } from '../helpers/netns.js';
import { until } from '../helpers/wait.js';

const POD_CIDR = '10.74.0.0/24,fd00:74::/64';
const WEB_VIP = '10.96.74.10';
const WEB_VIP6 = 'fd00:96:74::10';
const DB_VIP = '10.96.74.20';
const EMPTY_VIP = '10.96.74.30';

/** TCP 8080: answers its pod's name to each connection, keeps it open for more lines; UDP 5353: answers its name. */
const SERVER = `import socket,sys,threading
name=sys.argv[1].encode()
def tcp():
  s=socket.socket(socket.AF_INET6);s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,0);s.bind(('::',8080));s.listen(64)
  while True:
    c,_=s.accept();threading.Thread(target=serve,args=(c,),daemon=True).start()
def serve(c):
  try:
    c.sendall(name+b'\\n')
    while True:
      d=c.recv(100)
      if not d: break
      c.sendall(name+b'\\n')
  except OSError: pass
  c.close()
threading.Thread(target=tcp,daemon=True).start()
u=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM);u.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,0);u.bind(('::',5353))
while True:
  d,a=u.recvfrom(100);u.sendto(name,a)`;

const POLICY = `apiVersion: v1
kind: Namespace
metadata: { name: lb }
---
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: lb, labels: { app: client } }
---
apiVersion: v1
kind: Pod
metadata: { name: bystander, namespace: lb, labels: { app: bystander } }
---
apiVersion: v1
kind: Pod
metadata: { name: web1, namespace: lb, labels: { app: web } }
spec: { containers: [ { name: c, ports: [ { name: http, containerPort: 8080 } ] } ] }
---
apiVersion: v1
kind: Pod
metadata: { name: web2, namespace: lb, labels: { app: web } }
spec: { containers: [ { name: c, ports: [ { name: http, containerPort: 8080 } ] } ] }
---
apiVersion: v1
kind: Pod
metadata: { name: db, namespace: lb, labels: { app: db } }
---
# client: egress only to app=web on its named port (and UDP 5353); DNS not needed.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: client-egress, namespace: lb }
spec:
  podSelector: { matchLabels: { app: client } }
  policyTypes: [ Egress ]
  egress:
  - to: [ { podSelector: { matchLabels: { app: web } } } ]
    ports: [ { port: http }, { port: 5353, protocol: UDP } ]
---
# web: ingress only from app=client.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: web-ingress, namespace: lb }
spec:
  podSelector: { matchLabels: { app: web } }
  ingress: [ { from: [ { podSelector: { matchLabels: { app: client } } } ] } ]
`;

function services(ips: Record<string, string>, web: string[], ips6: Record<string, string> = {}): string {
  const slice = (name: string, svc: string, addrs: string[], ports: string, addressType = 'IPv4') => `---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${name}, namespace: lb, labels: { kubernetes.io/service-name: ${svc} } }
addressType: ${addressType}
endpoints: [ ${addrs.map((a) => `{ addresses: [ "${a}" ], conditions: { ready: true } }`).join(', ')} ]
ports: ${ports}
`;
  return `apiVersion: v1
kind: Service
metadata: { name: web, namespace: lb }
spec:
  clusterIP: ${WEB_VIP}
  clusterIPs: [ ${WEB_VIP}, "${WEB_VIP6}" ]
  ports: [ { name: http, port: 80, targetPort: http }, { name: udp, port: 53, protocol: UDP, targetPort: 5353 } ]
---
apiVersion: v1
kind: Service
metadata: { name: db, namespace: lb }
spec: { clusterIP: ${DB_VIP}, ports: [ { name: http, port: 80, targetPort: 8080 } ] }
---
apiVersion: v1
kind: Service
metadata: { name: empty, namespace: lb }
spec: { clusterIP: ${EMPTY_VIP}, ports: [ { name: http, port: 80 } ] }
${slice('web-1', 'web', web.map((w) => ips[w]!), '[ { name: http, port: 8080, protocol: TCP }, { name: udp, port: 5353, protocol: UDP } ]')}${
    Object.keys(ips6).length ? slice('web-6', 'web', web.map((w) => ips6[w]!), '[ { name: http, port: 8080, protocol: TCP } ]', 'IPv6') : ''
  }${slice('db-1', 'db', [ips.db!], '[ { name: http, port: 8080, protocol: TCP } ]')}`;
}

const cleanup = new Cleanup();
const procs: ChildProcess[] = [];
let node: TestNode;
const pods: Record<string, Netns> = {};
const ips: Record<string, string> = {};
const ips6: Record<string, string> = {};

const pod = (name: string): Netns => node.addPod(cleanup, 'lb', name);

function py(ns: Netns, code: string, timeoutMs = 5000): { status: number | null; out: string; err: string } {
  const r = spawnSync('nsenter', [`--net=${ns.path}`, 'python3', '-c', code], { encoding: 'utf8', timeout: timeoutMs });
  return { status: r.status, out: r.stdout.trim(), err: r.stderr.trim() };
}

/** One TCP connection to ip:port: the backend's name, or the error. */
function tcpName(from: Netns, ip: string, port = 80): string {
  const r = py(from, `import socket;s=socket.socket(socket.${ip.includes(':') ? 'AF_INET6' : 'AF_INET'});s.settimeout(1.5)
try:
  s.connect(('${ip}',${port}));print(s.recv(100).decode().strip(), s.getpeername()[0])
except OSError as e: print('ERR', e.errno or type(e).__name__)`);
  return r.out;
}


describe.skipIf(!isRoot)('Services translated at the socket: policy judges the backend', () => {
  beforeAll(async () => {
    node = new TestNode(cleanup, { podCidr: POD_CIDR, nodeIp: '10.74.255.1/32' });
    cleanup.add(() => {
      for (const p of procs) p.kill('SIGKILL');
    });
    node.writeManifest('lb.yaml', POLICY);
    await node.start();
    for (const name of ['client', 'bystander', 'web1', 'web2', 'db']) {
      pods[name] = pod(name);
      ({ v4: ips[name], v6: ips6[name] } = podIps(pods[name]));
    }
    for (const name of ['web1', 'web2', 'db']) procs.push(spawn('nsenter', [`--net=${pods[name]!.path}`, 'python3', '-c', SERVER, name], { stdio: 'ignore' }));
    node.writeManifest('svc.yaml', services(ips, ['web1', 'web2'], ips6));
    // Servers up (directly, from the node) and the frontends programmed.
    await until('the servers', () => ['web1', 'web2', 'db'].every((n) => tcpName(node.ns, ips[n]!, 8080).startsWith(n)));
    await until('the web frontend', () => tcpName(pods.client!, WEB_VIP).startsWith('web'));
  }, 120_000);

  afterAll(() => cleanup.run());

  it('a pod reaches a Service\'s backends through its ClusterIP on the named target port, both backends in turn, and sees the ClusterIP as its peer', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 20 && seen.size < 2; i++) {
      const [name, peer] = tcpName(pods.client!, WEB_VIP).split(' ');
      expect(peer).toBe(WEB_VIP);
      seen.add(name!);
    }
    expect([...seen].sort()).toEqual(['web1', 'web2']);
  });

  it('sluice observe names the Service a flow to a backend went through', async () => {
    expect(tcpName(pods.client!, WEB_VIP)).toMatch(/^web[12] /);
    const flows = (await callAgent(node.runDir, 'flows', { pod: 'lb/client', verdict: 'allowed' })) as Array<{ dst: string; dstPort: number; service?: string; peer: string }>;
    const viaService = flows.filter((f) => f.dstPort === 8080 && f.service);
    expect(viaService.length).toBeGreaterThan(0);
    for (const f of viaService) {
      expect(f.service).toBe(`lb/web ${WEB_VIP}:80`);
      expect([ips.web1, ips.web2]).toContain(f.dst);
      expect(f.peer).toMatch(/^lb\/web[12]$/);
    }
    const table = spawnSync(process.execPath, [SLUICE, 'observe', '--pod', 'lb/client', '--run-dir', node.runDir], { encoding: 'utf8' });
    expect(table.stdout).toMatch(new RegExp(`via Service lb/web ${WEB_VIP.replace(/\./g, '\\.')}:80`));
  });

  it('IPv6: the same Service\'s IPv6 ClusterIP reaches its IPv6 backends (connect6), the peer shown as that address', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 20 && seen.size < 2; i++) {
      const [name, peer] = tcpName(pods.client!, WEB_VIP6).split(' ');
      expect(peer).toBe(WEB_VIP6);
      seen.add(name!);
    }
    expect([...seen].sort()).toEqual(['web1', 'web2']);
    // Ingress at the backend over IPv6: the bystander is not admitted.
    expect(tcpName(pods.bystander!, WEB_VIP6)).toMatch(/^ERR/);
  });

  it('egress policy judges the backend: the client may reach web through its Service, never db through its Service', () => {
    expect(tcpName(pods.client!, DB_VIP)).toMatch(/^ERR/);
    // db itself answers through its Service to a pod its policy does not restrict.
    expect(tcpName(pods.bystander!, DB_VIP).split(' ')[0]).toBe('db');
  });

  it('ingress policy at the backend sees the real client: web admits the client, not the bystander, through the same ClusterIP', () => {
    expect(tcpName(pods.client!, WEB_VIP)).toMatch(/^web[12] /);
    expect(tcpName(pods.bystander!, WEB_VIP)).toMatch(/^ERR/);
  });

  it('UDP to the ClusterIP: answered by a backend, and the answer comes from the ClusterIP', () => {
    const r = py(pods.client!, `import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(1.5)
s.sendto(b'x',('${WEB_VIP}',53));d,a=s.recvfrom(100);print(d.decode(),a[0],a[1])`);
    const [name, from, port] = r.out.split(' ');
    expect(['web1', 'web2']).toContain(name);
    expect([from, port]).toEqual([WEB_VIP, '53']);
  });

  it('a Service with no backend is refused at once, not after a timeout', () => {
    const t0 = Date.now();
    expect(tcpName(pods.client!, EMPTY_VIP)).toMatch(/^ERR/);
    expect(tcpName(pods.bystander!, EMPTY_VIP)).toMatch(/^ERR 1$/); // EPERM from connect()
    expect(Date.now() - t0).toBeLessThan(1500 * 2);
  });

  it('the node\'s own connections are left alone (no translation: this node has no route to a ClusterIP)', () => {
    expect(tcpName(node.ns, WEB_VIP)).toMatch(/^ERR/);
  });

  it('endpoint churn: a removed backend gets no new connections while an open connection to it keeps working', async () => {
    // An open connection to web1.
    const held = spawn('nsenter', [`--net=${pods.client!.path}`, 'python3', '-u', '-c', `import socket,sys,time
for i in range(40):
  s=socket.socket();s.settimeout(1.5);s.connect(('${WEB_VIP}',80));n=s.recv(100).decode().strip()
  if n=='web1': break
  s.close()
print('open',n,flush=True)
for line in sys.stdin:
  s.sendall(b'x');print('again',s.recv(100).decode().strip(),flush=True)`], { stdio: ['pipe', 'pipe', 'inherit'] });
    procs.push(held);
    let out = '';
    held.stdout!.on('data', (c) => (out += c));
    await until('a connection to web1', () => out.includes('open web1'));
    node.writeManifest('svc.yaml', services(ips, ['web2'], ips6));
    await until('web1 out of the Service', () => Array.from({ length: 6 }, () => tcpName(pods.client!, WEB_VIP)).every((r) => r.startsWith('web2')), 10_000);
    held.stdin!.write('more\n');
    await until('the open connection answering', () => out.includes('again web1'));
    held.stdin!.end();
  });
});
