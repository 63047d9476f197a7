// `sluice agent` entry: flags → config → Agent.
import { formatFlags, parseArgs, parseDurationMs, parseIntFlag, UsageError } from '../config/index.js';
import { initLogger } from '../log/index.js';
import { FlagPodCidrs, ResolverAddressError, trustedResolversFromFlag, type TrustedResolverProvider } from '../sources/index.js';
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
  const intIn = (flag: string, min: number, max: number): number => parseIntFlag(flag, flags[flag], min, max);
  const log = initLogger(flags['log-level']!);
  const duration = (flag: string): number => {
    try {
      return parseDurationMs(flags[flag]!);
    } catch (err) {
      throw new UsageError(`--${flag}: ${(err as Error).message}`);
    }
  };
  const oneOf = <T extends string>(flag: string, values: readonly T[]): T => {
    const v = flags[flag] as T;
    if (!values.includes(v)) throw new UsageError(`--${flag} must be ${values.join(' or ')}, not ${JSON.stringify(v)}`);
    return v;
  };
  // Node facts come from providers (flags in standalone mode; the Node object and cluster DNS next).
  let trusted: TrustedResolverProvider;
  try {
    trusted = trustedResolversFromFlag(flags['dns-trusted']);
  } catch (err) {
    if (err instanceof ResolverAddressError) throw new UsageError(err.message);
    throw err;
  }
  const cfg: AgentConfig = {
    nodeName: flags['node-name'] ?? '',
    standalone: flags.standalone,
    podCidrs: new FlagPodCidrs(flags['pod-cidr']),
    stateDir: flags['state-dir']!,
    runDir: flags['run-dir']!,
    bpffs: flags.bpffs!,
    maxEndpoints: positiveInt('max-endpoints'),
    maxPolicyEntries: positiveInt('max-policy-entries'),
    maxFqdnEntries: positiveInt('max-fqdn-entries'),
    fqdnMinTtlMs: duration('fqdn-min-ttl'),
    fqdnGraceMs: duration('fqdn-grace'),
    fqdnMaxIpsPerName: positiveInt('fqdn-max-ips-per-name'),
    dnsIntercept: oneOf('dns-intercept', ['selected', 'all'] as const),
    dnsTrusted: trusted,
    dnsUntrusted: oneOf('dns-untrusted', ['refuse', 'redirect'] as const),
    // A million a second is no limit in practice (and keeps the per-query cost, 1e9/qps ns, whole).
    dnsPodQps: intIn('dns-pod-qps', 0, 1_000_000),
    // Ids on one upstream TCP connection are 16 bits: more in flight could never be told apart.
    dnsPodMaxInflight: intIn('dns-pod-max-inflight', 1, 65_536),
    dnsTcpMaxPerPod: intIn('dns-tcp-max-per-pod', 1, 65_536),
    dnsTcpMax: intIn('dns-tcp-max', 1, 65_536),
  };
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
