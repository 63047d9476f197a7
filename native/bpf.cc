// BPF objects, maps and programs (libbpf 1.1). Map keys and values are opaque
// Buffers; TypeScript decides what the bytes mean.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "addon.h"

namespace sluice {
namespace {

constexpr int kENOTSUPP = 524;

// Batch commands are missing for some map types (LPM trie, ...) and on old
// kernels; those report one of these on the very first call.
bool BatchUnsupported(int err) { return err == EINVAL || err == kENOTSUPP || err == EOPNOTSUPP; }

bool IsPerCpu(uint32_t type) {
  return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY ||
         type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

SysError MapInfoOf(int fd, bpf_map_info* info) {
  memset(info, 0, sizeof *info);
  __u32 len = sizeof *info;
  int r = bpf_obj_get_info_by_fd(fd, info, &len);
  if (r < 0) return SysError::Make(-r, "bpf_obj_get_info_by_fd");
  return SysError::Ok();
}

// Key and value sizes as userspace sees them (per-CPU values are one
// 8-byte-aligned slot per possible CPU).
struct Shape {
  uint32_t key_size;
  uint32_t value_size;
};

SysError ShapeOf(int fd, Shape* s) {
  bpf_map_info info;
  SysError e = MapInfoOf(fd, &info);
  if (!e.ok()) return e;
  s->key_size = info.key_size;
  s->value_size = info.value_size;
  if (IsPerCpu(info.type)) {
    int ncpus = libbpf_num_possible_cpus();
    if (ncpus < 0) return SysError::Make(-ncpus, "libbpf_num_possible_cpus");
    s->value_size = ((info.value_size + 7) / 8 * 8) * static_cast<uint32_t>(ncpus);
  }
  return SysError::Ok();
}

// The kernel reads key_size bytes from key pointers and writes value_size
// bytes into value buffers, so sizes that do not match the map would read or
// corrupt our heap. The one extra info syscall per call is the price of never
// crashing on a caller's mistake.
bool CheckSize(Napi::Env env, const char* what, uint64_t got, uint64_t want) {
  if (got == want) return true;
  ThrowRange(env, std::string(what) + " is " + std::to_string(got) + " bytes, map expects " +
                      std::to_string(want));
  return false;
}

SysError Dup(int fd, int* out) {
  *out = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (*out < 0) return SysError::Make(errno, "fcntl", "F_DUPFD_CLOEXEC");
  return SysError::Ok();
}

std::string Hex(const uint8_t* p, size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; i++) {
    s += digits[p[i] >> 4];
    s += digits[p[i] & 15];
  }
  return s;
}

// ---------------------------------------------------------------------------

Napi::Value ObjLoad(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  std::string path;
  Napi::Object opts;
  std::optional<std::string> pin_root;
  std::vector<std::pair<std::string, uint32_t>> max_entries, reuse;
  if (!a.Str(0, "path", &path) || !a.Obj(1, "opts", true, &opts) ||
      !OptStr(env, opts, "pinRoot", &pin_root) || !OptU32Record(env, opts, "maxEntries", &max_entries) ||
      !OptU32Record(env, opts, "reuseMaps", &reuse)) {
    return env.Undefined();
  }

  LibbpfLog log;
  bpf_object_open_opts oo;
  memset(&oo, 0, sizeof oo);
  oo.sz = sizeof oo;
  // Maps declared with LIBBPF_PIN_BY_NAME are reused from <pinRoot>/<name>
  // when present and compatible, otherwise created and pinned there.
  if (pin_root) oo.pin_root_path = pin_root->c_str();
  bpf_object* obj = bpf_object__open_file(path.c_str(), &oo);
  if (obj == nullptr) {
    int err = errno;
    return ThrowSys(env, SysError::Make(err, "bpf_object__open_file", path + "\n" + log.text()));
  }

  SysError e;
  auto find = [&](const std::string& name, bpf_map** m) {
    *m = bpf_object__find_map_by_name(obj, name.c_str());
    if (*m == nullptr) e = SysError::Make(ENOENT, "bpf_object__find_map_by_name", "no map '" + name + "' in " + path);
    return *m != nullptr;
  };
  for (auto& kv : max_entries) {
    bpf_map* m;
    if (!find(kv.first, &m)) break;
    int r = bpf_map__set_max_entries(m, kv.second);
    if (r < 0) {
      e = SysError::Make(-r, "bpf_map__set_max_entries", kv.first);
      break;
    }
  }
  for (size_t i = 0; e.ok() && i < reuse.size(); i++) {
    bpf_map* m;
    if (!find(reuse[i].first, &m)) break;
    // libbpf dups the fd: the caller keeps ownership of its own.
    int r = bpf_map__reuse_fd(m, static_cast<int>(reuse[i].second));
    if (r < 0) e = SysError::Make(-r, "bpf_map__reuse_fd", reuse[i].first + "\n" + log.text());
  }
  if (e.ok()) {
    int r = bpf_object__load(obj);
    // The log holds libbpf's reasons and, for a rejected program, the
    // verifier log between "-- BEGIN PROG LOAD LOG --" markers.
    if (r < 0) e = SysError::Make(-r, "bpf_object__load", log.text());
  }

  std::vector<std::pair<std::string, int>> progs, maps;
  auto dup_all = [&]() {
    bpf_program* p;
    bpf_object__for_each_program(p, obj) {
      int fd = bpf_program__fd(p);
      if (fd < 0) continue;  // not loaded (autoload off)
      int nfd;
      e = Dup(fd, &nfd);
      if (!e.ok()) return;
      progs.emplace_back(bpf_program__name(p), nfd);
    }
    bpf_map* m;
    bpf_object__for_each_map(m, obj) {
      int fd = bpf_map__fd(m);
      if (fd < 0) continue;  // not created (autocreate off)
      int nfd;
      e = Dup(fd, &nfd);
      if (!e.ok()) return;
      maps.emplace_back(bpf_map__name(m), nfd);
    }
  };
  if (e.ok()) dup_all();
  bpf_object__close(obj);
  if (!e.ok()) {
    for (auto& kv : progs) close(kv.second);
    for (auto& kv : maps) close(kv.second);
    return ThrowSys(env, e);
  }

  Napi::Object out = Napi::Object::New(env);
  Napi::Object po = Napi::Object::New(env);
  Napi::Object mo = Napi::Object::New(env);
  for (auto& kv : progs) po.Set(kv.first, kv.second);
  for (auto& kv : maps) mo.Set(kv.first, kv.second);
  out.Set("progs", po);
  out.Set("maps", mo);
  return out;
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  Args a(info);
  int fd;
  if (!a.Fd(0, &fd)) return a.env().Undefined();
  if (close(fd) != 0 && errno != EINTR) return ThrowSys(a.env(), SysError::Make(errno, "close"));
  return a.env().Undefined();
}

Napi::Value ObjPin(const Napi::CallbackInfo& info) {
  Args a(info);
  int fd;
  std::string path;
  if (!a.Fd(0, &fd) || !a.Str(1, "path", &path)) return a.env().Undefined();
  int r = bpf_obj_pin(fd, path.c_str());
  if (r < 0) return ThrowSys(a.env(), SysError::Make(-r, "bpf_obj_pin", path));
  return a.env().Undefined();
}

// cgroupLink(cgroupPath, progFd, attach: 'connect4'|'connect6'|'sendmsg4'|'sendmsg6'|'recvmsg4'|
// 'recvmsg6'|'getpeername4'|'getpeername6', pinPath) → 'created' | 'updated'. A bpf_link of the
// program on the cgroup, pinned at pinPath so it outlives the process; if a link is pinned there
// already, its program is replaced in place (no moment without one).
Napi::Value CgroupLink(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  std::string cgroup, attach, pin;
  int prog;
  if (!a.Str(0, "cgroupPath", &cgroup) || !a.Fd(1, &prog) || !a.Str(2, "attach", &attach) || !a.Str(3, "pinPath", &pin)) {
    return env.Undefined();
  }
  static const std::pair<const char*, bpf_attach_type> kTypes[] = {
      {"connect4", BPF_CGROUP_INET4_CONNECT},       {"connect6", BPF_CGROUP_INET6_CONNECT},
      {"sendmsg4", BPF_CGROUP_UDP4_SENDMSG},        {"sendmsg6", BPF_CGROUP_UDP6_SENDMSG},
      {"recvmsg4", BPF_CGROUP_UDP4_RECVMSG},        {"recvmsg6", BPF_CGROUP_UDP6_RECVMSG},
      {"getpeername4", BPF_CGROUP_INET4_GETPEERNAME}, {"getpeername6", BPF_CGROUP_INET6_GETPEERNAME},
  };
  const bpf_attach_type* type = nullptr;
  for (const auto& t : kTypes) {
    if (attach == t.first) type = &t.second;
  }
  if (!type) return ThrowType(env, "argument 'attach' must be connect4, connect6, sendmsg4, sendmsg6, recvmsg4, recvmsg6, getpeername4 or getpeername6");
  int pinned = bpf_obj_get(pin.c_str());
  if (pinned >= 0) {
    int r = bpf_link_update(pinned, prog, nullptr);
    int err = -r;
    close(pinned);
    if (r < 0) return ThrowSys(env, SysError::Make(err, "bpf_link_update", pin));
    return Napi::String::New(env, "updated");
  }
  if (-pinned != ENOENT) return ThrowSys(env, SysError::Make(-pinned, "bpf_obj_get", pin));
  int cg = open(cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cg < 0) return ThrowSys(env, SysError::Make(errno, "open", cgroup));
  int link = bpf_link_create(prog, cg, *type, nullptr);
  int err = -link;
  close(cg);
  if (link < 0) return ThrowSys(env, SysError::Make(err, "bpf_link_create", cgroup + " " + attach));
  int r = bpf_obj_pin(link, pin.c_str());
  err = -r;
  close(link);  // pinned, the link stays; not pinned, it goes with the fd
  if (r < 0) return ThrowSys(env, SysError::Make(err, "bpf_obj_pin", pin));
  return Napi::String::New(env, "created");
}

Napi::Value ObjGet(const Napi::CallbackInfo& info) {
  Args a(info);
  std::string path;
  if (!a.Str(0, "path", &path)) return a.env().Undefined();
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) {
    if (-fd == ENOENT) return a.env().Undefined();
    return ThrowSys(a.env(), SysError::Make(-fd, "bpf_obj_get", path));
  }
  return Napi::Number::New(a.env(), fd);
}

Napi::Value MapInfo(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  int fd;
  if (!a.Fd(0, &fd)) return env.Undefined();
  bpf_map_info mi;
  SysError e = MapInfoOf(fd, &mi);
  if (!e.ok()) return ThrowSys(env, e);
  Napi::Object o = Napi::Object::New(env);
  o.Set("type", mi.type);
  o.Set("keySize", mi.key_size);
  o.Set("valueSize", mi.value_size);
  o.Set("maxEntries", mi.max_entries);
  o.Set("flags", mi.map_flags);
  o.Set("id", mi.id);
  o.Set("name", std::string(mi.name, strnlen(mi.name, sizeof mi.name)));
  return o;
}

Napi::Value ProgInfo(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  int fd;
  if (!a.Fd(0, &fd)) return env.Undefined();
  bpf_prog_info pi;
  memset(&pi, 0, sizeof pi);
  __u32 len = sizeof pi;
  int r = bpf_obj_get_info_by_fd(fd, &pi, &len);
  if (r < 0) return ThrowSys(env, SysError::Make(-r, "bpf_obj_get_info_by_fd"));
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", pi.id);
  o.Set("type", pi.type);
  o.Set("name", std::string(pi.name, strnlen(pi.name, sizeof pi.name)));
  o.Set("tag", Hex(pi.tag, sizeof pi.tag));
  return o;
}

Napi::Value NumPossibleCpus(const Napi::CallbackInfo& info) {
  int n = libbpf_num_possible_cpus();
  if (n < 0) return ThrowSys(info.Env(), SysError::Make(-n, "libbpf_num_possible_cpus"));
  return Napi::Number::New(info.Env(), n);
}

// ---------------------------------------------------------------------------
// single-element map ops

Napi::Value MapLookup(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  int fd;
  const uint8_t* key;
  size_t klen;
  uint32_t vsize;
  if (!a.Fd(0, &fd) || !a.Buf(1, "key", &key, &klen) || !a.U32(2, "valueSize", &vsize)) return env.Undefined();
  Shape s;
  SysError e = ShapeOf(fd, &s);
  if (!e.ok()) return ThrowSys(env, e);
  if (!CheckSize(env, "key", klen, s.key_size) || !CheckSize(env, "valueSize", vsize, s.value_size)) {
    return env.Undefined();
  }
  std::vector<uint8_t> value(std::max<uint32_t>(vsize, 1));
  int r = bpf_map_lookup_elem(fd, key, value.data());
  if (r < 0) {
    if (-r == ENOENT) return env.Undefined();
    return ThrowSys(env, SysError::Make(-r, "bpf_map_lookup_elem"));
  }
  return Napi::Buffer<uint8_t>::Copy(env, value.data(), vsize);
}

// A map for the hot paths (the DNS proxy: a NAT lookup per query, an allow
// written per learned answer): its own duplicate of the map's fd, whose shape
// is read once. The per-call shape check above exists because an fd number
// can be closed and reused for another map; this fd is the handle's alone
// (nobody else can close it), so the shape read at creation stays true and
// each call is one syscall, not two.
//
//   new MapHandle(fd)                 dups fd
//   lookup(key, out) → boolean        the value into `out` (value_size bytes); false: no such key
//   update(key, value, flags)         throws NativeError (E2BIG: full)
//   updateBatch(keys, values, count, flags, errors: Int32Array) → how many failed
//                                     entry i is written or not on its own: errors[i] its errno, 0 = written
//   close()
class MapHandle : public Napi::ObjectWrap<MapHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "MapHandle",
                       {InstanceMethod("lookup", &MapHandle::Lookup), InstanceMethod("update", &MapHandle::Update),
                        InstanceMethod("updateBatch", &MapHandle::UpdateBatch), InstanceMethod("close", &MapHandle::Close)});
  }

  explicit MapHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<MapHandle>(info) {
    Args a(info);
    Napi::Env env = a.env();
    int fd;
    if (!a.Fd(0, &fd)) return;
    int own;
    SysError e = Dup(fd, &own);
    if (!e.ok()) {
      ThrowSys(env, e);
      return;
    }
    e = ShapeOf(own, &shape_);
    if (!e.ok()) {
      close(own);
      ThrowSys(env, e);
      return;
    }
    fd_ = own;
  }

  ~MapHandle() override {
    if (fd_ >= 0) close(fd_);
  }

 private:
  bool Open(Napi::Env env) {
    if (fd_ >= 0) return true;
    ThrowSys(env, SysError::Make(EBADF, "MapHandle", "closed"));
    return false;
  }

  Napi::Value Lookup(const Napi::CallbackInfo& info) {
    Args a(info);
    Napi::Env env = a.env();
    const uint8_t *key, *out;
    size_t klen, olen;
    if (!a.Buf(0, "key", &key, &klen) || !a.Buf(1, "out", &out, &olen) || !Open(env)) return env.Undefined();
    if (!CheckSize(env, "key", klen, shape_.key_size) || !CheckSize(env, "out", olen, shape_.value_size)) return env.Undefined();
    int r = bpf_map_lookup_elem(fd_, key, const_cast<uint8_t*>(out));
    if (r < 0) {
      if (-r == ENOENT) return Napi::Boolean::New(env, false);
      return ThrowSys(env, SysError::Make(-r, "bpf_map_lookup_elem"));
    }
    return Napi::Boolean::New(env, true);
  }

  Napi::Value Update(const Napi::CallbackInfo& info) {
    Args a(info);
    Napi::Env env = a.env();
    const uint8_t *key, *value;
    size_t klen, vlen;
    uint32_t flags;
    if (!a.Buf(0, "key", &key, &klen) || !a.Buf(1, "value", &value, &vlen) || !a.U32(2, "flags", &flags) || !Open(env)) return env.Undefined();
    if (!CheckSize(env, "key", klen, shape_.key_size) || !CheckSize(env, "value", vlen, shape_.value_size)) return env.Undefined();
    int r = bpf_map_update_elem(fd_, key, value, flags);
    if (r < 0) return ThrowSys(env, SysError::Make(-r, "bpf_map_update_elem"));
    return env.Undefined();
  }

  // The proxy's allow writes of one receive batch, in one BPF_MAP_UPDATE_BATCH.
  // The kernel writes in order and stops at the first entry it cannot write
  // (a new key in a full map), saying how many it wrote before it; the call
  // then goes on from the entry after, so every entry is tried once and one
  // that fails does not take the others with it (a refresh of a known key
  // still succeeds in a full map). Where the kernel or the map type has no
  // batch update, one update per entry.
  Napi::Value UpdateBatch(const Napi::CallbackInfo& info) {
    Args a(info);
    Napi::Env env = a.env();
    const uint8_t *keys, *values;
    size_t klen, vlen;
    uint32_t count, flags;
    if (!a.Buf(0, "keys", &keys, &klen) || !a.Buf(1, "values", &values, &vlen) || !a.U32(2, "count", &count) ||
        !a.U32(3, "flags", &flags) || !Open(env)) {
      return env.Undefined();
    }
    if (!info[4].IsTypedArray() || info[4].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
      return ThrowType(env, "argument 'errors' must be an Int32Array");
    }
    Napi::Int32Array errors = info[4].As<Napi::Int32Array>();
    const size_t ks = shape_.key_size, vs = shape_.value_size;
    // The buffers are reused and may be longer than this batch.
    if (klen < count * ks || vlen < count * vs || errors.ElementLength() < count) {
      return ThrowRange(env, "updateBatch: keys, values or errors shorter than count entries");
    }
    int32_t* err = errors.Data();
    uint32_t failed = 0;
    bool batch = true;
    for (uint32_t at = 0; at < count;) {
      if (!batch) {
        int r = bpf_map_update_elem(fd_, keys + at * ks, values + at * vs, flags);
        err[at] = r < 0 ? -r : 0;
        failed += r < 0;
        at++;
        continue;
      }
      bpf_map_batch_opts bo;
      memset(&bo, 0, sizeof bo);
      bo.sz = sizeof bo;
      bo.elem_flags = flags;
      __u32 n = count - at;
      int r = bpf_map_update_batch(fd_, keys + at * ks, values + at * vs, &n, &bo);
      if (r == 0) n = count - at;
      n = std::min<__u32>(n, count - at);
      for (uint32_t i = 0; i < n; i++) err[at + i] = 0;
      at += n;
      if (r == 0 || at == count) break;
      if (n == 0 && BatchUnsupported(-r)) {
        batch = false;
        continue;
      }
      err[at++] = -r;  // the entry the kernel stopped at
      failed++;
    }
    return Napi::Number::New(env, failed);
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    return info.Env().Undefined();
  }

  int fd_ = -1;
  Shape shape_{};
};

