// In-memory stand-ins for every port of the CNI handlers (src/cni/ports.ts):
// the agent's IPAM, a delegated IPAM plugin, the endpoint registry, and a
// node (netns paths, clock) that wires them with a FakeNetlink into CniDeps.
// All share one CallLog, so a test can fail the Nth call of any operation of
// any port and compare the whole node's state before and after.
import type { CniDeps, DelegatePort, EndpointRecord, EndpointsPort, IpamPort, NetConf, ValidAttachment } from '../../src/cni/index.js';
import { CallLog } from './calls.js';
import { FakeNetlink, type NsSnapshot } from './netlink.js';

function ownerKey(o: ValidAttachment): string {
  return `${o.containerId}/${o.ifname}`;
}

/** The agent's IPAM: /32 (and /128) addresses from fixed pools, as the real one hands out. */
export class FakeIpam implements IpamPort {
  readonly #log: CallLog;
  readonly #pools: Array<{ prefix: string; family: 4 | 6 }>;
  readonly #held = new Map<string, { owner: ValidAttachment; cidrs: string[] }>();
  #next = 2;

  /** pools: "10.244.1." and/or "fd00:244::" (the host number is appended). */
  constructor(log: CallLog, pools: string[] = ['10.244.1.', 'fd00:244::']) {
    this.#log = log;
    this.#pools = pools.map((prefix) => ({ prefix, family: prefix.includes(':') ? 6 : 4 }));
  }

  allocate(owner: ValidAttachment): string[] {
    this.#log.record('ipam', 'allocate', [owner]);
    const held = this.#held.get(ownerKey(owner));
    if (held) return [...held.cidrs];
    const n = this.#next++;
    const cidrs = this.#pools.map((p) => `${p.prefix}${p.family === 4 ? n : n.toString(16)}/${p.family === 4 ? 32 : 128}`);
    this.#held.set(ownerKey(owner), { owner: { ...owner }, cidrs });
    return [...cidrs];
  }

  release(owner: ValidAttachment): void {
    this.#log.record('ipam', 'release', [owner]);
    this.#held.delete(ownerKey(owner));
  }

