/* A small TCP load tool for the datapath benchmark, one binary, five modes.
 * It runs inside pod network namespaces (nsenter --net=...), so it must be
 * light: two cores are shared by client, server, softirq and the agent.
 *
 *   netload server PORT_FIRST PORT_COUNT
 *       Listens on every port of the range (epoll, one thread). Each
 *       connection: echoes what it reads, closes on EOF/reset. Prints
 *       "ready" once listening; exits when stdin closes.
 *
 *   netload conn DST DPORT_FIRST DPORT_COUNT SPORT_FIRST SPORT_LAST START DURATION_MS WORKERS
 *       WORKERS threads open connections back to back for DURATION_MS:
 *       bind, connect, 1-byte request, 1-byte response, close with RST
 *       (SO_LINGER 0: no TIME_WAIT, so source ports are free again at once).
 *       Connection i (counting from START) uses source port
 *       SPORT_FIRST + i mod range and destination port
 *       DPORT_FIRST + (i / range) mod DPORT_COUNT, so 5-tuples never repeat
 *       within range * DPORT_COUNT connections: a stateful datapath never
 *       waives the policy check of a new connection on the strength of an
 *       older flow's conntrack entry. Prints one JSON line:
 *       {"ok":N,"fail":N,"seconds":S,"next":I}.
 *
 *   netload check DST DPORT SPORT TIMEOUT_MS
 *       One connect from source port SPORT: prints "ok", "refused" or
 *       "timeout" (no answer within TIMEOUT_MS: the SYN was dropped).
 *
 *   netload probe DST DPORT INTERVAL_US TIMEOUT_MS SPORT_FIRST SPORT_LAST
 *       Starts a non-blocking connect every INTERVAL_US (own source port
 *       each, walking the range) and prints "<start ns, CLOCK_MONOTONIC> ok"
 *       when the handshake completes, "<start> timeout" after TIMEOUT_MS
 *       without an answer, "<start> refused" on a reset; successful ones
 *       are closed with RST. Exits when stdin closes.
 *
 *   netload rr DST DPORT COUNT
 *       Latency: one connection (TCP_NODELAY), COUNT 1-byte request /
 *       1-byte response round trips back to back, after 100 unmeasured
 *       ones. Prints {"p50_us":X,"p99_us":Y,"n":COUNT}.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void rst_close(int fd)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

static struct sockaddr_in addr_of(const char *ip, int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	const char *text = ip ? ip : "0.0.0.0";
	if (inet_pton(AF_INET, text, &a.sin_addr) != 1) {
		fprintf(stderr, "bad address %s\n", text);
		exit(2);
	}
	return a;
}

/* ------------------------------------------------------------------ server */

static int server(int first, int count)
{
	int ep = epoll_create1(0);
	if (ep < 0) die("epoll_create1");
	/* Listening sockets are tagged with their fd + 1 << 32 in the event data. */
	for (int p = first; p < first + count; p++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		int one = 1;
		if (fd < 0) die("socket");
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		struct sockaddr_in a = addr_of(NULL, p);
		if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) die("bind");
		if (listen(fd, 4096) < 0) die("listen");
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = (1ull << 32) | (uint32_t)fd };
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
	}
	struct epoll_event in = { .events = EPOLLIN, .data.u64 = 2ull << 32 };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &in) < 0) die("epoll_ctl stdin");
	printf("ready\n");
	fflush(stdout);

	struct epoll_event evs[256];
	char buf[256];
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);
		if (n < 0) {
			if (errno == EINTR) continue;
			die("epoll_wait");
		}
		for (int i = 0; i < n; i++) {
			uint64_t tag = evs[i].data.u64 >> 32;
			int fd = (int)(uint32_t)evs[i].data.u64;
			if (tag == 2) {
				if (read(0, buf, sizeof(buf)) <= 0) return 0;
				continue;
			}
			if (tag == 1) {
				for (;;) {
					int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK);
					if (c < 0) break;
					struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.u64 = (uint32_t)c };
					if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev) < 0) close(c);
				}
				continue;
			}
			ssize_t r = read(fd, buf, sizeof(buf));
			if (r > 0) {
				if (write(fd, buf, (size_t)r) < 0 && errno != EAGAIN) close(fd);
			} else if (r == 0 || errno != EAGAIN) {
				close(fd); /* closing removes it from the epoll set */
			}
		}
	}
}

/* -------------------------------------------------------------------- conn */

struct conn_cfg {
	struct sockaddr_in dst;
	int dport_first, dport_count, sport_first, sport_range;
	uint64_t deadline;
};
static struct conn_cfg cfg;
static _Atomic uint64_t counter;
static _Atomic uint64_t ok_total, fail_total;

