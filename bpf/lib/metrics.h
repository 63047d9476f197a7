/* Per-(reason, direction, audit) counters. */
#ifndef SLUICE_LIB_METRICS_H
#define SLUICE_LIB_METRICS_H
#include "../shared/metrics.h"

/* A per-CPU array: the lookup is inlined, no hash to compute, and every
 * slot exists (a counter is never lost to a full map). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SLUICE_METRICS_SLOTS);
	__type(key, __u32);
	__type(value, struct sluice_metrics_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_metrics_v2 SEC(".maps");

/* audit: 1 when `reason` is a drop that an audit-mode policy let pass. */
static __always_inline void metrics_account(__u8 reason, __u8 direction, __u8 audit, __u32 bytes)
{
	__u32 slot = reason | (__u32)(direction & 1) << SLUICE_METRICS_DIR_SHIFT | (__u32)(audit & 1) << SLUICE_METRICS_AUDIT_SHIFT;
	struct sluice_metrics_value *value = bpf_map_lookup_elem(&sluice_metrics_v2, &slot);

	if (!value)
		return;
	/* per-CPU value: no atomics needed */
	value->packets += 1;
	value->bytes += bytes;
}
#endif