Napi::Value MapUpdate(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  int fd;
  const uint8_t *key, *value;
  size_t klen, vlen;
  uint32_t flags;
  if (!a.Fd(0, &fd) || !a.Buf(1, "key", &key, &klen) || !a.Buf(2, "value", &value, &vlen) ||
      !a.U32(3, "flags", &flags)) {
    return env.Undefined();
  }
  Shape s;
  SysError e = ShapeOf(fd, &s);
  if (!e.ok()) return ThrowSys(env, e);
  if (!CheckSize(env, "key", klen, s.key_size) || !CheckSize(env, "value", vlen, s.value_size)) {
    return env.Undefined();
  }
  int r = bpf_map_update_elem(fd, key, value, flags);
  if (r < 0) return ThrowSys(env, SysError::Make(-r, "bpf_map_update_elem"));
  return env.Undefined();
}

Napi::Value MapDelete(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  int fd;
  const uint8_t* key;
  size_t klen;
  if (!a.Fd(0, &fd) || !a.Buf(1, "key", &key, &klen)) return env.Undefined();
  Shape s;
  SysError e = ShapeOf(fd, &s);
  if (!e.ok()) return ThrowSys(env, e);
  if (!CheckSize(env, "key", klen, s.key_size)) return env.Undefined();
  int r = bpf_map_delete_elem(fd, key);
  if (r < 0) {
    if (-r == ENOENT) return Napi::Boolean::New(env, false);
    return ThrowSys(env, SysError::Make(-r, "bpf_map_delete_elem"));
  }
  return Napi::Boolean::New(env, true);
}

