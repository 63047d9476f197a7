/* Policy allow entries, one longest-prefix trie for every endpoint:
 * (policy_id, peer identity, direction, protocol, port). A port range is a
 * set of shorter prefixes over the big-endian port; "any port" stops after
 * the protocol, "any protocol" after the direction. Every entry allows. */
#ifndef SLUICE_SHARED_POLICY_H
#define SLUICE_SHARED_POLICY_H
#include "types.h"

/* Bits of the key after prefixlen up to and including each field. */
#define SLUICE_POLICY_PREFIX_DIRECTION 72
#define SLUICE_POLICY_PREFIX_PROTOCOL  80
#define SLUICE_POLICY_PREFIX_FULL      96

struct sluice_policy_key {
	__u32 prefixlen;
	__u32 policy_id;
	__u32 peer;      /* identity, or SLUICE_ID_ANY */
	__u8 direction;  /* SLUICE_DIR_* */
	__u8 protocol;   /* IPPROTO_*; 0 with a shorter prefix = any */
	__u16 dport_be;  /* network order, so port ranges are bit prefixes */
};

struct sluice_policy_value {
	__u32 rule;      /* the agent's rule reference, for flow events and explain */
	__u32 pad;       /* must be zero */
};

_Static_assert(sizeof(struct sluice_policy_key) == 16, "sluice_policy_key layout");
_Static_assert(sizeof(struct sluice_policy_value) == 8, "sluice_policy_value layout");
#endif
