// The undo ledger of a k8s test cluster: every thing the harness creates on
// the machine (a process, a netns, a link, a route, an iptables rule, a
// sysctl it lets kubelet change, a cgroup, a directory) is written down, as
// it is created, in a JSON state file under /run/sluice-k8s. Undoing runs the
// entries in reverse order, synchronously (it also runs from signal and exit
// handlers), never stopping at a failure. The same file lets `cluster-cli.ts
// down`, or the next cluster's start, undo what a process that died without
// cleaning up (SIGKILL, a crash) left behind.
//
// Processes are only ever killed by PID, and a PID only while its start time
// is the one recorded (no reuse). Whatever a node's daemons started that the
// harness did not (shims, containers, CNI plugins) is found through the node:
// the processes in its private mount namespace whose command line names the
// cluster's directory or whose parent is such a process, and every process in
// its cgroup subtree (kubelet's cgroupRoot, private to the node).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const STATE_DIR = '/run/sluice-k8s';

export type Undo =
  /** SIGTERM, wait up to termMs, SIGKILL. */
  | { kind: 'process'; name: string; pid: number; start: string; termMs: number }
  /** SIGKILL every process in mount namespace `mntns` that belongs to the cluster (see file comment). */
  | { kind: 'mntns-procs'; name: string; mntns: string; marker: string }
  /** SIGKILL every process in cgroup `path` (relative to each hierarchy) and below. */
  | { kind: 'cgroup-procs'; path: string }
  /** rmdir `path` and everything below it in every cgroup hierarchy, deepest first. */
  | { kind: 'cgroup'; path: string }
  | { kind: 'netns'; name: string }
  | { kind: 'link'; name: string }
  /** `ip route del ARGS` in the host netns. */
  | { kind: 'route'; args: string[] }
  /** `iptables -t TABLE -D ARGS` in the host netns. */
  | { kind: 'iptables'; table: string; args: string[] }
  | { kind: 'sysctl'; key: string; value: string }
  /** rmdir while empty (a mount point the harness had to create). */
  | { kind: 'dir'; path: string }
  /** rm -rf, unless something is still mounted below it. */
  | { kind: 'tree'; path: string };

export interface LedgerState {
  owner: number;
  ownerStart: string;
  dir: string;
  created: string;
  /** Free-form facts for `status` (kubeconfig, nodes). */
  info: Record<string, unknown>;
  /** Set once undo ran: a file still here then lists what failed to go (retried by the next sweep). */
  stopped?: boolean;
  entries: Undo[];
}

// ------------------------------------------------------------------ processes

/** Field 22 of /proc/PID/stat (start time in clock ticks since boot), or undefined if gone. */
export function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (rest[0] === 'Z' || rest[0] === 'X') return undefined;
    return rest[19];
  } catch {
    return undefined;
  }
}

export function aliveAs(pid: number, start: string): boolean {
  return startTime(pid) === start;
}

export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone meanwhile
  }
}

function allPids(): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .map(Number);
}

export function mntnsOf(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return undefined;
  }
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

function ppid(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return 0;
  }
}

/** Processes in mount namespace `mntns` whose command line has `marker`, or whose parent's has. */
export function mntnsProcs(mntns: string, marker: string): number[] {
  const inNs = allPids().filter((p) => p !== process.pid && mntnsOf(p) === mntns);
  const marked = new Set(inNs.filter((p) => cmdline(p).includes(marker)));
  return inNs.filter((p) => marked.has(p) || marked.has(ppid(p)));
}

/** Mount points of every cgroup hierarchy (v1 and v2). */
export function cgroupMounts(): Array<{ path: string; fstype: string; options: string }> {
  const out: Array<{ path: string; fstype: string; options: string }> = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post) continue;
    const [fstype, , options] = post.split(' ');
    if (fstype === 'cgroup' || fstype === 'cgroup2') out.push({ path: pre.split(' ')[4]!, fstype, options: options ?? '' });
  }
  return out;
}

/** Directories of `rel` and below in every hierarchy, deepest first. */
function cgroupDirs(rel: string): string[] {
  const dirs: string[] = [];
  const walk = (d: string): void => {
    let kids: string[] = [];
    try {
      kids = readdirSync(d, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => join(d, e.name));
    } catch {
      return;
    }
    for (const k of kids) walk(k);
    dirs.push(d);
  };
  for (const m of cgroupMounts()) {
    const d = join(m.path, rel);
    if (existsSync(d)) walk(d);
  }
  return dirs;
}

