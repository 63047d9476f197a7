// The upstream Kubernetes e2e suite (e2e.test of v1.31.4, built by
// test/k8s/build.sh) against Sluice on the real two-node cluster of
// cluster.ts: the cluster brought up as sluice.test.ts does (cni 'none',
// build/image/sluice.tar imported on each node, `kubectl apply -f deploy/`,
// the agents and nodes Ready, CoreDNS), then
//
//   e2e.test --provider=local --kubeconfig=… --ginkgo.focus=RE --ginkgo.skip=SCTP --report-dir=DIR …
//
// whose JUnit report (DIR/junit_01.xml) becomes one row per spec: name,
// passed/failed/skipped/not run, seconds. The library is used by
// e2e-netpol.test.ts (a fixed subset in `make test`); the CLI (run through
// test/k8s/e2e-upstream.mjs, which bundles this file) by `make e2e-upstream`:
//
//   node test/k8s/e2e-upstream.mjs [run] [--focus RE] [--skip RE] [--spec NAME]… [--timeout 90m]
//        [--report-dir DIR] [--doc FILE [--doc-section ID] [--doc-title TEXT]] [--keep-logs]
//   node test/k8s/e2e-upstream.mjs list [--focus RE] [--skip RE] [--spec NAME]…   (--ginkgo.dry-run: no cluster)
//   node test/k8s/e2e-upstream.mjs render --report-dir DIR --doc FILE […]          (a past run into the doc again)
//
// The cluster is taken under the machine's cluster lock (lock.ts) and always
// stopped: on success, failure, timeout, SIGINT/SIGTERM (cluster.ts's
// handlers; the e2e.test child is killed on exit).
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { Cluster, run } from './cluster.js';
import { AGNHOST_IMAGE } from './images.js';
import { lockCluster } from './lock.js';
import { K8S_VERSION, bin, requireBinaries } from './paths.js';

export const ROOT = join(import.meta.dirname, '../..');
export const SLUICE_IMAGE = join(ROOT, 'build/image/sluice.tar');
export const DEPLOY_DIR = join(ROOT, 'deploy');
export const E2E_BINARY = bin('e2e.test');
/** Selects the 45 NetworkPolicy specs of v1.31.4 with NETPOL_SKIP (43 `[Feature:NetworkPolicy]` + 2 `Netpol API`). */
export const NETPOL_FOCUS = '\\[Feature:NetworkPolicy\\]|Netpol';
/** This kernel has no SCTP. */
export const NETPOL_SKIP = 'SCTP';

export type SpecState = 'passed' | 'failed' | 'skipped' | 'not run';

export interface SpecResult {
  /** The spec's full text, as ginkgo focuses on it (no label suffix). */
  name: string;
  result: SpecState;
  seconds: number;
  /** The first line of the failure or skip message. */
  message?: string;
}

export interface E2ERun {
  /** One row per selected spec (the dry run's list), sorted by name. */
  results: SpecResult[];
  /** e2e.test's exit code (-1: killed). */
  code: number;
  timedOut: boolean;
  /** Wall time of e2e.test. */
  durationMs: number;
  reportDir: string;
  logFile: string;
  /** Where the results came from: the JUnit report, or (no report: killed) the progress log. */
  source: 'junit' | 'log';
}

export interface E2EOptions {
  kubeconfig: string;
  /** A ginkgo focus regex (default NETPOL_FOCUS), or… */
  focus?: string;
  /** …exact spec names (overrides focus). */
  specs?: string[];
  skip?: string;
  /** Whole e2e.test run; ginkgo's own --ginkgo.timeout is set a little shorter so it still writes its report. */
  timeoutMs?: number;
  /** Where the JUnit report, the full log and e2e's output go (default: a new temp dir). */
  reportDir?: string;
  log?: (msg: string) => void;
}

const defaultLog = (m: string) => console.log(`[e2e] ${m}`);

// ------------------------------------------------------------------ selection

/** A Go (RE2) regex matching `s` literally. */
export function goQuote(s: string): string {
  return s.replace(/[\\.*+?()|[\]{}^$]/g, '\\$&');
}

/**
 * A focus that selects exactly these specs. Ginkgo matches the focus against
 * the suite's description and the spec's text ("Kubernetes e2e suite [sig-network] Netpol …"),
 * so the start is anchored at a space, the end at the end.
 */
export function exactFocus(specs: string[]): string {
  if (!specs.length) throw new Error('no specs');
  return `(?:^| )(?:${specs.map(goQuote).join('|')})$`;
}

