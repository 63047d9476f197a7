// The agent's flow log: drains the datapath's ring buffer on a short timer,
// names each side (pod, node, or address), keeps the most recent events in a
// bounded ring, and publishes each on diagnostics_channel so metrics and
// tests can listen without polling.
//
// The drain runs on a timer, so nothing may throw out of it: a throw there
// would be an uncaught exception (the agent dies) or, caught by nobody, would
// leave the log silently empty. A failed drain (a decode error, a native
// error, a naming callback's bug) is counted, logged at most once per
// ERROR_LOG_EVERY_MS with the number suppressed since, and the timer goes on.
import { channel } from 'node:diagnostics_channel';
import { DropReason, flowEventCodec, reasonName, REASON_FORWARDED, type FlowEvent, type FlowEventReader } from '../datapath/index.js';
import type { Logger } from '../log/index.js';

export const FLOW_CHANNEL = channel('sluice:flow:event');

/** How often the ring buffer is drained; drops are rare, the ring is 1 MiB. */
const DRAIN_INTERVAL_MS = 50;
const KEEP_EVENTS = 8192;
/** A failing drain logs at most once per this interval (it runs 20 times a second). */
const ERROR_LOG_EVERY_MS = 10_000;
const PROTOCOLS: Record<number, string> = { 1: 'ICMP', 6: 'TCP', 17: 'UDP', 58: 'ICMPv6', 132: 'SCTP' };

export type Verdict = 'allowed' | 'dropped' | 'audit';

/** Drops that policy decided: their flows name the policies that decided that direction. */
const POLICY_REASONS: ReadonlySet<number> = new Set([DropReason.POLICY_DENIED, DropReason.NO_FQDN_ALLOW, DropReason.FQDN_EXPIRED]);

export interface Flow {
  seq: number;
  time: string;
  /** audit: an audit-mode policy let through what `reason` would have dropped. */
  verdict: Verdict;
  reason: string;
  reasonCode: number;
  direction: 'egress' | 'ingress';
  /** The local pod ("ns/name"), or "" when its veth is unknown. */
  pod: string;
  src: string;
  dst: string;
  /** The other side, named when known: "ns/name", "node", or "". */
  peer: string;
  /** Egress to a Service's backend: the Service and the frontend the pod addressed ("ns/name 10.96.0.10:80"). */
  service?: string;
  /**
   * A drop or audit verdict that policy decided: the policies that decide
   * the pod's direction ("ns/name", "FQDNPolicy ns/name"); none of their
   * rules allows the flow (`sluice explain` shows what would).
   */
  policies?: string[];
  protocol: string;
  srcPort: number;
  dstPort: number;
}

export interface FlowNames {
  /** host veth ifindex → "ns/name" */
  podOfIfindex(ifindex: number): string;
  /** address → "ns/name" | "node" | "" */
  nameOfAddress(ip: string): string;
  /** The Service a pod's flow to this backend went through, "ns/name ip:port", or "". */
  serviceOf?(ifindex: number, protocol: number, ip: string, port: number): string;
  /** The policies deciding this pod's (host veth's) direction now. */
  policiesOf?(ifindex: number, direction: 'egress' | 'ingress'): string[];
}

export interface FlowQuery {
  since?: number;
  pod?: string;
  verdict?: Verdict;
  limit?: number;
}

/** `status` → flowLog: how the drain has fared since the agent started. */
export interface FlowLogStats {
  /** Drains that threw (the events of that batch are lost). */
  drainErrors: number;
  /** The last such error's message, '' if none. */
  lastError: string;
  /** When it happened (ms since the epoch), 0 if never. */
  lastErrorAtMs: number;
}

export class FlowLog {
  readonly #reader: Pick<FlowEventReader, 'drain' | 'close'>;
  readonly #names: FlowNames;
  readonly #log: Logger | undefined;
  readonly #ring: Flow[] = [];
  #seq = 0;
  #timer: NodeJS.Timeout | undefined;
  /** CLOCK_MONOTONIC of the kernel vs wall clock, to date events. */
  readonly #monoToWallNs: bigint;
  #drainErrors = 0;
  #lastError = '';
  #lastErrorAtMs = 0;
  #lastLoggedMs = -Infinity;
  #suppressed = 0;

  constructor(reader: Pick<FlowEventReader, 'drain' | 'close'>, names: FlowNames, log?: Logger) {
    this.#reader = reader;
    this.#names = names;
    this.#log = log;
    this.#monoToWallNs = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
  }

  get stats(): FlowLogStats {
    return { drainErrors: this.#drainErrors, lastError: this.#lastError, lastErrorAtMs: this.#lastErrorAtMs };
  }

  start(): void {
    this.#timer = setInterval(() => this.drain(), DRAIN_INTERVAL_MS);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.drain();
    this.#reader.close();
  }

  /** Takes what the ring buffer holds; never throws (failures are counted and logged). */
  drain(): void {
    try {
      for (const ev of this.#reader.drain()) this.#add(ev);
    } catch (err) {
      this.#failed(err);
    }
  }

  #failed(err: unknown): void {
    this.#drainErrors++;
    this.#lastError = (err as Error)?.message ?? String(err);
    const now = Date.now();
    this.#lastErrorAtMs = now;
    if (now - this.#lastLoggedMs < ERROR_LOG_EVERY_MS) {
      this.#suppressed++;
      return;
    }
    this.#log?.error({ err, drainErrors: this.#drainErrors, suppressed: this.#suppressed }, 'draining flow events failed; the flow log goes on');
    this.#lastLoggedMs = now;
    this.#suppressed = 0;
  }

  #add(ev: FlowEvent): void {
    const egress = ev.direction === 0;
    const flow: Flow = {
      seq: ++this.#seq,
      time: new Date(Number((ev.timestampNs + this.#monoToWallNs) / 1_000_000n)).toISOString(),
      verdict: (ev.flags ?? 0) & flowEventCodec.FLAG_AUDIT ? 'audit' : ev.reason === REASON_FORWARDED ? 'allowed' : 'dropped',
      reason: reasonName(ev.reason),
      reasonCode: ev.reason,
      direction: egress ? 'egress' : 'ingress',
      pod: this.#names.podOfIfindex(ev.ifindex),
      src: ev.saddr,
      dst: ev.daddr,
      peer: ev.family ? this.#names.nameOfAddress(egress ? ev.daddr : ev.saddr) : '',
      protocol: PROTOCOLS[ev.protocol] ?? (ev.family ? String(ev.protocol) : 'non-IP'),
      srcPort: ev.sport,
      dstPort: ev.dport,
    };
    const service = egress && ev.family ? this.#names.serviceOf?.(ev.ifindex, ev.protocol, ev.daddr, ev.dport) : '';
    if (service) flow.service = service;
    if (POLICY_REASONS.has(ev.reason)) {
      const policies = this.#names.policiesOf?.(ev.ifindex, flow.direction);
      if (policies?.length) flow.policies = policies;
    }
    this.#ring.push(flow);
    if (this.#ring.length > KEEP_EVENTS) this.#ring.splice(0, this.#ring.length - KEEP_EVENTS);
    if (FLOW_CHANNEL.hasSubscribers) FLOW_CHANNEL.publish(flow);
  }

  query(q: FlowQuery): Flow[] {
    this.drain();
    const out = this.#ring.filter((f) => (q.since === undefined || f.seq > q.since) && (!q.pod || f.pod === q.pod) && (!q.verdict || f.verdict === q.verdict));
    return q.limit ? out.slice(-q.limit) : out;
  }
}
