// Log lines a pod can trigger (a hostile query, a flood, a resolver that
// answers garbage) are rate-limited per kind: a pod must not be able to fill
// the node's disk or drown the agent's other logs (CNI requests share the
// process). At most `perWindow` lines of one kind per window; the first line
// of a kind after some were suppressed carries how many (`suppressed`).
// Untrusted strings never go in the message or at the top level: callers
// put them under keys Sluice owns (`dns: { qname }`, `pod`).
import type { Logger } from '../log/index.js';

export interface LogLimitOptions {
  perWindow: number;
  windowMs: number;
  now?: () => number;
}

/** Fields of a line, or a function making them (only called for lines that are logged). */
export type Fields = Record<string, unknown> | (() => Record<string, unknown>);

interface Window {
  start: number;
  logged: number;
  suppressed: number;
}

/** 10 lines of a kind per 10 s: enough to see what happens, never a flood. */
export const DEFAULT_LOG_LIMIT: LogLimitOptions = { perWindow: 10, windowMs: 10_000 };

export class RateLimitedLog {
  readonly #log: Logger;
  readonly #perWindow: number;
  readonly #windowMs: number;
  readonly #now: () => number;
  /** Kinds are the call sites' constants, so this map stays small. */
  readonly #windows = new Map<string, Window>();

  constructor(log: Logger, opts: LogLimitOptions = DEFAULT_LOG_LIMIT) {
    this.#log = log;
    this.#perWindow = opts.perWindow;
    this.#windowMs = opts.windowMs;
    this.#now = opts.now ?? Date.now;
  }

  error(kind: string, obj: Fields, msg: string): void {
    this.#emit('error', kind, obj, msg);
  }

  warn(kind: string, obj: Fields, msg: string): void {
    this.#emit('warn', kind, obj, msg);
  }

  debug(kind: string, obj: Fields, msg: string): void {
    // Off in production: do not even count.
    if (!this.#log.isLevelEnabled('debug')) return;
    this.#emit('debug', kind, obj, msg);
  }

  #emit(level: 'error' | 'warn' | 'debug', kind: string, obj: Fields, msg: string): void {
    const now = this.#now();
    let w = this.#windows.get(kind);
    if (!w || now - w.start >= this.#windowMs) {
      w = { start: now, logged: 0, suppressed: w?.suppressed ?? 0 };
      this.#windows.set(kind, w);
    }
    if (w.logged >= this.#perWindow) {
      w.suppressed++;
      return;
    }
    w.logged++;
    const suppressed = w.suppressed;
    w.suppressed = 0;
    const fields = typeof obj === 'function' ? obj() : obj;
    this.#log[level](suppressed ? { ...fields, kind, suppressed } : { ...fields, kind }, msg);
  }
}
