// deploy/*.yaml, read as data: the layout `kubectl apply -f deploy/` needs,
// the image tag kept equal to package.json's version, and the DaemonSet kept
// consistent with the agent's flag defaults, the conflist and install-cni.
// (test/deploy/crd.test.ts applies them to a real API server.)
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { AGENT_FLAGS } from '../../src/agent/flags.js';
import { parseInstallCniArgs } from '../../src/cli/install-cni.js';

const ROOT = join(import.meta.dirname, '..', '..');
const DEPLOY = join(ROOT, 'deploy');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

type Obj = Record<string, any>;

function load(file: string): Obj[] {
  return parseAllDocuments(readFileSync(join(DEPLOY, file), 'utf8')).map((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0]!.message}`);
    return d.toJS() as Obj;
  });
}

const files = readdirSync(DEPLOY).filter((f) => /\.ya?ml$/.test(f)).sort();
const objects = files.flatMap((f) => load(f).map((o) => ({ file: f, o })));
const find = (kind: string) => objects.filter(({ o }) => o.kind === kind).map(({ o }) => o);
const ds = find('DaemonSet')[0]!;
const pod = ds?.spec.template.spec as Obj;
const agent = pod?.containers.find((c: Obj) => c.name === 'agent') as Obj;
const init = pod?.initContainers.find((c: Obj) => c.name === 'install-cni') as Obj;
const flagDefault = (name: string) => AGENT_FLAGS.find((f) => f.name === name)?.default;

/** The host path a container mount of `container` at `mountPath` comes from. */
function hostPathOf(container: Obj, mountPath: string): string | undefined {
  const m = (container.volumeMounts as Obj[]).find((v) => v.mountPath === mountPath);
  return m && (pod.volumes as Obj[]).find((v) => v.name === m.name)?.hostPath?.path;
}

/** The container mount (and host path) that holds `path`, the longest prefix. */
function mountHolding(container: Obj, path: string): Obj | undefined {
  return (container.volumeMounts as Obj[])
    .filter((v) => path === v.mountPath || path.startsWith(`${v.mountPath}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
}

describe('deploy/ layout', () => {
  it('holds the manifests directly (kubectl apply -f does not descend), CRD first', () => {
    expect(files).toEqual(['00-crd-fqdnpolicies.yaml', '01-serviceaccount.yaml', '02-rbac.yaml', '03-daemonset.yaml']);
    for (const entry of readdirSync(DEPLOY)) {
      if (statSync(join(DEPLOY, entry)).isDirectory()) expect(entry, 'only the image builder may be a subfolder').toBe('image');
    }
    expect(existsSync(join(DEPLOY, 'crds'))).toBe(false);
    expect(objects.map(({ o }) => `${o.kind}/${o.metadata.name}`)).toEqual([
      'CustomResourceDefinition/fqdnpolicies.sluice.dev',
      'ServiceAccount/sluice',
      'ClusterRole/sluice',
      'ClusterRoleBinding/sluice',
      'DaemonSet/sluice',
    ]);
  });

  it('puts every namespaced object in kube-system and labels everything for uninstall', () => {
    for (const { o } of objects) {
      expect(o.metadata.labels?.['app.kubernetes.io/part-of'], `${o.kind}`).toBe('sluice');
      if (['ServiceAccount', 'DaemonSet'].includes(o.kind)) expect(o.metadata.namespace).toBe('kube-system');
    }
    expect(find('Namespace')).toEqual([]);
  });
});

describe('the image', () => {
  it(`is sluice/sluice:${VERSION} (package.json's version), never pulled`, () => {
    for (const c of [...pod.initContainers, ...pod.containers] as Obj[]) {
      expect(c.image, c.name).toBe(`sluice/sluice:${VERSION}`);
      expect(c.imagePullPolicy, c.name).toBe('IfNotPresent');
    }
  });

  it('is the one make image builds', () => {
    const makefile = readFileSync(join(ROOT, 'Makefile'), 'utf8');
    expect(makefile).toMatch(/--tag sluice\/sluice:\$\(VERSION\)/);
    expect(makefile).toMatch(/^image: \$\(BUILD\)\/image\/sluice\.tar$/m);
  });
});

describe('RBAC', () => {
  const role = find('ClusterRole')[0]!;
  it('reads what policy needs and writes only FQDNPolicy status: no wildcards, no secrets', () => {
    const grants = (role.rules as Obj[]).flatMap((r) => (r.apiGroups as string[]).flatMap((g) => (r.resources as string[]).map((res) => `${g || 'core'}/${res}: ${(r.verbs as string[]).join(',')}`)));
    expect(grants.sort()).toEqual(
      [
        'core/namespaces: get,list,watch',
        'core/nodes: get,list,watch',
        'core/pods: get,list,watch',
        'core/services: get,list,watch',
        'discovery.k8s.io/endpointslices: get,list,watch',
        'networking.k8s.io/networkpolicies: get,list,watch',
        'sluice.dev/fqdnpolicies: get,list,watch',
        'sluice.dev/fqdnpolicies/status: update,patch',
      ].sort(),
    );
    expect(JSON.stringify(role)).not.toMatch(/"\*"|secrets|resourceNames|nonResourceURLs/);
  });

  it('binds the role to the DaemonSet\'s service account', () => {
    const sa = find('ServiceAccount')[0]!;
    const binding = find('ClusterRoleBinding')[0]!;
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata.name });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: sa.metadata.namespace }]);
    expect(pod.serviceAccountName).toBe(sa.metadata.name);
  });
});

