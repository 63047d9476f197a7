// A private containerd for tests: its own root, state, socket and config
// under /tmp/slt-ctrd-*, never the system one. `ctr` always gets --address
// and a namespace. `ctr run --cni` (containerd 1.6) reads its CNI config from
// the fixed /etc/cni/net.d and its plugins from /opt/cni/bin, so those runs
// happen in a private mount namespace where a test directory is bind-mounted
// over each; the host's own directories are never written to.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cleanup, sh } from './netns.js';

export const CNI_CONF_DIR = '/etc/cni/net.d';
export const CNI_BIN_DIR = '/opt/cni/bin';
/** Where the runc shim puts its sockets whatever containerd's state dir is. */
const SHIM_RUN_DIR = '/run/containerd';

export interface CtrResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Mount points at or below `dir`, deepest first. */
function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m): m is string => !!m && (m === dir || m.startsWith(`${dir}/`)))
    .sort((a, b) => b.length - a.length);
}

/** Creates the missing components of `path`; returns them, outermost first. */
function mkdirMissing(path: string): string[] {
  const created: string[] = [];
  let cur = '';
  for (const part of path.split('/').filter(Boolean)) {
    cur = `${cur}/${part}`;
    if (!existsSync(cur)) {
      mkdirSync(cur);
      created.push(cur);
    }
  }
  return created;
}

/** Removes directories we created, innermost first, only while empty. */
function rmdirIfEmpty(dirs: string[]): void {
  for (const d of [...dirs].reverse()) {
    try {
      rmdirSync(d);
    } catch {
      return; // not empty (someone else uses it) or gone: leave it and its parents
    }
  }
}

