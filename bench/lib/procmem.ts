// Memory of short-lived process trees, read from /proc.
//
// RssSampler sums the resident set of a set of processes and all their
// descendants every few ms and keeps the peak of that sum: the real peak of
// memory held at once by plugin processes that live ~10-50 ms each (which
// rusage cannot give: ru_maxrss is per process, and a sum of per-process
// maxima overstates what was ever resident together). Sampling costs CPU, so
// benchmarks run it in a round of its own, not in the rounds they time.
//
// Caveats: the RSS of each process counts shared file pages (the binary's
// text) once per process, so the sum is an upper bound on real memory use;
// `anon` (resident minus shared, from statm) is the private part. A process
// that lives less than one sampling interval may be missed.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';

const PAGE = 4096;

function readOr(path: string): string | undefined {
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return undefined;
  }
}

/** Parent pid from /proc/<pid>/stat (the comm field may hold spaces or parens). */
function ppidOf(pid: number): number | undefined {
  const stat = readOr(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(rest[1]);
}

/** [resident, anon] bytes from /proc/<pid>/statm, or undefined once it is gone. */
export function rssOf(pid: number): [number, number] | undefined {
  const statm = readOr(`/proc/${pid}/statm`);
  if (!statm) return undefined;
  const f = statm.split(' ').map(Number);
  const resident = f[1]! * PAGE;
  return [resident, resident - f[2]! * PAGE];
}

/** VmHWM (peak RSS) of a process in bytes. */
export function hwmOf(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readOr(`/proc/${pid}/status`) ?? '');
  return m ? Number(m[1]) * 1024 : NaN;
}

/** Resets a process's VmHWM to its current RSS (clear_refs 5, Linux ≥ 4.0). */
export function resetHwm(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

/** The first process whose command line contains `needle`. */
export function findPid(needle: string): number | undefined {
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const cmd = readOr(`/proc/${e}/cmdline`);
    if (cmd && cmd.replace(/\0/g, ' ').includes(needle)) return Number(e);
  }
  return undefined;
}

export interface RssPeak {
  /** Peak of the summed RSS of every tracked process alive at one sample. */
  peakBytes: number;
  /** Peak of the summed anonymous (private) RSS. */
  peakAnonBytes: number;
  /** At the sample with the peak sum: the part held by the `roots` trees vs the `resident` processes. */
  peakRootsBytes: number;
  peakResidentBytes: number;
  samples: number;
  meanIntervalMs: number;
  /** Distinct processes ever seen in the roots' trees. */
  processes: number;
}

export class RssSampler {
  /** Processes the caller spawned: add each pid as soon as spawn() returns. */
  readonly roots = new Set<number>();
  readonly #resident: number[];
  readonly #intervalMs: number;
  /** pid → in the tracked trees? Decided once per pid (from its parent). */
  readonly #known = new Map<number, boolean>();
  #timer: NodeJS.Timeout | undefined;
  #started = 0n;
  #peak: RssPeak = { peakBytes: 0, peakAnonBytes: 0, peakRootsBytes: 0, peakResidentBytes: 0, samples: 0, meanIntervalMs: NaN, processes: 0 };

  /** `resident`: long-lived processes (e.g. an agent) counted in every sample, with their descendants. */
  constructor(opts: { resident?: number[]; intervalMs?: number } = {}) {
    this.#resident = opts.resident ?? [];
    this.#intervalMs = opts.intervalMs ?? 2;
  }

  start(): void {
    // Everything already running is not ours, except the resident processes.
    for (const e of readdirSync('/proc')) if (/^\d+$/.test(e)) this.#known.set(Number(e), false);
    for (const pid of this.#resident) this.#known.set(pid, true);
    this.#started = process.hrtime.bigint();
    this.#timer = setInterval(() => this.sample(), this.#intervalMs);
  }

  /** One sweep; also call it right after spawning, to catch the first moments. */
  sample(): void {
    for (const pid of this.roots) this.#known.set(pid, true);
    let total = 0;
    let anon = 0;
    let roots = 0;
    const pids = readdirSync('/proc')
      .filter((e) => e.charCodeAt(0) <= 57)
      .map(Number)
      .filter((n) => Number.isInteger(n))
      .sort((a, b) => a - b);
    for (const pid of pids) {
      let ours = this.#known.get(pid);
      if (ours === undefined) {
        // New since the last sweep: ours if its parent is (parents are
        // visited first unless pids wrapped; then the next sweep decides).
        const ppid = ppidOf(pid);
        if (ppid === undefined) continue;
        const parent = this.#known.get(ppid);
        if (parent === undefined) continue;
        ours = parent;
        this.#known.set(pid, ours);
        if (ours) this.#peak.processes++;
      }
      if (!ours) continue;
      const r = rssOf(pid);
      if (!r) continue;
      total += r[0];
      anon += r[1];
      if (!this.#resident.includes(pid)) roots += r[0];
    }
    const p = this.#peak;
    p.samples++;
    if (total > p.peakBytes) {
      p.peakBytes = total;
      p.peakRootsBytes = roots;
      p.peakResidentBytes = total - roots;
    }
    p.peakAnonBytes = Math.max(p.peakAnonBytes, anon);
  }

  stop(): RssPeak {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.sample();
    const ms = Number(process.hrtime.bigint() - this.#started) / 1e6;
    this.#peak.processes += this.roots.size;
    return { ...this.#peak, meanIntervalMs: ms / Math.max(1, this.#peak.samples) };
  }
}
