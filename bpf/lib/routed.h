/* Pods of other nodes (--datapath-redirect): a TCP connection between one of
 * this node's pods and a pod of another node skips this node's stack both
 * ways. A packet leaving the pod is routed here (bpf_fib_lookup) and sent
 * out of the node's link with bpf_redirect or, when the next hop's MAC is not
 * known yet, bpf_redirect_neigh; one arriving on the node's link for the pod
 * is delivered into it with bpf_redirect_peer (sluice_from_node). Only a TCP
 * SYN opens such a flow, and only flows whose conntrack entry carries
 * SLUICE_CT_F_ROUTED are sent this way later: the node's netfilter and
 * conntrack never see half of a flow (a reply the node translated, say).
 * See docs/datapath.md. */
#ifndef SLUICE_LIB_ROUTED_H
#define SLUICE_LIB_ROUTED_H
#include "../shared/routed.h"
#include "common.h"
#include "parse.h"
#include "conntrack.h"
#include "endpoint.h"
#include "ipcache.h"
#include "local.h"

#define SLUICE_AF_INET 2
#define SLUICE_AF_INET6 10

/* routed_send(): not sent; the packet takes the normal path. */
#define ROUTED_FALLBACK (-1)
/* routed_send(): the frame could not be made writable; it is dropped. */
#define ROUTED_BROKEN (-2)

/* Whether a packet leaving a pod, allowed by its egress and for no local
 * pod, may open a routed flow: a whole TCP SYN with a hop limit left, to a
 * pod the ipcache knows (not the node's own addresses). */
static __always_inline int routed_candidate(const struct tuple *t)
{
	if (!ct_opens(t) || t->frag != FRAG_NONE || t->hop_limit <= 1 || !redirect_enabled())
		return 0;
	return ipcache_identity(t->family, t->daddr) > SLUICE_ID_HOST;
}

/* How long a next hop found by the FIB is used without asking it again:
 * route and neighbour changes reach flows already routed within this. */
#define NH_VALID_NS (100ULL * 1000 * 1000)

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct sluice_nh_key);
	__type(value, struct sluice_nh);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_nh_v1 SEC(".maps");

static __always_inline void nh_key(struct sluice_nh_key *k, const struct tuple *t)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->family = t->family;
	__builtin_memcpy(k->saddr, t->saddr, 16);
	__builtin_memcpy(k->daddr, t->daddr, 16);
}

/*
 * The packet routed by the node's FIB as its forwarding would (the pod's
 * host veth as the input interface) and sent out of the link the route
 * names, with the next hop's MACs and the hop limit decremented. Only out of
 * the node: a route to a pod's veth (one the local index does not know yet),
 * a route that needs the stack (local, blackhole, prohibited, fragmentation
 * needed) is ROUTED_FALLBACK. A next hop found is kept for the pod pair
 * (sluice_nh_v1) and used for NH_VALID_NS without a FIB lookup; one whose
 * neighbour is not resolved yet is not kept.
 */
static __always_inline int routed_send(struct __sk_buff *skb, const struct tuple *t, __u64 now)
{
	struct bpf_fib_lookup fib = {};
	struct bpf_redir_neigh nh = {};
	struct sluice_nh_key key;
	struct sluice_nh found = {};
	struct sluice_nh *hop;
	long rc;

	/* A next hop the FIB gave this pod pair less than NH_VALID_NS ago. */
	nh_key(&key, t);
	hop = bpf_map_lookup_elem(&sluice_nh_v1, &key);
	if (!hop || now - hop->found_ns >= NH_VALID_NS) {
		fib.ifindex = skb->ifindex;
		fib.l4_protocol = t->protocol;
		fib.sport = t->sport_be;
		fib.dport = t->dport_be;
		if (t->family == 4) {
			fib.family = SLUICE_AF_INET;
			__builtin_memcpy(&fib.ipv4_src, t->saddr, 4);
			__builtin_memcpy(&fib.ipv4_dst, t->daddr, 4);
		} else {
			fib.family = SLUICE_AF_INET6;
			__builtin_memcpy(fib.ipv6_src, t->saddr, 16);
			__builtin_memcpy(fib.ipv6_dst, t->daddr, 16);
		}
		rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
		if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
			return ROUTED_FALLBACK;
		if (fib.ifindex == skb->ifindex || endpoint_lookup(fib.ifindex))
			return ROUTED_FALLBACK;
		if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
			/* The next hop (the gateway, or the destination itself) is
			 * resolved by the neighbour subsystem, which also fills in
			 * the MACs; not kept. */
			if (forward_rewrite(skb, t, NULL, NULL) < 0)
				return ROUTED_BROKEN;
			nh.nh_family = fib.family;
			if (t->family == 4)
				nh.ipv4_nh = fib.ipv4_dst;
			else
				__builtin_memcpy(nh.ipv6_nh, fib.ipv6_dst, 16);
			return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);
		}
		found.found_ns = now;
		found.ifindex = fib.ifindex;
		__builtin_memcpy(found.dmac, fib.dmac, 6);
		__builtin_memcpy(found.smac, fib.smac, 6);
		bpf_map_update_elem(&sluice_nh_v1, &key, &found, BPF_ANY);
		hop = &found;
	}
	if (forward_rewrite(skb, t, hop->dmac, hop->smac) < 0)
		return ROUTED_BROKEN;
	return bpf_redirect(hop->ifindex, 0);
}
#endif