Napi::Value MapGetNextKey(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  int fd;
  const uint8_t* key = nullptr;
  size_t klen = 0;
  uint32_t ksize;
  if (!a.Fd(0, &fd)) return env.Undefined();
  if (!a.IsNullish(1) && !a.Buf(1, "key", &key, &klen)) return env.Undefined();
  if (!a.U32(2, "keySize", &ksize)) return env.Undefined();
  Shape s;
  SysError e = ShapeOf(fd, &s);
  if (!e.ok()) return ThrowSys(env, e);
  if (!CheckSize(env, "keySize", ksize, s.key_size)) return env.Undefined();
  if (key != nullptr && !CheckSize(env, "key", klen, s.key_size)) return env.Undefined();
  std::vector<uint8_t> next(std::max<uint32_t>(ksize, 1));
  int r = bpf_map_get_next_key(fd, key, next.data());
  if (r < 0) {
    if (-r == ENOENT) return env.Undefined();  // end of iteration
    return ThrowSys(env, SysError::Make(-r, "bpf_map_get_next_key"));
  }
  return Napi::Buffer<uint8_t>::Copy(env, next.data(), ksize);
}

// ---------------------------------------------------------------------------
// batch map ops

// Dump by get_next_key + lookup, for maps without batch support. Entries that
// vanish between the two calls are skipped.
SysError DumpByIteration(int fd, uint32_t ks, uint32_t vs, uint32_t max, std::vector<uint8_t>* keys,
                         std::vector<uint8_t>* values, uint32_t* count) {
  std::vector<uint8_t> prev(std::max<uint32_t>(ks, 1)), next(prev.size()), val(std::max<uint32_t>(vs, 1));
  bool first = true;
  *count = 0;
  while (*count < max) {
    int r = bpf_map_get_next_key(fd, first ? nullptr : prev.data(), next.data());
    if (r < 0) {
      if (-r == ENOENT) break;
      return SysError::Make(-r, "bpf_map_get_next_key");
    }
    first = false;
    r = bpf_map_lookup_elem(fd, next.data(), val.data());
    if (r == 0) {
      memcpy(keys->data() + static_cast<size_t>(*count) * ks, next.data(), ks);
      memcpy(values->data() + static_cast<size_t>(*count) * vs, val.data(), vs);
      (*count)++;
    } else if (-r != ENOENT) {
      return SysError::Make(-r, "bpf_map_lookup_elem");
    }
    prev.swap(next);
  }
  return SysError::Ok();
}

