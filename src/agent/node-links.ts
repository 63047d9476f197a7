// The node's own links (not the pods' veths, not lo) carry sluice_from_node
// on tc ingress: it marks resolvers' answers to the DNS proxy's per-pod
// sockets before netfilter, so they reach the sockets in one pass through
// conntrack (kube-proxy's Service translation included). Links come and go
// (a NIC renamed, a bridge added): they are listed at start and then every
// `intervalMs`, and a link not seen before is attached. Only Ethernet-like
// links (6-byte address): the program parses an Ethernet header.
import type { LinkInfo } from '../native/index.js';
import type { Logger } from '../log/index.js';
import { HOST_VETH_PREFIX } from '../cni/index.js';

export class NodeLinks {
  readonly #list: () => LinkInfo[];
  readonly #attach: (ifname: string) => void;
  readonly #log: Logger;
  readonly #intervalMs: number;
  /** ifindex → name of the links attached (a link made again gets a new ifindex). */
  readonly #done = new Map<number, string>();
  /** Links whose attach failed, logged once each. */
  readonly #failed = new Set<number>();
  #timer: NodeJS.Timeout | undefined;

  constructor(list: () => LinkInfo[], attach: (ifname: string) => void, log: Logger, intervalMs = 2000) {
    this.#list = list;
    this.#attach = attach;
    this.#log = log;
    this.#intervalMs = intervalMs;
  }

  /** The links it attached, by name. */
  attached(): string[] {
    return [...this.#done.values()].sort();
  }

  /** Attaches every eligible link not attached yet; forgets links gone. */
  refresh(): void {
    let links: LinkInfo[];
    try {
      links = this.#list();
    } catch (err) {
      this.#log.warn({ err }, 'cannot list the node\'s links');
      return;
    }
    const present = new Set<number>();
    for (const l of links) {
      if (!isNodeLink(l)) continue;
      present.add(l.ifindex);
      if (this.#done.has(l.ifindex)) continue;
      try {
        this.#attach(l.name);
        this.#done.set(l.ifindex, l.name);
        this.#failed.delete(l.ifindex);
        this.#log.info({ link: l.name }, 'DNS answer steering attached to a node link');
      } catch (err) {
        if (!this.#failed.has(l.ifindex)) this.#log.error({ err, link: l.name }, 'cannot attach DNS answer steering to a node link: answers to pod-source DNS queries arriving there may be lost');
        this.#failed.add(l.ifindex);
      }
    }
    for (const i of [...this.#done.keys()]) if (!present.has(i)) this.#done.delete(i);
    for (const i of [...this.#failed]) if (!present.has(i)) this.#failed.delete(i);
  }

  start(): void {
    this.refresh();
    if (this.#timer) return;
    this.#timer = setInterval(() => this.refresh(), this.#intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

/** Not lo, not a pod's host veth, and Ethernet-like. */
export function isNodeLink(l: LinkInfo): boolean {
  return l.name !== 'lo' && !l.name.startsWith(HOST_VETH_PREFIX) && l.mac.split(':').length === 6;
}
