// A real Kubernetes cluster on this one machine, for tests of the CNI:
//
//   host netns   bridge slk8s0 10.200.0.1/24, etcd (127.0.0.1:23790), kube-apiserver
//                (10.200.0.1:6443), kube-controller-manager, kube-scheduler
//   slk8s-nN     one network namespace per node (veth eth0 10.200.0.1N on the bridge,
//                ip_forward on, no default route) AND one mount namespace per node (a
//                holder process made by `unshare --mount --propagation slave`) where
//                per-node directories are bind-mounted over the node paths a CNI uses
//                (/etc/cni/net.d, /opt/cni/bin, /var/lib/cni, /var/lib/sluice, /run/sluice,
//                /var/lib/kubelet, /var/log/pods, /var/log/containers, /run/netns,
//                /run/containerd) and a fresh bpffs is mounted on /sys/fs/bpf; the node's
//                containerd, kubelet and kube-proxy run in both namespaces, so a
//                DaemonSet's hostPath mounts land in its own node.
//
// Pod CIDRs are set by the harness (node N: 10.244.N.0/24), Services are
// 10.96.0.0/16 (kube-dns 10.96.0.10). Nothing can leave the machine: nodes and
// pods have no default route, the host has `unreachable` routes for the pod
// and service ranges (plus one route per node's pod CIDR), an iptables guard
// drops anything forwarded to the default-route device and anything arriving
// there for the node network, and CoreDNS has no upstream.
//
// Everything created is recorded in a ledger (ledger.ts) and undone by
// stop(), on SIGINT/SIGTERM, on exit, or by the next start / `cluster-cli
// down` if this process died without cleaning up.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { coreDnsManifests } from './coredns.js';
import { PAUSE_IMAGE, clusterImages } from './images.js';
import { Ledger, cgroupMounts, cgroupProcs, mntnsOf, mntnsProcs, mountsUnder, sleepSync, startTime, STATE_DIR } from './ledger.js';
import { REFERENCE_CNI_DIR, bin, requireBinaries } from './paths.js';

export const CLUSTER_NAME = 'slk8s';
export const BRIDGE = 'slk8s0';
export const BRIDGE_IP = '10.200.0.1';
export const NODE_NET = '10.200.0.0/24';
export const POD_NET = '10.244.0.0/16';
export const SERVICE_NET = '10.96.0.0/16';
export const API_SERVICE_IP = '10.96.0.1';
export const DNS_SERVICE_IP = '10.96.0.10';
export const CLUSTER_DOMAIN = 'cluster.local';
export const API_PORT = 6443;
const ETCD_CLIENT_PORT = 23790;
const ETCD_PEER_PORT = 23800;

/** Sysctls kubelet sets on start (protectKernelDefaults: false); saved before, restored after. */
const KUBELET_SYSCTLS = ['kernel.panic', 'kernel.panic_on_oops', 'vm.overcommit_memory', 'vm.panic_on_oom', 'kernel.keys.root_maxkeys', 'kernel.keys.root_maxbytes'];

/** Node paths, as a node's processes see them, each backed by a per-node directory. */
export const NODE_PATHS = {
  cniConf: '/etc/cni/net.d',
  cniBin: '/opt/cni/bin',
  cniState: '/var/lib/cni',
  sluiceLib: '/var/lib/sluice',
  sluiceRun: '/run/sluice',
  kubelet: '/var/lib/kubelet',
  podLogs: '/var/log/pods',
  containerLogs: '/var/log/containers',
  netns: '/run/netns',
  containerdRun: '/run/containerd',
} as const;
export type NodePath = keyof typeof NODE_PATHS;

export type CniMode = 'bridge' | 'none';

export interface ClusterOptions {
  /** Number of nodes (default 2). */
  nodes?: number;
  /** 'bridge': the reference plugins (bridge, host-local, loopback, portmap) and a conflist per node; 'none': no network (the CNI under test installs itself). */
  cni?: CniMode;
  /** With cni 'none', still put the `loopback` plugin in each node's bin dir (containerd needs it for every pod; default true). */
  cniLoopback?: boolean;
  /** Routes between the nodes' pod CIDRs in every node netns (default true; false when the CNI under test owns them). */
  podRoutes?: boolean;
  /** --v of the Kubernetes components (default 2). */
  verbosity?: number;
  /** How long bring-up may take (default 120 s). */
  timeoutMs?: number;
  log?: (msg: string) => void;
}

export interface NodeInfo {
  name: string;
  /** Index, 1-based. */
  index: number;
  netns: string;
  netnsPath: string;
  /** Address on the node network (kubelet --node-ip). */
  ip: string;
  podCidr: string;
  /** The process holding the node's mount namespace: nsenter --mount=/proc/HOLDER/ns/mnt. */
  holderPid: number;
  mntns: string;
  /** Kubelet's cgroupRoot (relative to each cgroup hierarchy). */
  cgroupRoot: string;
  containerdSocket: string;
  /** Host paths of the directories bind-mounted over NODE_PATHS inside the node. */
  dirs: Record<NodePath, string> & { root: string };
}

export interface KubectlOptions {
  input?: string;
  timeoutMs?: number;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

// ------------------------------------------------------------------ helpers

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function sh(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', input: opts.input, stdio: ['pipe', 'pipe', 'pipe'], timeout: opts.timeoutMs ?? 30_000 });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(e.stderr || e.stdout || e.message).trim()}`);
  }
}

/** Runs a command asynchronously; never throws (the code says how it went). */
export function run(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { encoding: 'utf8', timeout: opts.timeoutMs ?? 60_000, maxBuffer: 256 << 20, env: opts.env ?? process.env, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: number | string; killed?: boolean }) | null;
      let code = 0;
      if (e) code = typeof e.code === 'number' ? e.code : -1;
      resolve({ code, stdout, stderr: e && code === -1 && !stderr ? e.message : stderr });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

/**
 * Polls `fn` until it returns a value other than undefined/false/null, or
 * throws after `timeoutMs` with what it waited for and the last error.
 */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | null | false> | T | undefined | null | false, opts: { timeoutMs?: number; intervalMs?: number } = {}): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== null && v !== false) return v;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last}` : ''}`);
    await sleep(opts.intervalMs ?? 250);
  }
}

function readSysctl(key: string): string {
  return readFileSync(`/proc/sys/${key.replaceAll('.', '/')}`, 'utf8').trim();
}

