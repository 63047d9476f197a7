// A bound socket for an address the node does not own as an interface
// address: the DNS proxy's addresses are reached through `local` routes only
// (so the kernel never picks them as the source of the node's own traffic),
// and binding such an address needs IP_FREEBIND / IPV6_FREEBIND, which Node's
// own sockets cannot set before bind. The fd is handed to Node
// (dgram `bind({ fd })`, net `listen({ fd })`), which owns it from then on.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <initializer_list>

#include "addon.h"
#include "netns.h"

namespace sluice {

bool SockAddr(Napi::Env env, int64_t family, const std::string& address, int64_t port, sockaddr_storage* ss, socklen_t* len) {
  memset(ss, 0, sizeof *ss);
  auto* sin = reinterpret_cast<sockaddr_in*>(ss);
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(ss);
  if (family != 6 && inet_pton(AF_INET, address.c_str(), &sin->sin_addr) == 1) {
    sin->sin_family = AF_INET;
    sin->sin_port = htons(static_cast<uint16_t>(port));
    *len = sizeof *sin;
    return true;
  }
  if (family != 4 && inet_pton(AF_INET6, address.c_str(), &sin6->sin6_addr) == 1) {
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(static_cast<uint16_t>(port));
    *len = sizeof *sin6;
    return true;
  }
  ThrowType(env, family == 4 ? "argument 'address' must be an IPv4 address" : family == 6 ? "argument 'address' must be an IPv6 address" : "argument 'address' is not an IP address");
  return false;
}

namespace {


// A socket option to set before bind: level, name, value, and its name for errors.
struct SockOpt {
  int level, name;
  uint32_t value;
  const char* what;
};

// A non-blocking socket with `opts` set, bound to address:port; the fd, or a thrown SysError.
Napi::Value BoundSocket(Napi::Env env, int64_t family, int type, const std::string& address, int64_t port, std::initializer_list<SockOpt> opts) {
  sockaddr_storage ss;
  socklen_t len;
  if (!SockAddr(env, family, address, port, &ss, &len)) return env.Undefined();
  int fd = socket(family == 4 ? AF_INET : AF_INET6, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return ThrowSys(env, SysError::Make(errno, "socket", address));
  auto fail = [&](const char* what) {
    int err = errno;
    close(fd);
    return ThrowSys(env, SysError::Make(err, what, address));
  };
  for (const SockOpt& o : opts) {
    if (setsockopt(fd, o.level, o.name, &o.value, sizeof o.value) < 0) return fail(o.what);
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) < 0) return fail("bind");
  return Napi::Number::New(env, fd);
}

// socketBind(family: 4|6, type: 'udp'|'tcp', address, port) → fd
Napi::Value SocketBind(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  int64_t family = 0, port = 0;
  std::string type, address;
  if (!a.Int(0, "family", 4, 6, &family) || !a.Str(1, "type", &type) || !a.Str(2, "address", &address) ||
      !a.Int(3, "port", 0, 65535, &port)) {
    return env.Undefined();
  }
  if (family != 4 && family != 6) return ThrowType(env, "argument 'family' must be 4 or 6");
  if (type != "udp" && type != "tcp") return ThrowType(env, "argument 'type' must be 'udp' or 'tcp'");
  int sockType = type == "udp" ? SOCK_DGRAM : SOCK_STREAM;
  if (family == 4) {
    return BoundSocket(env, family, sockType, address, port,
                       {{IPPROTO_IP, IP_FREEBIND, 1, "setsockopt(IP_FREEBIND)"}, {SOL_SOCKET, SO_REUSEADDR, 1, "setsockopt(SO_REUSEADDR)"}});
  }
  return BoundSocket(env, family, sockType, address, port,
                     {{IPPROTO_IPV6, IPV6_FREEBIND, 1, "setsockopt(IPV6_FREEBIND)"},
                      {IPPROTO_IPV6, IPV6_V6ONLY, 1, "setsockopt(IPV6_V6ONLY)"},
                      {SOL_SOCKET, SO_REUSEADDR, 1, "setsockopt(SO_REUSEADDR)"}});
}

// socketTransparent(family: 4|6, address, mark) → fd: a UDP socket that sends
// from `address` (not the node's: a pod's) on a kernel-chosen port, marked
// with SO_MARK `mark` so the datapath recognises the answers coming back
// (bpf/shared/dns.h). IP_TRANSPARENT needs CAP_NET_ADMIN.
Napi::Value SocketTransparent(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  int64_t family = 0;
  uint32_t mark = 0;
  std::string address;
  if (!a.Int(0, "family", 4, 6, &family) || !a.Str(1, "address", &address) || !a.U32(2, "mark", &mark)) return env.Undefined();
  if (family != 4 && family != 6) return ThrowType(env, "argument 'family' must be 4 or 6");
  if (family == 4) {
    return BoundSocket(env, family, SOCK_DGRAM, address, 0,
                       {{IPPROTO_IP, IP_TRANSPARENT, 1, "setsockopt(IP_TRANSPARENT)"}, {SOL_SOCKET, SO_MARK, mark, "setsockopt(SO_MARK)"}});
  }
  return BoundSocket(env, family, SOCK_DGRAM, address, 0,
                     {{IPPROTO_IPV6, IPV6_TRANSPARENT, 1, "setsockopt(IPV6_TRANSPARENT)"},
                      {IPPROTO_IPV6, IPV6_V6ONLY, 1, "setsockopt(IPV6_V6ONLY)"},
                      {SOL_SOCKET, SO_MARK, mark, "setsockopt(SO_MARK)"}});
}

// netnsCookie(netnsPath | null) → the namespace's cookie (SO_NETNS_COOKIE), as a decimal string
// (a u64): what bpf_get_netns_cookie() returns for that namespace's sockets.
Napi::Value NetnsCookie(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  std::optional<std::string> netns;
  if (!a.Netns(0, &netns)) return env.Undefined();
  uint64_t cookie = 0;
  SysError e = RunInNetns(netns, [&]() {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return SysError::Make(errno, "socket", "");
    socklen_t len = sizeof cookie;
    int r = getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len);
    int err = errno;
    close(fd);
    return r < 0 ? SysError::Make(err, "getsockopt(SO_NETNS_COOKIE)", "") : SysError::Ok();
  });
  if (!e.ok()) return ThrowSys(env, e);
  return Napi::String::New(env, std::to_string(cookie));
}

}  // namespace

void RegisterSock(Napi::Env env, Napi::Object exports) {
  exports.Set("socketBind", Napi::Function::New(env, SocketBind, "socketBind"));
  exports.Set("netnsCookie", Napi::Function::New(env, NetnsCookie, "netnsCookie"));
  exports.Set("socketTransparent", Napi::Function::New(env, SocketTransparent, "socketTransparent"));
}

}  // namespace sluice
