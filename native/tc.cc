// tc clsact attachment through libbpf's bpf_tc_* API. libbpf opens its own
// rtnetlink socket per call, so running the calls on the netns helper thread
// makes them act on that namespace.
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>

#include "addon.h"
#include "netns.h"

namespace sluice {
namespace {

struct TcArgs {
  std::optional<std::string> netns;
  std::string ifname;
  bpf_tc_attach_point point = BPF_TC_INGRESS;
  uint32_t priority = 1;
  uint32_t handle = 1;
};

// Parses (netns, ifname, direction, opts?) starting at argument 0; opts is
// argument `opts_index`.
bool ParseTc(Args& a, size_t opts_index, TcArgs* t) {
  Napi::Env env = a.env();
  std::string dir;
  if (!a.Netns(0, &t->netns) || !a.IfName(1, "ifname", &t->ifname) || !a.Str(2, "direction", &dir)) return false;
  if (dir == "ingress") {
    t->point = BPF_TC_INGRESS;
  } else if (dir == "egress") {
    t->point = BPF_TC_EGRESS;
  } else {
    ThrowType(env, "argument 'direction' must be 'ingress' or 'egress'");
    return false;
  }
  Napi::Object opts;
  std::optional<int64_t> prio, handle;
  if (!a.Obj(opts_index, "opts", true, &opts) || !OptInt(env, opts, "priority", 1, 0xffff, &prio) ||
      !OptInt(env, opts, "handle", 1, UINT32_MAX, &handle)) {
    return false;
  }
  if (prio) t->priority = static_cast<uint32_t>(*prio);
  if (handle) t->handle = static_cast<uint32_t>(*handle);
  return true;
}

bpf_tc_hook Hook(int ifindex, bpf_tc_attach_point point) {
  bpf_tc_hook h;
  memset(&h, 0, sizeof h);
  h.sz = sizeof h;
  h.ifindex = ifindex;
  h.attach_point = point;
  return h;
}

bpf_tc_opts Opts(uint32_t handle, uint32_t priority) {
  bpf_tc_opts o;
  memset(&o, 0, sizeof o);
  o.sz = sizeof o;
  o.handle = handle;
  o.priority = priority;
  return o;
}

SysError WithLog(int err, const char* fn, const TcArgs& t, const LibbpfLog& log) {
  std::string details = t.ifname;
  if (!log.text().empty()) details += "\n" + log.text();
  return SysError::Make(err, fn, details);
}

Napi::Value TcAttach(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  TcArgs t;
  int prog_fd;
  if (!ParseTc(a, 4, &t) || !a.Fd(3, &prog_fd)) return env.Undefined();
  uint32_t prog_id = 0;
  SysError e = RunInNetns(t.netns, [&]() {
    LibbpfLog log;
    int ifindex;
    SysError ie = IfIndex(t.ifname, &ifindex);
    if (!ie.ok()) return ie;
    bpf_tc_hook hook = Hook(ifindex, t.point);
    int r = bpf_tc_hook_create(&hook);  // adds the clsact qdisc
    if (r < 0 && -r != EEXIST) return WithLog(-r, "bpf_tc_hook_create", t, log);
    bpf_tc_opts o = Opts(t.handle, t.priority);
    o.prog_fd = prog_fd;
    o.flags = BPF_TC_F_REPLACE;  // atomic swap of a program at the same handle/prio
    r = bpf_tc_attach(&hook, &o);
    if (r < 0) return WithLog(-r, "bpf_tc_attach", t, log);
    prog_id = o.prog_id;
    return SysError::Ok();
  });
  if (!e.ok()) return ThrowSys(env, e);
  Napi::Object o = Napi::Object::New(env);
  o.Set("priority", t.priority);
  o.Set("handle", t.handle);
  o.Set("progId", prog_id);
  return o;
}

Napi::Value TcDetach(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  TcArgs t;
  if (!ParseTc(a, 3, &t)) return env.Undefined();
  bool removed = false;
  SysError e = RunInNetns(t.netns, [&]() {
    LibbpfLog log;
    int ifindex;
    SysError ie = IfIndex(t.ifname, &ifindex);
    if (!ie.ok()) return ie.err == ENODEV ? SysError::Ok() : ie;  // no link, nothing attached
    bpf_tc_hook hook = Hook(ifindex, t.point);
    bpf_tc_opts o = Opts(t.handle, t.priority);
    int r = bpf_tc_detach(&hook, &o);
    // ENOENT: no such filter. EINVAL: no clsact qdisc on the link at all.
    if (r < 0 && -r != ENOENT && -r != EINVAL) return WithLog(-r, "bpf_tc_detach", t, log);
    removed = r == 0;
    return SysError::Ok();
  });
  if (!e.ok()) return ThrowSys(env, e);
  return Napi::Boolean::New(env, removed);
}

Napi::Value TcQuery(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  TcArgs t;
  if (!ParseTc(a, 3, &t)) return env.Undefined();
  uint32_t prog_id = 0;
  SysError e = RunInNetns(t.netns, [&]() {
    LibbpfLog log;
    int ifindex;
    SysError ie = IfIndex(t.ifname, &ifindex);
    if (!ie.ok()) return ie.err == ENODEV ? SysError::Ok() : ie;
    bpf_tc_hook hook = Hook(ifindex, t.point);
    bpf_tc_opts o = Opts(t.handle, t.priority);
    int r = bpf_tc_query(&hook, &o);
    if (r < 0 && -r != ENOENT && -r != EINVAL) return WithLog(-r, "bpf_tc_query", t, log);
    if (r == 0) prog_id = o.prog_id;
    return SysError::Ok();
  });
  if (!e.ok()) return ThrowSys(env, e);
  if (prog_id == 0) return env.Undefined();
  return Napi::Number::New(env, prog_id);
}

}  // namespace

void RegisterTc(Napi::Env env, Napi::Object exports) {
  exports.Set("tcAttach", Napi::Function::New(env, TcAttach, "tcAttach"));
  exports.Set("tcDetach", Napi::Function::New(env, TcDetach, "tcDetach"));
  exports.Set("tcQuery", Napi::Function::New(env, TcQuery, "tcQuery"));
}

}  // namespace sluice
