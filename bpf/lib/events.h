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

/* Event budget per CPU and second. Turning every new flow into an event the
 * agent decodes costs it a third of a CPU at ~17k connections/s (measured in
 * bench/datapath), so allowed flows are sampled; drops get a far larger
 * budget. Counters (sluice_metrics_v1) count every packet regardless. */
#define EVENTS_ALLOWED_PER_SEC 200
#define EVENTS_DROPPED_PER_SEC 4000
#define NSEC_PER_SEC_EV 1000000000ULL

struct event_budget {
	__u64 window_start_ns;
	__u32 allowed;
	__u32 dropped;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event_budget);
} sluice_event_budget SEC(".maps");

static __always_inline int event_budget_take(int dropped)
{
	__u32 zero = 0;
	struct event_budget *b = bpf_map_lookup_elem(&sluice_event_budget, &zero);
	/* Windows of a second: the coarse clock (no TSC read) is enough. */
	__u64 now = bpf_ktime_get_coarse_ns();

	if (!b)
		return 0;
	if (now - b->window_start_ns >= NSEC_PER_SEC_EV) {
		b->window_start_ns = now;
		b->allowed = 0;
		b->dropped = 0;
	}
	if (dropped)
		return b->dropped++ < EVENTS_DROPPED_PER_SEC;
	return b->allowed++ < EVENTS_ALLOWED_PER_SEC;
}

/* flags: SLUICE_EVENT_F_*; an audit event (a drop reason that passed)
 * draws on the drops' budget. ifindex: the enforcement point's host veth
 * (the receiving pod's, for its ingress judged in sluice_from_pod). */
static __always_inline void send_flow_event_at(__u32 ifindex, const struct tuple *t, __u8 reason, __u8 direction, __u8 flags)
{
	struct sluice_flow_event *ev;

	if (!event_budget_take(reason != SLUICE_REASON_FORWARDED))
		return;
	ev = bpf_ringbuf_reserve(&sluice_events_v1, sizeof(*ev), 0);
	if (!ev)
		return; /* ring full: the metrics map still counts the drop */
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->timestamp_ns = bpf_ktime_get_ns();
	ev->ifindex = ifindex;
	ev->reason = reason;
	ev->direction = direction;
	ev->flags = flags;
	if (t) {
		ev->family = t->family;
		ev->protocol = t->protocol;
		__builtin_memcpy(ev->saddr, t->saddr, 16);
		__builtin_memcpy(ev->daddr, t->daddr, 16);
		ev->sport_be = t->sport_be;
		ev->dport_be = t->dport_be;
	}
	/* No wakeup: the agent drains on a timer, not on epoll. */
	bpf_ringbuf_submit(ev, BPF_RB_NO_WAKEUP);
}

static __always_inline void send_flow_event(struct __sk_buff *skb, const struct tuple *t, __u8 reason, __u8 direction, __u8 flags)
{
	send_flow_event_at(skb->ifindex, t, reason, direction, flags);
}
#endif
