// SPDX-License-Identifier: Apache-2.0
/*
 * sluice-cni: the CNI plugin binary the container runtime executes per pod.
 *
 * Node.js needs ~50 ms just to start (measured in bench/cni-startup), 25x the
 * whole run of the reference Go plugins, so this binary is a thin native front:
 *
 *   VERSION      answered here, without the agent.
 *   everything   forwarded to the node's agent over its unix socket; the
 *   else         CNI handlers (TypeScript, src/cni) run inside the agent, which
 *                already holds the addon, the IPAM and the policy. The agent
 *                runs in the host's mount and PID namespaces, so CNI_NETNS
 *                resolves the same there.
 *   agent down   DEL still succeeds: the pod-side veth is deleted here (that
 *                removes the pair) and the release is queued under the state
 *                dir for the agent to apply when it starts. STATUS fails with
 *                50, other commands with 11 (try again later).
 *
 * Wire format (SLUICE-CNI/1), request: "SLUICE-CNI/1\0", then "KEY=VALUE\0"
 * for each CNI_* variable that is set, then "\0", then stdin verbatim; the
 * client then shuts down its write side. Response: the exit status in ASCII,
 * "\n", then stdout verbatim, then EOF. Kept in step with src/cni/wire.ts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/if.h>

#define WIRE_MAGIC "SLUICE-CNI/1"
#define DEFAULT_SOCKET "/run/sluice/agent.sock"
#define DEFAULT_STATE_DIR "/var/lib/sluice"
#define SUPPORTED "[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]"
#define CURRENT_VERSION "1.1.0"
#define MAX_CONFIG_BYTES (1 << 20)
/* kubelet gives a whole sandbox setup minutes; an ADD that has not been
 * answered in this long is stuck, and the runtime will retry. */
#define AGENT_TIMEOUT_SECONDS 120

/* CNI spec error codes used here. */
enum { CNI_ERR_INVALID_ENV = 4, CNI_ERR_IO = 5, CNI_ERR_DECODE = 6, CNI_ERR_INVALID_CONFIG = 7, CNI_ERR_TRY_AGAIN = 11,
       CNI_ERR_UNAVAILABLE = 50 };

static const char *const forwarded_env[] = {
	"CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH",
};

struct buf {
	char *data;
	size_t len, cap;
};

