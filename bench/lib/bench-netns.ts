// Network namespaces for benchmarks, named apart from the tests' "slt" ones:
// the test suite's global setup and teardown delete every "slt*" namespace,
// so a benchmark run while tests run (another checkout, CI on the same box)
// would lose its pods mid-run. Names are "sbn<pid base36>-<tag><n>"; a run
// sweeps the namespaces of benchmark processes that no longer exist.
import { existsSync, readdirSync } from 'node:fs';
import { Cleanup, Netns, sh } from '../../test/helpers/netns.js';

export const BENCH_PREFIX = 'sbn';
let counter = 0;

function benchName(tag: string): string {
  counter += 1;
  return `${BENCH_PREFIX}${process.pid.toString(36)}-${tag.slice(0, 4)}${counter.toString(36)}`.slice(0, 15);
}

/** Same surface as the tests' Netns, another name. */
export class BenchNetns implements Netns {
  readonly name: string;
  readonly path: string;
  constructor(tag = 'n') {
    this.name = benchName(tag);
    this.path = `/var/run/netns/${this.name}`;
    sh('ip', ['netns', 'add', this.name]);
    sh('ip', ['-n', this.name, 'link', 'set', 'lo', 'up']);
  }
  exec(cmd: string, args: string[], opts: { allowFail?: boolean; input?: string } = {}): string {
    return sh('nsenter', [`--net=${this.path}`, cmd, ...args], opts);
  }
  ping(addr: string, count = 1, timeoutSeconds = 1): boolean {
    return sh('nsenter', [`--net=${this.path}`, 'ping', '-c', String(count), '-W', String(timeoutSeconds), '-q', addr], { allowFail: true }) !== '';
  }
  destroy(): void {
    if (existsSync(this.path)) sh('ip', ['netns', 'del', this.name], { allowFail: true });
  }
}

/** A Cleanup whose namespaces (TestNode's included) are BenchNetns. */
export class BenchCleanup extends Cleanup {
  override netns(tag?: string): Netns {
    const ns = new BenchNetns(tag);
    this.add(() => ns.destroy());
    return ns;
  }
}

/** Deletes namespaces left by benchmark processes that are gone (killed with SIGKILL). */
export function sweepStaleBenchNetns(): number {
  let names: string[] = [];
  try {
    names = readdirSync('/var/run/netns');
  } catch {
    return 0;
  }
  let n = 0;
  for (const name of names) {
    const m = new RegExp(`^${BENCH_PREFIX}([0-9a-z]+)-`).exec(name);
    if (!m) continue;
    const pid = parseInt(m[1]!, 36);
    if (pid === process.pid || existsSync(`/proc/${pid}`)) continue;
    sh('ip', ['netns', 'del', name], { allowFail: true });
    n++;
  }
  return n;
}
