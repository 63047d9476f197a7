// Module registration, the NativeError bridge, argument parsing and the env
// cleanup hook.
#include "addon.h"

#include <bpf/libbpf.h>
#include <malloc.h>

#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace sluice {

// ---------------------------------------------------------------------------
// errno naming

namespace {
// The kernel's BPF code returns ENOTSUPP (524), which is not a userspace errno
// and which glibc does not name.
constexpr int kENOTSUPP = 524;
}  // namespace

std::string ErrnoName(int err) {
  if (err == kENOTSUPP) return "ENOTSUPP";
  const char* n = strerrorname_np(err);
  if (n != nullptr) return n;
  return "E" + std::to_string(err);
}

std::string ErrnoDescription(int err) {
  if (err == kENOTSUPP) return "Operation not supported";
  char buf[128];
  // GNU strerror_r: returns a pointer that may or may not be buf.
  return strerror_r(err, buf, sizeof buf);
}

// ---------------------------------------------------------------------------
// per-env state

AddonData* Data(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

double MonotonicMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1000.0 + static_cast<double>(ts.tv_nsec) / 1e6;
}

void Resources::CloseAll() {
  for (auto& kv : rings) {
    if (kv.second->rb != nullptr) ring_buffer__free(kv.second->rb);
    delete kv.second;
  }
  rings.clear();
}

namespace {
void CleanupHook(void* arg) {
  // Runs when the env is torn down (process exit or worker termination): free
  // ring buffers (closes their epoll fd and unmaps the rings).
  auto* res = static_cast<Resources*>(arg);
  res->CloseAll();
  delete res;
}
}  // namespace

// ---------------------------------------------------------------------------
// throwing