function pidsWithArg(arg: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').includes(arg)) pids.push(Number(p));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

/** Running (not exited, not a zombie waiting to be reaped). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function waitGone(pids: number[], ms: number): void {
  const deadline = Date.now() + ms;
  const tick = new Int32Array(new SharedArrayBuffer(4));
  while (pids.some(alive) && Date.now() < deadline) Atomics.wait(tick, 0, 0, 25);
}

export class Containerd {
  readonly dir: string;
  readonly address: string;
  readonly namespace: string;
  readonly logFile: string;
  /** Bind-mounted over /etc/cni/net.d and /opt/cni/bin for `ctr run --cni`. */
  readonly cniConfDir: string;
  readonly cniBinDir: string;
  #daemon: ChildProcess | undefined;
  #runs = new Set<ChildProcess>();
  #createdDirs: string[] = [];

  constructor(cleanup: Cleanup, namespace = 'slt') {
    this.namespace = namespace;
    this.dir = mkdtempSync(join(tmpdir(), 'slt-ctrd-'));
    this.address = join(this.dir, 'containerd.sock');
    this.logFile = join(this.dir, 'containerd.log');
    this.cniConfDir = join(this.dir, 'cni', 'net.d');
    this.cniBinDir = join(this.dir, 'cni', 'bin');
    mkdirSync(this.cniConfDir, { recursive: true });
    mkdirSync(this.cniBinDir, { recursive: true });
    mkdirSync(join(this.dir, 'fifo'));
    cleanup.add(() => this.destroy());
  }

  /** Flags every container-creating ctr call gets, so nothing lands in the host's default dirs. */
  get runFlags(): string[] {
    // --cgroup "": runc makes a per-container cgroup and removes it with the
    // container, instead of ctr's /<namespace>/<id> whose parent would stay.
    return ['--runc-root', join(this.dir, 'runc'), '--fifo-dir', join(this.dir, 'fifo'), '--cgroup', ''];
  }

  get running(): boolean {
    return this.#daemon !== undefined && this.#daemon.exitCode === null && this.#daemon.signalCode === null;
  }

  async start(): Promise<void> {
    this.#createdDirs.push(...mkdirMissing(SHIM_RUN_DIR));
    const config = join(this.dir, 'config.toml');
    writeFileSync(
      config,
      [
        'version = 2',
        `root = "${join(this.dir, 'root')}"`,
        `state = "${join(this.dir, 'state')}"`,
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
        '[grpc]',
        `  address = "${this.address}"`,
        '[ttrpc]',
        `  address = "${this.address}.ttrpc"`,
        '[debug]',
        '  address = ""',
        '[metrics]',
        '  address = ""',
        '',
      ].join('\n'),
    );
    const out = createWriteStream(this.logFile, { flags: 'a' });
    await new Promise((r) => out.once('open', r));
    const child = spawn('containerd', ['--config', config], { stdio: ['ignore', out, out] });
    this.#daemon = child;
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`containerd exited (${child.exitCode ?? child.signalCode}):\n${this.log()}`);
      if (existsSync(this.address) && this.ctr(['version']).status === 0) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`containerd did not come up:\n${this.log()}`);
  }

  log(): string {
    return existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8') : '';
  }

  /** Runs `ctr --address … -n ns ARGS` and returns its outcome (never throws). */
  ctr(args: string[], opts: { timeoutMs?: number } = {}): CtrResult {
    try {
      const stdout = execFileSync('ctr', ['--address', this.address, '--namespace', this.namespace, ...args], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: opts.timeoutMs ?? 20_000,
      });
      return { status: 0, stdout, stderr: '' };
    } catch (err) {
      const e = err as { status?: number | null; stdout?: string; stderr?: string; message: string };
      return { status: e.status ?? -1, stdout: e.stdout ?? '', stderr: e.stderr || e.message };
    }
  }

  /** The same, throwing with stderr when ctr fails. */
  ctrOk(args: string[], opts: { timeoutMs?: number } = {}): string {
    const r = this.ctr(args, opts);
    if (r.status !== 0) throw new Error(`ctr ${args.join(' ')} failed (${r.status}): ${r.stderr || r.stdout}`);
    return r.stdout;
  }

  importImage(archive: string): void {
    this.ctrOk(['images', 'import', archive], { timeoutMs: 60_000 });
  }

  imageRefs(): string[] {
    return this.ctrOk(['images', 'ls', '-q']).split('\n').filter(Boolean);
  }

  containerIds(): string[] {
    return this.ctrOk(['containers', 'ls', '-q']).split('\n').filter(Boolean);
  }

  /** `ctr task ls` as id → status. */
  tasks(): Map<string, string> {
    const m = new Map<string, string>();
    for (const line of this.ctrOk(['tasks', 'ls']).split('\n').slice(1)) {
      const [id, , status] = line.trim().split(/\s+/);
      if (id && status) m.set(id, status);
    }
    return m;
  }

  /** Installs a CNI network: `<cniConfDir>/10-<name>.conflist` and the plugin binary in cniBinDir. */
  installCni(conflist: Record<string, unknown>, plugin: string, pluginName = 'sluice-cni'): void {
    copyFileSync(plugin, join(this.cniBinDir, pluginName));
    execFileSync('chmod', ['0755', join(this.cniBinDir, pluginName)]);
    writeFileSync(join(this.cniConfDir, `10-${String(conflist.name)}.conflist`), JSON.stringify(conflist, null, 2));
  }

  /**
   * Starts `ctr run ARGS` in a private mount namespace that sees the test CNI
   * dirs at /etc/cni/net.d and /opt/cni/bin. The caller waits for it or kills it.
   */
  spawnCtrWithCni(args: string[]): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
    // Mount points must exist on the host; make only the missing ones and
    // remove them again (if empty) in destroy().
    this.#createdDirs.push(...mkdirMissing(CNI_CONF_DIR), ...mkdirMissing(CNI_BIN_DIR));
    const script = 'set -e; mount --bind "$1" "$2"; mount --bind "$3" "$4"; shift 4; exec "$@"';
    const child = spawn(
      'unshare',
      [
        '--mount',
        '--propagation', 'private',
        '--', 'sh', '-c', script, 'sh',
        this.cniConfDir, CNI_CONF_DIR, this.cniBinDir, CNI_BIN_DIR,
        'ctr', '--address', this.address, '--namespace', this.namespace, ...args,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.#runs.add(child);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) =>
      child.once('exit', (code, signal) => {
        this.#runs.delete(child);
        resolve(code ?? (signal ? -1 : null));
      }),
    );
    return { child, output: () => out, exited };
  }

  /** Kills what is left (tasks, ctr runs, shims, the daemon), unmounts and removes the dirs. */
  destroy(): void {
    // Synchronous (Cleanup steps are): child exit is seen through /proc, not
    // through the event loop, which does not turn here.
    if (this.#daemon && alive(this.#daemon.pid!)) {
      try {
        for (const id of this.tasks().keys()) this.ctr(['tasks', 'rm', '--force', id], { timeoutMs: 10_000 });
        // A foreground `ctr run --cni` whose task just died runs CNI DEL and
        // removes its container itself: give it the chance before killing it.
        waitGone([...this.#runs].map((r) => r.pid!), 10_000);
        for (const id of this.containerIds()) this.ctr(['containers', 'rm', id], { timeoutMs: 10_000 });
      } catch {
        // containerd not answering: the kills below still apply
      }
    }
    for (const run of this.#runs) if (alive(run.pid!)) run.kill('SIGKILL');
    if (this.#daemon && alive(this.#daemon.pid!)) {
      this.#daemon.kill('SIGTERM');
      waitGone([this.#daemon.pid!], 5_000);
      if (alive(this.#daemon.pid!)) this.#daemon.kill('SIGKILL');
    }
    // Shims outlive containerd; ours carry our socket path as -address.
    for (const pid of pidsWithArg(this.address)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const m of mountsUnder(this.dir)) sh('umount', ['--lazy', m], { allowFail: true });
    if (mountsUnder(this.dir).length === 0) rmSync(this.dir, { recursive: true, force: true });
    // Emptied shim socket dirs and mount points we made; never anything else.
    const shimDirs = [join(SHIM_RUN_DIR, 's'), join(SHIM_RUN_DIR, 'fifo')];
    if (this.#createdDirs.includes(SHIM_RUN_DIR)) for (const d of shimDirs) if (existsSync(d)) rmdirIfEmpty([d]);
    rmdirIfEmpty(this.#createdDirs.filter((d) => d.startsWith(SHIM_RUN_DIR)));
    const cniDirs = this.#createdDirs.filter((d) => !d.startsWith(SHIM_RUN_DIR));
    rmdirIfEmpty(cniDirs.filter((d) => d.startsWith('/opt')));
    rmdirIfEmpty(cniDirs.filter((d) => d.startsWith('/etc')));
    this.#createdDirs = [];
  }
}
