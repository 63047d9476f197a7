// A simulated node: a network namespace with its own `sluice agent` (the real
// bundle, entered with nsenter so bpffs stays visible), its own run, state and
// bpffs paths, and a standalone manifest directory. Plus a runner for the real
// build/bin/sluice-cni binary against that agent.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cleanup, Netns, sh, uniqueName } from './netns.js';
import { nodeEnvOf, nodeFlagsOf } from '../../src/config/index.js';

export const ROOT = join(import.meta.dirname, '..', '..');
export const SLUICE = join(ROOT, 'build/bin/sluice');
export const SLUICE_CNI = join(ROOT, 'build/bin/sluice-cni');
export const REFERENCE_PLUGINS = '/usr/lib/cni';

export interface NodeOptions {
  podCidr: string;
  /** An address the node owns, so it can talk to pods. */
  nodeIp?: string;
  extraArgs?: string[];
}

export class TestNode {
  readonly ns: Netns;
  readonly dir: string;
  readonly stateDir: string;
  readonly runDir: string;
  readonly manifests: string;
  readonly bpffs: string;
  readonly socket: string;
  readonly logFile: string;
  readonly opts: NodeOptions;
  #agent: ChildProcess | undefined;
  /** Every agent process started (a predecessor lives on, dormant, after a handover). */
  readonly #all: ChildProcess[] = [];

  constructor(cleanup: Cleanup, opts: NodeOptions) {
    this.opts = opts;
    this.ns = cleanup.netns('node');
    this.dir = mkdtempSync(join(tmpdir(), 'slt-node-'));
    this.stateDir = join(this.dir, 'state');
    this.runDir = join(this.dir, 'run');
    this.manifests = join(this.dir, 'manifests');
    this.socket = join(this.runDir, 'agent.sock');
    this.logFile = join(this.dir, 'agent.log');
    this.bpffs = `/sys/fs/bpf/${uniqueName('bp')}`;
    // Registered before anything below can throw, so nothing leaks.
    cleanup.add(() => {
      for (const c of this.#all) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      rmSync(this.bpffs, { recursive: true, force: true });
      rmSync(this.dir, { recursive: true, force: true });
    });
    mkdirSync(this.manifests, { recursive: true });
    if (opts.nodeIp) {
      // On lo: this kernel has no dummy driver, and a global address on lo
      // is still picked as the node's source address.
      this.ns.exec('ip', ['addr', 'add', opts.nodeIp, 'dev', 'lo']);
    }
  }

  get running(): boolean {
    return this.#agent !== undefined && this.#agent.exitCode === null && this.#agent.signalCode === null;
  }

  /**
   * Starts the agent. With one running already, the new one takes its
   * sockets over (src/agent/handover.ts) and the old one, dormant, is
   * returned; this node's agent is the new one from then on.
   */
  async start(): Promise<ChildProcess | undefined> {
    const predecessor = this.running ? this.#agent : undefined;
    const readyBefore = this.log().split('"agent ready"').length;
    const out = createWriteStream(this.logFile, { flags: 'a' });
    await new Promise((r) => out.once('open', r));
    const args = [
      `--net=${this.ns.path}`,
      process.execPath,
      ...nodeFlagsOf(SLUICE),
      SLUICE,
      'agent',
      '--standalone', this.manifests,
      '--pod-cidr', this.opts.podCidr,
      '--state-dir', this.stateDir,
      '--run-dir', this.runDir,
      '--bpffs', this.bpffs,
      '--node-name', this.ns.name,
      // SLUICE_TEST_DATAPATH_REDIRECT=true|false: every test's agents on that path (the kill switch).
      ...(process.env.SLUICE_TEST_DATAPATH_REDIRECT ? ['--datapath-redirect', process.env.SLUICE_TEST_DATAPATH_REDIRECT] : []),
      ...(this.opts.extraArgs ?? []),
    ];
    const child = spawn('nsenter', args, { stdio: ['ignore', out, out], env: { ...process.env, ...nodeEnvOf(SLUICE) } });
    this.#agent = child;
    this.#all.push(child);
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`agent exited with ${child.exitCode}:\n${this.log()}`);
      if (this.log().split('"agent ready"').length > readyBefore && (await canConnect(this.socket))) return predecessor;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`agent did not become ready:\n${this.log()}`);
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.running) this.#agent!.kill(signal);
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.#agent;
    if (!child || !this.running) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
  }

  log(): string {
    return existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8') : '';
  }

  /** Written to a temp name and renamed, as a careful operator would. */
  writeManifest(name: string, text: string): void {
    const tmp = join(this.manifests, `.${name}.tmp`);
    writeFileSync(tmp, text);
    renameSync(tmp, join(this.manifests, name));
  }

  /** A netns for a pod, destroyed by the cleanup. */
  podNetns(cleanup: Cleanup): Netns {
    return cleanup.netns('pod');
  }

  /** Pod `namespace`/`name` on this node: a netns (destroyed by the cleanup) wired by the real sluice-cni ADD, which must succeed. */
  addPod(cleanup: Cleanup, namespace: string, name: string): Netns {
    const net = cleanup.netns(name.slice(0, 3));
    const r = cni({ command: 'ADD', containerId: `${namespace}-${name}`, netns: net.path, ifname: 'eth0', args: podArgs(namespace, name), config: this.conf() });
    if (r.status !== 0) throw new Error(`ADD of ${namespace}/${name} failed (${r.status}): ${r.stdout}`);
    return net;
  }

  conf(version = '1.1.0', extra: Record<string, unknown> = {}): Record<string, unknown> {
    return { cniVersion: version, name: 'sluice', type: 'sluice-cni', agentSocket: this.socket, stateDir: this.stateDir, mtu: 1500, ...extra };
  }

  /** Host-side links of ours in the node netns. */
  hostVeths(): string[] {
    return this.ns
      .exec('ip', ['-o', 'link', 'show'])
      .split('\n')
      .map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1])
      .filter((n): n is string => !!n && n.startsWith('slc'));
  }

  allocations(): string[] {
    const dir = join(this.stateDir, 'ipam');
    return existsSync(dir) ? readdirNoDot(dir) : [];
  }

  endpointRecords(): string[] {
    const dir = join(this.stateDir, 'endpoints');
    return existsSync(dir) ? readdirNoDot(dir) : [];
  }

  /** ifindex keys in the pinned endpoint map. */
  mapEntries(): number[] {
    const out = sh('bpftool', ['-j', 'map', 'dump', 'pinned', join(this.bpffs, 'sluice_endpoints_v3')], { allowFail: true });
    if (!out) return [];
    return (JSON.parse(out) as Array<{ key: string[] | { ifindex: number }; formatted?: { key: { ifindex: number } } }>).map((e) =>
      e.formatted ? e.formatted.key.ifindex : Buffer.from((e.key as string[]).map((b) => parseInt(b, 16))).readUInt32LE(0),
    );
  }
}

