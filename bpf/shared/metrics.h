/* Per-CPU packet and byte counters by (reason, direction). */
#ifndef SLUICE_SHARED_METRICS_H
#define SLUICE_SHARED_METRICS_H
#include "types.h"

#define SLUICE_DIR_FROM_POD 0 /* pod egress: host veth tc ingress */
#define SLUICE_DIR_TO_POD   1 /* pod ingress: host veth tc egress */

struct sluice_metrics_key {
	__u8 reason;    /* SLUICE_REASON_FORWARDED or SLUICE_DROP_* */
	__u8 direction; /* SLUICE_DIR_* */
	__u8 audit;     /* 1: a drop `reason` an audit-mode policy let pass */
	__u8 pad;       /* must be zero */
};

struct sluice_metrics_value {
	__u64 packets;
	__u64 bytes;
};

_Static_assert(sizeof(struct sluice_metrics_key) == 4, "sluice_metrics_key layout");
_Static_assert(sizeof(struct sluice_metrics_value) == 16, "sluice_metrics_value layout");
#endif
