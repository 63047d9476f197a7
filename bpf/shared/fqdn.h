/* FQDN allows: which destination addresses each FQDNPolicy rule currently
 * allows, learned by the DNS proxy from trusted answers.
 *
 * One entry per (rule, address), not per pod: every pod a rule selects finds
 * the rule's id in the list its policy generation carries
 * (sluice_fqdn_rules), and the rule's ports in the policy trie under the
 * rule's id as the peer identity. */
#ifndef SLUICE_SHARED_FQDN_H
#define SLUICE_SHARED_FQDN_H
#include "types.h"

/* FQDN rules one endpoint can carry; the agent truncates (denies) beyond. */
#define SLUICE_FQDN_MAX_RULES 16

struct sluice_fqdn_key {
	__u32 rule;    /* FQDN rule identity */
	__u8 family;   /* 4 or 6 */
	__u8 pad[3];   /* must be zero */
	__u8 addr[16]; /* IPv4 in the first 4 bytes, rest zero */
};

struct sluice_fqdn_value {
	__u64 expires_ns; /* CLOCK_MONOTONIC (bpf_ktime_get_ns): new flows drop after it */
};

/* Keyed by policy_id: the FQDN rules of one endpoint's policy generation. */
struct sluice_fqdn_rules {
	__u32 count;
	__u32 rules[SLUICE_FQDN_MAX_RULES];
};

_Static_assert(sizeof(struct sluice_fqdn_key) == 24, "sluice_fqdn_key layout");
_Static_assert(sizeof(struct sluice_fqdn_value) == 8, "sluice_fqdn_value layout");
_Static_assert(sizeof(struct sluice_fqdn_rules) == 68, "sluice_fqdn_rules layout");
#endif