describe('the DaemonSet', () => {
  it('runs on every node with host networking, node-critical, one node at a time', () => {
    expect(ds.metadata.namespace).toBe('kube-system');
    expect(pod.hostNetwork).toBe(true);
    expect(pod.dnsPolicy).toBe('ClusterFirstWithHostNet');
    expect(pod.priorityClassName).toBe('system-node-critical');
    expect(pod.tolerations).toEqual([{ operator: 'Exists' }]);
    expect(ds.spec.updateStrategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(10);
    for (const [k, v] of Object.entries(ds.spec.selector.matchLabels)) expect(ds.spec.template.metadata.labels[k], k).toBe(v);
  });

  it('runs `sluice agent --node-name=$(NODE_NAME)` in Kubernetes mode', () => {
    expect(agent.command).toBeUndefined(); // the image's entrypoint: node <flags> /opt/sluice/bin/sluice
    expect(agent.args).toEqual(['agent', '--node-name=$(NODE_NAME)', '--cgroup-root=/host/sys/fs/cgroup']);
    // The host's cgroup hierarchy, read-only, where --cgroup-root says.
    expect(agent.volumeMounts.find((m: Obj) => m.name === 'cgroup')).toEqual({ name: 'cgroup', mountPath: '/host/sys/fs/cgroup', readOnly: true });
    expect(agent.env).toContainEqual({ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } });
    expect(flagDefault('node-name')).toBe('');
    expect(JSON.stringify(agent)).not.toContain('standalone');
    expect(agent.securityContext).toEqual({ privileged: true });
  });

  it('probes /healthz and /readyz on the agent\'s --metrics-addr, host 127.0.0.1', () => {
    // PRODUCT §3: --metrics-addr defaults to 127.0.0.1:9963.
    expect(flagDefault('metrics-addr'), 'sluice agent has a --metrics-addr flag').toBe('127.0.0.1:9963');
    const [host, port] = flagDefault('metrics-addr')!.split(':');
    for (const [probe, path] of [['startupProbe', '/healthz'], ['livenessProbe', '/healthz'], ['readinessProbe', '/readyz']] as const) {
      expect(agent[probe]?.httpGet, probe).toEqual({ host, path, port: Number(port) });
    }
  });

  it('mounts the host paths the agent\'s flag defaults and the conflist name', () => {
    const conflist = JSON.parse(readFileSync(join(ROOT, 'cni-conf/10-sluice.conflist'), 'utf8')) as { plugins: Obj[] };
    const plugin = conflist.plugins[0]!;
    const needs: Array<[string, string]> = [
      ['--run-dir', flagDefault('run-dir')!],
      ['--state-dir', flagDefault('state-dir')!],
      ['--bpffs', flagDefault('bpffs')!],
      ['conflist agentSocket', plugin.agentSocket],
      ['conflist stateDir', plugin.stateDir],
      ['conflist logFile', plugin.logFile],
    ];
    for (const [what, path] of needs) {
      const m = mountHolding(agent, path);
      expect(m, `${what} ${path} is on a mount`).toBeDefined();
      // Mounted at the same path as on the host, so the runtime (on the host) and the agent agree.
      expect(hostPathOf(agent, m!.mountPath), what).toBe(m!.mountPath);
    }
    expect(mountHolding(agent, flagDefault('bpffs')!)!.mountPropagation).toBe('Bidirectional');
    expect(hostPathOf(agent, '/var/run/netns')).toBe('/var/run/netns');
    expect((agent.volumeMounts as Obj[]).find((m) => m.mountPath === '/var/run/netns')!.mountPropagation).toBe('HostToContainer');
    expect(pod.hostPID).toBe(true); // CNI_NETNS may be /proc/<pid>/ns/net
  });

  it('installs the CNI files with `sluice install-cni` into the host\'s standard directories', () => {
    expect(pod.initContainers).toHaveLength(1);
    // CNI 1.0.0 results for the runtimes that cannot read 1.1.0 (containerd 1.6 here).
    expect(init.args).toEqual(['install-cni', '--cni-version=1.0.0']);
    const opts = parseInstallCniArgs(init.args.slice(1), {})!;
    expect(opts.cniVersion).toBe('1.0.0');
    expect(hostPathOf(init, opts.cniBinDir)).toBe('/opt/cni/bin');
    expect(hostPathOf(init, opts.cniConfDir)).toBe('/etc/cni/net.d');
    expect(init.securityContext.privileged).toBeUndefined();
    expect(init.securityContext.capabilities).toEqual({ drop: ['ALL'] });
  });

  it('uses every volume it declares, and only hostPaths of a known type', () => {
    const used = new Set([...pod.initContainers, ...pod.containers].flatMap((c: Obj) => (c.volumeMounts as Obj[]).map((m) => m.name)));
    for (const v of pod.volumes as Obj[]) {
      expect(used.has(v.name), v.name).toBe(true);
      // Created if missing, except the cgroup hierarchy: it must be the host's, never an empty directory.
      expect(v.hostPath.type, v.name).toBe(v.name === 'cgroup' ? 'Directory' : 'DirectoryOrCreate');
    }
  });
});