static int buf_append(struct buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *d = realloc(b->data, cap);
		if (!d)
			return -1;
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

/* ------------------------------------------------------------ JSON bits */

/* Finds a string value of a top-level key of the config object. Enough JSON
 * to skip nested values and escapes; anything else it cannot follow yields
 * "not found", and the agent (which parses properly) reports the error. */
static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/* Parses a JSON string at p (pointing at '"') into out; returns the char
 * after the closing quote or NULL. Only \" \\ \/ and \uXXXX < 0x80 decode. */
static const char *parse_string(const char *p, char *out, size_t out_size)
{
	size_t n = 0;

	if (*p++ != '"')
		return NULL;
	for (; *p && *p != '"'; p++) {
		char c = *p;
		if (c == '\\') {
			p++;
			switch (*p) {
			case '"': case '\\': case '/': c = *p; break;
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case 'u': {
				unsigned v;
				if (sscanf(p + 1, "%4x", &v) != 1 || v >= 0x80)
					return NULL;
				c = (char)v;
				p += 4;
				break;
			}
			default: return NULL;
			}
		}
		if (out && n + 1 < out_size)
			out[n++] = c;
		else if (out)
			return NULL; /* too long for our purposes */
	}
	if (*p != '"')
		return NULL;
	if (out)
		out[n] = '\0';
	return p + 1;
}

static const char *skip_value(const char *p)
{
	int depth = 0;

	p = skip_ws(p);
	do {
		if (*p == '"') {
			p = parse_string(p, NULL, 0);
			if (!p)
				return NULL;
			continue;
		}
		if (*p == '{' || *p == '[')
			depth++;
		else if (*p == '}' || *p == ']')
			depth--;
		else if (*p == '\0')
			return NULL;
		p++;
	} while (depth > 0 || (*p != ',' && *p != '}' && *p != '\0'));
	return p;
}

/* Returns 0 and fills out, -1 when the key is absent (or the JSON is beyond
 * this scanner), -2 when the key is there but not a string that fits. out is
 * untouched unless 0 is returned. */
static int config_string(const char *json, const char *key, char *out, size_t out_size)
{
	char name[64], value[512];
	const char *p = skip_ws(json);

	if (out_size > sizeof(value))
		out_size = sizeof(value);
	if (*p++ != '{')
		return -1;
	for (;;) {
		p = skip_ws(p);
		if (*p != '"')
			return -1;
		p = parse_string(p, name, sizeof(name));
		if (!p)
			return -1;
		p = skip_ws(p);
		if (*p++ != ':')
			return -1;
		p = skip_ws(p);
		if (strcmp(name, key) == 0) {
			if (*p != '"' || !parse_string(p, value, out_size))
				return -2;
			memcpy(out, value, strlen(value) + 1);
			return 0;
		}
		p = skip_value(p);
		if (!p)
			return -1;
		p = skip_ws(p);
		if (*p++ != ',')
			return -1;
	}
}

/* Strict JSON syntax check (RFC 8259), so an undecodable config is reported
 * as such (code 6) whether or not the agent is up. Depth-limited. */
#define JSON_MAX_DEPTH 64

static const char *json_value(const char *p, int depth);

static const char *json_string_end(const char *p)
{
	if (*p++ != '"')
		return NULL;
	for (; *p != '"'; p++) {
		if ((unsigned char)*p < 0x20)
			return NULL; /* includes the terminating NUL */
		if (*p == '\\') {
			p++;
			if (*p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f') || (p[i] >= 'A' && p[i] <= 'F')))
						return NULL;
				p += 4;
			} else if (!strchr("\"\\/bfnrt", *p) || !*p) {
				return NULL;
			}
		}
	}
	return p + 1;
}

static const char *json_number_end(const char *p)
{
	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (*p >= '0' && *p <= '9')
			p++;
	else
		return NULL;
	if (*p == '.') {
		p++;
		if (!(*p >= '0' && *p <= '9'))
			return NULL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!(*p >= '0' && *p <= '9'))
			return NULL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	return p;
}

static const char *json_value(const char *p, int depth)
{
	p = skip_ws(p);
	if (depth > JSON_MAX_DEPTH)
		return NULL;
	if (*p == '{' || *p == '[') {
		char close = *p == '{' ? '}' : ']';
		int object = *p == '{';
		p = skip_ws(p + 1);
		if (*p == close)
			return p + 1;
		for (;;) {
			if (object) {
				p = json_string_end(skip_ws(p));
				if (!p)
					return NULL;
				p = skip_ws(p);
				if (*p++ != ':')
					return NULL;
			}
			p = json_value(p, depth + 1);
			if (!p)
				return NULL;
			p = skip_ws(p);
			if (*p == close)
				return p + 1;
			if (*p++ != ',')
				return NULL;
		}
	}
	if (*p == '"')
		return json_string_end(p);
	if (strncmp(p, "true", 4) == 0)
		return p + 4;
	if (strncmp(p, "false", 5) == 0)
		return p + 5;
	if (strncmp(p, "null", 4) == 0)
		return p + 4;
	return json_number_end(p);
}

/* 0 when `text` (of `len` bytes) is one JSON object and nothing else. */
static int json_object_valid(const char *text, size_t len)
{
	const char *end;

	if (strlen(text) != len)
		return -1; /* an embedded NUL */
	if (*skip_ws(text) != '{')
		return -1;
	end = json_value(text, 0);
	return end && *skip_ws(end) == '\0' ? 0 : -1;
}

static void json_escaped(FILE *f, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
}

static const char *answer_version(const char *config)
{
	static char v[16];
	static const char *const ok[] = { "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0" };

	if (config_string(config, "cniVersion", v, sizeof(v)) == 0)
		for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
			if (strcmp(v, ok[i]) == 0)
				return v;
	return CURRENT_VERSION;
}

static int fail(const char *config, int code, const char *details_fmt, ...)
{
	static const char *const messages[] = {
		[CNI_ERR_INVALID_ENV] = "invalid environment",
		[CNI_ERR_IO] = "I/O failure",
		[CNI_ERR_DECODE] = "failed to decode network configuration",
		[CNI_ERR_INVALID_CONFIG] = "invalid network configuration",
		[CNI_ERR_TRY_AGAIN] = "the sluice agent is unavailable; try again later",
		[CNI_ERR_UNAVAILABLE] = "the sluice agent is unreachable",
	};
	char details[512];
	va_list ap;

	va_start(ap, details_fmt);
	vsnprintf(details, sizeof(details), details_fmt, ap);
	va_end(ap);
	printf("{\"cniVersion\":\"%s\",\"code\":%d,\"msg\":\"%s\",\"details\":\"", answer_version(config), code,
	       messages[code]);
	json_escaped(stdout, details);
	printf("\"}\n");
	return 1;
}

/* ------------------------------------------------------------ agent down */

/* Deletes link `ifname` inside the netns open at `netns_fd`. Deleting either
 * end of a veth pair removes both, wherever the host side lives. */
static int delete_pod_link(int netns_fd, const char *ifname)
{
	struct {
		struct nlmsghdr nh;
		struct ifinfomsg ifi;
		char attrs[64];
	} req;
	struct rtattr *rta;
	char reply[1024];
	int fd, err = 0;
	size_t name_len = strlen(ifname) + 1;

	if (name_len > IFNAMSIZ)
		return -EINVAL;
	/* This process is single-threaded and exits right after: entering the
	 * pod's netns for good is harmless. */
	if (setns(netns_fd, CLONE_NEWNET) < 0)
		return -errno;
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return -errno;
	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_type = RTM_DELLINK;
	req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	req.nh.nlmsg_seq = 1;
	req.ifi.ifi_family = AF_UNSPEC;
	rta = (struct rtattr *)req.attrs;
	rta->rta_type = IFLA_IFNAME;
	rta->rta_len = RTA_LENGTH(name_len);
	memcpy(RTA_DATA(rta), ifname, name_len);
	req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(req.ifi)) + RTA_ALIGN(rta->rta_len);
	if (send(fd, &req, req.nh.nlmsg_len, 0) < 0) {
		err = -errno;
	} else {
		ssize_t n = recv(fd, reply, sizeof(reply), 0);
		struct nlmsghdr *nh = (struct nlmsghdr *)reply;
		if (n < 0)
			err = -errno;
		else if (n >= (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr)) && nh->nlmsg_type == NLMSG_ERROR)
			err = ((struct nlmsgerr *)NLMSG_DATA(nh))->error;
	}
	close(fd);
	return err == -ENODEV ? 0 : err;
}

