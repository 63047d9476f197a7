// The agent's last error lines, for `sluice status` (recentErrors): a tee in
// front of the log's destination keeps the error and fatal lines pino writes,
// whichever subsystem wrote them. Only those lines are parsed (pino starts
// every line with its level, so the others cost one prefix test); the same
// error again (a retry failing the same way) bumps a count instead of
// pushing the others out.

/** One error the agent logged. */
export interface RecentError {
  /** When it was last logged (ISO time). */
  time: string;
  level: 'error' | 'fatal';
  /** The logger's subsystem ("policy", "fqdn"…), "" if none. */
  subsystem: string;
  message: string;
  /** The error's own message, when the line carried one (`err` or `error`). */
  error?: string;
  /** How many times in a row it was logged. */
  count: number;
}

/** What pino writes to (a SonicBoom, or anything with write). */
export interface LogDestination {
  write(line: string): unknown;
  flush?(): void;
}

const DEFAULT_KEEP = 20;
/** Error texts can be long (a verifier log): status shows the start. */
const MAX_TEXT = 400;

const clip = (s: string): string => (s.length > MAX_TEXT ? `${s.slice(0, MAX_TEXT)}…` : s);

export class RecentErrors {
  readonly #keep: number;
  readonly #errors: RecentError[] = [];

  constructor(keep = DEFAULT_KEEP) {
    this.#keep = keep;
  }

  /** A destination that writes every line to `dest` and keeps the error lines. */
  tee(dest: LogDestination): LogDestination {
    return {
      write: (line: string) => {
        const written = dest.write(line);
        // pino's lines start with {"level":N; error is 50, fatal 60.
        if (line.startsWith('{"level":5') || line.startsWith('{"level":6')) this.add(line);
        return written;
      },
      flush: () => dest.flush?.(),
    };
  }

  /** One JSON log line; anything but an error or fatal line is ignored. */
  add(line: string): void {
    let rec: { level?: unknown; time?: unknown; subsystem?: unknown; msg?: unknown; err?: { message?: unknown }; error?: unknown };
    try {
      rec = JSON.parse(line);
    } catch {
      return;
    }
    if (rec.level !== 50 && rec.level !== 60) return;
    const detail = typeof rec.err?.message === 'string' ? rec.err.message : typeof rec.error === 'string' ? rec.error : undefined;
    const entry: RecentError = {
      time: typeof rec.time === 'string' ? rec.time : new Date().toISOString(),
      level: rec.level === 60 ? 'fatal' : 'error',
      subsystem: typeof rec.subsystem === 'string' ? rec.subsystem : '',
      message: clip(typeof rec.msg === 'string' ? rec.msg : ''),
      ...(detail !== undefined ? { error: clip(detail) } : {}),
      count: 1,
    };
    const last = this.#errors.at(-1);
    if (last && last.level === entry.level && last.subsystem === entry.subsystem && last.message === entry.message && last.error === entry.error) {
      last.time = entry.time;
      last.count++;
      return;
    }
    this.#errors.push(entry);
    if (this.#errors.length > this.#keep) this.#errors.shift();
  }

  /** Oldest first (copies). */
  list(): RecentError[] {
    return this.#errors.map((e) => ({ ...e }));
  }
}
