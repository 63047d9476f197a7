/* Flow events to user space. */
#ifndef SLUICE_LIB_EVENTS_H
#define SLUICE_LIB_EVENTS_H
#include "../shared/flow_event.h"
#include "common.h"
#include "parse.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_events_v1 SEC(".maps");

static __always_inline void send_flow_event(struct __sk_buff *skb, const struct tuple *t, __u8 reason, __u8 direction)
{
	struct sluice_flow_event *ev;

	ev = bpf_ringbuf_reserve(&sluice_events_v1, sizeof(*ev), 0);
	if (!ev)
		return; /* ring full: the metrics map still counts the drop */
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->timestamp_ns = bpf_ktime_get_ns();
	ev->ifindex = skb->ifindex;
	ev->reason = reason;
	ev->direction = direction;
	if (t) {
		ev->family = t->family;
		ev->protocol = t->protocol;
		__builtin_memcpy(ev->saddr, t->saddr, 16);
		__builtin_memcpy(ev->daddr, t->daddr, 16);
		ev->sport_be = t->sport_be;
		ev->dport_be = t->dport_be;
	}
	bpf_ringbuf_submit(ev, 0);
}
#endif
