// `sluice agent` entry: flags → config → Agent.
import { formatFlags, parseArgs, parseDurationMs, parseIntFlag, UsageError } from '../config/index.js';
import { ClusterDnsResolvers, loadKubeClient, NodePodCidrs } from '../kubernetes/index.js';
import { initLogger } from '../log/index.js';
import { RecentErrors } from '../metrics/index.js';
import { hostname } from 'node:os';
import pino from 'pino';
import { FlagPodCidrs, ResolverAddressError, trustedResolversFromFlag, type PodCidrProvider, type TrustedResolverProvider } from '../sources/index.js';
import { Agent, type AgentConfig } from './agent.js';
import { parseListenAddr } from './health.js';
import { AGENT_FLAGS } from './flags.js';

const USAGE = `Usage: sluice agent [flags]

The per-node daemon: serves sluice-cni on <run-dir>/agent.sock, owns the node's
IPAM and the eBPF datapath. Runs in the node's network namespace (enter one
with nsenter --net=…; several agents may run side by side, each with its own
run/state/bpffs paths). Stopping it leaves enforcement in place. Started while
an agent serves the same run dir, it takes that agent's DNS and health sockets
over (<run-dir>/handover.sock; the old agent drains, stops and stays dormant
until signalled): an upgrade loses no lookup.

Modes: Kubernetes (the default): Nodes, Namespaces, Pods, NetworkPolicies and
FQDNPolicies from the API (in a pod its service account; else --kubeconfig or
~/.kube/config), pod CIDRs from this Node's spec.podCIDRs, trusted resolvers
from the kube-system/kube-dns Service. Standalone (--standalone DIR): a
directory of the same YAML, no API.

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
  const positiveInt = (flag: string): number => {
    const v = Number(flags[flag]);
    if (!Number.isInteger(v) || v < 1) throw new UsageError(`--${flag} must be a positive integer`);
    return v;
  };
  const intIn = (flag: string, min: number, max: number): number => parseIntFlag(flag, flags[flag], min, max);
  // The log's error lines are also kept for `sluice status`.
  const recentErrors = new RecentErrors();
  const log = initLogger(flags['log-level']!, recentErrors.tee(pino.destination({ fd: 1, sync: true })));
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
  const routing = oneOf('routing', ['direct', 'none'] as const);
  if (flags['metrics-addr']) {
    try {
      parseListenAddr(flags['metrics-addr']);
    } catch (err) {
      throw new UsageError(`--metrics-addr: ${(err as Error).message}`);
    }
  }
  // Node facts come from providers: flags, or (Kubernetes mode) the Node object and the cluster DNS Service.
  let trusted: TrustedResolverProvider | undefined;
  let podCidrs: PodCidrProvider = new FlagPodCidrs(flags['pod-cidr']);
  let kubernetes: AgentConfig['kubernetes'];
  const nodeName = flags['node-name'] || (flags.standalone ? '' : hostname());
  try {
    if (flags.standalone || flags['dns-trusted']) trusted = trustedResolversFromFlag(flags['dns-trusted']);
  } catch (err) {
    if (err instanceof ResolverAddressError) throw new UsageError(err.message);
    throw err;
  }
  if (!flags.standalone) {
    // The client library is loaded lazily: standalone mode and the CLI never pay for it.
    const client = await loadKubeClient();
    let api;
    try {
      api = new client.KubeClient(client.loadKubeConfig({ kubeconfig: flags.kubeconfig || undefined }).kc);
    } catch (err) {
      throw new UsageError(`Kubernetes mode: ${(err as Error).message}`);
    }
    kubernetes = { api, routing };
    if (!flags['pod-cidr']) podCidrs = new NodePodCidrs(api, nodeName);
    trusted ??= new ClusterDnsResolvers(api);
  }
  const cfg: AgentConfig = {
    nodeName,
    standalone: flags.standalone ?? '',
    ...(kubernetes ? { kubernetes } : {}),
    podCidrs,
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
    dnsTrusted: trusted ?? trustedResolversFromFlag(undefined),
    dnsUntrusted: oneOf('dns-untrusted', ['refuse', 'redirect'] as const),
    dnsUpstreamSource: oneOf('dns-upstream-source', ['pod', 'node'] as const),
    // A million a second is no limit in practice (and keeps the per-query cost, 1e9/qps ns, whole).
    dnsPodQps: intIn('dns-pod-qps', 0, 1_000_000),
    // Ids on one upstream TCP connection are 16 bits: more in flight could never be told apart.
    dnsPodMaxInflight: intIn('dns-pod-max-inflight', 1, 65_536),
    dnsTcpMaxPerPod: intIn('dns-tcp-max-per-pod', 1, 65_536),
    dnsTcpMax: intIn('dns-tcp-max', 1, 65_536),
    metricsAddr: flags['metrics-addr'] ?? '',
    recentErrors,
    cgroupRoot: flags['cgroup-root'] || '/sys/fs/cgroup',
    datapathRedirect: oneOf('datapath-redirect', ['true', 'false'] as const) === 'true',
  };
  const agent = new Agent(cfg, log);
  try {
    await agent.start();
  } catch (err) {
    log.fatal({ err }, 'agent failed to start');
    return 1;
  }
  let dormant: NodeJS.Timeout | undefined;
  const exit = await new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      if (dormant) clearInterval(dormant);
      log.info({ signal }, 'stopping; the datapath keeps enforcing');
      void agent.stop().then(() => resolve(0));
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    // Handed over to a successor: nothing is left to serve, but exiting would
    // have kubelet restart this container (src/agent/handover.ts). Wait for the signal.
    void agent.handedOver.then(() => {
      if (agent.handoverFailed) resolve(1);
      else dormant = setInterval(() => {}, 1 << 30);
    });
  });
  return exit;
}