static int mkdir_p(const char *path)
{
	char tmp[512];

	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return -1;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(tmp, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

/* One file per pending release: <state>/cni-pending-del/<container>.<ifname>,
 * holding the request as the agent would have received it. Written to a
 * temp name and renamed, so the agent never reads half a file. */
static int queue_release(const char *state_dir, const char *container, const char *ifname, const char *config,
			 size_t config_len)
{
	char dir[512], tmp[600], final[600];
	FILE *f;

	for (const char *p = container; *p; p++)
		if (*p == '/' || (*p == '.' && p == container))
			return -EINVAL;
	if (strchr(ifname, '/'))
		return -EINVAL;
	snprintf(dir, sizeof(dir), "%s/cni-pending-del", state_dir);
	if (mkdir_p(dir) < 0)
		return -errno;
	snprintf(final, sizeof(final), "%s/%s.%s", dir, container, ifname);
	snprintf(tmp, sizeof(tmp), "%s/.tmp.%d", dir, getpid());
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	fprintf(f, "%s%c", WIRE_MAGIC, '\0');
	for (size_t i = 0; i < sizeof(forwarded_env) / sizeof(forwarded_env[0]); i++) {
		const char *v = getenv(forwarded_env[i]);
		if (v)
			fprintf(f, "%s=%s%c", forwarded_env[i], v, '\0');
	}
	fputc('\0', f);
	fwrite(config, 1, config_len, f);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		fclose(f);
		unlink(tmp);
		return -EIO;
	}
	fclose(f);
	return rename(tmp, final) < 0 ? -errno : 0;
}

static int agent_down(const char *cmd, const char *config, size_t config_len, int netns_fd, const char *sock,
		      int connect_errno)
{
	char state_dir[400] = DEFAULT_STATE_DIR;
	const char *container = getenv("CNI_CONTAINERID");
	const char *ifname = getenv("CNI_IFNAME");
	int err;

	if (strcmp(cmd, "STATUS") == 0)
		return fail(config, CNI_ERR_UNAVAILABLE, "connect %s: %s", sock, strerror(connect_errno));
	if (strcmp(cmd, "DEL") != 0)
		return fail(config, CNI_ERR_TRY_AGAIN, "connect %s: %s", sock, strerror(connect_errno));
	if (!container || !*container || !ifname || !*ifname)
		return fail(config, CNI_ERR_INVALID_ENV, "CNI_CONTAINERID and CNI_IFNAME are required for DEL");
	if (config_string(config, "stateDir", state_dir, sizeof(state_dir)) == -2)
		return fail(config, CNI_ERR_INVALID_CONFIG, "stateDir must be a string of at most %zu bytes",
			    sizeof(state_dir) - 1);
	err = queue_release(state_dir, container, ifname, config, config_len);
	if (err)
		return fail(config, CNI_ERR_IO, "queue release under %s: %s", state_dir, strerror(-err));
	if (netns_fd >= 0) {
		err = delete_pod_link(netns_fd, ifname);
		if (err)
			return fail(config, CNI_ERR_IO, "delete %s in pod netns: %s", ifname, strerror(-err));
	}
	return 0; /* DEL prints nothing on success */
}

/* ------------------------------------------------------------ forwarding */

static int send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t sent = send(fd, p, n, MSG_NOSIGNAL);

		if (sent < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += sent;
		n -= (size_t)sent;
	}
	return 0;
}

