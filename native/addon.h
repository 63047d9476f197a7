// Shared pieces of the Sluice native addon: the error model, per-env state
// and argument parsing. The addon is syscall-shaped: Buffers and plain
// numbers/strings in and out, policy lives in TypeScript. Built with
// -fno-exceptions, so every failure is a value (SysError) until it is turned
// into a JS exception at the very end of a binding.
#pragma once

#include <napi.h>
#include <sys/socket.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

struct ring_buffer;

namespace sluice {

// Result of an OS-level operation. err == 0 means success. `syscall` names the
// failing call as the TS side will see it ("bpf_map_update_elem",
// "RTM_NEWLINK", "open"); `details` carries extra text (verifier log, netlink
// extack message, the path that failed).
struct SysError {
  int err = 0;
  std::string syscall;
  std::string details;

  bool ok() const { return err == 0; }
  static SysError Ok() { return SysError{}; }
  static SysError Make(int err, std::string syscall, std::string details = "") {
    return SysError{err, std::move(syscall), std::move(details)};
  }
};

// One ring buffer consumer handed out to JS as a small integer handle.
struct RingState {
  ::ring_buffer* rb = nullptr;
  std::vector<std::vector<uint8_t>> pending;  // filled by the libbpf callback
  uint32_t limit = 0;
};

// OS resources the addon owns on behalf of JS. Owned by the env cleanup hook
// (not by the instance data) so that teardown order between the two can never
// cause a use-after-free.
struct Resources {
  std::map<uint32_t, RingState*> rings;
  uint32_t next_ring = 1;
  void CloseAll();
};

// Per-env state, stored with napi_set_instance_data.
struct AddonData {
  Napi::FunctionReference native_error;  // the TS NativeError class, set by init()
  Resources* res = nullptr;
  // The UDP sockets' receive area as one Buffer, made by the first UdpBatch (native/udpbatch.cc).
  Napi::Reference<Napi::Buffer<char>> udp_read_area;
  // The AnswerMemo class (native/answermemo.cc), to recognize its instances.
  Napi::FunctionReference answer_memo;
  // The UdpBatch class (native/udpbatch.cc), likewise.
  Napi::FunctionReference udp_batch;
};

AddonData* Data(Napi::Env env);

// errno -> "ENOENT"; unknown -> "E<n>". Also knows the kernel-internal
// ENOTSUPP (524) that BPF commands return.
std::string ErrnoName(int err);
std::string ErrnoDescription(int err);

// Throws an instance of the TS NativeError class (or a plain Error carrying the
// same fields if init() has not been called). Always returns undefined so
// bindings can `return ThrowSys(env, e);`.
Napi::Value ThrowSys(Napi::Env env, const SysError& e);
// The same error object, not thrown (for rejecting a promise).
Napi::Value NewSysError(Napi::Env env, const SysError& e);
Napi::Value ThrowType(Napi::Env env, const std::string& msg);

// address:port as a sockaddr of `family` (4 or 6; 0: whichever `address`
// is). False, with a TypeError thrown, when `address` is not one.
bool SockAddr(Napi::Env env, int64_t family, const std::string& address, int64_t port, sockaddr_storage* ss, socklen_t* len);
Napi::Value ThrowRange(Napi::Env env, const std::string& msg);

// Argument parsing. Each helper throws a TypeError/RangeError and returns false
// on bad input; callers then return env.Undefined() immediately.
class Args {
 public:
  explicit Args(const Napi::CallbackInfo& info) : info_(info), env_(info.Env()) {}

  Napi::Env env() const { return env_; }
  Napi::Value at(size_t i) const { return info_[i]; }
  bool IsNullish(size_t i) const { return info_[i].IsUndefined() || info_[i].IsNull(); }

