// `sluice status` and `sluice endpoints`: views of the running agent.
import { formatFlags, parseArgs, UsageError, type FlagSpec } from '../config/index.js';
import { call, type EndpointRow, type StatusReply, type Wire } from '../api/index.js';
import { formatTimeLeft, outputFormat, printJson, table } from './output.js';

export const COMMON_FLAGS: readonly FlagSpec[] = [
  { name: 'run-dir', help: 'the agent\'s runtime directory (holds agent.sock)', default: '/run/sluice' },
  { name: 'output', short: 'o', help: 'table or json', default: 'table' },
  { name: 'help', short: 'h', help: 'show this help', boolean: true },
];

function parse(argv: string[], usage: string) {
  const { flags, positional } = parseArgs(argv, COMMON_FLAGS);
  if (flags.help === 'true') {
    process.stdout.write(`${usage}\n\nFlags:\n${formatFlags(COMMON_FLAGS)}\n`);
    return undefined;
  }
  if (positional.length) throw new UsageError(`unexpected argument ${positional[0]}`);
  return { runDir: flags['run-dir']!, format: outputFormat(flags.output) };
}

/** The `status` answer, as src/api defines it. */
export type { StatusReply };

const STATUS_USAGE = `Usage: sluice status [flags]

The agent's node, version and uptime, pod CIDRs and endpoint count; its
policy sources and whether each is in sync; the eBPF programs and where they
are attached; how full each pinned map is (counted at most every 10 s); in
standalone mode each manifest's state; each policy's Accepted condition;
what the DNS proxy has learned and its counters, and per pod the DNS dropped
over its budgets (rate-limited in the datapath, over its queries in flight,
TCP connections over the limits); what the last policy compile could not
apply; the agent's last logged errors.
Lists the node's PROBLEMS: what is failing now (the datapath could not be
programmed, unreadable state quarantined, the manifest directory gone).
Exit status: 0 when all is well; 1 when a manifest or a policy is rejected or
a problem is listed (recent errors alone do not count: they are history),
and when the agent cannot be reached; 2 for a usage error.`;

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
/** "learnedAnswers" → "learned-answers" */
const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** Seconds as the duration flags spell them: "45s", "3m10s", "26h5m". */
const formatUptime = (seconds: number): string => (seconds > 0 ? formatTimeLeft(seconds * 1000) : '0s');

const fill = (entries: number, capacity: number): string => (capacity > 0 ? `${((100 * entries) / capacity).toFixed(1)}%` : '-');