Napi::Value MapLookupBatch(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  int fd;
  uint32_t ks, vs, max;
  if (!a.Fd(0, &fd) || !a.U32(1, "keySize", &ks) || !a.U32(2, "valueSize", &vs) || !a.U32(3, "maxCount", &max)) {
    return env.Undefined();
  }
  Shape s;
  SysError e = ShapeOf(fd, &s);
  if (!e.ok()) return ThrowSys(env, e);
  if (!CheckSize(env, "keySize", ks, s.key_size) || !CheckSize(env, "valueSize", vs, s.value_size)) {
    return env.Undefined();
  }
  if (static_cast<uint64_t>(max) * std::max(ks, vs) > (1ull << 31)) {
    return ThrowRange(env, "maxCount * entry size exceeds 2 GiB");
  }
  std::vector<uint8_t> keys(static_cast<size_t>(max) * ks + 1), values(static_cast<size_t>(max) * vs + 1);
  // Opaque resume tokens; some map types use a key-sized cursor.
  std::vector<uint8_t> in_tok(std::max<uint32_t>(ks, 8)), out_tok(in_tok.size());
  bpf_map_batch_opts bo;
  memset(&bo, 0, sizeof bo);
  bo.sz = sizeof bo;

  uint32_t total = 0;
  bool first = true;
  while (total < max) {
    __u32 n = max - total;
    int r = bpf_map_lookup_batch(fd, first ? nullptr : in_tok.data(), out_tok.data(),
                                 keys.data() + static_cast<size_t>(total) * ks,
                                 values.data() + static_cast<size_t>(total) * vs, &n, &bo);
    int err = r < 0 ? -r : 0;
    if (err != 0 && err != ENOENT) {
      if (first && total == 0 && BatchUnsupported(err)) {
        e = DumpByIteration(fd, ks, vs, max, &keys, &values, &total);
        if (!e.ok()) return ThrowSys(env, e);
        break;
      }
      // ENOSPC: the next hash bucket does not fit in what is left of
      // maxCount; return what we have.
      if (err == ENOSPC) break;
      return ThrowSys(env, SysError::Make(err, "bpf_map_lookup_batch"));
    }
    total += n;
    if (err == ENOENT) break;  // end of map (n may still be > 0)
    in_tok.swap(out_tok);
    first = false;
  }

  Napi::Object o = Napi::Object::New(env);
  o.Set("keys", Napi::Buffer<uint8_t>::Copy(env, keys.data(), static_cast<size_t>(total) * ks));
  o.Set("values", Napi::Buffer<uint8_t>::Copy(env, values.data(), static_cast<size_t>(total) * vs));
  o.Set("count", total);
  return o;
}

