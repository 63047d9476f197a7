// `sluice fqdn`: what the DNS proxy has learned: each name's addresses, how
// long each stays allowed, and the FQDNPolicy rules it opens them for.
import { call, type FqdnNameRow } from '../api/index.js';
import type { RuleRef } from '../policy/index.js';
import { formatFlags, parseArgs, podFlag, UsageError, type FlagSpec } from '../config/index.js';
import { COMMON_FLAGS } from './operator.js';
import { formatTimeLeft, outputFormat, printJson, table, type OutputFormat } from './output.js';

const FLAGS: readonly FlagSpec[] = [{ name: 'pod', help: 'only names whose rules select this local pod, NS/NAME', default: '' }, ...COMMON_FLAGS];

export const FQDN_USAGE = `Usage: sluice fqdn [flags]

Names learned from trusted DNS answers, one row per (name, address):
  NAME      the name asked for, or a CNAME in its answer's chain, lower case,
            escaped as dig prints names: a dot inside a label is \\., a
            backslash \\\\, a space or a byte beyond ASCII \\DDD (decimal); so
            dot\\.example.test (labels "dot.example" and "test") is a name of
            its own, which a rule for dot.example.test does not match
  IP        an address the answer held
  TTL LEFT  time until new connections to it are dropped again:
            max(TTL, --fqdn-min-ttl) + --fqdn-grace from the last answer holding it
  RULES     the FQDNPolicy rules matching the name, NS/POLICY#INDEX (index in spec.egress)

Flags:
${formatFlags(FLAGS)}
`;

export interface FqdnOptions {
  pod: string | undefined;
  runDir: string;
  format: OutputFormat;
}

/** undefined: --help was asked for. */
export function parseFqdnArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): FqdnOptions | undefined {
  const { flags, positional } = parseArgs(argv, FLAGS, env);
  if (flags.help === 'true') return undefined;
  if (positional.length) throw new UsageError(`unexpected argument ${positional[0]}`);
  return { pod: podFlag(flags.pod), runDir: flags['run-dir']!, format: outputFormat(flags.output) };
}

export function formatRuleRef(r: RuleRef): string {
  return `${r.policy}#${r.rule}`;
}

export function fqdnTable(rows: readonly FqdnNameRow[]): string {
  const lines: string[][] = [];
  for (const row of [...rows].sort((a, b) => a.name.localeCompare(b.name))) {
    const rules = row.rules.length ? row.rules.map(formatRuleRef).join(',') : '-';
    if (!row.ips.length) lines.push([row.name, '-', '-', rules]);
    for (const ip of row.ips) lines.push([row.name, ip.ip, formatTimeLeft(ip.expiresInMs), rules]);
  }
  return table(['NAME', 'IP', 'TTL LEFT', 'RULES'], lines);
}

export async function fqdnCommand(argv: string[]): Promise<number> {
  const opts = parseFqdnArgs(argv);
  if (!opts) {
    process.stdout.write(FQDN_USAGE);
    return 0;
  }
  const rows = await call(opts.runDir, 'fqdn', opts.pod ? { pod: opts.pod } : undefined);
  if (opts.format === 'json') printJson(rows);
  else process.stdout.write(fqdnTable(rows));
  return 0;
}
