// deploy/ against a real kube-apiserver: a throwaway etcd and kube-apiserver
// on loopback (free ports, a temp dir, self-signed certificates from openssl,
// a token file), then `kubectl apply -f deploy/` as a user would, the service
// account's permissions, and FQDNPolicies good and bad: every bad one is
// refused at admission with a message naming the problem, and the agent's own
// validation (parseFqdnPolicy) agrees with the API server on every case but
// the list bounds, which only the CRD has. Everything is stopped by PID and
// removed afterwards. Needs the cached Kubernetes binaries (test/k8s/build.sh,
// `make deps` on CI) and fails, not skips, without them.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseFqdnPolicy } from '../../src/policy/index.js';

const ROOT = join(import.meta.dirname, '..', '..');
const K8S_VERSION = process.env.K8S_VERSION ?? 'v1.31.4';
const BIN_DIR = join(process.env.SLUICE_K8S_CACHE ?? '/var/cache/sluice-k8s', K8S_VERSION, 'bin');
const APISERVER = join(BIN_DIR, 'kube-apiserver');
const KUBECTL = join(BIN_DIR, 'kubectl');
const SA = 'system:serviceaccount:kube-system:sluice';
const TOKEN = 'slt-deploy-admin';

let dir: string;
const procs: ChildProcess[] = [];
let kubeconfig: string;