Napi::Value MapUpdateBatch(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  int fd;
  const uint8_t *keys, *values;
  size_t klen, vlen;
  uint32_t count, flags;
  if (!a.Fd(0, &fd) || !a.Buf(1, "keys", &keys, &klen) || !a.Buf(2, "values", &values, &vlen) ||
      !a.U32(3, "count", &count) || !a.U32(4, "flags", &flags)) {
    return env.Undefined();
  }
  Shape s;
  SysError e = ShapeOf(fd, &s);
  if (!e.ok()) return ThrowSys(env, e);
  if (!CheckSize(env, "keys", klen, static_cast<uint64_t>(count) * s.key_size) ||
      !CheckSize(env, "values", vlen, static_cast<uint64_t>(count) * s.value_size)) {
    return env.Undefined();
  }
  if (count == 0) return env.Undefined();
  bpf_map_batch_opts bo;
  memset(&bo, 0, sizeof bo);
  bo.sz = sizeof bo;
  bo.elem_flags = flags;
  __u32 n = count;
  int r = bpf_map_update_batch(fd, keys, values, &n, &bo);
  if (r == 0) return env.Undefined();
  int err = -r;
  if (!(n == 0 && BatchUnsupported(err))) {
    return ThrowSys(env, SysError::Make(err, "bpf_map_update_batch",
                                        std::to_string(n) + " of " + std::to_string(count) + " updated"));
  }
  for (uint32_t i = 0; i < count; i++) {
    r = bpf_map_update_elem(fd, keys + static_cast<size_t>(i) * s.key_size,
                            values + static_cast<size_t>(i) * s.value_size, flags);
    if (r < 0) {
      return ThrowSys(env, SysError::Make(-r, "bpf_map_update_elem",
                                          std::to_string(i) + " of " + std::to_string(count) + " updated"));
    }
  }
  return env.Undefined();
}

