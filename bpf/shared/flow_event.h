/* A flow event sent to user space through the ring buffer. */
#ifndef SLUICE_SHARED_FLOW_EVENT_H
#define SLUICE_SHARED_FLOW_EVENT_H
#include "types.h"

/* The packet passed although `reason` (a drop) applied: only audit-mode
 * policies isolate the pod in this direction. */
#define SLUICE_EVENT_F_AUDIT 1

struct sluice_flow_event {
	__u64 timestamp_ns; /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u32 ifindex;      /* host-side veth */
	__u8 reason;        /* SLUICE_REASON_FORWARDED or SLUICE_DROP_* */
	__u8 direction;     /* SLUICE_DIR_* */
	__u8 family;        /* 4, 6, or 0 when not IP */
	__u8 protocol;      /* IPPROTO_* */
	__u8 saddr[16];     /* IPv4 in the first 4 bytes */
	__u8 daddr[16];
	__u16 sport_be;     /* network order; 0 when not TCP/UDP/SCTP */
	__u16 dport_be;
	__u8 flags;         /* SLUICE_EVENT_F_* */
	__u8 pad[3];        /* must be zero */
};

_Static_assert(sizeof(struct sluice_flow_event) == 56, "sluice_flow_event layout");
#endif
