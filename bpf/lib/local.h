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

/*
 * The local pod a packet leaving a pod may be delivered to directly, or NULL:
 * the normal path. Only whole IPv4/IPv6 TCP, UDP, SCTP and ICMP packets (no
 * fragments: the stack may reassemble them), with a hop limit left, not a
 * resolver's answer (UDP from port 53, which may be for the DNS proxy's
 * socket), and not IPv6 neighbour discovery or MLD (judged as link plumbing
 * only with the hop limit the stack would have decremented).
 */
/* The local pod that owns `addr`, or NULL. */
static __always_inline struct sluice_local_ep *local_lookup(__u8 family, const __u8 *addr)
{
	struct sluice_ipcache_key key = { .family = family };

	__builtin_memcpy(key.addr, addr, 16);
	return bpf_map_lookup_elem(&sluice_local_v1, &key);
}

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

/* The hop limit decremented, as the forwarding stack would (IPv4 checksum
 * fixed). 0 on success. */
static __always_inline int hop_decrement(struct __sk_buff *skb, const struct tuple *t)
{
	if (t->family == 4) {
		/* TTL and protocol share one 16-bit checksum word. */
		__u16 old_word = bpf_htons(((__u16)t->hop_limit << 8) | t->protocol);
		__u16 new_word = bpf_htons(((__u16)(t->hop_limit - 1) << 8) | t->protocol);
		__u8 ttl = t->hop_limit - 1;

		if (bpf_l3_csum_replace(skb, IPV4_CHECK_OFF, old_word, new_word, 2) < 0)
			return -1;
		return bpf_skb_store_bytes(skb, IPV4_TTL_OFF, &ttl, 1, 0) < 0 ? -1 : 0;
	}
	__u8 hl = t->hop_limit - 1;

	return bpf_skb_store_bytes(skb, IPV6_HOPLIMIT_OFF, &hl, 1, 0) < 0 ? -1 : 0;
}

/* What the forwarding stack would have done to the frame: the next hop's
 * MACs, the hop limit decremented. 0 on success. */
static __always_inline int forward_rewrite(struct __sk_buff *skb, const struct tuple *t, const __u8 *dmac, const __u8 *smac)
{
	__u8 macs[12];

	__builtin_memcpy(macs, dmac, 6);
	__builtin_memcpy(macs + 6, smac, 6);
	if (hop_decrement(skb, t) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0) < 0 ? -1 : 0;
}

/* Into a local pod: its eth0 MAC, from its host veth's. */
static __always_inline int local_rewrite(struct __sk_buff *skb, const struct tuple *t, const struct sluice_local_ep *dst)
{
	return forward_rewrite(skb, t, dst->pod_mac, dst->host_mac);
}
#endif
