/* Transparent DNS interception: the pod's queries to anywhere:53 go to the
 * agent's proxy on the node, its replies come back from where the pod sent
 * them. See bpf/shared/dns.h. */
#ifndef SLUICE_LIB_DNS_H
#define SLUICE_LIB_DNS_H
#include "../shared/dns.h"
#include "../shared/drop_reasons.h"
#include "parse.h"
#include "antispoof.h"

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

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sluice_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_config_v2 SEC(".maps");

/* Keyed by host ifindex. LRU: an evicted pod starts again with a full bucket. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, struct sluice_dns_budget);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_dns_budget_v1 SEC(".maps");

/*
 * Takes one query's worth of the pod's DNS budget; 0 if it is spent. Racing
 * CPUs may both spend the same credit (a read-modify-write without a lock):
 * the budget can overshoot by a query per CPU, never starve a pod.
 */
static __always_inline int dns_budget_take(__u32 ifindex)
{
	__u32 zero = 0;
	struct sluice_config *cfg = bpf_map_lookup_elem(&sluice_config_v2, &zero);
	struct sluice_dns_budget *b;
	__u64 now, credit;

	if (!cfg || !cfg->dns_cost_ns)
		return 1;
	now = bpf_ktime_get_ns();
	b = bpf_map_lookup_elem(&sluice_dns_budget_v1, &ifindex);
	if (!b) {
		struct sluice_dns_budget fresh = { .stamp_ns = now };

		fresh.credit_ns = cfg->dns_burst_ns > cfg->dns_cost_ns ? cfg->dns_burst_ns - cfg->dns_cost_ns : 0;
		bpf_map_update_elem(&sluice_dns_budget_v1, &ifindex, &fresh, BPF_ANY);
		return 1;
	}
	credit = b->credit_ns;
	if (now - b->stamp_ns >= cfg->dns_burst_ns)
		credit = cfg->dns_burst_ns;
	else if (now > b->stamp_ns)
		credit += now - b->stamp_ns;
	if (credit > cfg->dns_burst_ns)
		credit = cfg->dns_burst_ns;
	b->stamp_ns = now;
	if (credit < cfg->dns_cost_ns) {
		b->credit_ns = credit;
		__sync_fetch_and_add(&b->dropped, 1);
		return 0;
	}
	b->credit_ns = credit - cfg->dns_cost_ns;
	return 1;
}

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
	return (t->protocol == IPPROTO_UDP || t->protocol == IPPROTO_TCP) && t->frag != FRAG_LATER && t->dport_be == bpf_htons(SLUICE_DNS_PORT);
}

