// The agent's Prometheus metrics: one prom-client Registry, served as
// /metrics on --metrics-addr (src/agent/health.ts). Two kinds of metric:
//  - read at scrape time from what already counts (collect callbacks): the
//    datapath's per-CPU counters (sluice_metrics_v2), the DNS proxy's
//    counters, the FQDN state, the map fill levels — never counted twice;
//  - observed as it happens, through hooks the agent wires: DNS queries and
//    answers with their latency (the proxy's ProxyObserver), policy syncs,
//    CNI operations, flow events (diagnostics_channel).
// Every label has a small fixed set of values (docs/operations.md): no pod,
// address or name is ever a label.
//
// prom-client is loaded when the agent makes its metrics (load()), not when
// the bundle starts: every `sluice` command shares the bundle, and the
// library's loading costs each of them ~15 ms.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { reasonName, REASON_FORWARDED, type MapFill } from '../datapath/index.js';
import type { AnswerReason, ProxyObserver, ProxyStats } from '../dns/index.js';
import type { Logger } from '../log/index.js';
import { FLOW_CHANNEL, type Flow } from '../observe/index.js';
import { LabelledHistogram } from './histogram.js';
import { MapFillCache } from './map-fill-cache.js';

/** One row of sluice_metrics_v2, summed over CPUs. */
export interface DatapathCounter {
  reason: number;
  /** 0: from the pod (egress), 1: to the pod (ingress). */
  direction: number;
  /** 1: a drop reason an audit-mode policy let pass. */
  audit?: number;
  packets: bigint;
  bytes: bigint;
}

/** The FQDN side's numbers (the agent's `status` → fqdn). */
export interface FqdnNumbers {
  names: number;
  ips: number;
  entries: number;
  proxy: ProxyStats & { rateLimited: number };
}

/**
 * What the collectors read at scrape time; each answers undefined while the
 * agent has not made that part yet (a scrape during start-up), and its
 * metrics are left as they are.
 */
export interface MetricSources {
  datapath(): readonly DatapathCounter[] | undefined;
  fqdn(): FqdnNumbers | undefined;
  /** Endpoints on the node. */
  endpoints(): number | undefined;
  /** Entries and capacity of each pinned map; costly (it reads the maps), so it is cached. */
  maps(): Promise<readonly MapFill[]> | undefined;
}

export interface AgentInfo {
  version: string;
  mode: string;
}

/** One policy sync (the engine's onSynced). */
export interface PolicySync {
  seconds: number;
  generation: number;
  ok: boolean;
}

/** Map fill levels are counted at most this often (a 100k-entry walk costs ~0.3 s of sliced work). */
const MAP_FILL_MAX_AGE_MS = 10_000;
/** A failing collector logs at most once per this interval (scrapes come every few seconds). */
const COLLECT_ERROR_LOG_EVERY_MS = 60_000;

// Buckets: DNS answers from tens of µs (a refusal) to a slow upstream; a
// sync from a one-pod change to a 10,000-rule bulk load; a CNI operation
// from a DEL of nothing to an ADD waiting on its sync.
const DNS_LATENCY_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
const POLICY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const CNI_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

const CNI_COMMANDS = new Set(['ADD', 'DEL', 'CHECK', 'GC', 'STATUS', 'VERSION']);

/** The DNS proxy's counters that are drops, by the `reason` label they get. */
const DNS_DROPS: ReadonlyArray<[string, keyof FqdnNumbers['proxy']]> = [
  ['malformed', 'malformed'],
  ['spoofed', 'spoofed'],
  ['unattributed', 'unattributed'],
  ['upstream-timeout', 'upstreamTimeouts'],
  ['over-inflight', 'overInflight'],
  ['tcp-over-limit', 'tcpOverLimit'],
  ['rate-limited', 'rateLimited'],
  ['error', 'errors'],
  ['send-failed', 'sendFailed'],
];

function verdictOf(c: DatapathCounter): 'forwarded' | 'dropped' | 'audit' {
  if (c.audit) return 'audit';
  return c.reason === REASON_FORWARDED ? 'forwarded' : 'dropped';
}