export function cgroupProcs(rel: string): number[] {
  const pids = new Set<number>();
  for (const d of cgroupDirs(rel)) {
    try {
      for (const p of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (p) pids.add(Number(p));
    } catch {
      // removed meanwhile
    }
  }
  return [...pids];
}

/** Kills with SIGKILL what `list()` returns until it returns nothing or `ms` pass; returns what is left. */
function killAll(list: () => number[], ms: number): number[] {
  const deadline = Date.now() + ms;
  let left = list();
  while (left.length && Date.now() < deadline) {
    for (const p of left) kill(p, 'SIGKILL');
    sleepSync(50);
    left = list().filter((p) => startTime(p) !== undefined);
  }
  return left;
}

// ------------------------------------------------------------------ mounts

/** Mount points at or below `dir` in the host mount namespace. */
export function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m): m is string => !!m && (m === dir || m.startsWith(`${dir}/`)));
}

function run(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 20_000 });
}

// ------------------------------------------------------------------ the ledger

export class Ledger {
  readonly file: string;
  readonly state: LedgerState;
  #undone = false;

  private constructor(file: string, state: LedgerState) {
    this.file = file;
    this.state = state;
  }

  /** A new ledger owned by this process. */
  static create(name: string, dir: string): Ledger {
    mkdirSync(STATE_DIR, { recursive: true });
    const file = join(STATE_DIR, `${name}.json`);
    if (existsSync(file)) throw new Error(`${file} exists: another cluster named ${name} is running or was left behind (run cluster-cli down)`);
    const ledger = new Ledger(file, {
      owner: process.pid,
      ownerStart: startTime(process.pid)!,
      dir,
      created: new Date().toISOString(),
      info: {},
      entries: [],
    });
    ledger.save();
    return ledger;
  }

  static load(file: string): Ledger {
    return new Ledger(file, JSON.parse(readFileSync(file, 'utf8')) as LedgerState);
  }

  /** State files under STATE_DIR. */
  static list(): string[] {
    try {
      return readdirSync(STATE_DIR)
        .filter((f) => f.endsWith('.json'))
        .map((f) => join(STATE_DIR, f));
    } catch {
      return [];
    }
  }

  get ownerAlive(): boolean {
    return aliveAs(this.state.owner, this.state.ownerStart);
  }

  /** A cluster still running: its owner is alive and has not stopped it. */
  get running(): boolean {
    return this.ownerAlive && !this.state.stopped;
  }

  save(): void {
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.state, null, 1));
    renameSync(tmp, this.file);
  }

  add(entry: Undo): void {
    if (this.#undone) throw new Error('ledger already undone');
    this.state.entries.push(entry);
    this.save();
  }

  setInfo(key: string, value: unknown): void {
    this.state.info[key] = value;
    this.save();
  }

  /**
   * Undoes every entry, last first. Tracked processes get SIGTERM all at
   * once first (up to the longest termMs), so the walk after that rarely waits.
   * Returns one line per step that failed.
   */
  undo(log: (msg: string) => void = () => {}, beforeTree?: (path: string) => void): string[] {
    this.#undone = true;
    this.state.stopped = true;
    const problems: string[] = [];
    const procs = this.state.entries.filter((e): e is Extract<Undo, { kind: 'process' }> => e.kind === 'process');
    const live = procs.filter((p) => aliveAs(p.pid, p.start));
    for (const p of live) kill(p.pid, 'SIGTERM');
    const deadline = Date.now() + Math.max(0, ...live.map((p) => p.termMs));
    while (live.some((p) => aliveAs(p.pid, p.start)) && Date.now() < deadline) sleepSync(50);
    for (const entry of [...this.state.entries].reverse()) {
      try {
        if (entry.kind === 'tree') beforeTree?.(entry.path);
        const problem = undoOne(entry);
        if (problem) problems.push(problem);
      } catch (err) {
        problems.push(`${describe(entry)}: ${(err as Error).message.split('\n')[0]}`);
      }
    }
    for (const p of problems) log(`cleanup: ${p}`);
    if (problems.length === 0) {
      rmSync(this.file, { force: true });
      try {
        rmdirSync(STATE_DIR);
      } catch {
        // another cluster's state is there
      }
    } else {
      // Keep every entry (undo is idempotent): the next sweep or `down` retries.
      this.state.stopped = true;
      this.save();
    }
    return problems;
  }
}

