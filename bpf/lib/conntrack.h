/* Stateful allow: replies to, and the rest of, an allowed flow pass. */
#ifndef SLUICE_LIB_CONNTRACK_H
#define SLUICE_LIB_CONNTRACK_H
#include "../shared/conntrack.h"
#include "parse.h"

#define NSEC_PER_SEC 1000000000ULL
/* As Cilium's defaults: long for established TCP, short while opening or
 * closing, a minute for everything else (refreshed by every packet). */
#define CT_TCP_SYN_TIMEOUT     (60ULL * NSEC_PER_SEC)
#define CT_TCP_ESTABLISHED     (21600ULL * NSEC_PER_SEC)
#define CT_TCP_CLOSE_TIMEOUT   (10ULL * NSEC_PER_SEC)
#define CT_OTHER_TIMEOUT       (60ULL * NSEC_PER_SEC)

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct sluice_ct_key);
	__type(value, struct sluice_ct_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_ct_v1 SEC(".maps");

static __always_inline void ct_key_fill(struct sluice_ct_key *k, __u32 ifindex, __u8 direction, const struct tuple *t, int reverse)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->ifindex = ifindex;
	k->direction = direction;
	k->family = t->family;
	k->protocol = t->protocol;
	if (reverse) {
		__builtin_memcpy(k->saddr, t->daddr, 16);
		__builtin_memcpy(k->daddr, t->saddr, 16);
		k->sport_be = t->dport_be;
		k->dport_be = t->sport_be;
	} else {
		__builtin_memcpy(k->saddr, t->saddr, 16);
		__builtin_memcpy(k->daddr, t->daddr, 16);
		k->sport_be = t->sport_be;
		k->dport_be = t->dport_be;
	}
}

static __always_inline __u64 ct_lifetime(const struct tuple *t, __u32 flags)
{
	if (t->protocol != IPPROTO_TCP)
		return CT_OTHER_TIMEOUT;
	if (flags & (SLUICE_CT_F_RST) || (flags & SLUICE_CT_F_FIN_FWD && flags & SLUICE_CT_F_FIN_REV))
		return CT_TCP_CLOSE_TIMEOUT;
	if (flags & SLUICE_CT_F_ESTABLISHED)
		return CT_TCP_ESTABLISHED;
	return CT_TCP_SYN_TIMEOUT;
}

static __always_inline void ct_refresh(struct sluice_ct_value *v, const struct tuple *t, int reply, __u64 now)
{
	__u32 flags = v->flags;

	if (t->protocol == IPPROTO_TCP) {
		if (t->tcp_flags & TCP_FLAG_RST)
			flags |= SLUICE_CT_F_RST;
		if (t->tcp_flags & TCP_FLAG_FIN)
			flags |= reply ? SLUICE_CT_F_FIN_REV : SLUICE_CT_F_FIN_FWD;
		if (reply && (t->tcp_flags & TCP_FLAG_ACK))
			flags |= SLUICE_CT_F_ESTABLISHED;
	}
	v->flags = flags;
	v->expires_ns = now + ct_lifetime(t, flags);
}

/* The clock of conntrack deadlines, read once per packet: the coarse
 * monotonic clock (no TSC read, which a VM may trap) is exact enough for
 * timeouts of seconds. */
static __always_inline __u64 ct_now(void)
{
	return bpf_ktime_get_coarse_ns();
}

/* A SYN without ACK opens a new connection, even on the 5-tuple of one that
 * just closed (its entry lingers for CT_TCP_CLOSE_TIMEOUT): it is always
 * judged by policy, never waved through by an old entry. */
