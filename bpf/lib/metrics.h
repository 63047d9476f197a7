/* Per-(reason, direction, audit) counters. */
#ifndef SLUICE_LIB_METRICS_H
#define SLUICE_LIB_METRICS_H
#include "../shared/metrics.h"

/* 256 reasons x 2 directions would fit; 512 leaves room without resizing. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 512);
	__type(key, struct sluice_metrics_key);
	__type(value, struct sluice_metrics_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_metrics_v1 SEC(".maps");

/* audit: 1 when `reason` is a drop that an audit-mode policy let pass. */
static __always_inline void metrics_account(__u8 reason, __u8 direction, __u8 audit, __u32 bytes)
{
	struct sluice_metrics_key key = { .reason = reason, .direction = direction, .audit = audit };
	struct sluice_metrics_value *value;
	struct sluice_metrics_value fresh = { .packets = 1, .bytes = bytes };

	value = bpf_map_lookup_elem(&sluice_metrics_v1, &key);
	if (value) {
		/* per-CPU value: no atomics needed */
		value->packets += 1;
		value->bytes += bytes;
		return;
	}
	/* First packet for this key on this CPU; a racing insert from another
	 * CPU of the same key is fine (each CPU has its own slot). A full map
	 * only loses a counter, never changes a verdict. */
	bpf_map_update_elem(&sluice_metrics_v1, &key, &fresh, BPF_NOEXIST);
}
#endif