Napi::Value ThrowType(Napi::Env env, const std::string& msg) {
  Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value ThrowRange(Napi::Env env, const std::string& msg) {
  Napi::RangeError::New(env, msg).ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value NewSysError(Napi::Env env, const SysError& e) {
  const int err = e.err != 0 ? e.err : EIO;
  const std::string code = ErrnoName(err);
  const std::string desc = ErrnoDescription(err);
  AddonData* d = Data(env);
  if (d != nullptr && !d->native_error.IsEmpty()) {
    Napi::Object init = Napi::Object::New(env);
    init.Set("code", code);
    init.Set("errno", err);
    init.Set("syscall", e.syscall);
    init.Set("details", e.details);
    init.Set("description", desc);
    return d->native_error.New({init});
  }
  // init() not called (should not happen through src/native/index.ts): still
  // give the caller the same fields on a plain Error.
  Napi::Error ex = Napi::Error::New(env, e.syscall + ": " + code + " (" + desc + ")");
  ex.Set("code", code);
  ex.Set("errno", Napi::Number::New(env, err));
  ex.Set("syscall", e.syscall);
  ex.Set("details", e.details);
  return ex.Value();
}

Napi::Value ThrowSys(Napi::Env env, const SysError& e) {
  Napi::Value err = NewSysError(env, e);
  if (!env.IsExceptionPending()) napi_throw(env, err);
  return env.Undefined();
}

// ---------------------------------------------------------------------------
// argument parsing

namespace {
std::string Describe(const char* name) { return std::string("argument '") + name + "'"; }

bool IsInteger(double v) { return std::isfinite(v) && std::trunc(v) == v; }
}  // namespace

bool Args::Int(size_t i, const char* name, int64_t min, int64_t max, int64_t* out) {
  Napi::Value v = info_[i];
  if (!v.IsNumber()) return ThrowType(env_, Describe(name) + " must be a number"), false;
  double d = v.As<Napi::Number>().DoubleValue();
  if (!IsInteger(d) || d < static_cast<double>(min) || d > static_cast<double>(max)) {
    ThrowRange(env_, Describe(name) + " must be an integer in [" + std::to_string(min) + ", " +
                         std::to_string(max) + "]");
    return false;
  }
  *out = static_cast<int64_t>(d);
  return true;
}

bool Args::Int32(size_t i, const char* name, int32_t min, int32_t max, int32_t* out) {
  int64_t v;
  if (!Int(i, name, min, max, &v)) return false;
  *out = static_cast<int32_t>(v);
  return true;
}

bool Args::U32(size_t i, const char* name, uint32_t* out) {
  int64_t v;
  if (!Int(i, name, 0, UINT32_MAX, &v)) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

bool Args::Str(size_t i, const char* name, std::string* out) {
  Napi::Value v = info_[i];
  if (!v.IsString()) return ThrowType(env_, Describe(name) + " must be a string"), false;
  *out = v.As<Napi::String>().Utf8Value();
  if (out->find('\0') != std::string::npos) {
    return ThrowType(env_, Describe(name) + " must not contain NUL"), false;
  }
  return true;
}

bool Args::IfName(size_t i, const char* name, std::string* out) {
  if (!Str(i, name, out)) return false;
  // IFNAMSIZ is 16 including the terminator.
  if (out->empty() || out->size() > 15 || out->find('/') != std::string::npos) {
    return ThrowType(env_, Describe(name) + " must be an interface name of 1-15 chars"), false;
  }
  return true;
}

bool Args::Buf(size_t i, const char* name, const uint8_t** data, size_t* len) {
  Napi::Value v = info_[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    return ThrowType(env_, Describe(name) + " must be a Buffer"), false;
  }
  Napi::Uint8Array a = v.As<Napi::Uint8Array>();
  *data = a.Data();
  *len = a.ByteLength();
  return true;
}

bool Args::Netns(size_t i, std::optional<std::string>* out) {
  if (IsNullish(i)) {
    out->reset();
    return true;
  }
  std::string s;
  if (!info_[i].IsString()) return ThrowType(env_, "argument 'netns' must be a string or null"), false;
  if (!Str(i, "netns", &s)) return false;
  if (s.empty()) return ThrowType(env_, "argument 'netns' must not be empty"), false;
  *out = std::move(s);
  return true;
}

bool Args::Obj(size_t i, const char* name, bool optional, Napi::Object* out) {
  Napi::Value v = info_[i];
  if (optional && (v.IsUndefined() || v.IsNull())) {
    *out = Napi::Object::New(env_);
    return true;
  }
  if (!v.IsObject() || v.IsArray() || v.IsTypedArray()) {
    return ThrowType(env_, Describe(name) + " must be an object"), false;
  }
  *out = v.As<Napi::Object>();
  return true;
}

namespace {
// Reads o[key]; false if the getter threw. Missing → undefined.
bool Get(Napi::Env env, Napi::Object o, const char* key, Napi::Value* out) {
  Napi::MaybeOrValue<Napi::Value> v = o.Get(key);
  if (env.IsExceptionPending()) return false;
  *out = v;
  return true;
}
std::string Opt(const char* key) { return std::string("option '") + key + "'"; }
}  // namespace

bool OptInt(Napi::Env env, Napi::Object o, const char* key, int64_t min, int64_t max,
            std::optional<int64_t>* out) {
  Napi::Value v;
  if (!Get(env, o, key, &v)) return false;
  if (v.IsUndefined()) return true;
  if (!v.IsNumber()) return ThrowType(env, Opt(key) + " must be a number"), false;
  double d = v.As<Napi::Number>().DoubleValue();
  if (!IsInteger(d) || d < static_cast<double>(min) || d > static_cast<double>(max)) {
    ThrowRange(env, Opt(key) + " must be an integer in [" + std::to_string(min) + ", " +
                        std::to_string(max) + "]");
    return false;
  }
  *out = static_cast<int64_t>(d);
  return true;
}

bool OptBool(Napi::Env env, Napi::Object o, const char* key, std::optional<bool>* out) {
  Napi::Value v;
  if (!Get(env, o, key, &v)) return false;
  if (v.IsUndefined()) return true;
  if (!v.IsBoolean()) return ThrowType(env, Opt(key) + " must be a boolean"), false;
  *out = v.As<Napi::Boolean>().Value();
  return true;
}

bool OptStr(Napi::Env env, Napi::Object o, const char* key, std::optional<std::string>* out) {
  Napi::Value v;
  if (!Get(env, o, key, &v)) return false;
  if (v.IsUndefined()) return true;
  if (!v.IsString()) return ThrowType(env, Opt(key) + " must be a string"), false;
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos) return ThrowType(env, Opt(key) + " must not contain NUL"), false;
  *out = std::move(s);
  return true;
}

bool OptStrOrNull(Napi::Env env, Napi::Object o, const char* key, std::optional<std::string>* out) {
  Napi::Value v;
  if (!Get(env, o, key, &v)) return false;
  if (v.IsNull()) return true;
  return OptStr(env, o, key, out);
}

bool OptBuf(Napi::Env env, Napi::Object o, const char* key, std::optional<std::vector<uint8_t>>* out) {
  Napi::Value v;
  if (!Get(env, o, key, &v)) return false;
  if (v.IsUndefined()) return true;
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    return ThrowType(env, Opt(key) + " must be a Buffer"), false;
  }
  Napi::Uint8Array a = v.As<Napi::Uint8Array>();
  *out = std::vector<uint8_t>(a.Data(), a.Data() + a.ByteLength());
  return true;
}

bool OptU32Record(Napi::Env env, Napi::Object o, const char* key,
                  std::vector<std::pair<std::string, uint32_t>>* out) {
  Napi::Value v;
  if (!Get(env, o, key, &v)) return false;
  if (v.IsUndefined()) return true;
  if (!v.IsObject() || v.IsArray()) return ThrowType(env, Opt(key) + " must be an object"), false;
  Napi::Object rec = v.As<Napi::Object>();
  Napi::Array names = rec.GetPropertyNames();
  if (env.IsExceptionPending()) return false;
  for (uint32_t i = 0; i < names.Length(); i++) {
    Napi::Value k = names.Get(i);
    if (!k.IsString()) continue;
    std::string name = k.As<Napi::String>().Utf8Value();
    Napi::Value n;
    if (!Get(env, rec, name.c_str(), &n)) return false;
    if (!n.IsNumber()) return ThrowType(env, Opt(key) + "['" + name + "'] must be a number"), false;
    double d = n.As<Napi::Number>().DoubleValue();
    if (!IsInteger(d) || d < 0 || d > UINT32_MAX) {
      return ThrowRange(env, Opt(key) + "['" + name + "'] must be a uint32"), false;
    }
    out->emplace_back(std::move(name), static_cast<uint32_t>(d));
  }
  return true;
}

// ---------------------------------------------------------------------------
// libbpf log capture

namespace {
thread_local LibbpfLog* tls_log = nullptr;
// Verifier logs can be megabytes; the interesting part is the tail.
constexpr size_t kMaxLog = 1 << 20;

int LibbpfPrint(enum libbpf_print_level level, const char* fmt, va_list ap) {
  if (level == LIBBPF_DEBUG) return 0;
  char small[1024];
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  if (n < 0) {
    va_end(ap2);
    return 0;
  }
  std::string msg;
  if (static_cast<size_t>(n) < sizeof small) {
    msg.assign(small, n);
  } else {
    msg.resize(n + 1);
    vsnprintf(&msg[0], msg.size(), fmt, ap2);
    msg.resize(n);
  }
  va_end(ap2);
  if (tls_log != nullptr) {
    tls_log->Append(msg.data(), msg.size());
  } else if (level == LIBBPF_WARN) {
    // Nothing is capturing (a libbpf call outside objLoad/tc): keep libbpf's
    // default of showing warnings rather than silently dropping them.
    fputs(msg.c_str(), stderr);
  }
  return 0;
}
}  // namespace

LibbpfLog::LibbpfLog() : prev_(tls_log) { tls_log = this; }
LibbpfLog::~LibbpfLog() { tls_log = prev_; }

void LibbpfLog::Append(const char* s, size_t n) {
  text_.append(s, n);
  if (text_.size() > kMaxLog) text_.erase(0, text_.size() - kMaxLog);
}

void InstallLibbpfPrint() { libbpf_set_print(LibbpfPrint); }

// ---------------------------------------------------------------------------
// init(NativeError)

namespace {
Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsFunction()) return ThrowType(env, "init(NativeError) expects the NativeError class");
  AddonData* d = Data(env);
  // The same process may evaluate src/native/index.ts more than once (test
  // isolation); the most recent class wins.
  d->native_error = Napi::Persistent(info[0].As<Napi::Function>());
  return env.Undefined();
}