function defaultRouteDevices(): string[] {
  const routes = JSON.parse(sh('ip', ['-j', 'route', 'show', 'default'])) as Array<{ dev?: string }>;
  return [...new Set(routes.map((r) => r.dev).filter((d): d is string => !!d))];
}

function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

// ------------------------------------------------------------------ PKI

interface Pki {
  dir: string;
  caCert: string;
  caKey: string;
  tokens: Record<string, string>;
}

function openssl(args: string[], dir: string): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
}

/** A cert signed by the cluster CA (EC P-256). */
function signCert(pki: Pki, name: string, subject: string, ext: string): void {
  const d = pki.dir;
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`], d);
  openssl(['req', '-new', '-key', `${name}.key`, '-subj', subject, '-out', `${name}.csr`], d);
  writeFileSync(join(d, `${name}.ext`), ext);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '7', '-sha256', '-extfile', `${name}.ext`, '-out', `${name}.crt`], d);
}

function makePki(dir: string, nodeNames: string[]): Pki {
  mkdirSync(dir, { recursive: true });
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key'], dir);
  openssl(['req', '-x509', '-new', '-key', 'ca.key', '-subj', '/CN=slk8s-ca', '-days', '7', '-sha256', '-out', 'ca.crt'], dir);
  const pki: Pki = { dir, caCert: join(dir, 'ca.crt'), caKey: join(dir, 'ca.key'), tokens: {} };
  const sans = ['DNS:kubernetes', 'DNS:kubernetes.default', 'DNS:kubernetes.default.svc', `DNS:kubernetes.default.svc.${CLUSTER_DOMAIN}`, 'DNS:localhost', `IP:${API_SERVICE_IP}`, `IP:${BRIDGE_IP}`, 'IP:127.0.0.1'];
  signCert(pki, 'apiserver', '/CN=kube-apiserver', `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=${sans.join(',')}\n`);
  // What kube-apiserver shows kubelet for logs/exec; kubelet trusts the CA.
  signCert(pki, 'apiserver-kubelet-client', '/O=system:masters/CN=kube-apiserver-kubelet-client', 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n');
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'sa.key'], dir);
  openssl(['ec', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir);
  const users: Array<[string, string, string]> = [
    ['admin', 'admin', 'system:masters'],
    ['kube-controller-manager', 'system:kube-controller-manager', ''],
    ['kube-scheduler', 'system:kube-scheduler', ''],
    ['kube-proxy', 'system:kube-proxy', ''],
    ...nodeNames.map((n): [string, string, string] => [n, `system:node:${n}`, 'system:nodes']),
  ];
  const lines: string[] = [];
  for (const [id, user, groups] of users) {
    const token = randomBytes(24).toString('hex');
    pki.tokens[id] = token;
    lines.push(`${token},${user},${id}${groups ? `,"${groups}"` : ''}`);
  }
  writeFileSync(join(dir, 'tokens.csv'), `${lines.join('\n')}\n`, { mode: 0o600 });
  return pki;
}

function kubeconfig(pki: Pki, user: string, server = `https://${BRIDGE_IP}:${API_PORT}`): string {
  const ca = readFileSync(pki.caCert).toString('base64');
  return JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: CLUSTER_NAME, cluster: { server, 'certificate-authority-data': ca } }],
      users: [{ name: user, user: { token: pki.tokens[user] } }],
      contexts: [{ name: CLUSTER_NAME, context: { cluster: CLUSTER_NAME, user } }],
      'current-context': CLUSTER_NAME,
    },
    null,
    1,
  );
}

// ------------------------------------------------------------------ the cluster

interface Proc {
  name: string;
  child: ChildProcess;
  logFile: string;
  exit?: string;
}

export class Cluster {
  readonly dir: string;
  readonly kubeconfig: string;
  readonly nodes: NodeInfo[] = [];
  readonly opts: Required<Omit<ClusterOptions, 'log'>> & { log: (msg: string) => void };
  readonly logDir: string;
  /** Milliseconds from start() to a usable cluster. */
  bringUpMs = 0;
  /** Where the logs went when stop() kept them (outside the removed temp dir). */
  keptLogDir: string | undefined;
  #ledger: Ledger;
  #pki!: Pki;
  #procs: Proc[] = [];
  #stopped = false;
  #stopping = false;
  #keepLogs = false;
  #signalHandlers: Array<[NodeJS.Signals | 'exit', (...a: unknown[]) => void]> = [];

  private constructor(opts: ClusterOptions) {
    this.opts = {
      nodes: opts.nodes ?? 2,
      cni: opts.cni ?? 'bridge',
      cniLoopback: opts.cniLoopback ?? true,
      podRoutes: opts.podRoutes ?? true,
      verbosity: opts.verbosity ?? 2,
      timeoutMs: opts.timeoutMs ?? 120_000,
      log: opts.log ?? ((m) => console.log(`[k8s] ${m}`)),
    };
    if (this.opts.nodes < 1 || this.opts.nodes > 9) throw new Error('nodes: 1..9');
    this.dir = mkdtempSync(join(tmpdir(), `${CLUSTER_NAME}-`));
    this.logDir = join(this.dir, 'logs');
    mkdirSync(this.logDir);
    this.kubeconfig = join(this.dir, 'admin.kubeconfig');
    this.#ledger = Ledger.create(CLUSTER_NAME, this.dir);
    this.#ledger.add({ kind: 'tree', path: this.dir });
  }

  /**
   * Brings up the control plane and the nodes; resolves when every node is
   * registered with its pod CIDR (and Ready, with cni 'bridge'), and the
   * default ServiceAccount exists. On failure everything is undone and the
   * error names the logs (kept in a directory that is printed).
   */
  static async start(opts: ClusterOptions = {}): Promise<Cluster> {
    requireBinaries();
    if (process.getuid?.() !== 0) throw new Error('the k8s test cluster needs root');
    sweepStale(opts.log ?? ((m) => console.log(`[k8s] ${m}`)));
    if (existsSync(`/sys/class/net/${BRIDGE}`)) throw new Error(`${BRIDGE} exists but no cluster state does: remove it (ip link del ${BRIDGE}) or find who made it`);
    const t0 = Date.now();
    const images = clusterImages(); // cached after the first build; not part of bring-up proper
    const cluster = new Cluster(opts);
    cluster.#installSignalHandlers();
    try {
      await cluster.#bringUp(images);
      cluster.bringUpMs = Date.now() - t0;
      cluster.opts.log(`cluster up in ${(cluster.bringUpMs / 1000).toFixed(1)} s: KUBECONFIG=${cluster.kubeconfig}`);
      return cluster;
    } catch (err) {
      const msg = `${(err as Error).message}\n${cluster.describeProcesses(15)}`;
      cluster.stop({ keepLogs: true });
      throw new Error(`k8s cluster bring-up failed: ${cluster.keptLogDir ? msg.replaceAll(cluster.logDir, cluster.keptLogDir) : msg}`);
    }
  }

