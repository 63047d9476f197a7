/* Service translation at the socket (cgroup sock_addr hooks): a pod's
 * connect() or sendmsg() to a Service address (ClusterIP, a node's address
 * and NodePort, an external IP) is rewritten to one of its backends before
 * any packet exists, so the pod's veth programs judge the backend, and the
 * backend's judge the real client. Only sockets of this node's pods are
 * translated (their netns cookies, sluice_lb_netns_v1): the node's own
 * traffic is left to kube-proxy. Mirrored by src/datapath/codec/lb.ts. */
#ifndef SLUICE_SHARED_LB_H
#define SLUICE_SHARED_LB_H
#include "types.h"

/* A Service frontend: address, port, protocol. */
struct sluice_lb_svc_key {
	__u8 family;      /* 4 or 6 */
	__u8 protocol;    /* IPPROTO_TCP or IPPROTO_UDP */
	__u16 port_be;
	__u8 addr[16];    /* IPv4 in the first 4 bytes, the rest zero */
};

struct sluice_lb_svc {
	__u32 id;         /* its backends are (id, 0..count-1) in sluice_lb_be_v1 */
	__u16 count;      /* 0: no ready backend, connect()/sendmsg() fail at once (EPERM) */
	__u16 rev;        /* bumped when the backends change: UDP affinity re-picks */
};

struct sluice_lb_be_key {
	__u32 id;
	__u32 slot;
};

struct sluice_lb_be {
	__u8 addr[16];
	__u16 port_be;
	__u8 family;
	__u8 pad;         /* must be zero */
};

/* Per socket: the backend a UDP socket's datagrams to a frontend go to
 * (affinity), and which frontend a backend stands for (replies, peer name). */
struct sluice_lb_sock_key {
	__u64 cookie;     /* bpf_get_socket_cookie */
	__u8 family;
	__u8 pad;         /* must be zero */
	__u16 port_be;
	__u8 addr[16];
	__u32 pad2;       /* must be zero */
};

struct sluice_lb_sock {
	__u8 addr[16];
	__u16 port_be;
	__u16 rev;        /* affinity: the frontend's rev when it was picked */
	__u32 pad;        /* must be zero */
};

/* Which frontend a pod's flow to a backend came through, for flow events
 * (`sluice observe`): the pod's netns cookie and the backend it was sent to. */
struct sluice_lb_flow_key {
	__u64 netns;
	__u8 family;
	__u8 protocol;
	__u16 port_be;    /* the backend's */
	__u8 addr[16];    /* the backend's */
	__u32 pad;        /* must be zero */
};

_Static_assert(sizeof(struct sluice_lb_flow_key) == 32, "sluice_lb_flow_key layout");
_Static_assert(sizeof(struct sluice_lb_svc_key) == 20, "sluice_lb_svc_key layout");
_Static_assert(sizeof(struct sluice_lb_svc) == 8, "sluice_lb_svc layout");
_Static_assert(sizeof(struct sluice_lb_be_key) == 8, "sluice_lb_be_key layout");
_Static_assert(sizeof(struct sluice_lb_be) == 20, "sluice_lb_be layout");
_Static_assert(sizeof(struct sluice_lb_sock_key) == 32, "sluice_lb_sock_key layout");
_Static_assert(sizeof(struct sluice_lb_sock) == 24, "sluice_lb_sock layout");
#endif
