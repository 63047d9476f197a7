// Two clocks. Lifetimes are counted on CLOCK_MONOTONIC (what the datapath
// compares against: bpf_ktime_get_ns), persisted as wall-clock time (the
// monotonic clock restarts at boot, when pinned maps are gone too).

/** CLOCK_MONOTONIC in milliseconds (process.hrtime is CLOCK_MONOTONIC on Linux). */
export function monoNowMs(): number {
  return Number(process.hrtime.bigint() / 1000n) / 1000;
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
