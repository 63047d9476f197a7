/* The next hop of a routed flow (lib/routed.h), per pod pair: what the FIB
 * found for packets from one of this node's pods to a pod of another node,
 * reused for NH_VALID_NS without asking the FIB again. Kernel-only (an LRU:
 * an entry gone costs one FIB lookup). */
#ifndef SLUICE_SHARED_ROUTED_H
#define SLUICE_SHARED_ROUTED_H
#include "types.h"

struct sluice_nh_key {
	__u8 family;
	__u8 pad[3];     /* must be zero */
	__u8 saddr[16];  /* the local pod */
	__u8 daddr[16];  /* the pod of another node */
};

struct sluice_nh {
	__u64 found_ns;  /* bpf_ktime_get_coarse_ns() of the FIB lookup */
	__u32 ifindex;   /* the link out */
	__u8 dmac[6];    /* the next hop's */
	__u8 smac[6];    /* the link's */
	__u8 pad[4];     /* must be zero */
};

_Static_assert(sizeof(struct sluice_nh_key) == 36, "sluice_nh_key layout");
_Static_assert(sizeof(struct sluice_nh) == 32, "sluice_nh layout");
#endif
