// What the DNS proxy needs from the node, as an interface: the FQDN service's
// logic then runs in unit tests without touching the host's routes or
// sockets. The real one is netlink and a socket call through the addon.
import { isIPv6 } from 'node:net';
import { DNS_PORT, MARK_MASK, MARK_PROXY_SOCK, MARK_TO_PROXY, PROXY_RULE_PRIORITY, PROXY_TABLE } from '../dns/constants.js';
import type { UdpSockets } from '../dns/index.js';
import { native, type NativeAnswerMemo } from '../native/index.js';

export interface ProxyHost {
  /** Makes the proxy's addresses reachable on the node (never as a source the node picks). */
  routeLocal(addresses: readonly string[]): void;
  /** A bound, non-blocking socket fd on `address`:`port` (which need not be an interface address). */
  bind(family: 4 | 6, type: 'udp' | 'tcp', address: string, port: number): number;
  /**
   * Delivers answers the datapath marked for the proxy's transparent sockets
   * to them: `ip rule fwmark TO_PROXY lookup PROXY_TABLE`, whose `local`
   * default routes make any address local (bpf/shared/dns.h).
   */
  routeToProxy(ipv6: boolean): void;
  /** A UDP socket fd that sends from a pod's `address` (IP_TRANSPARENT, marked MARK_PROXY_SOCK). */
  transparentSocket(family: 4 | 6, address: string): number;
  /** The proxy's UDP sockets, read in batches (native UdpBatch); absent: Node's dgram. */
  batch?: UdpSockets;
  /** The memo of answers that change nothing, for `batch`'s upstream sockets (src/dns/proxy.ts, MEMO); absent: none. */
  answerMemo?(minTtlMs: number, graceMs: number): NativeAnswerMemo;
}

/** Answers the proxy's memo keeps at most (one per slot: a newer answer takes its slot). */
const ANSWER_MEMO_SLOTS = 65_536;

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
  routeToProxy(ipv6) {
    const n = native();
    for (const family of ipv6 ? ([4, 6] as const) : ([4] as const)) {
      n.routeReplace(null, { dst: family === 4 ? '0.0.0.0/0' : '::/0', dev: 'lo', type: 'local', table: PROXY_TABLE });
      // `ipproto udp sport 53` too: the kernel's reverse-path check looks the packet's source up with
      // the ports swapped, so with src_valid_mark it does not find the `local default` of this table
      // (which would make every resolver a martian source where rp_filter is on).
      n.ruleAdd(null, { family, fwmark: MARK_TO_PROXY, fwmask: MARK_MASK, ipProto: 17, sport: DNS_PORT, table: PROXY_TABLE, priority: PROXY_RULE_PRIORITY });
    }
  },
  transparentSocket(family, address) {
    return native().socketTransparent(family, address, MARK_PROXY_SOCK);
  },
  batch: {
    open: (fd, onBatch, onSendFailed, memo) => new (native().UdpBatch)(fd, onBatch, onSendFailed, memo as NativeAnswerMemo | undefined),
    bind: (family) => native().socketBind(family, 'udp', family === 6 ? '::' : '0.0.0.0', 0),
  },
  // Answers are remembered the second time they are learned: a name asked once costs the memo nothing.
  answerMemo: (minTtlMs, graceMs) => new (native().AnswerMemo)(ANSWER_MEMO_SLOTS, minTtlMs, graceMs, true),
};
