// Reachability probes from inside a network namespace (`sluice test --live`):
// a TCP connect or a connected-UDP send-and-wait, with a timeout, on a libuv
// worker (whose helper thread enters the netns, netns.h), so the event loop
// never blocks and several probes overlap. The outcome is a value, never an
// exception: only a probe that could not be attempted at all (no such netns,
// no socket) rejects.
//
//   TCP  connected | refused (an RST: the SYN got through) | timeout | error
//   UDP  reply | refused (ICMP port unreachable) | timeout | error
//
// "error" carries the errno name (EHOSTUNREACH, ENETUNREACH, …): the network
// answered something policy never says.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "addon.h"
#include "netns.h"

namespace sluice {
namespace {

constexpr char kPayload[] = "sluice-probe\n";

struct ProbeSpec {
  std::optional<std::string> netns;
  bool tcp = true;
  sockaddr_storage addr{};
  socklen_t addrLen = 0;
  int timeoutMs = 1000;
};

struct ProbeResult {
  std::string outcome;
  std::string error;  // errno name when outcome is "error"
  int localPort = 0;
};

// poll() for `events` until the deadline, across EINTR: >0 ready, 0 timed out, <0 errno.
int PollUntil(int fd, short events, int64_t deadline, short* revents) {
  for (;;) {
    int64_t left = deadline - static_cast<int64_t>(MonotonicMs());
    if (left <= 0) return 0;
    pollfd p{fd, events, 0};
    int r = poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -errno;
    *revents = p.revents;
    return r;
  }
}

int LocalPort(int fd) {
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) < 0) return 0;
  return ntohs(ss.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
}

void SetOutcome(ProbeResult* out, int err, const char* ok) {
  if (err == 0) out->outcome = ok;
  else if (err == ECONNREFUSED) out->outcome = "refused";
  else if (err == ETIMEDOUT) out->outcome = "timeout";
  else {
    out->outcome = "error";
    out->error = ErrnoName(err);
  }
}

int SocketError(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return errno;
  return err;
}

// Runs in the pod's netns (helper thread). A SysError only when nothing could be tried.
SysError RunProbe(const ProbeSpec& spec, ProbeResult* out) {
  const int64_t deadline = static_cast<int64_t>(MonotonicMs()) + spec.timeoutMs;
  int fd = socket(spec.addr.ss_family, (spec.tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return SysError::Make(errno, "socket", "");
  int r = connect(fd, reinterpret_cast<const sockaddr*>(&spec.addr), spec.addrLen);
  int err = r < 0 ? errno : 0;
  out->localPort = LocalPort(fd);
  short revents = 0;
  if (spec.tcp) {
    if (err == EINPROGRESS) {
      int p = PollUntil(fd, POLLOUT, deadline, &revents);
      err = p == 0 ? ETIMEDOUT : p < 0 ? -p : SocketError(fd);
    }
    SetOutcome(out, err, "connected");
  } else if (err != 0) {
    SetOutcome(out, err, "reply");
  } else if (send(fd, kPayload, sizeof kPayload - 1, 0) < 0) {
    SetOutcome(out, errno, "reply");
  } else {
    int p = PollUntil(fd, POLLIN, deadline, &revents);
    if (p == 0) {
      err = ETIMEDOUT;
    } else if (p < 0) {
      err = -p;
    } else {
      char buf[64];
      // An ICMP error queued on the socket comes back from recv() as its errno.
      err = recv(fd, buf, sizeof buf, MSG_DONTWAIT) < 0 ? errno : 0;
    }
    SetOutcome(out, err, "reply");
  }
  close(fd);
  return SysError::Ok();
}

class ProbeWorker : public Napi::AsyncWorker {
 public:
  ProbeWorker(Napi::Env env, ProbeSpec spec)
      : Napi::AsyncWorker(env, "sluice:probe"), deferred_(Napi::Promise::Deferred::New(env)), spec_(std::move(spec)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    error_ = RunInNetns(spec_.netns, [this]() { return RunProbe(spec_, &result_); });
  }
  void OnOK() override {
    Napi::Env env = Env();
    if (!error_.ok()) {
      deferred_.Reject(NewSysError(env, error_));
      return;
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("outcome", result_.outcome);
    if (!result_.error.empty()) o.Set("error", result_.error);
    o.Set("localPort", result_.localPort);
    deferred_.Resolve(o);
  }

 private:
  Napi::Promise::Deferred deferred_;
  ProbeSpec spec_;
  SysError error_;
  ProbeResult result_;
};

// probe(netns | null, family: 4|6, protocol: 'tcp'|'udp', address, port, timeoutMs) → Promise<{outcome, error?, localPort}>
Napi::Value Probe(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  ProbeSpec spec;
  int64_t family = 0, port = 0, timeoutMs = 0;
  std::string protocol, address;
  if (!a.Netns(0, &spec.netns) || !a.Int(1, "family", 4, 6, &family) || !a.Str(2, "protocol", &protocol) || !a.Str(3, "address", &address) ||
      !a.Int(4, "port", 1, 65535, &port) || !a.Int(5, "timeoutMs", 1, 60000, &timeoutMs)) {
    return env.Undefined();
  }
  if (family != 4 && family != 6) return ThrowType(env, "argument 'family' must be 4 or 6");
  if (protocol != "tcp" && protocol != "udp") return ThrowType(env, "argument 'protocol' must be 'tcp' or 'udp'");
  spec.tcp = protocol == "tcp";
  spec.timeoutMs = static_cast<int>(timeoutMs);
  if (!SockAddr(env, family, address, port, &spec.addr, &spec.addrLen)) return env.Undefined();
  auto* worker = new ProbeWorker(env, std::move(spec));
  Napi::Promise promise = worker->Promise();
  worker->Queue();  // deletes itself after OnOK
  return promise;
}

}  // namespace

void RegisterProbe(Napi::Env env, Napi::Object exports) {
  exports.Set("probe", Napi::Function::New(env, Probe, "probe"));
}

}  // namespace sluice
