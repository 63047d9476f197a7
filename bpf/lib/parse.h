/* Packet parsing into the tuple every later stage works on. */
#ifndef SLUICE_LIB_PARSE_H
#define SLUICE_LIB_PARSE_H
#include "common.h"

#define IPPROTO_ICMP     1
#define IPPROTO_HOPOPTS  0
#define IPPROTO_ROUTING  43
#define IPPROTO_FRAGMENT 44
#define IPPROTO_ICMPV6   58
#define IPPROTO_DSTOPTS  60

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

/* IPv6 extension headers walked before the L4 header; a packet with more
 * keeps the last extension header as its protocol (only "any protocol"
 * rules match it). */
#define IPV6_MAX_EXT_HEADERS 4

enum frag_kind {
	FRAG_NONE = 0,
	FRAG_FIRST = 1,  /* offset 0, more fragments follow: has the L4 header */
	FRAG_LATER = 2,  /* offset > 0: no L4 header */
};

struct tuple {
	__u8 family;     /* 4, 6; 0 for ARP */
	__u8 protocol;
	__u8 tcp_flags;
	__u8 arp;        /* an ARP packet: saddr holds its sender IPv4 address */
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport_be;
	__u16 dport_be;
	__u16 l4_off;    /* offset of the L4 header; 0 when there is none (non-first fragment) */
	__u8 hop_limit;  /* IPv4 TTL or IPv6 hop limit */
	__u8 icmp_type;  /* ICMP / ICMPv6 type */
	__u8 frag;       /* enum frag_kind */
	__u8 pad[3];
	__u32 frag_id;   /* as on the wire */
};

enum parse_result {
	PARSE_OK = 0,
	PARSE_NOT_IP = 1,       /* neither IPv4, IPv6 nor ARP */
	PARSE_INVALID = 2,      /* truncated headers */
	PARSE_BAD_FRAGMENT = 3, /* a fragment that splits or overlaps the L4 header */
};

/* The least L4 header a first fragment must carry whole, and that a later
 * fragment must not overlap (RFC 1858, RFC 8200 §4.5): the ports, and for
 * TCP the flags. */
static __always_inline __u32 l4_min_len(__u8 protocol)
{
	switch (protocol) {
	case IPPROTO_TCP:
		return 20;
	case IPPROTO_UDP:
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		return 8;
	case IPPROTO_SCTP:
		return 12;
	default:
		return 0;
	}
}

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
		t->icmp_type = hdr[0];
		/* Echo request: (id, 0); echo reply: (0, id), so a reply is the
		 * exact reverse of its request's tuple. Other types: (0, 0). */
		if ((t->protocol == IPPROTO_ICMP && hdr[0] == 8) || (t->protocol == IPPROTO_ICMPV6 && hdr[0] == 128))
			t->sport_be = id_be;
		else if ((t->protocol == IPPROTO_ICMP && hdr[0] == 0) || (t->protocol == IPPROTO_ICMPV6 && hdr[0] == 129))
			t->dport_be = id_be;
	}
	return PARSE_OK;
}

static __always_inline int parse_ipv4(struct __sk_buff *skb, struct tuple *t)
{
	struct iphdr ip;
	__u16 frag_off, tot_len;
	__u32 hlen;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0 || ip.ihl < 5)
		return PARSE_INVALID;
	t->family = 4;
	t->protocol = ip.protocol;
	t->hop_limit = ip.ttl;
	__builtin_memcpy(t->saddr, &ip.saddr, 4);
	__builtin_memcpy(t->daddr, &ip.daddr, 4);
	hlen = ip.ihl * 4;
	tot_len = bpf_ntohs(ip.tot_len);
	frag_off = bpf_ntohs(ip.frag_off);
	if (frag_off & 0x1fff) {
		/* A later fragment: no L4 header. One that starts inside the
		 * header's minimum overlaps it (a rewrite of the ports or flags the
		 * first fragment was judged by). */
		t->frag = FRAG_LATER;
		t->frag_id = ip.id;
		if ((__u32)(frag_off & 0x1fff) * 8 < l4_min_len(t->protocol))
			return PARSE_BAD_FRAGMENT;
		return PARSE_OK;
	}
	t->l4_off = ETH_HLEN + hlen;
	if (frag_off & 0x2000) {
		/* A first fragment must carry the whole minimal L4 header. */
		t->frag = FRAG_FIRST;
		t->frag_id = ip.id;
		if (tot_len < hlen + l4_min_len(t->protocol))
			return PARSE_BAD_FRAGMENT;
	}
	return parse_l4(skb, t->l4_off, t);
}

static __always_inline int parse_ipv6(struct __sk_buff *skb, struct tuple *t)
{
	struct ipv6hdr ip6;
	__u32 off = ETH_HLEN + sizeof(ip6);
	__u32 end;
	__u8 nexthdr;
	int i;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip6, sizeof(ip6)) < 0)
		return PARSE_INVALID;
	t->family = 6;
	t->hop_limit = ip6.hop_limit;
	__builtin_memcpy(t->saddr, &ip6.saddr, 16);
	__builtin_memcpy(t->daddr, &ip6.daddr, 16);
	end = off + bpf_ntohs(ip6.payload_len);
	nexthdr = ip6.nexthdr;
#pragma unroll
	for (i = 0; i < IPV6_MAX_EXT_HEADERS; i++) {
		if (nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING || nexthdr == IPPROTO_DSTOPTS) {
			__u8 ext[2];

			if (bpf_skb_load_bytes(skb, off, ext, sizeof(ext)) < 0)
				return PARSE_INVALID;
			nexthdr = ext[0];
			off += (ext[1] + 1) * 8;
			continue;
		}
		if (nexthdr == IPPROTO_FRAGMENT) {
			/* next header, reserved, offset (13 bits) | M, id */
			__u8 f[8];
			__u16 offlg;

			if (bpf_skb_load_bytes(skb, off, f, sizeof(f)) < 0)
				return PARSE_INVALID;
			nexthdr = f[0];
			off += 8;
			offlg = ((__u16)f[2] << 8) | f[3];
			if (offlg & 0xfff8) {
				t->frag = FRAG_LATER;
				__builtin_memcpy(&t->frag_id, f + 4, 4);
				t->protocol = nexthdr;
				if ((__u32)(offlg & 0xfff8) < l4_min_len(nexthdr))
					return PARSE_BAD_FRAGMENT;
				return PARSE_OK;
			}
			/* Offset 0 with M clear is an atomic fragment: a whole datagram. */
			if (offlg & 1) {
				t->frag = FRAG_FIRST;
				__builtin_memcpy(&t->frag_id, f + 4, 4);
			}
			continue;
		}
		break;
	}
	t->protocol = nexthdr;
	t->l4_off = off;
	if (t->frag == FRAG_FIRST && end < off + l4_min_len(nexthdr))
		return PARSE_BAD_FRAGMENT;
	return parse_l4(skb, off, t);
}

static __always_inline int parse_packet(struct __sk_buff *skb, struct tuple *t)
{
	__u16 proto_be = skb->protocol;

	if (proto_be == bpf_htons(ETH_P_ARP)) {
		/* Ethernet/IPv4 ARP: the sender's protocol address at byte 14. */
		t->arp = 1;
		if (bpf_skb_load_bytes(skb, ETH_HLEN + 14, t->saddr, 4) < 0)
			return PARSE_INVALID;
		return PARSE_OK;
	}
	if (proto_be == bpf_htons(ETH_P_IP))
		return parse_ipv4(skb, t);
	if (proto_be == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(skb, t);
	return PARSE_NOT_IP;
}
#endif