  // ---------------------------------------------------------------- bring-up

  async #bringUp(images: Array<{ ref: string; archive: string }>): Promise<void> {
    const n = this.opts.nodes;
    const L = this.#ledger;
    const deadline = Date.now() + this.opts.timeoutMs;
    const left = () => Math.max(1_000, deadline - Date.now());
    const nodeNames = Array.from({ length: n }, (_, i) => `${CLUSTER_NAME}-n${i + 1}`);
    L.setInfo('kubeconfig', this.kubeconfig);
    L.setInfo('nodes', nodeNames);

    // Sysctls kubelet will change: restored last.
    for (const key of KUBELET_SYSCTLS) if (existsSync(`/proc/sys/${key.replaceAll('.', '/')}`)) L.add({ kind: 'sysctl', key, value: readSysctl(key) });

    // --- host network: bridge, guard, unreachable ranges
    for (const dev of defaultRouteDevices()) {
      this.#iptables('mangle', ['FORWARD', '-o', dev, '-m', 'comment', '--comment', `${CLUSTER_NAME}-guard`, '-j', 'DROP']);
      this.#iptables('mangle', ['PREROUTING', '-i', dev, '-d', NODE_NET, '-m', 'comment', '--comment', `${CLUSTER_NAME}-guard`, '-j', 'DROP']);
    }
    for (const range of [POD_NET, SERVICE_NET]) {
      sh('ip', ['route', 'add', 'unreachable', range]);
      L.add({ kind: 'route', args: ['unreachable', range] });
    }
    sh('ip', ['link', 'add', BRIDGE, 'type', 'bridge']);
    L.add({ kind: 'link', name: BRIDGE });
    sh('ip', ['addr', 'add', `${BRIDGE_IP}/24`, 'dev', BRIDGE]);
    sh('ip', ['link', 'set', BRIDGE, 'up']);

