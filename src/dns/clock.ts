// Two clocks. Lifetimes are counted on CLOCK_MONOTONIC (what the datapath
// compares against: bpf_ktime_get_ns), persisted as wall-clock time (the
// monotonic clock restarts at boot, when pinned maps are gone too).

/**
 * Where performance.now()'s zero is on CLOCK_MONOTONIC, in ms: it counts
 * libuv's hrtime (CLOCK_MONOTONIC on Linux) from the process's start, so
 * the two differ by this constant. Measured once, as the reading whose
 * hrtime call sat tightest between two performance.now() calls (one split
 * by preemption is off by as long as it was held up).
 */
const MONO_ORIGIN_MS = ((): number => {
  let origin = 0;
  let spread = Infinity;
  for (let i = 0; i < 64; i++) {
    const before = performance.now();
    const mono = Number(process.hrtime.bigint()) / 1e6;
    const after = performance.now();
    if (after - before >= spread) continue;
    spread = after - before;
    origin = mono - (before + after) / 2;
  }
  return origin;
})();

/**
 * CLOCK_MONOTONIC in milliseconds, without the two BigInts per call of
 * process.hrtime.bigint() (the DNS proxy asks for every learned answer).
 */
export function monoNowMs(): number {
  return performance.now() + MONO_ORIGIN_MS;
}

export function monoMsToNs(ms: number): bigint {
  return BigInt(Math.floor(ms * 1000)) * 1000n;
}

export function monoNsToMs(ns: bigint): number {
  return Number(ns / 1000n) / 1000;
}

export function wallFromMono(monoMs: number, now = { mono: monoNowMs(), wall: Date.now() }): number {
  return Math.round(now.wall + (monoMs - now.mono));
}

export function monoFromWall(wallMs: number, now = { mono: monoNowMs(), wall: Date.now() }): number {
  return now.mono + (wallMs - now.wall);
}
