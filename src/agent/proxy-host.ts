// What the DNS proxy needs from the node, as an interface: the FQDN service's
// logic then runs in unit tests without touching the host's routes or
// sockets. The real one is netlink and a socket call through the addon.
import { isIPv6 } from 'node:net';
import { native } from '../native/index.js';

export interface ProxyHost {
  /** Makes the proxy's addresses reachable on the node (never as a source the node picks). */
  routeLocal(addresses: readonly string[]): void;
  /** A bound, non-blocking socket fd on `address`:`port` (which need not be an interface address). */
  bind(family: 4 | 6, type: 'udp' | 'tcp', address: string, port: number): number;
}

/**
 * The proxy's addresses are `local` routes on lo, not interface addresses:
 * the kernel picks the source of the node's own traffic among interface
 * addresses only, so a kubelet probe or a ping from the node to a pod can
 * never leave from the proxy's address (the datapath would take it for a DNS
 * reply). An address an earlier version put on lo is removed for the same
 * reason. The listening sockets bind with IP_FREEBIND (native socketBind).
 */
export const nativeProxyHost: ProxyHost = {
  routeLocal(addresses) {
    const n = native();
    n.linkSet(null, 'lo', { up: true });
    const onLo = new Set(n.addrList(null, 'lo').map((a) => a.address));
    for (const a of addresses) {
      const plen = isIPv6(a) ? 128 : 32;
      if (onLo.has(a)) n.addrDel(null, 'lo', `${a}/${plen}`);
      n.routeReplace(null, { dst: `${a}/${plen}`, dev: 'lo', type: 'local' });
    }
  },
  bind(family, type, address, port) {
    // The proxy sizes its sockets' receive buffers itself (dgram recvBufferSize applies to a bound fd too).
    return native().socketBind(family, type, address, port);
  },
};
