// One root pino logger (JSON lines on stdout), a child per subsystem. Untrusted
// strings go under keys Sluice owns (`pod`, `dns.qname`), never top level.
import pino, { type Logger, type Level } from 'pino';

export type { Logger };

const LEVELS: readonly Level[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'];

let root: Logger | undefined;

export function isLogLevel(v: string): v is Level {
  return (LEVELS as readonly string[]).includes(v);
}

export function initLogger(level: string, destination?: pino.DestinationStream): Logger {
  if (!isLogLevel(level)) throw new Error(`invalid log level ${JSON.stringify(level)} (one of ${LEVELS.join(', ')})`);
  root = pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, destination ?? pino.destination({ fd: 1, sync: true }));
  return root;
}

export function logger(subsystem: string): Logger {
  root ??= initLogger(process.env.SLUICE_LOG_LEVEL ?? 'info');
  return root.child({ subsystem });
}