  bool Int(size_t i, const char* name, int64_t min, int64_t max, int64_t* out);
  bool Fd(size_t i, int* out) { return Int32(i, "fd", 0, INT32_MAX, out); }
  bool Int32(size_t i, const char* name, int32_t min, int32_t max, int32_t* out);
  bool U32(size_t i, const char* name, uint32_t* out);
  bool Str(size_t i, const char* name, std::string* out);
  bool IfName(size_t i, const char* name, std::string* out);
  // Borrowed view of a Buffer/Uint8Array argument (valid for the call).
  bool Buf(size_t i, const char* name, const uint8_t** data, size_t* len);
  // `string | null` netns path; undefined counts as null.
  bool Netns(size_t i, std::optional<std::string>* out);
  // Object argument; when optional and nullish, *out is an empty object.
  bool Obj(size_t i, const char* name, bool optional, Napi::Object* out);

 private:
  const Napi::CallbackInfo& info_;
  Napi::Env env_;
};

// Option readers for `opts` objects. Missing/undefined keys leave *out unset.
bool OptInt(Napi::Env env, Napi::Object o, const char* key, int64_t min, int64_t max,
            std::optional<int64_t>* out);
bool OptBool(Napi::Env env, Napi::Object o, const char* key, std::optional<bool>* out);
bool OptStr(Napi::Env env, Napi::Object o, const char* key, std::optional<std::string>* out);
// `string | null | undefined`; null and undefined both leave *out unset.
bool OptStrOrNull(Napi::Env env, Napi::Object o, const char* key, std::optional<std::string>* out);
bool OptBuf(Napi::Env env, Napi::Object o, const char* key, std::optional<std::vector<uint8_t>>* out);
// Record<string, number> → list of (name, uint32).
bool OptU32Record(Napi::Env env, Napi::Object o, const char* key,
                  std::vector<std::pair<std::string, uint32_t>>* out);

// Registration entry points, one per concern.
void RegisterBpf(Napi::Env env, Napi::Object exports);
void RegisterRingbuf(Napi::Env env, Napi::Object exports);
void RegisterTc(Napi::Env env, Napi::Object exports);
void RegisterNetlink(Napi::Env env, Napi::Object exports);
void RegisterSysctl(Napi::Env env, Napi::Object exports);
void RegisterSock(Napi::Env env, Napi::Object exports);
void RegisterProbe(Napi::Env env, Napi::Object exports);
void RegisterUdpBatch(Napi::Env env, Napi::Object exports);
void RegisterHandover(Napi::Env env, Napi::Object exports);
void RegisterAnswerMemo(Napi::Env env, Napi::Object exports);

// The DNS proxy's memo of answers that change nothing (native/answermemo.cc),
// judged by the upstream sockets as they read (native/udpbatch.cc).
class AnswerMemoCore;
constexpr uint32_t kMemoHit = 1;
constexpr uint32_t kMemoAddresses = 2;
// Not a hit, but safe to release before it is learned (native/answermemo.cc, REFRESH).
constexpr uint32_t kMemoRefresh = 8;
// The memo behind a JS AnswerMemo, or null when `v` is not one.
AnswerMemoCore* AnswerMemoOf(Napi::Env env, Napi::Value v);
// 0, or kMemoHit (| kMemoAddresses: it has A/AAAA records) when `msg` repeats a
// remembered answer and changes nothing at `nowMs` (CLOCK_MONOTONIC ms), or
// kMemoRefresh (| kMemoAddresses) when it would move an expiry but its allows
// are programmed for at least the grace from `nowMs`.
uint32_t AnswerMemoCheck(AnswerMemoCore* memo, const uint8_t* msg, size_t len, double nowMs);

// CLOCK_MONOTONIC in milliseconds (fractional): deadlines, and the clock the
// agent's expiries are on (src/dns/clock.ts).
double MonotonicMs();

// libbpf log capture: while a LibbpfLog is alive on a thread, libbpf's
// messages from that thread are appended to it instead of going to stderr.
class LibbpfLog {
 public:
  LibbpfLog();
  ~LibbpfLog();
  LibbpfLog(const LibbpfLog&) = delete;
  LibbpfLog& operator=(const LibbpfLog&) = delete;
  const std::string& text() const { return text_; }
  void Append(const char* s, size_t n);

 private:
  std::string text_;
  LibbpfLog* prev_;
};
void InstallLibbpfPrint();

}  // namespace sluice