function describe(e: Undo): string {
  switch (e.kind) {
    case 'process':
      return `process ${e.name} (${e.pid})`;
    case 'mntns-procs':
      return `processes of ${e.name}`;
    case 'cgroup-procs':
    case 'cgroup':
      return `cgroup ${e.path}`;
    case 'route':
      return `route ${e.args.join(' ')}`;
    case 'iptables':
      return `iptables -t ${e.table} ${e.args.join(' ')}`;
    case 'sysctl':
      return `sysctl ${e.key}`;
    case 'netns':
    case 'link':
      return `${e.kind} ${e.name}`;
    case 'dir':
    case 'tree':
      return `${e.kind} ${e.path}`;
  }
}

/** Undoes one entry; returns a problem line, or undefined when done. Idempotent. */
function undoOne(e: Undo): string | undefined {
  switch (e.kind) {
    case 'process': {
      if (!aliveAs(e.pid, e.start)) return undefined;
      kill(e.pid, 'SIGTERM');
      const deadline = Date.now() + e.termMs;
      while (aliveAs(e.pid, e.start) && Date.now() < deadline) sleepSync(50);
      if (aliveAs(e.pid, e.start)) kill(e.pid, 'SIGKILL');
      const killDeadline = Date.now() + 5_000;
      while (aliveAs(e.pid, e.start) && Date.now() < killDeadline) sleepSync(20);
      return aliveAs(e.pid, e.start) ? `${describe(e)} survived SIGKILL` : undefined;
    }
    case 'mntns-procs': {
      const left = killAll(() => mntnsProcs(e.mntns, e.marker), 10_000);
      return left.length ? `${describe(e)}: ${left.join(',')} survived SIGKILL` : undefined;
    }
    case 'cgroup-procs': {
      const left = killAll(() => cgroupProcs(e.path), 10_000);
      return left.length ? `${describe(e)}: ${left.join(',')} survived SIGKILL` : undefined;
    }
    case 'cgroup': {
      // A cgroup whose last task just exited can be busy for a moment.
      const deadline = Date.now() + 5_000;
      for (;;) {
        const failed: string[] = [];
        for (const d of cgroupDirs(e.path)) {
          try {
            rmdirSync(d);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'ENOENT') failed.push(d);
          }
        }
        if (failed.length === 0) return undefined;
        if (Date.now() > deadline) return `cgroup dirs left: ${failed.join(' ')}`;
        sleepSync(100);
      }
    }
    case 'netns':
      if (existsSync(`/run/netns/${e.name}`)) run('ip', ['netns', 'del', e.name]);
      return undefined;
    case 'link':
      if (existsSync(`/sys/class/net/${e.name}`)) run('ip', ['link', 'del', e.name]);
      return undefined;
    case 'route': {
      try {
        run('ip', ['route', 'del', ...e.args]);
      } catch (err) {
        if (!/No such process|not found|Cannot find/i.test(String((err as { stderr?: Buffer }).stderr ?? ''))) throw err;
      }
      return undefined;
    }
    case 'iptables': {
      try {
        run('iptables', ['-w', '5', '-t', e.table, '-C', ...e.args]);
      } catch {
        return undefined; // not there
      }
      run('iptables', ['-w', '5', '-t', e.table, '-D', ...e.args]);
      return undefined;
    }
    case 'sysctl': {
      const path = `/proc/sys/${e.key.replaceAll('.', '/')}`;
      if (readFileSync(path, 'utf8').trim() !== e.value) writeFileSync(path, e.value);
      return undefined;
    }
    case 'dir':
      try {
        rmdirSync(e.path);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ENOTEMPTY' && code !== 'EBUSY') throw err;
      }
      return undefined;
    case 'tree': {
      const mounted = mountsUnder(e.path);
      for (const m of mounted.sort((a, b) => b.length - a.length)) {
        try {
          run('umount', ['--lazy', m]);
        } catch {
          // reported below
        }
      }
      if (mountsUnder(e.path).length) return `${describe(e)}: still mounted below it, left in place`;
      rmSync(e.path, { recursive: true, force: true });
      return undefined;
    }
  }
}
