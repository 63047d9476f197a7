/* Exact addresses of pods and of the node → security identity. */
#ifndef SLUICE_SHARED_IPCACHE_H
#define SLUICE_SHARED_IPCACHE_H
#include "types.h"

#define SLUICE_ID_ANY  0 /* wildcard peer in policy keys */
#define SLUICE_ID_HOST 1 /* the node's own addresses */

struct sluice_ipcache_key {
	__u8 family;   /* 4 or 6 */
	__u8 pad[3];   /* must be zero */
	__u8 addr[16]; /* IPv4 in the first 4 bytes, rest zero */
};

struct sluice_identity_value {
	__u32 identity;
	__u32 pad; /* must be zero */
};

/* Longest-prefix map of every ipBlock prefix → CIDR identity. prefixlen
 * counts from `family`: 32 bits of family+pad, then the address prefix. */
struct sluice_cidr_key {
	__u32 prefixlen;
	__u8 family;
	__u8 pad[3];
	__u8 addr[16];
};

_Static_assert(sizeof(struct sluice_ipcache_key) == 20, "sluice_ipcache_key layout");
_Static_assert(sizeof(struct sluice_identity_value) == 8, "sluice_identity_value layout");
_Static_assert(sizeof(struct sluice_cidr_key) == 24, "sluice_cidr_key layout");
#endif