Napi::Value MapDeleteBatch(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  int fd;
  const uint8_t* keys;
  size_t klen;
  uint32_t count;
  if (!a.Fd(0, &fd) || !a.Buf(1, "keys", &keys, &klen) || !a.U32(2, "count", &count)) return env.Undefined();
  Shape s;
  SysError e = ShapeOf(fd, &s);
  if (!e.ok()) return ThrowSys(env, e);
  if (!CheckSize(env, "keys", klen, static_cast<uint64_t>(count) * s.key_size)) return env.Undefined();
  bpf_map_batch_opts bo;
  memset(&bo, 0, sizeof bo);
  bo.sz = sizeof bo;

  // The kernel stops a delete batch at the first missing key and reports how
  // many it deleted before it; skip the missing key and carry on, so the
  // result is "how many of these keys were present".
  uint32_t deleted = 0, pos = 0;
  bool loop = false;
  while (pos < count) {
    __u32 n = count - pos;
    int r = bpf_map_delete_batch(fd, keys + static_cast<size_t>(pos) * s.key_size, &n, &bo);
    if (r == 0) {
      deleted += n;
      break;
    }
    int err = -r;
    if (err == ENOENT) {
      deleted += n;
      pos += n + 1;
      continue;
    }
    if (pos == 0 && n == 0 && BatchUnsupported(err)) {
      loop = true;
      break;
    }
    return ThrowSys(env, SysError::Make(err, "bpf_map_delete_batch"));
  }
  if (loop) {
    for (uint32_t i = 0; i < count; i++) {
      int r = bpf_map_delete_elem(fd, keys + static_cast<size_t>(i) * s.key_size);
      if (r == 0) {
        deleted++;
      } else if (-r != ENOENT) {
        return ThrowSys(env, SysError::Make(-r, "bpf_map_delete_elem"));
      }
    }
  }
  return Napi::Number::New(env, deleted);
}

