// Two "nodes" (network namespaces, bare or running an agent) on one link, as
// direct routing needs them: a veth pair between the node namespaces, each end
// holding its node's address (the InternalIP; one per family given), and on
// each node a route to each of the other's pod CIDRs via that address — the
// route Sluice's agent installs in Kubernetes mode (--routing direct,
// src/agent/routes.ts), which standalone mode does not do. The pair goes when
// either namespace does.
import { PEER_ROUTE_METRIC } from '../../src/agent/routes.js';
import { sh, uniqueName, type Netns } from './netns.js';

export interface LinkedNode {
  ns: Netns;
  /** The pod CIDRs the other node routes here ("10.0.1.0/24" or "10.0.1.0/24,fd00:1::/64"). */
  podCidr: string;
}

export interface NodeLink {
  /** The link's interface names in a's and b's netns. */
  ifnames: { a: string; b: string };
  /** a's and b's link addresses: IPv4 first, then IPv6 when given. */
  a: string[];
  b: string[];
}

/**
 * Joins `a` and `b`: IPv4 on `subnets.v4` (its .1 and .2, e.g. '10.218.255', a
 * /24), IPv6 on `subnets.v6` when given (its ::1 and ::2, e.g. 'fd00:78:254::',
 * a /64). `prefix`: the namespace prefix its interface names carry.
 */
export function linkNodes(a: LinkedNode, b: LinkedNode, subnets: { v4: string; v6?: string }, prefix?: string): NodeLink {
  const ifnames = { a: uniqueName('lk', prefix), b: uniqueName('lk', prefix) };
  const addrs = (host: number) => [`${subnets.v4}.${host}`, ...(subnets.v6 ? [`${subnets.v6}${host}`] : [])];
  const link: NodeLink = { ifnames, a: addrs(1), b: addrs(2) };
  sh('ip', ['-n', a.ns.name, 'link', 'add', ifnames.a, 'type', 'veth', 'peer', 'name', ifnames.b, 'netns', b.ns.name]);
  for (const [node, ifname, own, peer, gateways] of [[a, ifnames.a, link.a, b, link.b], [b, ifnames.b, link.b, a, link.a]] as const) {
    const n = node.ns.name;
    if (subnets.v6) node.ns.exec('sysctl', ['-qw', 'net.ipv6.conf.all.forwarding=1']);
    for (const ip of own) sh('ip', ['-n', n, 'addr', 'add', ip.includes(':') ? `${ip}/64` : `${ip}/24`, 'dev', ifname, ...(ip.includes(':') ? ['nodad'] : [])]);
    sh('ip', ['-n', n, 'link', 'set', ifname, 'up']);
    for (const cidr of peer.podCidr.split(',')) {
      const gateway = gateways.find((g) => g.includes(':') === cidr.includes(':'));
      if (gateway) sh('ip', ['-n', n, 'route', 'replace', cidr, 'via', gateway, 'dev', ifname, 'metric', String(PEER_ROUTE_METRIC)]);
    }
  }
  return link;
}