    // --- PKI, kubeconfigs
    this.#pki = makePki(join(this.dir, 'pki'), nodeNames);
    writeFileSync(this.kubeconfig, kubeconfig(this.#pki, 'admin'), { mode: 0o600 });
    for (const u of ['kube-controller-manager', 'kube-scheduler', 'kube-proxy', ...nodeNames]) writeFileSync(join(this.dir, `${u}.kubeconfig`), kubeconfig(this.#pki, u), { mode: 0o600 });

    // --- control plane
    this.#startEtcd();
    this.#startApiserver();

    // --- nodes (namespaces, containerd, images) while the apiserver starts
    for (const [i, name] of nodeNames.entries()) this.nodes.push(this.#prepareNode(name, i + 1));
    await Promise.all(this.nodes.map((node) => this.#startContainerd(node, images, left())));

    await waitFor('kube-apiserver /readyz', async () => (await this.#apiGet('/readyz')) === 200, { timeoutMs: left(), intervalMs: 200 });
    this.#startControllerManager();
    this.#startScheduler();
    for (const node of this.nodes) {
      this.#startKubelet(node);
      this.#startKubeProxy(node);
    }

    // --- pod CIDRs: set as each Node registers, then the routes
    await Promise.all(
      this.nodes.map(async (node) => {
        await waitFor(`node ${node.name} to register`, async () => (await this.kubectl(['get', 'node', node.name, '-o', 'name'], { timeoutMs: 10_000 })).includes(node.name), { timeoutMs: left() });
        await this.kubectl(['patch', 'node', node.name, '--type', 'merge', '-p', JSON.stringify({ spec: { podCIDR: node.podCidr, podCIDRs: [node.podCidr] } })]);
      }),
    );
    this.#hostPodRoutes();
    if (this.opts.podRoutes) this.installPodRoutes();

    // --- usable: nodes Ready (with a network), default ServiceAccount and root CA published
    if (this.opts.cni === 'bridge') await this.waitNodesReady(left());
    await waitFor('the default ServiceAccount and kube-root-ca.crt', async () => {
      const sa = await this.kubectl(['get', 'serviceaccount', 'default', '-n', 'default', '-o', 'name'], { timeoutMs: 10_000 });
      const cm = await this.kubectl(['get', 'configmap', 'kube-root-ca.crt', '-n', 'default', '-o', 'name'], { timeoutMs: 10_000 });
      return sa.includes('default') && cm.includes('kube-root-ca.crt');
    }, { timeoutMs: left() });
  }

  #iptables(table: string, args: string[]): void {
    sh('iptables', ['-w', '5', '-t', table, '-I', ...args]);
    this.#ledger.add({ kind: 'iptables', table, args });
  }

  /** Starts a process with its output in logs/NAME.log; recorded in the ledger by PID and start time. */
  #spawn(name: string, cmd: string, args: string[], opts: { node?: NodeInfo; termMs?: number; env?: NodeJS.ProcessEnv } = {}): Proc {
    const logFile = join(this.logDir, `${name}.log`);
    const fd = openSync(logFile, 'a');
    const argv = opts.node ? ['nsenter', `--mount=/proc/${opts.node.holderPid}/ns/mnt`, `--net=${opts.node.netnsPath}`, '--', cmd, ...args] : [cmd, ...args];
    let child: ChildProcess;
    try {
      child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', fd, fd], detached: true, env: opts.env ?? process.env });
    } finally {
      closeSync(fd);
    }
    const start = child.pid === undefined ? undefined : startTime(child.pid);
    if (child.pid === undefined || start === undefined) throw new Error(`${name} did not start (see ${logFile})`);
    this.#ledger.add({ kind: 'process', name, pid: child.pid, start, termMs: opts.termMs ?? 3_000 });
    const proc: Proc = { name, child, logFile };
    child.on('exit', (code, signal) => {
      proc.exit = signal ? `killed by ${signal}` : `exited ${code}`;
      if (!this.#stopping) this.opts.log(`${name} ${proc.exit} (log: ${logFile})`);
    });
    this.#procs.push(proc);
    return proc;
  }

  #startEtcd(): void {
    const data = join(this.dir, 'etcd');
    this.#spawn('etcd', 'etcd', [
      '--name', CLUSTER_NAME,
      '--data-dir', data,
      '--listen-client-urls', `http://127.0.0.1:${ETCD_CLIENT_PORT}`,
      '--advertise-client-urls', `http://127.0.0.1:${ETCD_CLIENT_PORT}`,
      '--listen-peer-urls', `http://127.0.0.1:${ETCD_PEER_PORT}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${ETCD_PEER_PORT}`,
      '--initial-cluster', `${CLUSTER_NAME}=http://127.0.0.1:${ETCD_PEER_PORT}`,
      '--initial-cluster-state', 'new',
      '--snapshot-count', '10000',
      '--log-level', 'warn',
    ], { termMs: 2_000 });
  }

  #startApiserver(): void {
    const p = this.#pki.dir;
    this.#spawn('kube-apiserver', bin('kube-apiserver'), [
      `--etcd-servers=http://127.0.0.1:${ETCD_CLIENT_PORT}`,
      `--bind-address=${BRIDGE_IP}`,
      `--advertise-address=${BRIDGE_IP}`,
      `--secure-port=${API_PORT}`,
      `--tls-cert-file=${p}/apiserver.crt`,
      `--tls-private-key-file=${p}/apiserver.key`,
      `--client-ca-file=${p}/ca.crt`,
      `--token-auth-file=${p}/tokens.csv`,
      '--authorization-mode=Node,RBAC',
      '--enable-admission-plugins=NodeRestriction',
      '--allow-privileged=true',
      `--service-cluster-ip-range=${SERVICE_NET}`,
      `--service-account-issuer=https://kubernetes.default.svc.${CLUSTER_DOMAIN}`,
      `--service-account-key-file=${p}/sa.pub`,
      `--service-account-signing-key-file=${p}/sa.key`,
      `--kubelet-client-certificate=${p}/apiserver-kubelet-client.crt`,
      `--kubelet-client-key=${p}/apiserver-kubelet-client.key`,
      '--kubelet-preferred-address-types=InternalIP',
      '--profiling=false',
      '--event-ttl=30m',
      `--v=${Math.min(this.opts.verbosity, 1)}`,
    ], { termMs: 3_000 });
  }

  /**
   * kube-apiserver killed (SIGKILL, as in a crash), down for `downMs`, then
   * started again; resolves once it answers /readyz. Etcd keeps the state.
   */
  async restartApiserver(downMs: number, timeoutMs = 60_000): Promise<void> {
    const proc = this.#procs.find((p) => p.name === 'kube-apiserver' && p.exit === undefined);
    if (proc) {
      // Off the list first: an exit the test asked for is not a dead component.
      this.#procs = this.#procs.filter((p) => p !== proc);
      const exited = new Promise((r) => proc.child.once('exit', r));
      proc.child.kill('SIGKILL');
      await exited;
    }
    await sleep(downMs);
    this.#startApiserver();
    await waitFor('kube-apiserver /readyz', async () => (await this.#apiGet('/readyz')) === 200, { timeoutMs, intervalMs: 200 });
  }

  #startControllerManager(): void {
    const p = this.#pki.dir;
    this.#spawn('kube-controller-manager', bin('kube-controller-manager'), [
      `--kubeconfig=${join(this.dir, 'kube-controller-manager.kubeconfig')}`,
      `--authentication-kubeconfig=${join(this.dir, 'kube-controller-manager.kubeconfig')}`,
      `--authorization-kubeconfig=${join(this.dir, 'kube-controller-manager.kubeconfig')}`,
      '--use-service-account-credentials=true',
      `--service-account-private-key-file=${p}/sa.key`,
      `--root-ca-file=${p}/ca.crt`,
      // The harness sets each Node's podCIDR itself (deterministic: node N gets 10.244.N.0/24).
      '--allocate-node-cidrs=false',
      `--cluster-cidr=${POD_NET}`,
      `--service-cluster-ip-range=${SERVICE_NET}`,
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      '--secure-port=0',
      `--v=${Math.min(this.opts.verbosity, 1)}`,
    ]);
  }

