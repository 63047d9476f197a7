// Links, addresses, routes and neighbours over raw rtnetlink. Every binding
// takes `netns: string | null` first and does its socket work through
// RunInNetns; arguments are parsed into plain structs on the JS thread first.
#include <arpa/inet.h>
#include <linux/fib_rules.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/veth.h>
#include <net/if.h>
#include <unistd.h>

#include <cerrno>
#include <map>

#include "addon.h"
#include "netns.h"
#include "nl.h"

namespace sluice {
namespace {

// ---------------------------------------------------------------------------
// value parsing / formatting

struct IpAddr {
  int family = 0;  // AF_INET or AF_INET6
  uint8_t bytes[16] = {0};
  size_t len() const { return family == AF_INET ? 4 : 16; }
};

bool ParseIp(const std::string& s, IpAddr* ip) {
  if (inet_pton(AF_INET, s.c_str(), ip->bytes) == 1) {
    ip->family = AF_INET;
    return true;
  }
  if (inet_pton(AF_INET6, s.c_str(), ip->bytes) == 1) {
    ip->family = AF_INET6;
    return true;
  }
  return false;
}

bool ParseCidr(const std::string& s, IpAddr* ip, int* prefix) {
  size_t slash = s.find('/');
  if (slash == std::string::npos || slash + 1 >= s.size() || s.size() - slash > 4) return false;
  if (!ParseIp(s.substr(0, slash), ip)) return false;
  int p = 0;
  for (size_t i = slash + 1; i < s.size(); i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    p = p * 10 + (s[i] - '0');
  }
  if (p > static_cast<int>(ip->len() * 8)) return false;
  *prefix = p;
  return true;
}

std::string FormatIp(int family, const void* p) {
  char buf[INET6_ADDRSTRLEN];
  if (inet_ntop(family, p, buf, sizeof buf) == nullptr) return "";
  return buf;
}

bool ParseMac(const std::string& s, std::vector<uint8_t>* mac) {
  if (s.size() != 17) return false;
  mac->clear();
  for (size_t i = 0; i < 17; i += 3) {
    if (i > 0 && s[i - 1] != ':') return false;
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    int hi = hex(s[i]), lo = hex(s[i + 1]);
    if (hi < 0 || lo < 0) return false;
    mac->push_back(static_cast<uint8_t>(hi << 4 | lo));
  }
  return true;
}

std::string FormatMac(const uint8_t* p, size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; i++) {
    if (i > 0) s += ':';
    s += digits[p[i] >> 4];
    s += digits[p[i] & 15];
  }
  return s;
}

bool OptMac(Napi::Env env, Napi::Object o, const char* key, std::optional<std::vector<uint8_t>>* out) {
  std::optional<std::string> s;
  if (!OptStr(env, o, key, &s)) return false;
  if (!s) return true;
  std::vector<uint8_t> mac;
  if (!ParseMac(*s, &mac)) {
    ThrowType(env, std::string("option '") + key + "' must be a MAC like 02:00:00:00:00:01");
    return false;
  }
  *out = std::move(mac);
  return true;
}

bool OptIfName(Napi::Env env, Napi::Object o, const char* key, std::optional<std::string>* out) {
  if (!OptStr(env, o, key, out)) return false;
  if (*out && ((*out)->empty() || (*out)->size() > 15 || (*out)->find('/') != std::string::npos)) {
    ThrowType(env, std::string("option '") + key + "' must be an interface name of 1-15 chars");
    return false;
  }
  return true;
}

// Closes an fd at scope exit (netns fds passed in IFLA_NET_NS_FD).
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

// Runs fn(socket) in the netns with a freshly opened rtnetlink socket.
template <typename F>
SysError WithSocket(const std::optional<std::string>& netns, F fn) {
  return RunInNetns(netns, [&]() {
    NlSocket s;
    SysError e = s.Open();
    if (!e.ok()) return e;
    return fn(s);
  });
}

// ---------------------------------------------------------------------------
// links

struct Link {
  int ifindex = 0;
  std::string name;
  uint32_t mtu = 0;
  std::vector<uint8_t> mac;
  bool up = false;
  std::optional<std::string> kind;
  std::optional<uint32_t> peer_ifindex;
  std::optional<int32_t> link_netnsid;
};

bool ParseLink(const nlmsghdr* h, Link* l) {
  if (h->nlmsg_type != RTM_NEWLINK || h->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) return false;
  const auto* ifi = static_cast<const ifinfomsg*>(NLMSG_DATA(h));
  AttrTable tb = ParseMsgAttrs(h, sizeof(ifinfomsg), IFLA_MAX);
  l->ifindex = ifi->ifi_index;
  l->up = (ifi->ifi_flags & IFF_UP) != 0;
  if (tb[IFLA_IFNAME]) l->name = AttrStr(tb[IFLA_IFNAME]);
  if (tb[IFLA_MTU]) l->mtu = AttrU32(tb[IFLA_MTU]);
  if (tb[IFLA_ADDRESS]) {
    auto* p = static_cast<const uint8_t*>(AttrData(tb[IFLA_ADDRESS]));
    l->mac.assign(p, p + AttrLen(tb[IFLA_ADDRESS]));
  }
  if (tb[IFLA_LINKINFO]) {
    AttrTable li = ParseNested(tb[IFLA_LINKINFO], IFLA_INFO_MAX);
    if (li[IFLA_INFO_KIND]) l->kind = AttrStr(li[IFLA_INFO_KIND]);
  }
  // For a veth this is the peer's ifindex (in the peer's netns, which
  // IFLA_LINK_NETNSID identifies when it differs from ours).
  if (tb[IFLA_LINK]) l->peer_ifindex = AttrU32(tb[IFLA_LINK]);
  if (tb[IFLA_LINK_NETNSID]) l->link_netnsid = static_cast<int32_t>(AttrU32(tb[IFLA_LINK_NETNSID]));
  return true;
}

Napi::Object LinkToJs(Napi::Env env, const Link& l) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("ifindex", l.ifindex);
  o.Set("name", l.name);
  o.Set("mtu", l.mtu);
  o.Set("mac", FormatMac(l.mac.data(), l.mac.size()));
  o.Set("up", l.up);
  if (l.kind) o.Set("kind", *l.kind);
  if (l.peer_ifindex) o.Set("peerIfindex", *l.peer_ifindex);
  if (l.link_netnsid) o.Set("linkNetnsid", *l.link_netnsid);
  return o;
}

