// `sluice status` and `sluice endpoints`: views of the running agent.
import { formatFlags, parseArgs, UsageError, type FlagSpec } from '../config/index.js';
import { call, type StatusReply } from '../api/index.js';
import { outputFormat, printJson, table } from './output.js';

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

The agent's node, pod CIDRs and endpoint count; in standalone mode each
manifest's state; each policy's Accepted condition; what the DNS proxy has
learned and its counters, and per pod the DNS dropped over its budgets
(rate-limited in the datapath, over its queries in flight, TCP connections
over the limits); what the last policy compile could not apply.
Lists the node's PROBLEMS: what is failing now (the datapath could not be
programmed, unreadable state quarantined, the manifest directory gone).
Exits 1 when a manifest or a policy is rejected, or a problem is listed.`;

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
/** "learnedAnswers" → "learned-answers" */
const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

export function formatStatus(s: StatusReply): string {
  const out = [`node:        ${s.nodeName || '(unnamed)'}`, `mode:        ${s.mode}`, `pod CIDRs:   ${s.podCidrs.join(', ')}`, `endpoints:   ${s.endpoints}`, `allocations: ${s.allocations}`];
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

export async function endpointsCommand(argv: string[]): Promise<number> {
  const opts = parse(argv, 'Usage: sluice endpoints [flags]\n\nThe pods on this node: addresses, host interface, whether the datapath has them programmed.');
  if (!opts) return 0;
  const eps = await call(opts.runDir, 'endpoints');
  if (opts.format === 'json') {
    printJson(eps);
    return 0;
  }
  process.stdout.write(
    table(
      ['POD', 'CONTAINER', 'IFNAME', 'HOST IF', 'IPS', 'PROGRAMMED'],
      eps.map((e) => [e.pod || '-', e.containerId.slice(0, 12), e.ifname, e.hostIfname, e.ips.join(','), e.programmed ? 'yes' : 'NO']),
    ),
  );
  return 0;
}
