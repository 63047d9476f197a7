// The agent's flow log: drains the datapath's ring buffer on a short timer,
// names each side (pod, node, or address), keeps the most recent events in a
// bounded ring, and publishes each on diagnostics_channel so metrics and
// tests can listen without polling.
import { channel } from 'node:diagnostics_channel';
import { reasonName, REASON_FORWARDED, type FlowEvent, type FlowEventReader } from '../datapath/index.js';

export const FLOW_CHANNEL = channel('sluice:flow:event');

/** How often the ring buffer is drained; drops are rare, the ring is 1 MiB. */
const DRAIN_INTERVAL_MS = 50;
const KEEP_EVENTS = 8192;
const PROTOCOLS: Record<number, string> = { 1: 'ICMP', 6: 'TCP', 17: 'UDP', 58: 'ICMPv6', 132: 'SCTP' };

export interface Flow {
  seq: number;
  time: string;
  verdict: 'allowed' | 'dropped';
  reason: string;
  reasonCode: number;
  direction: 'egress' | 'ingress';
  /** The local pod ("ns/name"), or "" when its veth is unknown. */
  pod: string;
  src: string;
  dst: string;
  /** The other side, named when known: "ns/name", "node", or "". */
  peer: string;
  protocol: string;
  srcPort: number;
  dstPort: number;
}

export interface FlowNames {
  /** host veth ifindex → "ns/name" */
  podOfIfindex(ifindex: number): string;
  /** address → "ns/name" | "node" | "" */
  nameOfAddress(ip: string): string;
}

export interface FlowQuery {
  since?: number;
  pod?: string;
  verdict?: 'allowed' | 'dropped';
  limit?: number;
}

export class FlowLog {
  readonly #reader: FlowEventReader;
  readonly #names: FlowNames;
  readonly #ring: Flow[] = [];
  #seq = 0;
  #timer: NodeJS.Timeout | undefined;
  /** CLOCK_MONOTONIC of the kernel vs wall clock, to date events. */
  readonly #monoToWallNs: bigint;

  constructor(reader: FlowEventReader, names: FlowNames) {
    this.#reader = reader;
    this.#names = names;
    this.#monoToWallNs = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
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

  drain(): void {
    for (const ev of this.#reader.drain()) this.#add(ev);
  }

  #add(ev: FlowEvent): void {
    const egress = ev.direction === 0;
    const flow: Flow = {
      seq: ++this.#seq,
      time: new Date(Number((ev.timestampNs + this.#monoToWallNs) / 1_000_000n)).toISOString(),
      verdict: ev.reason === REASON_FORWARDED ? 'allowed' : 'dropped',
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
