// Sluice installed the way an admin installs it — the locally built image
// loaded on each node, `kubectl apply -f deploy/` — on the real two-node
// cluster of test/k8s/cluster.ts (cni: 'none': the DaemonSet's init step
// installs sluice-cni and the conflist, and the nodes turn Ready). Then,
// through the API only: pods on both nodes reach each other and kubelet's
// probes reach them; the NetworkPolicy truth table with peers on both nodes
// (expected matrices from test/netpol/model.ts); an FQDNPolicy used by a pod
// resolving through CoreDNS (search path, autopath); an invalid FQDNPolicy refused at
// admission; the apiserver down for 20 s; the agent pod deleted; and
// `kubectl delete -f deploy/`. Needs root, the binaries of test/k8s/build.sh
// and build/image/sluice.tar (`make image`): without them this FAILS.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectedMatrix, parsePolicy, type ModelPod, type Policy, type World } from '../netpol/model.js';
import { isRoot } from '../helpers/netns.js';
import { Cluster, DNS_SERVICE_IP, run } from './cluster.js';
import { AGNHOST_IMAGE } from './images.js';
import { clusterFixture } from './fixture.js';

const ROOT = join(import.meta.dirname, '../..');
const DNSPROBE = join(ROOT, 'test/helpers/dnsprobe.py');
const IMAGE = join(ROOT, 'build/image/sluice.tar');
const DEPLOY = join(ROOT, 'deploy');
/** How long a policy change may take to show in probes. */
const ENFORCE_MS = 15_000;

interface PodSpec {
  ns: string;
  name: string;
  node: 1 | 2;
  labels: Record<string, string>;
}

/** The truth table's pods: two namespaces, each with a pod on each node. */
const PODS: PodSpec[] = [
  { ns: 'x', name: 'a', node: 1, labels: { pod: 'a' } },
  { ns: 'x', name: 'b', node: 2, labels: { pod: 'b' } },
  { ns: 'y', name: 'c', node: 1, labels: { pod: 'c' } },
  { ns: 'y', name: 'd', node: 2, labels: { pod: 'd' } },
];

function agnhost(ns: string, name: string, node: string, labels: Record<string, string>, args: string[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, labels },
    spec: {
      nodeSelector: { 'kubernetes.io/hostname': node },
      terminationGracePeriodSeconds: 1,
      containers: [{ name: 'agnhost', image: AGNHOST_IMAGE, imagePullPolicy: 'Never', args, ...extra }],
    },
  };
}

/** A server on TCP 80 (named "http") whose readiness kubelet probes from the node. */
function server(p: PodSpec, nodeName: string): Record<string, unknown> {
  return agnhost(p.ns, p.name, nodeName, p.labels, ['netexec', '--http-port=80'], {
    ports: [{ name: 'http', containerPort: 80 }],
    readinessProbe: { httpGet: { path: '/', port: 80 }, periodSeconds: 1 },
  });
}

