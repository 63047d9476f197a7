// BPF ring buffer consumers. JS gets a small integer handle; the addon owns
// the libbpf ring_buffer (an epoll fd plus mmapped pages) until ringbufClose
// or env teardown (see CleanupHook in addon.cc).
#include <bpf/libbpf.h>

#include <cerrno>

#include "addon.h"

namespace sluice {
namespace {

// Returned from the sample callback to stop after `limit` records. libbpf
// advances the consumer position past the record before bailing out, so the
// record that hit the limit is kept (we already copied it), not lost.
constexpr int kStop = -ECANCELED;

int OnSample(void* ctx, void* data, size_t size) {
  auto* st = static_cast<RingState*>(ctx);
  auto* p = static_cast<const uint8_t*>(data);
  st->pending.emplace_back(p, p + size);
  return st->pending.size() >= st->limit ? kStop : 0;
}

RingState* Lookup(Napi::Env env, uint32_t handle) {
  Resources* res = Data(env)->res;
  auto it = res->rings.find(handle);
  return it == res->rings.end() ? nullptr : it->second;
}

Napi::Value BadHandle(Napi::Env env, const char* fn, uint32_t handle) {
  return ThrowSys(env, SysError::Make(EBADF, fn, "no open ring buffer handle " + std::to_string(handle)));
}

Napi::Value RingbufOpen(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  int fd;
  if (!a.Fd(0, &fd)) return env.Undefined();
  auto* st = new RingState();
  LibbpfLog log;
  st->rb = ring_buffer__new(fd, OnSample, st, nullptr);
  if (st->rb == nullptr) {
    int err = errno;
    delete st;
    return ThrowSys(env, SysError::Make(err, "ring_buffer__new", log.text()));
  }
  Resources* res = Data(env)->res;
  uint32_t h = res->next_ring++;
  res->rings[h] = st;
  return Napi::Number::New(env, h);
}

Napi::Value RingbufConsume(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  uint32_t h, max;
  if (!a.U32(0, "handle", &h) || !a.U32(1, "maxRecords", &max)) return env.Undefined();
  RingState* st = Lookup(env, h);
  if (st == nullptr) return BadHandle(env, "ringbufConsume", h);
  Napi::Array out = Napi::Array::New(env);
  if (max == 0) return out;
  st->pending.clear();
  st->limit = max;
  int r = ring_buffer__consume(st->rb);
  if (r < 0 && r != kStop) {
    st->pending.clear();
    return ThrowSys(env, SysError::Make(-r, "ring_buffer__consume"));
  }
  for (size_t i = 0; i < st->pending.size(); i++) {
    out.Set(i, Napi::Buffer<uint8_t>::Copy(env, st->pending[i].data(), st->pending[i].size()));
  }
  st->pending.clear();
  return out;
}

Napi::Value RingbufEpollFd(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  uint32_t h;
  if (!a.U32(0, "handle", &h)) return env.Undefined();
  RingState* st = Lookup(env, h);
  if (st == nullptr) return BadHandle(env, "ringbufEpollFd", h);
  return Napi::Number::New(env, ring_buffer__epoll_fd(st->rb));
}

Napi::Value RingbufClose(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  uint32_t h;
  if (!a.U32(0, "handle", &h)) return env.Undefined();
  Resources* res = Data(env)->res;
  auto it = res->rings.find(h);
  if (it == res->rings.end()) return BadHandle(env, "ringbufClose", h);
  ring_buffer__free(it->second->rb);
  delete it->second;
  res->rings.erase(it);
  return env.Undefined();
}

}  // namespace

void RegisterRingbuf(Napi::Env env, Napi::Object exports) {
  exports.Set("ringbufOpen", Napi::Function::New(env, RingbufOpen, "ringbufOpen"));
  exports.Set("ringbufConsume", Napi::Function::New(env, RingbufConsume, "ringbufConsume"));
  exports.Set("ringbufEpollFd", Napi::Function::New(env, RingbufEpollFd, "ringbufEpollFd"));
  exports.Set("ringbufClose", Napi::Function::New(env, RingbufClose, "ringbufClose"));
}

}  // namespace sluice