function onPath(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function start(name: string, cmd: string, args: string[]): ChildProcess {
  const log = createWriteStream(join(dir, `${name}.log`));
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  procs.push(child);
  return child;
}

function kubectl(args: string[], input?: string): { status: number | null; out: string; err: string } {
  const r = spawnSync(KUBECTL, ['--kubeconfig', kubeconfig, ...args], { input, encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

function kubectlOk(args: string[], input?: string): string {
  const r = kubectl(args, input);
  if (r.status !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.status}): ${r.err}${r.out}`);
  return r.out;
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { cwd: join(dir, 'pki'), stdio: ['ignore', 'ignore', 'pipe'] });
}

function alive(p: ChildProcess): boolean {
  return p.exitCode === null && p.signalCode === null;
}

async function stopAll(): Promise<void> {
  // The API server may take > 20 s to drain after SIGTERM; nothing here needs
  // draining, so it is killed. etcd gets a SIGTERM first.
  for (const p of [...procs].reverse()) {
    if (!alive(p)) continue;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill(p.spawnfile === 'etcd' ? 'SIGTERM' : 'SIGKILL');
    const timer = setTimeout(() => alive(p) && p.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }
}

beforeAll(async () => {
  const missing = [APISERVER, KUBECTL].filter((b) => !existsSync(b));
  if (missing.length) {
    throw new Error(`Kubernetes ${K8S_VERSION} binaries missing: ${missing.join(', ')}. Build them once with test/k8s/build.sh (make deps), cached in ${BIN_DIR}.`);
  }
  for (const cmd of ['etcd', 'openssl']) if (!onPath(cmd)) throw new Error(`${cmd} not found: apt-get install etcd-server openssl`);

  dir = mkdtempSync(join(tmpdir(), 'slt-deploy-api-'));
  mkdirSync(join(dir, 'pki'));
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=slt-deploy-ca']);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'apiserver.key', '-out', 'apiserver.csr', '-subj', '/CN=kube-apiserver']);
  writeFileSync(join(dir, 'pki/ext.cnf'), 'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\n');
  openssl(['x509', '-req', '-in', 'apiserver.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'apiserver.crt', '-days', '1', '-extfile', 'ext.cnf']);
  openssl(['genrsa', '-out', 'sa.key', '2048']);
  openssl(['rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub']);
  writeFileSync(join(dir, 'pki/tokens.csv'), `${TOKEN},admin,admin,system:masters\n`);

  const [client, peer, secure] = [await freePort(), await freePort(), await freePort()];
  start('etcd', 'etcd', [
    '--name', 'slt', '--data-dir', join(dir, 'etcd'),
    '--listen-client-urls', `http://127.0.0.1:${client}`, '--advertise-client-urls', `http://127.0.0.1:${client}`,
    '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-cluster', `slt=http://127.0.0.1:${peer}`, '--log-level', 'warn',
  ]);
  const pki = (f: string) => join(dir, 'pki', f);
  // Advertising loopback makes the `kubernetes` Endpoints sync fail (logged,
  // retried); nothing here needs that Service.
  start('apiserver', APISERVER, [
    `--etcd-servers=http://127.0.0.1:${client}`, '--bind-address=127.0.0.1', '--advertise-address=127.0.0.1', `--secure-port=${secure}`,
    `--tls-cert-file=${pki('apiserver.crt')}`, `--tls-private-key-file=${pki('apiserver.key')}`, `--client-ca-file=${pki('ca.crt')}`,
    `--token-auth-file=${pki('tokens.csv')}`, '--authorization-mode=RBAC', '--allow-privileged=true',
    '--service-cluster-ip-range=10.0.0.0/24', '--service-account-issuer=https://kubernetes.default.svc',
    `--service-account-key-file=${pki('sa.pub')}`, `--service-account-signing-key-file=${pki('sa.key')}`, '--profiling=false',
  ]);
  kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: `https://127.0.0.1:${secure}`, 'certificate-authority': pki('ca.crt') } }],
      users: [{ name: 'admin', user: { token: TOKEN } }],
      contexts: [{ name: 'c', context: { cluster: 'c', user: 'admin' } }],
      'current-context': 'c',
    }),
  );
  const deadline = Date.now() + 40_000;
  for (;;) {
    for (const p of procs) if (!alive(p)) throw new Error(`${p.spawnfile} exited (${p.exitCode ?? p.signalCode}):\n${readFileSync(join(dir, `${p.spawnfile === 'etcd' ? 'etcd' : 'apiserver'}.log`), 'utf8').slice(-3000)}`);
    if (kubectl(['get', '--raw', '/readyz']).status === 0 && kubectl(['get', 'namespace', 'kube-system']).status === 0) break;
    if (Date.now() > deadline) throw new Error(`kube-apiserver not ready after 40 s:\n${readFileSync(join(dir, 'apiserver.log'), 'utf8').slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}, 60_000);

afterAll(async () => {
  await stopAll();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 30_000);

const policy = (spec: unknown, name = 'p') => ({ apiVersion: 'sluice.dev/v1alpha1', kind: 'FQDNPolicy', metadata: { name, namespace: 'default' }, spec });

describe('kubectl apply -f deploy/', () => {
  it('passes a server-side dry run', () => {
    const out = kubectlOk(['apply', '--dry-run=server', '-f', join(ROOT, 'deploy')]);
    expect(out.trim().split('\n')).toEqual([
      'customresourcedefinition.apiextensions.k8s.io/fqdnpolicies.sluice.dev created (server dry run)',
      'serviceaccount/sluice created (server dry run)',
      'clusterrole.rbac.authorization.k8s.io/sluice created (server dry run)',
      'clusterrolebinding.rbac.authorization.k8s.io/sluice created (server dry run)',
      'daemonset.apps/sluice created (server dry run)',
    ]);
  });

  it('installs everything; the CRD is established; a second apply changes nothing', () => {
    kubectlOk(['apply', '-f', join(ROOT, 'deploy')]);
    kubectlOk(['wait', '--for=condition=Established', 'crd/fqdnpolicies.sluice.dev', '--timeout=30s']);
    const ds = JSON.parse(kubectlOk(['-n', 'kube-system', 'get', 'daemonset', 'sluice', '-o', 'json']));
    expect(ds.spec.template.spec.containers[0].image).toMatch(/^sluice\/sluice:/);
    const again = kubectlOk(['apply', '-f', join(ROOT, 'deploy')]);
    expect(again.trim().split('\n').every((l) => l.endsWith(' unchanged')), again).toBe(true);
  });

  it('gives the agent\'s service account exactly what it needs', () => {
    const can = (...args: string[]) => kubectl(['auth', 'can-i', ...args, `--as=${SA}`]).out.trim();
    for (const r of ['nodes', 'namespaces', 'pods', 'services', 'networkpolicies.networking.k8s.io', 'endpointslices.discovery.k8s.io', 'fqdnpolicies.sluice.dev']) {
      for (const verb of ['get', 'list', 'watch']) expect(can(verb, r), `${verb} ${r}`).toBe('yes');
      for (const verb of ['create', 'update', 'patch', 'delete']) expect(can(verb, r), `${verb} ${r}`).toBe('no');
    }
    for (const verb of ['update', 'patch']) expect(can(verb, 'fqdnpolicies.sluice.dev', '--subresource=status')).toBe('yes');
    for (const r of ['secrets', 'configmaps', 'serviceaccounts', 'events', 'leases.coordination.k8s.io']) {
      expect(can('get', r, '-A'), `get ${r}`).toBe('no');
      expect(can('list', r, '-A'), `list ${r}`).toBe('no');
    }
    expect(can('list', 'secrets', '-n', 'kube-system')).toBe('no');
  });
});

// [what, spec]: accepted by the API server and by the agent's parser.
const GOOD: Array<[string, unknown]> = [
  ['the PRODUCT example', { podSelector: { matchLabels: { app: 'builder' } }, dns: 'AllowAll', egress: [{ toFQDNs: [{ matchName: 'api.github.com' }, { matchPattern: '*.githubusercontent.com' }], ports: [{ port: 443, protocol: 'TCP' }] }] }],
  ['an empty selector and no egress (DNS only)', { podSelector: {} }],
  ['audit mode', { podSelector: {}, enforcement: 'Audit', egress: [{ toFQDNs: [{ matchName: 'a.test' }] }] }],
  ['MatchedOnly, ** and * alone, a trailing dot, upper case', { podSelector: {}, dns: 'MatchedOnly', egress: [{ toFQDNs: [{ matchPattern: '**.example.com' }, { matchPattern: '*' }, { matchName: 'API.Example.COM.' }, { matchPattern: '**.*' }, { matchPattern: 'a*b.*.test' }] }] }],
  ['port ranges, UDP and SCTP, and every port', { podSelector: {}, egress: [{ toFQDNs: [{ matchName: 'a.test' }], ports: [{ port: 1000, endPort: 2000 }, { port: 53, protocol: 'UDP' }, { port: 9, protocol: 'SCTP', endPort: 9 }] }, { toFQDNs: [{ matchName: 'b.test' }], ports: [] }] }],
  ['selector expressions and prefixed label keys', { podSelector: { matchLabels: { 'example.com/tier': 'web', empty: '' }, matchExpressions: [{ key: 'app', operator: 'In', values: ['a', 'b'] }, { key: 'x.io/y', operator: 'DoesNotExist' }, { key: 'z', operator: 'Exists', values: [] }] } }],
  ['a 253-character name and 63-character labels, _ and -', { podSelector: {}, egress: [{ toFQDNs: [{ matchName: `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}` }, { matchName: '_srv._tcp.my-host.test' }] }] }],
  ['the list bounds exactly', { podSelector: {}, egress: Array.from({ length: 128 }, (_, i) => ({ toFQDNs: Array.from({ length: i === 0 ? 256 : 1 }, (_, j) => ({ matchName: `n${j}.r${i}.test` })), ports: i === 0 ? Array.from({ length: 64 }, (_, k) => ({ port: k + 1 })) : undefined })) }],
];

// [what, spec, a fragment of the API server's message, whether the agent's parser rejects it too]
const BAD: Array<[string, unknown, RegExp, boolean]> = [
  ['no podSelector', { egress: [] }, /spec\.podSelector: Required value/, true],
  ['an unknown dns mode', { podSelector: {}, dns: 'Some' }, /spec\.dns: Unsupported value: "Some"/, true],
  ['an unknown field (kubectl validates strictly)', { podSelector: {}, mode: 'Audit' }, /unknown field "spec\.mode"/, true],
  ['an unknown enforcement', { podSelector: {}, enforcement: 'audit' }, /spec\.enforcement: Unsupported value: "audit"/, true],
  ['empty toFQDNs', { podSelector: {}, egress: [{ toFQDNs: [] }] }, /spec\.egress\[0\]\.toFQDNs: Invalid value: 0: .*at least 1 items/, true],
  ['no toFQDNs', { podSelector: {}, egress: [{ ports: [{ port: 1 }] }] }, /spec\.egress\[0\]\.toFQDNs: Required value/, true],
  ['both matchName and matchPattern', { podSelector: {}, egress: [{ toFQDNs: [{ matchName: 'a.test', matchPattern: '*.test' }] }] }, /set exactly one of matchName and matchPattern/, true],
  ['neither matchName nor matchPattern', { podSelector: {}, egress: [{ toFQDNs: [{}] }] }, /set exactly one of matchName and matchPattern/, true],
  ['a wildcard in matchName', { podSelector: {}, egress: [{ toFQDNs: [{ matchName: '*.test' }] }] }, /toFQDNs\[0\]\.matchName: Invalid value: "\*\.test": .*should match/, true],
  ['an empty label', { podSelector: {}, egress: [{ toFQDNs: [{ matchName: 'a..test' }] }] }, /matchName: Invalid value: "a\.\.test"/, true],
  ['a 64-character label', { podSelector: {}, egress: [{ toFQDNs: [{ matchPattern: `${'a'.repeat(64)}.test` }] }] }, /matchPattern: Invalid value: "a{64}\.test"/, true],
  ['a 254-character name', { podSelector: {}, egress: [{ toFQDNs: [{ matchName: `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(62)}` }] }] }, /a name has at most 253 characters/, true],
  ['odd characters', { podSelector: {}, egress: [{ toFQDNs: [{ matchName: 'a b.test' }] }] }, /matchName: Invalid value: "a b\.test"/, true],
  ['** inside a name', { podSelector: {}, egress: [{ toFQDNs: [{ matchPattern: 'a.**.test' }] }] }, /'\*\*' is only allowed as a whole leading label/, true],
  ['** as part of a label', { podSelector: {}, egress: [{ toFQDNs: [{ matchPattern: '**a.test' }] }] }, /'\*\*' is only allowed as a whole leading label/, true],
  ['*** as the first label', { podSelector: {}, egress: [{ toFQDNs: [{ matchPattern: '***.test' }] }] }, /'\*\*' is only allowed as a whole leading label/, true],
  ['** alone', { podSelector: {}, egress: [{ toFQDNs: [{ matchPattern: '**' }] }] }, /'\*\*' is only allowed as a whole leading label/, true],
  ['**. alone', { podSelector: {}, egress: [{ toFQDNs: [{ matchPattern: '**.' }] }] }, /'\*\*' is only allowed as a whole leading label/, true],
  ['port 0', { podSelector: {}, egress: [{ toFQDNs: [{ matchName: 'a.test' }], ports: [{ port: 0 }] }] }, /ports\[0\]\.port: Invalid value: 0: .*greater than or equal to 1/, true],
  ['port 65536', { podSelector: {}, egress: [{ toFQDNs: [{ matchName: 'a.test' }], ports: [{ port: 65536 }] }] }, /ports\[0\]\.port: Invalid value: 65536: .*less than or equal to 65535/, true],
  ['a named port', { podSelector: {}, egress: [{ toFQDNs: [{ matchName: 'a.test' }], ports: [{ port: 'https' }] }] }, /ports\[0\]\.port: Invalid value: "string": .*must be of type integer/, true],
  ['no port number', { podSelector: {}, egress: [{ toFQDNs: [{ matchName: 'a.test' }], ports: [{ protocol: 'UDP' }] }] }, /ports\[0\]\.port: Required value/, true],
  ['endPort below port', { podSelector: {}, egress: [{ toFQDNs: [{ matchName: 'a.test' }], ports: [{ port: 443, endPort: 80 }] }] }, /endPort must not be below port/, true],
  ['protocol ICMP', { podSelector: {}, egress: [{ toFQDNs: [{ matchName: 'a.test' }], ports: [{ port: 1, protocol: 'ICMP' }] }] }, /ports\[0\]\.protocol: Unsupported value: "ICMP"/, true],
  ['Exists with values', { podSelector: { matchExpressions: [{ key: 'a', operator: 'Exists', values: ['x'] }] } }, /In and NotIn need at least one value; Exists and DoesNotExist take none/, true],
  ['In without values', { podSelector: { matchExpressions: [{ key: 'a', operator: 'In' }] } }, /In and NotIn need at least one value/, true],
  ['an unknown operator', { podSelector: { matchExpressions: [{ key: 'a', operator: 'Gt', values: ['1'] }] } }, /operator: Unsupported value: "Gt"/, true],
  ['a bad label key', { podSelector: { matchLabels: { '-app': 'x' } } }, /every key must be a label key/, true],
  ['a bad label value', { podSelector: { matchLabels: { app: 'x y' } } }, /matchLabels\.app: Invalid value: "x y"/, true],
  ['a bad expression key', { podSelector: { matchExpressions: [{ key: 'Bad_Prefix/a', operator: 'Exists' }] } }, /matchExpressions\[0\]\.key: Invalid value/, true],
  ['129 egress rules', { podSelector: {}, egress: Array.from({ length: 129 }, () => ({ toFQDNs: [{ matchName: 'a.test' }] })) }, /spec\.egress: Too many: 129: must have at most 128 items/, false],
  ['257 names in a rule', { podSelector: {}, egress: [{ toFQDNs: Array.from({ length: 257 }, (_, i) => ({ matchName: `n${i}.test` })) }] }, /toFQDNs: Too many: 257: must have at most 256 items/, false],
  ['65 ports in a rule', { podSelector: {}, egress: [{ toFQDNs: [{ matchName: 'a.test' }], ports: Array.from({ length: 65 }, (_, i) => ({ port: i + 1 })) }] }, /ports: Too many: 65: must have at most 64 items/, false],
];

const parserAccepts = (spec: unknown): boolean => {
  try {
    parseFqdnPolicy({ metadata: { name: 'p', namespace: 'default' }, spec });
    return true;
  } catch {
    return false;
  }
};

describe('FQDNPolicy admission', () => {
  it.each(GOOD)('accepts %s (and so does the agent)', (_what, spec) => {
    const r = kubectl(['create', '--dry-run=server', '-o', 'json', '-f', '-'], JSON.stringify(policy(spec)));
    expect(r.status, r.err).toBe(0);
    expect(parserAccepts(spec)).toBe(true);
  });

  it.each(BAD)('rejects %s with a message naming it', (_what, spec, message, parserRejects) => {
    const r = kubectl(['create', '--dry-run=server', '-f', '-'], JSON.stringify(policy(spec)));
    expect(r.status, r.out).not.toBe(0);
    expect(r.err).toMatch(message);
    if (parserRejects) expect(parserAccepts(spec)).toBe(false);
  });

  it('stores defaults (dns AllowAll, protocol TCP); the status subresource is writable by the agent only through /status', () => {
    kubectlOk(['apply', '-f', '-'], JSON.stringify(policy({ podSelector: {}, egress: [{ toFQDNs: [{ matchName: 'a.test' }], ports: [{ port: 443 }] }] }, 'stored')));
    const stored = JSON.parse(kubectlOk(['-n', 'default', 'get', 'fqdnpolicy', 'stored', '-o', 'json']));
    expect(stored.spec.dns).toBe('AllowAll');
    expect(stored.spec.enforcement).toBe('Enforce');
    expect(stored.spec.egress[0].ports[0]).toEqual({ port: 443, protocol: 'TCP' });
    expect(parseFqdnPolicy(stored).dns).toBe('AllowAll');

    const condition = { type: 'Accepted', status: 'True', reason: 'Valid', message: 'programmed', lastTransitionTime: '2024-01-01T00:00:00Z', observedGeneration: stored.metadata.generation };
    // As the agent, with what RBAC gives it: update (PUT) of /status, not of the object.
    const path = '/apis/sluice.dev/v1alpha1/namespaces/default/fqdnpolicies/stored';
    const put = (uri: string, obj: unknown) => kubectl(['--as', SA, 'replace', '--raw', uri, '-f', '-'], JSON.stringify(obj));
    expect(put(path, { ...stored, status: { conditions: [condition] } }).err).toMatch(/forbidden/i);
    const updated = put(`${path}/status`, { ...stored, status: { conditions: [condition] } });
    expect(updated.status, updated.err).toBe(0);
    const table = kubectlOk(['-n', 'default', 'get', 'fqdnp', 'stored', '-o', 'wide']);
    expect(table).toMatch(/^NAME\s+ACCEPTED\s+ENFORCEMENT\s+REASON\s+MESSAGE\s+AGE\n/);
    expect(table).toMatch(/^stored\s+True\s+Enforce\s+Valid\s+programmed\s+/m);
    // The status is validated too.
    const current = JSON.parse(kubectlOk(['-n', 'default', 'get', 'fqdnpolicy', 'stored', '-o', 'json']));
    const bad = put(`${path}/status`, { ...current, status: { conditions: [{ ...condition, status: 'Yes' }] } });
    expect(bad.status).not.toBe(0);
    expect(bad.err).toMatch(/Unsupported value: "Yes"/);
  });
});
