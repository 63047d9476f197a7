// `sluice observe`: the agent's flow events, with verdict, reason and peers.
import { formatFlags, parseArgs, podFlag, UsageError, type FlagSpec } from '../config/index.js';
import { call, type FlowsParams } from '../api/index.js';
import { COMMON_FLAGS } from './operator.js';
import type { Flow } from '../observe/index.js';
import { outputFormat } from './output.js';

const FLAGS: readonly FlagSpec[] = [
  { name: 'pod', help: 'only flows of this local pod, NS/NAME', default: '' },
  { name: 'verdict', help: 'allowed, dropped or audit (passed only because an audit-mode policy let it)', default: '' },
  { name: 'follow', short: 'f', help: 'keep printing new flows', boolean: true },
  { name: 'last', help: 'how many recent flows to print first', default: '100' },
  ...COMMON_FLAGS,
];

const USAGE = `Usage: sluice observe [flags]

Flow events from this node's datapath: every dropped packet with its reason,
and every newly allowed flow (sampled under load). AUDIT flows passed only
because the policies deciding them are in audit mode: the reason is what
would have dropped them. Drops and audits that policy decided name the
policies deciding that direction. Peers are named when they are pods or the
node.

Flags:
${formatFlags(FLAGS)}
`;

/** How often --follow asks the agent for new flows. */
const FOLLOW_POLL_MS = 200;

function line(f: Flow): string {
  const ports = ['TCP', 'UDP', 'SCTP'].includes(f.protocol);
  const src = ports ? `${f.src}:${f.srcPort}` : f.src;
  const dst = ports ? `${f.dst}:${f.dstPort}` : f.dst;
  const peer = (f.peer ? ` (${f.peer})` : '') + (f.service ? ` via Service ${f.service}` : '') + (f.policies ? ` policy ${f.policies.join(', ')}` : '');
  return `${f.time}  ${f.verdict.toUpperCase().padEnd(7)}  ${f.reason.padEnd(17)}  ${f.direction.padEnd(7)}  ${f.pod.padEnd(20)}  ${f.protocol.padEnd(6)}  ${src} -> ${dst}${peer}\n`;
}

export async function observeCommand(argv: string[]): Promise<number> {
  const { flags, positional } = parseArgs(argv, FLAGS);
  if (flags.help === 'true') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (positional.length) throw new UsageError(`unexpected argument ${positional[0]}`);
  const format = outputFormat(flags.output);
  const verdict = flags.verdict === 'allowed' || flags.verdict === 'dropped' || flags.verdict === 'audit' ? flags.verdict : undefined;
  if (flags.verdict && !verdict) throw new UsageError('--verdict must be allowed, dropped or audit');
  const last = Number(flags.last);
  if (!Number.isInteger(last) || last < 0) throw new UsageError('--last must be a whole number');
  const params: FlowsParams = { pod: podFlag(flags.pod), verdict };
  const print = (flows: Flow[]) => {
    for (const f of flows) process.stdout.write(format === 'json' ? `${JSON.stringify(f)}\n` : line(f));
  };
  let flows = await call(flags['run-dir']!, 'flows', { ...params, limit: last });
  print(flows);
  if (flags.follow !== 'true') return 0;
  let since = flows.at(-1)?.seq ?? 0;
  for (;;) {
    await new Promise((r) => setTimeout(r, FOLLOW_POLL_MS));
    flows = await call(flags['run-dir']!, 'flows', { ...params, since });
    print(flows);
    since = flows.at(-1)?.seq ?? since;
  }
}