describe.skipIf(!isRoot)('Sluice on a real two-node cluster (kubectl apply -f deploy/)', () => {
  const ips = new Map<string, string>();
  const fx = clusterFixture(async () => {
    if (!existsSync(IMAGE)) throw new Error(`${IMAGE} is missing: run make image`);
    const cluster = await Cluster.start({ cni: 'none', nodes: 2, podRoutes: false });
    try {
      for (const node of cluster.nodes) {
        const r = await cluster.ctr(node, ['images', 'import', IMAGE], { timeoutMs: 120_000 });
        if (r.code !== 0) throw new Error(`${node.name}: ctr images import: ${r.stderr || r.stdout}`);
      }
      await cluster.kubectl(['apply', '-f', DEPLOY]);
      await cluster.waitPodsReady('kube-system', 'app.kubernetes.io/name=sluice', { min: 2, timeoutMs: 120_000 });
      await cluster.waitNodesReady(60_000);
    } catch (err) {
      cluster.stop({ keepLogs: true });
      throw err;
    }
    return cluster;
  });
  const c = (): Cluster => fx.get();
  // On a failure, the agents' own logs (kubelet removes them with their pods before the cluster's are kept).
  const noteFailure = () =>
    fx.noteFailure(async (cl) => {
      const r = await cl.kubectlResult(['logs', '-n', 'kube-system', '-l', 'app.kubernetes.io/name=sluice', '-c', 'agent', '--tail=60', '--prefix'], { timeoutMs: 15_000 });
      console.error(`agent logs at the failure:\n${r.stdout || r.stderr}`);
    });
  const nodeName = (n: 1 | 2) => c().nodes[n - 1]!.name;

  /** `from` opens TCP to `to` (an address or name) within `timeoutS`. */
  const connects = async (from: string, to: string, port = 80, timeoutS = 2): Promise<boolean> =>
    (await c().execResult(from, ['/agnhost', 'connect', `${to}:${port}`, `--timeout=${timeoutS}s`], { timeoutMs: (timeoutS + 20) * 1000 })).code === 0;

  /**
   * A probe from inside a pod's network namespace without the API (kubectl
   * exec needs the apiserver): the namespace from the agent's endpoint record
   * on the pod's node, bash's /dev/tcp from the host's tools.
   */
  const probeWithoutApi = (pod: PodSpec, ip: string): boolean => {
    const node = c().nodes[pod.node - 1]!;
    const dir = join(node.dirs.sluiceLib, 'endpoints');
    const rec = readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as { netns: string; pod: { namespace?: string; name?: string } })
      .find((r) => r.pod.namespace === pod.ns && r.pod.name === pod.name);
    if (!rec) throw new Error(`no endpoint record for ${pod.ns}/${pod.name} on ${node.name}`);
    try {
      // The pod's netns is a mount in the node's mount namespace: enter that first.
      execFileSync('nsenter', [`--mount=/proc/${node.holderPid}/ns/mnt`, '--', 'nsenter', `--net=/run/netns/${basename(rec.netns)}`, '--', 'timeout', '2', 'bash', '-c', `exec 3<>/dev/tcp/${ip}/80`], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  };

  const world = (): World => ({
    namespaces: ['x', 'y'].map((n) => ({ name: n, labels: { 'kubernetes.io/metadata.name': n } })),
    pods: PODS.map((p): ModelPod => ({ namespace: p.ns, name: p.name, labels: p.labels, ports: [{ name: 'http', containerPort: 80, protocol: 'TCP' }], ips: [ips.get(`${p.ns}/${p.name}`)!] })),
  });

  /** Probes every pair (not a pod to itself) until the matrix is `want`, or fails with the differences. */
  async function expectMatrix(policies: Policy[]): Promise<void> {
    const w = world();
    const want = expectedMatrix(w, policies, { protocol: 'TCP', port: 80, family: 4 });
    const until = Date.now() + ENFORCE_MS;
    let diff: string[] = [];
    for (let round = 0; round < 50; round++) {
      const got = await Promise.all(
        w.pods.map((from) => Promise.all(w.pods.map((to) => (from === to ? Promise.resolve(true) : connects(`${from.namespace}/${from.name}`, to.ips[0]!, 80, 1))))),
      );
      diff = [];
      w.pods.forEach((from, i) =>
        w.pods.forEach((to, j) => {
          if (i !== j && got[i]![j] !== want[i]![j]) diff.push(`${from.namespace}/${from.name} → ${to.namespace}/${to.name}: want ${want[i]![j] ? 'allowed' : 'denied'}`);
        }),
      );
      if (!diff.length || Date.now() > until) break;
    }
    expect(diff).toEqual([]);
  }

  it('installs: the agent Ready on both nodes, the nodes Ready, pods on both nodes reach each other, kubelet probes reach them', async () => {
    noteFailure();
    const cl = c();
    await cl.apply([
      ...['x', 'y'].map((n) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: n } })),
      ...PODS.map((p) => server(p, nodeName(p.node))),
    ]);
    for (const ns of ['x', 'y']) await cl.waitPodsReady(ns, 'pod', { min: 2, timeoutMs: 90_000 });
    for (const p of PODS) {
      const pod = await cl.kubectlJson<{ status: { podIP: string } }>(['get', 'pod', '-n', p.ns, p.name]);
      ips.set(`${p.ns}/${p.name}`, pod.status.podIP);
    }
    // Addresses from each node's own pod CIDR (Node.spec.podCIDRs).
    expect(ips.get('x/a')).toMatch(/^10\.244\.1\./);
    expect(ips.get('x/b')).toMatch(/^10\.244\.2\./);
    await expectMatrix([]);
  }, 180_000);

  it('TCP between pods of the two nodes skips both nodes\' routing and netfilter (the routed path, --datapath-redirect)', async () => {
    noteFailure();
    const cl = c();
    // A counting rule (no target) in each node's FORWARD chain for TCP between pod addresses.
    const rule = ['FORWARD', '-p', 'tcp', '-s', '10.244.0.0/16', '-d', '10.244.0.0/16', '-m', 'comment', '--comment', 'sluice-test-routed'];
    const forwarded = async (): Promise<number> => {
      let n = 0;
      for (const node of cl.nodes) {
        const r = await cl.nodeExec(node, 'iptables', ['-w', '-L', 'FORWARD', '-v', '-n', '-x']);
        for (const line of r.stdout.split('\n')) if (line.includes('sluice-test-routed')) n += Number(line.trim().split(/\s+/)[0]);
      }
      return n;
    };
    for (const node of cl.nodes) expect((await cl.nodeExec(node, 'iptables', ['-w', '-I', ...rule])).code).toBe(0);
    try {
      const before = await forwarded();
      for (let i = 0; i < 3; i++) {
        expect(await connects('x/a', ips.get('x/b')!)).toBe(true);
        expect(await connects('y/d', ips.get('y/c')!)).toBe(true);
      }
      expect(await forwarded()).toBe(before);
    } finally {
      for (const node of cl.nodes) await cl.nodeExec(node, 'iptables', ['-w', '-D', ...rule]);
    }
  }, 60_000);

  it('enforces the NetworkPolicy truth table through the API, with peers on both nodes', async () => {
    noteFailure();
    const cl = c();
    const steps: Array<Record<string, unknown>> = [
      // x: default deny ingress.
      { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'deny-all', namespace: 'x' }, spec: { podSelector: {}, policyTypes: ['Ingress'] } },
      // x/b: from namespace y on its named port.
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: 'b-from-y', namespace: 'x' },
        spec: { podSelector: { matchLabels: { pod: 'b' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'y' } } }], ports: [{ port: 'http' }] }] },
      },
      // y/c: egress only to x/b (pod and namespace selector in one peer).
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: 'c-only-to-b', namespace: 'y' },
        spec: {
          podSelector: { matchLabels: { pod: 'c' } },
          policyTypes: ['Egress'],
          egress: [{ to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'x' } }, podSelector: { matchLabels: { pod: 'b' } } }] }],
        },
      },
      // x/a: from y/d's address by ipBlock.
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: 'a-from-d-ip', namespace: 'x' },
        spec: { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ ipBlock: { cidr: `${ips.get('y/d')}/32` } }] }] },
      },
    ];
    const applied: Policy[] = [];
    for (const np of steps) {
      await cl.apply(np);
      applied.push(parsePolicy(np));
      await expectMatrix(applied);
    }
    // The readiness probes (from each node) still pass under default deny.
    await cl.waitPodsReady('x', 'pod', { min: 2, timeoutMs: 10_000 });

    // `sluice test --live` in each node's agent pod, as an operator runs it:
    // every pair, expected as the model says; the agent's compiled verdict
    // and a real probe from each local source pod must both agree.
    const w = world();
    const want = expectedMatrix(w, applied, { protocol: 'TCP', port: 80, family: 4 });
    const assertions = w.pods.flatMap((from, i) =>
      w.pods.flatMap((to, j) => (i === j ? [] : [{ from: `${from.namespace}/${from.name}`, to: `${to.namespace}/${to.name}`, port: 'http', expect: want[i]![j] ? 'allow' : 'deny' }])),
    );
    const agents = await cl.kubectlJson<{ items: Array<{ metadata: { name: string }; spec: { nodeName: string } }> }>(['get', 'pods', '-n', 'kube-system', '-l', 'app.kubernetes.io/name=sluice']);
    for (const n of [1, 2] as const) {
      const agent = agents.items.find((p) => p.spec.nodeName === nodeName(n))!.metadata.name;
      const input = JSON.stringify({ apiVersion: 'sluice.dev/v1alpha1', kind: 'Assertions', assertions });
      const r = await cl.kubectlResult(['exec', '-i', '-n', 'kube-system', agent, '-c', 'agent', '--', 'sluice', 'test', '/dev/stdin', '--live', '-o', 'json'], { input, timeoutMs: 120_000 });
      const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { from: string; ok: boolean; verdict: string; probe?: { agrees: boolean; text: string } });
      expect(lines.filter((l) => !l.ok), r.stdout + r.stderr).toEqual([]);
      expect(r.code, r.stderr).toBe(0);
      expect(lines).toHaveLength(assertions.length);
      // The sources on this node were probed for real (and agreed); the others judged only.
      const local = new Set(PODS.filter((p) => p.node === n).map((p) => `${p.ns}/${p.name}`));
      for (const l of lines) {
        if (local.has(l.from)) expect(l.probe?.text, JSON.stringify(l)).not.toMatch(/^not probed/);
        else expect(l.probe?.text).toMatch(/^not probed/);
      }
    }
  }, 240_000);

  it('audit mode through the API: an annotated NetworkPolicy never drops, its would-be drops are audit flows', async () => {
    noteFailure();
    const cl = c();
    // y/d (node 2, its ingress open so far): only from x/b, in audit mode; x/a (node 1) → y/d must keep working.
    await cl.apply({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'd-audit', namespace: 'y', annotations: { 'sluice.dev/enforcement': 'audit' } },
      spec: { podSelector: { matchLabels: { pod: 'd' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'x' } }, podSelector: { matchLabels: { pod: 'b' } } }] }] },
    });
    const agents = await cl.kubectlJson<{ items: Array<{ metadata: { name: string }; spec: { nodeName: string } }> }>(['get', 'pods', '-n', 'kube-system', '-l', 'app.kubernetes.io/name=sluice']);
    const agent2 = agents.items.find((p) => p.spec.nodeName === nodeName(2))!.metadata.name;
    const audits = async () => (await cl.exec(`kube-system/${agent2}`, ['sluice', 'observe', '--verdict', 'audit', '--pod', 'y/d', '-o', 'json'], { container: 'agent' })).trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { src: string; reason: string; policies?: string[] });
    await cl.waitFor('the audit of x/a → y/d', async () => (await connects('x/a', ips.get('y/d')!)) && (await audits()).some((f) => f.src === ips.get('x/a')), { timeoutMs: ENFORCE_MS, intervalMs: 500 });
    expect(await connects('x/a', ips.get('y/d')!)).toBe(true);
    expect((await audits()).find((f) => f.src === ips.get('x/a'))).toMatchObject({ reason: 'policy-denied', policies: ['y/d-audit'] });
    const dropped = (await cl.exec(`kube-system/${agent2}`, ['sluice', 'observe', '--verdict', 'dropped', '--pod', 'y/d', '-o', 'json'], { container: 'agent' })).trim();
    expect(dropped).toBe('');
    await cl.kubectl(['delete', '-n', 'y', 'networkpolicy', 'd-audit']);
  }, 120_000);

  it('an FQDNPolicy through the API: blocked before the lookup, allowed after it (search path and autopath through CoreDNS), other names blocked; Accepted=True', async () => {
    noteFailure();
    const cl = c();
    await cl.deployCoreDNS({ hosts: { 'allowed.example': ips.get('x/b')!, 'other.example': ips.get('y/d')! } });
    await cl.apply([
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'fq' } },
      agnhost('fq', 'client', nodeName(1), { role: 'client' }, ['pause']),
      // One client per node: CoreDNS is local to one of them and behind the other node for the other.
      agnhost('fq', 'client2', nodeName(2), { role: 'client' }, ['pause']),
      {
        apiVersion: 'sluice.dev/v1alpha1',
        kind: 'FQDNPolicy',
        metadata: { name: 'client-egress', namespace: 'fq' },
        spec: { podSelector: { matchLabels: { role: 'client' } }, egress: [{ toFQDNs: [{ matchName: 'allowed.example' }], ports: [{ port: 80, protocol: 'TCP' }] }] },
      },
      // x/b admits namespace fq too (its ingress is isolated by the truth table's policies).
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: 'b-from-fq', namespace: 'x' },
        spec: { podSelector: { matchLabels: { pod: 'b' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'fq' } } }] }] },
      },
    ]);
    await cl.waitPodsReady('fq', 'role=client', { min: 2, timeoutMs: 60_000 });
    // The agent on the client's node trusts the cluster DNS Service (it follows kube-dns as it appears).
    const agents = await cl.kubectlJson<{ items: Array<{ metadata: { name: string }; spec: { nodeName: string } }> }>(['get', 'pods', '-n', 'kube-system', '-l', 'app.kubernetes.io/name=sluice']);
    const agentOn = (n: 1 | 2) => agents.items.find((p) => p.spec.nodeName === nodeName(n))!.metadata.name;
    const agent = agentOn(1);
    await cl.waitFor(
      'the agent trusting 10.96.0.10',
      async () => ((JSON.parse(await cl.exec(`kube-system/${agent}`, ['sluice', 'status', '-o', 'json'], { container: 'agent' })) as { fqdn?: { trusted?: string[] } }).fqdn?.trusted ?? []).includes(DNS_SERVICE_IP),
      { timeoutMs: 20_000, intervalMs: 500 },
    );
    // Egress-isolated by the FQDNPolicy: nothing learned yet.
    await cl.waitFor('the FQDNPolicy in force', async () => !(await connects('fq/client', ips.get('x/b')!, 80, 1)), { timeoutMs: ENFORCE_MS, intervalMs: 200 });
    // By name: the Go resolver walks the pod's search path (fq.svc.cluster.local, …) through the proxy to CoreDNS.
    // Up to 3 tries of 5 s: the first lookup of a fresh CoreDNS (its pod cache, the search path's
    // four queries) may not fit one; a denial would fail all three.
    let byName = false;
    for (let i = 0; i < 3 && !byName; i++) byName = await connects('fq/client', 'allowed.example', 80, 5);
    expect(byName).toBe(true);
    expect(await connects('fq/client', ips.get('x/b')!)).toBe(true);
    // CoreDNS saw the pod's own address (the proxy forwards from it), so autopath answered the
    // first search-path name with a CNAME to the real one: the proxy learned that name too.
    // (From the node's address CoreDNS finds no pod, answers NXDOMAIN, and nothing is learned for it.)
    const learnedOn = async (n: 1 | 2) =>
      (JSON.parse(await cl.exec(`kube-system/${agentOn(n)}`, ['sluice', 'fqdn', '-o', 'json'], { container: 'agent' })) as Array<{ name: string }>).map((l) => l.name);
    expect(await learnedOn(1)).toContain('allowed.example.fq.svc.cluster.local');
    // The same from the other node (the other side of CoreDNS's placement).
    let byName2 = false;
    for (let i = 0; i < 3 && !byName2; i++) byName2 = await connects('fq/client2', 'allowed.example', 80, 5);
    expect(byName2).toBe(true);
    expect(await learnedOn(2)).toContain('allowed.example.fq.svc.cluster.local');
    // A name no rule matches resolves, and its address stays closed.
    expect(await connects('fq/client', 'other.example', 80, 1)).toBe(false);
    const status = await cl.waitFor(
      'status.conditions written',
      async () => {
        const p = await cl.kubectlJson<{ status?: { conditions?: Array<{ type: string; status: string; reason: string; observedGeneration: number }> } }>(['get', 'fqdnpolicy', '-n', 'fq', 'client-egress']);
        return p.status?.conditions?.find((x) => x.type === 'Accepted');
      },
      { timeoutMs: 15_000, intervalMs: 300 },
    );
    expect(status).toMatchObject({ status: 'True', reason: 'Valid', observedGeneration: 1 });
    // An invalid one never reaches an agent: the CRD refuses it.
    const bad = await cl.kubectlResult(['apply', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'sluice.dev/v1alpha1', kind: 'FQDNPolicy', metadata: { name: 'bad', namespace: 'fq' }, spec: { podSelector: {}, egress: [{ toFQDNs: [{ matchPattern: 'a..example' }] }] } }),
    });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/matchPattern/);
  }, 180_000);

  it('a DaemonSet upgrade (maxSurge: each new agent takes the old one\'s sockets over): every lookup of a resolving pod answered on its first try', async () => {
    noteFailure();
    const cl = c();
    const node1 = cl.nodes[0]!;
    type AgentPod = { metadata: { name: string }; spec: { nodeName: string }; status: { conditions?: Array<{ type: string; status: string }> } };
    const agentPods = async () => (await cl.kubectlJson<{ items: AgentPod[] }>(['get', 'pods', '-n', 'kube-system', '-l', 'app.kubernetes.io/name=sluice'])).items;
    const before = new Set((await agentPods()).map((p) => p.metadata.name));
    // fq/client (node 1, from the FQDNPolicy test) resolves allowed.example through its node's proxy and
    // CoreDNS, 50 lookups a second, each tried once with 2 s to answer: any lookup lost is a failure.
    const dir = join(node1.dirs.sluiceLib, 'endpoints');
    const rec = readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as { netns: string; pod: { namespace?: string; name?: string } })
      .find((r) => r.pod.namespace === 'fq' && r.pod.name === 'client');
    expect(rec, 'the endpoint record of fq/client').toBeDefined();
    const stopFile = join(node1.dirs.root, `stream-stop-${process.pid}`);
    const streaming = run(
      'nsenter',
      [`--mount=/proc/${node1.holderPid}/ns/mnt`, '--', 'nsenter', `--net=/run/netns/${basename(rec!.netns)}`, '--', 'python3', DNSPROBE, 'stream', '--server', DNS_SERVICE_IP, '--names', 'allowed.example', '--rate', '50', '--seconds', '240', '--timeout', '2', '--attempts', '1', '--until-file', stopFile],
      { timeoutMs: 260_000 },
    );
    try {
      await new Promise((r) => setTimeout(r, 2000));
      await cl.kubectl(['rollout', 'restart', 'daemonset', '-n', 'kube-system', 'sluice']);
      await cl.kubectl(['rollout', 'status', 'daemonset', '-n', 'kube-system', 'sluice', '--timeout=200s'], { timeoutMs: 210_000 });
      // The old pods deleted, a new one Ready on each node.
      await cl.waitFor(
        'the old agent pods gone, new ones Ready',
        async () => {
          const now = await agentPods();
          return now.length === 2 && now.every((p) => !before.has(p.metadata.name) && p.status.conditions?.some((x) => x.type === 'Ready' && x.status === 'True'));
        },
        { timeoutMs: 60_000, intervalMs: 500 },
      );
      await new Promise((r) => setTimeout(r, 2000));
    } finally {
      writeFileSync(stopFile, '');
    }
    const out = await streaming;
    rmSync(stopFile, { force: true });
    expect(out.code, out.stderr).toBe(0);
    const r = JSON.parse(out.stdout) as { lookups: number; failed: number; unanswered: number; longest_stall_ms: number };
    console.error(`lookups through the DaemonSet upgrade: ${JSON.stringify(r)}`);
    expect(r.lookups).toBeGreaterThan(200);
    expect(r).toMatchObject({ failed: 0, unanswered: 0 });
    // Node 1's new agent took the sockets over (it did not bind new ones while nobody served).
    const newOn1 = (await agentPods()).find((p) => p.spec.nodeName === nodeName(1))!.metadata.name;
    expect(await cl.kubectl(['logs', '-n', 'kube-system', newOn1, '-c', 'agent'])).toMatch(/took over the sockets of the agent that was running/);
    // Policy and learning go on: the name still opens, an unlearned address stays closed.
    expect(await connects('fq/client', 'allowed.example', 80, 5)).toBe(true);
    expect(await connects('fq/client', 'other.example', 80, 1)).toBe(false);
  }, 300_000);

  it('Services judged on their backends: ClusterIP and NodePort, TCP and UDP, named target ports, backends on both nodes, endpoint churn', async () => {
    noteFailure();
    const cl = c();
    const be = (name: string, node: 1 | 2, app: string) =>
      agnhost('s', name, nodeName(node), { app }, ['netexec', '--http-port=8080', '--udp-port=8081'], {
        ports: [{ name: 'http', containerPort: 8080 }, { name: 'udp', containerPort: 8081, protocol: 'UDP' }],
        readinessProbe: { httpGet: { path: '/', port: 8080 }, periodSeconds: 1 },
      });
    const svc = (name: string, app: string, type = 'ClusterIP') => ({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: 's' },
      spec: { type, selector: { app }, ports: [{ name: 'http', port: 80, targetPort: 'http' }, { name: 'udp', port: 81, protocol: 'UDP', targetPort: 'udp' }] },
    });
    await cl.apply([
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 's' } },
      be('be1', 1, 'be'),
      be('be2', 2, 'be'),
      be('db', 2, 'db'),
      be('client', 1, 'client'),
      be('other', 2, 'other'),
      be('fq', 1, 'fqclient'),
      svc('be', 'be', 'NodePort'),
      svc('db', 'db'),
      // client: egress only to app=be (named ports); be: ingress only from app=client.
      { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'client-egress', namespace: 's' }, spec: { podSelector: { matchLabels: { app: 'client' } }, policyTypes: ['Egress'], egress: [{ to: [{ podSelector: { matchLabels: { app: 'be' } } }], ports: [{ port: 'http' }, { port: 'udp', protocol: 'UDP' }] }] } },
      { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'be-ingress', namespace: 's' }, spec: { podSelector: { matchLabels: { app: 'be' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }, { podSelector: { matchLabels: { app: 'fqclient' } } }] }] } },
      // fq: egress by name only, to the be Service's name (CoreDNS answers its ClusterIP).
      { apiVersion: 'sluice.dev/v1alpha1', kind: 'FQDNPolicy', metadata: { name: 'fq-egress', namespace: 's' }, spec: { podSelector: { matchLabels: { app: 'fqclient' } }, egress: [{ toFQDNs: [{ matchName: 'be.s.svc.cluster.local' }] }] } },
    ]);
    await cl.waitPodsReady('s', 'app', { min: 6, timeoutMs: 90_000 });
    const podIp = async (name: string) => (await cl.kubectlJson<{ status: { podIP: string } }>(['get', 'pod', '-n', 's', name])).status.podIP;
    const clusterIp = async (name: string) => (await cl.kubectlJson<{ spec: { clusterIP: string; ports: Array<{ name: string; nodePort?: number }> } }>(['get', 'svc', '-n', 's', name])).spec;
    const [beSpec, dbSpec] = [await clusterIp('be'), await clusterIp('db')];
    const nodePort = beSpec.ports.find((p) => p.name === 'http')!.nodePort!;
    const node2Ip = c().nodes[1]!.ip;
    // netexec's /dial: the pod itself sends `hostname` to host:port and answers what came back.
    const dial = async (from: string, host: string, port: number, protocol: 'http' | 'udp', tries = 1): Promise<string[]> => {
      const url = `http://${await podIp(from)}:8080/dial?request=hostname&protocol=${protocol}&host=${host}&port=${port}&tries=${tries}`;
      const r = await cl.nodeExec(c().nodes[0]!, 'curl', ['-s', '--max-time', '15', url], { timeoutMs: 20_000 });
      try {
        return (JSON.parse(r.stdout) as { responses?: string[] }).responses ?? [];
      } catch {
        return [];
      }
    };
    const backends = async (from: string, host: string, port: number, protocol: 'http' | 'udp') => {
      const seen = new Set<string>();
      for (let i = 0; i < 12 && seen.size < 2; i++) for (const r of await dial(from, host, port, protocol)) seen.add(r);
      return [...seen].sort();
    };
    // The policies in force (the client's egress, isolated) before judging.
    await cl.waitFor('the client isolated', async () => (await dial('client', await podIp('db'), 8080, 'http')).length === 0, { timeoutMs: ENFORCE_MS, intervalMs: 500 });
    // TCP and UDP through the ClusterIP land on both backends, on both nodes, by their named target ports.
    await cl.waitFor('both backends over TCP', async () => (await backends('client', beSpec.clusterIP, 80, 'http')).length === 2, { timeoutMs: 30_000, intervalMs: 500 });
    expect(await backends('client', beSpec.clusterIP, 80, 'http')).toEqual(['be1', 'be2']);
    expect(await backends('client', beSpec.clusterIP, 81, 'udp')).toEqual(['be1', 'be2']);
    // A NodePort on the other node's address, from a pod: translated too.
    expect((await backends('client', node2Ip, nodePort, 'http')).length).toBeGreaterThan(0);
    // Egress judged on the backend: db is not app=be, through its ClusterIP as directly.
    expect(await dial('client', dbSpec.clusterIP, 80, 'http')).toEqual([]);
    expect(await dial('other', dbSpec.clusterIP, 80, 'http')).toEqual(['db']);
    // Ingress judged on the real client: be admits the client only, through the same ClusterIP.
    expect(await dial('other', beSpec.clusterIP, 80, 'http')).toEqual([]);
    // FQDN egress sees the backend too: nothing before the lookup, the Service's backends after
    // resolving its name (the ClusterIP in the answer opens its backends), another Service's not.
    expect(await dial('fq', beSpec.clusterIP, 80, 'http')).toEqual([]);
    await cl.waitFor('be by name from an FQDN-selected pod', async () => (await dial('fq', 'be.s.svc.cluster.local', 80, 'http')).length > 0, { timeoutMs: 30_000, intervalMs: 1000 });
    expect(await dial('fq', beSpec.clusterIP, 80, 'http')).not.toEqual([]);
    expect(await dial('fq', 'db.s.svc.cluster.local', 80, 'http')).toEqual([]);
    // Endpoint churn: be2 goes; new connections land on be1 only.
    await cl.kubectl(['delete', 'pod', '-n', 's', 'be2', '--wait=false']);
    await cl.waitFor('be2 out of the Service', async () => JSON.stringify(await dial('client', beSpec.clusterIP, 80, 'http', 6)) === JSON.stringify(Array(6).fill('be1')), { timeoutMs: 30_000, intervalMs: 500 });
    await cl.kubectl(['delete', 'namespace', 's', '--wait=false']);
  }, 240_000);

  it('the apiserver down for 20 s: enforcement unchanged; a change made after it returns is enforced within seconds', async () => {
    noteFailure();
    const cl = c();
    const [, , c1, d1] = PODS as [PodSpec, PodSpec, PodSpec, PodSpec];
    // y/c may reach only x/b; y/d reaches x/a by its address; x/a is closed to y/c.
    const before = [probeWithoutApi(c1, ips.get('x/b')!), probeWithoutApi(c1, ips.get('x/a')!), probeWithoutApi(d1, ips.get('x/a')!)];
    expect(before).toEqual([true, false, true]);
    const down = cl.restartApiserver(20_000);
    const during: boolean[][] = [];
    for (let i = 0; i < 4; i++) {
      await new Promise((r) => setTimeout(r, 4000));
      during.push([probeWithoutApi(c1, ips.get('x/b')!), probeWithoutApi(c1, ips.get('x/a')!), probeWithoutApi(d1, ips.get('x/a')!)]);
    }
    await down;
    expect(during).toEqual(during.map(() => before));
    // After the apiserver is back: a change is enforced.
    await cl.kubectl(['delete', 'networkpolicy', '-n', 'x', 'deny-all', 'b-from-y', 'a-from-d-ip', 'b-from-fq']);
    await cl.kubectl(['delete', 'networkpolicy', '-n', 'y', 'c-only-to-b']);
    await expectMatrix([]);
  }, 180_000);

  it('the agent pod deleted: denied stays denied; a new pod on that node gets networking once it is back', async () => {
    noteFailure();
    const cl = c();
    await cl.apply({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'deny-a', namespace: 'x' }, spec: { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Ingress'] } });
    await cl.waitFor('x/a isolated', async () => !(await connects('y/d', ips.get('x/a')!, 80, 1)), { timeoutMs: ENFORCE_MS, intervalMs: 200 });
    const agents = await cl.kubectlJson<{ items: Array<{ metadata: { name: string }; spec: { nodeName: string } }> }>(['get', 'pods', '-n', 'kube-system', '-l', 'app.kubernetes.io/name=sluice']);
    const onNode1 = agents.items.find((p) => p.spec.nodeName === nodeName(1))!.metadata.name;
    await cl.kubectl(['delete', 'pod', '-n', 'kube-system', onNode1, '--wait=false']);
    // While it is away: x/a (on node 1) stays closed, x/b stays open.
    expect(await connects('y/d', ips.get('x/a')!, 80, 1)).toBe(false);
    expect(await connects('y/d', ips.get('x/b')!)).toBe(true);
    // Its replacement (another pod) Ready on node 1.
    await cl.waitFor(
      'the new agent on node 1 Ready',
      async () => {
        const now = await cl.kubectlJson<{ items: Array<{ metadata: { name: string }; spec: { nodeName: string }; status: { conditions?: Array<{ type: string; status: string }> } }> }>(['get', 'pods', '-n', 'kube-system', '-l', 'app.kubernetes.io/name=sluice']);
        return now.items.some((p) => p.spec.nodeName === nodeName(1) && p.metadata.name !== onNode1 && p.status.conditions?.some((x) => x.type === 'Ready' && x.status === 'True'));
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    expect(await connects('y/d', ips.get('x/a')!, 80, 1)).toBe(false);
    await cl.apply(server({ ns: 'y', name: 'late', node: 1, labels: { pod: 'late' } }, nodeName(1)));
    await cl.waitPodsReady('y', 'pod=late', { timeoutMs: 60_000 });
    const late = (await cl.kubectlJson<{ status: { podIP: string } }>(['get', 'pod', '-n', 'y', 'late'])).status.podIP;
    expect(await connects('x/b', late)).toBe(true);
  }, 180_000);

  it('kubectl delete -f deploy/ removes Sluice; running pods keep their connectivity and their policy', async () => {
    noteFailure();
    const cl = c();
    await cl.kubectl(['delete', '-f', DEPLOY, '--wait=true', '--timeout=90s'], { timeoutMs: 120_000 });
    await cl.waitFor('the agents gone', async () => (await cl.kubectlJson<{ items: unknown[] }>(['get', 'pods', '-n', 'kube-system', '-l', 'app.kubernetes.io/name=sluice'])).items.length === 0, { timeoutMs: 60_000, intervalMs: 500 });
    expect(await connects('y/d', ips.get('x/b')!)).toBe(true);
    expect(await connects('x/b', ips.get('y/c')!)).toBe(true);
    expect(await connects('y/d', ips.get('x/a')!, 80, 1)).toBe(false);
  }, 180_000);
});
