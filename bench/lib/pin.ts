// CPU sets for benchmark processes, and children whose life is tied to ours.
//
// Every child started through pinnedArgv runs under `setpriv --pdeathsig
// KILL`, so a benchmark killed with SIGKILL never leaves a server behind
// (the signal survives the execs of nsenter and taskset; it is not inherited
// across fork, so a daemon that forks workers must notice its parent's death
// on its own, as nsd does). Processes we did not start (the agent, whose
// nsenter TestNode spawns) are pinned after the fact with `taskset -a -p`.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { Netns } from '../../test/helpers/netns.js';
import { sh } from '../../test/helpers/netns.js';

/** argv that runs `argv` in `ns` (if given), on `cpus` (taskset list syntax), killed when we die. */
export function pinnedArgv(cpus: string, argv: readonly string[], ns?: Netns): string[] {
  return ['setpriv', '--pdeathsig', 'KILL', '--', ...(ns ? ['nsenter', `--net=${ns.path}`] : []), 'taskset', '-c', cpus, ...argv];
}

/** Moves every thread of a running process to `cpus`. */
export function pinPid(pid: number, cpus: string): void {
  sh('taskset', ['-a', '-p', '-c', cpus, String(pid)]);
}

/** CPUs this process may run on, in order (honours an outer taskset or cgroup cpuset). */
export function usableCpus(): number[] {
  const m = /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync('/proc/self/status', 'utf8'));
  if (!m) return Array.from({ length: availableParallelism() }, (_, i) => i);
  return m[1]!.split(',').flatMap((part) => {
    const [a, b] = part.split('-').map(Number);
    return b === undefined ? [a!] : Array.from({ length: b - a! + 1 }, (_, i) => a! + i);
  });
}

/** The unit of /proc's CPU times (clock ticks a second). */
const USER_HZ = 100;

/** user + system CPU seconds of a process (its threads, not its children). */
export function cpuSeconds(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / USER_HZ;
  } catch {
    return NaN;
  }
}

/** cpuSeconds summed over a process and all its descendants alive now. */
export function treeCpuSeconds(pid: number): number {
  let total = 0;
  const seen = new Set<number>();
  const visit = (p: number): void => {
    if (seen.has(p)) return;
    seen.add(p);
    total += cpuSeconds(p) || 0;
    let kids = '';
    try {
      kids = readFileSync(`/proc/${p}/task/${p}/children`, 'utf8');
    } catch {
      return;
    }
    for (const k of kids.split(' ').filter(Boolean)) visit(Number(k));
  };
  visit(pid);
  return total;
}

/** Pids of every process in a network namespace. */
export function netnsPids(ns: Netns): number[] {
  return sh('ip', ['netns', 'pids', ns.name]).split('\n').filter(Boolean).map(Number);
}

/** Moves every process (and thread) in a network namespace to `cpus`; returns their pids. */
export function pinNetns(ns: Netns, cpus: string): number[] {
  const pids = netnsPids(ns);
  for (const pid of pids) pinPid(pid, cpus);
  return pids;
}

/** Busy (non-idle, non-iowait) jiffies, of them steal (another guest's time on this VM's host), and total jiffies of each CPU, from /proc/stat. */
export function cpuTimes(): Map<number, { busy: number; steal: number; total: number }> {
  const out = new Map<number, { busy: number; steal: number; total: number }>();
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const f = m[2]!.trim().split(/\s+/).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0); // user … steal (guest is inside user)
    out.set(Number(m[1]), { busy: total - f[3]! - f[4]!, steal: f[7]!, total });
  }
  return out;
}

/** The whole machine's busy CPU seconds so far: every CPU, steal left out (not this guest's work). */
export function machineBusySeconds(): number {
  let jiffies = 0;
  for (const t of cpuTimes().values()) jiffies += t.busy - t.steal;
  return jiffies / USER_HZ;
}

/** % busy of a CPU list (taskset syntax) between two cpuTimes() readings. */
export function busyPct(before: ReturnType<typeof cpuTimes>, after: ReturnType<typeof cpuTimes>, cpus: string): number {
  let busy = 0;
  let total = 0;
  for (const part of cpus.split(',')) {
    const [a, b] = part.split('-').map(Number);
    for (let c = a!; c <= (b ?? a!); c++) {
      busy += (after.get(c)?.busy ?? 0) - (before.get(c)?.busy ?? 0);
      total += (after.get(c)?.total ?? 0) - (before.get(c)?.total ?? 0);
    }
  }
  return total ? (100 * busy) / total : NaN;
}
