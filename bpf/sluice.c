// SPDX-License-Identifier: GPL-2.0
/* Sluice's per-pod datapath, attached with tc (clsact, direct-action) to the
 * host side of each pod's veth pair:
 *
 *   sluice_from_pod  host veth tc ingress: packets leaving the pod (pod egress)
 *   sluice_to_pod    host veth tc egress:  packets going to the pod (pod ingress)
 *
 * A packet between two of this node's pods (--datapath-redirect) is judged
 * for both in sluice_from_pod of the sender: its egress, then the receiver's
 * ingress as sluice_to_pod would (deliver_local), and delivered into the
 * receiver's netns with bpf_redirect_peer, past the node's stack and
 * sluice_to_pod; the flow then has one conntrack entry that both pods'
 * packets find. Anything that cannot be settled there takes the normal path.
 *
 * and one to the node's own links (not the pods'):
 *
 *   sluice_from_node tc ingress: marks resolvers' answers to the DNS proxy's
 *                    per-pod sockets; delivers routed flows' packets into
 *                    the node's pods (bpf/lib/routed.h); passes everything
 *                    else on untouched
 *
 * and, on the cgroup v2 root, Service translation for this node's pods'
 * sockets (bpf/lib/lb.h): sluice_lb_connect4/6, sluice_lb_sendmsg4/6 rewrite a
 * frontend to a backend, sluice_lb_recvmsg4/6 and sluice_lb_getpeername4/6
 * show the frontend again.
 *
 * Per packet, a fixed number of lookups whatever the number of rules:
 * endpoint (hash), fragment (LRU hash, later fragments only), local pod
 * (hash, pod egress), conntrack (LRU hash: 1 for a local flow, else at most
 * 2), peer identity (hash), peer ipBlock prefix (LPM), policy (at most 3,
 * LPM). Every drop has a reason, is counted and is sent as a flow event;
 * every failure drops (fail closed).
 *
 * Order matters: a packet from a pod must carry the pod's own source address
 * before anything else looks at it, so nothing later (DNS interception,
 * fragment and connection state, the node's always-allowed traffic) can be
 * reached with a borrowed identity.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "shared/drop_reasons.h"
#include "lib/common.h"
#include "lib/parse.h"
#include "lib/endpoint.h"
#include "lib/metrics.h"
#include "lib/events.h"
#include "lib/ipcache.h"
#include "lib/policy.h"
#include "lib/conntrack.h"
#include "lib/fqdn.h"
#include "lib/antispoof.h"
#include "lib/frag.h"
#include "lib/dns.h"
#include "lib/lb.h"
#include "lib/local.h"
#include "lib/routed.h"

char LICENSE[] SEC("license") = "GPL";

/*
 * The policy part of a verdict for `ep` in `direction` (after conntrack
 * missed): SLUICE_REASON_FORWARDED or the dropping reason. *audit is set to
 * the drop reason an audit-mode policy let pass.
 */
static __always_inline __u8 judge_policy(const struct sluice_endpoint *ep, __u8 direction, const struct tuple *t, __u8 *audit)
{
	__u32 isolated, enforced, peer_id, cidr_id;
	const __u8 *peer_addr;
	__u16 dport_be;
	__u8 reason;

	/* Audit mode: only audit-mode policies select the pod in this
	 * direction. Their entries are judged the same way, but what they
	 * deny passes, reported with its reason as an audit verdict. */
	enforced = ep->flags & (direction == SLUICE_DIR_FROM_POD ? SLUICE_EP_F_EGRESS_ISOLATED : SLUICE_EP_F_INGRESS_ISOLATED);
	isolated = enforced | (ep->flags & (direction == SLUICE_DIR_FROM_POD ? SLUICE_EP_F_EGRESS_AUDIT : SLUICE_EP_F_INGRESS_AUDIT));
	if (!isolated)
		return SLUICE_REASON_FORWARDED;
	/* The peer is the destination of pod egress, the source of pod ingress. */
	peer_addr = direction == SLUICE_DIR_FROM_POD ? t->daddr : t->saddr;
	peer_id = ipcache_identity(t->family, peer_addr);
	/* The node's own traffic to its pods (kubelet probes) always passes. */
	if (direction == SLUICE_DIR_TO_POD && peer_id == SLUICE_ID_HOST)
		return SLUICE_REASON_FORWARDED;
	cidr_id = cidr_identity(t->family, peer_addr);
	dport_be = t->dport_be;
	/* ICMP carries no port: only rules without ports match it. */
	if (t->protocol == IPPROTO_ICMP || t->protocol == IPPROTO_ICMPV6)
		dport_be = 0;
	if (policy_allows(ep->policy_id, peer_id, cidr_id, direction, t->protocol, dport_be))
		return SLUICE_REASON_FORWARDED;
	/* The union with FQDN allows: same trie, the rule as peer. */
	if (direction != SLUICE_DIR_FROM_POD || !(ep->flags & SLUICE_EP_F_FQDN))
		reason = SLUICE_DROP_POLICY_DENIED;
	else
		reason = fqdn_verdict(ep->policy_id, t, dport_be);
	if (reason != SLUICE_REASON_FORWARDED) {
		if (enforced)
			return reason;
		*audit = reason;
	}
	return SLUICE_REASON_FORWARDED;
}