static __always_inline int dns_from_proxy(const struct tuple *t)
{
	__u8 proxy[16];

	dns_proxy_addr(t->family, proxy);
	return (t->family == 4 || t->family == 6) && addr_eq(t->saddr, proxy, 16);
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

	/* Only whole datagrams are translated (the proxy answers big replies
	 * with TC, so a client retries over TCP; queries are small). */
	if (t->frag != FRAG_NONE)
		return SLUICE_DROP_BAD_FRAGMENT;
	/* A query (UDP) or a new connection (TCP SYN) spends the pod's budget;
	 * over it, dropped here, so a flood never reaches the proxy's queue. */
	if ((t->protocol == IPPROTO_UDP || (t->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN) && !dns_budget_take(skb->ifindex))
		return SLUICE_DROP_DNS_RATE_LIMITED;

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
 * Pod ingress from the proxy's address. A reply is recognised by address,
 * port, protocol and its translation entry, which must have been made on
 * this very veth: it goes back out as coming from the server the pod asked.
 * A TCP or UDP packet from the proxy's port without one is dropped
 * (dns-no-nat), as is an ICMP error from the proxy's address (the agent is
 * down: the client retries). Anything else is not the proxy's and goes on to
 * conntrack and policy (DNS_NOT_A_REPLY).
 */
#define DNS_NOT_A_REPLY 255
/* verdict(): the packet is for the proxy's transparent socket (dns_for_proxy_socket). */
#define DNS_TO_PROXY 254

static __always_inline __u8 dns_reverse(struct __sk_buff *skb, const struct tuple *t)
{
	struct sluice_dns_nat_key key = { .family = t->family, .protocol = t->protocol, .port_be = t->dport_be };
	struct sluice_dns_nat_value *v;

	if (t->protocol == IPPROTO_ICMP || t->protocol == IPPROTO_ICMPV6) {
		/* Destination unreachable (v4 3, v6 1): a query the proxy did not take. */
		if ((t->protocol == IPPROTO_ICMP && t->icmp_type == 3) || (t->protocol == IPPROTO_ICMPV6 && t->icmp_type == 1))
			return SLUICE_DROP_DNS_PROXY_DOWN;
		return DNS_NOT_A_REPLY;
	}
	if ((t->protocol != IPPROTO_UDP && t->protocol != IPPROTO_TCP) || !t->l4_off || t->sport_be != bpf_htons(SLUICE_DNS_PROXY_PORT))
		return DNS_NOT_A_REPLY;
	__builtin_memcpy(key.addr, t->daddr, 16);
	v = bpf_map_lookup_elem(&sluice_dns_nat_v1, &key);
	if (!v || v->ifindex != skb->ifindex)
		return SLUICE_DROP_DNS_NO_NAT;
	if (rewrite_endpoint(skb, t, 0, v->daddr, v->dport_be) < 0)
		return SLUICE_DROP_INTERNAL;
	return SLUICE_REASON_FORWARDED;
}

/*
 * An answer from a resolver to one of the proxy's transparent upstream
 * sockets (bpf/shared/dns.h): UDP from port 53, addressed to a pod's address
 * and port, for which the node has a socket bound there that carries the
 * proxy's mark. Only a live socket of the proxy's own makes a packet this, so
 * nothing else addressed to a pod is ever taken from it.
 */
static __always_inline int dns_for_proxy_socket(struct __sk_buff *skb, const struct tuple *t)
{
	struct bpf_sock_tuple st = {};
	struct bpf_sock *sk;
	__u32 mark;

	if (t->protocol != IPPROTO_UDP || t->frag != FRAG_NONE || !t->l4_off || t->sport_be != bpf_htons(SLUICE_DNS_PORT))
		return 0;
	if (t->family == 4) {
		__builtin_memcpy(&st.ipv4.saddr, t->saddr, 4);
		__builtin_memcpy(&st.ipv4.daddr, t->daddr, 4);
		st.ipv4.sport = t->sport_be;
		st.ipv4.dport = t->dport_be;
		sk = bpf_sk_lookup_udp(skb, &st, sizeof(st.ipv4), BPF_F_CURRENT_NETNS, 0);
	} else if (t->family == 6) {
		__builtin_memcpy(st.ipv6.saddr, t->saddr, 16);
		__builtin_memcpy(st.ipv6.daddr, t->daddr, 16);
		st.ipv6.sport = t->sport_be;
		st.ipv6.dport = t->dport_be;
		sk = bpf_sk_lookup_udp(skb, &st, sizeof(st.ipv6), BPF_F_CURRENT_NETNS, 0);
	} else {
		return 0;
	}
	if (!sk)
		return 0;
	mark = sk->mark;
	bpf_sk_release(sk);
	return (mark & SLUICE_MARK_MASK) == SLUICE_MARK_PROXY_SOCK;
}

static __always_inline void dns_mark_to_proxy(struct __sk_buff *skb)
{
	skb->mark = (skb->mark & ~SLUICE_MARK_MASK) | SLUICE_MARK_TO_PROXY;
}

/*
 * Pod ingress, routing already done (the answer was on its way to the pod):
 * back in through lo, marked, so the agent's rule routes it to the local
 * socket. lo's address is all zeros: the destination MAC must be too, or the
 * stack takes it for another host's frame and drops it.
 */
#define LOOPBACK_IFINDEX 1

static __always_inline int dns_to_proxy_via_lo(struct __sk_buff *skb)
{
	__u8 zero_mac[6] = {};

	dns_mark_to_proxy(skb);
	if (bpf_skb_store_bytes(skb, 0, zero_mac, sizeof(zero_mac), 0) < 0)
		return TC_ACT_SHOT;
	return bpf_redirect(LOOPBACK_IFINDEX, BPF_F_INGRESS);
}
#endif