function readdirNoDot(dir: string): string[] {
  return (spawnSync('ls', ['-1', dir], { encoding: 'utf8' }).stdout ?? '').split('\n').filter((n) => n && !n.startsWith('.'));
}

async function canConnect(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

export interface CniCall {
  command: string;
  containerId?: string;
  netns?: string;
  ifname?: string;
  args?: string;
  path?: string;
  config: Record<string, unknown> | string;
  /** Extra env, or undefined values to drop one. */
  env?: Record<string, string | undefined>;
}

export interface CniOutcome {
  status: number;
  stdout: string;
  json: Record<string, unknown> | undefined;
}

function cniEnv(call: CniCall): Record<string, string> {
  const env: Record<string, string | undefined> = {
    PATH: process.env.PATH,
    CNI_COMMAND: call.command,
    CNI_CONTAINERID: call.containerId,
    CNI_NETNS: call.netns,
    CNI_IFNAME: call.ifname,
    CNI_ARGS: call.args,
    CNI_PATH: call.path ?? REFERENCE_PLUGINS,
    ...call.env,
  };
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

function outcome(status: number | null, stdout: string): CniOutcome {
  let json: Record<string, unknown> | undefined;
  try {
    json = stdout.trim() ? JSON.parse(stdout) : undefined;
  } catch {
    json = undefined;
  }
  return { status: status ?? -1, stdout, json };
}

/** Runs a CNI plugin binary (sluice-cni by default) once. */
export function cni(call: CniCall, binary = SLUICE_CNI): CniOutcome {
  const input = typeof call.config === 'string' ? call.config : JSON.stringify(call.config);
  const r = spawnSync(binary, [], { input, env: cniEnv(call), encoding: 'utf8', timeout: 60_000 });
  return outcome(r.status, r.stdout);
}

/** The same, without blocking the event loop (for parallel calls). */
export function cniAsync(call: CniCall, binary = SLUICE_CNI, onSpawn?: (c: ChildProcess) => void): Promise<CniOutcome> {
  const input = typeof call.config === 'string' ? call.config : JSON.stringify(call.config);
  return new Promise((resolve, reject) => {
    const child = spawn(binary, [], { env: cniEnv(call), stdio: ['pipe', 'pipe', 'pipe'] });
    onSpawn?.(child);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve(outcome(code, out)));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

/** A pod's global addresses on its eth0, as the CNI gave them (IPv6 '' on an IPv4-only pod). */
export function podIps(ns: Netns): { v4: string; v6: string } {
  const addrs = (JSON.parse(ns.exec('ip', ['-j', 'addr', 'show', 'eth0'])) as Array<{ addr_info: Array<{ family: string; local: string; scope: string }> }>)[0]!.addr_info;
  const pick = (family: string) => addrs.find((a) => a.family === family && a.scope === 'global')?.local ?? '';
  return { v4: pick('inet'), v6: pick('inet6') };
}

export function podArgs(namespace: string, name: string): string {
  return `IgnoreUnknown=1;K8S_POD_NAMESPACE=${namespace};K8S_POD_NAME=${name};K8S_POD_INFRA_CONTAINER_ID=x;K8S_POD_UID=u-${name}`;
}

export { Cleanup, Netns, uniqueName };
