// `sluice agent`: start-up, recovery and the request loop of the per-node
// daemon. Start-up and recovery are the same code: whatever the last agent
// left (pinned maps, attached programs, endpoint records, IPAM files, queued
// DELs) is adopted and reconciled, never flushed, so enforcement continues
// across restarts.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import type { Server as HttpServer } from 'node:http';
import { isIPv4, type Server } from 'node:net';
import { join } from 'node:path';
import {
  CniCode,
  CniError,
  parseCniArgs,
  decodeRequest,
  encodeResponse,
  HOST_VETH_PREFIX,
  makeHandlers,
  parseEnv,
  runSkel,
  type CniDeps,
  type EndpointRecord,
  type Handler,
  type CniCommand,
} from '../cni/index.js';
import { AgentApiError, ApiCode, type Handlers as ApiHandlers, type ManifestState, type StatusReply } from '../api/index.js';
import { VERSION } from '../config/index.js';
import { Datapath, isBpffs, LB_PROGS, mapFillSteps, PROG_FROM_NODE, PROG_FROM_POD, PROG_TO_POD, reasonName, type MapFill } from '../datapath/index.js';
import { Ipam } from '../ipam/index.js';
import type { Logger } from '../log/index.js';
import { native } from '../native/index.js';
import { FqdnStatusWriter, KubernetesSource, statusWritersOr, type KubeApi } from '../kubernetes/index.js';
import type { PodCidrProvider, PolicySource, TrustedResolverProvider } from '../sources/index.js';
import { StandaloneSource } from '../standalone/index.js';
import { ObjectStore } from '../store/index.js';
import { ExecDelegate } from './delegate.js';
import { EndpointRegistry } from './endpoints.js';
import { endpointKey, PolicyEngine, runSliced, SLICE_MS } from './policy-engine.js';
import { HandoverError, probeHandover, requestHandover, serveHandover, handleFd, type HeldListener, type Inherited } from './handover.js';
import { parseListenAddr, serveHealth } from './health.js';
import { NodeAddresses } from './node-addresses.js';
import { NodeLinks } from './node-links.js';
import { compileFrontends } from '../services/index.js';
import { NodeRoutes } from './routes.js';
import { Reconciler, type SyncOutcome } from './reconciler.js';
import { FlowLog } from '../observe/index.js';
import { AgentMetrics, type RecentErrors } from '../metrics/index.js';
import { FqdnService } from './fqdn.js';
import { explain, ExplainCode, ExplainError, policyWorldSteps, type World } from '../explain/index.js';
import type { PolicyInput } from '../policy/index.js';
import { AttachmentLocks } from './lock.js';
import { listen } from './server.js';

export interface AgentConfig {
  nodeName: string;
  /** Standalone mode's directory; empty in Kubernetes mode. */
  standalone: string;
  /** Kubernetes mode: the API, and whether to route to other nodes' pod CIDRs (docs/kubernetes.md). */
  kubernetes?: { api: KubeApi; routing: 'direct' | 'none' };
  /** The node's pod CIDRs (--pod-cidr today; the Node object in Kubernetes mode). Read once at start. */
  podCidrs: PodCidrProvider;
  stateDir: string;
  runDir: string;
  bpffs: string;
  maxEndpoints: number;
  maxPolicyEntries: number;
  maxFqdnEntries: number;
  fqdnMinTtlMs: number;
  fqdnGraceMs: number;
  fqdnMaxIpsPerName: number;
  dnsIntercept: 'selected' | 'all';
  /** The resolvers the DNS proxy forwards to (--dns-trusted or resolv.conf; cluster DNS next). Read once at start. */
  dnsTrusted: TrustedResolverProvider;
  dnsUntrusted: 'refuse' | 'redirect';
  /** Where the cgroup v2 hierarchy Service translation attaches to is: this directory, or its `unified` (a hybrid layout). Default /sys/fs/cgroup. */
  cgroupRoot?: string;
  /** pod: forwarded UDP queries leave from the asking pod's address (except to the node's own or loopback resolvers). */
  dnsUpstreamSource?: 'pod' | 'node';
  /** Each pod's DNS budget in the datapath (bursts of twice that); 0: none. */
  dnsPodQps: number;
  dnsPodMaxInflight: number;
  dnsTcpMaxPerPod: number;
  dnsTcpMax: number;
  /** --metrics-addr: /healthz, /readyz and /metrics; empty: not served. */
  metricsAddr?: string;
  /** The log's error lines, kept for `sluice status` (a tee on the log's destination). */
  recentErrors?: RecentErrors;
  /** --datapath-redirect: local pod-to-pod delivery with bpf_redirect_peer (default true). */
  datapathRedirect?: boolean;
}

/** Where cgroup v2 is: `base` itself (unified), or the hybrid layout's `base`/unified. */
function findCgroup2Root(base: string): string | undefined {
  // cgroup.controllers exists only in a cgroup v2 hierarchy.
  for (const dir of [base, join(base, 'unified')]) if (existsSync(join(dir, 'cgroup.controllers'))) return dir;
  return undefined;
}

/** 127.0.0.0/8 and ::1: a resolver there answers only the node itself. */
function isLoopback(ip: string): boolean {
  return isIPv4(ip) ? ip.startsWith('127.') : ip === '::1';
}

function podName(rec: EndpointRecord): string {
  return rec.pod.namespace && rec.pod.name ? `${rec.pod.namespace}/${rec.pod.name}` : rec.containerId;
}

/** One direction of a compiled endpoint policy, as `sluice endpoints` shows it. */
function enforcement(isolated: boolean | undefined, audit: boolean | undefined): 'enforce' | 'audit' | 'none' {
  if (isolated) return 'enforce';
  return audit ? 'audit' : 'none';
}

