/* The endpoint map and its lookup. */
#ifndef SLUICE_LIB_ENDPOINT_H
#define SLUICE_LIB_ENDPOINT_H
#include "../shared/endpoint.h"

#ifndef SLUICE_MAX_ENDPOINTS
#define SLUICE_MAX_ENDPOINTS 4096 /* default; the agent sizes it from config */
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SLUICE_MAX_ENDPOINTS);
	__type(key, struct sluice_endpoint_key);
	__type(value, struct sluice_endpoint);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_endpoints_v3 SEC(".maps");

static __always_inline struct sluice_endpoint *endpoint_lookup(__u32 ifindex)
{
	struct sluice_endpoint_key key = { .ifindex = ifindex };

	return bpf_map_lookup_elem(&sluice_endpoints_v3, &key);
}
#endif