static __always_inline int ct_opens(const struct tuple *t)
{
	return t->protocol == IPPROTO_TCP && (t->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN;
}

/* 1 if `key` is a live flow, refreshed by packet `t`; `reverse`: the key
 * is `t`'s tuple reversed (the packet comes from the key's daddr side).
 * *flags (if not NULL) gets the entry's SLUICE_CT_F_* after this packet. */
static __always_inline int ct_match(const struct sluice_ct_key *key, const struct tuple *t, int reverse, __u64 now, __u32 *flags)
{
	struct sluice_ct_value *v = bpf_map_lookup_elem(&sluice_ct_v1, key);

	if (!v || v->expires_ns <= now)
		return 0;
	/* A reply comes from the side that did not open the flow. */
	ct_refresh(v, t, reverse != !!(v->flags & SLUICE_CT_F_INIT_DST), now);
	if (flags)
		*flags = v->flags;
	return 1;
}

/* The flows of a veth: the packet's orientation under `direction`, then the
 * reply's (the flow opened in the other direction); `reply_first` looks
 * the reply's up first. */
static __always_inline int ct_lookup_order(__u32 ifindex, __u8 direction, const struct tuple *t, __u64 now, __u32 *flags, int reply_first)
{
	struct sluice_ct_key key;

	if (ct_opens(t))
		return 0;
	ct_key_fill(&key, ifindex, reply_first ? direction ^ 1 : direction, t, reply_first);
	if (ct_match(&key, t, reply_first, now, flags))
		return 1;
	ct_key_fill(&key, ifindex, reply_first ? direction : direction ^ 1, t, !reply_first);
	return ct_match(&key, t, !reply_first, now, flags);
}

/* 1 if the packet belongs to a flow already allowed at this point (the
 * entry refreshed by it); *flags (if not NULL) gets the entry's
 * SLUICE_CT_F_* after this packet. */
static __always_inline int ct_lookup(__u32 ifindex, __u8 direction, const struct tuple *t, __u64 now, __u32 *flags)
{
	return ct_lookup_order(ifindex, direction, t, now, flags, 0);
}

/* ct_lookup() for a packet into the pod of `ifindex` from the node's link:
 * the pod's egress orientation first, where every routed flow is kept
 * (ct_create_inbound()), so a routed flow's packet finds it at once. */
static __always_inline int ct_lookup_inbound(__u32 ifindex, const struct tuple *t, __u64 now, __u32 *flags)
{
	return ct_lookup_order(ifindex, SLUICE_DIR_TO_POD, t, now, flags, 1);
}

/* extra: more SLUICE_CT_F_* for the new entry. */
static __always_inline void ct_store(const struct sluice_ct_key *key, const struct tuple *t, __u64 now, __u32 extra)
{
	struct sluice_ct_value v = {};

	ct_refresh(&v, t, 0, now);
	if (t->protocol == IPPROTO_TCP && (t->tcp_flags & TCP_FLAG_SYN))
		v.flags |= SLUICE_CT_F_SYN;
	v.flags |= extra;
	/* LRU: an insert never fails for lack of room (the oldest goes). */
	bpf_map_update_elem(&sluice_ct_v1, key, &v, BPF_ANY);
}

/* extra: more SLUICE_CT_F_* (SLUICE_CT_F_ROUTED). */
static __always_inline void ct_create(__u32 ifindex, __u8 direction, const struct tuple *t, __u64 now, __u32 extra)
{
	struct sluice_ct_key key;

	ct_key_fill(&key, ifindex, direction, t, 0);
	ct_store(&key, t, now, extra);
}

/* A flow opened by packet `t` into the pod of `ifindex`, kept in the pod's
 * egress orientation (SLUICE_CT_F_INIT_DST: the peer opened it), so that
 * the pod's own packets find it with their first lookup, as its replies do
 * (ct_lookup_inbound()). Any lookup of the veth finds it: ct_lookup tries
 * both orientations. */
static __always_inline void ct_create_inbound(__u32 ifindex, const struct tuple *t, __u64 now, __u32 extra)
{
	struct sluice_ct_key key;

	ct_key_fill(&key, ifindex, SLUICE_DIR_FROM_POD, t, 1);
	ct_store(&key, t, now, extra | SLUICE_CT_F_INIT_DST);
}

/*
 * A local flow's key (SLUICE_CT_DIR_LOCAL): the two endpoints in a fixed
 * order, the lower (address, port) as saddr/sport, so both pods' packets
 * make the same key. Returns 1 when the packet comes from the higher one.
 * The order only has to be total, not numeric: the addresses compare as two
 * 64-bit words each.
 */
static __always_inline int ct_local_key(struct sluice_ct_key *k, const struct tuple *t)
{
	__u64 s0, s1, d0, d1;
	int hi;

	__builtin_memcpy(&s0, t->saddr, 8);
	__builtin_memcpy(&s1, t->saddr + 8, 8);
	__builtin_memcpy(&d0, t->daddr, 8);
	__builtin_memcpy(&d1, t->daddr + 8, 8);
	if (s0 != d0)
		hi = s0 > d0;
	else if (s1 != d1)
		hi = s1 > d1;
	else
		hi = t->sport_be > t->dport_be;
	ct_key_fill(k, 0, SLUICE_CT_DIR_LOCAL, t, hi);
	return hi;
}

/* 1 if the packet belongs to a live local flow (refreshed by it). A SYN
 * never does: it is judged as a new connection. */
static __always_inline int ct_local_lookup(const struct tuple *t, __u64 now)
{
	struct sluice_ct_key key;
	int from_hi;

	if (ct_opens(t))
		return 0;
	from_hi = ct_local_key(&key, t);
	return ct_match(&key, t, from_hi, now, NULL);
}

/* The one entry of a local flow whose first packet is `t` (both pods'
 * policies allowed it). */
static __always_inline void ct_local_create(const struct tuple *t, __u64 now)
{
	struct sluice_ct_key key;
	int from_hi = ct_local_key(&key, t);

	ct_store(&key, t, now, from_hi ? SLUICE_CT_F_INIT_DST : 0);
}
#endif