/* What verdict() leaves for handle() about a packet it forwards. */
struct forward {
	/* Pod egress: the local pod the packet may be delivered to directly
	 * (deliver_local), or NULL: the normal path. */
	struct sluice_local_ep *local;
	__u64 now;   /* conntrack's clock, read once per packet */
	__u8 audit;  /* the drop reason an audit-mode policy let pass, or 0 */
	__u8 state;  /* FWD_* */
};

/* A flow conntrack knew (or nothing to record). */
#define FWD_KNOWN 0
/* A live local flow (its one SLUICE_CT_DIR_LOCAL entry): both pods' policies
 * allowed its first packet; deliver it directly. */
#define FWD_LOCAL 1
/* A new flow the sender's egress allows, towards a local pod: deliver_local
 * judges the receiver's ingress, then records the flow; if it hands the
 * packet back to the normal path, the sender's own entry is made then. */
#define FWD_NEW 2
/* A routed flow (SLUICE_CT_F_ROUTED) from or to a pod of another node: sent
 * out of the node's link (routed_send). */
#define FWD_ROUTED 3
/* A new flow the sender's egress allows that may be routed
 * (routed_candidate): its entry is made once routed_send has decided. */
#define FWD_NEW_ROUTED 4

/* The dropping verdict, or SLUICE_REASON_FORWARDED (details in *fw). */
static __always_inline __u8 verdict(struct __sk_buff *skb, __u8 direction, struct tuple *t, struct forward *fw)
{
	struct sluice_endpoint *ep;
	__u32 ct_flags = 0;
	__u8 reason;
	/* Parsed first so that every drop's flow event carries addresses. */
	int parsed = parse_packet(skb, t);

	ep = endpoint_lookup(skb->ifindex);
	if (!ep)
		return SLUICE_DROP_NO_ENDPOINT;
	if (ep->flags & SLUICE_EP_F_DROP_ALL)
		return SLUICE_DROP_ENDPOINT_DISABLED;
	if (ep->flags & SLUICE_EP_F_POLICY_FAILED)
		return SLUICE_DROP_POLICY_FAILED;

	switch (parsed) {
	case PARSE_OK:
		break;
	case PARSE_NOT_IP:
		return SLUICE_DROP_UNSUPPORTED_L3;
	case PARSE_BAD_FRAGMENT:
		return SLUICE_DROP_BAD_FRAGMENT;
	default:
		return SLUICE_DROP_INVALID_PACKET;
	}
	if (direction == SLUICE_DIR_FROM_POD && !source_is_own(ep, t))
		return SLUICE_DROP_SPOOFED_SOURCE;
	if (is_link_plumbing(t, direction))
		return SLUICE_REASON_FORWARDED;
	if (t->frag == FRAG_LATER && !frag_restore(skb->ifindex, direction, t))
		return SLUICE_DROP_FRAG_NOT_FOUND;

	/* DNS interception comes before conntrack and policy: an intercepting
	 * pod's DNS is always allowed, and always through the proxy. */
	if (direction == SLUICE_DIR_FROM_POD && (ep->flags & SLUICE_EP_F_DNS_INTERCEPT) && dns_is_query(t))
		return dns_redirect(skb, t);
	if (direction == SLUICE_DIR_TO_POD && dns_from_proxy(t)) {
		reason = dns_reverse(skb, t);
		if (reason != DNS_NOT_A_REPLY)
			return reason;
	}
	/* Not the pod's at all: a resolver's answer to the proxy's socket for
	 * this pod's address. No conntrack or policy of the pod's applies. */
	if (direction == SLUICE_DIR_TO_POD && dns_for_proxy_socket(skb, t))
		return DNS_TO_PROXY;

	fw->now = ct_now();
	/* Between two local pods: one lookup finds a flow delivered directly,
	 * whichever pod sends. */
	if (direction == SLUICE_DIR_FROM_POD) {
		fw->local = local_candidate(t);
		if (fw->local && ct_local_lookup(t, fw->now)) {
			fw->state = FWD_LOCAL;
			return SLUICE_REASON_FORWARDED;
		}
	}
	/* A flow this veth knows: a routed one leaves the node directly, any
	 * other stays on the node's stack. */
	if (ct_lookup(skb->ifindex, direction, t, fw->now, &ct_flags)) {
		fw->local = NULL;
		if (direction == SLUICE_DIR_FROM_POD && (ct_flags & SLUICE_CT_F_ROUTED) && redirect_enabled())
			fw->state = FWD_ROUTED;
		return SLUICE_REASON_FORWARDED;
	}
	/* A local flow's packet on the normal path (the switch turned off since
	 * its first packet, a fallback): both pods' policies allowed it. */
	if (!fw->local && ct_local_lookup(t, fw->now))
		return SLUICE_REASON_FORWARDED;

	reason = judge_policy(ep, direction, t, &fw->audit);
	if (reason != SLUICE_REASON_FORWARDED)
		return reason;
	/* Recorded even when not isolated in this direction: the replies come
	 * back through the other direction, which may be. One flow event per new
	 * flow (not per packet). */
	if (fw->local)
		fw->state = FWD_NEW;
	else if (direction == SLUICE_DIR_FROM_POD && routed_candidate(t))
		fw->state = FWD_NEW_ROUTED;
	else
		ct_create(skb->ifindex, direction, t, fw->now, 0);
	if (t->frag == FRAG_FIRST)
		frag_record(skb->ifindex, direction, t);
	if (fw->audit)
		send_flow_event(skb, t, fw->audit, direction, SLUICE_EVENT_F_AUDIT);
	else
		send_flow_event(skb, t, SLUICE_REASON_FORWARDED, direction, 0);
	return SLUICE_REASON_FORWARDED;
}