NlMsg GetLinkMsg(uint16_t flags) {
  NlMsg m(RTM_GETLINK, flags);
  ifinfomsg ifi;
  memset(&ifi, 0, sizeof ifi);
  m.Header(ifi);
  m.U32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  return m;
}

// ifindex -> name for the namespace the socket lives in.
SysError LinkNames(NlSocket& s, std::map<int, std::string>* names) {
  NlMsg m = GetLinkMsg(0);
  return s.Dump(
      m, "RTM_GETLINK",
      [&](const nlmsghdr* h) {
        Link l;
        if (ParseLink(h, &l)) (*names)[l.ifindex] = l.name;
      },
      [&]() { names->clear(); });
}

Napi::Value LinkAddVeth(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  std::optional<std::string> netns, peer_netns;
  std::string name, peer;
  Napi::Object opts;
  std::optional<int64_t> mtu;
  std::optional<std::vector<uint8_t>> mac, peer_mac;
  if (!a.Netns(0, &netns) || !a.IfName(1, "name", &name) || !a.IfName(2, "peerName", &peer) ||
      !a.Obj(3, "opts", true, &opts) || !OptStrOrNull(env, opts, "peerNetns", &peer_netns) ||
      !OptInt(env, opts, "mtu", 68, 65535, &mtu) || !OptMac(env, opts, "mac", &mac) ||
      !OptMac(env, opts, "peerMac", &peer_mac)) {
    return env.Undefined();
  }
  SysError e = WithSocket(netns, [&](NlSocket& s) {
    Fd peer_fd;
    if (peer_netns) {
      SysError oe = OpenNetns(*peer_netns, &peer_fd.fd);
      if (!oe.ok()) return oe;
    }
    NlMsg m(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
    ifinfomsg ifi;
    memset(&ifi, 0, sizeof ifi);
    m.Header(ifi);
    m.Str(IFLA_IFNAME, name);
    if (mtu) m.U32(IFLA_MTU, static_cast<uint32_t>(*mtu));
    if (mac) m.Attr(IFLA_ADDRESS, mac->data(), mac->size());
    size_t li = m.Begin(IFLA_LINKINFO);
    m.Str(IFLA_INFO_KIND, "veth");
    size_t data = m.Begin(IFLA_INFO_DATA);
    size_t pe = m.Begin(VETH_INFO_PEER);
    m.Header(ifi);
    m.Str(IFLA_IFNAME, peer);
    // The peer is created directly in its target namespace, so its name only
    // has to be unique there (a pod's "eth0" never clashes with ours).
    if (peer_fd.fd >= 0) m.U32(IFLA_NET_NS_FD, static_cast<uint32_t>(peer_fd.fd));
    if (mtu) m.U32(IFLA_MTU, static_cast<uint32_t>(*mtu));
    if (peer_mac) m.Attr(IFLA_ADDRESS, peer_mac->data(), peer_mac->size());
    m.End(pe);
    m.End(data);
    m.End(li);
    return s.Request(m, "RTM_NEWLINK");
  });
  if (!e.ok()) return ThrowSys(env, e);
  return env.Undefined();
}

// linkGet / linkGetByIndex: a single RTM_GETLINK; ENODEV means "no such link".
Napi::Value GetOneLink(Napi::Env env, const std::optional<std::string>& netns, const std::string* name, int ifindex) {
  Link l;
  bool found = false;
  SysError e = WithSocket(netns, [&](NlSocket& s) {
    NlMsg m = GetLinkMsg(0);
    if (name != nullptr) {
      m.Str(IFLA_IFNAME, *name);
    } else {
      m.At<ifinfomsg>(NLMSG_HDRLEN)->ifi_index = ifindex;
    }
    SysError re = s.Request(m, "RTM_GETLINK", [&](const nlmsghdr* h) { found = ParseLink(h, &l) || found; });
    if (re.err == ENODEV) return SysError::Ok();
    return re;
  });
  if (!e.ok()) return ThrowSys(env, e);
  if (!found) return env.Undefined();
  return LinkToJs(env, l);
}

Napi::Value LinkGet(const Napi::CallbackInfo& info) {
  Args a(info);
  std::optional<std::string> netns;
  std::string name;
  if (!a.Netns(0, &netns) || !a.IfName(1, "name", &name)) return a.env().Undefined();
  return GetOneLink(a.env(), netns, &name, 0);
}

Napi::Value LinkGetByIndex(const Napi::CallbackInfo& info) {
  Args a(info);
  std::optional<std::string> netns;
  int32_t ifindex;
  if (!a.Netns(0, &netns) || !a.Int32(1, "ifindex", 1, INT32_MAX, &ifindex)) return a.env().Undefined();
  return GetOneLink(a.env(), netns, nullptr, ifindex);
}

Napi::Value LinkList(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  std::optional<std::string> netns;
  if (!a.Netns(0, &netns)) return env.Undefined();
  std::vector<Link> links;
  SysError e = WithSocket(netns, [&](NlSocket& s) {
    NlMsg m = GetLinkMsg(0);
    return s.Dump(
        m, "RTM_GETLINK",
        [&](const nlmsghdr* h) {
          Link l;
          if (ParseLink(h, &l)) links.push_back(std::move(l));
        },
        [&]() { links.clear(); });
  });
  if (!e.ok()) return ThrowSys(env, e);
  Napi::Array out = Napi::Array::New(env, links.size());
  for (size_t i = 0; i < links.size(); i++) out.Set(i, LinkToJs(env, links[i]));
  return out;
}

Napi::Value LinkSet(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  std::optional<std::string> netns, new_name, target_ns;
  std::string name;
  Napi::Object opts;
  std::optional<bool> up;
  std::optional<int64_t> mtu;
  std::optional<std::vector<uint8_t>> mac;
  if (!a.Netns(0, &netns) || !a.IfName(1, "name", &name) || !a.Obj(2, "opts", false, &opts) ||
      !OptBool(env, opts, "up", &up) || !OptInt(env, opts, "mtu", 68, 65535, &mtu) ||
      !OptMac(env, opts, "mac", &mac) || !OptIfName(env, opts, "newName", &new_name) ||
      !OptStr(env, opts, "netnsPath", &target_ns)) {
    return env.Undefined();
  }
  SysError e = WithSocket(netns, [&](NlSocket& s) {
    int ifindex;
    SysError ie = IfIndex(name, &ifindex);
    if (!ie.ok()) return ie;
    Fd ns_fd;
    if (target_ns) {
      SysError oe = OpenNetns(*target_ns, &ns_fd.fd);
      if (!oe.ok()) return oe;
    }
    NlMsg m(RTM_NEWLINK, 0);
    ifinfomsg ifi;
    memset(&ifi, 0, sizeof ifi);
    ifi.ifi_index = ifindex;
    if (up) {
      ifi.ifi_change = IFF_UP;
      ifi.ifi_flags = *up ? IFF_UP : 0;
    }
    m.Header(ifi);
    // The kernel moves the link first and applies the rest in the new netns.
    if (ns_fd.fd >= 0) m.U32(IFLA_NET_NS_FD, static_cast<uint32_t>(ns_fd.fd));
    if (new_name) m.Str(IFLA_IFNAME, *new_name);
    if (mtu) m.U32(IFLA_MTU, static_cast<uint32_t>(*mtu));
    if (mac) m.Attr(IFLA_ADDRESS, mac->data(), mac->size());
    return s.Request(m, "RTM_NEWLINK");
  });
  if (!e.ok()) return ThrowSys(env, e);
  return env.Undefined();
}

SysError DeleteLink(const std::optional<std::string>& netns, const std::string& name, bool* removed) {
  return WithSocket(netns, [&](NlSocket& s) {
    NlMsg m(RTM_DELLINK, 0);
    ifinfomsg ifi;
    memset(&ifi, 0, sizeof ifi);
    m.Header(ifi);
    m.Str(IFLA_IFNAME, name);
    SysError re = s.Request(m, "RTM_DELLINK");
    if (re.err == ENODEV) return SysError::Ok();
    *removed = re.ok();
    return re;
  });
}

Napi::Value LinkDel(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  std::optional<std::string> netns;
  std::string name;
  if (!a.Netns(0, &netns) || !a.IfName(1, "name", &name)) return env.Undefined();
  bool removed = false;
  SysError e = DeleteLink(netns, name, &removed);
  if (!e.ok()) return ThrowSys(env, e);
  return Napi::Boolean::New(env, removed);
}

// Deleting a veth waits for an RCU grace period in the kernel (~15-20 ms):
// the async form runs on a libuv worker so that many DELs overlap their waits
// instead of queueing on the event loop.
class LinkDelWorker : public Napi::AsyncWorker {
 public:
  LinkDelWorker(Napi::Env env, std::optional<std::string> netns, std::string name)
      : Napi::AsyncWorker(env, "sluice:linkDel"), deferred_(Napi::Promise::Deferred::New(env)),
        netns_(std::move(netns)), name_(std::move(name)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override { result_ = DeleteLink(netns_, name_, &removed_); }
  void OnOK() override {
    Napi::Env env = Env();
    if (result_.ok()) deferred_.Resolve(Napi::Boolean::New(env, removed_));
    else deferred_.Reject(NewSysError(env, result_));
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::optional<std::string> netns_;
  std::string name_;
  SysError result_;
  bool removed_ = false;
};

Napi::Value LinkDelAsync(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  std::optional<std::string> netns;
  std::string name;
  if (!a.Netns(0, &netns) || !a.IfName(1, "name", &name)) return env.Undefined();
  auto* worker = new LinkDelWorker(env, std::move(netns), std::move(name));
  Napi::Promise promise = worker->Promise();
  worker->Queue();  // deletes itself after OnOK
  return promise;
}

// ---------------------------------------------------------------------------
// addresses

SysError AddrMsg(NlSocket& s, uint16_t cmd, uint16_t flags, int ifindex, const IpAddr& ip, int prefix,
                 uint32_t ifa_flags, const char* what) {
  NlMsg m(cmd, flags);
  ifaddrmsg ifa;
  memset(&ifa, 0, sizeof ifa);
  ifa.ifa_family = static_cast<uint8_t>(ip.family);
  ifa.ifa_prefixlen = static_cast<uint8_t>(prefix);
  ifa.ifa_flags = static_cast<uint8_t>(ifa_flags & 0xff);
  ifa.ifa_index = static_cast<uint32_t>(ifindex);
  m.Header(ifa);
  // Local and peer address equal: a plain (non point-to-point) address.
  m.Attr(IFA_LOCAL, ip.bytes, ip.len());
  m.Attr(IFA_ADDRESS, ip.bytes, ip.len());
  if (ifa_flags != 0) m.U32(IFA_FLAGS, ifa_flags);
  return s.Request(m, what);
}

bool CidrArg(Args& a, size_t i, IpAddr* ip, int* prefix) {
  std::string cidr;
  if (!a.Str(i, "cidr", &cidr)) return false;
  if (!ParseCidr(cidr, ip, prefix)) {
    ThrowType(a.env(), "argument 'cidr' must be an address/prefix like 10.1.0.5/24 or fd00::5/64, got '" + cidr + "'");
    return false;
  }
  return true;
}

Napi::Value AddrAdd(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  std::optional<std::string> netns;
  std::string ifname;
  IpAddr ip;
  int prefix;
  Napi::Object opts;
  std::optional<bool> nodad;
  if (!a.Netns(0, &netns) || !a.IfName(1, "ifname", &ifname) || !CidrArg(a, 2, &ip, &prefix) ||
      !a.Obj(3, "opts", true, &opts) || !OptBool(env, opts, "noDad", &nodad)) {
    return env.Undefined();
  }
  // DAD only exists for IPv6; skipping it makes the address usable at once.
  uint32_t flags = (ip.family == AF_INET6 && nodad.value_or(false)) ? IFA_F_NODAD : 0;
  SysError e = WithSocket(netns, [&](NlSocket& s) {
    int ifindex;
    SysError ie = IfIndex(ifname, &ifindex);
    if (!ie.ok()) return ie;
    return AddrMsg(s, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, ifindex, ip, prefix, flags, "RTM_NEWADDR");
  });
  if (!e.ok()) return ThrowSys(env, e);
  return env.Undefined();
}

Napi::Value AddrDel(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  std::optional<std::string> netns;
  std::string ifname;
  IpAddr ip;
  int prefix;
  if (!a.Netns(0, &netns) || !a.IfName(1, "ifname", &ifname) || !CidrArg(a, 2, &ip, &prefix)) {
    return env.Undefined();
  }
  bool removed = false;
  SysError e = WithSocket(netns, [&](NlSocket& s) {
    int ifindex;
    SysError ie = IfIndex(ifname, &ifindex);
    if (ie.err == ENODEV) return SysError::Ok();  // no link, so no address
    if (!ie.ok()) return ie;
    SysError re = AddrMsg(s, RTM_DELADDR, 0, ifindex, ip, prefix, 0, "RTM_DELADDR");
    if (re.err == EADDRNOTAVAIL) return SysError::Ok();
    removed = re.ok();
    return re;
  });
  if (!e.ok()) return ThrowSys(env, e);
  return Napi::Boolean::New(env, removed);
}

struct Addr {
  int ifindex;
  std::string ifname;
  int family;
  std::string address;
  int prefix;
};

Napi::Value AddrList(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  std::optional<std::string> netns;
  std::string ifname;
  bool filter = !a.IsNullish(1);
  if (!a.Netns(0, &netns) || (filter && !a.IfName(1, "ifname", &ifname))) return env.Undefined();
  std::vector<Addr> addrs;
  SysError e = WithSocket(netns, [&](NlSocket& s) {
    std::map<int, std::string> names;
    SysError le = LinkNames(s, &names);
    if (!le.ok()) return le;
    int want = 0;
    if (filter) {
      for (auto& kv : names) {
        if (kv.second == ifname) want = kv.first;
      }
      if (want == 0) return SysError::Ok();  // no such link: no addresses
    }
    NlMsg m(RTM_GETADDR, 0);
    ifaddrmsg ifa;
    memset(&ifa, 0, sizeof ifa);
    m.Header(ifa);
    return s.Dump(
        m, "RTM_GETADDR",
        [&](const nlmsghdr* h) {
          if (h->nlmsg_type != RTM_NEWADDR || h->nlmsg_len < NLMSG_LENGTH(sizeof(ifaddrmsg))) return;
          const auto* am = static_cast<const ifaddrmsg*>(NLMSG_DATA(h));
          if (am->ifa_family != AF_INET && am->ifa_family != AF_INET6) return;
          int idx = static_cast<int>(am->ifa_index);
          if (filter && idx != want) return;
          AttrTable tb = ParseMsgAttrs(h, sizeof(ifaddrmsg), IFA_MAX);
          // IFA_LOCAL is the address itself; IFA_ADDRESS is the peer on
          // point-to-point links. IPv6 usually sends only IFA_ADDRESS.
          const rtattr* at = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
          size_t alen = am->ifa_family == AF_INET ? 4 : 16;
          if (at == nullptr || AttrLen(at) < alen) return;
          auto it = names.find(idx);
          addrs.push_back(Addr{idx, it == names.end() ? "" : it->second, am->ifa_family == AF_INET ? 4 : 6,
                               FormatIp(am->ifa_family, AttrData(at)), am->ifa_prefixlen});
        },
        [&]() { addrs.clear(); });
  });
  if (!e.ok()) return ThrowSys(env, e);
  Napi::Array out = Napi::Array::New(env, addrs.size());
  for (size_t i = 0; i < addrs.size(); i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("ifindex", addrs[i].ifindex);
    o.Set("ifname", addrs[i].ifname);
    o.Set("family", addrs[i].family);
    o.Set("address", addrs[i].address);
    o.Set("prefixLen", addrs[i].prefix);
    out.Set(i, o);
  }
  return out;
}

// ---------------------------------------------------------------------------
// routes

struct RouteSpec {
  IpAddr dst;
  int dst_len = 0;
  std::optional<IpAddr> gateway;
  std::optional<std::string> dev;
  std::optional<IpAddr> src;
  std::optional<uint8_t> scope;
  bool onlink = false;
  uint32_t table = RT_TABLE_MAIN;
  std::optional<uint32_t> metric;
  bool local = false;  // type local: delivered to this host (table local)
};

bool ParseScope(const std::string& s, uint8_t* out) {
  if (s == "universe") *out = RT_SCOPE_UNIVERSE;
  else if (s == "link") *out = RT_SCOPE_LINK;
  else if (s == "host") *out = RT_SCOPE_HOST;
  else return false;
  return true;
}

const char* ScopeName(uint8_t s) {
  switch (s) {
    case RT_SCOPE_UNIVERSE: return "universe";
    case RT_SCOPE_LINK: return "link";
    case RT_SCOPE_HOST: return "host";
    default: return nullptr;
  }
}

bool RouteArg(Args& a, size_t i, RouteSpec* r) {
  Napi::Env env = a.env();
  Napi::Object o;
  std::optional<std::string> dst, gw, src, scope, type;
  std::optional<bool> onlink;
  std::optional<int64_t> table, metric;
  if (!a.Obj(i, "route", false, &o) || !OptStr(env, o, "dst", &dst) || !OptStr(env, o, "gateway", &gw) ||
      !OptIfName(env, o, "dev", &r->dev) || !OptStr(env, o, "src", &src) || !OptStr(env, o, "scope", &scope) ||
      !OptBool(env, o, "onlink", &onlink) || !OptInt(env, o, "table", 1, UINT32_MAX, &table) ||
      !OptInt(env, o, "metric", 0, UINT32_MAX, &metric) || !OptStr(env, o, "type", &type)) {
    return false;
  }
  if (type && *type != "unicast" && *type != "local") {
    ThrowType(env, "route.type must be 'unicast' or 'local'");
    return false;
  }
  r->local = type && *type == "local";
  if (!dst || !ParseCidr(*dst, &r->dst, &r->dst_len)) {
    ThrowType(env, "route.dst must be a CIDR like 10.0.0.0/24 or ::/0");
    return false;
  }
  auto addr = [&](const std::optional<std::string>& s, const char* what, std::optional<IpAddr>* out) {
    if (!s) return true;
    IpAddr ip;
    if (!ParseIp(*s, &ip) || ip.family != r->dst.family) {
      ThrowType(env, std::string("route.") + what + " must be an address of the same family as dst");
      return false;
    }
    *out = ip;
    return true;
  };
  if (!addr(gw, "gateway", &r->gateway) || !addr(src, "src", &r->src)) return false;
  if (scope) {
    uint8_t sc;
    if (!ParseScope(*scope, &sc)) {
      ThrowType(env, "route.scope must be 'universe', 'link' or 'host'");
      return false;
    }
    r->scope = sc;
  }
  r->onlink = onlink.value_or(false);
  if (table) r->table = static_cast<uint32_t>(*table);
  if (metric) r->metric = static_cast<uint32_t>(*metric);
  if (r->local && !table) r->table = RT_TABLE_LOCAL;
  return true;
}

SysError RouteMsg(NlSocket& s, uint16_t cmd, uint16_t flags, const RouteSpec& r, int oif, const char* what) {
  NlMsg m(cmd, flags);
  rtmsg rt;
  memset(&rt, 0, sizeof rt);
  rt.rtm_family = static_cast<uint8_t>(r.dst.family);
  rt.rtm_dst_len = static_cast<uint8_t>(r.dst_len);
  rt.rtm_table = static_cast<uint8_t>(r.table < 256 ? r.table : RT_TABLE_UNSPEC);
  if (cmd == RTM_DELROUTE) {
    // Unset fields are wildcards for a delete (as in `ip route del`).
    rt.rtm_scope = r.scope.value_or(RT_SCOPE_NOWHERE);
    if (r.local) rt.rtm_type = RTN_LOCAL;
  } else if (r.local) {
    rt.rtm_protocol = RTPROT_BOOT;
    rt.rtm_type = RTN_LOCAL;
    rt.rtm_scope = r.scope.value_or(RT_SCOPE_HOST);
  } else {
    rt.rtm_protocol = RTPROT_BOOT;
    rt.rtm_type = RTN_UNICAST;
    // Like iproute2: a route without a gateway is directly connected.
    rt.rtm_scope = r.scope.value_or(r.gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK);
  }
  if (r.onlink) rt.rtm_flags |= RTNH_F_ONLINK;
  m.Header(rt);
  if (r.dst_len > 0) m.Attr(RTA_DST, r.dst.bytes, r.dst.len());
  if (r.gateway) m.Attr(RTA_GATEWAY, r.gateway->bytes, r.gateway->len());
  if (r.src) m.Attr(RTA_PREFSRC, r.src->bytes, r.src->len());
  if (oif > 0) m.U32(RTA_OIF, static_cast<uint32_t>(oif));
  if (r.metric) m.U32(RTA_PRIORITY, *r.metric);
  m.U32(RTA_TABLE, r.table);
  return s.Request(m, what);
}

Napi::Value RouteChange(const Napi::CallbackInfo& info, uint16_t cmd, uint16_t flags, const char* what) {
  Args a(info);
  Napi::Env env = a.env();
  std::optional<std::string> netns;
  RouteSpec r;
  if (!a.Netns(0, &netns) || !RouteArg(a, 1, &r)) return env.Undefined();
  bool removed = false;
  SysError e = WithSocket(netns, [&](NlSocket& s) {
    int oif = 0;
    if (r.dev) {
      SysError ie = IfIndex(*r.dev, &oif);
      if (cmd == RTM_DELROUTE && ie.err == ENODEV) return SysError::Ok();  // link gone: so is the route
      if (!ie.ok()) return ie;
    }
    SysError re = RouteMsg(s, cmd, flags, r, oif, what);
    if (cmd == RTM_DELROUTE && re.err == ESRCH) return SysError::Ok();
    removed = re.ok();
    return re;
  });
  if (!e.ok()) return ThrowSys(env, e);
  if (cmd == RTM_DELROUTE) return Napi::Boolean::New(env, removed);
  return env.Undefined();
}

Napi::Value RouteAdd(const Napi::CallbackInfo& info) {
  return RouteChange(info, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, "RTM_NEWROUTE");
}
Napi::Value RouteReplace(const Napi::CallbackInfo& info) {
  return RouteChange(info, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, "RTM_NEWROUTE");
}
Napi::Value RouteDel(const Napi::CallbackInfo& info) { return RouteChange(info, RTM_DELROUTE, 0, "RTM_DELROUTE"); }

struct RouteOut {
  std::string dst;
  std::optional<std::string> gateway, dev, src;
  const char* scope = nullptr;
  bool onlink = false;
  uint32_t table = 0;
  std::optional<uint32_t> metric;
};

Napi::Value RouteList(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  std::optional<std::string> netns;
  int32_t fam;
  if (!a.Netns(0, &netns) || !a.Int32(1, "family", 4, 6, &fam)) return env.Undefined();
  if (fam != 4 && fam != 6) return ThrowType(env, "argument 'family' must be 4 or 6");
  const int af = fam == 4 ? AF_INET : AF_INET6;
  std::vector<RouteOut> routes;
  SysError e = WithSocket(netns, [&](NlSocket& s) {
    std::map<int, std::string> names;
    SysError le = LinkNames(s, &names);
    if (!le.ok()) return le;
    NlMsg m(RTM_GETROUTE, 0);
    rtmsg rt;
    memset(&rt, 0, sizeof rt);
    rt.rtm_family = static_cast<uint8_t>(af);
    m.Header(rt);
    return s.Dump(
        m, "RTM_GETROUTE",
        [&](const nlmsghdr* h) {
          if (h->nlmsg_type != RTM_NEWROUTE || h->nlmsg_len < NLMSG_LENGTH(sizeof(rtmsg))) return;
          const auto* rm = static_cast<const rtmsg*>(NLMSG_DATA(h));
          if (rm->rtm_family != af || rm->rtm_type != RTN_UNICAST || (rm->rtm_flags & RTM_F_CLONED)) return;
          AttrTable tb = ParseMsgAttrs(h, sizeof(rtmsg), RTA_MAX);
          uint32_t table = tb[RTA_TABLE] ? AttrU32(tb[RTA_TABLE]) : rm->rtm_table;
          if (table != RT_TABLE_MAIN) return;
          const size_t alen = af == AF_INET ? 4 : 16;
          auto ip = [&](const rtattr* at) -> std::optional<std::string> {
            if (at == nullptr || AttrLen(at) < alen) return std::nullopt;
            return FormatIp(af, AttrData(at));
          };
          RouteOut r;
          uint8_t zero[16] = {0};
          std::optional<std::string> dst = ip(tb[RTA_DST]);
          r.dst = (dst ? *dst : FormatIp(af, zero)) + "/" + std::to_string(rm->rtm_dst_len);
          r.gateway = ip(tb[RTA_GATEWAY]);
          r.src = ip(tb[RTA_PREFSRC]);
          int oif = tb[RTA_OIF] ? static_cast<int>(AttrU32(tb[RTA_OIF])) : 0;
          unsigned nh_flags = rm->rtm_flags;
          // Multipath routes: report the first nexthop.
          if (tb[RTA_MULTIPATH] && oif == 0 && AttrLen(tb[RTA_MULTIPATH]) >= sizeof(rtnexthop)) {
            const auto* nh = static_cast<const rtnexthop*>(AttrData(tb[RTA_MULTIPATH]));
            if (nh->rtnh_len >= sizeof(rtnexthop) && nh->rtnh_len <= AttrLen(tb[RTA_MULTIPATH])) {
              oif = nh->rtnh_ifindex;
              nh_flags |= nh->rtnh_flags;
              AttrTable nt = ParseAttrs(RTNH_DATA(nh), nh->rtnh_len - RTNH_LENGTH(0), RTA_MAX);
              if (!r.gateway) r.gateway = ip(nt[RTA_GATEWAY]);
            }
          }
          if (oif > 0) {
            auto it = names.find(oif);
            if (it != names.end()) r.dev = it->second;
          }
          r.scope = ScopeName(rm->rtm_scope);
          r.onlink = (nh_flags & RTNH_F_ONLINK) != 0;
          r.table = table;
          if (tb[RTA_PRIORITY]) r.metric = AttrU32(tb[RTA_PRIORITY]);
          routes.push_back(std::move(r));
        },
        [&]() { routes.clear(); });
  });
  if (!e.ok()) return ThrowSys(env, e);
  Napi::Array out = Napi::Array::New(env, routes.size());
  for (size_t i = 0; i < routes.size(); i++) {
    const RouteOut& r = routes[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("dst", r.dst);
    if (r.gateway) o.Set("gateway", *r.gateway);
    if (r.dev) o.Set("dev", *r.dev);
    if (r.src) o.Set("src", *r.src);
    if (r.scope) o.Set("scope", r.scope);
    o.Set("onlink", r.onlink);
    o.Set("table", r.table);
    if (r.metric) o.Set("metric", *r.metric);
    out.Set(i, o);
  }
  return out;
}

// ---------------------------------------------------------------------------
// neighbours

Napi::Value NeighAdd(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  std::optional<std::string> netns, dev, ip_s, mac_s;
  Napi::Object o;
  std::optional<bool> permanent;
  if (!a.Netns(0, &netns) || !a.Obj(1, "neigh", false, &o) || !OptIfName(env, o, "dev", &dev) ||
      !OptStr(env, o, "ip", &ip_s) || !OptBool(env, o, "permanent", &permanent)) {
    return env.Undefined();
  }
  std::optional<std::vector<uint8_t>> mac;
  if (!OptMac(env, o, "mac", &mac)) return env.Undefined();
  IpAddr ip;
  if (!dev) return ThrowType(env, "neigh.dev is required");
  if (!ip_s || !ParseIp(*ip_s, &ip)) return ThrowType(env, "neigh.ip must be an IPv4 or IPv6 address");
  if (!mac) return ThrowType(env, "neigh.mac is required");
  SysError e = WithSocket(netns, [&](NlSocket& s) {
    int ifindex;
    SysError ie = IfIndex(*dev, &ifindex);
    if (!ie.ok()) return ie;
    NlMsg m(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE);
    ndmsg nd;
    memset(&nd, 0, sizeof nd);
    nd.ndm_family = static_cast<uint8_t>(ip.family);
    nd.ndm_ifindex = ifindex;
    // Non-permanent entries start REACHABLE and age out to STALE, after which
    // the kernel revalidates them on use.
    nd.ndm_state = permanent.value_or(false) ? NUD_PERMANENT : NUD_REACHABLE;
    m.Header(nd);
    m.Attr(NDA_DST, ip.bytes, ip.len());
    m.Attr(NDA_LLADDR, mac->data(), mac->size());
    return s.Request(m, "RTM_NEWNEIGH");
  });
  if (!e.ok()) return ThrowSys(env, e);
  return env.Undefined();
}

// ---------------------------------------------------------------------------
// policy routing rules

// ruleAdd(netns|null, { family: 4|6, fwmark, fwmask, table, priority, ipProto?, sport? }):
// `ip rule add fwmark M/MASK [ipproto P] [sport S] lookup TABLE pref PRIORITY`.
// Idempotent: the same rule already there is left as it is.
Napi::Value RuleAdd(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Env env = a.env();
  std::optional<std::string> netns;
  Napi::Object o;
  std::optional<int64_t> family, fwmark, fwmask, table, priority, ipProto, sport;
  if (!a.Netns(0, &netns) || !a.Obj(1, "rule", false, &o) || !OptInt(env, o, "family", 4, 6, &family) ||
      !OptInt(env, o, "fwmark", 0, UINT32_MAX, &fwmark) || !OptInt(env, o, "fwmask", 0, UINT32_MAX, &fwmask) ||
      !OptInt(env, o, "table", 1, UINT32_MAX, &table) || !OptInt(env, o, "priority", 0, UINT32_MAX, &priority) ||
      !OptInt(env, o, "ipProto", 1, 255, &ipProto) || !OptInt(env, o, "sport", 1, 65535, &sport)) {
    return env.Undefined();
  }
  if (!family || (*family != 4 && *family != 6)) return ThrowType(env, "rule.family must be 4 or 6");
  if (!fwmark || !table || !priority) return ThrowType(env, "rule.fwmark, rule.table and rule.priority are required");
  SysError e = WithSocket(netns, [&](NlSocket& s) {
    NlMsg m(RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL);
    fib_rule_hdr h;
    memset(&h, 0, sizeof h);
    h.family = *family == 4 ? AF_INET : AF_INET6;
    h.action = FR_ACT_TO_TBL;
    h.table = *table < 256 ? static_cast<uint8_t>(*table) : static_cast<uint8_t>(RT_TABLE_UNSPEC);
    m.Header(h);
    m.U32(FRA_FWMARK, static_cast<uint32_t>(*fwmark));
    m.U32(FRA_FWMASK, static_cast<uint32_t>(fwmask.value_or(UINT32_MAX)));
    m.U32(FRA_TABLE, static_cast<uint32_t>(*table));
    m.U32(FRA_PRIORITY, static_cast<uint32_t>(*priority));
    if (ipProto) {
      uint8_t p = static_cast<uint8_t>(*ipProto);
      m.Attr(FRA_IP_PROTO, &p, sizeof p);
    }
    if (sport) {
      fib_rule_port_range r{static_cast<uint16_t>(*sport), static_cast<uint16_t>(*sport)};
      m.Attr(FRA_SPORT_RANGE, &r, sizeof r);
    }
    SysError re = s.Request(m, "RTM_NEWRULE");
    return re.err == EEXIST ? SysError::Ok() : re;
  });
  if (!e.ok()) return ThrowSys(env, e);
  return env.Undefined();
}

}  // namespace

void RegisterNetlink(Napi::Env env, Napi::Object exports) {
  exports.Set("linkAddVeth", Napi::Function::New(env, LinkAddVeth, "linkAddVeth"));
  exports.Set("linkGet", Napi::Function::New(env, LinkGet, "linkGet"));
  exports.Set("linkGetByIndex", Napi::Function::New(env, LinkGetByIndex, "linkGetByIndex"));
  exports.Set("linkList", Napi::Function::New(env, LinkList, "linkList"));
  exports.Set("linkSet", Napi::Function::New(env, LinkSet, "linkSet"));
  exports.Set("linkDel", Napi::Function::New(env, LinkDel, "linkDel"));
  exports.Set("linkDelAsync", Napi::Function::New(env, LinkDelAsync, "linkDelAsync"));
  exports.Set("addrAdd", Napi::Function::New(env, AddrAdd, "addrAdd"));
  exports.Set("addrDel", Napi::Function::New(env, AddrDel, "addrDel"));
  exports.Set("addrList", Napi::Function::New(env, AddrList, "addrList"));
  exports.Set("routeAdd", Napi::Function::New(env, RouteAdd, "routeAdd"));
  exports.Set("routeReplace", Napi::Function::New(env, RouteReplace, "routeReplace"));
  exports.Set("routeDel", Napi::Function::New(env, RouteDel, "routeDel"));
  exports.Set("routeList", Napi::Function::New(env, RouteList, "routeList"));
  exports.Set("neighAdd", Napi::Function::New(env, NeighAdd, "neighAdd"));
  exports.Set("ruleAdd", Napi::Function::New(env, RuleAdd, "ruleAdd"));
}

}  // namespace sluice
