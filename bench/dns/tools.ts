// dnsperf, the load: pinned to a CPU set and tied to our life
// (bench/lib/pin.ts), its verbose per-query output parsed into the latency
// distribution (dnsperf 2.10 has no histogram). The servers come from
// test/helpers/dns.ts.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Netns } from '../../test/helpers/netns.js';
import { pinnedArgv } from '../lib/pin.js';

export interface PerfOptions {
  server: string;
  file: string;
  /** -l: stop after this many seconds. */
  seconds?: number;
  /** -n: stop after this many passes over the file. */
  passes?: number;
  /** -Q: rate limit. */
  qps?: number;
  /** -q: queries in flight. */
  outstanding?: number;
  /** -c: clients (sockets). */
  clients?: number;
  /** -t: a query unanswered this long is lost. */
  timeoutS?: number;
}

export interface PerfResult {
  sent: number;
  completed: number;
  lost: number;
  qps: number;
  runTimeS: number;
  rcodes: string;
  /** Per-query latency in ms, sorted. */
  latMs: Float64Array;
}

/** One dnsperf run in `ns` on `cpus`, with per-query latencies (-v). */
export function dnsperf(ns: Netns, cpus: string, o: PerfOptions): Promise<PerfResult> {
  const args = ['dnsperf', '-s', o.server, '-d', o.file, '-v', '-T', '1', '-c', String(o.clients ?? 8), '-q', String(o.outstanding ?? 100), '-t', String(o.timeoutS ?? 2)];
  if (o.seconds) args.push('-l', String(o.seconds));
  if (o.passes) args.push('-n', String(o.passes));
  if (o.qps) args.push('-Q', String(o.qps));
  const argv = pinnedArgv(cpus, args, ns);
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let lat = new Float64Array(1 << 16);
    let n = 0;
    const tail: string[] = [];
    let err = '';
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      // "> NOERROR n1.q.bench.test A 0.000154"; a lost query has no latency.
      if (line.startsWith('> ')) {
        const sp = line.lastIndexOf(' ');
        const v = Number(line.slice(sp + 1));
        if (!Number.isFinite(v)) return;
        if (n === lat.length) {
          const grown = new Float64Array(lat.length * 2);
          grown.set(lat);
          lat = grown;
        }
        lat[n++] = v * 1000;
      } else if (!line.startsWith('[Timeout]')) {
        tail.push(line);
        if (tail.length > 100) tail.shift();
      }
    });
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    const limitMs = ((o.seconds ?? 120) + (o.timeoutS ?? 2) + 30) * 1000;
    const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      const text = tail.join('\n');
      const num = (re: RegExp): number => Number(re.exec(text)?.[1] ?? NaN);
      if (code !== 0 || !/Queries sent/.test(text)) return reject(new Error(`dnsperf exited with ${code}: ${(err || text).trim().slice(-400)}`));
      const latMs = lat.slice(0, n).sort();
      resolve({
        sent: num(/Queries sent:\s+(\d+)/),
        completed: num(/Queries completed:\s+(\d+)/),
        lost: num(/Queries lost:\s+(\d+)/),
        qps: num(/Queries per second:\s+([\d.]+)/),
        runTimeS: num(/Run time \(s\):\s+([\d.]+)/),
        rcodes: /Response codes:\s+(.*)/.exec(text)?.[1]?.trim() ?? '',
        latMs,
      });
    });
  });
}

export function quantileOf(sorted: Float64Array, q: number): number {
  if (!sorted.length) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/** Merges sorted latency arrays into one sorted array. */
export function mergeLat(parts: readonly Float64Array[]): Float64Array {
  const all = new Float64Array(parts.reduce((s, p) => s + p.length, 0));
  let off = 0;
  for (const p of parts) {
    all.set(p, off);
    off += p.length;
  }
  return all.sort();
}
