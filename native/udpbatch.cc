// A UDP socket for the DNS proxy's hot path: read with recvmmsg, a batch of
// datagrams per JavaScript call, and written with sendmmsg. Node's dgram
// costs a JS callback, an rinfo object and an asynchronous send request per
// datagram; this is the per-packet overhead the proxy's profile showed
// (docs/benchmarks.md › dns).
//
//   new UdpBatch(fd, onBatch[, onSendFailed[, memo]])   takes ownership of a bound, non-blocking UDP fd
//   onBatch(count, data: Buffer, meta: Uint32Array, hosts6: string[] | undefined)
//     datagram i is data[meta[4i], meta[4i] + meta[4i+1]); meta[4i+2] its source port, with
//     bit 16 (kFromV6) set when it came from IPv6: then hosts6[i] is the address as text;
//     else meta[4i+3] is the IPv4 address as a number (a.b.c.d = a << 24 | b << 16 | c << 8 | d);
//     with an AnswerMemo (native/answermemo.cc), bits 17 and up of meta[4i+2] are its
//     verdict on the datagram, judged as it was read
//   send(buf, address, port) → boolean   false: the kernel refused it (the datagram is lost, as UDP may be)
//   pause()                              stops reading (datagrams wait in the socket's queue); send() still works
//   close()
//
// Nothing of a batch is allocated per datagram: `data` is the receive area
// every UdpBatch reads into (one Buffer for all of them) and `meta` the
// socket's own array, both made once and handed to every call (young garbage
// per query is what the proxy's pauses are made of). Both are valid only
// while onBatch runs: the next read overwrites them, so what JavaScript keeps
// of a datagram it copies.
//
// Sends made while an onBatch callback (of any UdpBatch) runs are copied into
// their socket's queue and go out with one sendmmsg per socket once the
// callback returns, still within the same readiness callback: a batch of
// answers to pods (or of queries to an upstream) costs one syscall, and the
// receiver is woken once for the batch, not once per datagram. send() then
// says true (queued); a datagram the kernel refuses at the flush is counted
// and reported to onSendFailed(n), when given. Outside a batch callback,
// send() is one synchronous sendto, as before.
//
// Reads and sends happen on the loop thread only. A datagram larger than
// MAX_DATAGRAM arrives cut (MSG_TRUNC) and is dropped here, counted in
// `truncated`.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "addon.h"