/** How often the C heap's free memory goes back to the system (malloc_trim: well under a millisecond). */
const MALLOC_TRIM_MS = 10_000;

/** What backendsOf answers for an address that is no Service frontend (one array, not one per learned address). */
const NO_BACKENDS: readonly string[] = Object.freeze([]);

/** How long a handing-over agent waits for the answers to the queries it forwarded. */
const HANDOVER_DRAIN_MS = 1000;

/** The health listener as the handover names it. */
function healthListener(metricsAddr: string): { address: string; port: number } {
  const { host, port } = parseListenAddr(metricsAddr);
  return { address: host, port };
}

export class AgentError extends Error {
  override readonly name = 'AgentError';
  readonly code = 'SLUICE_AGENT_PREFLIGHT';
}

/** What the agent needs from the machine, checked before touching anything. */
function preflight(cfg: AgentConfig, log: Logger): void {
  if (process.getuid?.() !== 0) throw new AgentError('the agent needs root (netlink, eBPF, netns)');
  if (!existsSync('/sys/kernel/btf/vmlinux')) throw new AgentError('the kernel has no BTF (/sys/kernel/btf/vmlinux); Sluice needs CONFIG_DEBUG_INFO_BTF=y');
  if (!isBpffs(cfg.bpffs)) {
    // Only the conventional mount point is ours to create; anywhere else the
    // operator chose a path and must mount it.
    if (cfg.bpffs.startsWith('/sys/fs/bpf/') && !isBpffs('/sys/fs/bpf')) {
      log.warn('no bpf filesystem at /sys/fs/bpf: mounting one');
      execFileSync('mount', ['-t', 'bpf', 'bpf', '/sys/fs/bpf']);
    }
    if (!isBpffs(cfg.bpffs)) throw new AgentError(`--bpffs ${cfg.bpffs} is not on a bpf filesystem (mount -t bpf bpf /sys/fs/bpf)`);
  }
}

/** A network namespace file: it lives on nsfs, like our own /proc/self/ns/net. */
function netnsExists(path: string): boolean {
  try {
    return statSync(path).dev === statSync('/proc/self/ns/net').dev;
  } catch {
    return false;
  }
}