int main(void)
{
	struct buf config = { 0 }, req = { 0 }, resp = { 0 };
	char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)] = DEFAULT_SOCKET;
	const char *cmd = getenv("CNI_COMMAND");
	const char *netns = getenv("CNI_NETNS");
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = AGENT_TIMEOUT_SECONDS };
	int netns_fd = -1, fd, err, status;
	char chunk[65536];
	ssize_t n;

	while ((n = read(0, chunk, sizeof(chunk))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break; /* no stdin at all: the agent reports a decode error */
		}
		if (config.len + (size_t)n > MAX_CONFIG_BYTES)
			return fail("", CNI_ERR_DECODE, "network configuration larger than %d bytes", MAX_CONFIG_BYTES);
		if (buf_append(&config, chunk, (size_t)n) < 0)
			return fail("", CNI_ERR_IO, "out of memory");
	}
	if (!config.data && buf_append(&config, "", 0) < 0)
		return fail("", CNI_ERR_IO, "out of memory");

	if (!cmd || !*cmd)
		return fail(config.data, CNI_ERR_INVALID_ENV, "CNI_COMMAND is not set");
	/* VERSION may come without a config; everything else is decoded here
	 * first. An empty stdin goes on to the agent, which says what is missing. */
	if (config.len > 0 && json_object_valid(config.data, config.len) != 0) {
		if (strcmp(cmd, "VERSION") != 0)
			return fail("", CNI_ERR_DECODE, "stdin is not a JSON object");
	}
	if (strcmp(cmd, "VERSION") == 0) {
		printf("{\"cniVersion\":\"%s\",\"supportedVersions\":" SUPPORTED "}\n", answer_version(config.data));
		return 0;
	}

	if (config_string(config.data, "agentSocket", sock_path, sizeof(sock_path)) == -2)
		return fail(config.data, CNI_ERR_INVALID_CONFIG, "agentSocket must be a string of at most %zu bytes",
			    sizeof(sock_path) - 1);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail(config.data, CNI_ERR_IO, "socket: %s", strerror(errno));
	memcpy(addr.sun_path, sock_path, strlen(sock_path) + 1);
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int connect_errno = errno;
		/* A netns that is already gone is normal for DEL. */
		if (netns && *netns)
			netns_fd = open(netns, O_RDONLY | O_CLOEXEC);
		return agent_down(cmd, config.data, config.len, netns_fd, sock_path, connect_errno);
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));

	buf_append(&req, WIRE_MAGIC, sizeof(WIRE_MAGIC)); /* with its NUL */
	for (size_t i = 0; i < sizeof(forwarded_env) / sizeof(forwarded_env[0]); i++) {
		const char *v = getenv(forwarded_env[i]);
		if (!v)
			continue;
		buf_append(&req, forwarded_env[i], strlen(forwarded_env[i]));
		buf_append(&req, "=", 1);
		buf_append(&req, v, strlen(v) + 1);
	}
	buf_append(&req, "", 1);
	if (buf_append(&req, config.data, config.len) < 0)
		return fail(config.data, CNI_ERR_IO, "out of memory");
	err = send_all(fd, req.data, req.len);
	if (err)
		return fail(config.data, CNI_ERR_TRY_AGAIN, "send to agent at %s: %s", sock_path, strerror(-err));
	shutdown(fd, SHUT_WR);

	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return fail(config.data, CNI_ERR_TRY_AGAIN, "read from agent at %s: %s", sock_path,
				    strerror(errno));
		}
		if (buf_append(&resp, chunk, (size_t)n) < 0)
			return fail(config.data, CNI_ERR_IO, "out of memory");
	}
	{
		char *nl = resp.data ? memchr(resp.data, '\n', resp.len) : NULL;
		char *end;
		if (!nl)
			return fail(config.data, CNI_ERR_TRY_AGAIN, "the agent at %s closed the connection without an answer",
				    sock_path);
		*nl = '\0';
		status = (int)strtol(resp.data, &end, 10);
		if (end == resp.data || *end != '\0' || status < 0 || status > 255)
			return fail(config.data, CNI_ERR_IO, "malformed answer from the agent at %s", sock_path);
		fwrite(nl + 1, 1, resp.len - (size_t)(nl + 1 - resp.data), stdout);
	}
	return status;
}
