/* Peer address → identities: exact (pods, node) and longest-prefix (ipBlocks). */
#ifndef SLUICE_LIB_IPCACHE_H
#define SLUICE_LIB_IPCACHE_H
#include "../shared/ipcache.h"
#include "parse.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct sluice_ipcache_key);
	__type(value, struct sluice_identity_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_ipcache_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__type(key, struct sluice_cidr_key);
	__type(value, struct sluice_identity_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_cidr_v1 SEC(".maps");

/* 0 (SLUICE_ID_ANY) when the address is no known pod or node. */
static __always_inline __u32 ipcache_identity(__u8 family, const __u8 *addr)
{
	struct sluice_ipcache_key key = { .family = family };
	struct sluice_identity_value *v;

	__builtin_memcpy(key.addr, addr, 16);
	v = bpf_map_lookup_elem(&sluice_ipcache_v1, &key);
	return v ? v->identity : SLUICE_ID_ANY;
}

/* 0 only if the agent has not written the root prefixes yet. */
static __always_inline __u32 cidr_identity(__u8 family, const __u8 *addr)
{
	struct sluice_cidr_key key = { .prefixlen = 32 + (family == 4 ? 32 : 128), .family = family };
	struct sluice_identity_value *v;

	__builtin_memcpy(key.addr, addr, 16);
	v = bpf_map_lookup_elem(&sluice_cidr_v1, &key);
	return v ? v->identity : SLUICE_ID_ANY;
}
#endif