export function formatStatus(s: StatusReply): string {
  const out = [`node:        ${s.nodeName || '(unnamed)'}`];
  if (s.version !== undefined) out.push(`version:     ${s.version}, up ${formatUptime(s.uptimeSeconds ?? 0)} (since ${s.startedAt})`);
  out.push(`mode:        ${s.mode}`);
  if (s.sources) out.push(`sources:     ${s.sources.map((src) => `${src.name} ${src.synced ? 'synced' : 'NOT SYNCED'}`).join(', ') || '(none)'}`);
  out.push(`pod CIDRs:   ${s.podCidrs.join(', ')}`, `endpoints:   ${s.endpoints}`, `allocations: ${s.allocations}`);
  if (s.datapath) {
    out.push(`policy:      generation ${s.datapath.policyGeneration}`);
    if (s.datapath.nodeLinks.length) out.push(`node links:  ${s.datapath.nodeLinks.join(', ')}`);
  }
  if (s.fqdn) {
    out.push(`fqdn:        ${plural(s.fqdn.names, 'name')}, ${plural(s.fqdn.ips, 'address', 'addresses')} (${plural(s.fqdn.entries, 'datapath entry', 'datapath entries')})`);
    out.push(`dns proxy:   ${Object.entries(s.fqdn.proxy).map(([k, v]) => `${kebab(k)} ${v}`).join(', ')}`);
    if (s.fqdn.trusted) out.push(`trusted dns: ${s.fqdn.trusted.join(', ') || '(none: intercepted queries are refused)'}`);
  }
  if (s.kubernetes) {
    out.push(`kubernetes:  ${s.kubernetes.server}; ${s.kubernetes.reflectors.map((r) => `${r.kind} ${r.synced ? r.objects : 'not listed'}${r.error ? ' (failing)' : ''}`).join(', ')}`);
    if (s.kubernetes.routes.length) out.push(`routes:      ${s.kubernetes.routes.map((r) => `${r.dst} via ${r.gateway}`).join(', ')}`);
  }
  let text = `${out.join('\n')}\n`;
  if (s.datapath) {
    text += `\n${table(
      ['PROGRAM', 'HOOK', 'ATTACHED'],
      s.datapath.programs.map((p) => [p.program, p.hook, p.expected === undefined ? String(p.attached) : `${p.attached} of ${p.expected}`]),
    )}`;
    if (s.datapath.maps.length) {
      text += `\n${table(['MAP', 'ENTRIES', 'CAPACITY', 'FILL'], s.datapath.maps.map((m) => [m.map, String(m.entries), String(m.capacity), fill(m.entries, m.capacity)]))}`;
    }
  }
  if (s.fqdn?.pods?.length) {
    text += `\n${table(
      ['DNS POD', 'RATE-LIMITED', 'OVER-INFLIGHT', 'TCP-OVER-LIMIT', 'IN-FLIGHT', 'TCP-CONNS'],
      s.fqdn.pods.map((p) => [p.pod, String(p.rateLimited), String(p.overInflight), String(p.tcpOverLimit), String(p.inflight), String(p.tcpConnections)]),
    )}`;
  }
  if (s.manifests.length) {
    text += `\n${table(['MANIFEST', 'STATE', 'OBJECTS', 'ERROR'], s.manifests.map((m) => [m.file, m.ok ? 'applied' : 'REJECTED', String(m.objects), m.error ?? '']))}`;
  }
  if (s.policies?.length) {
    const rows = [...s.policies]
      .sort((a, b) => a.kind.localeCompare(b.kind) || a.policy.localeCompare(b.policy))
      .map((p) => {
        const message = p.accepted ? '' : `${p.message}${p.previousInForce ? ' (the previous version stays in force)' : ''}`;
        return [p.kind, p.policy, `Accepted=${p.accepted ? 'True' : 'False'}`, p.reason, message];
      });
    text += `\n${table(['KIND', 'POLICY', 'CONDITION', 'REASON', 'MESSAGE'], rows)}`;
  }
  if (s.warnings?.length) text += `\nWARNINGS\n${s.warnings.map((w) => `  ${w}\n`).join('')}`;
  if (s.recentErrors?.length) {
    const line = (e: NonNullable<StatusReply['recentErrors']>[number]) =>
      `  ${e.time} ${e.level === 'fatal' ? 'FATAL ' : ''}${e.subsystem ? `${e.subsystem}: ` : ''}${e.message}${e.error ? `: ${e.error}` : ''}${e.count > 1 ? ` (${e.count} times)` : ''}\n`;
    text += `\nRECENT ERRORS (oldest first)\n${s.recentErrors.map(line).join('')}`;
  }
  if (s.problems?.length) text += `\nPROBLEMS\n${s.problems.map((p) => `  ${p}\n`).join('')}`;
  return text;
}

/** 1 when something the operator wrote was rejected, or something is failing. */
export function statusExitCode(s: StatusReply): number {
  return s.manifests.some((m) => !m.ok) || s.policies?.some((p) => !p.accepted) || s.problems?.length ? 1 : 0;
}

export async function statusCommand(argv: string[]): Promise<number> {
  const opts = parse(argv, STATUS_USAGE);
  if (!opts) return 0;
  const s = await call(opts.runDir, 'status');
  if (opts.format === 'json') printJson(s);
  else process.stdout.write(formatStatus(s));
  return statusExitCode(s);
}

const ENDPOINTS_USAGE = `Usage: sluice endpoints [flags]

The pods on this node: their identity and labels, how policy treats each
direction (enforce: what no policy allows drops; audit: only audit-mode
policies select it, what they deny passes and is reported; none: not
isolated), how many policies select them, their addresses, host interface
and network namespace, and whether the datapath has them programmed.
Exit status: 0; 1 when the agent cannot be reached; 2 for a usage error.`;

/** "app=web,tier=db", sorted; "-" for none. */
const formatLabels = (labels: Record<string, string>): string =>
  Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',') || '-';

export function formatEndpoints(eps: ReadonlyArray<Wire<EndpointRow>>): string {
  return table(
    ['POD', 'IDENTITY', 'INGRESS', 'EGRESS', 'POLICIES', 'IPS', 'HOST IF', 'PROGRAMMED', 'LABELS'],
    eps.map((e) => [e.pod || '-', e.identity === null ? '-' : String(e.identity), e.ingress, e.egress, String(e.policies), e.ips.join(','), e.hostIfname, e.programmed ? 'yes' : 'NO', formatLabels(e.labels)]),
  );
}

export async function endpointsCommand(argv: string[]): Promise<number> {
  const opts = parse(argv, ENDPOINTS_USAGE);
  if (!opts) return 0;
  const eps = await call(opts.runDir, 'endpoints');
  if (opts.format === 'json') printJson(eps);
  else process.stdout.write(formatEndpoints(eps));
  return 0;
}
