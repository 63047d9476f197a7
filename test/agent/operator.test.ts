// The operator interface against a running agent: a standalone node with real
// pods (the real sluice-cni), a NetworkPolicy that denies some of their
// traffic and an FQDNPolicy that puts one pod's DNS through the proxy. Real
// allowed and denied packets, then /metrics scraped from inside the node's
// network namespace and parsed by the Prometheus project's own Python client
// (prometheus_client.parser), and `sluice status` / `sluice endpoints` (the
// built binary) in table and JSON form, with their exit statuses.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cleanup, SLUICE, TestNode, podIps, type Netns } from '../helpers/agent.js';
import { probeQuery } from '../helpers/dns.js';
import { isRoot } from '../helpers/netns.js';
import { until } from '../helpers/wait.js';

const POD_CIDR = '10.79.0.0/24';
const NODE_IP = '10.79.255.1';
/** The trusted resolver the agent is told of; nothing answers there (the test's queries go elsewhere). */
const TRUSTED_DNS = '10.79.255.53';
/** A DNS server that is not trusted: the proxy refuses queries to it without forwarding them. */
const UNTRUSTED_DNS = '10.79.255.99';
const DENIED = 5;

const MANIFEST = `apiVersion: v1
kind: Namespace
metadata: { name: ops }
---
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: ops, labels: { app: client } }
---
apiVersion: v1
kind: Pod
metadata: { name: server, namespace: ops, labels: { app: server, tier: back } }
---
apiVersion: v1
kind: Pod
metadata: { name: other, namespace: ops, labels: { app: other } }
---
apiVersion: v1
kind: Pod
metadata: { name: resolver, namespace: ops, labels: { app: resolver } }
---
# server: ingress from the client on TCP 8080 only.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: server-ingress, namespace: ops }
spec:
  podSelector: { matchLabels: { app: server } }
  ingress: [ { from: [ { podSelector: { matchLabels: { app: client } } } ], ports: [ { port: 8080 } ] } ]
---
# client: egress to the server only.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: client-egress, namespace: ops }
spec:
  podSelector: { matchLabels: { app: client } }
  policyTypes: [ Egress ]
  egress: [ { to: [ { podSelector: { matchLabels: { app: server } } } ] } ]
---
# resolver: its DNS goes through the proxy.
apiVersion: sluice.dev/v1alpha1
kind: FQDNPolicy
metadata: { name: resolver-names, namespace: ops }
spec:
  podSelector: { matchLabels: { app: resolver } }
  egress: [ { toFQDNs: [ { matchName: api.example.test } ] } ]
`;

/** Accepts on TCP 8080 and says ok. */
const SERVER = `import socket
s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('0.0.0.0',8080));s.listen(16)
while True:
  c,_=s.accept();c.sendall(b'ok\\n');c.close()`;

/**
 * GETs /metrics, /readyz and an unknown path on the agent's default
 * --metrics-addr and parses the exposition with prometheus_client (Debian's
 * python3-prometheus-client, hence /usr/bin/python3).
 */
const SCRAPE = `import json, math, urllib.request, urllib.error
from prometheus_client.parser import text_string_to_metric_families
base='http://127.0.0.1:9963'
r=urllib.request.urlopen(base+'/metrics',timeout=10)
ctype=r.headers['Content-Type']; text=r.read().decode()
def get(path):
  try:
    x=urllib.request.urlopen(base+path,timeout=10); return [x.status, x.read().decode()]
  except urllib.error.HTTPError as e: return [e.code, e.read().decode()]
fams=[{'name':f.name,'type':f.type,'samples':[{'name':s.name,'labels':s.labels,'value':s.value if math.isfinite(s.value) else str(s.value)} for s in f.samples]} for f in text_string_to_metric_families(text)]
print(json.dumps({'contentType':ctype,'families':fams,'readyz':get('/readyz'),'unknown':get('/nope')}))`;

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Scrape {
  contentType: string;
  families: Array<{ name: string; type: string; samples: Sample[] }>;
  readyz: [number, string];
  unknown: [number, string];
}

const cleanup = new Cleanup();
const procs: ChildProcess[] = [];
let node: TestNode;
const pods: Record<string, Netns> = {};
const ips: Record<string, string> = {};

