// `sluice explain`: the verdict of one flow and the policies and rules behind
// it, from the compiler the datapath is fed from: live (the agent's own
// policy and learned names) or offline against a manifest directory.
import { call } from '../api/index.js';
import { formatFlags, parseArgs, UsageError, type FlagSpec } from '../config/index.js';
import { explain, ExplainError, explanationJson, explanationTable, loadWorld, parsePort, parseSubject, type Explanation, type ExplainQuery } from '../explain/index.js';
import { COMMON_FLAGS } from './operator.js';
import { outputFormat, printJson, type OutputFormat } from './output.js';

/** The flags `explain` and `test` share: where the policy comes from. */
export const SOURCE_FLAGS: readonly FlagSpec[] = [
  { name: 'manifests', help: 'judge offline against every *.yaml/*.yml in this directory: no agent, no root', default: '' },
  { name: 'live', help: 'judge against the running agent (--run-dir)', boolean: true },
];

const FLAGS: readonly FlagSpec[] = [
  { name: 'from', help: 'the source: a pod NS/NAME, or an IP address', default: '' },
  { name: 'to', help: 'the destination: a pod NS/NAME, an IP address, or a DNS name', default: '' },
  { name: 'port', help: 'NUMBER/TCP|UDP|SCTP (no protocol: TCP), or a port name of the destination pod', default: '' },
  ...SOURCE_FLAGS,
  ...COMMON_FLAGS,
];

export const EXPLAIN_USAGE = `Usage: sluice explain --from NS/POD --to NS/POD|IP|NAME --port 443/TCP [flags]

Whether the datapath allows a new flow, and why: for the source pod's egress
and the destination pod's ingress, the policies isolating it and the rules
whose entries match (or that none does). Computed from the same compiled
policy the datapath enforces: against the running agent (the default), or
offline with --manifests DIR. A pod with addresses of both families is judged
per family (allowed only if both are). A DNS name is judged by the pod's FQDN
rules and by egress rules open to every destination; live, by the addresses
the agent has learned for it. See docs/policy-testing.md.

Exit status: 0 with an answer (allow or deny), 1 when the agent cannot
answer (or does not know the pod), 2 for a usage error or a manifest that
does not parse.

Flags:
${formatFlags(FLAGS)}
`;

export interface ExplainOptions {
  query: ExplainQuery;
  /** Offline: the manifest directory; undefined: live. */
  manifests: string | undefined;
  runDir: string;
  format: OutputFormat;
}

/** --manifests DIR, or live: both is a usage error. */
export function sourceOf(flags: Record<string, string | undefined>): string | undefined {
  if (flags.manifests && flags.live === 'true') throw new UsageError('--manifests and --live exclude each other');
  return flags.manifests || undefined;
}

/** undefined: --help was asked for. */
export function parseExplainArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ExplainOptions | undefined {
  const { flags, positional } = parseArgs(argv, FLAGS, env);
  if (flags.help === 'true') return undefined;
  if (positional.length) throw new UsageError(`unexpected argument ${positional[0]}`);
  for (const f of ['from', 'to', 'port']) if (!flags[f]) throw new UsageError(`--${f} is required`);
  const query = { from: flags.from!, to: flags.to!, port: flags.port! };
  // The form is checked here, before any agent is asked.
  usage(() => (parseSubject(query.from, 'from'), parseSubject(query.to, 'to'), parsePort(query.port)));
  return { query, manifests: sourceOf(flags), runDir: flags['run-dir']!, format: outputFormat(flags.output) };
}

/** Runs `fn`; an ExplainError (a bad query, a pod the manifests lack, a manifest that does not parse) is a usage error. */
export function usage<T>(fn: () => T, where?: string): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ExplainError) throw new UsageError(where ? `${where}: ${err.message}` : err.message);
    throw err;
  }
}

export async function explainCommand(argv: string[]): Promise<number> {
  const opts = parseExplainArgs(argv);
  if (!opts) {
    process.stdout.write(EXPLAIN_USAGE);
    return 0;
  }
  let e: Explanation;
  if (opts.manifests) {
    const dir = opts.manifests;
    e = usage(() => explain(loadWorld(dir), opts.query));
  } else {
    const { netns: _netns, ...reply } = await call(opts.runDir, 'explain', { ...opts.query });
    e = reply;
  }
  if (opts.format === 'json') printJson(explanationJson(e));
  else process.stdout.write(explanationTable(e));
  return 0;
}
