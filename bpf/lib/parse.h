/* Packet parsing into the tuple every later stage works on. */
#ifndef SLUICE_LIB_PARSE_H
#define SLUICE_LIB_PARSE_H
#include "common.h"

#define IPPROTO_ICMP    1
#define IPPROTO_HOPOPTS 0
#define IPPROTO_ICMPV6  58

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

struct tuple {
	__u8 family;
	__u8 protocol;
	__u8 tcp_flags;
	__u8 always_pass; /* ARP and neighbour discovery: L2 plumbing, never policy */
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport_be;
	__u16 dport_be;
	__u16 l4_off;   /* offset of the L4 header; 0 for a non-first fragment */
};

enum parse_result {
	PARSE_OK = 0,
	PARSE_NOT_IP = 1,   /* neither IPv4, IPv6 nor ARP */
	PARSE_INVALID = 2,  /* truncated headers */
};

/* Ports (or ICMP echo identifiers) of the L4 header at off. */
static __always_inline int parse_l4(struct __sk_buff *skb, __u32 off, struct tuple *t)
{
	if (t->protocol == IPPROTO_TCP) {
		__u8 hdr[14];

		if (bpf_skb_load_bytes(skb, off, hdr, sizeof(hdr)) < 0)
			return PARSE_INVALID;
		__builtin_memcpy(&t->sport_be, hdr, 2);
		__builtin_memcpy(&t->dport_be, hdr + 2, 2);
		t->tcp_flags = hdr[13];
		return PARSE_OK;
	}
	if (t->protocol == IPPROTO_UDP || t->protocol == IPPROTO_SCTP) {
		__u16 ports[2];

		if (bpf_skb_load_bytes(skb, off, ports, sizeof(ports)) < 0)
			return PARSE_INVALID;
		t->sport_be = ports[0];
		t->dport_be = ports[1];
		return PARSE_OK;
	}
	if (t->protocol == IPPROTO_ICMP || t->protocol == IPPROTO_ICMPV6) {
		__u8 hdr[6];
		__u16 id_be;

		if (bpf_skb_load_bytes(skb, off, hdr, sizeof(hdr)) < 0)
			return PARSE_INVALID;
		__builtin_memcpy(&id_be, hdr + 4, 2);
		/* Echo request: (id, 0); echo reply: (0, id), so a reply is the
		 * exact reverse of its request's tuple. Other types: (0, 0). */
		if ((t->protocol == IPPROTO_ICMP && hdr[0] == 8) || (t->protocol == IPPROTO_ICMPV6 && hdr[0] == 128))
			t->sport_be = id_be;
		else if ((t->protocol == IPPROTO_ICMP && hdr[0] == 0) || (t->protocol == IPPROTO_ICMPV6 && hdr[0] == 129))
			t->dport_be = id_be;
		/* Router/neighbour solicitation and advertisement, redirect. */
		if (t->protocol == IPPROTO_ICMPV6 && hdr[0] >= 133 && hdr[0] <= 137)
			t->always_pass = 1;
		/* MLD listener report (v1/v2) and done. */
		if (t->protocol == IPPROTO_ICMPV6 && (hdr[0] == 131 || hdr[0] == 132 || hdr[0] == 143))
			t->always_pass = 1;
	}
	return PARSE_OK;
}

static __always_inline int parse_packet(struct __sk_buff *skb, struct tuple *t)
{
	__u16 proto_be = skb->protocol;

	if (proto_be == bpf_htons(ETH_P_ARP)) {
		t->always_pass = 1;
		return PARSE_OK;
	}
	if (proto_be == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0 || ip.ihl < 5)
			return PARSE_INVALID;
		t->family = 4;
		t->protocol = ip.protocol;
		__builtin_memcpy(t->saddr, &ip.saddr, 4);
		__builtin_memcpy(t->daddr, &ip.daddr, 4);
		/* A non-first fragment has no L4 header: ports stay 0, so only
		 * rules without ports can allow it. */
		if (ip.frag_off & bpf_htons(0x1fff))
			return PARSE_OK;
		t->l4_off = ETH_HLEN + ip.ihl * 4;
		return parse_l4(skb, t->l4_off, t);
	}
	if (proto_be == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		__u32 off = ETH_HLEN + sizeof(ip6);

		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip6, sizeof(ip6)) < 0)
			return PARSE_INVALID;
		t->family = 6;
		t->protocol = ip6.nexthdr;
		__builtin_memcpy(t->saddr, &ip6.saddr, 16);
		__builtin_memcpy(t->daddr, &ip6.daddr, 16);
		/* One hop-by-hop header (MLD carries one); other extension
		 * headers leave the ports at 0. */
		if (t->protocol == IPPROTO_HOPOPTS) {
			__u8 ext[2];

			if (bpf_skb_load_bytes(skb, off, ext, sizeof(ext)) < 0)
				return PARSE_INVALID;
			t->protocol = ext[0];
			off += (ext[1] + 1) * 8;
		}
		t->l4_off = off;
		return parse_l4(skb, off, t);
	}
	return PARSE_NOT_IP;
}
#endif
