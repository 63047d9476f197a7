// -o table|json for every operator command.
import { UsageError } from '../config/index.js';

export type OutputFormat = 'table' | 'json';

export function outputFormat(v: string | undefined): OutputFormat {
  if (v === 'table' || v === 'json') return v;
  throw new UsageError(`-o must be table or json, not ${JSON.stringify(v)}`);
}

export function table(headers: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return `${[line(headers), ...rows.map(line)].join('\n')}\n`;
}

export function printJson(v: unknown): void {
  process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
}

/**
 * Time left until a deadline, as the duration flags spell it: "27s",
 * "1m10s", "2h5m"; "expired" once it is reached. Rounded up, so an entry
 * shows "1s" until it has actually run out.
 */
export function formatTimeLeft(ms: number): string {
  if (!(ms > 0)) return 'expired';
  const s = Math.ceil(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? `${s % 60}s` : ''}`;
  const m = Math.floor((s % 3600) / 60);
  return `${Math.floor(s / 3600)}h${m ? `${m}m` : ''}`;
}
