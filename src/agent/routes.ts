// Routes to the other nodes' pod CIDRs (Kubernetes mode, --routing direct):
// each Node's spec.podCIDRs via that node's InternalIP of the same family.
// Direct routing needs the nodes on one link (the kernel refuses a gateway
// that is not on-link: reported as a problem, nothing else changes). The
// routes are the agent's own: replaced when a node moves, deleted when it
// goes, and left in place when the agent stops (traffic keeps flowing).
import { isIP } from 'node:net';
import type { Logger } from '../log/index.js';
import type { NativeAddon } from '../native/index.js';

export interface PeerNode {
  name: string;
  podCidrs: readonly string[];
  internalIps: readonly string[];
}

/** Metric of the routes this module owns: how it recognises them. */
export const PEER_ROUTE_METRIC = 4242;

function familyOf(cidr: string): 4 | 6 {
  return cidr.includes(':') ? 6 : 4;
}

export class NodeRoutes {
  readonly #n: Pick<NativeAddon, 'routeReplace' | 'routeDel' | 'routeList'>;
  readonly #self: string;
  readonly #log: Logger;
  /** dst → gateway of the routes in place. */
  readonly #installed = new Map<string, string>();
  readonly #problems = new Map<string, string>();

  constructor(n: Pick<NativeAddon, 'routeReplace' | 'routeDel' | 'routeList'>, self: string, log: Logger) {
    this.#n = n;
    this.#self = self;
    this.#log = log;
    // Routes an earlier agent left: adopted, so the first sync diffs against them.
    for (const fam of [4, 6] as const) {
      for (const r of this.#n.routeList(null, fam)) if (r.metric === PEER_ROUTE_METRIC && r.gateway) this.#installed.set(r.dst, r.gateway);
    }
  }

  /** Brings the routes in line with `nodes` (every node, this one included: it is skipped). */
  sync(nodes: readonly PeerNode[]): void {
    const want = new Map<string, { gateway: string; node: string }>();
    for (const node of nodes) {
      if (node.name === this.#self) continue;
      for (const cidr of node.podCidrs) {
        const gw = node.internalIps.find((ip) => isIP(ip) === familyOf(cidr));
        if (gw) want.set(cidr, { gateway: gw, node: node.name });
      }
    }
    this.#problems.clear();
    for (const [dst, { gateway, node }] of want) {
      if (this.#installed.get(dst) === gateway) continue;
      try {
        this.#n.routeReplace(null, { dst, gateway, metric: PEER_ROUTE_METRIC });
        this.#installed.set(dst, gateway);
        this.#log.info({ node, dst, gateway }, 'route to a node\'s pods');
      } catch (err) {
        const msg = `no route to node ${node}'s pods ${dst} via ${gateway}: ${(err as Error).message} (direct routing needs the nodes on one link)`;
        this.#problems.set(dst, msg);
        this.#log.error({ node, dst, gateway, error: (err as Error).message }, 'cannot route to a node\'s pods');
      }
    }
    for (const [dst, gateway] of [...this.#installed]) {
      if (want.has(dst)) continue;
      try {
        this.#n.routeDel(null, { dst, gateway, metric: PEER_ROUTE_METRIC });
      } catch {
        // already gone
      }
      this.#installed.delete(dst);
      this.#log.info({ dst, gateway }, 'route to a departed node\'s pods removed');
    }
  }

  problems(): string[] {
    return [...this.#problems.values()];
  }

  routes(): Array<{ dst: string; gateway: string }> {
    return [...this.#installed].map(([dst, gateway]) => ({ dst, gateway }));
  }
}