static int one_conn(uint64_t i)
{
	int sport = cfg.sport_first + (int)(i % (uint64_t)cfg.sport_range);
	int dport = cfg.dport_first + (int)((i / (uint64_t)cfg.sport_range) % (uint64_t)cfg.dport_count);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	if (fd < 0) return 0;
	struct timeval tv = { .tv_sec = 1 };
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct sockaddr_in src = addr_of(NULL, sport);
	struct sockaddr_in dst = cfg.dst;
	dst.sin_port = htons((uint16_t)dport);
	char b = 'x';
	int ok = bind(fd, (struct sockaddr *)&src, sizeof(src)) == 0 && connect(fd, (struct sockaddr *)&dst, sizeof(dst)) == 0 &&
		 write(fd, &b, 1) == 1 && read(fd, &b, 1) == 1;
	rst_close(fd);
	return ok;
}

static void *conn_worker(void *arg)
{
	(void)arg;
	uint64_t ok = 0, fail = 0;
	while (now_ns() < cfg.deadline) {
		if (one_conn(atomic_fetch_add(&counter, 1))) ok++;
		else fail++;
	}
	atomic_fetch_add(&ok_total, ok);
	atomic_fetch_add(&fail_total, fail);
	return NULL;
}

static int conn(char **a)
{
	cfg.dst = addr_of(a[0], 0);
	cfg.dport_first = atoi(a[1]);
	cfg.dport_count = atoi(a[2]);
	cfg.sport_first = atoi(a[3]);
	cfg.sport_range = atoi(a[4]) - cfg.sport_first + 1;
	atomic_store(&counter, strtoull(a[5], NULL, 10));
	uint64_t duration = strtoull(a[6], NULL, 10) * 1000000ull;
	int workers = atoi(a[7]);
	if (workers < 1 || workers > 64 || cfg.sport_range < 1 || cfg.dport_count < 1) {
		fprintf(stderr, "bad arguments\n");
		return 2;
	}
	uint64_t start = now_ns();
	cfg.deadline = start + duration;
	pthread_t t[64];
	for (int i = 0; i < workers; i++) pthread_create(&t[i], NULL, conn_worker, NULL);
	for (int i = 0; i < workers; i++) pthread_join(t[i], NULL);
	double seconds = (double)(now_ns() - start) / 1e9;
	printf("{\"ok\":%llu,\"fail\":%llu,\"seconds\":%.4f,\"next\":%llu}\n", (unsigned long long)ok_total, (unsigned long long)fail_total, seconds,
	       (unsigned long long)atomic_load(&counter));
	return 0;
}

/* ------------------------------------------------------------------- check */

static int check(char **a)
{
	struct sockaddr_in dst = addr_of(a[0], atoi(a[1]));
	struct sockaddr_in src = addr_of(NULL, atoi(a[2]));
	int timeout_ms = atoi(a[3]);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int one = 1;
	if (fd < 0) die("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) die("bind");
	if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 && errno != EINPROGRESS) die("connect");
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	const char *verdict = "timeout";
	if (poll(&p, 1, timeout_ms) == 1) {
		int err = 0;
		socklen_t len = sizeof(err);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
		verdict = err == 0 ? "ok" : err == ECONNREFUSED ? "refused" : strerror(err);
	}
	printf("%s\n", verdict);
	rst_close(fd);
	return 0;
}

/* ------------------------------------------------------------------- probe */

#define MAX_INFLIGHT 4096
struct attempt {
	int fd;
	uint64_t start;
};