  #startScheduler(): void {
    this.#spawn('kube-scheduler', bin('kube-scheduler'), [
      `--kubeconfig=${join(this.dir, 'kube-scheduler.kubeconfig')}`,
      `--authentication-kubeconfig=${join(this.dir, 'kube-scheduler.kubeconfig')}`,
      `--authorization-kubeconfig=${join(this.dir, 'kube-scheduler.kubeconfig')}`,
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      '--secure-port=0',
      `--v=${Math.min(this.opts.verbosity, 1)}`,
    ]);
  }

  /** Namespaces, cgroups, mounts of one node (synchronous; containerd comes after). */
  #prepareNode(name: string, index: number): NodeInfo {
    const L = this.#ledger;
    const root = join(this.dir, name);
    const dirs = { root } as NodeInfo['dirs'];
    for (const key of Object.keys(NODE_PATHS) as NodePath[]) {
      dirs[key] = join(root, 'fs', key);
      mkdirSync(dirs[key], { recursive: true });
    }
    const node: NodeInfo = {
      name,
      index,
      netns: name,
      netnsPath: `/run/netns/${name}`,
      ip: `10.200.0.${10 + index}`,
      podCidr: `10.244.${index}.0/24`,
      holderPid: 0,
      mntns: '',
      cgroupRoot: `/${name}`,
      containerdSocket: join(root, 'containerd.sock'),
      dirs,
    };

    // Kubelet's cgroupRoot, in every v1 hierarchy (cpuset needs cpus and mems to take tasks).
    L.add({ kind: 'cgroup', path: node.cgroupRoot });
    for (const m of cgroupMounts().filter((c) => c.fstype === 'cgroup')) {
      const d = join(m.path, node.cgroupRoot);
      if (!existsSync(d)) mkdirSync(d);
      if (m.options.split(',').includes('cpuset')) {
        for (const f of ['cpuset.cpus', 'cpuset.mems']) writeFileSync(join(d, f), readFileSync(join(m.path, f)));
      }
    }

    // Network namespace with a veth onto the bridge; no default route.
    sh('ip', ['netns', 'add', node.netns]);
    L.add({ kind: 'netns', name: node.netns });
    const hostIf = `${CLUSTER_NAME}-v${index}`;
    sh('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', node.netns]);
    L.add({ kind: 'link', name: hostIf });
    sh('ip', ['link', 'set', hostIf, 'master', BRIDGE, 'up']);
    const inNs = (args: string[]) => sh('ip', ['-n', node.netns, ...args]);
    inNs(['link', 'set', 'lo', 'up']);
    inNs(['addr', 'add', `${node.ip}/24`, 'dev', 'eth0']);
    inNs(['link', 'set', 'eth0', 'up']);
    // The node's own (hostNetwork) traffic to a ClusterIP is routed before
    // kube-proxy's OUTPUT DNAT: a real node's default route serves; here a
    // route for the service range only (the host drops what is not DNATed).
    inNs(['route', 'add', SERVICE_NET, 'via', BRIDGE_IP, 'dev', 'eth0']);
    sh('nsenter', [`--net=${node.netnsPath}`, 'sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.bridge.bridge-nf-call-iptables=1']);

    // Mount points must exist on the host; make only the missing ones (removed again while empty).
    for (const target of [...Object.values(NODE_PATHS), '/sys/fs/bpf']) {
      let cur = '';
      for (const part of target.split('/').filter(Boolean)) {
        cur = `${cur}/${part}`;
        if (!existsSync(cur)) {
          mkdirSync(cur);
          L.add({ kind: 'dir', path: cur });
        }
      }
    }

    // The node's mount namespace: a holder process, then binds and a fresh bpffs inside it.
    const holder = spawn('unshare', ['--mount', '--propagation', 'slave', '--', 'sleep', 'infinity'], { stdio: 'ignore', detached: true });
    const hstart = holder.pid === undefined ? undefined : startTime(holder.pid);
    if (holder.pid === undefined || hstart === undefined) throw new Error('unshare --mount did not start');
    L.add({ kind: 'process', name: `${name}-holder`, pid: holder.pid, start: hstart, termMs: 0 });
    node.holderPid = holder.pid;
    const hostMntns = mntnsOf(process.pid);
    const t = Date.now();
    while (mntnsOf(holder.pid) === hostMntns && Date.now() - t < 5_000) sleepSync(20);
    node.mntns = mntnsOf(holder.pid) ?? '';
    if (!node.mntns || node.mntns === hostMntns) throw new Error(`${name}: the holder did not get its own mount namespace`);
    // Whatever the node's daemons start (shims, CNI plugins) dies with it; so do the pods (cgroupRoot).
    L.add({ kind: 'mntns-procs', name, mntns: node.mntns, marker: this.dir });
    L.add({ kind: 'cgroup-procs', path: node.cgroupRoot });
    // A host mount already on a target (the host's /run/netns with every netns
    // in it, a host bpffs) is detached from this namespace first: the node must
    // not hold other namespaces alive, nor see the host's pins.
    const detach = (t: string) => `while mountpoint -q '${t}'; do umount -l '${t}'; done`;
    const script = [
      'set -e',
      // As on a systemd host, where / is shared: a DaemonSet's mountPropagation needs it (this VM's / is private).
      'mount --make-rshared /',
      ...(Object.keys(NODE_PATHS) as NodePath[]).map((k) => `${detach(NODE_PATHS[k])}; mount --bind '${dirs[k]}' '${NODE_PATHS[k]}'; mount --make-shared '${NODE_PATHS[k]}'`),
      `${detach('/sys/fs/bpf')}; mount -t bpf bpf /sys/fs/bpf; mount --make-shared /sys/fs/bpf`,
    ].join('\n');
    sh('nsenter', [`--mount=/proc/${holder.pid}/ns/mnt`, '--', 'sh', '-c', script]);

    // CNI: the reference plugins and a conflist for 'bridge'; loopback only (containerd's own need) for 'none'.
    const plugins = this.opts.cni === 'bridge' ? ['bridge', 'host-local', 'loopback', 'portmap'] : this.opts.cniLoopback ? ['loopback'] : [];
    for (const p of plugins) {
      if (!existsSync(join(REFERENCE_CNI_DIR, p))) throw new Error(`${REFERENCE_CNI_DIR}/${p} missing: apt-get install containernetworking-plugins`);
      copyFileSync(join(REFERENCE_CNI_DIR, p), join(dirs.cniBin, p));
      execFileSync('chmod', ['0755', join(dirs.cniBin, p)]);
    }
    if (this.opts.cni === 'bridge') writeFileSync(join(dirs.cniConf, '10-slk8s-bridge.conflist'), JSON.stringify(bridgeConflist(node.podCidr), null, 2));
    return node;
  }

  async #startContainerd(node: NodeInfo, images: Array<{ ref: string; archive: string }>, timeoutMs: number): Promise<void> {
    const root = node.dirs.root;
    // Inside the node, the default address works too (ctr, crictl, kubelet's cadvisor).
    symlinkSync(node.containerdSocket, join(node.dirs.containerdRun, 'containerd.sock'));
    const config = join(root, 'containerd.toml');
    writeFileSync(config, containerdConfig(node, root));
    this.#spawn(`${node.name}-containerd`, 'containerd', ['--config', config], { node, termMs: 3_000 });
    await waitFor(`${node.name} containerd`, async () => existsSync(node.containerdSocket) && (await this.ctr(node, ['version'])).code === 0, { timeoutMs, intervalMs: 100 });
    for (const img of images) {
      const r = await this.ctr(node, ['images', 'import', img.archive], { timeoutMs: 120_000 });
      if (r.code !== 0) throw new Error(`${node.name}: ctr images import ${img.archive}: ${r.stderr || r.stdout}`);
    }
  }

  #startKubelet(node: NodeInfo): void {
    const config = join(node.dirs.root, 'kubelet.yaml');
    writeFileSync(config, JSON.stringify(kubeletConfig(node, this.#pki), null, 1));
    this.#spawn(`${node.name}-kubelet`, bin('kubelet'), [
      `--config=${config}`,
      `--kubeconfig=${join(this.dir, `${node.name}.kubeconfig`)}`,
      `--hostname-override=${node.name}`,
      `--node-ip=${node.ip}`,
      `--v=${this.opts.verbosity}`,
    ], { node, termMs: 3_000 });
  }

  #startKubeProxy(node: NodeInfo): void {
    // kube-proxy exits when its config file is rewritten (even unchanged): written once, here.
    const config = join(node.dirs.root, 'kube-proxy.yaml');
    writeFileSync(config, JSON.stringify(kubeProxyConfig(node, join(this.dir, 'kube-proxy.kubeconfig')), null, 1));
    this.#spawn(`${node.name}-kube-proxy`, bin('kube-proxy'), [`--config=${config}`, `--v=${this.opts.verbosity}`], { node, termMs: 2_000 });
  }

  /** Host routes to each node's pod CIDR via the node: replies from the control plane to pods. */
  #hostPodRoutes(): void {
    for (const node of this.nodes) {
      sh('ip', ['route', 'replace', node.podCidr, 'via', node.ip, 'dev', BRIDGE]);
      this.#ledger.add({ kind: 'route', args: [node.podCidr, 'via', node.ip, 'dev', BRIDGE] });
    }
  }

  /**
   * Direct routing between nodes: in each node netns, a route to every other
   * node's pod CIDR via that node's address on the bridge. Idempotent. The
   * CNI under test may own this instead (start with podRoutes: false).
   */
  installPodRoutes(): void {
    for (const node of this.nodes) {
      for (const peer of this.nodes) {
        if (peer === node) continue;
        sh('ip', ['-n', node.netns, 'route', 'replace', peer.podCidr, 'via', peer.ip, 'dev', 'eth0']);
      }
    }
  }

  removePodRoutes(): void {
    for (const node of this.nodes) {
      for (const peer of this.nodes) {
        if (peer === node) continue;
        try {
          sh('ip', ['-n', node.netns, 'route', 'del', peer.podCidr, 'via', peer.ip, 'dev', 'eth0']);
        } catch {
          // not there
        }
      }
    }
  }

  // ---------------------------------------------------------------- API helpers

  #apiGet(path: string): Promise<number> {
    return new Promise((resolve) => {
      const req = request(
        { host: BRIDGE_IP, port: API_PORT, path, method: 'GET', ca: readFileSync(this.#pki.caCert), headers: { authorization: `Bearer ${this.#pki.tokens.admin}` }, timeout: 2_000 },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', () => resolve(0));
      req.on('timeout', () => req.destroy());
      req.end();
    });
  }

  /** kubectl with the admin kubeconfig; resolves with stdout, rejects with stderr. */
  async kubectl(args: string[], opts: KubectlOptions = {}): Promise<string> {
    const r = await this.kubectlResult(args, opts);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${(r.stderr || r.stdout).trim()}`);
    return r.stdout;
  }

  kubectlResult(args: string[], opts: KubectlOptions = {}): Promise<ExecResult> {
    return run(bin('kubectl'), args, { input: opts.input, timeoutMs: opts.timeoutMs ?? 60_000, env: { ...process.env, KUBECONFIG: this.kubeconfig } });
  }

  async kubectlJson<T = unknown>(args: string[], opts: KubectlOptions = {}): Promise<T> {
    return JSON.parse(await this.kubectl([...args, '-o', 'json'], opts)) as T;
  }

  /** kubectl apply of objects (one, an array, or a v1 List) or YAML/JSON text. */
  async apply(manifest: string | object | object[], opts: KubectlOptions = {}): Promise<string> {
    const input = typeof manifest === 'string' ? manifest : JSON.stringify(Array.isArray(manifest) ? { apiVersion: 'v1', kind: 'List', items: manifest } : manifest);
    return this.kubectl(['apply', '-f', '-'], { ...opts, input });
  }

  /** `kubectl exec POD -- CMD…`; rejects on a non-zero exit. `pod` may be "ns/name". */
  async exec(pod: string, cmd: string[], opts: { container?: string; timeoutMs?: number } = {}): Promise<string> {
    const r = await this.execResult(pod, cmd, opts);
    if (r.code !== 0) throw new Error(`exec in ${pod}: ${cmd.join(' ')} exited ${r.code}: ${(r.stderr || r.stdout).trim()}`);
    return r.stdout;
  }

  execResult(pod: string, cmd: string[], opts: { container?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
    const [ns, name] = splitPod(pod);
    return this.kubectlResult(['exec', '-n', ns, name, ...(opts.container ? ['-c', opts.container] : []), '--', ...cmd], { timeoutMs: opts.timeoutMs ?? 30_000 });
  }

  logs(pod: string, opts: { container?: string } = {}): Promise<string> {
    const [ns, name] = splitPod(pod);
    return this.kubectl(['logs', '-n', ns, name, ...(opts.container ? ['-c', opts.container] : [])]);
  }

  waitFor<T>(what: string, fn: () => Promise<T | undefined | null | false> | T | undefined | null | false, opts: { timeoutMs?: number; intervalMs?: number } = {}): Promise<T> {
    return waitFor(what, async () => {
      const dead = this.#procs.find((p) => p.exit !== undefined);
      if (dead) throw new Error(`${dead.name} ${dead.exit}: ${tail(dead.logFile, 5)}`);
      return fn();
    }, opts);
  }

  /** Every node Ready and without the not-ready taint. */
  async waitNodesReady(timeoutMs = 60_000): Promise<void> {
    await this.waitFor('nodes Ready', async () => {
      const list = await this.kubectlJson<{ items: Array<{ metadata: { name: string }; spec: { taints?: Array<{ key: string }> }; status: { conditions?: Array<{ type: string; status: string; message?: string }> } }> }>(['get', 'nodes'], { timeoutMs: 10_000 });
      const notReady = this.nodes.filter((n) => {
        const item = list.items.find((i) => i.metadata.name === n.name);
        const ready = item?.status.conditions?.find((c) => c.type === 'Ready');
        return ready?.status !== 'True' || (item?.spec.taints ?? []).some((t) => t.key === 'node.kubernetes.io/not-ready');
      });
      if (notReady.length) throw new Error(`not Ready: ${notReady.map((n) => n.name).join(', ')}`);
      return true;
    }, { timeoutMs, intervalMs: 300 });
  }

  /** Pods matching `selector` in `namespace` all Ready (at least `min` of them). */
  async waitPodsReady(namespace: string, selector: string, opts: { min?: number; timeoutMs?: number } = {}): Promise<void> {
    await this.waitFor(`pods ${namespace}/${selector} Ready`, async () => {
      const list = await this.kubectlJson<{ items: Array<{ metadata: { name: string }; status: { phase?: string; conditions?: Array<{ type: string; status: string }> } }> }>(['get', 'pods', '-n', namespace, '-l', selector], { timeoutMs: 10_000 });
      const ready = list.items.filter((p) => p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
      if (ready.length < (opts.min ?? 1) || ready.length < list.items.length) {
        throw new Error(list.items.map((p) => `${p.metadata.name}: ${p.status.phase ?? '?'}`).join(', ') || 'no pods');
      }
      return true;
    }, { timeoutMs: opts.timeoutMs ?? 90_000, intervalMs: 300 });
  }

  /** CoreDNS (Deployment + Service kube-dns at DNS_SERVICE_IP), waited for until Ready. */
  async deployCoreDNS(opts: { hosts?: Record<string, string>; timeoutMs?: number } = {}): Promise<void> {
    await this.apply(coreDnsManifests({ hosts: opts.hosts, serviceIp: DNS_SERVICE_IP, clusterDomain: CLUSTER_DOMAIN }));
    await this.waitPodsReady('kube-system', 'k8s-app=kube-dns', { timeoutMs: opts.timeoutMs ?? 90_000 });
  }

  /** `ctr -n k8s.io` against a node's containerd. */
  ctr(node: NodeInfo, args: string[], opts: { timeoutMs?: number } = {}): Promise<ExecResult> {
    return run('ctr', ['--address', node.containerdSocket, '--namespace', 'k8s.io', ...args], { timeoutMs: opts.timeoutMs ?? 30_000 });
  }

  /** A command in a node's network and mount namespaces. */
  nodeExec(node: NodeInfo, cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<ExecResult> {
    return run('nsenter', [`--mount=/proc/${node.holderPid}/ns/mnt`, `--net=${node.netnsPath}`, '--', cmd, ...args], opts);
  }

  node(name: string): NodeInfo {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  /** Log files, one per process, and how each process ended if it did. */
  describeProcesses(tailLines = 0): string {
    const lines = [`logs in ${this.logDir}:`];
    for (const p of this.#procs) {
      lines.push(`  ${p.name}: ${p.logFile}${p.exit ? ` (${p.exit})` : ''}`);
      if (tailLines && p.exit) lines.push(tail(p.logFile, tailLines).replace(/^/gm, '      '));
    }
    return lines.join('\n');
  }

  /** Keep the logs when the cluster stops (for a failed test); their new place is printed. */
  keepLogs(): void {
    this.#keepLogs = true;
  }

  // ---------------------------------------------------------------- stop

  #installSignalHandlers(): void {
    const onSignal = (signal: NodeJS.Signals) => () => {
      this.opts.log(`${signal}: stopping the cluster`);
      this.stop();
      process.exit(signal === 'SIGINT' ? 130 : 143);
    };
    const handlers: Array<[NodeJS.Signals | 'exit', (...a: unknown[]) => void]> = [
      ['SIGINT', onSignal('SIGINT')],
      ['SIGTERM', onSignal('SIGTERM')],
      ['SIGHUP', onSignal('SIGHUP')],
      ['exit', () => this.stop()],
    ];
    for (const [ev, h] of handlers) process.on(ev as NodeJS.Signals, h);
    this.#signalHandlers = handlers;
  }

  /**
   * Undoes everything (synchronous, idempotent): processes by PID, the
   * nodes' mount namespaces, pods (kubelet's cgroupRoot), netns, links,
   * routes, the iptables guard, cgroups, sysctls, the temp dir. Returns the
   * steps that failed (also logged).
   */
  stop(opts: { keepLogs?: boolean } = {}): string[] {
    if (this.#stopped) return [];
    this.#stopping = true;
    for (const [ev, h] of this.#signalHandlers) process.off(ev as NodeJS.Signals, h);
    const t0 = Date.now();
    // Logs are copied out once every process is gone, just before the temp dir is removed.
    const keep = opts.keepLogs || this.#keepLogs;
    const problems = this.#ledger.undo(
      (msg) => this.opts.log(msg),
      (path) => {
        if (!keep || path !== this.dir || !existsSync(this.logDir)) return;
        const kept = `${this.dir}-logs`;
        cpSync(this.logDir, kept, { recursive: true });
        // The pods' logs too (the CNI agent's among them), per node.
        for (const node of this.nodes) {
          if (existsSync(node.dirs.podLogs)) cpSync(node.dirs.podLogs, join(kept, `${node.name}-pods`), { recursive: true, dereference: true });
        }
        this.keptLogDir = kept;
        this.opts.log(`logs kept in ${kept}`);
      },
    );
    this.#stopped = true;
    this.opts.log(`cluster stopped in ${((Date.now() - t0) / 1000).toFixed(1)} s${problems.length ? ` with ${problems.length} problem(s)` : ''}`);
    return problems;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /**
   * What of this cluster is still on the machine (empty after a clean stop):
   * processes, netns, links, mounts, cgroups, iptables rules, routes, sysctls, files.
   */
  leftovers(): string[] {
    return findLeftovers(this.dir, this.nodes.map((n) => ({ name: n.name, mntns: n.mntns, cgroupRoot: n.cgroupRoot })), this.#ledger.state.entries);
  }
}

function splitPod(pod: string): [string, string] {
  const i = pod.indexOf('/');
  return i < 0 ? ['default', pod] : [pod.slice(0, i), pod.slice(i + 1)];
}

// ------------------------------------------------------------------ configs

function bridgeConflist(podCidr: string): Record<string, unknown> {
  return {
    cniVersion: '1.0.0',
    name: `${CLUSTER_NAME}-bridge`,
    plugins: [
      {
        type: 'bridge',
        bridge: 'cni0',
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        ipam: { type: 'host-local', ranges: [[{ subnet: podCidr }]], routes: [{ dst: '0.0.0.0/0' }] },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  };
}

function containerdConfig(node: NodeInfo, root: string): string {
  return `version = 2
root = "${join(root, 'containerd', 'root')}"
state = "${join(root, 'containerd', 'state')}"
oom_score = 0

[grpc]
  address = "${node.containerdSocket}"
[ttrpc]
  address = "${node.containerdSocket}.ttrpc"
[debug]
  address = ""
  level = "info"
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "${join(root, 'containerd', 'opt')}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  # This VM withholds CAP_SYS_RESOURCE: without this no sandbox starts.
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "${join(root, 'containerd', 'runc')}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    # As the node's mount namespace sees them (per-node directories bound there).
    bin_dir = "${NODE_PATHS.cniBin}"
    conf_dir = "${NODE_PATHS.cniConf}"
    max_conf_num = 1
`;
}

function kubeletConfig(node: NodeInfo, pki: Pki): Record<string, unknown> {
  return {
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    address: node.ip,
    port: 10250,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort: 10248,
    containerRuntimeEndpoint: `unix://${node.containerdSocket}`,
    cgroupDriver: 'cgroupfs',
    cgroupRoot: node.cgroupRoot,
    cgroupsPerQOS: true,
    enforceNodeAllocatable: ['pods'],
    podLogsDir: NODE_PATHS.podLogs, // the node's own (bound per node); two kubelets never share one
    resolvConf: '',
    clusterDNS: [DNS_SERVICE_IP],
    clusterDomain: CLUSTER_DOMAIN,
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '1%', 'nodefs.inodesFree': '1%', 'imagefs.available': '1%' },
    failSwapOn: false,
    protectKernelDefaults: false,
    serializeImagePulls: false,
    maxPods: 110,
    staticPodPath: '',
    authentication: { anonymous: { enabled: false }, webhook: { enabled: false }, x509: { clientCAFile: pki.caCert } },
    authorization: { mode: 'AlwaysAllow' },
    nodeStatusUpdateFrequency: '4s',
    syncFrequency: '10s',
    fileCheckFrequency: '10s',
    runtimeRequestTimeout: '2m',
    shutdownGracePeriod: '0s',
    logging: { format: 'text' },
  };
}

