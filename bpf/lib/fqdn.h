/* FQDN allows: destinations the DNS proxy learned for an endpoint's rules. */
#ifndef SLUICE_LIB_FQDN_H
#define SLUICE_LIB_FQDN_H
#include "../shared/fqdn.h"
#include "../shared/drop_reasons.h"
#include "../shared/metrics.h"
#include "policy.h"

#ifndef SLUICE_MAX_FQDN_ENTRIES
#define SLUICE_MAX_FQDN_ENTRIES 131072 /* default; the agent sizes it from config */
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SLUICE_MAX_FQDN_ENTRIES);
	__type(key, struct sluice_fqdn_key);
	__type(value, struct sluice_fqdn_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_fqdn_v1 SEC(".maps");

/* policy_id → the FQDN rules of that policy generation, written with its
 * policy entries and deleted with them. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct sluice_fqdn_rules);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_fqdn_rules_v1 SEC(".maps");

/*
 * Pod egress that no NetworkPolicy entry allowed: does one of the endpoint's
 * FQDN rules allow the destination address (learned, not expired) on this
 * protocol and port? At most SLUICE_FQDN_MAX_RULES pairs of lookups, only for
 * the first packet of a flow (conntrack carries the rest).
 *
 * Returns SLUICE_REASON_FORWARDED, or the most telling drop reason: expired
 * if a rule had learned the address but its lifetime ran out, policy-denied
 * if a rule allows the address on other ports only, else no-FQDN-allow.
 */
static __always_inline __u8 fqdn_verdict(__u32 policy_id, const struct tuple *t, __u16 dport_be)
{
	struct sluice_fqdn_key key = { .family = t->family };
	struct sluice_fqdn_rules *rules;
	struct sluice_fqdn_value *v;
	__u8 reason = SLUICE_DROP_NO_FQDN_ALLOW;
	__u64 now = bpf_ktime_get_ns();
	__u32 i;

	rules = bpf_map_lookup_elem(&sluice_fqdn_rules_v1, &policy_id);
	if (!rules)
		return SLUICE_DROP_NO_FQDN_ALLOW;
	__builtin_memcpy(key.addr, t->daddr, 16);
	for (i = 0; i < SLUICE_FQDN_MAX_RULES; i++) {
		if (i >= rules->count)
			break;
		key.rule = rules->rules[i];
		v = bpf_map_lookup_elem(&sluice_fqdn_v1, &key);
		if (!v)
			continue;
		if (v->expires_ns <= now) {
			reason = SLUICE_DROP_FQDN_EXPIRED;
			continue;
		}
		if (policy_allows_peer(policy_id, key.rule, SLUICE_DIR_FROM_POD, t->protocol, dport_be))
			return SLUICE_REASON_FORWARDED;
		if (reason == SLUICE_DROP_NO_FQDN_ALLOW)
			reason = SLUICE_DROP_POLICY_DENIED;
	}
	return reason;
}
#endif
