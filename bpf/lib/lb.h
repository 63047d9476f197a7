/* Service translation at the socket: see bpf/shared/lb.h. */
#ifndef SLUICE_LIB_LB_H
#define SLUICE_LIB_LB_H
#include "../shared/lb.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct sluice_lb_svc_key);
	__type(value, struct sluice_lb_svc);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_lb_svc_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, struct sluice_lb_be_key);
	__type(value, struct sluice_lb_be);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_lb_be_v1 SEC(".maps");

/* netns cookie of each of this node's pods → its host veth ifindex. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_lb_netns_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct sluice_lb_sock_key);
	__type(value, struct sluice_lb_sock);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_lb_aff_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct sluice_lb_sock_key);
	__type(value, struct sluice_lb_sock);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_lb_rev_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct sluice_lb_flow_key);
	__type(value, struct sluice_lb_sock);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_lb_flow_v1 SEC(".maps");

#define LB_PASS 1
#define LB_REJECT 0

static __always_inline void lb_read_addr(struct bpf_sock_addr *ctx, __u8 family, __u8 *out)
{
	if (family == 4) {
		__u32 a = ctx->user_ip4;

		__builtin_memcpy(out, &a, 4);
	} else {
		__u32 w[4];

		w[0] = ctx->user_ip6[0];
		w[1] = ctx->user_ip6[1];
		w[2] = ctx->user_ip6[2];
		w[3] = ctx->user_ip6[3];
		__builtin_memcpy(out, w, 16);
	}
}

static __always_inline void lb_write_addr(struct bpf_sock_addr *ctx, __u8 family, const __u8 *addr, __u16 port_be)
{
	if (family == 4) {
		__u32 a;

		__builtin_memcpy(&a, addr, 4);
		ctx->user_ip4 = a;
	} else {
		__u32 w[4];

		__builtin_memcpy(w, addr, 16);
		ctx->user_ip6[0] = w[0];
		ctx->user_ip6[1] = w[1];
		ctx->user_ip6[2] = w[2];
		ctx->user_ip6[3] = w[3];
	}
	ctx->user_port = port_be;
}

/*
 * A pod's socket addressing a Service frontend: rewritten to a backend.
 * `sticky` (unconnected UDP): every datagram of this socket to this frontend
 * goes to the backend picked first, until the frontend's backends change.
 * Anything else (not a frontend, not one of this node's pods) passes as it
 * is. A frontend with no backend rejects at once; so does one whose backend
 * entry is missing (never opens anything: the connect fails).
 */
static __always_inline int lb_translate(struct bpf_sock_addr *ctx, __u8 family, int sticky)
{
	struct sluice_lb_svc_key k = { .family = family, .protocol = (__u8)ctx->protocol, .port_be = (__u16)ctx->user_port };
	struct sluice_lb_sock_key sk = { .family = family };
	struct sluice_lb_sock vip = {}, *aff;
	struct sluice_lb_be_key bk;
	struct sluice_lb_be *be;
	struct sluice_lb_svc *svc;
	__u64 netns = bpf_get_netns_cookie(ctx);
	__u8 addr[16] = {};
	__u16 port_be;

	if (!bpf_map_lookup_elem(&sluice_lb_netns_v1, &netns))
		return LB_PASS;
	lb_read_addr(ctx, family, k.addr);
	svc = bpf_map_lookup_elem(&sluice_lb_svc_v1, &k);
	if (!svc)
		return LB_PASS;
	if (!svc->count)
		return LB_REJECT;
	sk.cookie = bpf_get_socket_cookie(ctx);
	sk.port_be = k.port_be;
	__builtin_memcpy(sk.addr, k.addr, 16);
	aff = sticky ? bpf_map_lookup_elem(&sluice_lb_aff_v1, &sk) : NULL;
	if (aff && aff->rev == svc->rev) {
		__builtin_memcpy(addr, aff->addr, 16);
		port_be = aff->port_be;
	} else {
		bk.id = svc->id;
		bk.slot = bpf_get_prandom_u32() % svc->count;
		be = bpf_map_lookup_elem(&sluice_lb_be_v1, &bk);
		if (!be || be->family != family)
			return LB_REJECT;
		__builtin_memcpy(addr, be->addr, 16);
		port_be = be->port_be;
		if (sticky) {
			struct sluice_lb_sock pick = { .port_be = port_be, .rev = svc->rev };

			__builtin_memcpy(pick.addr, addr, 16);
			bpf_map_update_elem(&sluice_lb_aff_v1, &sk, &pick, BPF_ANY);
		}
		{
			struct sluice_lb_flow_key fk = { .netns = netns, .family = family, .protocol = k.protocol, .port_be = port_be };
			struct sluice_lb_sock fe = { .port_be = k.port_be };

			__builtin_memcpy(fk.addr, addr, 16);
			__builtin_memcpy(fe.addr, k.addr, 16);
			bpf_map_update_elem(&sluice_lb_flow_v1, &fk, &fe, BPF_ANY);
		}
	}
	/* The way back: which frontend this backend stands for, on this socket. */
	__builtin_memcpy(vip.addr, k.addr, 16);
	vip.port_be = k.port_be;
	sk.port_be = port_be;
	__builtin_memcpy(sk.addr, addr, 16);
	bpf_map_update_elem(&sluice_lb_rev_v1, &sk, &vip, BPF_ANY);
	lb_write_addr(ctx, family, addr, port_be);
	return LB_PASS;
}

/* recvmsg / getpeername: a backend's address shown as the frontend's. */
static __always_inline int lb_reverse(struct bpf_sock_addr *ctx, __u8 family)
{
	struct sluice_lb_sock_key sk = { .family = family, .port_be = (__u16)ctx->user_port };
	struct sluice_lb_sock *vip;

	sk.cookie = bpf_get_socket_cookie(ctx);
	lb_read_addr(ctx, family, sk.addr);
	vip = bpf_map_lookup_elem(&sluice_lb_rev_v1, &sk);
	if (vip)
		lb_write_addr(ctx, family, vip->addr, vip->port_be);
	return LB_PASS;
}
#endif
