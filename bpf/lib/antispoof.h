/* Anti-spoofing, and the link plumbing (ARP, IPv6 neighbour discovery, MLD)
 * that passes without policy. The source check runs on every packet leaving
 * a pod before anything else looks at it (DNS interception, fragments,
 * conntrack, policy): a pod can send only as itself, never as another pod,
 * the node or the DNS proxy. */
#ifndef SLUICE_LIB_ANTISPOOF_H
#define SLUICE_LIB_ANTISPOOF_H
#include "../shared/endpoint.h"
#include "../shared/metrics.h"
#include "parse.h"

#define ICMPV6_MLD_QUERY   130
#define ICMPV6_MLD_REPORT  131
#define ICMPV6_MLD_DONE    132
#define ICMPV6_ND_RS       133
#define ICMPV6_ND_NS       135
#define ICMPV6_ND_REDIRECT 137
#define ICMPV6_MLD2_REPORT 143

static __always_inline int addr_eq(const __u8 *a, const __u8 *b, int len)
{
	__u32 x[4] = {}, y[4] = {};

	/* Word by word: BPF has no memcmp, and clang may emit a call for it. */
	__builtin_memcpy(x, a, 4);
	__builtin_memcpy(y, b, 4);
	if (len == 4)
		return x[0] == y[0];
	__builtin_memcpy(x, a, 16);
	__builtin_memcpy(y, b, 16);
	return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3])) == 0;
}

static __always_inline int addr_is_zero(const __u8 *a, int len)
{
	__u8 zero[16] = {};

	return addr_eq(a, zero, len);
}

static __always_inline int ip6_is_link_local(const __u8 *a)
{
	return a[0] == 0xfe && (a[1] & 0xc0) == 0x80; /* fe80::/10 */
}

static __always_inline int ip6_is_multicast(const __u8 *a)
{
	return a[0] == 0xff;
}

static __always_inline int ip6_is_link_multicast(const __u8 *a)
{
	return a[0] == 0xff && (a[1] & 0x0f) == 0x02; /* ffX2::/16: link scope */
}

static __always_inline int icmp6_is_nd(const struct tuple *t)
{
	return t->icmp_type >= ICMPV6_ND_RS && t->icmp_type <= ICMPV6_ND_REDIRECT;
}

static __always_inline int icmp6_is_mld_report(const struct tuple *t)
{
	return t->icmp_type == ICMPV6_MLD_REPORT || t->icmp_type == ICMPV6_MLD_DONE || t->icmp_type == ICMPV6_MLD2_REPORT;
}

/*
 * Whether a packet from the pod carries a source the pod owns:
 *   - IPv4 (and an ARP sender address): the pod's IPv4 address; ARP may also
 *     say 0.0.0.0 (an address probe);
 *   - IPv6: the pod's IPv6 address; or its link-local address (any fe80::/10,
 *     the link is the pod's own veth) towards link-local or link-scope
 *     multicast destinations only, which the node never forwards; or the
 *     unspecified address for duplicate address detection and MLD reports
 *     to link-scope multicast.
 */
static __always_inline int source_is_own(const struct sluice_endpoint *ep, const struct tuple *t)
{
	if (t->arp)
		return (!addr_is_zero(ep->addr4, 4) && addr_eq(t->saddr, ep->addr4, 4)) || addr_is_zero(t->saddr, 4);
	if (t->family == 4)
		return !addr_is_zero(ep->addr4, 4) && addr_eq(t->saddr, ep->addr4, 4);
	if (t->family != 6)
		return 0;
	if (!addr_is_zero(ep->addr6, 16) && addr_eq(t->saddr, ep->addr6, 16))
		return 1;
	if (ip6_is_link_local(t->saddr))
		return ip6_is_link_local(t->daddr) || ip6_is_link_multicast(t->daddr);
	if (addr_is_zero(t->saddr, 16))
		return t->protocol == IPPROTO_ICMPV6 && ip6_is_link_multicast(t->daddr) &&
		       ((t->icmp_type == ICMPV6_ND_NS && t->hop_limit == 255) || (icmp6_is_mld_report(t) && t->hop_limit == 1));
	return 0;
}

/*
 * L2 plumbing that passes without policy: ARP, IPv6 neighbour discovery
 * (RS, RA, NS, NA, redirect) with hop limit 255 (RFC 4861: a packet that
 * kept it was never forwarded by a router), and MLD reports with hop limit 1
 * to a multicast group (the node forwards no multicast). From the pod, ND
 * must also stay on the link: a link-local or link-scope multicast
 * destination, so ND-shaped packets cannot carry data past egress policy.
 * Anything else with these ICMPv6 types is judged by policy like any packet.
 */
static __always_inline int is_link_plumbing(const struct tuple *t, __u8 direction)
{
	if (t->arp)
		return 1;
	if (t->family != 6 || t->protocol != IPPROTO_ICMPV6 || t->frag != FRAG_NONE)
		return 0;
	if (icmp6_is_nd(t))
		return t->hop_limit == 255 &&
		       (direction == SLUICE_DIR_TO_POD || ip6_is_link_local(t->daddr) || ip6_is_link_multicast(t->daddr));
	if (icmp6_is_mld_report(t) || t->icmp_type == ICMPV6_MLD_QUERY)
		return t->hop_limit == 1 && ip6_is_multicast(t->daddr);
	return 0;
}
#endif
