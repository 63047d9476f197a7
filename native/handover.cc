// Passing the DNS proxy's listening sockets from a running agent to its
// successor (src/agent/handover.ts): file descriptors travel over a unix
// stream socket as SCM_RIGHTS, so the successor holds the very sockets the
// datapath delivers queries to, with whatever the kernel queued in them.
//
//   fdDup(fd) → fd                          F_DUPFD_CLOEXEC
//   fdClose(fd)
//   handoverSend(connFd, payload, fds)      one message on a connected unix socket (the old agent)
//   handoverRequest(path, request, timeoutMs) → { payload, fds } | null
//                                           the successor: connect, ask, wait for the answer;
//                                           null when nobody listens at `path`
//
// A payload is one line of text ending in '\n'; the fds come with its first byte.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "addon.h"

namespace sluice {
namespace {

constexpr size_t kMaxFds = 32;
constexpr size_t kMaxPayload = 64 * 1024;

// Waits until fd is ready for `events` or `deadline` (monotonic ms) passes; false on timeout.
bool WaitFor(int fd, short events, int64_t deadline) {
  for (;;) {
    int64_t left = deadline - static_cast<int64_t>(MonotonicMs());
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    int r = poll(&p, 1, static_cast<int>(left));
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return true;  // let the next call report it
  }
}

Napi::Value FdDup(const Napi::CallbackInfo& info) {
  Args a(info);
  int fd = -1;
  if (!a.Fd(0, &fd)) return a.env().Undefined();
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return ThrowSys(a.env(), SysError::Make(errno, "fcntl(F_DUPFD_CLOEXEC)", std::to_string(fd)));
  return Napi::Number::New(a.env(), copy);
}

Napi::Value FdClose(const Napi::CallbackInfo& info) {
  Args a(info);
  int fd = -1;
  if (!a.Fd(0, &fd)) return a.env().Undefined();
  if (close(fd) < 0 && errno != EINTR) return ThrowSys(a.env(), SysError::Make(errno, "close", std::to_string(fd)));
  return a.env().Undefined();
}

// handoverSend(connFd, payload, fds): the whole payload, the fds attached to
// its first byte. The socket may be non-blocking (Node's): waits up to 5 s
// for room.
Napi::Value HandoverSend(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  int conn = -1;
  std::string payload;
  if (!a.Fd(0, &conn) || !a.Str(1, "payload", &payload)) return env.Undefined();
  if (!info[2].IsArray()) return ThrowType(env, "argument 'fds' must be an array of fds");
  Napi::Array arr = info[2].As<Napi::Array>();
  if (arr.Length() > kMaxFds) return ThrowRange(env, "too many fds");
  if (payload.empty() || payload.size() > kMaxPayload || payload.back() != '\n') return ThrowType(env, "argument 'payload' must be one line ending in a newline");
  std::vector<int> fds;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value v = arr.Get(i);
    if (!v.IsNumber()) return ThrowType(env, "argument 'fds' must be an array of fds");
    fds.push_back(v.As<Napi::Number>().Int32Value());
  }
  int64_t deadline = static_cast<int64_t>(MonotonicMs()) + 5000;
  size_t sent = 0;
  while (sent < payload.size()) {
    iovec iov{const_cast<char*>(payload.data()) + sent, payload.size() - sent};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    std::vector<char> control;
    if (sent == 0 && !fds.empty()) {
      control.assign(CMSG_SPACE(sizeof(int) * fds.size()), 0);
      msg.msg_control = control.data();
      msg.msg_controllen = control.size();
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    ssize_t n = sendmsg(conn, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if ((errno == EAGAIN || errno == EWOULDBLOCK) && WaitFor(conn, POLLOUT, deadline)) continue;
      return ThrowSys(env, SysError::Make(errno == EAGAIN ? ETIMEDOUT : errno, "sendmsg", "handover"));
    }
    sent += static_cast<size_t>(n);
  }
  return env.Undefined();
}

// handoverRequest(path, request, timeoutMs) → { payload, fds } | null.
// Blocking (the successor calls it before it serves anything).
Napi::Value HandoverRequest(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  std::string path, request;
  int64_t timeout = 0;
  if (!a.Str(0, "path", &path) || !a.Str(1, "request", &request) || !a.Int(2, "timeoutMs", 1, 600000, &timeout)) return env.Undefined();
  sockaddr_un sun{};
  if (path.size() >= sizeof sun.sun_path) return ThrowType(env, "argument 'path' is too long for a unix socket");
  sun.sun_family = AF_UNIX;
  memcpy(sun.sun_path, path.c_str(), path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ThrowSys(env, SysError::Make(errno, "socket", path));
  auto fail = [&](int err, const char* what) {
    close(fd);
    return ThrowSys(env, SysError::Make(err, what, path));
  };
  if (connect(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun) < 0) {
    int err = errno;
    close(fd);
    // Nobody there: no socket file, or a dead agent's.
    if (err == ENOENT || err == ECONNREFUSED) return env.Null();
    return ThrowSys(env, SysError::Make(err, "connect", path));
  }
  int64_t deadline = static_cast<int64_t>(MonotonicMs()) + timeout;
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) return fail(errno, "send");
  std::string payload;
  std::vector<int> fds;
  std::vector<char> buf(4096);
  while (payload.empty() || payload.back() != '\n') {
    if (!WaitFor(fd, POLLIN, deadline)) {
      for (int f : fds) close(f);
      return fail(ETIMEDOUT, "recvmsg");
    }
    iovec iov{buf.data(), buf.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : EPIPE;  // closed before a whole answer
      for (int f : fds) close(f);
      return fail(err, "recvmsg");
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; i++) {
        int f;
        memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
        fds.push_back(f);
      }
    }
    if (msg.msg_flags & MSG_CTRUNC) {
      for (int f : fds) close(f);
      return fail(EMSGSIZE, "recvmsg (too many fds)");
    }
    payload.append(buf.data(), static_cast<size_t>(n));
    if (payload.size() > kMaxPayload) {
      for (int f : fds) close(f);
      return fail(EMSGSIZE, "recvmsg");
    }
  }
  close(fd);
  Napi::Object out = Napi::Object::New(env);
  out.Set("payload", Napi::String::New(env, payload));
  Napi::Array arr = Napi::Array::New(env, fds.size());
  for (size_t i = 0; i < fds.size(); i++) arr.Set(static_cast<uint32_t>(i), Napi::Number::New(env, fds[i]));
  out.Set("fds", arr);
  return out;
}

}  // namespace

void RegisterHandover(Napi::Env env, Napi::Object exports) {
  exports.Set("fdDup", Napi::Function::New(env, FdDup, "fdDup"));
  exports.Set("fdClose", Napi::Function::New(env, FdClose, "fdClose"));
  exports.Set("handoverSend", Napi::Function::New(env, HandoverSend, "handoverSend"));
  exports.Set("handoverRequest", Napi::Function::New(env, HandoverRequest, "handoverRequest"));
}

}  // namespace sluice
