// sluice_lb_svc_v1 + sluice_lb_be_v1 (Service frontends and their backends)
// and sluice_lb_netns_v1 (which sockets are this node's pods'): what the
// cgroup programs of bpf/lib/lb.h translate with. One owner; it adopts what
// the pinned maps hold at start and from then on writes differences only.
//
// Order, so a connect() racing a change never picks an empty slot: a
// frontend's new backends are written first, then its entry (count, rev),
// then the slots beyond the new count are deleted.
import type { BpfMapOps } from '../native/index.js';
import { familyOf } from '../net/index.js';
import * as lb from './codec/lb.js';
import { BpfMap, type MapCodec } from './maps.js';

export type { Backend, SvcKey } from './codec/lb.js';

/** A Service frontend and the backends a new connection to it may go to (empty: rejected at once). */
export interface Frontend {
  key: lb.SvcKey;
  backends: lb.Backend[];
  /** "namespace/name" of its Service (for people; the datapath does not store it). */
  service?: string;
}

interface Current {
  id: number;
  rev: number;
  backends: lb.Backend[];
}

const svcCodec: MapCodec<lb.SvcKey, lb.Svc> = {
  keySize: lb.SVC_KEY_SIZE,
  valueSize: lb.SVC_SIZE,
  encodeKey: lb.encodeSvcKey,
  decodeKey: lb.decodeSvcKey,
  encodeValue: lb.encodeSvc,
  decodeValue: lb.decodeSvc,
};
const beCodec: MapCodec<{ id: number; slot: number }, lb.Backend> = {
  keySize: lb.BE_KEY_SIZE,
  valueSize: lb.BE_SIZE,
  encodeKey: lb.encodeBeKey,
  decodeKey: lb.decodeBeKey,
  encodeValue: lb.encodeBe,
  decodeValue: lb.decodeBe,
};
const netnsCodec: MapCodec<string, number> = {
  keySize: 8,
  valueSize: 4,
  encodeKey: lb.encodeNetnsKey,
  decodeKey: lb.decodeNetnsKey,
  encodeValue: (v) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    return b;
  },
  decodeValue: (b) => b.readUInt32LE(0),
};

const keyOf = (k: lb.SvcKey): string => `${k.family}/${k.protocol}/${k.ip}/${k.port}`;
const beOf = (b: lb.Backend): string => `${b.ip}/${b.port}`;

export class ServiceTable {
  readonly #svc: BpfMap<lb.SvcKey, lb.Svc>;
  readonly #be: BpfMap<{ id: number; slot: number }, lb.Backend>;
  readonly #netns: BpfMap<string, number>;
  readonly #cur = new Map<string, Current & { key: lb.SvcKey }>();
  /** What sluice_lb_netns_v1 holds (read once at start, then kept in step with each write). */
  readonly #pods: Map<string, number>;
  #nextId = 1;

  readonly #n: BpfMapOps;
  readonly #flowFd: number | undefined;

  constructor(addon: BpfMapOps, fds: { svc: number; be: number; netns: number; flow?: number }, names: { svc: string; be: string; netns: string }) {
    this.#n = addon;
    this.#flowFd = fds.flow;
    this.#svc = new BpfMap(addon, fds.svc, names.svc, svcCodec);
    this.#be = new BpfMap(addon, fds.be, names.be, beCodec);
    this.#netns = new BpfMap(addon, fds.netns, names.netns, netnsCodec);
    // Adopt what a previous agent left (pinned maps outlive it).
    this.#pods = new Map(this.#netns.entries());
    const slots = new Map<number, Map<number, lb.Backend>>();
    for (const [k, v] of this.#be.entries()) {
      let m = slots.get(k.id);
      if (!m) slots.set(k.id, (m = new Map()));
      m.set(k.slot, v);
    }
    for (const [key, v] of this.#svc.entries()) {
      const m = slots.get(v.id) ?? new Map<number, lb.Backend>();
      const backends: lb.Backend[] = [];
      for (let i = 0; i < v.count && m.has(i); i++) backends.push(m.get(i)!);
      this.#cur.set(keyOf(key), { key, id: v.id, rev: v.rev, backends });
      this.#nextId = Math.max(this.#nextId, v.id + 1);
    }
  }

  /** The frontends in force, with their backends (in slot order). */
  frontends(): Frontend[] {
    return [...this.#cur.values()].map((c) => ({ key: c.key, backends: [...c.backends] }));
  }

  /** Makes the maps hold exactly `desired`; returns how many frontends it wrote or removed. */
  sync(desired: readonly Frontend[]): number {
    let changed = 0;
    const want = new Map<string, Frontend>();
    for (const f of desired) want.set(keyOf(f.key), f);
    for (const [k, f] of want) {
      const seen = new Set<string>();
      const backends = f.backends.filter((b) => b.family === f.key.family && !seen.has(beOf(b)) && (seen.add(beOf(b)), true)).slice(0, 0xffff);
      const cur = this.#cur.get(k);
      if (cur && cur.backends.length === backends.length && cur.backends.every((b, i) => beOf(b) === beOf(backends[i]!))) continue;
      const id = cur?.id ?? this.#nextId++;
      backends.forEach((b, i) => {
        const old = cur?.backends[i];
        if (!old || beOf(old) !== beOf(b)) this.#be.set({ id, slot: i }, b);
      });
      const rev = ((cur?.rev ?? 0) + 1) & 0xffff;
      this.#svc.set(f.key, { id, count: backends.length, rev });
      for (let i = backends.length; i < (cur?.backends.length ?? 0); i++) this.#be.delete({ id, slot: i });
      this.#cur.set(k, { key: f.key, id, rev, backends });
      changed++;
    }
    for (const [k, cur] of [...this.#cur]) {
      if (want.has(k)) continue;
      this.#svc.delete(cur.key);
      for (let i = 0; i < cur.backends.length; i++) this.#be.delete({ id: cur.id, slot: i });
      this.#cur.delete(k);
      changed++;
    }
    return changed;
  }

  /**
   * The frontend a pod (by netns cookie) last reached this backend through,
   * if it did (sluice_lb_flow_v1, LRU): what `sluice observe` names a flow by.
   */
  frontendOf(netns: string, protocol: number, ip: string, port: number): { ip: string; port: number } | undefined {
    if (this.#flowFd === undefined) return undefined;
    const family = familyOf(ip) || 4;
    const v = this.#n.mapLookup(this.#flowFd, lb.encodeFlowKey({ netns, family, protocol, ip, port }), lb.SOCK_SIZE);
    return v ? lb.decodeSockFrontend(v, family) : undefined;
  }

  /** Which sockets are this node's pods': netns cookie → host veth ifindex, exactly these. */
  syncPods(pods: ReadonlyMap<string, number>): void {
    for (const [cookie, ifindex] of pods) {
      if (this.#pods.get(cookie) === ifindex) continue;
      this.#netns.set(cookie, ifindex);
      this.#pods.set(cookie, ifindex);
    }
    for (const cookie of [...this.#pods.keys()]) {
      if (pods.has(cookie)) continue;
      this.#netns.delete(cookie);
      this.#pods.delete(cookie);
    }
  }
}
