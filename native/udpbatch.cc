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
//   sendExpecting(buf, address, port, via, clientAddress, clientPort, clientId, questionLength, maxBytes) → boolean
//                                        send(), and expect the answer (RELEASE below)
//   unexpect(id)                         the query with that id is settled elsewhere: expect it no more
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
// RELEASE: an upstream socket with a memo sends the memo's hits to their pods
// itself. A query forwarded with sendExpecting() is expected: (this socket,
// the query's id) → the listener it came in on (`via`, a UdpBatch), the pod's
// address, port and id, the question's bytes (buf[12, 12 + questionLength))
// and the largest answer the pod's path carries. A datagram read here that
// the memo judges a hit or a refresh, with an expected id, from the address
// and port the query went to, whose question bytes are the query's and that
// fits, is queued on `via` to the pod with the pod's id in place and is
// expected no more; its verdict then has kReleased. What a read released is
// sent before JavaScript sees the batch (nothing JavaScript does can change a
// verdict already given), then JavaScript settles a hit's query, and learns
// a refresh (without sending it again). Anything else is JavaScript's, as
// without it. The expectations are a fixed table
// (kExpectSlots, open addressing): a query that does not fit is not expected
// and its answer takes JavaScript's path. Closing either socket forgets its
// expectations.
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

// RELEASE: in the verdict, the datagram was sent to its pod here.
constexpr uint32_t kReleased = 4;
constexpr uint32_t kExpectSlots = 2048;  // a power of two
constexpr uint32_t kExpectMaxFill = kExpectSlots * 3 / 4;
constexpr size_t kMaxExpectedQuestion = 100;
constexpr size_t kHeaderBytes = 12;

class UdpBatch;

// One expected answer (RELEASE); sock null: a free slot.
struct Expected {
  UdpBatch* sock;
  UdpBatch* via;
  uint16_t id;
  uint16_t clientId;
  uint16_t maxBytes;
  uint8_t questionLen;
  socklen_t clientLen;
  sockaddr_in6 upstream;  // or a sockaddr_in, zero-padded (SockAddr)
  sockaddr_in6 client;
  uint8_t question[kMaxExpectedQuestion];
};

// The expectations of every socket (loop thread only): open addressing,
// linear probing, deletion by backward shift. Allocated zeroed on first use,
// so only the pages used become resident.
class Expectations {
 public:
  static Expectations& Get() {
    static Expectations e;
    return e;
  }

  Expected* Find(const UdpBatch* sock, uint16_t id) {
    if (!slots_) return nullptr;
    for (uint32_t i = Home(sock, id);; i = (i + 1) & kMask) {
      Expected& e = slots_[i];
      if (!e.sock) return nullptr;
      if (e.sock == sock && e.id == id) return &e;
    }
  }

  // A free slot for (sock, id), or that key's own; null when the table is full enough.
  Expected* Claim(UdpBatch* sock, uint16_t id) {
    if (!slots_) {
      slots_ = static_cast<Expected*>(calloc(kExpectSlots, sizeof(Expected)));
      if (!slots_) return nullptr;
    }
    if (Expected* e = Find(sock, id)) return e;
    if (fill_ >= kExpectMaxFill) return nullptr;
    uint32_t i = Home(sock, id);
    while (slots_[i].sock) i = (i + 1) & kMask;
    fill_++;
    slots_[i].sock = sock;
    slots_[i].id = id;
    return &slots_[i];
  }

  void Erase(Expected* e) {
    uint32_t i = static_cast<uint32_t>(e - slots_);
    slots_[i].sock = nullptr;
    fill_--;
    // Backward shift: move up each later entry of the run whose home is not in (i, j].
    for (uint32_t j = (i + 1) & kMask; slots_[j].sock; j = (j + 1) & kMask) {
      uint32_t home = Home(slots_[j].sock, slots_[j].id);
      bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
      if (stays) continue;
      slots_[i] = slots_[j];
      slots_[j].sock = nullptr;
      i = j;
    }
  }

  // Every expectation of `b` (the socket the query went out on, or the one its answer goes back on).
  void Forget(const UdpBatch* b) {
    if (!slots_ || !fill_) return;
    for (uint32_t i = 0; i < kExpectSlots;) {
      Expected& e = slots_[i];
      if (e.sock && (e.sock == b || e.via == b)) {
        Erase(&e);  // a later entry may have moved into i: look at it again
      } else {
        i++;
      }
    }
  }