/* deliver_local(), deliver_routed(): not delivered directly; the packet takes the normal path. */
#define LOCAL_FALLBACK (-1)

/* The endpoint entry of local pod `dst` if a packet may be delivered into it
 * directly: one that owns the packet's destination (a stale index entry, its
 * veth's ifindex now another pod's, is never followed), neither disabled nor
 * policy-failed. Else NULL: its sluice_to_pod decides. */
static __always_inline struct sluice_endpoint *receiver(const struct tuple *t, const struct sluice_local_ep *dst)
{
	struct sluice_endpoint *ep = endpoint_lookup(dst->ifindex);

	if (!ep || (ep->flags & (SLUICE_EP_F_DROP_ALL | SLUICE_EP_F_POLICY_FAILED)))
		return NULL;
	if (t->family == 4 ? !addr_eq(t->daddr, ep->addr4, 4) : !addr_eq(t->daddr, ep->addr6, 16))
		return NULL;
	return ep;
}

/* A new flow into local pod `to` judged by its ingress exactly as
 * sluice_to_pod would (its flags and policy, audit, counters and flow events
 * under its veth and the to-pod direction): SLUICE_REASON_FORWARDED, or the
 * drop reason (counted and reported here). The caller records the flow. */
static __always_inline __u8 admit(struct __sk_buff *skb, const struct tuple *t, const struct sluice_endpoint *ep, __u32 to, __u8 *audit)
{
	__u8 reason = judge_policy(ep, SLUICE_DIR_TO_POD, t, audit);

	if (reason != SLUICE_REASON_FORWARDED) {
		metrics_account(reason, SLUICE_DIR_TO_POD, 0, skb->len);
		send_flow_event_at(to, t, reason, SLUICE_DIR_TO_POD, 0);
		return reason;
	}
	if (*audit)
		send_flow_event_at(to, t, *audit, SLUICE_DIR_TO_POD, SLUICE_EVENT_F_AUDIT);
	else
		send_flow_event_at(to, t, SLUICE_REASON_FORWARDED, SLUICE_DIR_TO_POD, 0);
	return SLUICE_REASON_FORWARDED;
}

