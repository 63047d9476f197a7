// SPDX-License-Identifier: GPL-2.0
/* Sluice's per-pod datapath, attached with tc (clsact, direct-action) to the
 * host side of each pod's veth pair:
 *
 *   sluice_from_pod  host veth tc ingress: packets leaving the pod (pod egress)
 *   sluice_to_pod    host veth tc egress:  packets going to the pod (pod ingress)
 *
 * Both look up the endpoint by the host veth's ifindex, so an unknown veth
 * (not programmed, or programmed by a crashed agent and since removed) drops:
 * fail closed. Every drop has a reason, is counted and is sent as a flow event.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "shared/drop_reasons.h"
#include "lib/common.h"
#include "lib/endpoint.h"
#include "lib/metrics.h"
#include "lib/events.h"

char LICENSE[] SEC("license") = "GPL";

static __always_inline int handle(struct __sk_buff *skb, __u8 direction)
{
	__u8 reason = SLUICE_REASON_FORWARDED;
	struct sluice_endpoint *ep;

	ep = endpoint_lookup(skb->ifindex);
	if (!ep) {
		reason = SLUICE_DROP_NO_ENDPOINT;
		goto out;
	}
	if (ep->flags & SLUICE_EP_F_DROP_ALL) {
		reason = SLUICE_DROP_ENDPOINT_DISABLED;
		goto out;
	}
out:
	metrics_account(reason, direction, skb->len);
	if (reason == SLUICE_REASON_FORWARDED)
		return TC_ACT_OK;
	send_flow_event(skb, reason, direction);
	return TC_ACT_SHOT;
}

SEC("tc")
int sluice_from_pod(struct __sk_buff *skb)
{
	return handle(skb, SLUICE_DIR_FROM_POD);
}

SEC("tc")
int sluice_to_pod(struct __sk_buff *skb)
{
	return handle(skb, SLUICE_DIR_TO_POD);
}