function kubeProxyConfig(node: NodeInfo, kubeconfigPath: string): Record<string, unknown> {
  return {
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    kind: 'KubeProxyConfiguration',
    clientConnection: { kubeconfig: kubeconfigPath },
    mode: 'iptables',
    hostnameOverride: node.name,
    bindAddress: node.ip,
    clusterCIDR: POD_NET,
    metricsBindAddress: '127.0.0.1:10249',
    healthzBindAddress: '127.0.0.1:10256',
    nodePortAddresses: ['primary'],
    // Leave every conntrack sysctl alone (some are global).
    conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s', udpTimeout: '0s', udpStreamTimeout: '0s' },
    iptables: { localhostNodePorts: false, minSyncPeriod: '0s', syncPeriod: '30s' },
    oomScoreAdj: 0,
  };
}

// ------------------------------------------------------------------ stale state, leftovers

/** Undoes the ledgers of cluster processes that are gone; throws if one is alive. */
export function sweepStale(log: (msg: string) => void = () => {}): void {
  for (const file of Ledger.list()) {
    let ledger: Ledger;
    try {
      ledger = Ledger.load(file);
    } catch {
      continue; // half-written; its owner is writing it
    }
    if (ledger.running) throw new Error(`a k8s test cluster is running (pid ${ledger.state.owner}, ${ledger.state.dir}); stop it first (test/k8s/cluster-cli.ts down)`);
    log(`undoing what cluster process ${ledger.state.owner} left behind (${ledger.state.dir})`);
    ledger.undo(log);
  }
}