Napi::Object Register(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  data->res = new Resources();
  env.SetInstanceData<AddonData>(data);
  napi_add_env_cleanup_hook(env, CleanupHook, data->res);
  InstallLibbpfPrint();
  // At most two malloc arenas (the main one and one for every other thread).
  // glibc gives each thread that meets contention an arena of its own, up to
  // 8 per core, and what one frees (libbpf's object loads and netlink buffers
  // on libuv's worker threads) stays resident in it: the agent with 1,000
  // endpoints and 100,000 learned addresses held ~16 MiB more outside V8's
  // heap (docs/benchmarks.md, memory). An environment's MALLOC_ARENA_MAX wins.
  if (!getenv("MALLOC_ARENA_MAX")) mallopt(M_ARENA_MAX, 2);

  exports.Set("init", Napi::Function::New(env, Init, "init"));
  exports.Set("mallocTrim", Napi::Function::New(
                                env, [](const Napi::CallbackInfo& info) -> Napi::Value { return Napi::Boolean::New(info.Env(), malloc_trim(0) == 1); },
                                "mallocTrim"));
  RegisterBpf(env, exports);
  RegisterRingbuf(env, exports);
  RegisterTc(env, exports);
  RegisterNetlink(env, exports);
  RegisterSysctl(env, exports);
  RegisterSock(env, exports);
  RegisterProbe(env, exports);
  RegisterUdpBatch(env, exports);
  RegisterHandover(env, exports);
  RegisterAnswerMemo(env, exports);
  return exports;
}
}  // namespace

}  // namespace sluice

// NODE_API_MODULE pastes the function name into an identifier, so it needs an
// unqualified name.
static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return sluice::Register(env, exports); }
NODE_API_MODULE(sluice_native, InitModule)