 private:
  static constexpr uint32_t kMask = kExpectSlots - 1;
  static uint32_t Home(const UdpBatch* sock, uint16_t id) {
    uint64_t h = (reinterpret_cast<uintptr_t>(sock) >> 4) * 0x9E3779B97F4A7C15ull ^ id * 0xC2B2AE3Dull;
    return static_cast<uint32_t>(h ^ (h >> 29)) & kMask;
  }
  Expected* slots_ = nullptr;
  uint32_t fill_ = 0;
};

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
                       {InstanceMethod("send", &UdpBatch::Send), InstanceMethod("sendExpecting", &UdpBatch::SendExpecting),
                        InstanceMethod("unexpect", &UdpBatch::Unexpect), InstanceMethod("close", &UdpBatch::Close),
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

  // The UdpBatch behind a JS value, or null when it is not one.
  static UdpBatch* Of(Napi::Env env, Napi::Value v) {
    AddonData* d = Data(env);
    if (!v.IsObject() || d->udp_batch.IsEmpty() || !v.As<Napi::Object>().InstanceOf(d->udp_batch.Value())) return nullptr;
    return Unwrap(v.As<Napi::Object>());
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


  // Adds a datagram to this socket's queue (sent at the end of the batch callback).
  void Queue(const char* data, size_t length, const void* addr, socklen_t addrLen) {
    size_t offset = sendArea_.size();
    sendArea_.insert(sendArea_.end(), data, data + length);
    Queued q{offset, length, {}, addrLen};
    memcpy(&q.addr, addr, addrLen);
    queue_.push_back(q);
    if (queue_.size() == 1) Dirty().push_back(this);
  }

  // RELEASE: datagram `msg` from `from`, a memo hit, to its pod if it is an expected answer.
  bool Release(const uint8_t* msg, size_t len, const sockaddr_storage& from) {
    if (len < kHeaderBytes) return false;
    Expectations& table = Expectations::Get();
    Expected* e = table.Find(this, static_cast<uint16_t>(msg[0] << 8 | msg[1]));
    if (!e || len > e->maxBytes || len < kHeaderBytes + e->questionLen) return false;
    if (from.ss_family != e->upstream.sin6_family) return false;
    if (from.ss_family == AF_INET) {
      auto* a = reinterpret_cast<const sockaddr_in*>(&from);
      auto* b = reinterpret_cast<const sockaddr_in*>(&e->upstream);
      if (a->sin_port != b->sin_port || a->sin_addr.s_addr != b->sin_addr.s_addr) return false;
    } else {
      auto* a = reinterpret_cast<const sockaddr_in6*>(&from);
      if (a->sin6_port != e->upstream.sin6_port || memcmp(&a->sin6_addr, &e->upstream.sin6_addr, sizeof a->sin6_addr) != 0) return false;
    }
    if (memcmp(msg + kHeaderBytes, e->question, e->questionLen) != 0) return false;
    UdpBatch* via = e->via;
    via->Queue(reinterpret_cast<const char*>(msg), len, &e->client, e->clientLen);
    char* id = via->sendArea_.data() + via->queue_.back().offset;
    id[0] = static_cast<char>(e->clientId >> 8);
    id[1] = static_cast<char>(e->clientId & 0xff);
    table.Erase(e);
    return true;
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
      bool released = false;
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
        if (memo_) {
          const uint8_t* msg = reinterpret_cast<const uint8_t*>(area.data) + m[0];
          uint32_t verdict = AnswerMemoCheck(memo_, msg, m[1], nowMs);
          if ((verdict & (kMemoHit | kMemoRefresh)) && Release(msg, m[1], addrs[i])) {
            verdict |= kReleased;
            released = true;
          }
          m[2] |= verdict << kMemoShift;
        }
        k++;
      }
      if (released) FlushAll(env);  // the pods' answers first (Read runs from the loop, never inside a batch)
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
    auto buf = info[0].As<Napi::Buffer<char>>();
    sockaddr_storage ss;
    socklen_t len;
    if (!SockAddr(env, 0, info[1].As<Napi::String>().Utf8Value(), info[2].As<Napi::Number>().Uint32Value(), &ss, &len)) return env.Undefined();
    return Napi::Boolean::New(env, SendTo(buf.Data(), buf.Length(), ss, len));
  }

  // An address argument: text, or an IPv4 address as a number (a.b.c.d = a << 24 | …; no text made or parsed).
  static bool AddressArg(Napi::Env env, Napi::Value v, uint32_t port, sockaddr_storage* ss, socklen_t* len) {
    if (!v.IsNumber()) return SockAddr(env, 0, v.As<Napi::String>().Utf8Value(), port, ss, len);
    double n = v.As<Napi::Number>().DoubleValue();
    if (!(n >= 0 && n <= 4294967295.0) || n != static_cast<double>(static_cast<uint32_t>(n)) || port > 0xffff) {
      ThrowRange(env, "sendExpecting: an IPv4 address as a number is 0 to 2^32 - 1, a port 0 to 65535");
      return false;
    }
    memset(ss, 0, sizeof *ss);
    auto* sin = reinterpret_cast<sockaddr_in*>(ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(static_cast<uint16_t>(port));
    sin->sin_addr.s_addr = htonl(static_cast<uint32_t>(n));
    *len = sizeof(sockaddr_in);
    return true;
  }

  // send(), and the answer expected (RELEASE) when the query was accepted and fits.
  Napi::Value SendExpecting(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsBuffer() || !(info[1].IsString() || info[1].IsNumber()) || !info[2].IsNumber() || !(info[4].IsString() || info[4].IsNumber())) {
      return ThrowType(env, "sendExpecting(buf, address, port, via, clientAddress, clientPort, clientId, questionLength, maxBytes)");
    }
    UdpBatch* via = Of(env, info[3]);
    if (!via) return ThrowType(env, "sendExpecting: via must be a UdpBatch");
    Args a(info);
    uint32_t clientPort, clientId, questionLength, maxBytes;
    if (!a.U32(5, "clientPort", &clientPort) || !a.U32(6, "clientId", &clientId) || !a.U32(7, "questionLength", &questionLength) || !a.U32(8, "maxBytes", &maxBytes)) return env.Undefined();
    auto buf = info[0].As<Napi::Buffer<char>>();
    sockaddr_storage upstream, client;
    socklen_t upstreamLen, clientLen;
    if (!AddressArg(env, info[1], info[2].As<Napi::Number>().Uint32Value(), &upstream, &upstreamLen) || !AddressArg(env, info[4], clientPort, &client, &clientLen)) {
      return env.Undefined();
    }
    if (!SendTo(buf.Data(), buf.Length(), upstream, upstreamLen)) return Napi::Boolean::New(env, false);
    if (via->fd_ >= 0 && buf.Length() >= kHeaderBytes + questionLength && questionLength <= kMaxExpectedQuestion && clientId <= 0xffff && maxBytes <= 0xffff) {
      auto id = static_cast<uint16_t>(static_cast<uint8_t>(buf.Data()[0]) << 8 | static_cast<uint8_t>(buf.Data()[1]));
      if (Expected* e = Expectations::Get().Claim(this, id)) {
        e->via = via;
        e->clientId = static_cast<uint16_t>(clientId);
        e->maxBytes = static_cast<uint16_t>(maxBytes);
        e->questionLen = static_cast<uint8_t>(questionLength);
        memcpy(&e->upstream, &upstream, upstreamLen);  // a sockaddr_in or a sockaddr_in6: both fit
        memcpy(&e->client, &client, clientLen);
        e->clientLen = clientLen;
        memcpy(e->question, buf.Data() + kHeaderBytes, questionLength);
      }
    }
    return Napi::Boolean::New(env, true);
  }

  Napi::Value Unexpect(const Napi::CallbackInfo& info) {
    Args a(info);
    uint32_t id;
    if (!a.U32(0, "id", &id)) return info.Env().Undefined();
    Expectations& table = Expectations::Get();
    if (id <= 0xffff) {
      if (Expected* e = table.Find(this, static_cast<uint16_t>(id))) table.Erase(e);
    }
    return info.Env().Undefined();
  }

  // Queued during a batch callback (true), else one sendto (false: the kernel refused it).
  bool SendTo(const char* data, size_t length, const sockaddr_storage& ss, socklen_t len) {
    if (fd_ < 0) return false;
    if (g_inBatch) {
      Queue(data, length, &ss, len);
      return true;
    }
    ssize_t r;
    do {
      r = sendto(fd_, data, length, MSG_DONTWAIT, reinterpret_cast<const sockaddr*>(&ss), len);
    } while (r < 0 && errno == EINTR);
    return r >= 0;
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
    Expectations::Get().Forget(this);
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

void RegisterUdpBatch(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = UdpBatch::Define(env);
  Data(env)->udp_batch = Napi::Persistent(ctor);
  exports.Set("UdpBatch", ctor);
}

}  // namespace sluice
