// The "world" behind a simulated node: a network namespace linked to the
// node by a veth — the node's real, non-pod interface, as every node has —
// that owns whole address ranges outright (local routes on its lo, "AnyIP"),
// so every test host can have an address of its own, and routes the pod
// CIDRs back through the node. Test servers (nsd, echo servers) run in it.
import { TestNode } from './agent.js';
import type { Cleanup, Netns } from './netns.js';

export interface WorldOptions {
  /** One letter or two that make the node-side link name unique in this process. */
  tag: string;
  /** The node's side of the link: a CIDR per family ("198.19.0.1/24", "fd00:19::1/64"). */
  node: readonly string[];
  /** The world's side, in the same order. */
  world: readonly string[];
  /** Ranges the world owns (local routes on its lo), routed to it by the node. */
  owns: readonly string[];
  /** Addresses also put on the world's lo (servers that bind an address explicitly). */
  addresses?: readonly string[];
  /** The node's pod CIDRs, routed back through the node. */
  podCidrs: readonly string[];
}

const v6 = (cidr: string) => cidr.includes(':');
const addrOf = (cidr: string) => cidr.split('/')[0]!;

export function makeWorld(cleanup: Cleanup, node: TestNode, opts: WorldOptions): Netns {
  const world = cleanup.netns('wld');
  const link = `slt${process.pid.toString(36)}${opts.tag}`;
  node.ns.exec('ip', ['link', 'add', link, 'type', 'veth', 'peer', 'name', 'w0', 'netns', world.path]);
  for (const [ns, dev, cidrs] of [
    [node.ns, link, opts.node],
    [world, 'w0', opts.world],
  ] as const) {
    for (const c of cidrs) ns.exec('ip', ['addr', 'add', c, 'dev', dev, ...(v6(c) ? ['nodad'] : [])]);
    ns.exec('ip', ['link', 'set', dev, 'up']);
  }
  world.exec('ip', ['link', 'set', 'lo', 'up']);
  const via = (side: readonly string[], family6: boolean) => addrOf(side.find((c) => v6(c) === family6) ?? '');
  for (const range of opts.owns) {
    const fam = v6(range) ? ['-6'] : [];
    node.ns.exec('ip', [...fam, 'route', 'add', range, 'via', via(opts.world, v6(range))]);
    world.exec('ip', [...fam, 'route', 'add', 'local', range, 'dev', 'lo']);
  }
  for (const cidr of opts.podCidrs) world.exec('ip', [...(v6(cidr) ? ['-6'] : []), 'route', 'add', cidr, 'via', via(opts.node, v6(cidr))]);
  for (const a of opts.addresses ?? []) world.exec('ip', ['addr', 'add', `${a}/${v6(a) ? 128 : 32}`, 'dev', 'lo', ...(v6(a) ? ['nodad'] : [])]);
  return world;
}
