// Test hosts as network namespaces. Every name is "<prefix><owner pid in
// base 36>-<tag><n>", so parallel processes never collide and a sweep removes
// only what a process that is gone left behind (never a live run's: another
// checkout's tests or a benchmark may be running on the same machine). Tests
// may shell out to `ip`; the product may not.
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

/** A short unique name (≤15 chars, fits IFNAMSIZ) for a link, netns or pin directory. */
export function uniqueName(tag: string, prefix = TEST_PREFIX): string {
  counter += 1;
  const name = `${prefix}${process.pid.toString(36)}-${tag.slice(0, 3)}${counter.toString(36)}`;
  if (name.length > 15) throw new Error(`name ${name} does not fit IFNAMSIZ`);
  return name;
}

/** Whether `name` (made by uniqueName with `prefix`) belongs to a process that is gone. */
export function ownerGone(name: string, prefix = TEST_PREFIX): boolean {
  const m = new RegExp(`^${prefix}([0-9a-z]+)-`).exec(name);
  if (!m) return false;
  const pid = parseInt(m[1]!, 36);
  return pid !== process.pid && !existsSync(`/proc/${pid}`);
}

export class Netns {
  readonly name: string;
  readonly path: string;
  constructor(tag = 'n', prefix = TEST_PREFIX) {
    this.name = uniqueName(tag, prefix);
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
  readonly #prefix: string;
  constructor(prefix = TEST_PREFIX) {
    this.#prefix = prefix;
  }
  add(step: () => void): void {
    this.#steps.push(step);
  }
  netns(tag?: string): Netns {
    const ns = new Netns(tag, this.#prefix);
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
