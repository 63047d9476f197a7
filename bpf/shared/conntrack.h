/* Connection tracking, per enforcement point: a flow allowed at one veth in
 * one direction is recorded there only, so another pod's own ingress check is
 * never skipped because the sender's egress allowed the flow. */
#ifndef SLUICE_SHARED_CONNTRACK_H
#define SLUICE_SHARED_CONNTRACK_H
#include "types.h"

#define SLUICE_CT_F_SYN      (1U << 0)
#define SLUICE_CT_F_FIN_FWD  (1U << 1)
#define SLUICE_CT_F_FIN_REV  (1U << 2)
#define SLUICE_CT_F_RST      (1U << 3)
#define SLUICE_CT_F_ESTABLISHED (1U << 4)
/* A flow between one of this node's pods and a pod of another node that
 * skips this node's stack both ways: its first packet (a TCP SYN) was sent
 * out with bpf_redirect_neigh, or delivered from the node's link into the
 * pod with bpf_redirect_peer. Only a flow whose entry carries it is sent
 * that way later (the stack never sees half of a flow). */
#define SLUICE_CT_F_ROUTED   (1U << 7)
/* The side that opened the flow is the key's daddr/dport side: a local
 * flow's higher endpoint (SLUICE_CT_DIR_LOCAL, see ct_local_key()), or the
 * pod of another node that opened a routed flow (its entry is kept in the
 * local pod's egress orientation, see ct_create_inbound()). Without it the
 * opener is the key's saddr side. */
#define SLUICE_CT_F_INIT_DST (1U << 6)

/*
 * The direction of a local flow's one entry: a flow between two of this
 * node's pods whose first packet was judged for both pods in sluice_from_pod
 * and delivered with bpf_redirect_peer. Its key has ifindex 0 and the two
 * endpoints in a fixed order (the lower address/port first), so either pod's
 * packets find it with one lookup; only such a flow is redirected later (one
 * the host's stack saw first, and may have translated, keeps going through
 * the stack).
 */
#define SLUICE_CT_DIR_LOCAL  2

struct sluice_ct_key {
	__u32 ifindex;   /* host veth of the endpoint; 0 for SLUICE_CT_DIR_LOCAL */
	__u8 direction;  /* direction of the packet that opened the flow, or SLUICE_CT_DIR_LOCAL */
	__u8 family;
	__u8 protocol;
	__u8 pad;        /* must be zero */
	__u8 saddr[16];  /* as in the opening packet (SLUICE_CT_DIR_LOCAL: the lower endpoint) */
	__u8 daddr[16];
	__u16 sport_be;  /* ICMP echo: the identifier as sport, 0 as dport */
	__u16 dport_be;
};

struct sluice_ct_value {
	__u64 expires_ns; /* bpf_ktime_get_coarse_ns() deadline (CLOCK_MONOTONIC, jiffy resolution) */
	__u32 flags;      /* SLUICE_CT_F_* */
	__u32 pad;
};

_Static_assert(sizeof(struct sluice_ct_key) == 44, "sluice_ct_key layout");
_Static_assert(sizeof(struct sluice_ct_value) == 16, "sluice_ct_value layout");
#endif
