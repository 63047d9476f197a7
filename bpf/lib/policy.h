/* The policy verdict: a fixed number of trie lookups, whatever the rule count. */
#ifndef SLUICE_LIB_POLICY_H
#define SLUICE_LIB_POLICY_H
#include "../shared/policy.h"
#include "../shared/ipcache.h"

#ifndef SLUICE_MAX_POLICY_ENTRIES
#define SLUICE_MAX_POLICY_ENTRIES 65536 /* default; the agent sizes it from config */
#endif

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SLUICE_MAX_POLICY_ENTRIES);
	__type(key, struct sluice_policy_key);
	__type(value, struct sluice_policy_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_policy_v1 SEC(".maps");

static __always_inline int policy_allows_peer(__u32 policy_id, __u32 peer, __u8 direction, __u8 protocol, __u16 dport_be)
{
	struct sluice_policy_key key = {
		.prefixlen = SLUICE_POLICY_PREFIX_FULL,
		.policy_id = policy_id,
		.peer = peer,
		.direction = direction,
		.protocol = protocol,
		.dport_be = dport_be,
	};

	return bpf_map_lookup_elem(&sluice_policy_v1, &key) != NULL;
}

/*
 * Precedence (all entries allow, so order only saves lookups):
 *   1. the peer's exact identity (pods, the node),
 *   2. the peer address's longest ipBlock prefix (also for pod addresses:
 *      an ipBlock must match pod IPs),
 *   3. any peer.
 */
static __always_inline int policy_allows(__u32 policy_id, __u32 peer_id, __u32 cidr_id, __u8 direction, __u8 protocol, __u16 dport_be)
{
	if (peer_id != SLUICE_ID_ANY && policy_allows_peer(policy_id, peer_id, direction, protocol, dport_be))
		return 1;
	if (cidr_id != SLUICE_ID_ANY && policy_allows_peer(policy_id, cidr_id, direction, protocol, dport_be))
		return 1;
	return policy_allows_peer(policy_id, SLUICE_ID_ANY, direction, protocol, dport_be);
}
#endif