export class Agent {
  readonly #cfg: AgentConfig;
  readonly #root: Logger;
  readonly #log: Logger;
  #datapath!: Datapath;
  #ipam!: Ipam;
  #endpoints!: EndpointRegistry;
  #policy!: PolicyEngine;
  #reconciler: Reconciler | undefined;
  #nodeAddresses: NodeAddresses | undefined;
  #nodeLinks: NodeLinks | undefined;
  /** Why Service translation is off, if it is. */
  #servicesProblem: string | undefined;
  #servicesQueued = false;
  /** Endpoint (containerId/ifname/netns) → its netns cookie. */
  readonly #netnsCookies = new Map<string, string>();
  /** Host veth ifindex → the pod's netns cookie (flows → the Service they went through). */
  #cookieOfIfindex = new Map<number, string>();
  /** "ip/port/protocol" of each frontend → "ns/name" of its Service. */
  #serviceNames = new Map<string, string>();
  /** A frontend's address → the addresses of its backends (every port): what a name resolving to it opens. */
  #backendsByFrontend = new Map<string, string[]>();
  #fqdn!: FqdnService;
  #handlers!: Record<CniCommand, Handler>;
  readonly #locks = new AttachmentLocks();
  readonly #store = new ObjectStore();
  #source: PolicySource | undefined;
  #kube: KubernetesSource | undefined;
  #routes: NodeRoutes | undefined;
  #stopTrustedWatch: (() => void) | undefined;
  #statusWriter: FqdnStatusWriter | undefined;
  #trimmer: NodeJS.Timeout | undefined;
  #health: HttpServer | undefined;
  #metrics: AgentMetrics | undefined;
  readonly #startedAt = new Date();
  #ready = false;
  #flows: FlowLog | undefined;
  #server: Server | undefined;
  /** Sockets a predecessor handed over, until start() has taken what it uses. */
  #inherited: Inherited | undefined;
  #handoverServer: Server | undefined;
  #stopping: Promise<void> | undefined;
  #handedOver!: () => void;
  /** Resolves once this agent has handed its sockets to a successor (it is stopped then, and holds nothing). */
  readonly handedOver = new Promise<void>((resolve) => (this.#handedOver = resolve));
  /** `explain`'s world, built from this compile input (once per sync, not per question). */
  #explained: { input: PolicyInput; world: Promise<World> } | undefined;

  constructor(cfg: AgentConfig, log: Logger) {
    this.#cfg = cfg;
    this.#root = log;
    this.#log = log.child({ subsystem: 'agent' });
  }

  get socketPath(): string {
    return join(this.#cfg.runDir, 'agent.sock');
  }

  async start(): Promise<void> {
    const cfg = this.#cfg;
    preflight(cfg, this.#log);
    // An agent serving this run directory (an upgrade: src/agent/handover.ts)
    // keeps serving, kubelet's probes included, while this one loads its
    // programs and lists its sources; then it hands its sockets over.
    const predecessor = probeHandover(cfg.runDir);
    if (predecessor !== undefined) this.#log.info({ predecessor }, 'an agent serves this run directory: preparing, then taking its sockets over');
    const metrics = (this.#metrics = await this.#newMetrics());
    // Liveness from the start (a slow first list is not a dead agent); ready only at the end.
    const serveHealthOn = async (fd?: number) => {
      if (cfg.metricsAddr) this.#health = await serveHealth(cfg.metricsAddr, { notReady: () => this.#notReady(), metrics }, this.#root.child({ subsystem: 'health' }), fd);
    };
    if (predecessor === undefined) await serveHealthOn();
    // Node facts from their providers, before anything uses them.
    this.#log.info({ from: cfg.podCidrs.origin }, 'reading the pod CIDRs');
    const podCidrs = await cfg.podCidrs.podCidrs();
    if (podCidrs.length === 0) throw new AgentError(`no pod CIDR: pass ${cfg.podCidrs.origin} CIDR[,CIDR6]`);
    const dnsTrusted = await cfg.dnsTrusted.trustedResolvers();
    if (!dnsTrusted.length) this.#log.warn(`no trusted DNS resolver (${cfg.dnsTrusted.origin}): intercepted queries are all refused`);
    for (const d of [cfg.stateDir, cfg.runDir, cfg.bpffs]) mkdirSync(d, { recursive: true, mode: 0o700 });
    const n = native();
    // The node routes between pods and from pods out.
    n.sysctlWrite(null, 'net/ipv4/ip_forward', '1');
    if (podCidrs.some((c) => c.includes(':'))) n.sysctlWrite(null, 'net/ipv6/conf/all/forwarding', '1');

    this.#datapath = Datapath.open({ bpffs: cfg.bpffs, maxEndpoints: cfg.maxEndpoints, maxPolicyEntries: cfg.maxPolicyEntries, maxFqdnEntries: cfg.maxFqdnEntries });
    // Before any pod's DNS reaches the proxy: a flood is dropped in the kernel, not in our socket queue.
    this.#datapath.setDnsRateLimit(cfg.dnsPodQps, 2 * cfg.dnsPodQps);
    this.#datapath.setRedirect(cfg.datapathRedirect ?? true);
    // Policy sources first, synced, so the first compile already sees every
    // policy and nothing restored from pins is ever judged by an empty policy set.
    if (cfg.standalone) {
      this.#source = new StandaloneSource(cfg.standalone, this.#root.child({ subsystem: 'standalone' }));
      await this.#source.start(this.#store);
      await this.#source.waitSynced();
    } else if (cfg.kubernetes) {
      const kube = (this.#source = this.#kube = new KubernetesSource(cfg.kubernetes.api, this.#root.child({ subsystem: 'kubernetes' })));
      await kube.start(this.#store);
      this.#log.info({ server: cfg.kubernetes.api.server }, 'listing Nodes, Namespaces, Pods, NetworkPolicies, FQDNPolicies, Services and EndpointSlices');
      await kube.waitSynced();
      this.#log.info('Kubernetes objects listed; watching');
    }
    if (predecessor !== undefined) {
      // From here on this agent reads and writes the node's state: the old one must have stopped.
      this.#inherited = this.#takeOver();
      await serveHealthOn(cfg.metricsAddr ? this.#inherited?.take({ role: 'health', type: 'tcp', ...healthListener(cfg.metricsAddr) }) : undefined);
    }
    this.#ipam = new Ipam(cfg.stateDir, podCidrs);
    this.#endpoints = new EndpointRegistry(cfg.stateDir, this.#datapath, this.#root.child({ subsystem: 'endpoints' }));
    // Learned FQDN mappings are restored before the first compile, so the
    // first sync re-derives exactly what the pinned map already allows.
    this.#fqdn = new FqdnService(
      this.#datapath,
      {
        stateDir: cfg.stateDir,
        minTtlMs: cfg.fqdnMinTtlMs,
        graceMs: cfg.fqdnGraceMs,
        maxIpsPerName: cfg.fqdnMaxIpsPerName,
        maxNames: 100_000,
        trusted: dnsTrusted,
        untrusted: cfg.dnsUntrusted,
        limits: { podMaxInflight: cfg.dnsPodMaxInflight, tcpMaxPerPod: cfg.dnsTcpMaxPerPod, tcpMax: cfg.dnsTcpMax },
        ipv6: true,
        // The node's own resolvers (and loopback ones) could not answer a pod's address.
        backendsOf: (ip) => this.#backendsByFrontend.get(ip) ?? NO_BACKENDS,
        podSource:
          (cfg.dnsUpstreamSource ?? 'pod') === 'pod'
            ? (upstream) => !isLoopback(upstream) && !this.#nodeAddresses?.has(upstream)
            : undefined,
        observer: metrics.dns,
      },
      this.#root.child({ subsystem: 'fqdn' }),
    );
    const nodeAddresses = (this.#nodeAddresses = new NodeAddresses(
      () => n.addrList(null).map((a) => a.address),
      () => {
        this.#reconciler?.markDirty();
        this.#queueServices(); // NodePorts listen on the node's addresses
      },
    ));
    const endpoints = this.#endpoints;
    this.#policy = new PolicyEngine(this.#store, () => endpoints.list(), this.#datapath, cfg.stateDir, this.#root.child({ subsystem: 'policy' }), {
      dnsInterceptAll: cfg.dnsIntercept === 'all',
      nodeName: cfg.nodeName,
      endpoint: (key) => endpoints.byKey(key),
      nodeIps: () => nodeAddresses.get(),
      onCompiled: (compiled, records) =>
        this.#fqdn.setPolicy(
          compiled,
          records.map((r) => ({ key: endpointKey(r), ifindex: r.hostIfindex, pod: podName(r) })),
        ),
      onSynced: (sync) => metrics.policySynced(sync),
    });
    const ipam = this.#ipam;
    const deps: CniDeps = {
      netlink: n,
      ipam: {
        allocate: (owner) => ipam.allocate(owner).map((a) => `${a.ip}/${a.family === 4 ? 32 : 128}`),
        release: (owner) => void ipam.release(owner),
        owners: () => {
          const seen = new Map<string, { containerId: string; ifname: string }>();
          for (const a of ipam.list()) seen.set(`${a.owner.containerId}/${a.owner.ifname}`, a.owner);
          return [...seen.values()];
        },
      },
      delegate: new ExecDelegate(),
      endpoints: this.#endpoints,
      netnsExists,
      now: () => new Date(),
    };
    this.#handlers = makeHandlers(deps);

    if (cfg.kubernetes && this.#kube) {
      const kube = this.#kube;
      this.#statusWriter = new FqdnStatusWriter(cfg.kubernetes.api, cfg.nodeName, this.#root.child({ subsystem: 'fqdn-status' }));
      kube.nodes.onChange(() => this.#writeStatus());
      if (cfg.kubernetes.routing === 'direct') {
        const routes = (this.#routes = new NodeRoutes(n, cfg.nodeName, this.#root.child({ subsystem: 'routes' })));
        kube.nodes.onChange(() => routes.sync(kube.nodes.list()));
        routes.sync(kube.nodes.list());
      }
    }
    this.#attachServices();
    await this.#reconcile();
    if ((cfg.dnsUpstreamSource ?? 'pod') === 'pod') {
      // Before the first query leaves from a pod's address: the answers must find the proxy.
      const dp = this.#datapath;
      this.#nodeLinks = new NodeLinks(() => n.linkList(null), (ifname) => dp.attachNodeLink(null, ifname), this.#root.child({ subsystem: 'fqdn' }));
      this.#nodeLinks.start();
    }
    const inherited = this.#inherited;
    await this.#fqdn.start(inherited && ((l) => inherited.take({ role: 'dns', ...l })));
    this.#stopTrustedWatch = cfg.dnsTrusted.watch?.((ips) => this.#fqdn.setTrusted(ips));
    // Changes only mark dirty; one coalescing sync programs them (an ADD
    // waits for the sync that includes its endpoint).
    const policy = this.#policy;
    const reconciler = (this.#reconciler = new Reconciler<SyncOutcome>({
      sync: async () => {
        // Before the policy sync an ADD waits for: the new pod's sockets are translated from its first connect().
        this.#syncPodNetns();
        const report = await policy.sync();
        this.#writeStatus();
        return report;
      },
    }));
    this.#endpoints.onChange(() => reconciler.request());
    this.#store.onChange((kinds) => {
      if (kinds.has('Service') || kinds.has('EndpointSlice')) this.#queueServices();
      reconciler.markDirty();
    });
    this.#kube?.nodes.onChange(() => this.#queueServices());
    nodeAddresses.start();
    await this.#applyQueuedDels();
    this.#flows = new FlowLog(this.#datapath.openEvents(), {
      podOfIfindex: (ifindex) => {
        const rec = this.#recordOfIfindex(ifindex);
        return rec ? podName(rec) : '';
      },
      serviceOf: (ifindex, protocol, ip, port) => {
        const cookie = this.#cookieOfIfindex.get(ifindex);
        const fe = cookie === undefined ? undefined : this.#datapath.services.frontendOf(cookie, protocol, ip, port);
        if (!fe) return '';
        const name = this.#serviceNames.get(`${fe.ip}/${fe.port}/${protocol}`);
        return `${name || '?'} ${fe.ip.includes(':') ? `[${fe.ip}]` : fe.ip}:${fe.port}`;
      },
      nameOfAddress: (ip) => {
        const rec = this.#endpoints.list().find((r) => r.ips.some((c) => c.split('/')[0] === ip));
        if (rec) return podName(rec);
        if (this.#policy.compiled?.ipcache.get(ip) === 1) return 'node';
        return this.#fqdn.namesOf(ip).join(',');
      },
      policiesOf: (ifindex, direction) => {
        const rec = this.#recordOfIfindex(ifindex);
        const p = rec && this.#policy.compiled?.endpoints.get(endpointKey(rec));
        return (direction === 'egress' ? p?.egressBy : p?.ingressBy) ?? [];
      },
    }, this.#root.child({ subsystem: 'flows' }));
    this.#flows.start();
    this.#server = await listen(this.socketPath, { cni: (req) => this.#cni(req), api: this.#api() }, this.#root.child({ subsystem: 'server' }));
    const unused = this.#inherited?.closeRest() ?? [];
    if (unused.length) this.#log.warn({ sockets: unused }, "closed sockets the predecessor handed over that this agent's flags do not use");
    this.#inherited = undefined;
    this.#handoverServer = await serveHandover(cfg.runDir, { give: (pid) => this.#handOver(pid), done: (ok, pid) => this.#handOverDone(ok, pid) }, this.#root.child({ subsystem: 'handover' }));
    this.#ready = true;
    // What the C heap frees (libbpf's loads, netlink replies, on libuv's worker threads too) stays
    // resident until trimmed: ~10 MiB at 1,000 endpoints (docs/benchmarks.md, memory).
    this.#trimmer = setInterval(() => n.mallocTrim(), MALLOC_TRIM_MS);
    this.#trimmer.unref();
    this.#log.info({ socket: this.socketPath, podCidrs: this.#ipam.cidrs, endpoints: this.#endpoints.list().length }, 'agent ready');
  }

  /**
   * Brings the datapath in line with the endpoint records: re-attaches the
   * freshly loaded programs (an atomic replace), re-writes each entry, and
   * removes whatever no record accounts for. A record whose veth is gone
   * (the pod died while we were down) is torn down as DEL would.
   */
  async #reconcile(): Promise<void> {
    const n = native();
    const live = new Map(n.linkList(null).map((l) => [l.name, l]));
    // Attachments whose record is unreadable (quarantined): their veth, their
    // address and their datapath entry (with its policy generation) stay as
    // the last agent left them; nothing below may take them for leftovers.
    const quarantined = this.#endpoints.quarantined();
    const quarantinedVeths = new Set(quarantined.flatMap((q) => q.hostIfnames).filter((name) => live.has(name)));
    const quarantinedOwners = new Set(quarantined.map((q) => q.stem));
    const quarantinedIfindexes = new Set([...quarantinedVeths].map((name) => live.get(name)!.ifindex));
    for (const rec of this.#endpoints.list()) {
      const link = live.get(rec.hostIfname);
      if (link && link.ifindex === rec.hostIfindex) continue;
      this.#log.info({ pod: rec.pod, containerId: rec.containerId }, 'endpoint vanished while the agent was down: cleaning up');
      await this.#endpoints.unregister(rec.containerId, rec.ifname);
      this.#ipam.release(rec);
    }
    // One compile for every surviving endpoint, then re-attach the freshly
    // loaded programs (an atomic replace of the old ones).
    await this.#policy.sync();
    this.#writeStatus();
    for (const rec of this.#endpoints.list()) this.#endpoints.attach(rec);
    // Every endpoint runs this version's programs now: earlier layouts' maps can go.
    const retired = Datapath.removeRetiredPins(this.#cfg.bpffs);
    if (retired.length) this.#log.info({ maps: retired }, 'removed the pins of retired map layouts');
    this.#policy.collectGarbage(quarantinedIfindexes);
    const known = new Set([...this.#endpoints.list().map((r) => r.hostIfindex), ...quarantinedIfindexes]);
    for (const ifindex of this.#datapath.listEndpoints().keys()) if (!known.has(ifindex)) this.#datapath.deleteEndpoint(ifindex);
    // Local delivery entries of endpoints gone (the datapath never follows one whose endpoint entry does not own its address, but the index is kept tidy).
    const local = this.#datapath.localEndpoints;
    for (const [ip, l] of local.dump()) if (!known.has(l.ifindex)) local.delete(ip);
    const keep = new Set([...this.#endpoints.list().map((r) => r.hostIfname), ...quarantinedVeths]);
    for (const l of live.values()) {
      // An interrupted ADD's veth: no record means it never completed.
      if (l.kind === 'veth' && l.name.startsWith(HOST_VETH_PREFIX) && !keep.has(l.name)) {
        this.#log.info({ link: l.name }, 'removing a veth no endpoint accounts for');
        n.linkDel(null, l.name);
      }
    }
    const owners = new Set(this.#endpoints.list().map((r) => `${r.containerId}/${r.ifname}`));
    for (const a of this.#ipam.list()) {
      if (!owners.has(`${a.owner.containerId}/${a.owner.ifname}`) && !quarantinedOwners.has(`${a.owner.containerId}.${a.owner.ifname}`)) {
        this.#log.info({ ip: a.ip, owner: a.owner }, 'releasing an address no endpoint holds');
        this.#ipam.release(a.owner);
      }
    }
  }

  /** DELs that sluice-cni queued while no agent was listening. */
  async #applyQueuedDels(): Promise<void> {
    const dir = join(this.#cfg.stateDir, 'cni-pending-del');
    if (!existsSync(dir)) return;
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (name.startsWith('.')) {
        rmSync(path, { force: true });
        continue;
      }
      const resp = (await this.#cni(readFileSync(path))).toString();
      if (!resp.startsWith('0\n')) this.#log.error({ file: name, answer: resp }, 'queued DEL failed; dropping it');
      else this.#log.info({ file: name }, 'applied a DEL queued while the agent was down');
      rmSync(path, { force: true });
    }
  }

  async #cni(raw: Buffer): Promise<Buffer> {
    const started = process.hrtime.bigint();
    let stdout = '';
    let status: number;
    let env: ReturnType<typeof decodeRequest>['env'] = {};
    try {
      const req = decodeRequest(raw);
      env = req.env;
      const io = { env: req.env, readStdin: () => req.stdin, writeStdout: (s: string) => void (stdout += s) };
      let command: CniCommand | undefined;
      try {
        command = parseEnv(req.env).command;
      } catch {
        command = undefined; // runSkel reports the env error itself
      }
      const run = async () => {
        // Kubernetes: the pod's labels must be known before its policy is programmed.
        if (command === 'ADD' && this.#kube) {
          const stop = await this.#ensurePod(req.env, req.stdin);
          if (stop) {
            stdout = stop;
            return 1;
          }
        }
        return runSkel(this.#handlers, io);
      };
      status =
        command === 'GC'
          ? await this.#locks.exclusive(run)
          : command === 'ADD' || command === 'DEL' || command === 'CHECK'
            ? await this.#locks.withKey(`${req.env.CNI_CONTAINERID}/${req.env.CNI_IFNAME}`, run)
            : await run();
    } catch (err) {
      status = 1;
      stdout = `${JSON.stringify(new CniError(CniCode.DECODE_FAILURE, 'malformed request from sluice-cni', (err as Error).message).toJSON('1.1.0'))}\n`;
    }
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    this.#metrics?.cniOperation(env.CNI_COMMAND, status === 0, ms / 1000);
    this.#log.info(
      { cni: { command: env.CNI_COMMAND, containerId: env.CNI_CONTAINERID, ifname: env.CNI_IFNAME, args: env.CNI_ARGS }, status, ms: Math.round(ms * 10) / 10, ...(status ? { answer: stdout.trim() } : {}) },
      'CNI request',
    );
    return encodeResponse(status, stdout);
  }

  /**
   * A CNI ADD's pod in the store, fetched from the API if the watch has not
   * delivered it yet. Returns the error answer (code 11: kubelet retries)
   * when it cannot be known; undefined when the ADD may go on.
   */
  async #ensurePod(env: Record<string, string | undefined>, stdin: Buffer | string): Promise<string | undefined> {
    let args;
    try {
      args = parseCniArgs(env.CNI_ARGS ?? '');
    } catch {
      return undefined; // the handler reports bad CNI_ARGS itself
    }
    if (!args.namespace || !args.name) return undefined;
    try {
      await this.#kube!.ensurePod(this.#store, args.namespace, args.name, args.uid);
      return undefined;
    } catch (err) {
      let version = '1.1.0';
      try {
        version = (JSON.parse(stdin.toString()) as { cniVersion?: string }).cniVersion ?? version;
      } catch {
        // the handler would report the config; 1.1.0 is as good as any here
      }
      return `${JSON.stringify(new CniError(CniCode.TRY_AGAIN_LATER, 'the pod is not known yet', (err as Error).message).toJSON(version))}\n`;
    }
  }

  /** The endpoint whose host veth is `ifindex` (a flow event's). */
  #recordOfIfindex(ifindex: number): EndpointRecord | undefined {
    return this.#endpoints.list().find((r) => r.hostIfindex === ifindex);
  }

  #mode(): string {
    return this.#cfg.standalone ? 'standalone' : 'kubernetes';
  }

  /**
   * The Prometheus registry (src/metrics). Made first, so /metrics answers
   * from the start; its collectors read each part of the agent once it
   * exists. Counting map entries reads the maps: in slices, as a sync does.
   */
  #newMetrics(): Promise<AgentMetrics> {
    return AgentMetrics.load(
      { version: VERSION, mode: this.#mode() },
      {
        datapath: () => this.#datapath?.metrics(),
        fqdn: () => this.#fqdn?.status(),
        endpoints: () => this.#endpoints?.list().length,
        maps: () => (this.#datapath ? runSliced(mapFillSteps(this.#datapath), SLICE_MS) : undefined),
      },
      this.#root.child({ subsystem: 'metrics' }),
    );
  }

  /** `status` → datapath: where the programs are attached, the maps' fill, the policy generation. */
  #datapathState(maps: readonly MapFill[]): NonNullable<StatusReply['datapath']> {
    const records = this.#endpoints.list();
    let veths = 0;
    for (const r of records) {
      try {
        if (this.#datapath.attached(null, r.hostIfname)) veths++;
      } catch {
        // its veth is gone: not attached
      }
    }
    const nodeLinks = this.#nodeLinks?.attached() ?? [];
    const cgroup = this.#servicesProblem ? 0 : 1;
    return {
      programs: [
        { program: PROG_FROM_POD, hook: 'tc ingress on pod veths', attached: veths, expected: records.length },
        { program: PROG_TO_POD, hook: 'tc egress on pod veths', attached: veths, expected: records.length },
        { program: PROG_FROM_NODE, hook: 'tc ingress on node links', attached: nodeLinks.length },
        ...LB_PROGS.map(([attach, program]) => ({ program, hook: `cgroup ${attach}`, attached: cgroup, expected: 1 })),
      ],
      nodeLinks,
      maps: maps.map((m) => ({ ...m })),
      policyGeneration: this.#policy.generation,
    };
  }

  /** The socket API's methods (src/api/methods.ts: their params, checked before a handler runs, and replies). */
  #api(): ApiHandlers {
    return {
      status: async () => {
        let maps: readonly MapFill[] = [];
        try {
          maps = (await this.#metrics?.mapFill()) ?? [];
        } catch (err) {
          this.#log.warn({ err }, 'status: could not count the maps\' entries');
        }
        const fqdn = this.#fqdn.status();
        return {
          version: VERSION,
          startedAt: this.#startedAt.toISOString(),
          uptimeSeconds: Math.floor((Date.now() - this.#startedAt.getTime()) / 1000),
          nodeName: this.#cfg.nodeName,
          mode: this.#mode(),
          podCidrs: this.#ipam.cidrs,
          endpoints: this.#endpoints.list().length,
          allocations: this.#ipam.list().length,
          sources: this.#source ? [{ name: this.#source.name, synced: this.#source.problems().length === 0 }] : [],
          datapath: this.#datapathState(maps),
          manifests: this.#cfg.standalone ? ((this.#source?.status() as ManifestState[] | undefined) ?? []) : [],
          ...(this.#kube ? { kubernetes: { ...this.#kube.status(), routes: this.#routes?.routes() ?? [] } } : {}),
          policies: this.#policy.conditions(),
          warnings: this.#policy.compiled?.warnings ?? [],
          // A copy: the reply's counters are any named numbers, which an interface type is not.
          fqdn: { ...fqdn, proxy: { ...fqdn.proxy } },
          problems: this.#problems(),
          recentErrors: this.#cfg.recentErrors?.list() ?? [],
        };
      },
      policies: () => this.#policy.conditions(),
      fqdn: ({ pod }) => {
        if (pod === undefined) return this.#fqdn.list();
        const rec = this.#endpoints.list().find((r) => podName(r) === pod);
        if (!rec) throw new AgentApiError(ApiCode.NOT_FOUND, `no endpoint for pod ${pod} on this node`);
        return this.#fqdn.list({ rules: this.#policy.compiled?.endpoints.get(endpointKey(rec))?.fqdnRules ?? [] });
      },
      // The server listens only once the flow log runs (start()).
      flows: (query) => this.#flows?.query(query) ?? [],
      metrics: () =>
        this.#datapath.metrics().map((m) => ({ reason: reasonName(m.reason), reasonCode: m.reason, direction: m.direction === 0 ? 'egress' : 'ingress', audit: m.audit === 1, packets: m.packets, bytes: m.bytes })),
      endpoints: () => {
        const compiled = this.#policy.compiled;
        return this.#endpoints.list().map((r: EndpointRecord) => {
          const p = compiled?.endpoints.get(endpointKey(r));
          return {
            pod: podName(r),
            containerId: r.containerId,
            ifname: r.ifname,
            hostIfname: r.hostIfname,
            netns: r.netns,
            ips: r.ips,
            programmed: this.#endpoints.programmed(r),
            identity: p?.identity ?? null,
            labels: { ...(p && compiled?.identities.get(p.identity)?.labels) },
            ingress: enforcement(p?.ingressIsolated, p?.ingressAudit),
            egress: enforcement(p?.egressIsolated, p?.egressAudit),
            policies: p?.selectedBy.length ?? 0,
          };
        });
      },
      explain: async (q) => {
        const world = await this.#explainWorld();
        let e;
        try {
          e = explain({ ...world, learned: this.#fqdn.learned() }, q);
        } catch (err) {
          if (!(err instanceof ExplainError)) throw err;
          throw new AgentApiError(err.code === ExplainCode.NOT_FOUND ? ApiCode.NOT_FOUND : ApiCode.BAD_PARAMS, err.message);
        }
        // A source on this node: where `sluice test --live` probes from.
        const from = q.from.trim();
        const source = this.#endpoints.list().find((r) => podName(r) === from || r.ips.some((c) => c.split('/')[0] === from));
        return { ...e, ...(source ? { netns: source.netns } : {}) };
      },
    };
  }

  /**
   * The world `explain` judges in: the last compile's input compiled again
   * with every pod (local and remote) an endpoint, once per sync and in
   * slices (the DNS proxy shares the thread).
   */
  #explainWorld(): Promise<World> {
    const input = this.#policy.lastInput;
    if (!input) throw new AgentApiError(ApiCode.FAILED, 'no policy compiled yet');
    if (this.#explained?.input !== input) {
      const world = runSliced(policyWorldSteps(input), SLICE_MS);
      world.catch(() => {
        if (this.#explained?.world === world) this.#explained = undefined; // the next question tries again
      });
      this.#explained = { input, world };
    }
    return this.#explained.world;
  }

  /**
   * Service translation on the cgroup v2 hierarchy (bpf/lib/lb.h). Without it
   * a pod's connection to a ClusterIP is judged on the ClusterIP (reported).
   */
  #attachServices(): void {
    const base = this.#cfg.cgroupRoot || '/sys/fs/cgroup';
    const root = findCgroup2Root(base);
    if (!root) {
      this.#servicesProblem = `no cgroup v2 hierarchy at ${base} or ${base}/unified (--cgroup-root): Service addresses are not translated, so policy judges them, not their backends`;
      this.#log.error(this.#servicesProblem);
      return;
    }
    try {
      const how = this.#datapath.attachServices(root, this.#cfg.bpffs);
      this.#log.info({ cgroupRoot: root, links: how[0] }, 'Service translation attached');
      this.#servicesProblem = undefined;
    } catch (err) {
      this.#servicesProblem = `cannot attach Service translation to ${root}: ${(err as Error).message}`;
      this.#log.error({ err }, this.#servicesProblem);
      return;
    }
    this.#syncServices();
    this.#syncPodNetns();
  }

  #queueServices(): void {
    if (this.#servicesQueued) return;
    this.#servicesQueued = true;
    setImmediate(() => {
      this.#servicesQueued = false;
      this.#syncServices();
    });
  }

  /** Services and EndpointSlices → the frontends the datapath translates. */
  #syncServices(): void {
    if (!this.#datapath) return;
    try {
      const nodeIps = [...new Set([...(this.#nodeAddresses?.get() ?? []), ...(this.#kube?.nodes.list() ?? []).flatMap((n) => n.internalIps)])];
      const frontends = compileFrontends(this.#store.list('Service'), this.#store.list('EndpointSlice'), nodeIps);
      const changed = this.#datapath.services.sync(frontends);
      this.#serviceNames = new Map(frontends.map((f) => [`${f.key.ip}/${f.key.port}/${f.key.protocol}`, f.service ?? '']));
      const backends = new Map<string, Set<string>>();
      for (const f of frontends) {
        let set = backends.get(f.key.ip);
        if (!set) backends.set(f.key.ip, (set = new Set()));
        for (const b of f.backends) set.add(b.ip);
      }
      const byFrontend = new Map([...backends].map(([ip, set]) => [ip, [...set]]));
      const before = this.#backendsByFrontend;
      this.#backendsByFrontend = byFrontend;
      // What a name resolving to a frontend opens moved: the proxy learns such answers again.
      if (byFrontend.size !== before.size || [...byFrontend].some(([ip, b]) => before.get(ip)?.join() !== b.join())) this.#fqdn?.backendsChanged();
      if (changed) this.#log.info({ frontends: frontends.length, changed }, 'Service frontends programmed');
    } catch (err) {
      this.#log.error({ err }, 'programming Service frontends failed');
    }
  }

  /** This node's pods' netns cookies, so only their sockets are translated. */
  #syncPodNetns(): void {
    if (!this.#datapath || this.#servicesProblem) return;
    const n = native();
    const want = new Map<string, number>();
    const seen = new Set<string>();
    for (const r of this.#endpoints.list()) {
      const key = `${r.containerId}/${r.ifname}/${r.netns}`;
      seen.add(key);
      let cookie = this.#netnsCookies.get(key);
      if (cookie === undefined) {
        try {
          cookie = n.netnsCookie(r.netns);
        } catch {
          continue; // the pod's netns is gone: nothing of it can connect()
        }
        this.#netnsCookies.set(key, cookie);
      }
      want.set(cookie, r.hostIfindex);
    }
    for (const k of [...this.#netnsCookies.keys()]) if (!seen.has(k)) this.#netnsCookies.delete(k);
    this.#datapath.services.syncPods(want);
    this.#cookieOfIfindex = new Map([...want].map(([cookie, ifindex]) => [ifindex, cookie]));
  }

  /**
   * What is failing on this node right now, one line each (`sluice status`
   * shows them and exits 1): the datapath not programmed, records and files
   * that could not be read, the flow log's drain.
   */
  #problems(): string[] {
    const out: string[] = [];
    const policy = this.#policy.health();
    if (policy.error && policy.failed.length) out.push(`datapath programming failed since ${policy.since}: ${policy.error} (every endpoint fails closed; retrying)`);
    else if (policy.error) out.push(`policy programmed, but acting on it failed since ${policy.since}: ${policy.error} (nothing it would allow is open; retrying)`);
    for (const f of policy.failed) if (f.error !== policy.error) out.push(`endpoint ${f.endpoint}: policy could not be programmed since ${policy.since}: ${f.error} (it drops all traffic; retrying)`);
    for (const q of this.#endpoints.quarantined()) out.push(`endpoint record ${q.file} is unreadable (${q.error}): quarantined; its veth, address and datapath entry are kept as they were until a DEL`);
    out.push(...(this.#source?.problems() ?? []));
    out.push(...(this.#routes?.problems() ?? []));
    if (this.#servicesProblem) out.push(`services: ${this.#servicesProblem}`);
    for (const p of this.#fqdn.problems()) out.push(`fqdn: ${p}`);
    const flows = this.#flows?.stats;
    // A drain failure is a problem while it recurs, not forever after.
    if (flows?.drainErrors && Date.now() - flows.lastErrorAtMs < 60_000) out.push(`flow log: ${flows.drainErrors} failed drains, the last at ${new Date(flows.lastErrorAtMs).toISOString()}: ${flows.lastError}`);
    return out;
  }

  /** Kubernetes: FQDNPolicy status conditions, by this agent for the policies it writes. */
  #writeStatus(): void {
    if (!this.#statusWriter || !this.#kube || !this.#policy) return;
    const conditions = this.#policy.conditions().filter((c) => c.kind === 'FQDNPolicy');
    const writers = statusWritersOr(this.#cfg.nodeName, this.#kube.nodes.list(), this.#store.list('Pod'));
    this.#statusWriter.update(conditions, this.#store.list('FQDNPolicy'), writers);
  }

  /** Why /readyz says no: starting, or sources that lost their API. */
  #notReady(): string[] {
    if (!this.#ready) return ['starting: datapath, sources, DNS proxy and CNI socket not all up yet'];
    return [];
  }

  /** Asks a predecessor serving this run directory for its sockets (undefined: none runs). */
  #takeOver(): Inherited | undefined {
    const t0 = performance.now();
    let inherited: Inherited | undefined;
    try {
      inherited = requestHandover(this.#cfg.runDir);
    } catch (err) {
      if (err instanceof HandoverError) throw new AgentError(err.message);
      throw err;
    }
    if (inherited) this.#log.info({ predecessor: inherited.from, sockets: inherited.descs, ms: Math.round(performance.now() - t0) }, 'took over the sockets of the agent that was running (it drained and stopped)');
    return inherited;
  }

  /**
   * For a successor: copies of the listeners (the proxy's and the health
   * one), then a stop that gives the queries already forwarded a moment to
   * be answered. What arrives meanwhile waits in the sockets' queues.
   */
  async #handOver(pid: number): Promise<HeldListener[]> {
    if (!this.#ready || this.#stopping) throw new Error(this.#stopping ? 'stopping' : 'still starting');
    const n = native();
    const held: HeldListener[] = [];
    try {
      for (const l of this.#fqdn.listeners()) held.push({ role: 'dns', type: l.type, address: l.address, port: l.port, fd: n.fdDup(l.fd) });
      const healthFd = this.#health && handleFd(this.#health);
      if (this.#cfg.metricsAddr && healthFd !== undefined) held.push({ role: 'health', type: 'tcp', ...healthListener(this.#cfg.metricsAddr), fd: n.fdDup(healthFd) });
    } catch (err) {
      for (const h of held) n.fdClose(h.fd);
      throw err;
    }
    this.#log.info({ successor: pid }, 'handing over: draining the DNS proxy and stopping');
    await this.stop(HANDOVER_DRAIN_MS);
    return held;
  }

  #handOverDone(ok: boolean, pid: number): void {
    if (ok) this.#log.info({ successor: pid }, 'handed the sockets over; dormant until stopped (the datapath keeps enforcing)');
    else this.#log.error({ successor: pid }, 'stopped for a successor that did not take the sockets: exiting so that an agent is started again');
    this.#handoverFailed = !ok;
    this.#handedOver();
  }

  /** True when a handover failed after this agent had stopped (the process should exit non-zero). */
  #handoverFailed = false;
  get handoverFailed(): boolean {
    return this.#handoverFailed;
  }

  /**
   * Stops serving. Deliberately leaves maps pinned and programs attached:
   * enforcement goes on while no agent runs. Once only: later calls wait
   * for the first. `drainMs`: see FqdnService.stop.
   */
  stop(drainMs = 0): Promise<void> {
    this.#stopping ??= this.#stop(drainMs);
    return this.#stopping;
  }

  async #stop(drainMs: number): Promise<void> {
    this.#ready = false;
    // Not awaited: a handover in progress holds a connection, which close() would wait for.
    this.#handoverServer?.close();
    this.#source?.stop();
    this.#reconciler?.stop();
    this.#nodeAddresses?.stop();
    this.#nodeLinks?.stop();
    this.#stopTrustedWatch?.();
    this.#statusWriter?.stop();
    if (this.#trimmer) clearInterval(this.#trimmer);
    this.#policy?.stop();
    this.#flows?.stop();
    this.#metrics?.stop();
    await this.#fqdn?.stop(drainMs);
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
    // A sync part-way through finishes before the maps' fds close under it.
    await this.#policy?.idle();
    this.#datapath?.close();
    await new Promise<void>((resolve) => (this.#health ? this.#health.close(() => resolve()) : resolve()));
  }
}
