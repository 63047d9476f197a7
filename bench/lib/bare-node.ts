// A "node" netns with pods wired exactly as sluice-cni wires them
// (src/cni/handlers.ts), but with plain `ip` and no eBPF: each pod has its
// address as a /32 on eth0 and a default route via 169.254.1.1 onlink, a
// permanent neighbour entry pointing at the host veth's MAC; the node routes
// each pod /32 to its host veth, with a permanent neighbour entry for the pod,
// and forwards. So pod → pod crosses the same two veth pairs and the same
// node routing as with Sluice, minus the tc programs.
import { sh, uniqueName, type Cleanup, type Netns } from '../../test/helpers/netns.js';

export interface BarePod {
  ns: Netns;
  ip: string;
  hostIf: string;
}

function mac(nsName: string, ifname: string): string {
  const j = JSON.parse(sh('ip', ['-n', nsName, '-j', 'link', 'show', 'dev', ifname])) as Array<{ address: string }>;
  return j[0]!.address;
}

export class BareNode {
  readonly ns: Netns;
  readonly #cleanup: Cleanup;

  constructor(cleanup: Cleanup) {
    this.#cleanup = cleanup;
    this.ns = cleanup.netns('bn');
    this.ns.exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  }

  addPod(ip: string, mtu = 1500): BarePod {
    const ns = this.#cleanup.netns('bp');
    const hostIf = uniqueName('bv');
    const node = this.ns.name;
    sh('ip', ['-n', node, 'link', 'add', hostIf, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', String(mtu), 'netns', ns.name]);
    const hostMac = mac(node, hostIf);
    const podMac = mac(ns.name, 'eth0');
    sh('ip', ['-n', ns.name, 'link', 'set', 'eth0', 'up']);
    sh('ip', ['-n', ns.name, 'addr', 'add', `${ip}/32`, 'dev', 'eth0']);
    sh('ip', ['-n', ns.name, 'neigh', 'add', '169.254.1.1', 'lladdr', hostMac, 'dev', 'eth0', 'nud', 'permanent']);
    sh('ip', ['-n', ns.name, 'route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0', 'onlink']);
    sh('ip', ['-n', node, 'link', 'set', hostIf, 'up']);
    sh('ip', ['-n', node, 'route', 'add', `${ip}/32`, 'dev', hostIf, 'scope', 'link']);
    sh('ip', ['-n', node, 'neigh', 'add', ip, 'lladdr', podMac, 'dev', hostIf, 'nud', 'permanent']);
    return { ns, ip, hostIf };
  }
}
