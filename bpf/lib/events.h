/* Flow events to user space. */
#ifndef SLUICE_LIB_EVENTS_H
#define SLUICE_LIB_EVENTS_H
#include "../shared/flow_event.h"
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_events_v1 SEC(".maps");

/* Fills addresses and ports from the packet; fields it cannot read stay 0.
 * Reading is best effort: an event about a malformed packet is still sent. */
static __always_inline void flow_fill(struct __sk_buff *skb, struct sluice_flow_event *ev)
{
	__u16 proto_be = skb->protocol;
	__u32 l4_off = 0;

	if (proto_be == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0)
			return;
		ev->family = 4;
		ev->protocol = ip.protocol;
		__builtin_memcpy(ev->saddr, &ip.saddr, 4);
		__builtin_memcpy(ev->daddr, &ip.daddr, 4);
		/* ports only in the first fragment */
		if (ip.frag_off & bpf_htons(0x1fff))
			return;
		l4_off = ETH_HLEN + ip.ihl * 4;
	} else if (proto_be == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip6, sizeof(ip6)) < 0)
			return;
		ev->family = 6;
		ev->protocol = ip6.nexthdr;
		__builtin_memcpy(ev->saddr, &ip6.saddr, 16);
		__builtin_memcpy(ev->daddr, &ip6.daddr, 16);
		l4_off = ETH_HLEN + sizeof(ip6);
	} else {
		return;
	}
	if (ev->protocol == IPPROTO_TCP || ev->protocol == IPPROTO_UDP || ev->protocol == IPPROTO_SCTP) {
		__u16 ports[2];

		if (bpf_skb_load_bytes(skb, l4_off, ports, sizeof(ports)) == 0) {
			ev->sport_be = ports[0];
			ev->dport_be = ports[1];
		}
	}
}

static __always_inline void send_flow_event(struct __sk_buff *skb, __u8 reason, __u8 direction)
{
	struct sluice_flow_event *ev;

	ev = bpf_ringbuf_reserve(&sluice_events_v1, sizeof(*ev), 0);
	if (!ev)
		return; /* ring full: the metrics map still counts the drop */
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->timestamp_ns = bpf_ktime_get_ns();
	ev->ifindex = skb->ifindex;
	ev->reason = reason;
	ev->direction = direction;
	flow_fill(skb, ev);
	bpf_ringbuf_submit(ev, 0);
}
#endif