function focusOf(opts: { focus?: string; specs?: string[] }): string {
  return opts.specs?.length ? exactFocus(opts.specs) : (opts.focus ?? NETPOL_FOCUS);
}

// ------------------------------------------------------------------ parsing

/** Ginkgo's suite-level nodes, which are not specs. */
const SUITE_NODE = /^\[(?:Synchronized|Report)?(?:Before|After)Suite\]|^\[DeferCleanup \(Suite\)\]/;

function unescapeXml(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|lt|gt|amp|quot|apos);/g, (_, e: string) => {
    if (e === 'lt') return '<';
    if (e === 'gt') return '>';
    if (e === 'amp') return '&';
    if (e === 'quot') return '"';
    if (e === 'apos') return "'";
    return String.fromCodePoint(e.startsWith('#x') ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
  });
}

function attr(tag: string, name: string): string | undefined {
  const m = new RegExp(`\\s${name}="([^"]*)"`).exec(tag);
  return m ? unescapeXml(m[1]!) : undefined;
}

/**
 * The specs of a ginkgo JUnit report (e2e.test --report-dir: junit_01.xml):
 * every <testcase> with its status and time. Suite nodes ([BeforeSuite],
 * [SynchronizedBeforeSuite], [ReportAfterSuite], …) are left out. Specs the
 * focus filtered out are in the report too, as skipped: select with the dry
 * run's list (or filter on `result`).
 */
export function parseJUnit(xml: string): SpecResult[] {
  const out: SpecResult[] = [];
  const re = /<testcase\b([^>]*?)(\/>|>([\s\S]*?)<\/testcase>)/g;
  for (let m = re.exec(xml); m; m = re.exec(xml)) {
    const open = m[1]!;
    const body = m[3] ?? '';
    // e2e's JUnit names a spec by its leaf node type and text: "[It] [sig-network] Netpol …".
    const name = (attr(open, 'name') ?? '').replace(/^\[It\] /, '');
    if (SUITE_NODE.test(name)) continue;
    const seconds = Number(attr(open, 'time') ?? '0');
    const status = attr(open, 'status');
    const failure = /<(failure|error)\b([^>]*?)(?:\/>|>([\s\S]*?)<\/(?:failure|error)>)/.exec(body);
    const skipped = /<skipped\b([^>]*)\/?>/.exec(body);
    let result: SpecState;
    if (failure || status === 'failed' || status === 'panicked' || status === 'interrupted' || status === 'timedout' || status === 'aborted') result = 'failed';
    else if (skipped || status === 'skipped' || status === 'pending') result = 'skipped';
    else result = 'passed';
    // Ginkgo leaves the failure's message attribute empty and puts "[FAILED] message\nIn [It] at: …" in its body.
    const msg = failure
      ? attr(` ${failure[2]!}`, 'message') || unescapeXml(failure[3] ?? '').replace(/^\s*\[(?:FAILED|PANICKED|TIMEDOUT|INTERRUPTED|ABORTED)\]\s*/, '') || attr(` ${failure[2]!}`, 'type')
      : skipped
        ? attr(` ${skipped[1]!}`, 'message')
        : undefined;
    out.push({ name: stripLabels(name), result, seconds: Number.isFinite(seconds) ? seconds : 0, ...(msg ? { message: firstLine(msg) } : {}) });
  }
  return out;
}

function firstLine(s: string): string {
  const line = s.split('\n').map((l) => l.trim()).find((l) => l) ?? '';
  return line.length > 200 ? `${line.slice(0, 197)}...` : line;
}

/**
 * Ginkgo's reports and its verbose output append the spec's labels as a last
 * bracket with the label list (`… [Feature:NetworkPolicy] [sig-network, Feature:NetworkPolicy]`);
 * the spec text that --ginkgo.focus matches has no such suffix.
 */
export function stripLabels(name: string): string {
  return name.replace(/ \[(?:[A-Za-z][\w.:/-]*)(?:, [A-Za-z][\w.:/-]*)*\]$/, (suffix, offset: number) => {
    // Only a labels suffix: the text before it ends in its own brackets' last label.
    const text = name.slice(0, offset);
    const labels = suffix.slice(2, -1).split(', ');
    return labels.every((l) => text.includes(`[${l}]`)) ? '' : suffix;
  });
}

const SEPARATOR = /^-{20,}$/;
const SPEC_END = /^(•|S|P)\s*(?:\[(FAILED|SKIPPED|PANICKED|INTERRUPTED|TIMEDOUT|PENDING|ABORTED)\]\s*)?\[([\d.]+) seconds\]/;

