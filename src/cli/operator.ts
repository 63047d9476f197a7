// `sluice status` and `sluice endpoints`: views of the running agent.
import { formatFlags, parseArgs, UsageError, type FlagSpec } from './args.js';
import { callAgent } from './client.js';
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

interface StatusReply {
  nodeName: string;
  mode: string;
  podCidrs: string[];
  endpoints: number;
  allocations: number;
  manifests: Array<{ file: string; ok: boolean; error?: string; objects: number }>;
}

export async function statusCommand(argv: string[]): Promise<number> {
  const opts = parse(argv, 'Usage: sluice status [flags]\n\nThe agent\'s health, pod CIDRs, endpoint count and, in standalone mode, each manifest\'s state.');
  if (!opts) return 0;
  const s = (await callAgent(opts.runDir, 'status')) as StatusReply;
  if (opts.format === 'json') {
    printJson(s);
    return 0;
  }
  process.stdout.write(
    [`node:        ${s.nodeName || '(unnamed)'}`, `mode:        ${s.mode}`, `pod CIDRs:   ${s.podCidrs.join(', ')}`, `endpoints:   ${s.endpoints}`, `allocations: ${s.allocations}`, ''].join('\n'),
  );
  if (s.manifests.length) {
    process.stdout.write('\n');
    process.stdout.write(table(['MANIFEST', 'STATE', 'OBJECTS', 'ERROR'], s.manifests.map((m) => [m.file, m.ok ? 'applied' : 'REJECTED', String(m.objects), m.error ?? ''])));
  }
  return s.manifests.some((m) => !m.ok) ? 1 : 0;
}

interface EndpointRow {
  pod: string;
  containerId: string;
  ifname: string;
  hostIfname: string;
  ips: string[];
  programmed: boolean;
}

export async function endpointsCommand(argv: string[]): Promise<number> {
  const opts = parse(argv, 'Usage: sluice endpoints [flags]\n\nThe pods on this node: addresses, host interface, whether the datapath has them programmed.');
  if (!opts) return 0;
  const eps = (await callAgent(opts.runDir, 'endpoints')) as EndpointRow[];
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