  owners(): ValidAttachment[] {
    this.#log.record('ipam', 'owners', []);
    return [...this.#held.values()].map((h) => ({ ...h.owner }));
  }

  /** owner → addresses, for comparing states. */
  snapshot(): Record<string, string[]> {
    return Object.fromEntries([...this.#held.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, [...v.cidrs]]));
  }
}

/**
 * A delegated IPAM plugin (host-local-like): ADD hands out a /24 address
 * from 10.99.0.0/24 per CNI_CONTAINERID/CNI_IFNAME (the same one again for
 * the same attachment), DEL releases it (idempotent), CHECK fails for an
 * attachment it does not know, GC keeps only cni.dev/valid-attachments.
 */
export class FakeDelegate implements DelegatePort {
  readonly #log: CallLog;
  readonly #held = new Map<string, string>();
  #next = 10;
  /** What ADD returns instead of a result, when a test sets it. */
  addResult?: (address: string) => unknown;

  constructor(log: CallLog) {
    this.#log = log;
  }

  async run(command: 'ADD' | 'DEL' | 'CHECK' | 'GC', conf: NetConf, env: Record<string, string>): Promise<unknown> {
    this.#log.record('delegate', command, [{ ipam: conf.ipam, env }]);
    await Promise.resolve();
    const k = `${env.CNI_CONTAINERID}/${env.CNI_IFNAME}`;
    switch (command) {
      case 'ADD': {
        let address = this.#held.get(k);
        if (!address) this.#held.set(k, (address = `10.99.0.${this.#next++}/24`));
        if (this.addResult) return this.addResult(address);
        return { cniVersion: conf.cniVersion, ips: [{ address, gateway: '10.99.0.1' }], dns: { nameservers: ['10.99.0.53'] } };
      }
      case 'DEL':
        this.#held.delete(k);
        return undefined;
      case 'CHECK':
        if (!this.#held.has(k)) throw new Error(`no allocation for ${k}`);
        return undefined;
      case 'GC': {
        const valid = new Set((conf.validAttachments ?? []).map(ownerKey));
        for (const key of [...this.#held.keys()]) if (!valid.has(key)) this.#held.delete(key);
        return undefined;
      }
    }
  }

  /** attachment → address, for comparing states. */
  snapshot(): Record<string, string> {
    return Object.fromEntries([...this.#held.entries()].sort(([a], [b]) => a.localeCompare(b)));
  }
}

/**
 * The endpoint registry: register stores the record and counts it as
 * programmed (the real one programs the datapath and persists the record,
 * and on failure leaves neither, which a failure injected here models: the
 * call throws before anything is stored).
 */
export class FakeEndpoints implements EndpointsPort {
  readonly #log: CallLog;
  readonly #records = new Map<string, EndpointRecord>();
  /** hostIfindex of every endpoint the fake datapath has programmed. */
  readonly #programmed = new Set<number>();

  constructor(log: CallLog) {
    this.#log = log;
  }

  get(containerId: string, ifname: string): EndpointRecord | undefined {
    this.#log.record('endpoints', 'get', [containerId, ifname]);
    return this.#records.get(ownerKey({ containerId, ifname }));
  }

  list(): EndpointRecord[] {
    this.#log.record('endpoints', 'list', []);
    return [...this.#records.values()];
  }

  async register(rec: EndpointRecord): Promise<void> {
    this.#log.record('endpoints', 'register', [rec]);
    await Promise.resolve();
    this.#records.set(ownerKey(rec), structuredClone(rec));
    this.#programmed.add(rec.hostIfindex);
  }

  async unregister(containerId: string, ifname: string): Promise<void> {
    this.#log.record('endpoints', 'unregister', [containerId, ifname]);
    await Promise.resolve();
    const rec = this.#records.get(ownerKey({ containerId, ifname }));
    if (!rec) return;
    this.#programmed.delete(rec.hostIfindex);
    this.#records.delete(ownerKey(rec));
  }

  programmed(rec: EndpointRecord): boolean {
    this.#log.record('endpoints', 'programmed', [rec.containerId, rec.ifname]);
    return this.#programmed.has(rec.hostIfindex);
  }

  /** Drops the datapath state of an endpoint but keeps its record (a map wiped under the agent). */
  forgetProgram(containerId: string, ifname: string): void {
    const rec = this.#records.get(ownerKey({ containerId, ifname }));
    if (rec) this.#programmed.delete(rec.hostIfindex);
  }

  /** attachment → host veth, plus the programmed ifindexes, for comparing states. */
  snapshot(): { records: Record<string, string>; programmed: number } {
    return {
      records: Object.fromEntries([...this.#records.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([k, r]) => [k, r.hostIfname])),
      programmed: this.#programmed.size,
    };
  }
}

export interface NodeSnapshot {
  netlink: Record<string, NsSnapshot>;
  ipam: Record<string, string[]>;
  delegate: Record<string, string>;
  endpoints: { records: Record<string, string>; programmed: number };
}

/** A whole node for the CNI handlers: every port faked, one call log. */
export class FakeCniNode {
  readonly log = new CallLog();
  readonly netlink = new FakeNetlink(this.log);
  readonly ipam: FakeIpam;
  readonly delegate = new FakeDelegate(this.log);
  readonly endpoints = new FakeEndpoints(this.log);
  readonly deps: CniDeps;
  /** The clock ADD stamps records with. */
  readonly clock = new Date('2026-01-02T03:04:05.000Z');

  constructor(opts: { pools?: string[] } = {}) {
    this.ipam = new FakeIpam(this.log, opts.pools);
    this.deps = {
      netlink: this.netlink,
      ipam: this.ipam,
      delegate: this.delegate,
      endpoints: this.endpoints,
      netnsExists: (path) => {
        this.log.record('node', 'netnsExists', [path]);
        return this.netlink.hasNetns(path);
      },
      now: () => {
        this.log.record('node', 'now', []);
        return new Date(this.clock);
      },
    };
  }

  snapshot(): NodeSnapshot {
    return { netlink: this.netlink.snapshot(), ipam: this.ipam.snapshot(), delegate: this.delegate.snapshot(), endpoints: this.endpoints.snapshot() };
  }
}
