/* Fragment tracking: non-first fragments carry no L4 header, so the first
 * fragment's ports are remembered under the datagram's fragment id, per
 * enforcement point (host veth + direction), as Cilium does. Only a first
 * fragment that was allowed leaves an entry: the rest of a denied datagram,
 * and fragments whose first never came by, are dropped. */
#ifndef SLUICE_SHARED_FRAG_H
#define SLUICE_SHARED_FRAG_H
#include "types.h"

struct sluice_frag_key {
	__u32 ifindex;   /* host veth of the endpoint */
	__u8 direction;  /* SLUICE_DIR_* */
	__u8 family;
	__u8 protocol;
	__u8 pad;        /* must be zero */
	__u32 id;        /* IPv4: the 16-bit id; IPv6: the fragment header's id (as on the wire) */
	__u8 saddr[16];
	__u8 daddr[16];
};

struct sluice_frag_value {
	__u64 expires_ns;
	__u16 sport_be;
	__u16 dport_be;
	__u32 pad;       /* must be zero */
};

_Static_assert(sizeof(struct sluice_frag_key) == 44, "sluice_frag_key layout");
_Static_assert(sizeof(struct sluice_frag_value) == 16, "sluice_frag_value layout");
#endif
