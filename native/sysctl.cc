// sysctl read/write through /proc/sys. Files under /proc/sys/net resolve to
// the network namespace of the task that opens them, so the open happens on
// the netns helper thread.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "addon.h"
#include "netns.h"

namespace sluice {
namespace {

// "net/ipv4/conf/eth0/proxy_arp": relative, no empty, "." or ".." segments.
bool KeyArg(Args& a, size_t i, std::string* path) {
  std::string key;
  if (!a.Str(i, "key", &key)) return false;
  bool ok = !key.empty() && key.front() != '/' && key.back() != '/';
  for (size_t start = 0; ok && start <= key.size();) {
    size_t end = key.find('/', start);
    if (end == std::string::npos) end = key.size();
    std::string seg = key.substr(start, end - start);
    if (seg.empty() || seg == "." || seg == "..") ok = false;
    start = end + 1;
  }
  if (!ok) {
    ThrowType(a.env(), "argument 'key' must be a relative /proc/sys path like net/ipv4/ip_forward, got '" + key + "'");
    return false;
  }
  *path = "/proc/sys/" + key;
  return true;
}

Napi::Value SysctlWrite(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  std::optional<std::string> netns;
  std::string path, value;
  if (!a.Netns(0, &netns) || !KeyArg(a, 1, &path) || !a.Str(2, "value", &value)) return env.Undefined();
  SysError e = RunInNetns(netns, [&]() {
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return SysError::Make(errno, "open", path);
    // A sysctl takes its value in one write.
    ssize_t n;
    do {
      n = write(fd, value.data(), value.size());
    } while (n < 0 && errno == EINTR);
    int err = errno;
    close(fd);
    if (n < 0) return SysError::Make(err, "write", path);
    if (static_cast<size_t>(n) != value.size()) return SysError::Make(EIO, "write", path + ": short write");
    return SysError::Ok();
  });
  if (!e.ok()) return ThrowSys(env, e);
  return env.Undefined();
}

Napi::Value SysctlRead(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  std::optional<std::string> netns;
  std::string path, value;
  if (!a.Netns(0, &netns) || !KeyArg(a, 1, &path)) return env.Undefined();
  bool missing = false;
  SysError e = RunInNetns(netns, [&]() {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) {
        missing = true;
        return SysError::Ok();
      }
      return SysError::Make(errno, "open", path);
    }
    char buf[4096];
    for (;;) {
      ssize_t n = read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int err = errno;
        close(fd);
        return SysError::Make(err, "read", path);
      }
      if (n == 0) break;
      value.append(buf, static_cast<size_t>(n));
    }
    close(fd);
    return SysError::Ok();
  });
  if (!e.ok()) return ThrowSys(env, e);
  if (missing) return env.Undefined();
  if (!value.empty() && value.back() == '\n') value.pop_back();
  return Napi::String::New(env, value);
}

}  // namespace

void RegisterSysctl(Napi::Env env, Napi::Object exports) {
  exports.Set("sysctlWrite", Napi::Function::New(env, SysctlWrite, "sysctlWrite"));
  exports.Set("sysctlRead", Napi::Function::New(env, SysctlRead, "sysctlRead"));
}

}  // namespace sluice
