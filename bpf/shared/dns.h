/* Transparent DNS interception. DNS (UDP and TCP port 53, any destination)
 * from an intercepting endpoint is rewritten to the agent's proxy on the
 * node; the original destination is remembered per client socket, so the
 * proxy knows which server the pod asked, and the proxy's replies are
 * rewritten back to come from that server.
 *
 * The proxy's addresses live on the node's loopback device and never leave
 * it: 169.254.0.0/16 is link-local, fd5c:1ce::/64 unique-local. Mirrored in
 * src/dns/constants.ts (a test compares). */
#ifndef SLUICE_SHARED_DNS_H
#define SLUICE_SHARED_DNS_H
#include "types.h"

#define SLUICE_DNS_PORT        53
#define SLUICE_DNS_PROXY_PORT  9953
#define SLUICE_DNS_PROXY_V4    "169.254.20.53"
#define SLUICE_DNS_PROXY_V6    "fd5c:1ce::53"
/* The same addresses as bytes, in network order. */
#define SLUICE_DNS_PROXY_V4_BYTES 169, 254, 20, 53
#define SLUICE_DNS_PROXY_V6_BYTES 0xfd, 0x5c, 0x01, 0xce, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53

/* Queries the proxy forwards to a trusted resolver leave with the pod's own
 * source address (so CoreDNS sees the pod: `autopath`, `pods verified`, ACLs),
 * from a socket with IP_TRANSPARENT and SLUICE_MARK_PROXY_SOCK (SO_MARK). A
 * resolver's answer to such a socket is addressed to the pod; the datapath
 * finds the socket (bpf_sk_lookup_udp, checking its mark), sets
 * SLUICE_MARK_TO_PROXY on the packet and, where routing is already done,
 * sends it back in through lo. The agent's policy rule (fwmark TO_PROXY under
 * SLUICE_MARK_MASK, priority SLUICE_PROXY_RULE_PRIORITY) looks it up in table
 * SLUICE_PROXY_TABLE, whose `local` default routes deliver it to the socket.
 * The bits are clear of kube-proxy's (0x4000, 0x8000) and Cilium's (0x0f00). */
#define SLUICE_MARK_MASK            0x0ff00000
#define SLUICE_MARK_PROXY_SOCK      0x05100000
#define SLUICE_MARK_TO_PROXY        0x05200000
#define SLUICE_PROXY_TABLE          4253
#define SLUICE_PROXY_RULE_PRIORITY  1053

/* The client's side of an intercepted DNS flow. */
struct sluice_dns_nat_key {
	__u8 family;
	__u8 protocol;   /* IPPROTO_UDP or IPPROTO_TCP */
	__u16 port_be;   /* the pod's source port */
	__u8 addr[16];   /* the pod's source address */
};

struct sluice_dns_nat_value {
	__u8 daddr[16];  /* where the pod sent it */
	__u16 dport_be;
	__u16 pad;       /* must be zero */
	__u32 ifindex;   /* the pod's host-side veth: who asked */
};

/* Node-wide settings, written by the agent. The per-pod DNS budget (a token
 * bucket in time units, GCRA style): every intercepted UDP query and TCP SYN
 * costs cost_ns of credit; credit grows with time up to burst_ns
 * (--dns-pod-qps); cost_ns 0 means no limit. flags: SLUICE_CFG_F_*. */
#define SLUICE_CFG_F_REDIRECT (1U << 0) /* --datapath-redirect: local pod-to-pod delivery with bpf_redirect_peer */

struct sluice_config {
	__u64 dns_cost_ns;   /* 1e9 / qps */
	__u64 dns_burst_ns;  /* burst * cost_ns */
	__u32 flags;         /* SLUICE_CFG_F_* */
	__u32 pad;           /* must be zero */
};

struct sluice_dns_budget {
	__u64 stamp_ns;      /* when credit was last brought up to date */
	__u64 credit_ns;
	__u64 dropped;       /* queries over budget, since the entry was made */
};

_Static_assert(sizeof(struct sluice_config) == 24, "sluice_config layout");
_Static_assert(sizeof(struct sluice_dns_budget) == 24, "sluice_dns_budget layout");
_Static_assert(sizeof(struct sluice_dns_nat_key) == 20, "sluice_dns_nat_key layout");
_Static_assert(sizeof(struct sluice_dns_nat_value) == 24, "sluice_dns_nat_value layout");
#endif
