// Two "nodes" (network namespaces, bare or running an agent) on one link, as
// direct routing needs them: a veth pair between the node namespaces, each end
// holding its node's address (the InternalIP) in one /24, and on each node a
// route to the other's pod CIDR via that address — the route Sluice's agent
// installs in Kubernetes mode (--routing direct, src/agent/routes.ts), which
// standalone mode does not do. The pair goes when either namespace does.
import { PEER_ROUTE_METRIC } from '../../src/agent/routes.js';
import { sh, uniqueName, type Netns } from '../../test/helpers/netns.js';
import { BENCH_PREFIX } from './bench-netns.js';

export interface LinkedNode {
  ns: Netns;
  /** The pod CIDR the other node routes here. */
  podCidr: string;
}

/** Joins `a` and `b` on `subnet` (its .1 and .2, e.g. '10.218.255'); returns their link addresses. */
export function linkNodes(a: LinkedNode, b: LinkedNode, subnet: string): { a: string; b: string } {
  const ifA = uniqueName('lk', BENCH_PREFIX);
  const ifB = uniqueName('lk', BENCH_PREFIX);
  const ipA = `${subnet}.1`;
  const ipB = `${subnet}.2`;
  sh('ip', ['-n', a.ns.name, 'link', 'add', ifA, 'type', 'veth', 'peer', 'name', ifB, 'netns', b.ns.name]);
  for (const [node, ifname, ip, peer, gateway] of [[a, ifA, ipA, b, ipB], [b, ifB, ipB, a, ipA]] as const) {
    sh('ip', ['-n', node.ns.name, 'addr', 'add', `${ip}/24`, 'dev', ifname]);
    sh('ip', ['-n', node.ns.name, 'link', 'set', ifname, 'up']);
    sh('ip', ['-n', node.ns.name, 'route', 'replace', peer.podCidr, 'via', gateway, 'dev', ifname, 'metric', String(PEER_ROUTE_METRIC)]);
  }
  return { a: ipA, b: ipB };
}