// ---------------------------------------------------------------------------

Napi::Value ProgTestRun(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  int fd;
  const uint8_t* data;
  size_t dlen;
  Napi::Object opts;
  std::optional<int64_t> repeat, out_size;
  std::optional<std::vector<uint8_t>> ctx;
  if (!a.Fd(0, &fd) || !a.Buf(1, "data", &data, &dlen) || !a.Obj(2, "opts", true, &opts) ||
      !OptInt(env, opts, "repeat", 0, INT32_MAX, &repeat) ||
      !OptInt(env, opts, "dataOutSize", 0, 1 << 24, &out_size) || !OptBuf(env, opts, "ctx", &ctx)) {
    return env.Undefined();
  }
  if (dlen > UINT32_MAX) return ThrowRange(env, "data too large");
  // Room for programs that grow the packet (encapsulation) by default.
  size_t osize = out_size ? static_cast<size_t>(*out_size) : dlen + 256;
  std::vector<uint8_t> out(std::max<size_t>(osize, 1));

  bpf_test_run_opts t;
  memset(&t, 0, sizeof t);
  t.sz = sizeof t;
  t.data_in = data;
  t.data_size_in = static_cast<__u32>(dlen);
  t.data_out = out.data();
  t.data_size_out = static_cast<__u32>(osize);
  if (ctx) {
    t.ctx_in = ctx->data();
    t.ctx_size_in = static_cast<__u32>(ctx->size());
  }
  t.repeat = repeat ? static_cast<int>(*repeat) : 0;
  int r = bpf_prog_test_run_opts(fd, &t);
  if (r < 0) {
    std::string details;
    if (-r == ENOSPC) details = "output is " + std::to_string(t.data_size_out) + " bytes; raise dataOutSize";
    return ThrowSys(env, SysError::Make(-r, "bpf_prog_test_run_opts", details));
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("retval", t.retval);
  o.Set("data", Napi::Buffer<uint8_t>::Copy(env, out.data(), std::min<size_t>(t.data_size_out, osize)));
  o.Set("durationNs", t.duration);
  return o;
}

}  // namespace