type PromClient = typeof import('prom-client');

export class AgentMetrics {
  readonly registry: Registry;
  readonly #sources: MetricSources;
  readonly #log: Logger;
  readonly #mapFill: MapFillCache;
  readonly #collectErrors: Counter<'collector'>;
  readonly #lastLoggedMs = new Map<string, number>();
  /** After stop() no collector reads its source (the agent closes the maps next). */
  #stopped = false;
  readonly #cni: Histogram<'command' | 'result'>;
  readonly #policySeconds: Histogram;
  readonly #policyGeneration: Gauge;
  readonly #policyFailures: Counter;
  readonly #flows: Counter<'verdict'>;
  readonly #onFlow = (message: unknown): void => this.#flows.labels((message as Flow).verdict).inc();
  /** The DNS proxy's hooks (FqdnConfig.observer). */
  readonly dns: ProxyObserver;

  /** Loads prom-client and defines every metric. */
  static async load(info: AgentInfo, sources: MetricSources, log: Logger): Promise<AgentMetrics> {
    return new AgentMetrics(await import('prom-client'), info, sources, log);
  }

  private constructor(prom: PromClient, info: AgentInfo, sources: MetricSources, log: Logger) {
    const { Counter, Gauge, Histogram, Registry } = prom;
    this.registry = new Registry();
    this.#sources = sources;
    this.#log = log;
    this.#mapFill = new MapFillCache(() => sources.maps(), MAP_FILL_MAX_AGE_MS);
    const registers = [this.registry];
    const self = this;
    prom.collectDefaultMetrics({ register: this.registry });

    new Gauge({ name: 'sluice_agent_info', help: 'The agent\'s version and mode; always 1.', labelNames: ['version', 'mode'], registers }).set({ version: info.version, mode: info.mode }, 1);

    // A group of metrics read from one source is filled by the collect of
    // its first-registered member: the registry renders (and collects) in
    // registration order, so the others are set before they are rendered.
    new Counter({
      name: 'sluice_datapath_packets_total',
      help: 'Packets the datapath judged, by verdict, reason and direction (from sluice_metrics_v2).',
      labelNames: ['verdict', 'reason', 'direction'],
      registers,
      collect() {
        self.#collect('datapath', () => sources.datapath(), (rows) => {
          this.reset();
          bytes.reset();
          for (const c of rows) {
            const labels = { verdict: verdictOf(c), reason: reasonName(c.reason), direction: c.direction === 0 ? 'egress' : 'ingress' };
            this.inc(labels, Number(c.packets));
            bytes.inc(labels, Number(c.bytes));
          }
        });
      },
    });
    const bytes = new Counter({ name: 'sluice_datapath_bytes_total', help: 'Bytes the datapath judged, by verdict, reason and direction (from sluice_metrics_v2).', labelNames: ['verdict', 'reason', 'direction'], registers });

    this.#flows = new Counter({ name: 'sluice_flow_events_total', help: 'Flow events the flow log decoded from the datapath, by verdict.', labelNames: ['verdict'], registers });
    subscribe(FLOW_CHANNEL.name, this.#onFlow);

    this.dns = this.#dnsMetrics(prom, registers);

    this.#policySeconds = new Histogram({ name: 'sluice_policy_programming_seconds', help: 'Time of each policy sync: reading the store, compiling and writing the maps.', buckets: POLICY_BUCKETS, registers });
    this.#policyGeneration = new Gauge({ name: 'sluice_policy_generation', help: 'Policy syncs since the agent started that rewrote some endpoint\'s datapath entries.', registers });
    this.#policyFailures = new Counter({ name: 'sluice_policy_sync_failures_total', help: 'Policy syncs that failed (their endpoints fail closed until a sync succeeds).', registers });
    this.#cni = new Histogram({ name: 'sluice_cni_operation_seconds', help: 'CNI operations the agent served, by command and result, from request to answer.', labelNames: ['command', 'result'], buckets: CNI_BUCKETS, registers });

    new Gauge({
      name: 'sluice_endpoints',
      help: 'Endpoints (pod attachments) on this node.',
      registers,
      collect() {
        self.#collect('endpoints', () => sources.endpoints(), (n) => this.set(n));
      },
    });
    // An asynchronous count: each gauge awaits the same (cached) one, since
    // the registry renders a gauge as soon as its own collect has settled.
    const mapGauge = (name: string, help: string, field: 'entries' | 'capacity') =>
      new Gauge({
        name,
        help,
        labelNames: ['map'],
        registers,
        async collect() {
          const maps = await self.#mapFillOrFailed(field === 'entries');
          if (!maps) return;
          this.reset();
          for (const m of maps) this.set({ map: m.map }, m[field]);
        },
      });
    mapGauge('sluice_map_entries', 'Entries in each pinned eBPF map, counted at most every 10 s.', 'entries');
    mapGauge('sluice_map_capacity', 'Capacity (max_entries) of each pinned eBPF map.', 'capacity');
    // Last: rendered after every synchronous collector of the same scrape has run.
    this.#collectErrors = new Counter({ name: 'sluice_metrics_collect_errors_total', help: 'Scrapes in which a collector could not read its source (its metrics kept their last values).', labelNames: ['collector'], registers });
  }

  /** The DNS proxy's and the FQDN state's metrics; returns the proxy's hooks. */
  #dnsMetrics(prom: PromClient, registers: Registry[]): ProxyObserver {
    const { Counter, Gauge, Histogram } = prom;
    const self = this;
    const sources = this.#sources;
    // The query path only adds to plain numbers (a labelled prom-client
    // counter hashes its labels on every inc: ~0.3 µs); the counters read them at scrape.
    const queryCounts = { udp: 0, tcp: 0 };
    /** result → reason → answers (no label string per answer). */
    const answerCounts = new Map<string, Map<string, number>>();
    new Counter({
      name: 'sluice_dns_queries_total',
      help: 'DNS queries intercepted pods sent to the proxy, by protocol.',
      labelNames: ['protocol'],
      registers,
      collect() {
        this.reset();
        for (const [protocol, n] of Object.entries(queryCounts)) this.inc({ protocol }, n);
      },
    });
    new Counter({
      name: 'sluice_dns_responses_total',
      help: 'Answers the DNS proxy released to pods, by result and reason.',
      labelNames: ['result', 'reason'],
      registers,
      collect() {
        this.reset();
        for (const [result, byReason] of answerCounts) for (const [reason, n] of byReason) this.inc({ result, reason }, n);
      },
    });
    // Observed for every answer the proxy releases: a histogram whose observe() allocates nothing.
    const latency = new LabelledHistogram({
      name: 'sluice_dns_proxy_latency_seconds',
      help: 'From a query\'s arrival from the pod to its answer\'s release to the pod (the upstream and the learning included), by result.',
      labelName: 'result',
      buckets: DNS_LATENCY_BUCKETS,
      registers,
    });
    // One read of the FQDN state fills every DNS and FQDN metric read at scrape time.
    new Counter({
      name: 'sluice_dns_dropped_total',
      help: 'DNS packets the proxy (or, rate-limited, the datapath) dropped without an answer, by reason.',
      labelNames: ['reason'],
      registers,
      collect() {
        self.#collect('fqdn', () => sources.fqdn(), (f) => {
          this.reset();
          for (const [reason, key] of DNS_DROPS) this.inc({ reason }, f.proxy[key]);
          learned.reset();
          learned.inc(f.proxy.learnedAnswers);
          unchanged.reset();
          unchanged.inc(f.proxy.unchanged);
          releasedFirst.reset();
          releasedFirst.inc(f.proxy.releasedBeforeLearning);
          refreshFailed.reset();
          refreshFailed.inc(f.proxy.refreshFailed);
          names.set(f.names);
          addresses.set(f.ips);
          entries.set(f.entries);
        });
      },
    });
    const learned = new Counter({ name: 'sluice_fqdn_learned_answers_total', help: 'Trusted DNS answers whose addresses were learned and programmed before release.', registers });
    const unchanged = new Counter({
      name: 'sluice_dns_unchanged_answers_total',
      help: 'Trusted DNS answers released as they came, without parsing or learning: they repeated an answer learned before and changed nothing.',
      registers,
    });
    const releasedFirst = new Counter({
      name: 'sluice_dns_released_before_learning_total',
      help: 'Trusted DNS answers released before they were learned: repeats that move an expiry, whose allows were programmed for at least the grace (learned right after).',
      registers,
    });
    const refreshFailed = new Counter({
      name: 'sluice_dns_refresh_failed_total',
      help: 'Of those, answers whose learning then failed (map full): their allows kept their earlier expiry.',
      registers,
    });
    const names = new Gauge({ name: 'sluice_fqdn_names', help: 'Names in the node-wide FQDN cache.', registers });
    const addresses = new Gauge({ name: 'sluice_fqdn_addresses', help: 'Addresses learned under those names.', registers });
    const entries = new Gauge({ name: 'sluice_fqdn_datapath_entries', help: '(FQDN rule, address) allows in the datapath (sluice_fqdn_v1).', registers });
    const latencyBy = { forwarded: latency.child('forwarded'), truncated: latency.child('truncated'), refused: latency.child('refused'), servfail: latency.child('servfail') };
    return {
      query: (protocol) => void queryCounts[protocol]++,
      answered: (result, reason: AnswerReason, seconds) => {
        let byReason = answerCounts.get(result);
        if (!byReason) answerCounts.set(result, (byReason = new Map()));
        byReason.set(reason, (byReason.get(reason) ?? 0) + 1);
        latencyBy[result](seconds);
      },
    };
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text of every metric. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  /** Entries and capacity of each pinned map, as last counted (at most MAP_FILL_MAX_AGE_MS old); undefined before the datapath is loaded. */
  mapFill(): Promise<readonly MapFill[]> | undefined {
    return this.#mapFill.get();
  }

  /** One CNI operation the agent answered; `command` is the runtime's CNI_COMMAND (untrusted). */
  cniOperation(command: string | undefined, ok: boolean, seconds: number): void {
    this.#cni.observe({ command: command && CNI_COMMANDS.has(command) ? command : 'other', result: ok ? 'success' : 'error' }, seconds);
  }

  policySynced(sync: PolicySync): void {
    this.#policySeconds.observe(sync.seconds);
    this.#policyGeneration.set(sync.generation);
    if (!sync.ok) this.#policyFailures.inc();
  }

  /** Stops listening to flow events and reading the sources: the metrics keep their last values. */
  stop(): void {
    this.#stopped = true;
    unsubscribe(FLOW_CHANNEL.name, this.#onFlow);
  }

  /** The map fill levels for a collector; undefined (the gauges keep their values) when there are none or counting failed (counted once, by `report`). */
  async #mapFillOrFailed(report: boolean): Promise<readonly MapFill[] | undefined> {
    if (this.#stopped) return undefined;
    try {
      return await this.#mapFill.get();
    } catch (err) {
      if (report) this.#failed('maps', err);
      return undefined;
    }
  }

  /** Reads a source, then sets its metrics; a failed read keeps the last values and is counted. */
  #collect<T>(collector: string, read: () => T | undefined, set: (value: T) => void): void {
    if (this.#stopped) return;
    let value: T | undefined;
    try {
      value = read();
    } catch (err) {
      this.#failed(collector, err);
      return;
    }
    if (value !== undefined) set(value);
  }

  #failed(collector: string, err: unknown): void {
    this.#collectErrors.inc({ collector });
    const now = Date.now();
    if (now - (this.#lastLoggedMs.get(collector) ?? -Infinity) < COLLECT_ERROR_LOG_EVERY_MS) return;
    this.#lastLoggedMs.set(collector, now);
    this.#log.warn({ err, collector }, 'metrics: a collector could not read its source; its metrics keep their last values');
  }
}