static int probe(char **a)
{
	struct sockaddr_in dst = addr_of(a[0], atoi(a[1]));
	uint64_t interval = strtoull(a[2], NULL, 10) * 1000ull;
	uint64_t timeout = strtoull(a[3], NULL, 10) * 1000000ull;
	int sfirst = atoi(a[4]), srange = atoi(a[5]) - sfirst + 1;
	uint64_t next_port = 0;
	static struct attempt inflight[MAX_INFLIGHT];
	int ninflight = 0;
	int ep = epoll_create1(0);
	if (ep < 0) die("epoll_create1");
	struct epoll_event in = { .events = EPOLLIN, .data.u64 = UINT64_MAX };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &in) < 0) die("epoll_ctl stdin");
	setvbuf(stdout, NULL, _IOLBF, 0);
	uint64_t next = now_ns();
	struct epoll_event evs[64];
	char buf[64];

	for (;;) {
		uint64_t t = now_ns();
		if (t >= next && ninflight < MAX_INFLIGHT) {
			int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
			int one = 1;
			struct sockaddr_in src = addr_of(NULL, sfirst + (int)(next_port++ % (uint64_t)srange));
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			uint64_t started = now_ns();
			if (fd >= 0 && bind(fd, (struct sockaddr *)&src, sizeof(src)) == 0 &&
			    (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) == 0 || errno == EINPROGRESS)) {
				struct epoll_event ev = { .events = EPOLLOUT, .data.u64 = (uint64_t)ninflight };
				inflight[ninflight].fd = fd;
				inflight[ninflight].start = started;
				epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
				ninflight++;
			} else {
				printf("%llu error\n", (unsigned long long)started);
				if (fd >= 0) close(fd);
			}
			next += interval;
			if (next < t) next = t; /* fell behind: do not burst */
		}
		/* Sleep until the next attempt is due (ns precision: epoll_pwait2). */
		t = now_ns();
		uint64_t wait = next > t ? next - t : 0;
		struct timespec ts = { .tv_sec = (time_t)(wait / 1000000000ull), .tv_nsec = (long)(wait % 1000000000ull) };
		int n = epoll_pwait2(ep, evs, 64, &ts, NULL);
		if (n < 0 && errno != EINTR) die("epoll_wait");
		for (int i = 0; i < n; i++) {
			if (evs[i].data.u64 == UINT64_MAX) {
				if (read(0, buf, sizeof(buf)) <= 0) return 0;
				continue;
			}
			int slot = (int)evs[i].data.u64;
			int err = 0;
			socklen_t len = sizeof(err);
			getsockopt(inflight[slot].fd, SOL_SOCKET, SO_ERROR, &err, &len);
			printf("%llu %s\n", (unsigned long long)inflight[slot].start, err == 0 ? "ok" : err == ECONNREFUSED ? "refused" : "error");
			rst_close(inflight[slot].fd);
			inflight[slot].fd = -1;
		}
		/* Time out what got no answer; completed slots are compacted below. */
		t = now_ns();
		for (int i = 0; i < ninflight; i++) {
			if (inflight[i].fd >= 0 && t - inflight[i].start > timeout) {
				printf("%llu timeout\n", (unsigned long long)inflight[i].start);
				close(inflight[i].fd);
				inflight[i].fd = -1;
			}
		}
		/* Compact, re-registering moved slots with their new index. */
		int w = 0;
		for (int i = 0; i < ninflight; i++) {
			if (inflight[i].fd < 0) continue;
			if (w != i) {
				inflight[w] = inflight[i];
				struct epoll_event ev = { .events = EPOLLOUT, .data.u64 = (uint64_t)w };
				epoll_ctl(ep, EPOLL_CTL_MOD, inflight[w].fd, &ev);
			}
			w++;
		}
		ninflight = w;
	}
}

/* -------------------------------------------------------------------- rr */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int rr(char **a)
{
	struct sockaddr_in dst = addr_of(a[0], atoi(a[1]));
	int count = atoi(a[2]), one = 1, fd, i;
	uint64_t *lat;
	char c = 'x';

	if (count <= 0 || !(lat = calloc((size_t)count, sizeof(*lat))))
		die("count");
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		die("socket");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0)
		die("connect");
	for (i = -100; i < count; i++) {
		uint64_t t0 = now_ns();

		if (write(fd, &c, 1) != 1 || read(fd, &c, 1) != 1)
			die("round trip");
		if (i >= 0)
			lat[i] = now_ns() - t0;
	}
	qsort(lat, (size_t)count, sizeof(*lat), cmp_u64);
	printf("{\"p50_us\":%.1f,\"p99_us\":%.1f,\"n\":%d}\n", lat[count / 2] / 1e3, lat[(size_t)((count - 1) * 0.99)] / 1e3, count);
	rst_close(fd);
	free(lat);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "server") == 0) return server(atoi(argv[2]), atoi(argv[3]));
	if (argc == 10 && strcmp(argv[1], "conn") == 0) return conn(argv + 2);
	if (argc == 6 && strcmp(argv[1], "check") == 0) return check(argv + 2);
	if (argc == 8 && strcmp(argv[1], "probe") == 0) return probe(argv + 2);
	if (argc == 5 && strcmp(argv[1], "rr") == 0) return rr(argv + 2);
	fprintf(stderr,
		"usage: netload server PORT_FIRST PORT_COUNT\n"
		"       netload conn DST DPORT_FIRST DPORT_COUNT SPORT_FIRST SPORT_LAST START DURATION_MS WORKERS\n"
		"       netload check DST DPORT SPORT TIMEOUT_MS\n"
		"       netload probe DST DPORT INTERVAL_US TIMEOUT_MS SPORT_FIRST SPORT_LAST\n"
		"       netload rr DST DPORT COUNT\n");
	return 2;
}
