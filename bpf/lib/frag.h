/* Fragment tracking (see bpf/shared/frag.h). */
#ifndef SLUICE_LIB_FRAG_H
#define SLUICE_LIB_FRAG_H
#include "../shared/frag.h"
#include "parse.h"

/* As long as the kernel keeps an incomplete datagram (IPv6's 60 s is the
 * longer of the two reassembly timeouts). */
#define FRAG_TIMEOUT_NS (60ULL * 1000000000ULL)

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct sluice_frag_key);
	__type(value, struct sluice_frag_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_frag_v1 SEC(".maps");

static __always_inline void frag_key_fill(struct sluice_frag_key *k, __u32 ifindex, __u8 direction, const struct tuple *t)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->ifindex = ifindex;
	k->direction = direction;
	k->family = t->family;
	k->protocol = t->protocol;
	k->id = t->frag_id;
	__builtin_memcpy(k->saddr, t->saddr, 16);
	__builtin_memcpy(k->daddr, t->daddr, 16);
}

/* A first fragment was allowed here: its datagram's later fragments may follow. */
static __always_inline void frag_record(__u32 ifindex, __u8 direction, const struct tuple *t)
{
	struct sluice_frag_key key;
	struct sluice_frag_value v = { .sport_be = t->sport_be, .dport_be = t->dport_be };

	frag_key_fill(&key, ifindex, direction, t);
	v.expires_ns = bpf_ktime_get_ns() + FRAG_TIMEOUT_NS;
	bpf_map_update_elem(&sluice_frag_v1, &key, &v, BPF_ANY);
}

/* A later fragment takes its first fragment's ports; 0 if there was none. */
static __always_inline int frag_restore(__u32 ifindex, __u8 direction, struct tuple *t)
{
	struct sluice_frag_key key;
	struct sluice_frag_value *v;

	frag_key_fill(&key, ifindex, direction, t);
	v = bpf_map_lookup_elem(&sluice_frag_v1, &key);
	if (!v || v->expires_ns <= bpf_ktime_get_ns())
		return 0;
	t->sport_be = v->sport_be;
	t->dport_be = v->dport_be;
	return 1;
}
#endif
