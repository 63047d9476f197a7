/* Transparent DNS interception: the pod's queries to anywhere:53 go to the
 * agent's proxy on the node, its replies come back from where the pod sent
 * them. See bpf/shared/dns.h. */
#ifndef SLUICE_LIB_DNS_H
#define SLUICE_LIB_DNS_H
#include "../shared/dns.h"
#include "../shared/drop_reasons.h"
#include "parse.h"

#define IPV4_CSUM_OFF (ETH_HLEN + 10)
#define IPV4_SADDR_OFF (ETH_HLEN + 12)
#define IPV4_DADDR_OFF (ETH_HLEN + 16)
#define IPV6_SADDR_OFF (ETH_HLEN + 8)
#define IPV6_DADDR_OFF (ETH_HLEN + 24)

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct sluice_dns_nat_key);
	__type(value, struct sluice_dns_nat_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_dns_nat_v1 SEC(".maps");

static __always_inline void dns_proxy_addr(__u8 family, __u8 *out)
{
	if (family == 4) {
		__u8 a[16] = { SLUICE_DNS_PROXY_V4_BYTES };
		__builtin_memcpy(out, a, 16);
	} else {
		__u8 a[16] = { SLUICE_DNS_PROXY_V6_BYTES };
		__builtin_memcpy(out, a, 16);
	}
}

static __always_inline int dns_is_query(const struct tuple *t)
{
	return (t->protocol == IPPROTO_UDP || t->protocol == IPPROTO_TCP) && t->l4_off && t->dport_be == bpf_htons(SLUICE_DNS_PORT);
}

static __always_inline int dns_from_proxy(const struct tuple *t)
{
	__u32 proxy[4], addr[4];

	/* Word by word: BPF has no memcmp, and clang may emit a call for it. */
	dns_proxy_addr(t->family, (__u8 *)proxy);
	__builtin_memcpy(addr, t->saddr, 16);
	return ((addr[0] ^ proxy[0]) | (addr[1] ^ proxy[1]) | (addr[2] ^ proxy[2]) | (addr[3] ^ proxy[3])) == 0;
}

/*
 * Rewrites the source (dst = 0) or destination (dst = 1) address and port of
 * a UDP or TCP packet, fixing the L3 and L4 checksums incrementally (so that
 * checksum offload, CHECKSUM_PARTIAL on veths, keeps working).
 */
static __always_inline int rewrite_endpoint(struct __sk_buff *skb, const struct tuple *t, int dst, const __u8 *to_addr, __u16 to_port_be)
{
	const __u8 *from_addr = dst ? t->daddr : t->saddr;
	__u16 from_port_be = dst ? t->dport_be : t->sport_be;
	__u32 csum_off = t->l4_off + (t->protocol == IPPROTO_TCP ? 16 : 6);
	__u64 mangled = t->protocol == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	__u32 port_off = t->l4_off + (dst ? 2 : 0);

	if (t->family == 4) {
		__u32 from, to;

		__builtin_memcpy(&from, from_addr, 4);
		__builtin_memcpy(&to, to_addr, 4);
		if (bpf_l4_csum_replace(skb, csum_off, from, to, BPF_F_PSEUDO_HDR | mangled | sizeof(to)) < 0)
			return -1;
		if (bpf_l3_csum_replace(skb, IPV4_CSUM_OFF, from, to, sizeof(to)) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, dst ? IPV4_DADDR_OFF : IPV4_SADDR_OFF, &to, sizeof(to), 0) < 0)
			return -1;
	} else {
		__u32 from[4], to[4];
		__s64 diff;

		__builtin_memcpy(from, from_addr, 16);
		__builtin_memcpy(to, to_addr, 16);
		diff = bpf_csum_diff(from, sizeof(from), to, sizeof(to), 0);
		if (diff < 0)
			return -1;
		if (bpf_l4_csum_replace(skb, csum_off, 0, diff, BPF_F_PSEUDO_HDR | mangled) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, dst ? IPV6_DADDR_OFF : IPV6_SADDR_OFF, to, sizeof(to), 0) < 0)
			return -1;
	}
	if (bpf_l4_csum_replace(skb, csum_off, from_port_be, to_port_be, mangled | sizeof(to_port_be)) < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, port_off, &to_port_be, sizeof(to_port_be), 0) < 0)
		return -1;
	return 0;
}

/* Pod egress: remember where the query went, send it to the proxy. */
static __always_inline __u8 dns_redirect(struct __sk_buff *skb, const struct tuple *t)
{
	struct sluice_dns_nat_key key = { .family = t->family, .protocol = t->protocol, .port_be = t->sport_be };
	struct sluice_dns_nat_value val = { .dport_be = t->dport_be, .ifindex = skb->ifindex };
	__u8 proxy[16];

	__builtin_memcpy(key.addr, t->saddr, 16);
	__builtin_memcpy(val.daddr, t->daddr, 16);
	if (bpf_map_update_elem(&sluice_dns_nat_v1, &key, &val, BPF_ANY) < 0)
		return SLUICE_DROP_MAP_FULL;
	dns_proxy_addr(t->family, proxy);
	if (rewrite_endpoint(skb, t, 1, proxy, bpf_htons(SLUICE_DNS_PROXY_PORT)) < 0)
		return SLUICE_DROP_INTERNAL;
	return SLUICE_REASON_FORWARDED;
}

/*
 * Pod ingress from the proxy's address: a reply goes back out as coming from
 * the server the pod asked. Anything else from that address (ICMP port
 * unreachable while the agent is down, a reply to a flow never intercepted)
 * is dropped: the client retries.
 */
static __always_inline __u8 dns_reverse(struct __sk_buff *skb, const struct tuple *t)
{
	struct sluice_dns_nat_key key = { .family = t->family, .protocol = t->protocol, .port_be = t->dport_be };
	struct sluice_dns_nat_value *v;

	if (t->protocol != IPPROTO_UDP && t->protocol != IPPROTO_TCP)
		return SLUICE_DROP_DNS_PROXY_DOWN;
	if (!t->l4_off || t->sport_be != bpf_htons(SLUICE_DNS_PROXY_PORT))
		return SLUICE_DROP_DNS_NO_NAT;
	__builtin_memcpy(key.addr, t->daddr, 16);
	v = bpf_map_lookup_elem(&sluice_dns_nat_v1, &key);
	if (!v)
		return SLUICE_DROP_DNS_NO_NAT;
	if (rewrite_endpoint(skb, t, 0, v->daddr, v->dport_be) < 0)
		return SLUICE_DROP_INTERNAL;
	return SLUICE_REASON_FORWARDED;
}
#endif
