// How `sluice explain` and `sluice test` print (PRODUCT.md §7). The test
// table has exactly one line per assertion starting with `ok` or `FAIL`
// (nothing else starts so: the chain under a failure is indented), then
// `N passed, M failed`. JSON: explain prints one object; test one object per
// line, per assertion, in file and document order.
import type { Assertion } from './assertions.js';
import { refText } from './evaluate.js';
import type { ExplainPath, Explanation } from './types.js';

/** What a live probe made of one assertion (absent offline). */
export interface ProbeReport {
  /** Whether it bears the compiled verdict out; false is a failure of its own. */
  agrees: boolean;
  /** "connected", "timeout", "not probed (not on this node)", … */
  text: string;
  /** Per probed address: what the probe saw and what it makes of it. */
  probes: Array<{ destination: string; result: string; verdict: 'allow' | 'deny' | 'allow-unconfirmed' | 'inconclusive' }>;
}

export interface AssertionResult {
  assertion: Assertion;
  explanation: Explanation;
  probe?: ProbeReport;
}

export function passed(r: AssertionResult): boolean {
  return r.explanation.verdict === r.assertion.expect && (r.probe?.agrees ?? true);
}

// ------------------------------------------------------------------ explain

/** `sluice explain -o json`: verdict, rules and reason first. */
export function explanationJson(e: Explanation): Record<string, unknown> {
  const { verdict, rules, reason, audit, from, to, port, judged, paths, learned } = e;
  return { verdict, rules, reason, ...(audit ? { audit } : {}), from, to, port, judged, paths, ...(learned ? { learned } : {}) };
}

export function explanationTable(e: Explanation): string {
  const lines = [`verdict: ${e.verdict}${e.audit ? ' (audit: an audit-mode policy would deny it)' : ''}`, `flow:    ${e.from} -> ${e.to} on ${e.judged}`, `rules:   ${e.rules.join(', ') || '-'}`, `reason:  ${e.reason}`];
  if (e.audit) lines.push(`audit:   ${e.audit.policies.join(', ')} would deny it (audit mode: it passes, reported as audit)`);
  if (e.learned) lines.push(`learned: ${e.learned.map((a) => `${a.ip} (${a.expiresInMs > 0 ? `${Math.ceil(a.expiresInMs / 1000)}s left` : 'expired'})`).join(', ') || 'no address yet'}`);
  lines.push('chain:', ...chain(e, '  '));
  return `${lines.join('\n')}\n`;
}

/** Each path (an address pair), then each enforcement point on it with the rules it matched. */
function chain(e: Explanation, indent: string): string[] {
  const out: string[] = [];
  for (const p of e.paths) {
    const nested = e.paths.length > 1 || p.source !== undefined || p.destination !== undefined;
    if (nested) out.push(`${indent}${pathHeader(p)}: ${p.verdict}`);
    const inner = nested ? `${indent}  ` : indent;
    if (!p.steps.length) out.push(`${inner}${p.reason}`);
    for (const s of p.steps) {
      out.push(`${inner}${s.direction.padEnd(7)} ${s.pod}  ${s.outcome}: ${s.text}`);
      for (const r of s.rules) out.push(`${inner}  - ${refText(r)}`);
    }
  }
  return out;
}

function pathHeader(p: ExplainPath): string {
  return `${p.source ?? '?'} -> ${p.destination ?? '(by name)'}`;
}

// ------------------------------------------------------------------ test

function portText(r: AssertionResult): string {
  const written = String(r.assertion.port);
  return written.toUpperCase() === r.explanation.judged || `${written}/TCP` === r.explanation.judged ? r.explanation.judged : `${written} (${r.explanation.judged})`;
}

/** One `ok`/`FAIL` line, then (for a failure) the explain chain, indented. */
function resultLines(r: AssertionResult): string[] {
  const { assertion: a, explanation: e, probe } = r;
  const head = `${a.from} -> ${a.to} ${portText(r)}`;
  const probeText = probe ? ` [probe: ${probe.text}]` : '';
  if (passed(r)) return [`ok    ${head}: ${e.verdict}${e.rules.length ? ` (${e.rules.join(', ')})` : ''}${e.audit ? ` (audit: ${e.audit.policies.join(', ')} would deny)` : ''}${probeText}`];
  const what =
    e.verdict !== a.expect
      ? `expected ${a.expect}, got ${e.verdict}${probe && !probe.agrees ? `, and the probe disagrees: ${probe.text}` : probeText}`
      : `probe disagrees with the compiled ${e.verdict}: ${probe!.text}`;
  return [`FAIL  ${head}: ${what}`, `      reason: ${e.reason}`, ...(e.rules.length ? [`      rules:  ${e.rules.join(', ')}`] : []), ...chain(e, '      '), `      (${a.where})`];
}

export function resultsTable(results: readonly AssertionResult[]): string {
  const failed = results.filter((r) => !passed(r)).length;
  return `${[...results.flatMap(resultLines), `${results.length - failed} passed, ${failed} failed`].join('\n')}\n`;
}

/** One line of `sluice test -o json`: from, to, port and expect as written, the verdict and the deciding policies. */
export function resultJson(r: AssertionResult): Record<string, unknown> {
  const { assertion: a, explanation: e, probe } = r;
  return {
    from: a.from,
    to: a.to,
    port: a.port,
    expect: a.expect,
    verdict: e.verdict,
    rules: e.rules,
    ok: passed(r),
    reason: e.reason,
    ...(e.audit ? { audit: e.audit } : {}),
    ...(probe ? { probe } : {}),
  };
}
