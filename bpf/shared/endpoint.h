/* One entry per pod, keyed by the host-side veth's ifindex. */
#ifndef SLUICE_SHARED_ENDPOINT_H
#define SLUICE_SHARED_ENDPOINT_H
#include "types.h"

/* Drop every packet of this endpoint (both directions). */
#define SLUICE_EP_F_DROP_ALL (1U << 0)

struct sluice_endpoint_key {
	__u32 ifindex;
};

struct sluice_endpoint {
	__u32 identity; /* security identity of the pod's label set */
	__u32 flags;    /* SLUICE_EP_F_* */
};

_Static_assert(sizeof(struct sluice_endpoint_key) == 4, "sluice_endpoint_key layout");
_Static_assert(sizeof(struct sluice_endpoint) == 8, "sluice_endpoint layout");
#endif