/**
 * Progress from ginkgo's verbose (--ginkgo.v --ginkgo.no-color) output: a
 * spec starts with its text on the line after a separator, followed by its
 * location (`k8s.io/…:LINE`); it ends with `• [N seconds]` (passed),
 * `• [FAILED] [N seconds]`, `S [SKIPPED] [N seconds]`, … Used live (one line
 * per finished spec) and when e2e.test was killed before writing its report.
 */
export class GinkgoProgress {
  readonly done: SpecResult[] = [];
  /** The spec running now (its text), if any. */
  current: string | undefined;
  #prev = '';
  #candidate: string | undefined;
  #failure: string | undefined;
  /** The failed spec just ended, whose summary (with the message) follows. */
  #last: SpecResult | undefined;

  /** Feeds one line; returns the spec it finished, if any. */
  line(raw: string): SpecResult | undefined {
    const line = raw.replace(/\x1b\[[0-9;]*m/g, '').trimEnd();
    const prev = this.#prev;
    this.#prev = line;
    if (SEPARATOR.test(prev) && line.startsWith('[') && !SUITE_NODE.test(line)) {
      this.#candidate = line;
      return undefined;
    }
    if (this.#candidate !== undefined && /^\s*k8s\.io\/\S+:\d+/.test(line) && this.current === undefined) {
      this.current = stripLabels(this.#candidate);
      this.#candidate = undefined;
      this.#failure = undefined;
      return undefined;
    }
    this.#candidate = undefined;
    // The failure's message: "[FAILED] Had 2 wrong results…" (not "[FAILED] in [It] - file:line"),
    // printed again in the summary right after the spec's end line.
    const f = /^\s*\[(FAILED|PANICKED|TIMEDOUT|INTERRUPTED)\]\s+(.*\S)/.exec(line);
    const message = f && !/seconds\]$/.test(line) && !/^in \[/.test(f[2]!) ? f[2] : undefined;
    if (SEPARATOR.test(line)) this.#last = undefined;
    else if (message && this.#last && !this.#last.message) this.#last.message = firstLine(message);
    if (message && this.current !== undefined && this.#failure === undefined) this.#failure = message;
    const end = SPEC_END.exec(line.trim());
    if (end && this.current !== undefined) {
      const state = end[2];
      const result: SpecState = !state ? (end[1] === '•' ? 'passed' : 'skipped') : state === 'SKIPPED' || state === 'PENDING' ? 'skipped' : 'failed';
      const r: SpecResult = { name: this.current, result, seconds: Number(end[3]), ...(result === 'failed' && this.#failure ? { message: firstLine(this.#failure) } : {}) };
      this.done.push(r);
      this.current = undefined;
      this.#last = result === 'failed' ? r : undefined;
      return r;
    }
    return undefined;
  }
}

/** The spec names of a dry run's verbose output. */
export function parseDryRun(output: string): string[] {
  const p = new GinkgoProgress();
  for (const l of output.split('\n')) p.line(l);
  return p.done.map((r) => r.name);
}

// ------------------------------------------------------------------ e2e.test

function requireE2E(): void {
  requireBinaries(['e2e.test']);
}

/** Common e2e.test arguments (not the focus). */
export function e2eArgs(opts: { kubeconfig?: string; skip?: string; reportDir?: string; timeoutMs?: number; dryRun?: boolean }): string[] {
  const args = ['--provider=local', '--ginkgo.no-color', '--ginkgo.v', `--kubectl-path=${bin('kubectl')}`, '--disable-log-dump'];
  if (opts.kubeconfig) args.push(`--kubeconfig=${opts.kubeconfig}`);
  if (opts.skip) args.push(`--ginkgo.skip=${opts.skip}`);
  if (opts.reportDir) args.push(`--report-dir=${opts.reportDir}`, `--e2e-output-dir=${opts.reportDir}`);
  if (opts.timeoutMs) args.push(`--ginkgo.timeout=${Math.max(1, Math.floor(opts.timeoutMs / 1000))}s`);
  if (opts.dryRun) args.push('--ginkgo.dry-run');
  return args;
}

/** The specs a focus/skip selects (`--ginkgo.dry-run`, no cluster needed; < 1 s). */
export async function listSpecs(opts: { focus?: string; specs?: string[]; skip?: string } = {}): Promise<string[]> {
  requireE2E();
  const cwd = mkdtempSync(join(tmpdir(), 'sluice-e2e-dry-'));
  const cleanup = () => rmSync(cwd, { recursive: true, force: true });
  process.on('exit', cleanup); // a signal meanwhile
  let r;
  try {
    r = await run(E2E_BINARY, [...e2eArgs({ skip: opts.skip ?? NETPOL_SKIP, dryRun: true }), `--ginkgo.focus=${focusOf(opts)}`, `--e2e-output-dir=${cwd}`], { timeoutMs: 120_000 });
  } finally {
    cleanup();
    process.off('exit', cleanup);
  }
  if (r.code !== 0) throw new Error(`e2e.test --ginkgo.dry-run exited ${r.code}: ${(r.stderr || r.stdout).trim().split('\n').slice(-5).join('\n')}`);
  return parseDryRun(r.stdout + r.stderr);
}

/**
 * Runs e2e.test against the cluster of `kubeconfig` with the given focus;
 * resolves (never rejects for failing specs) with one row per selected spec.
 * At `timeoutMs` e2e.test gets SIGINT (ginkgo cleans up and writes its
 * report), SIGKILL 60 s later; ginkgo's own --ginkgo.timeout is 90 s shorter
 * (half as long for a run of less than 3 min), so normally ginkgo stops first.
 */
export async function runE2E(opts: E2EOptions): Promise<E2ERun> {
  requireE2E();
  const log = opts.log ?? defaultLog;
  const skip = opts.skip ?? NETPOL_SKIP;
  const focus = focusOf(opts);
  const timeoutMs = opts.timeoutMs ?? 90 * 60_000;
  const reportDir = resolve(opts.reportDir ?? mkdtempSync(join(tmpdir(), 'sluice-e2e-')));
  mkdirSync(reportDir, { recursive: true });
  // A report directory used again: nothing of the last run may pass for this one's.
  for (const f of ['junit_01.xml', 'e2e.log', 'results.json', 'run.json']) rmSync(join(reportDir, f), { force: true });
  const selected = await listSpecs({ focus, skip });
  if (opts.specs?.length) {
    const missing = opts.specs.filter((s) => !selected.includes(s));
    if (missing.length) throw new Error(`e2e.test ${K8S_VERSION} has no spec named:\n  ${missing.join('\n  ')}`);
  }
  log(`${selected.length} specs selected (focus ${focus}, skip ${skip}); report in ${reportDir}`);
  const logFile = join(reportDir, 'e2e.log');
  const args = [...e2eArgs({ kubeconfig: opts.kubeconfig, skip, reportDir, timeoutMs: Math.max(Math.floor(timeoutMs / 2), timeoutMs - 90_000) }), `--ginkgo.focus=${focus}`];
  writeFileSync(join(reportDir, 'command.txt'), `KUBECONFIG=${opts.kubeconfig} ${E2E_BINARY} ${args.map((a) => `'${a}'`).join(' ')}\n`);

  const t0 = Date.now();
  const out = createWriteStream(logFile);
  const progress = new GinkgoProgress();
  const child: ChildProcess = spawn(E2E_BINARY, args, { cwd: reportDir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KUBECONFIG: opts.kubeconfig } });
  // Whatever happens to this process (a signal, an exception), e2e.test does not outlive it.
  const killChild = () => child.kill('SIGKILL');
  process.on('exit', killChild);
  let timedOut = false;
  const timers: NodeJS.Timeout[] = [
    setTimeout(() => {
      timedOut = true;
      log(`timeout (${Math.round(timeoutMs / 1000)} s): interrupting e2e.test`);
      child.kill('SIGINT');
      timers.push(setTimeout(() => child.kill('SIGKILL'), 60_000));
    }, timeoutMs),
  ];
  const feed = () => {
    let buf = '';
    return (chunk: Buffer) => {
      out.write(chunk);
      buf += chunk.toString('utf8');
      let i = buf.indexOf('\n');
      while (i >= 0) {
        const r = progress.line(buf.slice(0, i));
        buf = buf.slice(i + 1);
        i = buf.indexOf('\n');
        if (r && (r.result !== 'skipped' || selected.includes(r.name))) {
          const n = progress.done.filter((d) => selected.includes(d.name)).length;
          log(`${String(n).padStart(2)}/${selected.length} ${r.result.toUpperCase().padEnd(7)} ${r.seconds.toFixed(1).padStart(6)} s  ${r.name}${r.message ? `  -- ${r.message}` : ''}`);
        }
      }
    };
  };
  child.stdout!.on('data', feed());
  child.stderr!.on('data', feed());
  const code = await new Promise<number>((res) => {
    child.on('error', (err) => {
      out.write(`\nspawn error: ${err.message}\n`);
      res(-1);
    });
    child.on('exit', (c, sig) => res(c ?? (sig ? -1 : 1)));
  });
  for (const t of timers) clearTimeout(t);
  process.off('exit', killChild);
  await new Promise((r) => out.end(r));
  const durationMs = Date.now() - t0;

  const { results, source } = collectResults(reportDir, selected, progress.done);
  // Ginkgo's own --ginkgo.timeout (shorter than ours) is a timeout of the run too.
  if (results.some((r) => /suite timeout/i.test(r.message ?? ''))) timedOut = true;
  const run: E2ERun = { results, code, timedOut, durationMs, reportDir, logFile, source };
  writeFileSync(join(reportDir, 'results.json'), JSON.stringify(run, null, 1));
  log(`e2e.test exited ${code}${timedOut ? ' (timed out)' : ''} after ${(durationMs / 1000).toFixed(0)} s; results from the ${source === 'junit' ? 'JUnit report' : 'progress log'}`);
  return run;
}

/**
 * One row per selected spec, sorted by name: from the JUnit report of
 * `reportDir` if there is one, else (e2e.test killed) from its progress log;
 * a selected spec in neither never ran.
 */
export function collectResults(reportDir: string, selected: string[], fromLog?: SpecResult[]): { results: SpecResult[]; source: E2ERun['source'] } {
  let logged = fromLog;
  if (!logged) {
    const p = new GinkgoProgress();
    const logFile = join(reportDir, 'e2e.log');
    if (existsSync(logFile)) for (const l of readFileSync(logFile, 'utf8').split('\n')) p.line(l);
    logged = p.done;
  }
  const junitFile = join(reportDir, 'junit_01.xml');
  let source: E2ERun['source'] = 'log';
  let found: SpecResult[] = logged;
  if (existsSync(junitFile)) {
    found = parseJUnit(readFileSync(junitFile, 'utf8'));
    source = 'junit';
  }
  const byName = new Map(found.map((r) => [r.name, r]));
  for (const r of logged) {
    const j = byName.get(r.name);
    if (!j) byName.set(r.name, r);
    else if (!j.message && r.message) j.message = r.message;
  }
  const results = [...selected].sort().map((name): SpecResult => {
    const r = byName.get(name);
    // Ginkgo reports a selected spec it never reached (suite timeout, interrupt) as skipped without a reason.
    if (!r || (r.result === 'skipped' && (!r.message || r.message === 'skipped'))) return { name, result: 'not run', seconds: 0 };
    return r;
  });
  return { results, source };
}

// ------------------------------------------------------------------ the cluster

/**
 * The two-node cluster with Sluice installed as sluice.test.ts installs it,
 * plus CoreDNS. Throws (and leaves nothing running) if a piece is missing or
 * does not come up. The caller holds the cluster lock and stops the cluster.
 */
export async function startSluiceCluster(opts: { log?: (msg: string) => void } = {}): Promise<Cluster> {
  if (!existsSync(SLUICE_IMAGE)) throw new Error(`${SLUICE_IMAGE} is missing: run make image`);
  requireE2E();
  const cluster = await Cluster.start({ cni: 'none', nodes: 2, podRoutes: false, ...(opts.log ? { log: opts.log } : {}) });
  try {
    for (const node of cluster.nodes) {
      const r = await cluster.ctr(node, ['images', 'import', SLUICE_IMAGE], { timeoutMs: 120_000 });
      if (r.code !== 0) throw new Error(`${node.name}: ctr images import: ${r.stderr || r.stdout}`);
      // The upstream specs run registry.k8s.io/e2e-test-images/agnhost:2.52 (IfNotPresent): it must be there by that name.
      const images = await cluster.ctr(node, ['images', 'ls', '-q'], { timeoutMs: 30_000 });
      if (!images.stdout.split('\n').includes(AGNHOST_IMAGE)) throw new Error(`${node.name}: ${AGNHOST_IMAGE} not imported (images: ${images.stdout.trim().replace(/\n/g, ', ')})`);
    }
    await cluster.kubectl(['apply', '-f', DEPLOY_DIR]);
    await cluster.waitPodsReady('kube-system', 'app.kubernetes.io/name=sluice', { min: 2, timeoutMs: 120_000 });
    await cluster.waitNodesReady(60_000);
    await cluster.deployCoreDNS({ timeoutMs: 120_000 });
  } catch (err) {
    cluster.stop({ keepLogs: true });
    throw err;
  }
  return cluster;
}

// ------------------------------------------------------------------ reporting

export interface RunInfo {
  date: string;
  commit: string;
  kubernetes: string;
  image: string;
  focus: string;
  skip: string;
  totalMs: number;
  bringUpMs: number;
  e2eMs: number;
  code: number;
  timedOut: boolean;
  command: string;
}

export function counts(results: SpecResult[]): Record<SpecState, number> {
  const c: Record<SpecState, number> = { passed: 0, failed: 0, skipped: 0, 'not run': 0 };
  for (const r of results) c[r.result]++;
  return c;
}

function mdCell(s: string): string {
  return s.replace(/\|/g, '\\|');
}

/** A markdown table, one row per spec (the common prefix shortened). */
export function formatTable(results: SpecResult[], opts: { messages?: boolean } = {}): string {
  const short = (n: string) => n.replace(/^\[sig-network\] Netpol /, '').replace(/ \[Feature:NetworkPolicy\]$/, '');
  const rows = results.map((r, i) => [String(i + 1), mdCell(short(r.name)), r.result, r.result === 'not run' ? '' : r.seconds.toFixed(1), ...(opts.messages ? [mdCell(r.message ?? '')] : [])]);
  const head = ['#', 'spec', 'result', 'seconds', ...(opts.messages ? ['failure'] : [])];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((h, i) => (i === 0 || h === 'seconds' ? '---:' : ':---')).join('|')}|`];
  for (const r of rows) lines.push(`| ${r.join(' | ')} |`);
  return lines.join('\n');
}

function summaryLine(results: SpecResult[]): string {
  const c = counts(results);
  return `${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped, ${c['not run']} not run (of ${results.length})`;
}

/** The markdown of one run: what, when, against what, the table, how to rerun it. */
export function formatSection(title: string, results: SpecResult[], info: RunInfo): string {
  const mins = (ms: number) => `${(ms / 60_000).toFixed(1)} min`;
  return [
    `## ${title}`,
    '',
    `- **Date**: ${info.date}`,
    `- **Sluice commit**: \`${info.commit}\`; image \`build/image/sluice.tar\` sha256 \`${info.image}\``,
    `- **Kubernetes**: ${info.kubernetes} (e2e.test, kube-apiserver, kubelet, kube-proxy in iptables mode), 2 nodes, CoreDNS`,
    `- **Selection**: \`--ginkgo.focus='${info.focus}' --ginkgo.skip='${info.skip}'\``,
    `- **Result**: ${summaryLine(results)}${info.timedOut ? ' — **the run hit its timeout**; specs marked "not run" never started' : ''}`,
    `- **Time**: ${mins(info.totalMs)} in all (cluster bring-up ${mins(info.bringUpMs)}, e2e.test ${mins(info.e2eMs)}, exit code ${info.code})`,
    `- **Rerun**: \`${info.command}\``,
    '',
    formatTable(results, { messages: results.some((r) => r.result === 'failed') }),
    '',
  ].join('\n');
}

const DOC_HEADER = `# Conformance: the upstream Kubernetes NetworkPolicy e2e suite

The NetworkPolicy specs of the upstream Kubernetes e2e suite (\`e2e.test\` of v1.31.4, built from source
by \`test/k8s/build.sh\`), run against Sluice on the real two-node cluster of \`test/k8s/cluster.ts\`: no
CNI until \`kubectl apply -f deploy/\` installs Sluice from \`build/image/sluice.tar\`, kube-proxy in
iptables mode, CoreDNS. \`--ginkgo.focus='\\[Feature:NetworkPolicy\\]|Netpol' --ginkgo.skip=SCTP\`
selects 45 specs: 43 \`[Feature:NetworkPolicy]\` specs and the 2 \`Netpol API\` specs. The 5 SCTP specs are
skipped (the test kernel has no SCTP; 2 of them only write SCTP policies and probe over TCP, but their
names match \`SCTP\` too).

Each spec builds a 3×3 matrix of agnhost pods (namespaces x, y, z; pods a, b, c),
applies policies and probes every pair with \`/agnhost connect\` **to the target pod's ClusterIP Service**
(TCP/UDP 80/81); a probe is retried with backoff for ~10 s and a wrong matrix is probed a second time,
then the spec fails with "Had N wrong results in reachability matrix". Probes of a pod to its own
Service (hairpin) are made but not counted. A passing spec takes 15–45 s (most ~20 s), a failing one
30–240 s.

## Running it

\`\`\`sh
make e2e-upstream          # all 45; writes the "Latest run" section below; fails if a spec failed
\`\`\`

It builds what it needs first (\`make build image\`, and \`e2e.test\` once if the cache lacks it), takes
the machine's cluster lock (\`test/k8s/lock.ts\`, as the other k8s tests do), brings the cluster up, runs
\`e2e.test --provider=local --kubeconfig=… --report-dir=…\` with a 90 min limit (\`E2E_TIMEOUT=…\` to
change it; ginkgo's own \`--ginkgo.timeout\` is 90 s shorter so it still writes its report), and stops the
cluster whatever happens (\`node test/k8s/cli.mjs down\` undoes a crashed run). By hand, other selections:

\`\`\`sh
node test/k8s/e2e-upstream.mjs list                       # the selected spec names (dry run, no cluster)
node test/k8s/e2e-upstream.mjs --timeout 30m --spec "[sig-network] Netpol NetworkPolicy between server and client should support a 'default-deny-ingress' policy [Feature:NetworkPolicy]"
node test/k8s/e2e-upstream.mjs --focus 'Netpol .*UDP' --report-dir /tmp/e2e --keep-logs
node test/k8s/e2e-upstream.mjs render --report-dir /tmp/e2e --doc docs/conformance.md --doc-section latest
\`\`\`

Each run leaves in its report directory (printed; \`--report-dir\`) e2e.test's JUnit report
(\`junit_01.xml\`), its whole output (\`e2e.log\`: the expected, observed and wrong matrices of a failed
spec are there), the exact command (\`command.txt\`), \`results.json\` and \`run.json\` (what \`render\` reads).
While it runs it prints one line per finished spec.

\`make test\` runs 15 of these specs by exact name (\`test/k8s/e2e-netpol.test.ts\`, ~5 min): the 2 API
specs and 13 fast ones that passed in the baseline below — ingress by pod, by namespace (labels,
\`matchExpressions\`, the \`kubernetes.io/metadata.name\` label) and both together, a pod relabelled under a
policy, allow-all, ports, TCP vs UDP, UDP ports, and egress denial — each of which must pass.
`;

/** Replaces (or appends) section `id` of the conformance doc, creating the doc with its header if needed. */
export function writeDocSection(file: string, id: string, markdown: string): void {
  const begin = `<!-- e2e-upstream:${id} begin -->`;
  const end = `<!-- e2e-upstream:${id} end -->`;
  const block = `${begin}\n${markdown.trimEnd()}\n${end}`;
  let doc = existsSync(file) ? readFileSync(file, 'utf8') : `${DOC_HEADER}\n`;
  const a = doc.indexOf(begin);
  const b = doc.indexOf(end);
  if (a >= 0 && b > a) doc = `${doc.slice(0, a)}${block}${doc.slice(b + end.length)}`;
  else doc = `${doc.trimEnd()}\n\n${block}\n`;
  writeFileSync(file, doc);
}

function gitCommit(): string {
  try {
    const head = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short=12', 'HEAD'], { encoding: 'utf8', timeout: 10_000 }).trim();
    const dirty = execFileSync('git', ['-C', ROOT, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8', timeout: 10_000 }).trim();
    return dirty ? `${head} (with uncommitted changes)` : head;
  } catch {
    return 'unknown';
  }
}

function fileSha256(file: string): string {
  try {
    return createHash('sha256').update(readFileSync(file)).digest('hex').slice(0, 16);
  } catch {
    return 'missing';
  }
}

// ------------------------------------------------------------------ CLI

function parseDuration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(s);
  if (!m) throw new Error(`bad duration ${s} (e.g. 90m, 600s)`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
}

const USAGE = `usage: e2e-upstream [run] [--focus RE] [--skip RE] [--spec NAME]... [--timeout 90m] [--report-dir DIR]
                    [--doc FILE [--doc-section ID] [--doc-title TEXT]] [--keep-logs]
       e2e-upstream list [--focus RE] [--skip RE] [--spec NAME]...
       e2e-upstream render --report-dir DIR --doc FILE [--doc-section ID] [--doc-title TEXT]`;

function writeDoc(file: string, section: string, title: string, results: SpecResult[], info: RunInfo): void {
  writeDocSection(file, section, formatSection(title, results, info));
  console.log(`written: ${relative(process.cwd(), resolve(file)) || file} (section ${section})`);
}

/** The CLI; returns the exit code (0: every selected spec passed). */
export async function main(argv: string[]): Promise<number> {
  const t0 = Date.now();
  let cmd = 'run';
  if (argv[0] === 'run' || argv[0] === 'list' || argv[0] === 'render') cmd = argv.shift()!;
  let focus: string | undefined;
  let skip = NETPOL_SKIP;
  const specs: string[] = [];
  let timeoutMs = 90 * 60_000;
  let reportDir: string | undefined;
  let doc: string | undefined;
  let docSection = 'latest';
  let docTitle: string | undefined;
  let keepLogs = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value\n${USAGE}`);
      return v;
    };
    if (a === '--focus') focus = val();
    else if (a === '--skip') skip = val();
    else if (a === '--spec') specs.push(val());
    else if (a === '--timeout') timeoutMs = parseDuration(val());
    else if (a === '--report-dir') reportDir = val();
    else if (a === '--doc') doc = val();
    else if (a === '--doc-section') docSection = val();
    else if (a === '--doc-title') docTitle = val();
    else if (a === '--keep-logs') keepLogs = true;
    else if (a === '-h' || a === '--help') {
      console.log(USAGE);
      return 0;
    } else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  const sel = specs.length ? { specs, skip } : { focus: focus ?? NETPOL_FOCUS, skip };

  if (cmd === 'render') {
    // A report directory's run (run.json, junit_01.xml or e2e.log) into the doc again, e.g. after the parser changed.
    if (!reportDir || !doc) throw new Error(`render needs --report-dir DIR and --doc FILE\n${USAGE}`);
    const saved = JSON.parse(readFileSync(join(reportDir, 'run.json'), 'utf8')) as { info: RunInfo; selected: string[] };
    const { results } = collectResults(reportDir, saved.selected);
    writeDoc(doc, docSection, docTitle ?? `Latest run (${saved.info.date.slice(0, 10)})`, results, saved.info);
    return 0;
  }

  if (cmd === 'list') {
    const names = await listSpecs(sel);
    for (const n of names) console.log(n);
    console.error(`${names.length} specs`);
    return 0;
  }

  const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const commit = gitCommit();
  const image = fileSha256(SLUICE_IMAGE);
  // SIGINT/SIGTERM/SIGHUP: before the cluster exists, exit (releasing the lock); once it does,
  // cluster.ts's handlers stop it and exit. This listener stays while they run, so a second
  // signal (`timeout` signals the whole process group, e2e-upstream.mjs forwards it too) cannot
  // kill the process by the default action halfway through stopping the cluster.
  let cluster: Cluster | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (!cluster) process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const sig of signals) process.on(sig, onSignal);
  const unlock = await lockCluster(30 * 60_000);
  process.on('exit', unlock); // also when a signal handler exits
  let failed = true;
  let broken = true; // the cluster or the run went wrong (not just failing specs): keep the cluster's logs
  try {
    const tUp = Date.now();
    cluster = await startSluiceCluster();
    const bringUpMs = Date.now() - tUp;
    const result = await runE2E({ kubeconfig: cluster.kubeconfig, ...sel, timeoutMs, ...(reportDir ? { reportDir } : {}) });
    const c = counts(result.results);
    failed = c.failed + c['not run'] > 0 || result.results.length === 0;
    broken = result.timedOut || c['not run'] > 0;
    console.log(`\n${formatTable(result.results, { messages: c.failed > 0 })}\n\n${summaryLine(result.results)}; e2e.test ${(result.durationMs / 60_000).toFixed(1)} min, bring-up ${(bringUpMs / 1000).toFixed(0)} s\nreport: ${result.reportDir}`);
    // The same selection again: the make target for the default one, else this CLI with the selection's flags.
    const q = (a: string) => (/^[\w./=:-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`);
    const rerun = !specs.length && !focus && skip === NETPOL_SKIP
      ? 'make e2e-upstream'
      : ['node test/k8s/e2e-upstream.mjs', ...(focus ? ['--focus', focus] : []), ...(skip !== NETPOL_SKIP ? ['--skip', skip] : []), ...specs.flatMap((n) => ['--spec', n])].map((a, i) => (i ? q(a) : a)).join(' ');
    const info: RunInfo = {
      date,
      commit,
      kubernetes: K8S_VERSION,
      image,
      focus: sel.specs ? exactFocus(sel.specs) : sel.focus!,
      skip,
      totalMs: Date.now() - t0,
      bringUpMs,
      e2eMs: result.durationMs,
      code: result.code,
      timedOut: result.timedOut,
      command: rerun,
    };
    writeFileSync(join(result.reportDir, 'run.json'), JSON.stringify({ info, selected: result.results.map((r) => r.name) }, null, 1));
    if (doc) writeDoc(doc, docSection, docTitle ?? `Latest run (${date.slice(0, 10)})`, result.results, info);
  } finally {
    cluster?.stop({ keepLogs: keepLogs || broken });
    unlock();
    process.off('exit', unlock);
    for (const sig of signals) process.off(sig, onSignal);
  }
  return failed ? 1 : 0;
}