/* Into local pod `dst`'s netns, counted under its ingress. */
static __always_inline int into_pod(struct __sk_buff *skb, const struct tuple *t, const struct sluice_local_ep *dst, __u8 audit)
{
	if (local_rewrite(skb, t, dst) < 0) {
		metrics_account(SLUICE_DROP_INTERNAL, SLUICE_DIR_TO_POD, 0, skb->len);
		send_flow_event_at(dst->ifindex, t, SLUICE_DROP_INTERNAL, SLUICE_DIR_TO_POD, 0);
		return TC_ACT_SHOT;
	}
	if (audit)
		metrics_account(audit, SLUICE_DIR_TO_POD, 1, skb->len);
	else
		metrics_account(SLUICE_REASON_FORWARDED, SLUICE_DIR_TO_POD, 0, skb->len);
	return bpf_redirect_peer(dst->ifindex, 0);
}

/*
 * A packet from a pod, allowed by its egress, for local pod fw->local. A new
 * flow (FWD_NEW) is judged here by the receiver's ingress (admit) and
 * recorded as a local flow; a live local flow (FWD_LOCAL) was judged so at
 * its first packet. The packet is then delivered into the receiver's netns.
 * Whatever cannot be settled here (no receiver(), a flow the receiver's veth
 * knows from the normal path) returns LOCAL_FALLBACK: sluice_to_pod then
 * judges it as ever.
 */
static __always_inline int deliver_local(struct __sk_buff *skb, const struct tuple *t, const struct forward *fw)
{
	const struct sluice_local_ep *dst = fw->local;
	struct sluice_endpoint *ep;
	__u8 audit = 0;

	if (dst->ifindex == skb->ifindex)
		return LOCAL_FALLBACK;
	ep = receiver(t, dst);
	if (!ep)
		return LOCAL_FALLBACK;
	if (fw->state == FWD_NEW) {
		if (ct_lookup(dst->ifindex, SLUICE_DIR_TO_POD, t, fw->now, NULL))
			return LOCAL_FALLBACK;
		if (admit(skb, t, ep, dst->ifindex, &audit) != SLUICE_REASON_FORWARDED)
			return TC_ACT_SHOT;
		ct_local_create(t, fw->now);
	}
	return into_pod(skb, t, dst, audit);
}

/*
 * sluice_from_node: a packet from the node's link for one of this node's
 * pods, delivered straight into it when it belongs to a routed flow
 * (SLUICE_CT_F_ROUTED at the pod's veth), or opens one — a TCP SYN the pod's
 * ingress admits, judged here as sluice_to_pod would. Everything else takes
 * the node's stack (LOCAL_FALLBACK), and so does a packet claiming to come
 * from the node itself or one of its pods, which the stack drops as a
 * martian (and which must never pass as the node's own traffic).
 */
static __always_inline int deliver_routed(struct __sk_buff *skb, const struct tuple *t)
{
	const struct sluice_local_ep *dst;
	struct sluice_endpoint *ep;
	__u32 ct_flags = 0;
	__u8 audit = 0;
	__u64 now;

	/* Routed flows are TCP: anything else takes the stack, no lookup made. */
	if (t->protocol != IPPROTO_TCP)
		return LOCAL_FALLBACK;
	dst = local_candidate(t);
	if (!dst)
		return LOCAL_FALLBACK;
	ep = receiver(t, dst);
	if (!ep)
		return LOCAL_FALLBACK;
	now = ct_now();
	if (ct_lookup_inbound(dst->ifindex, t, now, &ct_flags)) {
		if (!(ct_flags & SLUICE_CT_F_ROUTED))
			return LOCAL_FALLBACK;
	} else {
		if (!ct_opens(t))
			return LOCAL_FALLBACK;
		/* Checked when a flow opens: a routed flow's entry never has such a
		 * source (its peer is a pod of another node). */
		if (ipcache_identity(t->family, t->saddr) == SLUICE_ID_HOST || local_lookup(t->family, t->saddr))
			return LOCAL_FALLBACK;
		if (admit(skb, t, ep, dst->ifindex, &audit) != SLUICE_REASON_FORWARDED)
			return TC_ACT_SHOT;
		ct_create_inbound(dst->ifindex, t, now, SLUICE_CT_F_ROUTED);
	}
	return into_pod(skb, t, dst, audit);
}

