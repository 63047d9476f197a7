/* Per-CPU packet and byte counters by (reason, direction, audit). */
#ifndef SLUICE_SHARED_METRICS_H
#define SLUICE_SHARED_METRICS_H
#include "types.h"

#define SLUICE_DIR_FROM_POD 0 /* pod egress: host veth tc ingress */
#define SLUICE_DIR_TO_POD   1 /* pod ingress: host veth tc egress */

/* The counters are a per-CPU array, one slot per (reason, direction,
 * audit): reason (SLUICE_REASON_FORWARDED or SLUICE_DROP_*) in the low 8
 * bits, the direction (SLUICE_DIR_*) above it, then audit (1: a drop
 * `reason` an audit-mode policy let pass). */
#define SLUICE_METRICS_DIR_SHIFT   8
#define SLUICE_METRICS_AUDIT_SHIFT 9
#define SLUICE_METRICS_SLOTS       1024

struct sluice_metrics_value {
	__u64 packets;
	__u64 bytes;
};

_Static_assert(sizeof(struct sluice_metrics_value) == 16, "sluice_metrics_value layout");
#endif
