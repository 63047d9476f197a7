// The k8s harness proves itself with the reference CNI plugins (cni:
// 'bridge'): two real nodes Ready, pods on each, pod → pod across nodes,
// pod → ClusterIP Service (kube-proxy) with the backend on the other node,
// CoreDNS answering for the Service name, kubectl exec and logs, and nothing
// left on the machine after stop. Needs root and the cached binaries of
// test/k8s/build.sh: without them this FAILS (it does not skip) and says so.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AGNHOST_IMAGE } from './images.js';
import { Cluster, DNS_SERVICE_IP } from './cluster.js';
import { clusterFixture } from './fixture.js';
import { isRoot } from '../helpers/netns.js';

const BRING_UP_TARGET_MS = 60_000;

function agnhostPod(name: string, node: string, args: string[], labels: Record<string, string> = {}): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default', labels: { app: name, ...labels } },
    spec: {
      nodeSelector: { 'kubernetes.io/hostname': node },
      terminationGracePeriodSeconds: 1,
      containers: [{ name: 'agnhost', image: AGNHOST_IMAGE, imagePullPolicy: 'Never', args }],
    },
  };
}

describe.skipIf(!isRoot)('k8s test cluster (cni: bridge)', () => {
  const fx = clusterFixture(
    () => Cluster.start({ cni: 'bridge', nodes: 2 }),
    async (cluster) => console.log(`bring-up: ${(cluster.bringUpMs / 1000).toFixed(1)} s (target < ${BRING_UP_TARGET_MS / 1000} s from cached binaries)`),
  );
  const c = (): Cluster => fx.get();
  const noteFailure = () => fx.noteFailure((cluster) => console.error(cluster.describeProcesses()));

  it('brings up both nodes Ready with their pod CIDRs, within the target time', async () => {
    noteFailure();
    const nodes = await c().kubectlJson<{ items: Array<{ metadata: { name: string }; spec: { podCIDR?: string }; status: { conditions: Array<{ type: string; status: string }>; nodeInfo: { kubeletVersion: string } } }> }>(['get', 'nodes']);
    expect(nodes.items.map((n) => n.metadata.name).sort()).toEqual(['slk8s-n1', 'slk8s-n2']);
    for (const n of nodes.items) {
      expect(n.status.conditions.find((x) => x.type === 'Ready')?.status).toBe('True');
      expect(n.status.nodeInfo.kubeletVersion).toBe('v1.31.4');
      expect(n.spec.podCIDR).toBe(c().node(n.metadata.name).podCidr);
    }
    expect(c().bringUpMs).toBeLessThan(BRING_UP_TARGET_MS);
  });

  it('runs a pod on each node; pod → pod across nodes; pod → ClusterIP Service on the other node', async () => {
    noteFailure();
    await c().apply([
      agnhostPod('server', 'slk8s-n2', ['netexec', '--http-port=8080', '--udp-port=8081']),
      agnhostPod('client', 'slk8s-n1', ['pause']),
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'server', namespace: 'default' },
        spec: { selector: { app: 'server' }, ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] },
      },
    ]);
    await c().waitPodsReady('default', 'app in (server,client)', { min: 2, timeoutMs: 60_000 });
    const pods = await c().kubectlJson<{ items: Array<{ metadata: { name: string }; spec: { nodeName: string }; status: { podIP: string } }> }>(['get', 'pods', '-n', 'default']);
    const server = pods.items.find((p) => p.metadata.name === 'server')!;
    const client = pods.items.find((p) => p.metadata.name === 'client')!;
    expect(server.spec.nodeName).toBe('slk8s-n2');
    expect(client.spec.nodeName).toBe('slk8s-n1');
    expect(server.status.podIP.startsWith('10.244.2.')).toBe(true);
    expect(client.status.podIP.startsWith('10.244.1.')).toBe(true);

    // pod → pod, n1 → n2, over the direct routes; the server sees the client's own address
    await c().exec('client', ['/agnhost', 'connect', `${server.status.podIP}:8080`, '--timeout=5s']);
    const http = (target: string, path: string) => c().exec('client', ['sh', '-c', `printf 'GET ${path} HTTP/1.0\\r\\n\\r\\n' | nc -w 5 ${target} | tail -n 1`]);
    expect((await http(`${server.status.podIP} 8080`, '/clientip')).trim()).toMatch(new RegExp(`^${client.status.podIP.replaceAll('.', '\\.')}:\\d+$`));

    // pod → ClusterIP (kube-proxy DNAT on n1 to the backend on n2)
    const svc = await c().kubectlJson<{ spec: { clusterIP: string } }>(['get', 'service', 'server']);
    await c().waitFor('the Service to answer', async () => (await c().execResult('client', ['/agnhost', 'connect', `${svc.spec.clusterIP}:80`, '--timeout=3s'])).code === 0, { timeoutMs: 30_000, intervalMs: 500 });
    expect((await http(`${svc.spec.clusterIP} 80`, '/hostname')).trim()).toBe('server');
  }, 120_000);

  it('resolves the Service name through CoreDNS (kube-dns) from a pod, and a hosts entry', async () => {
    noteFailure();
    await c().deployCoreDNS({ hosts: { 'test.slk8s.invalid': '10.200.0.1' } });
    const resolv = await c().exec('client', ['cat', '/etc/resolv.conf']);
    expect(resolv).toContain(`nameserver ${DNS_SERVICE_IP}`);
    expect(resolv).toContain('search default.svc.cluster.local svc.cluster.local cluster.local');
    const svc = await c().kubectlJson<{ spec: { clusterIP: string } }>(['get', 'service', 'server']);
    const answer = await c().waitFor('kube-dns to answer', async () => {
      const r = await c().execResult('client', ['nslookup', 'server.default.svc.cluster.local', DNS_SERVICE_IP]);
      return r.code === 0 && r.stdout.includes(svc.spec.clusterIP) ? r.stdout : undefined;
    }, { timeoutMs: 30_000, intervalMs: 500 });
    expect(answer).toContain(svc.spec.clusterIP);
    // A short name through the search path (Go resolver), then connect to it.
    await c().exec('client', ['/agnhost', 'connect', 'server:80', '--timeout=5s']);
    expect(await c().exec('client', ['nslookup', 'test.slk8s.invalid', DNS_SERVICE_IP])).toContain('10.200.0.1');
  }, 150_000);

  it('kubectl exec and kubectl logs reach the pods through the kubelets', async () => {
    noteFailure();
    expect((await c().exec('server', ['hostname'])).trim()).toBe('server');
    expect((await c().exec('client', ['/agnhost', 'connect', '--help'])).length).toBeGreaterThan(0);
    const logs = await c().logs('server');
    expect(logs).toMatch(/Started HTTP server on port 8080/);
  }, 60_000);

  it("lands a privileged hostNetwork pod's hostPath mounts in its own node (netns, CNI dirs, bpffs)", async () => {
    noteFailure();
    const n1 = c().node('slk8s-n1');
    const n2 = c().node('slk8s-n2');
    await c().apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'hostnet', namespace: 'default', labels: { app: 'hostnet' } },
      spec: {
        nodeSelector: { 'kubernetes.io/hostname': n2.name },
        hostNetwork: true,
        terminationGracePeriodSeconds: 1,
        containers: [
          {
            name: 'agnhost',
            image: AGNHOST_IMAGE,
            imagePullPolicy: 'Never',
            command: ['sh', '-c', 'echo from-pod > /host/run-sluice/probe && echo conf > /host/cni-conf/zz-probe.txt && exec sleep 3600'],
            securityContext: { privileged: true },
            volumeMounts: [
              { name: 'run-sluice', mountPath: '/host/run-sluice' },
              { name: 'cni-conf', mountPath: '/host/cni-conf' },
              { name: 'bpffs', mountPath: '/host/bpf' },
            ],
          },
        ],
        volumes: [
          { name: 'run-sluice', hostPath: { path: '/run/sluice', type: 'DirectoryOrCreate' } },
          { name: 'cni-conf', hostPath: { path: '/etc/cni/net.d', type: 'Directory' } },
          { name: 'bpffs', hostPath: { path: '/sys/fs/bpf', type: 'Directory' } },
        ],
      },
    });
    await c().waitPodsReady('default', 'app=hostnet', { timeoutMs: 60_000 });
    expect(await c().exec('hostnet', ['ip', '-4', 'addr', 'show', 'eth0'])).toContain(`inet ${n2.ip}/24`);
    expect(await c().exec('hostnet', ['grep', ' /host/bpf ', '/proc/mounts'])).toMatch(/^bpf \/host\/bpf bpf /m);
    // The node's own directories, not the host's nor the other node's.
    expect(readFileSync(join(n2.dirs.sluiceRun, 'probe'), 'utf8')).toBe('from-pod\n');
    expect(existsSync(join(n2.dirs.cniConf, 'zz-probe.txt'))).toBe(true);
    expect(existsSync(join(n1.dirs.sluiceRun, 'probe'))).toBe(false);
    expect(existsSync('/run/sluice/probe')).toBe(false);
    await c().kubectl(['delete', 'pod', 'hostnet', '--wait=false']);
  }, 90_000);

  it('leaves nothing behind after stop', () => {
    noteFailure();
    c();
    const problems = c().stop({ keepLogs: fx.failed() });
    expect(problems).toEqual([]);
    expect(c().leftovers()).toEqual([]);
  }, 120_000);
});
