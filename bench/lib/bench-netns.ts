// Benchmarks name their namespaces apart from the tests' ("sbn" instead of
// "slt"), with the owner's pid in the name like every test name, so a sweep
// only ever removes what a process that is gone left behind.
import { readdirSync } from 'node:fs';
import { Cleanup, ownerGone, sh } from '../../test/helpers/netns.js';

export const BENCH_PREFIX = 'sbn';

/** Runs `cleanup` when the benchmark is interrupted (SIGINT, SIGTERM), then exits as the signal would. */
export function cleanUpOnSignals(cleanup: Cleanup): void {
  process.once('SIGINT', () => {
    cleanup.run();
    process.exit(130);
  });
  process.once('SIGTERM', () => {
    cleanup.run();
    process.exit(143);
  });
}

/** A Cleanup whose namespaces (TestNode's included) carry the bench prefix. */
export class BenchCleanup extends Cleanup {
  constructor() {
    super(BENCH_PREFIX);
  }
}

/**
 * Deletes namespaces left by benchmark processes that are gone (killed with
 * SIGKILL), after killing what still runs in them (servers a dead benchmark
 * started there: deleting the netns alone would leave them running).
 */
export function sweepStaleBenchNetns(): number {
  let names: string[] = [];
  try {
    names = readdirSync('/var/run/netns');
  } catch {
    return 0;
  }
  let n = 0;
  for (const name of names) {
    if (!ownerGone(name, BENCH_PREFIX)) continue;
    for (const pid of sh('ip', ['netns', 'pids', name], { allowFail: true }).split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone already
      }
    }
    sh('ip', ['netns', 'del', name], { allowFail: true });
    n++;
  }
  return n;
}
