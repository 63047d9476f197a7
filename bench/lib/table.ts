// The one table every benchmark prints:
//   Scenario | Samples | <result columns> | vs baseline
// Failed rows first, then the baseline, then the rest in declaration order.

export interface Row {
  scenario: string;
  samples: number;
  /** Column name → value already formatted, e.g. { 'min ms': '1.8' }. */
  results: Record<string, string>;
  /** e.g. "0.26x"; '' for the baseline itself. */
  vsBaseline: string;
  failed?: string;
  baseline?: boolean;
}

export function formatTable(title: string, rows: readonly Row[]): string {
  const resultCols = [...new Set(rows.flatMap((r) => Object.keys(r.results)))];
  const header = ['Scenario', 'Samples', ...resultCols, 'vs baseline'];
  const ordered = [...rows.filter((r) => r.failed), ...rows.filter((r) => !r.failed && r.baseline), ...rows.filter((r) => !r.failed && !r.baseline)];
  const body = ordered.map((r) => [
    `${r.scenario}${r.baseline ? ' (baseline)' : ''}`,
    String(r.samples),
    ...resultCols.map((c) => (r.failed ? 'FAILED' : (r.results[c] ?? ''))),
    r.failed ? r.failed : r.vsBaseline,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i < 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  return [`## ${title}`, '', line(header), `|${widths.map((w, i) => (i < 1 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`, ...body.map(line), ''].join('\n');
}

export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export interface Stats {
  n: number;
  min: number;
  median: number;
  p95: number;
  max: number;
  /** Half the interquartile range: the ± column. */
  spread: number;
}

export function stats(samples: readonly number[]): Stats {
  const s = [...samples].sort((a, b) => a - b);
  return {
    n: s.length,
    min: s[0] ?? NaN,
    median: quantile(s, 0.5),
    p95: quantile(s, 0.95),
    max: s[s.length - 1] ?? NaN,
    spread: (quantile(s, 0.75) - quantile(s, 0.25)) / 2,
  };
}

export function ratio(value: number, baseline: number): string {
  return `${(value / baseline).toFixed(2)}x`;
}

export function environment(): string {
  return `node ${process.version}, ${process.platform} ${(globalThis as { process: NodeJS.Process }).process.arch}`;
}
