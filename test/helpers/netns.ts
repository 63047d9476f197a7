// Test hosts as network namespaces. Every name carries TEST_PREFIX plus the
// worker's pid so parallel test files never collide, and global-setup sweeps
// anything a crashed run left behind. Tests may shell out to `ip`; the product
// may not.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export const TEST_PREFIX = 'slt';
let counter = 0;

export function sh(cmd: string, args: string[], opts: { input?: string; allowFail?: boolean } = {}): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', input: opts.input, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (err) {
    if (opts.allowFail) return '';
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.stderr || e.stdout || e.message}`);
  }
}

/** A short unique name (≤15 chars, fits IFNAMSIZ) for a link or netns. */
export function uniqueName(tag: string): string {
  counter += 1;
  return `${TEST_PREFIX}${(process.pid % 100000).toString(36)}${tag}${counter.toString(36)}`.slice(0, 15);
}

export class Netns {
  readonly name: string;
  readonly path: string;
  constructor(tag = 'n') {
    this.name = uniqueName(tag);
    this.path = `/var/run/netns/${this.name}`;
    sh('ip', ['netns', 'add', this.name]);
    sh('ip', ['-n', this.name, 'link', 'set', 'lo', 'up']);
  }
  /** Run a command inside the namespace (nsenter keeps /sys and bpffs visible). */
  exec(cmd: string, args: string[], opts: { allowFail?: boolean; input?: string } = {}): string {
    return sh('nsenter', [`--net=${this.path}`, cmd, ...args], opts);
  }
  ping(addr: string, count = 1, timeoutSeconds = 1): boolean {
    try {
      execFileSync('nsenter', [`--net=${this.path}`, 'ping', '-c', String(count), '-W', String(timeoutSeconds), '-q', addr], {
        stdio: 'ignore',
      });
      return true;
    } catch {
      return false;
    }
  }
  destroy(): void {
    if (existsSync(this.path)) sh('ip', ['netns', 'del', this.name], { allowFail: true });
  }
}

/** Collects cleanups and runs them in reverse, never stopping at a failure. */
export class Cleanup {
  #steps: Array<() => void> = [];
  add(step: () => void): void {
    this.#steps.push(step);
  }
  netns(tag?: string): Netns {
    const ns = new Netns(tag);
    this.add(() => ns.destroy());
    return ns;
  }
  run(): void {
    for (const step of this.#steps.reverse()) {
      try {
        step();
      } catch {
        // keep going: one failed cleanup must not leak the rest
      }
    }
    this.#steps = [];
  }
}

export const isRoot = process.getuid?.() === 0;
