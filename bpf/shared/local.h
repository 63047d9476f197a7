/* This node's pods by address: where sluice_from_pod delivers a packet for a
 * local pod straight into its netns (bpf_redirect_peer), once both the
 * sender's egress and the receiver's ingress have been judged. Written by
 * the agent with each endpoint (src/agent/endpoints.ts); keyed like the
 * ipcache. The datapath trusts an entry only if the endpoint entry of its
 * ifindex owns the address (a stale entry falls back to the normal path). */
#ifndef SLUICE_SHARED_LOCAL_H
#define SLUICE_SHARED_LOCAL_H
#include "types.h"

struct sluice_local_ep {
	__u32 ifindex;      /* the pod's host-side veth */
	__u8 pod_mac[6];    /* the pod's eth0: the delivered frame's destination */
	__u8 host_mac[6];   /* the host-side veth: the delivered frame's source */
};

_Static_assert(sizeof(struct sluice_local_ep) == 16, "sluice_local_ep layout");
#endif
