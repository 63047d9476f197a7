// Minimal rtnetlink plumbing: a message builder with nested attributes, a
// socket that speaks request/ack and dump, and an attribute parser. Used from
// the netns helper thread, so nothing here touches napi.
#pragma once

#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "addon.h"

namespace sluice {

class NlMsg {
 public:
  NlMsg(uint16_t type, uint16_t flags);

  // Appends the fixed family header (ifinfomsg, rtmsg, ...) and returns its
  // offset; use At<T>(off) to fill it in (pointers move as the buffer grows).
  template <typename T>
  size_t Header(const T& h) {
    size_t off = buf_.size();
    Append(&h, sizeof h);
    return off;
  }
  template <typename T>
  T* At(size_t off) {
    return reinterpret_cast<T*>(buf_.data() + off);
  }

  void Attr(uint16_t type, const void* data, size_t len);
  void U32(uint16_t type, uint32_t v) { Attr(type, &v, sizeof v); }
  void S32(uint16_t type, int32_t v) { Attr(type, &v, sizeof v); }
  void U8(uint16_t type, uint8_t v) { Attr(type, &v, sizeof v); }
  void Str(uint16_t type, const std::string& s) { Attr(type, s.c_str(), s.size() + 1); }

  // Nested attribute: Begin returns the offset to pass to End.
  size_t Begin(uint16_t type);
  void End(size_t off);

  nlmsghdr* hdr() { return reinterpret_cast<nlmsghdr*>(buf_.data()); }
  const char* data() const { return buf_.data(); }
  size_t size() const { return buf_.size(); }

 private:
  void Append(const void* p, size_t n);
  void Align();
  std::vector<char> buf_;
};

class NlSocket {
 public:
  NlSocket() = default;
  ~NlSocket();
  NlSocket(const NlSocket&) = delete;
  NlSocket& operator=(const NlSocket&) = delete;

  // NETLINK_ROUTE socket in the calling thread's netns, with extended acks so
  // the kernel's reason for a failure lands in SysError::details.
  SysError Open();

  // Sends msg (NLM_F_ACK is added) and waits for the ack. Replies that are not
  // acks (e.g. the answer to an RTM_GET* by name) go to on_reply if given.
  // `what` names the operation for errors, e.g. "RTM_NEWLINK".
  SysError Request(NlMsg& msg, const char* what,
                   const std::function<void(const nlmsghdr*)>& on_reply = nullptr);

  // Sends a dump request (NLM_F_DUMP is added) and calls on_msg for each
  // message; restarts (calling on_restart first) if the kernel reports the
  // dump was interrupted by a concurrent change.
  SysError Dump(NlMsg& msg, const char* what, const std::function<void(const nlmsghdr*)>& on_msg,
                const std::function<void()>& on_restart);

 private:
  SysError Send(NlMsg& msg, const char* what);
  int fd_ = -1;
  uint32_t seq_ = 0;
  std::vector<char> rx_;
};

// Attribute table indexed by type (NLA_F_NESTED etc. masked off); entries are
// null when absent. `max` is the highest type of interest.
using AttrTable = std::vector<const rtattr*>;
AttrTable ParseAttrs(const void* start, size_t len, uint16_t max);
// Attributes following a fixed header of size hdr_len in a message.
AttrTable ParseMsgAttrs(const nlmsghdr* h, size_t hdr_len, uint16_t max);
AttrTable ParseNested(const rtattr* a, uint16_t max);

inline const void* AttrData(const rtattr* a) { return RTA_DATA(a); }
inline size_t AttrLen(const rtattr* a) { return RTA_PAYLOAD(a); }
uint32_t AttrU32(const rtattr* a);
std::string AttrStr(const rtattr* a);

}  // namespace sluice
