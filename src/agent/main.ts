// `sluice agent` entry: flags → config → Agent.
import { formatFlags, parseArgs, UsageError } from '../cli/args.js';
import { initLogger } from '../log/index.js';
import { Agent, type AgentConfig } from './agent.js';
import { AGENT_FLAGS } from './flags.js';

const USAGE = `Usage: sluice agent [flags]

The per-node daemon: serves sluice-cni on <run-dir>/agent.sock, owns the node's
IPAM and the eBPF datapath. Runs in the node's network namespace (enter one
with nsenter --net=…; several agents may run side by side, each with its own
run/state/bpffs paths). Stopping it leaves enforcement in place.

Kubernetes mode is not implemented yet: pass --standalone DIR.

Flags:
${formatFlags(AGENT_FLAGS)}
`;

// Veth deletes block a libuv worker for an RCU grace period each: more
// workers let concurrent DELs overlap. Read by libuv at the pool's first use.
const THREADPOOL_SIZE = '16';

export async function runAgent(argv: string[]): Promise<number> {
  process.env.UV_THREADPOOL_SIZE ??= THREADPOOL_SIZE;
  const { flags, positional } = parseArgs(argv, AGENT_FLAGS);
  if (flags.help === 'true') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (positional.length) throw new UsageError(`unexpected argument ${positional[0]}`);
  if (!flags.standalone) throw new UsageError('Kubernetes mode is not implemented yet: pass --standalone DIR');
  const positiveInt = (flag: string): number => {
    const v = Number(flags[flag]);
    if (!Number.isInteger(v) || v < 1) throw new UsageError(`--${flag} must be a positive integer`);
    return v;
  };
  const cfg: AgentConfig = {
    nodeName: flags['node-name'] ?? '',
    standalone: flags.standalone,
    podCidrs: (flags['pod-cidr'] ?? '').split(',').map((s) => s.trim()).filter(Boolean),
    stateDir: flags['state-dir']!,
    runDir: flags['run-dir']!,
    bpffs: flags.bpffs!,
    maxEndpoints: positiveInt('max-endpoints'),
    maxPolicyEntries: positiveInt('max-policy-entries'),
  };
  const log = initLogger(flags['log-level']!);
  const agent = new Agent(cfg, log);
  try {
    await agent.start();
  } catch (err) {
    log.fatal({ err }, 'agent failed to start');
    return 1;
  }
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'stopping; the datapath keeps enforcing');
      void agent.stop().then(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  return 0;
}