function scrape(): Scrape {
  const r = spawnSync('nsenter', [`--net=${node.ns.path}`, '/usr/bin/python3', '-c', SCRAPE], { encoding: 'utf8', timeout: 20_000 });
  if (r.status !== 0) throw new Error(`scrape failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as Scrape;
}

/** The value of the sample `name` with exactly these labels, or undefined. */
function value(s: Scrape, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels);
  for (const f of s.families) {
    for (const x of f.samples) {
      if (x.name === name && Object.keys(x.labels).length === want.length && want.every(([k, v]) => x.labels[k] === v)) return x.value;
    }
  }
  return undefined;
}

function samples(s: Scrape, name: string): Sample[] {
  return s.families.flatMap((f) => f.samples.filter((x) => x.name === name));
}

function py(ns: Netns, code: string): string {
  const r = spawnSync('nsenter', [`--net=${ns.path}`, 'python3', '-c', code], { encoding: 'utf8', timeout: 10_000 });
  return r.stdout.trim();
}

/** `count` UDP datagrams from `from` to ip:port. */
function sendUdp(from: Netns, ip: string, port: number, count: number): void {
  py(from, `import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
for i in range(${count}): s.sendto(b'x',('${ip}',${port}))`);
}

/** One TCP connection: what the server said, or ERR. */
function tcp(from: Netns, ip: string, port: number): string {
  return py(from, `import socket;s=socket.socket();s.settimeout(1.5)
try:
  s.connect(('${ip}',${port}));print(s.recv(10).decode().strip())
except OSError as e: print('ERR', e.errno or type(e).__name__)`);
}

function sluice(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [SLUICE, ...args], { encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}


describe.skipIf(!isRoot)('operator interface: /metrics, sluice status and sluice endpoints against a running agent', () => {
  beforeAll(async () => {
    node = new TestNode(cleanup, { podCidr: POD_CIDR, nodeIp: `${NODE_IP}/32`, extraArgs: ['--dns-trusted', TRUSTED_DNS] });
    cleanup.add(() => {
      for (const p of procs) p.kill('SIGKILL');
    });
    node.writeManifest('ops.yaml', MANIFEST);
    await node.start();
    for (const name of ['client', 'server', 'other', 'resolver']) {
      pods[name] = node.addPod(cleanup, 'ops', name);
      ips[name] = podIps(pods[name]).v4;
    }
    procs.push(spawn('nsenter', [`--net=${pods.server!.path}`, 'python3', '-c', SERVER], { stdio: 'ignore' }));
    await until('the server', () => tcp(pods.client!, ips.server!, 8080) === 'ok');
  }, 120_000);

  afterAll(() => cleanup.run());

  it('/metrics is the Prometheus text format; /readyz says ok; an unknown path names the endpoints', () => {
    const s = scrape();
    expect(s.contentType).toMatch(/^text\/plain; version=0\.0\.4; charset=utf-8$/);
    expect(s.readyz).toEqual([200, 'ok\n']);
    expect(s.unknown[0]).toBe(404);
    expect(s.unknown[1]).toContain('/metrics');
    expect(s.families.find((f) => f.name === 'sluice_datapath_packets')?.type).toBe('counter');
    expect(s.families.find((f) => f.name === 'sluice_cni_operation_seconds')?.type).toBe('histogram');
    expect(value(s, 'sluice_agent_info', { version: '0.1.0', mode: 'standalone' })).toBe(1);
    expect(value(s, 'process_resident_memory_bytes')).toBeGreaterThan(0);
  });

  it('packet counters move with real drops, by reason and direction, and with allowed traffic', async () => {
    const dropped = (direction: string) => (x: Scrape) => value(x, 'sluice_datapath_packets_total', { verdict: 'dropped', reason: 'policy-denied', direction }) ?? 0;
    const forwarded = (x: Scrape) => value(x, 'sluice_datapath_packets_total', { verdict: 'forwarded', reason: 'forwarded', direction: 'ingress' }) ?? 0;
    const droppedFlows = (x: Scrape) => value(x, 'sluice_flow_events_total', { verdict: 'dropped' }) ?? 0;
    const before = scrape();
    // Egress: the client may only reach the server.
    sendUdp(pods.client!, ips.other!, 9999, DENIED);
    // Ingress: the server admits only the client, on TCP 8080.
    sendUdp(pods.other!, ips.server!, 9999, DENIED);
    expect(tcp(pods.client!, ips.server!, 8080)).toBe('ok');
    const after = scrape();
    expect(dropped('egress')(after) - dropped('egress')(before)).toBeGreaterThanOrEqual(DENIED);
    expect(dropped('ingress')(after) - dropped('ingress')(before)).toBeGreaterThanOrEqual(DENIED);
    // The connection's packets into the server (SYN, ACKs) passed.
    expect(forwarded(after) - forwarded(before)).toBeGreaterThanOrEqual(2);
    expect(value(after, 'sluice_datapath_bytes_total', { verdict: 'dropped', reason: 'policy-denied', direction: 'egress' })).toBeGreaterThan(0);
    // The flow log decoded the drops too (drained every 50 ms).
    await until('dropped flow events', () => droppedFlows(scrape()) - droppedFlows(before) >= 1);
  });

  it('CNI operations, endpoints, policy syncs and map fill levels', () => {
    const s = scrape();
    expect(value(s, 'sluice_cni_operation_seconds_count', { command: 'ADD', result: 'success' })).toBe(4);
    expect(value(s, 'sluice_cni_operation_seconds_bucket', { command: 'ADD', result: 'success', le: '+Inf' })).toBe(4);
    expect(value(s, 'sluice_cni_operation_seconds_sum', { command: 'ADD', result: 'success' })).toBeGreaterThan(0);
    expect(value(s, 'sluice_endpoints')).toBe(4);
    expect(value(s, 'sluice_policy_generation')).toBeGreaterThanOrEqual(1);
    expect(value(s, 'sluice_policy_programming_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(value(s, 'sluice_policy_sync_failures_total')).toBe(0);
    const entries = samples(s, 'sluice_map_entries');
    expect(entries.map((x) => x.labels.map).sort()).toEqual(
      ['cidr', 'ct', 'dns_budget', 'dns_nat', 'endpoints', 'fqdn', 'fqdn_rules', 'frag', 'ipcache', 'lb_aff', 'lb_be', 'lb_flow', 'lb_netns', 'lb_rev', 'lb_svc', 'nh', 'policy'].sort(),
    );
    for (const e of entries) {
      const capacity = value(s, 'sluice_map_capacity', { map: e.labels.map! });
      expect(capacity).toBeGreaterThan(0);
      expect(e.value).toBeLessThanOrEqual(capacity!);
    }
    expect(value(s, 'sluice_map_entries', { map: 'endpoints' })).toBe(4);
    expect(value(s, 'sluice_map_entries', { map: 'ct' })).toBeGreaterThan(0);
    expect(value(s, 'sluice_map_entries', { map: 'policy' })).toBeGreaterThan(0);
    expect(value(s, 'sluice_metrics_collect_errors_total', { collector: 'maps' })).toBeUndefined();
  });

  it('DNS: queries by protocol, the proxy\'s refusals by reason, and their latency', async () => {
    const q = (x: Scrape, protocol: string) => value(x, 'sluice_dns_queries_total', { protocol }) ?? 0;
    const refused = (x: Scrape) => value(x, 'sluice_dns_responses_total', { result: 'refused', reason: 'untrusted-resolver' }) ?? 0;
    const before = scrape();
    expect((await probeQuery(pods.resolver!, { server: UNTRUSTED_DNS, name: 'api.example.test' })).rcode).toBe('REFUSED');
    expect((await probeQuery(pods.resolver!, { server: UNTRUSTED_DNS, name: 'api.example.test', tcp: true })).rcode).toBe('REFUSED');
    const after = scrape();
    expect(q(after, 'udp') - q(before, 'udp')).toBe(1);
    expect(q(after, 'tcp') - q(before, 'tcp')).toBe(1);
    expect(refused(after) - refused(before)).toBe(2);
    const count = (x: Scrape) => value(x, 'sluice_dns_proxy_latency_seconds_count', { result: 'refused' }) ?? 0;
    expect(count(after) - count(before)).toBe(2);
    // A refusal is answered at once: well inside a second.
    const second = samples(after, 'sluice_dns_proxy_latency_seconds_bucket').find((x) => x.labels.result === 'refused' && Number(x.labels.le) === 1);
    expect(second?.value).toBe(count(after));
    expect(value(after, 'sluice_fqdn_names')).toBe(0);
    expect(value(after, 'sluice_dns_dropped_total', { reason: 'malformed' })).toBe(0);
  });

  it('sluice status -o json: version, uptime, sources, programs, map fill; exit 0 with nothing rejected or failing', () => {
    const r = sluice('status', '--run-dir', node.runDir, '-o', 'json');
    expect(r.stderr).toBe('');
    const s = JSON.parse(r.stdout);
    expect(s).toMatchObject({ version: '0.1.0', mode: 'standalone', endpoints: 4, sources: [{ name: 'standalone', synced: true }], problems: [] });
    expect(Date.parse(s.startedAt)).toBeLessThanOrEqual(Date.now());
    expect(s.uptimeSeconds).toBeGreaterThanOrEqual(0);
    expect(s.datapath.programs).toEqual(
      expect.arrayContaining([
        { program: 'sluice_from_pod', hook: 'tc ingress on pod veths', attached: 4, expected: 4 },
        { program: 'sluice_to_pod', hook: 'tc egress on pod veths', attached: 4, expected: 4 },
        { program: 'sluice_lb_connect4', hook: 'cgroup connect4', attached: 1, expected: 1 },
      ]),
    );
    expect(s.datapath.maps).toContainEqual({ map: 'endpoints', entries: 4, capacity: expect.any(Number) });
    expect(s.datapath.policyGeneration).toBeGreaterThanOrEqual(1);
    expect(s.recentErrors).toEqual([]);
    expect(r.status).toBe(0);
  });

  it('sluice status (table) shows the same, and its exit status matches', () => {
    const r = sluice('status', '--run-dir', node.runDir);
    expect(r.stdout).toMatch(/^version: {5}0\.1\.0, up \d+[smh]\S* \(since \d{4}-\d\d-\d\dT/m);
    expect(r.stdout).toContain('sources:     standalone synced\n');
    expect(r.stdout).toMatch(/^policy: {6}generation [1-9]\d*$/m);
    expect(r.stdout).toMatch(/^sluice_from_pod\s+tc ingress on pod veths\s+4 of 4$/m);
    expect(r.stdout).toMatch(/^endpoints\s+4\s+\d+\s+\d+\.\d%$/m);
    expect(r.stdout).not.toContain('RECENT ERRORS');
    expect(r.status).toBe(0);
  });

  it('sluice endpoints -o json: identity, labels, enforcement per direction, policy count, netns', () => {
    const r = sluice('endpoints', '--run-dir', node.runDir, '-o', 'json');
    expect(r.status).toBe(0);
    const rows = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
    const by = (pod: string) => rows.find((e) => e.pod === `ops/${pod}`)!;
    expect(by('server')).toMatchObject({ labels: { app: 'server', tier: 'back' }, ingress: 'enforce', egress: 'none', policies: 1, netns: pods.server!.path, programmed: true });
    expect(by('client')).toMatchObject({ labels: { app: 'client' }, ingress: 'none', egress: 'enforce', policies: 1, netns: pods.client!.path });
    expect(by('other')).toMatchObject({ labels: { app: 'other' }, ingress: 'none', egress: 'none', policies: 0 });
    expect(by('resolver')).toMatchObject({ egress: 'enforce', policies: 1 });
    const identities = ['client', 'server', 'other', 'resolver'].map((p) => by(p).identity);
    for (const id of identities) expect(typeof id).toBe('number');
    expect(new Set(identities).size).toBe(4);
  });

  it('sluice endpoints (table)', () => {
    const r = sluice('endpoints', '--run-dir', node.runDir);
    expect(r.status).toBe(0);
    expect(r.stdout.split('\n')[0]).toMatch(/^POD\s+IDENTITY\s+INGRESS\s+EGRESS\s+POLICIES\s+IPS\s+HOST IF\s+PROGRAMMED\s+LABELS$/);
    expect(r.stdout).toMatch(new RegExp(`^ops/server\\s+\\d+\\s+enforce\\s+none\\s+1\\s+${ips.server!.replace(/\./g, '\\.')}/32\\s+slc\\S+\\s+yes\\s+app=server,tier=back$`, 'm'));
    expect(r.stdout).toMatch(/^ops\/other\s+\d+\s+none\s+none\s+0\s/m);
  });

  it('exit statuses: 2 for a usage error, 1 when the agent cannot be reached', () => {
    expect(sluice('status', '--run-dir', node.runDir, '--bogus').status).toBe(2);
    expect(sluice('endpoints', '--run-dir', node.runDir, 'extra').status).toBe(2);
    expect(sluice('status', '--run-dir', node.runDir, '-o', 'yaml').status).toBe(2);
    expect(sluice('status', '--run-dir', `${node.dir}/nowhere`).status).toBe(1);
    expect(sluice('endpoints', '--run-dir', `${node.dir}/nowhere`).status).toBe(1);
  });

  it('a rejected manifest: status exits 1 in both formats, and the error it logged is among the recent errors', async () => {
    node.writeManifest('bad.yaml', 'apiVersion: v1\nkind: [Namespace\n'); // not YAML
    await until('the rejection', () => sluice('status', '--run-dir', node.runDir).stdout.includes('REJECTED'));
    const json = sluice('status', '--run-dir', node.runDir, '-o', 'json');
    expect(json.status).toBe(1);
    const s = JSON.parse(json.stdout);
    expect(s.recentErrors).toContainEqual(expect.objectContaining({ level: 'error', subsystem: 'standalone', message: expect.stringContaining('manifest rejected'), error: expect.any(String) }));
    const table = sluice('status', '--run-dir', node.runDir);
    expect(table.status).toBe(1);
    expect(table.stdout).toMatch(/^RECENT ERRORS \(oldest first\)\n {2}\d{4}-\S+ standalone: manifest rejected/m);
  });
});
