// Mirror of bpf/shared/dns.h: where intercepted DNS goes. A test compares.
export const DNS_PORT = 53;
export const PROXY_PORT = 9953;
export const PROXY_V4 = '169.254.20.53';
export const PROXY_V6 = 'fd5c:1ce::53';
/** SO_MARK of the proxy's transparent upstream sockets (identifies them to the datapath). */
export const MARK_MASK = 0x0ff00000;
export const MARK_PROXY_SOCK = 0x05100000;
/** Set by the datapath on an answer for a transparent upstream socket; routed by the agent's rule. */
export const MARK_TO_PROXY = 0x05200000;
/** The routing table (`local` default routes on lo) and rule priority for MARK_TO_PROXY. */
export const PROXY_TABLE = 4253;
export const PROXY_RULE_PRIORITY = 1053;