void RegisterBpf(Napi::Env env, Napi::Object exports) {
  exports.Set("objLoad", Napi::Function::New(env, ObjLoad, "objLoad"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("objPin", Napi::Function::New(env, ObjPin, "objPin"));
  exports.Set("objGet", Napi::Function::New(env, ObjGet, "objGet"));
  exports.Set("cgroupLink", Napi::Function::New(env, CgroupLink, "cgroupLink"));
  exports.Set("mapInfo", Napi::Function::New(env, MapInfo, "mapInfo"));
  exports.Set("progInfo", Napi::Function::New(env, ProgInfo, "progInfo"));
  exports.Set("numPossibleCpus", Napi::Function::New(env, NumPossibleCpus, "numPossibleCpus"));
  exports.Set("mapLookup", Napi::Function::New(env, MapLookup, "mapLookup"));
  exports.Set("MapHandle", MapHandle::Define(env));
  exports.Set("mapUpdate", Napi::Function::New(env, MapUpdate, "mapUpdate"));
  exports.Set("mapDelete", Napi::Function::New(env, MapDelete, "mapDelete"));
  exports.Set("mapGetNextKey", Napi::Function::New(env, MapGetNextKey, "mapGetNextKey"));
  exports.Set("mapLookupBatch", Napi::Function::New(env, MapLookupBatch, "mapLookupBatch"));
  exports.Set("mapUpdateBatch", Napi::Function::New(env, MapUpdateBatch, "mapUpdateBatch"));
  exports.Set("mapDeleteBatch", Napi::Function::New(env, MapDeleteBatch, "mapDeleteBatch"));
  exports.Set("progTestRun", Napi::Function::New(env, ProgTestRun, "progTestRun"));
}

}  // namespace sluice