static __always_inline int handle(struct __sk_buff *skb, __u8 direction)
{
	struct tuple t = {};
	struct forward fw = {};
	__u8 reason = verdict(skb, direction, &t, &fw);
	int ret;

	if (reason == DNS_TO_PROXY) {
		metrics_account(SLUICE_REASON_FORWARDED, direction, 0, skb->len);
		return dns_to_proxy_via_lo(skb);
	}
	/* An audited packet counts under its would-be drop reason only. */
	if (fw.audit)
		metrics_account(fw.audit, direction, 1, skb->len);
	else
		metrics_account(reason, direction, 0, skb->len);
	if (reason == SLUICE_REASON_FORWARDED) {
		if (fw.local) {
			ret = deliver_local(skb, &t, &fw);
			if (ret != LOCAL_FALLBACK)
				return ret;
			if (fw.state == FWD_NEW)
				ct_create(skb->ifindex, direction, &t, fw.now, 0);
		}
		if (fw.state == FWD_ROUTED || fw.state == FWD_NEW_ROUTED) {
			ret = routed_send(skb, &t, fw.now);
			if (fw.state == FWD_NEW_ROUTED)
				ct_create(skb->ifindex, direction, &t, fw.now, ret == ROUTED_FALLBACK ? 0 : SLUICE_CT_F_ROUTED);
			if (ret == ROUTED_BROKEN) {
				metrics_account(SLUICE_DROP_INTERNAL, direction, 0, skb->len);
				send_flow_event(skb, &t, SLUICE_DROP_INTERNAL, direction, 0);
				return TC_ACT_SHOT;
			}
			if (ret != ROUTED_FALLBACK)
				return ret;
		}
		/* A local resolver pod's answer to the proxy's socket: before
		 * routing, so the mark alone sends it to the socket. */
		if (direction == SLUICE_DIR_FROM_POD && dns_for_proxy_socket(skb, &t))
			dns_mark_to_proxy(skb);
		return TC_ACT_OK;
	}
	send_flow_event(skb, t.family ? &t : NULL, reason, direction, 0);
	return TC_ACT_SHOT;
}

SEC("tc")
int sluice_from_pod(struct __sk_buff *skb)
{
	return handle(skb, SLUICE_DIR_FROM_POD);
}

SEC("tc")
int sluice_to_pod(struct __sk_buff *skb)
{
	return handle(skb, SLUICE_DIR_TO_POD);
}

/*
 * The node's own links, before netfilter: a resolver's answer for one of the
 * DNS proxy's per-pod sockets is marked here, so routing delivers it to the
 * socket in one pass (conntrack and kube-proxy's translations intact; the
 * lo detour of sluice_to_pod would meet conntrack a second time). A packet
 * of a routed flow for one of the node's pods (--datapath-redirect) is
 * delivered into it (deliver_routed), after the pod's ingress policy admitted
 * the flow; that is the only decision made here. Everything else returns
 * TC_ACT_UNSPEC, which lets any filter after it run.
 */
SEC("tc")
int sluice_from_node(struct __sk_buff *skb)
{
	struct tuple t = {};
	int ret;

	if (parse_packet(skb, &t) != PARSE_OK)
		return TC_ACT_UNSPEC;
	if (dns_for_proxy_socket(skb, &t)) {
		dns_mark_to_proxy(skb);
		return TC_ACT_UNSPEC;
	}
	ret = deliver_routed(skb, &t);
	return ret == LOCAL_FALLBACK ? TC_ACT_UNSPEC : ret;
}

SEC("cgroup/connect4")
int sluice_lb_connect4(struct bpf_sock_addr *ctx)
{
	return lb_translate(ctx, 4, 0);
}

SEC("cgroup/connect6")
int sluice_lb_connect6(struct bpf_sock_addr *ctx)
{
	return lb_translate(ctx, 6, 0);
}

SEC("cgroup/sendmsg4")
int sluice_lb_sendmsg4(struct bpf_sock_addr *ctx)
{
	return lb_translate(ctx, 4, 1);
}

SEC("cgroup/sendmsg6")
int sluice_lb_sendmsg6(struct bpf_sock_addr *ctx)
{
	return lb_translate(ctx, 6, 1);
}

SEC("cgroup/recvmsg4")
int sluice_lb_recvmsg4(struct bpf_sock_addr *ctx)
{
	return lb_reverse(ctx, 4);
}

SEC("cgroup/recvmsg6")
int sluice_lb_recvmsg6(struct bpf_sock_addr *ctx)
{
	return lb_reverse(ctx, 6);
}

SEC("cgroup/getpeername4")
int sluice_lb_getpeername4(struct bpf_sock_addr *ctx)
{
	return lb_reverse(ctx, 4);
}

SEC("cgroup/getpeername6")
int sluice_lb_getpeername6(struct bpf_sock_addr *ctx)
{
	return lb_reverse(ctx, 6);
}
