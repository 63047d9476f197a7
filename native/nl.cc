// rtnetlink plumbing; see nl.h.
#include "nl.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace sluice {

namespace {
constexpr size_t kAlign = 4;  // NLMSG_ALIGNTO == RTA_ALIGNTO
size_t AlignUp(size_t n) { return (n + kAlign - 1) & ~(kAlign - 1); }
// Dumps come in chunks of at most ~32 KiB; 64 KiB never truncates.
constexpr size_t kRxSize = 64 * 1024;
constexpr int kMaxDumpRestarts = 10;
}  // namespace

// ---------------------------------------------------------------------------
// builder

NlMsg::NlMsg(uint16_t type, uint16_t flags) {
  nlmsghdr h;
  memset(&h, 0, sizeof h);
  h.nlmsg_type = type;
  h.nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | flags);
  Append(&h, sizeof h);
}

void NlMsg::Append(const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  buf_.insert(buf_.end(), c, c + n);
  Align();
  hdr()->nlmsg_len = static_cast<uint32_t>(buf_.size());
}

void NlMsg::Align() { buf_.resize(AlignUp(buf_.size()), 0); }

void NlMsg::Attr(uint16_t type, const void* data, size_t len) {
  rtattr a;
  a.rta_type = type;
  a.rta_len = static_cast<uint16_t>(RTA_LENGTH(len));
  const char* c = reinterpret_cast<const char*>(&a);
  buf_.insert(buf_.end(), c, c + sizeof a);
  if (len > 0) {
    const char* d = static_cast<const char*>(data);
    buf_.insert(buf_.end(), d, d + len);
  }
  Align();
  hdr()->nlmsg_len = static_cast<uint32_t>(buf_.size());
}

size_t NlMsg::Begin(uint16_t type) {
  size_t off = buf_.size();
  // No NLA_F_NESTED, like iproute2: rtnetlink parses these with the lenient
  // (deprecated) parser, and some nests (VETH_INFO_PEER) are not typed nested.
  Attr(type, nullptr, 0);
  return off;
}

void NlMsg::End(size_t off) { At<rtattr>(off)->rta_len = static_cast<uint16_t>(buf_.size() - off); }

// ---------------------------------------------------------------------------
// socket

NlSocket::~NlSocket() {
  if (fd_ >= 0) close(fd_);
}

