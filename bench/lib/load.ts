// Drives bench/lib/netload.c (built on demand into build/bench/netload) and
// iperf3 inside network namespaces. Every long-lived child is registered with
// the Cleanup and also exits on its own: netload when its stdin closes (so a
// dead benchmark never leaves one behind), iperf3 under `timeout`.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Cleanup, Netns } from '../../test/helpers/netns.js';

const ROOT = join(import.meta.dirname, '..', '..');
const SOURCE = join(ROOT, 'bench/lib/netload.c');
export const NETLOAD = join(ROOT, 'build/bench/netload');

/** Compiles netload if it is missing or older than its source. */
export function buildNetload(): string {
  if (!existsSync(NETLOAD) || statSync(NETLOAD).mtimeMs < statSync(SOURCE).mtimeMs) {
    mkdirSync(join(ROOT, 'build/bench'), { recursive: true });
    const r = spawnSync('cc', ['-O2', '-Wall', '-Wextra', '-Werror', '-pthread', '-o', NETLOAD, SOURCE], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`building netload failed: ${r.stderr || r.error?.message}`);
  }
  return NETLOAD;
}

function inNetns(ns: Netns, argv: string[]): string[] {
  return [`--net=${ns.path}`, ...argv];
}

/** Runs a command in a netns to completion, without blocking the event loop. */
export function runIn(ns: Netns, argv: string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('nsenter', inNetns(ns, argv), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${argv.join(' ')} in ${ns.name}: ${signal ?? `exit ${code}`}: ${(err || out).trim().slice(0, 300)}`));
    });
  });
}

function stopOnCleanup(cleanup: Cleanup, child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
  cleanup.add(() => {
    child.stdin?.destroy();
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  });
}

/** A netload echo server on [first, first + count), waited for until it listens. */
export async function startServer(cleanup: Cleanup, ns: Netns, first: number, count: number): Promise<ChildProcess> {
  const child = spawn('nsenter', inNetns(ns, [NETLOAD, 'server', String(first), String(count)]), { stdio: ['pipe', 'pipe', 'pipe'] });
  stopOnCleanup(cleanup, child);
  await new Promise<void>((resolve, reject) => {
    let out = '';
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`netload server in ${ns.name} exited with ${code}: ${err.trim()}`)));
  });
  return child;
}

export interface ConnResult {
  ok: number;
  fail: number;
  seconds: number;
  /** Connection counter to start the next run from (5-tuples never repeat). */
  next: number;
}

export interface ConnOptions {
  dportFirst: number;
  dportCount: number;
  sportFirst: number;
  sportLast: number;
  start: number;
  durationMs: number;
  workers: number;
}

/** New connections back to back for a fixed time: see netload.c `conn`. */
export async function connRate(ns: Netns, dst: string, o: ConnOptions): Promise<ConnResult> {
  const argv = [NETLOAD, 'conn', dst, o.dportFirst, o.dportCount, o.sportFirst, o.sportLast, o.start, o.durationMs, o.workers].map(String);
  return JSON.parse(await runIn(ns, argv, o.durationMs + 30_000)) as ConnResult;
}

export type Verdict = 'ok' | 'refused' | 'timeout' | string;

/** Request/response latency over one connection: `count` 1-byte round trips. */
export async function rrLatency(ns: Netns, dst: string, port: number, count: number): Promise<{ p50: number; p99: number }> {
  const r = JSON.parse((await runIn(ns, [NETLOAD, 'rr', dst, String(port), String(count)])).trim()) as { p50_us: number; p99_us: number };
  return { p50: r.p50_us, p99: r.p99_us };
}

/** One connection attempt from a fixed source port. */
export async function check(ns: Netns, dst: string, port: number, sport: number, timeoutMs = 300): Promise<Verdict> {
  return (await runIn(ns, [NETLOAD, 'check', dst, String(port), String(sport), String(timeoutMs)])).trim();
}

export interface ProbeSample {
  /** Start of the attempt, CLOCK_MONOTONIC ns (same clock as process.hrtime). */
  start: bigint;
  result: 'ok' | 'timeout' | 'refused' | 'error';
}

/** A continuous prober: a connection attempt every intervalUs, results as they resolve. */
export class Prober {
  readonly samples: ProbeSample[] = [];
  readonly #child: ChildProcess;
  #buf = '';

  constructor(cleanup: Cleanup, ns: Netns, dst: string, port: number, opts: { intervalUs: number; timeoutMs: number; sportFirst: number; sportLast: number }) {
    const argv = [NETLOAD, 'probe', dst, port, opts.intervalUs, opts.timeoutMs, opts.sportFirst, opts.sportLast].map(String);
    this.#child = spawn('nsenter', inNetns(ns, argv), { stdio: ['pipe', 'pipe', 'inherit'] });
    stopOnCleanup(cleanup, this.#child);
    this.#child.stdout!.on('data', (d: Buffer) => {
      this.#buf += d.toString();
      const lines = this.#buf.split('\n');
      this.#buf = lines.pop()!;
      for (const l of lines) {
        const [t, result] = l.split(' ');
        if (t && result) this.samples.push({ start: BigInt(t), result: result as ProbeSample['result'] });
      }
    });
  }

  get running(): boolean {
    return this.#child.exitCode === null && this.#child.signalCode === null;
  }

  stop(): void {
    this.#child.stdin?.end();
  }
}

/** An iperf3 server, bounded by `timeout` in case we die without cleaning up. */
export async function startIperfServer(cleanup: Cleanup, ns: Netns, port: number, maxSeconds = 600): Promise<ChildProcess> {
  const child = spawn('timeout', [String(maxSeconds), 'nsenter', ...inNetns(ns, ['iperf3', '-s', '-p', String(port)])], { stdio: ['ignore', 'ignore', 'pipe'] });
  stopOnCleanup(cleanup, child, 'SIGTERM'); // timeout passes SIGTERM on to iperf3
  // iperf3 -s prints nothing machine-readable when ready: poll its port.
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`iperf3 -s in ${ns.name} exited with ${child.exitCode}`);
    const ss = spawnSync('nsenter', inNetns(ns, ['ss', '-Hltn', `sport = :${port}`]), { encoding: 'utf8' });
    if (ss.stdout.trim()) return child;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`iperf3 -s in ${ns.name} did not listen on ${port}`);
}

/** One iperf3 TCP run; received Gbit/s. */
export async function iperf(ns: Netns, dst: string, port: number, seconds: number): Promise<number> {
  const out = await runIn(ns, ['iperf3', '-c', dst, '-p', String(port), '-t', String(seconds), '-J'], (seconds + 30) * 1000);
  const j = JSON.parse(out) as { end?: { sum_received?: { bits_per_second?: number } }; error?: string };
  const bps = j.end?.sum_received?.bits_per_second;
  if (!bps) throw new Error(`iperf3 gave no result: ${j.error ?? out.slice(0, 200)}`);
  return bps / 1e9;
}