namespace sluice {
namespace {

constexpr int kBatch = 64;
constexpr size_t kMaxDatagram = 65535;
// Batches read per readiness callback before other work gets a turn.
constexpr int kRounds = 4;
constexpr int kRecvBuffer = 4 << 20;
// meta: offset, length, port (| kFromV6), IPv4 address; per datagram.
constexpr int kMetaFields = 4;
constexpr uint32_t kFromV6 = 1u << 16;
// Where the memo's verdict goes in the port field.
constexpr int kMemoShift = 17;

// The receive area every UdpBatch reads into (loop thread only): 64 × 64 KiB
// of address space, mapped once and never written here, so only the pages
// datagrams land in become resident (a DNS datagram fills the first page of
// its slot: ~256 KiB, where a zero-filled 4 MiB vector was all resident).
struct Area {
  char* data;
  size_t size;
};
const Area& ReadArea() {
  static const Area area = [] {
    size_t size = static_cast<size_t>(kBatch) * kMaxDatagram;
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) std::abort();  // 4 MiB of address space: nothing can run without it
    return Area{static_cast<char*>(p), size};
  }();
  return area;
}

class UdpBatch;

// Loop thread only: whether an onBatch callback is running (sends queue), and
// the sockets with queued sends.
int g_inBatch = 0;
std::vector<UdpBatch*>& Dirty() {
  static std::vector<UdpBatch*> dirty;
  return dirty;
}

class UdpBatch : public Napi::ObjectWrap<UdpBatch> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "UdpBatch",
                       {InstanceMethod("send", &UdpBatch::Send), InstanceMethod("close", &UdpBatch::Close),
                        InstanceMethod("pause", &UdpBatch::Pause),
                        InstanceAccessor("truncated", &UdpBatch::Truncated, nullptr)});
  }

  explicit UdpBatch(const Napi::CallbackInfo& info) : Napi::ObjectWrap<UdpBatch>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsNumber() || !info[1].IsFunction()) {
      ThrowType(env, "new UdpBatch(fd, onBatch): a socket fd and a function");
      return;
    }
    if (info.Length() > 3 && !info[3].IsUndefined() && !(memo_ = AnswerMemoOf(env, info[3]))) {
      ThrowType(env, "new UdpBatch(fd, onBatch, onSendFailed, memo): memo must be an AnswerMemo");
      return;
    }
    int fd = info[0].As<Napi::Number>().Int32Value();
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) {
      ThrowType(env, "UdpBatch: no event loop");
      return;
    }
    auto* poll = new uv_poll_t;
    int r = uv_poll_init(loop, poll, fd);
    if (r != 0) {
      delete poll;
      ThrowSys(env, SysError::Make(-r, "uv_poll_init", ""));
      return;
    }
    // Bursts of queries queue here while the loop is busy (dgram's recvBufferSize did the same).
    int rcvbuf = kRecvBuffer;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    fd_ = fd;
    poll_ = poll;
    poll_->data = this;
    cb_ = Napi::Persistent(info[1].As<Napi::Function>());
    if (info.Length() > 2 && info[2].IsFunction()) onSendFailed_ = Napi::Persistent(info[2].As<Napi::Function>());
    if (memo_) memoRef_ = Napi::Persistent(info[3].As<Napi::Object>());
    env_ = env;
    AddonData* d = Data(env);
    if (d->udp_read_area.IsEmpty()) {
      const Area& area = ReadArea();
      d->udp_read_area = Napi::Persistent(Napi::Buffer<char>::New(env, area.data, area.size));
    }
    Napi::Uint32Array meta = Napi::Uint32Array::New(env, kBatch * kMetaFields);
    metaData_ = meta.Data();
    meta_ = Napi::Persistent(meta);
    uv_poll_start(poll_, UV_READABLE, &UdpBatch::OnPoll);
    Ref();  // kept alive while it polls; close() lets it go
  }

  ~UdpBatch() override {
    Undirty();
    Stop();
  }

  // Sends every socket's queued datagrams (the end of a batch callback), then
  // reports the refused ones; call with a HandleScope open.
  static void FlushAll(Napi::Env env) {
    std::vector<UdpBatch*> dirty;
    dirty.swap(Dirty());
    for (UdpBatch* b : dirty) b->Flush();
    // Handles first (they keep each socket's wrapper, so the socket, alive), then the callbacks.
    std::vector<std::pair<Napi::Object, Napi::Function>> report;
    std::vector<double> counts;
    for (UdpBatch* b : dirty) {
      if (!b->pendingFailed_) continue;
      double failed = static_cast<double>(b->pendingFailed_);
      b->pendingFailed_ = 0;
      if (b->onSendFailed_.IsEmpty()) continue;
      report.emplace_back(b->Value(), b->onSendFailed_.Value());
      counts.push_back(failed);
    }
    for (size_t i = 0; i < report.size(); i++) report[i].second.MakeCallback(report[i].first, {Napi::Number::New(env, counts[i])});
  }

 private:
  struct Queued {
    size_t offset;
    size_t length;
    sockaddr_storage addr;
    socklen_t addrLen;
  };

  void Undirty() {
    auto& d = Dirty();
    for (size_t i = 0; i < d.size(); i++) {
      if (d[i] == this) {
        d.erase(d.begin() + static_cast<std::ptrdiff_t>(i));
        break;
      }
    }
  }

  // One sendmmsg per kBatch queued datagrams; one the kernel refuses is
  // skipped and counted, the rest still go.
  void Flush() {
    size_t n = queue_.size();
    size_t at = 0;
    while (at < n && fd_ >= 0) {
      size_t k = n - at < static_cast<size_t>(kBatch) ? n - at : static_cast<size_t>(kBatch);
      mmsghdr msgs[kBatch];
      iovec iov[kBatch];
      memset(msgs, 0, sizeof(mmsghdr) * k);
      for (size_t i = 0; i < k; i++) {
        Queued& q = queue_[at + i];
        iov[i].iov_base = sendArea_.data() + q.offset;
        iov[i].iov_len = q.length;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &q.addr;
        msgs[i].msg_hdr.msg_namelen = q.addrLen;
      }
      int r = sendmmsg(fd_, msgs, static_cast<unsigned>(k), MSG_DONTWAIT);
      if (r < 0) {
        if (errno == EINTR) continue;
        pendingFailed_++;  // the first of the rest: refused (EAGAIN: the queue is full)
        at++;
      } else {
        at += static_cast<size_t>(r);
      }
    }
    pendingFailed_ += n - at;  // closed meanwhile
    queue_.clear();
    sendArea_.clear();
  }


  static void OnPoll(uv_poll_t* h, int status, int events) {
    auto* self = static_cast<UdpBatch*>(h->data);
    if (status < 0 || !(events & UV_READABLE) || self->fd_ < 0 || self->paused_) return;
    self->Read();
  }

  void Read() {
    Napi::Env env(env_);
    Napi::HandleScope scope(env);
    const Area& area = ReadArea();
    for (int round = 0; round < kRounds && fd_ >= 0 && !paused_; round++) {
      mmsghdr msgs[kBatch];
      iovec iov[kBatch];
      sockaddr_storage addrs[kBatch];
      memset(msgs, 0, sizeof msgs);
      for (int i = 0; i < kBatch; i++) {
        iov[i].iov_base = area.data + i * kMaxDatagram;
        iov[i].iov_len = kMaxDatagram;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &addrs[i];
        msgs[i].msg_hdr.msg_namelen = sizeof addrs[i];
      }
      int n = recvmmsg(fd_, msgs, kBatch, MSG_DONTWAIT, nullptr);
      if (n <= 0) return;  // EAGAIN, or an error the next readiness reports again
      Napi::Value hosts6 = env.Undefined();
      double nowMs = memo_ ? MonotonicMs() : 0;
      uint32_t k = 0;
      for (int i = 0; i < n; i++) {
        if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
          truncated_++;
          continue;
        }
        uint32_t* m = metaData_ + k * kMetaFields;
        if (addrs[i].ss_family == AF_INET) {
          auto* sin = reinterpret_cast<sockaddr_in*>(&addrs[i]);
          m[2] = ntohs(sin->sin_port);
          m[3] = ntohl(sin->sin_addr.s_addr);
        } else if (addrs[i].ss_family == AF_INET6) {
          auto* sin6 = reinterpret_cast<sockaddr_in6*>(&addrs[i]);
          char text[INET6_ADDRSTRLEN] = "";
          inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof text);
          if (hosts6.IsUndefined()) hosts6 = Napi::Array::New(env);
          hosts6.As<Napi::Array>().Set(k, Napi::String::New(env, text));
          m[2] = ntohs(sin6->sin6_port) | kFromV6;
          m[3] = 0;
        } else {
          continue;
        }
        m[0] = static_cast<uint32_t>(i * kMaxDatagram);
        m[1] = msgs[i].msg_len;
        if (memo_) m[2] |= AnswerMemoCheck(memo_, reinterpret_cast<const uint8_t*>(area.data) + m[0], m[1], nowMs) << kMemoShift;
        k++;
      }
      if (k) {
        g_inBatch++;
        cb_.MakeCallback(Value(), {Napi::Number::New(env, k), Data(env)->udp_read_area.Value(), meta_.Value(), hosts6});
        g_inBatch--;
        if (!g_inBatch) FlushAll(env);
      }
      if (n < kBatch) return;
    }
  }

  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsBuffer() || !info[1].IsString() || !info[2].IsNumber()) return ThrowType(env, "send(buf, address, port)");
    if (fd_ < 0) return Napi::Boolean::New(env, false);
    auto buf = info[0].As<Napi::Buffer<char>>();
    sockaddr_storage ss;
    socklen_t len;
    if (!SockAddr(env, 0, info[1].As<Napi::String>().Utf8Value(), info[2].As<Napi::Number>().Uint32Value(), &ss, &len)) return env.Undefined();
    if (g_inBatch) {
      size_t offset = sendArea_.size();
      sendArea_.insert(sendArea_.end(), buf.Data(), buf.Data() + buf.Length());
      queue_.push_back(Queued{offset, buf.Length(), ss, len});
      if (queue_.size() == 1) Dirty().push_back(this);
      return Napi::Boolean::New(env, true);
    }
    ssize_t r;
    do {
      r = sendto(fd_, buf.Data(), buf.Length(), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&ss), len);
    } while (r < 0 && errno == EINTR);
    return Napi::Boolean::New(env, r >= 0);
  }

  Napi::Value Truncated(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(truncated_)); }

  Napi::Value Pause(const Napi::CallbackInfo& info) {
    paused_ = true;
    if (poll_) uv_poll_stop(poll_);
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    // What was queued was accepted: it goes before the fd does.
    if (!queue_.empty()) {
      Undirty();
      Flush();
    }
    if (poll_) Unref();
    Stop();
    return info.Env().Undefined();
  }

  void Stop() {
    if (poll_) {
      uv_poll_stop(poll_);
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
    }
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  int fd_ = -1;
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference cb_;
  Napi::FunctionReference onSendFailed_;
  // The answers' memo this socket judges its datagrams by (upstream sockets), kept alive here.
  AnswerMemoCore* memo_ = nullptr;
  Napi::ObjectReference memoRef_;
  // What onBatch is handed beside the receive area: this socket's meta array (and its data).
  Napi::Reference<Napi::Uint32Array> meta_;
  uint32_t* metaData_ = nullptr;
  napi_env env_ = nullptr;
  // Sends queued during a batch callback: their bytes, and where each goes.
  std::vector<char> sendArea_;
  std::vector<Queued> queue_;
  uint64_t pendingFailed_ = 0;
  uint64_t truncated_ = 0;
  bool paused_ = false;
};

}  // namespace

void RegisterUdpBatch(Napi::Env env, Napi::Object exports) { exports.Set("UdpBatch", UdpBatch::Define(env)); }

}  // namespace sluice