/** What of a cluster (its dir, nodes and ledger entries) is still on the machine. */
export function findLeftovers(dir: string, nodes: Array<{ name: string; mntns: string; cgroupRoot: string }>, entries: Ledger['state']['entries']): string[] {
  const out: string[] = [];
  for (const e of entries) {
    if (e.kind === 'process' && startTime(e.pid) === e.start) out.push(`process ${e.name} (${e.pid})`);
    if (e.kind === 'netns' && existsSync(`/run/netns/${e.name}`)) out.push(`netns ${e.name}`);
    if (e.kind === 'link' && existsSync(`/sys/class/net/${e.name}`)) out.push(`link ${e.name}`);
  }
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      if (Number(p) !== process.pid && readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(dir)) out.push(`process ${p}: ${readFileSync(`/proc/${p}/cmdline`, 'utf8').replaceAll('\0', ' ').slice(0, 120)}`);
    } catch {
      // gone
    }
  }
  for (const n of nodes) {
    if (n.mntns) for (const p of mntnsProcs(n.mntns, dir)) out.push(`process ${p} in ${n.name}'s mount namespace`);
    for (const p of cgroupProcs(n.cgroupRoot)) out.push(`process ${p} in cgroup ${n.cgroupRoot}`);
    for (const m of cgroupMounts()) if (existsSync(join(m.path, n.cgroupRoot))) out.push(`cgroup ${join(m.path, n.cgroupRoot)}`);
    if (existsSync(`/run/netns/${n.name}`)) out.push(`netns ${n.name}`);
  }
  for (const l of readdirSync('/sys/class/net')) if (l.startsWith(CLUSTER_NAME)) out.push(`link ${l}`);
  for (const m of mountsUnder(dir)) out.push(`mount ${m}`);
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) if (line.includes(dir)) out.push(`mount: ${line.slice(0, 160)}`);
  const mangle = execFileSync('iptables', ['-w', '5', '-t', 'mangle', '-S'], { encoding: 'utf8' });
  for (const line of mangle.split('\n')) if (line.includes(CLUSTER_NAME)) out.push(`iptables mangle: ${line}`);
  const routes = execFileSync('ip', ['route', 'show', 'table', 'all'], { encoding: 'utf8' });
  for (const line of routes.split('\n')) if (/^(unreachable )?10\.(244|96)\.|slk8s/.test(line)) out.push(`route: ${line}`);
  for (const e of entries) if (e.kind === 'sysctl' && readSysctl(e.key) !== e.value) out.push(`sysctl ${e.key} = ${readSysctl(e.key)} (was ${e.value})`);
  if (existsSync(dir)) out.push(`dir ${dir}`);
  if (existsSync(STATE_DIR) && readdirSync(STATE_DIR).some((f) => f.startsWith(`${CLUSTER_NAME}.json`))) out.push(`state file in ${STATE_DIR}`);
  return [...new Set(out)];
}
