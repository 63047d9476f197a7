// Running work inside another network namespace without ever moving the JS
// main thread: the work runs on a short-lived helper thread that setns()es
// into the target namespace and dies afterwards (a netns change is per-thread
// and ends with the thread). The work function must not touch napi values;
// parse arguments into plain C++ data first and convert results afterwards.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "addon.h"

namespace sluice {

// With no netns, fn runs right here on the calling thread (the caller's
// current netns). Otherwise it runs on a fresh thread inside `netns` (a path
// such as /var/run/netns/foo or /proc/<pid>/ns/net); a missing path is
// ENOENT with syscall "open".
SysError RunInNetns(const std::optional<std::string>& netns, const std::function<SysError()>& fn);

// Opens a netns path (for IFLA_NET_NS_FD); returns the fd or a SysError.
SysError OpenNetns(const std::string& path, int* fd);

// if_nametoindex in the current thread's netns; a missing link is ENODEV
// with syscall "if_nametoindex" and the name in details.
SysError IfIndex(const std::string& name, int* ifindex);

}  // namespace sluice
