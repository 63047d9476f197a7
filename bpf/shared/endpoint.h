/* One entry per pod, keyed by the host-side veth's ifindex. */
#ifndef SLUICE_SHARED_ENDPOINT_H
#define SLUICE_SHARED_ENDPOINT_H
#include "types.h"

#define SLUICE_EP_F_DROP_ALL          (1U << 0) /* drop every packet, both directions */
#define SLUICE_EP_F_INGRESS_ISOLATED  (1U << 1) /* a policy selects it for ingress */
#define SLUICE_EP_F_EGRESS_ISOLATED   (1U << 2) /* a policy selects it for egress */
#define SLUICE_EP_F_POLICY_FAILED     (1U << 3) /* its policy could not be programmed: fail closed */
#define SLUICE_EP_F_DNS_INTERCEPT     (1U << 4) /* its DNS goes through the agent's proxy */
#define SLUICE_EP_F_FQDN              (1U << 5) /* FQDN rules apply: consult sluice_fqdn_rules */
/* Only audit-mode policies select it for ingress / egress: what they would
 * drop passes and is reported with the audit verdict. Never set together
 * with the same direction's ISOLATED flag (enforcing policies win). */
#define SLUICE_EP_F_INGRESS_AUDIT     (1U << 6)
#define SLUICE_EP_F_EGRESS_AUDIT      (1U << 7)

struct sluice_endpoint_key {
	__u32 ifindex;
};

/* The pod's own addresses: the only sources its packets may carry
 * (anti-spoofing). A Kubernetes pod has at most one address per family; an
 * all-zero address means none of that family, so every packet of that family
 * from the pod is dropped as spoofed. */
struct sluice_endpoint {
	__u32 identity;  /* the pod's security identity */
	__u32 flags;     /* SLUICE_EP_F_* */
	__u32 policy_id; /* which generation of policy entries applies (sluice_policy_v1 keys) */
	__u32 pad;       /* must be zero */
	__u8 addr4[4];   /* network order */
	__u8 addr6[16];
};

_Static_assert(sizeof(struct sluice_endpoint_key) == 4, "sluice_endpoint_key layout");
_Static_assert(sizeof(struct sluice_endpoint) == 36, "sluice_endpoint layout");
#endif
