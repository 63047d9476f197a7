/* Local delivery: a packet from one of this node's pods to another goes
 * straight into the destination pod's netns (bpf_redirect_peer on its host
 * veth), after both pods' policies were judged in sluice_from_pod. See
 * bpf/shared/local.h and docs/datapath.md. */
#ifndef SLUICE_LIB_LOCAL_H
#define SLUICE_LIB_LOCAL_H
#include "../shared/local.h"
#include "../shared/ipcache.h"
#include "../shared/dns.h"
#include "common.h"
#include "parse.h"

#ifndef SLUICE_MAX_LOCAL
#define SLUICE_MAX_LOCAL 8192 /* default; the agent sizes it (two addresses per endpoint) */
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SLUICE_MAX_LOCAL);
	__type(key, struct sluice_ipcache_key);
	__type(value, struct sluice_local_ep);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_local_v1 SEC(".maps");

#define IPV4_TTL_OFF (ETH_HLEN + 8)
#define IPV4_CHECK_OFF (ETH_HLEN + 10)
#define IPV6_HOPLIMIT_OFF (ETH_HLEN + 7)

/* Whether --datapath-redirect is on (sluice_config_v2, in lib/dns.h). */
static __always_inline int redirect_enabled(void)
{
	__u32 zero = 0;
	struct sluice_config *cfg = bpf_map_lookup_elem(&sluice_config_v2, &zero);

	return cfg && (cfg->flags & SLUICE_CFG_F_REDIRECT);
}

/* The local pod that owns `addr`, or NULL. */
static __always_inline struct sluice_local_ep *local_lookup(__u8 family, const __u8 *addr)
{
	struct sluice_ipcache_key key = { .family = family };

	__builtin_memcpy(key.addr, addr, 16);
	return bpf_map_lookup_elem(&sluice_local_v1, &key);
}

/*
 * The local pod a packet leaving a pod may be delivered to directly, or NULL:
 * the normal path. Only whole IPv4/IPv6 TCP, UDP, SCTP and ICMP packets (no
 * fragments: the stack may reassemble them), with a hop limit left, not a
 * resolver's answer (UDP from port 53, which may be for the DNS proxy's
 * socket), and not IPv6 neighbour discovery or MLD (judged as link plumbing
 * only with the hop limit the stack would have decremented).
 */
static __always_inline struct sluice_local_ep *local_candidate(const struct tuple *t)
{
	if (t->arp || (t->family != 4 && t->family != 6) || t->frag != FRAG_NONE || t->hop_limit <= 1)
		return NULL;
	switch (t->protocol) {
	case IPPROTO_TCP:
	case IPPROTO_SCTP:
	case IPPROTO_ICMP:
		break;
	case IPPROTO_UDP:
		if (t->sport_be == bpf_htons(SLUICE_DNS_PORT))
			return NULL;
		break;
	case IPPROTO_ICMPV6:
		if (t->icmp_type >= 130 && t->icmp_type <= 143)
			return NULL;
		break;
	default:
		return NULL;
	}
	if (!redirect_enabled())
		return NULL;
	return local_lookup(t->family, t->daddr);
}

/* The frame's head through the IPv4 header checksum (the IPv6 hop limit
 * comes earlier): all a forwarding hop changes. */
#define FWD_HEAD_LEN (IPV4_CHECK_OFF + 2)

/*
 * What the forwarding stack would have done to the frame, in one store: the
 * hop limit decremented (the IPv4 header checksum updated as the kernel's
 * ip_decrease_ttl does: TTL is the high byte of its 16-bit word) and, unless
 * dmac is NULL, the next hop's MACs. 0 on success; on failure nothing was
 * written.
 */
static __always_inline int forward_rewrite(struct __sk_buff *skb, const struct tuple *t, const __u8 *dmac, const __u8 *smac)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u8 head[FWD_HEAD_LEN];
	__u32 sum;
	__u16 check;

	/* Every IPv4 or IPv6 frame is at least this long (parse_packet). */
	if (data + FWD_HEAD_LEN <= data_end)
		__builtin_memcpy(head, data, FWD_HEAD_LEN);
	else if (bpf_skb_load_bytes(skb, 0, head, FWD_HEAD_LEN) < 0)
		return -1;
	if (dmac) {
		__builtin_memcpy(head, dmac, 6);
		__builtin_memcpy(head + 6, smac, 6);
	}
	if (t->family == 4) {
		head[IPV4_TTL_OFF] -= 1;
		__builtin_memcpy(&check, head + IPV4_CHECK_OFF, 2);
		sum = (__u32)check + bpf_htons(0x0100);
		check = sum + (sum >= 0xFFFF);
		__builtin_memcpy(head + IPV4_CHECK_OFF, &check, 2);
		return bpf_skb_store_bytes(skb, 0, head, FWD_HEAD_LEN, 0) < 0 ? -1 : 0;
	}
	head[IPV6_HOPLIMIT_OFF] -= 1;
	return bpf_skb_store_bytes(skb, 0, head, IPV6_HOPLIMIT_OFF + 1, 0) < 0 ? -1 : 0;
}

/* Into a local pod: its eth0 MAC, from its host veth's. */
static __always_inline int local_rewrite(struct __sk_buff *skb, const struct tuple *t, const struct sluice_local_ep *dst)
{
	return forward_rewrite(skb, t, dst->pod_mac, dst->host_mac);
}
#endif