SysError NlSocket::Open() {
  fd_ = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd_ < 0) return SysError::Make(errno, "socket", "AF_NETLINK");
  int one = 1;
  // Both are best effort: without them we just lose the extack text.
  setsockopt(fd_, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  // Do not echo our whole request back inside error messages.
  setsockopt(fd_, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  sockaddr_nl sa;
  memset(&sa, 0, sizeof sa);
  sa.nl_family = AF_NETLINK;
  if (bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return SysError::Make(errno, "bind", "AF_NETLINK");
  rx_.resize(kRxSize);
  return SysError::Ok();
}

SysError NlSocket::Send(NlMsg& msg, const char* what) {
  msg.hdr()->nlmsg_seq = ++seq_;
  sockaddr_nl sa;
  memset(&sa, 0, sizeof sa);
  sa.nl_family = AF_NETLINK;
  ssize_t n;
  do {
    n = sendto(fd_, msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return SysError::Make(errno, "sendto", what);
  return SysError::Ok();
}

namespace {
// Error from an NLMSG_ERROR (or NLMSG_DONE with a status) message, with the
// extack message if the kernel attached one.
SysError AckError(const nlmsghdr* h, const char* what) {
  if (h->nlmsg_len < NLMSG_LENGTH(sizeof(int))) return SysError::Make(EBADMSG, what, "short netlink error");
  int err = *static_cast<const int*>(NLMSG_DATA(h));
  if (err == 0) return SysError::Ok();
  std::string details;
  if (h->nlmsg_type == NLMSG_ERROR && (h->nlmsg_flags & NLM_F_ACK_TLVS) &&
      h->nlmsg_len >= NLMSG_LENGTH(sizeof(nlmsgerr))) {
    const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
    size_t off = sizeof(nlmsgerr);
    // Without NLM_F_CAPPED the offending request is echoed before the TLVs.
    if (!(h->nlmsg_flags & NLM_F_CAPPED)) off += e->msg.nlmsg_len - sizeof(nlmsghdr);
    size_t payload = h->nlmsg_len - NLMSG_HDRLEN;
    if (off < payload) {
      AttrTable tb = ParseAttrs(static_cast<const char*>(NLMSG_DATA(h)) + off, payload - off, NLMSGERR_ATTR_MAX);
      if (tb[NLMSGERR_ATTR_MSG] != nullptr) details = AttrStr(tb[NLMSGERR_ATTR_MSG]);
    }
  }
  return SysError::Make(-err, what, details);
}
}  // namespace

SysError NlSocket::Request(NlMsg& msg, const char* what, const std::function<void(const nlmsghdr*)>& on_reply) {
  msg.hdr()->nlmsg_flags |= NLM_F_ACK;
  SysError e = Send(msg, what);
  if (!e.ok()) return e;
  for (;;) {
    ssize_t n = recv(fd_, rx_.data(), rx_.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return SysError::Make(errno, "recv", what);
    }
    size_t len = static_cast<size_t>(n);
    for (auto* h = reinterpret_cast<const nlmsghdr*>(rx_.data()); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_seq != seq_) continue;  // stale reply to something else
      if (h->nlmsg_type == NLMSG_ERROR) return AckError(h, what);
      if (on_reply) on_reply(h);
    }
  }
}

SysError NlSocket::Dump(NlMsg& msg, const char* what, const std::function<void(const nlmsghdr*)>& on_msg,
                        const std::function<void()>& on_restart) {
  msg.hdr()->nlmsg_flags |= NLM_F_DUMP;
  for (int attempt = 0;; attempt++) {
    SysError e = Send(msg, what);
    if (!e.ok()) return e;
    bool done = false, interrupted = false;
    while (!done) {
      ssize_t n = recv(fd_, rx_.data(), rx_.size(), 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        return SysError::Make(errno, "recv", what);
      }
      size_t len = static_cast<size_t>(n);
      for (auto* h = reinterpret_cast<const nlmsghdr*>(rx_.data()); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
        if (h->nlmsg_seq != seq_) continue;
        if (h->nlmsg_flags & NLM_F_DUMP_INTR) interrupted = true;
        if (h->nlmsg_type == NLMSG_DONE) {
          e = AckError(h, what);
          if (!e.ok()) return e;
          done = true;
          break;
        }
        if (h->nlmsg_type == NLMSG_ERROR) {
          e = AckError(h, what);
          if (!e.ok()) return e;
          continue;
        }
        on_msg(h);
      }
    }
    if (!interrupted) return SysError::Ok();
    if (attempt >= kMaxDumpRestarts) return SysError::Make(EINTR, what, "dump kept being interrupted");
    on_restart();
  }
}

// ---------------------------------------------------------------------------
// parsing

AttrTable ParseAttrs(const void* start, size_t len, uint16_t max) {
  AttrTable tb(static_cast<size_t>(max) + 1, nullptr);
  unsigned int rem = static_cast<unsigned int>(len);
  for (auto* a = static_cast<const rtattr*>(start); RTA_OK(a, rem); a = RTA_NEXT(a, rem)) {
    uint16_t type = a->rta_type & NLA_TYPE_MASK;
    if (type <= max && tb[type] == nullptr) tb[type] = a;
  }
  return tb;
}

AttrTable ParseMsgAttrs(const nlmsghdr* h, size_t hdr_len, uint16_t max) {
  size_t start = NLMSG_LENGTH(NLMSG_ALIGN(hdr_len));
  if (h->nlmsg_len < start) return AttrTable(static_cast<size_t>(max) + 1, nullptr);
  return ParseAttrs(reinterpret_cast<const char*>(h) + start, h->nlmsg_len - start, max);
}

AttrTable ParseNested(const rtattr* a, uint16_t max) { return ParseAttrs(RTA_DATA(a), RTA_PAYLOAD(a), max); }

uint32_t AttrU32(const rtattr* a) {
  uint32_t v = 0;
  memcpy(&v, RTA_DATA(a), std::min<size_t>(sizeof v, RTA_PAYLOAD(a)));
  return v;
}

std::string AttrStr(const rtattr* a) {
  const char* p = static_cast<const char*>(RTA_DATA(a));
  return std::string(p, strnlen(p, RTA_PAYLOAD(a)));
}

}  // namespace sluice
