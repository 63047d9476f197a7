// The DNS proxy's memo of answers that change nothing: an upstream answer
// that repeats, byte for byte apart from its id and its answer records' TTLs,
// one the agent has learned and programmed, and whose TTLs keep every
// address's expiry within the cache's refresh slack, teaches nothing new. The
// proxy's batched upstream sockets (native/udpbatch.cc) judge each datagram
// here as it is read, so JavaScript skips parsing and learning for it and only
// matches it to its query and releases it (src/dns/proxy.ts, MEMO).
//
//   new AnswerMemo(slots, minTtlMs, graceMs[, secondSight])
//       slots: a power of two from 4, in sets of four (an answer goes in its
//       set's empty slot, else over the oldest one). secondSight: an answer is
//       remembered the second time it is learned, not the first (SECOND
//       SIGHT: a name asked once costs the memo nothing; its table's pages
//       stay untouched and no copy of the answer is made)
//   remember(msg, ranges: Float64Array, count) → boolean
//       after `msg` was learned and its allows written: ranges[3k], ranges[3k+1]
//       is the window [lo, hi) of CLOCK_MONOTONIC ms within which a repeat's
//       expiry for the k-th A/AAAA record of the answer section changes nothing,
//       and ranges[3k+2] the earliest expiry its allows were programmed with;
//       count must be the number of A/AAAA records. False: not memoizable, or
//       its first sight.
//   check(msg, nowMs) → 0 | HIT | REFRESH (| ADDRESSES)   (tests; the sockets call it natively)
//   forget(name)     the memo's answers whose question or a CNAME target is `name`
//                    (normalized text) change something now: they miss from here on
//   clear()          all of them
//   hits, misses, stored
//
// REFRESH: a repeat with every byte and name a hit needs, but an expiry
// outside its window (it would move an expiry: it must be learned), while
// every address's allows are programmed for at least the grace from now. It
// may go to its pod before it is learned: what it opens is open, and its
// learning (the expiries moved later) follows at once (src/dns/proxy.ts).
//
// What makes a hit safe (fail closed: a hit writes nothing, so at worst it
// releases an answer whose allows the agent would have written again):
// - identical bytes outside the id and the answer records' TTL fields, the
//   answer section only A, AAAA and CNAME records framed exactly as the
//   proxy's parser frames them, every name of plain letters, digits, '-' and
//   '_' (so its text here is the agent's normalized name), no compression
//   pointer into a TTL field or the id, and a question without a pointer
//   (its bytes then compare with the pending query's question);
// - every learned address's new expiry (now + max(TTL, min TTL) + grace)
//   inside its window;
// - none of the answer's names forgotten since it was remembered: a
//   generation per name hash (a collision only forgets more).
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "addon.h"

namespace sluice {

namespace {

constexpr int kMaxRecords = 32;
constexpr int kMaxNames = 1 + 2 * kMaxRecords;
constexpr size_t kHeader = 12;
constexpr size_t kMaxMessage = 4096;
constexpr uint16_t kTypeA = 1;
constexpr uint16_t kTypeCname = 5;
constexpr uint16_t kTypeAaaa = 28;
// Generations of names by hash (a collision only forgets more): 512 KiB. Every
// answer that moves an expiry forgets its names, so a slot shared with a name
// answered often forgets the other's answers as often: 8,192 slots for the
// qps bench's 22,000 names left a remembered answer a few seconds, not the
// minutes its allows last.
constexpr uint32_t kNameGenerations = 1u << 17;
// SECOND SIGHT: answers learned once, one bit per key hash, 128 KiB: a
// collision only remembers an answer at its first sight (a table of keys
// would let two answers that collide erase each other's mark for ever). The
// bits are cleared when a quarter of them are set.
constexpr uint32_t kSeenBits = 1u << 20;
constexpr uint16_t kAddressRecord = 0x8000;
// Slots per set. Two were too few: the qps bench's 11,000 answers in 16,384
// sets of two left ~15% of them in sets of three or more, where a round of
// queries over the names evicts each before it comes back (83% hits, not 99%).
constexpr size_t kWays = 4;

constexpr uint64_t kFnvOffset = 1469598103934665603ull;
constexpr uint64_t kFnvPrime = 1099511628211ull;

inline uint64_t Fnv(uint64_t h, const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * kFnvPrime;
  return h;
}

inline uint16_t U16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t U32(const uint8_t* p) { return static_cast<uint32_t>(p[0]) << 24 | p[1] << 16 | p[2] << 8 | p[3]; }

// Where an answer's variable parts are: its answer records' TTL fields.
struct Layout {
  int records = 0;
  uint16_t ttl[kMaxRecords];
  bool address[kMaxRecords];
  int addresses = 0;
  // The question's name and every CNAME target: what the answer's learning depends on.
  int names = 0;
  uint16_t nameAt[kMaxNames];
  // Every name's start, for the pointer check.
  int allNames = 0;
  uint16_t allNameAt[kMaxNames];
};

// The end of the name at `at` (a pointer ends it), or 0.
size_t SkipName(const uint8_t* b, size_t len, size_t at, bool pointers) {
  for (int i = 0; i < 128; i++) {
    if (at >= len) return 0;
    uint8_t c = b[at];
    if (c == 0) return at + 1;
    if ((c & 0xc0) == 0xc0) return pointers && at + 1 < len ? at + 2 : 0;
    if (c & 0xc0) return 0;
    at += 1 + c;
  }
  return 0;
}

bool InTtl(const Layout& l, size_t from, size_t to) {
  if (from < 2) return true;  // the id
  for (int i = 0; i < l.records; i++)
    if (from < static_cast<size_t>(l.ttl[i]) + 4 && l.ttl[i] < to) return true;
  return false;
}

inline uint8_t Lower(uint8_t c) { return c >= 'A' && c <= 'Z' ? static_cast<uint8_t>(c + 32) : c; }
inline bool Plain(uint8_t c) {
  c = Lower(c);
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

// The name at `at` read in full (pointers followed back, as the proxy's
// parser does): false if a byte of it lies in a TTL field or the id, a label
// is not plain, or it is no name. With `hash`: FNV-1a of its normalized text
// (lowercase, dot-separated, no trailing dot).
bool ReadName(const uint8_t* b, size_t len, size_t at, const Layout& l, uint64_t* hash) {
  uint64_t h = kFnvOffset;
  size_t segment = at;
  size_t wire = 1;
  bool first = true;
  for (int i = 0; i < 128; i++) {
    if (at >= len) return false;
    uint8_t c = b[at];
    if (c == 0) {
      if (first || InTtl(l, at, at + 1)) return false;  // the root: not a name we learn
      if (hash) *hash = h;
      return true;
    }
    if ((c & 0xc0) == 0xc0) {
      if (at + 1 >= len || InTtl(l, at, at + 2)) return false;
      size_t target = U16(b + at) & 0x3fff;
      if (target >= segment || target < kHeader) return false;
      at = segment = target;
      continue;
    }
    if (c & 0xc0 || at + 1 + c > len || InTtl(l, at, at + 1 + c)) return false;
    wire += 1 + c;
    if (wire > 255) return false;
    if (!first) h = (h ^ '.') * kFnvPrime;
    for (size_t k = at + 1; k <= at + c; k++) {
      if (!Plain(b[k])) return false;
      h = (h ^ Lower(b[k])) * kFnvPrime;
    }
    first = false;
    at += 1 + c;
  }
  return false;
}

// Walks a response: false if it is not one the memo may judge.
bool Walk(const uint8_t* b, size_t len, Layout* l) {
  if (len < kHeader || len > kMaxMessage) return false;
  if (!(b[2] & 0x80) || U16(b + 4) != 1) return false;  // a response with one question
  int an = U16(b + 6);
  if (an > kMaxRecords) return false;
  size_t at = SkipName(b, len, kHeader, false);
  if (!at || at + 4 > len) return false;
  l->nameAt[l->names++] = kHeader;
  l->allNameAt[l->allNames++] = kHeader;
  at += 4;
  for (int i = 0; i < an; i++) {
    l->allNameAt[l->allNames++] = static_cast<uint16_t>(at);
    size_t end = SkipName(b, len, at, true);
    if (!end || end + 10 > len) return false;
    uint16_t type = U16(b + end);
    size_t rdata = end + 10;
    size_t rdlength = U16(b + end + 8);
    if (rdata + rdlength > len) return false;
    if (type == kTypeA || type == kTypeAaaa) {
      if (rdlength != (type == kTypeA ? 4u : 16u)) return false;
      l->address[l->records] = true;
      l->addresses++;
    } else if (type == kTypeCname) {
      if (SkipName(b, len, rdata, true) != rdata + rdlength) return false;
      l->nameAt[l->names++] = static_cast<uint16_t>(rdata);
      l->allNameAt[l->allNames++] = static_cast<uint16_t>(rdata);
      l->address[l->records] = false;
    } else {
      return false;
    }
    l->ttl[l->records++] = static_cast<uint16_t>(end + 4);
    at = rdata + rdlength;
  }
  for (int i = 0; i < l->allNames; i++)
    if (!ReadName(b, len, l->allNameAt[i], *l, nullptr)) return false;
  return true;
}

// An answer's key: FNV-1a of its length, its header after the id and its
// question (which has no pointer), or 0 when it has no such question. A
// newer answer to the same question takes the older's slot.
uint64_t Key(const uint8_t* b, size_t len) {
  if (len < kHeader || len > kMaxMessage) return 0;
  size_t qend = SkipName(b, len, kHeader, false);
  if (!qend || qend + 4 > len) return 0;
  uint64_t h = Fnv(kFnvOffset, reinterpret_cast<const uint8_t*>(&len), sizeof len);
  h = Fnv(h, b + 2, qend + 4 - 2);
  return h ? h : 1;
}

// One remembered answer, in one allocation: its bytes, then per answer
// record its TTL field's offset (u16, kAddressRecord set for an A or AAAA)
// and its expiry window (lo, hi: two doubles; unbounded for a CNAME), then per
// name its generation slot and the generation it was remembered at (two u32),
// then the earliest expiry any of its addresses' allows were programmed with
// (until, one double for the answer: its addresses were learned together).
//
// A repeat is judged without walking it: equal to the remembered bytes at
// every offset but the id and those TTL fields, it has the same records at
// the same places (the walk at remember() vouched for them, pointers too).
//
// 32 bytes, all zero when empty: the table is calloc'ed, so its pages become
// resident only as answers fill them.
struct Entry {
  uint64_t hash;
  uint32_t stamp;  // when remembered (the oldest of a set goes first)
  uint32_t generation;  // 0: empty
  uint8_t* blob;  // malloc'ed
  uint16_t len;
  uint8_t records;
  uint8_t names;
  bool addresses;

  size_t TtlAt(int i) const { return len + 2u * i; }
  size_t RangeAt(int i) const { return len + 2u * records + 16u * i; }
  size_t NameAt(int i) const { return len + 18u * records + 8u * i; }
  size_t UntilAt() const { return len + 18u * records + 8u * names; }
  uint16_t Ttl(int i) const { return At<uint16_t>(TtlAt(i)); }
  double Lo(int i) const { return At<double>(RangeAt(i)); }
  double Hi(int i) const { return At<double>(RangeAt(i) + 8); }
  double Until() const { return At<double>(UntilAt()); }
  uint32_t NameSlot(int i) const { return At<uint32_t>(NameAt(i)); }
  uint32_t NameGeneration(int i) const { return At<uint32_t>(NameAt(i) + 4); }

 private:
  // The blob is bytes: its fields are read without assuming their alignment.
  template <typename T>
  T At(size_t offset) const {
    T v;
    memcpy(&v, blob + offset, sizeof v);
    return v;
  }
};

}  // namespace

class AnswerMemoCore {
 public:
  AnswerMemoCore(uint32_t slots, double minTtlMs, double graceMs, bool secondSight)
      : entries_(static_cast<Entry*>(calloc(slots, sizeof(Entry)))),
        mask_(slots - 1),
        minTtlMs_(minTtlMs),
        graceMs_(graceMs),
        names_(kNameGenerations, 0),
        seen_(secondSight ? static_cast<uint64_t*>(calloc(kSeenBits / 64, sizeof(uint64_t))) : nullptr) {
    if (!entries_ || (secondSight && !seen_)) mask_ = 0, disabled_ = true;  // no table: every answer misses
  }

  ~AnswerMemoCore() {
    free(seen_);
    if (!entries_) return;
    for (uint32_t i = 0; i <= mask_; i++) free(entries_[i].blob);
    free(entries_);
  }

  AnswerMemoCore(const AnswerMemoCore&) = delete;
  AnswerMemoCore& operator=(const AnswerMemoCore&) = delete;

  uint32_t Check(const uint8_t* b, size_t len, double nowMs) {
    uint64_t h = disabled_ ? 0 : Key(b, len);
    if (!h) return Miss();
    const Entry* found = nullptr;
    for (size_t i = (h & mask_) & ~(kWays - 1), k = 0; k < kWays; k++, i++)
      if (entries_[i].generation == generation_ && entries_[i].hash == h) {
        found = &entries_[i];
        break;
      }
    if (!found) return Miss();
    const Entry& e = *found;
    if (e.len != len) return Miss();
    size_t from = 2;
    for (int i = 0; i < e.records; i++) {
      size_t ttl = e.Ttl(i) & ~kAddressRecord;
      if (memcmp(b + from, e.blob + from, ttl - from) != 0) return Miss();
      from = ttl + 4;
    }
    if (memcmp(b + from, e.blob + from, len - from) != 0) return Miss();
    for (int i = 0; i < e.names; i++)
      if (names_[e.NameSlot(i)] != e.NameGeneration(i)) return Miss();
    bool inWindows = true;
    for (int i = 0; i < e.records; i++) {
      uint16_t at = e.Ttl(i);
      if (!(at & kAddressRecord)) continue;
      uint32_t ttl = U32(b + (at & ~kAddressRecord));
      if (ttl >= 0x80000000u) ttl = 0;  // RFC 2181 8, as the parser reads it
      double lifetime = static_cast<double>(ttl) * 1000.0;
      if (lifetime < minTtlMs_) lifetime = minTtlMs_;
      double expires = nowMs + lifetime + graceMs_;
      if (!(expires >= e.Lo(i) && expires < e.Hi(i))) {
        inWindows = false;  // a refresh at most: that needs no more windows
        break;
      }
    }
    uint32_t addresses = e.addresses ? kMemoAddresses : 0;
    if (inWindows) {
      hits_++;
      return kMemoHit | addresses;
    }
    if (!(e.Until() >= nowMs + graceMs_)) return Miss();
    refreshes_++;
    return kMemoRefresh | addresses;
  }

  bool Remember(const uint8_t* b, size_t len, const double* ranges, size_t count) {
    Layout l;
    if (disabled_ || !Walk(b, len, &l) || count != static_cast<size_t>(l.addresses)) return false;
    uint64_t h = Key(b, len);
    // Its own slot of the set if it is there, else an empty one, else the oldest.
    size_t set = (h & mask_) & ~(kWays - 1);
    Entry* slot = nullptr;
    for (size_t i = set; i < set + kWays && !slot; i++)
      if (entries_[i].generation == generation_ && entries_[i].hash == h) slot = &entries_[i];
    if (!slot && seen_) {
      // SECOND SIGHT: not remembered now; noted, so that its next learning is.
      uint32_t bit = static_cast<uint32_t>(h >> 32) & (kSeenBits - 1);
      uint64_t& word = seen_[bit / 64];
      uint64_t mask = uint64_t{1} << (bit % 64);
      if (!(word & mask)) {
        word |= mask;
        if (++seenSet_ > kSeenBits / 4) {
          memset(seen_, 0, kSeenBits / 8);
          seenSet_ = 0;
        }
        return false;
      }
    }
    for (size_t i = set; i < set + kWays && !slot; i++)
      if (entries_[i].generation != generation_) slot = &entries_[i];
    if (!slot) {
      slot = &entries_[set];
      for (size_t i = set + 1; i < set + kWays; i++)
        if (entries_[i].stamp < slot->stamp) slot = &entries_[i];
    }
    Entry& e = *slot;
    e.hash = h;
    e.stamp = ++stamp_;
    e.generation = generation_;
    e.len = static_cast<uint16_t>(len);
    e.records = static_cast<uint8_t>(l.records);
    e.names = static_cast<uint8_t>(l.names);
    e.addresses = l.addresses > 0;
    auto* p = static_cast<uint8_t*>(realloc(e.blob, len + 18u * l.records + 8u * l.names + 8u));
    if (!p) {
      e.generation = 0;  // its old blob is still e.blob: freed with the table
      return false;
    }
    e.blob = p;
    memcpy(p, b, len);
    double until = 1.0 / 0.0;
    for (int i = 0, k = 0; i < l.records; i++) {
      double lo = -1.0 / 0.0, hi = 1.0 / 0.0;
      if (l.address[i]) {
        lo = ranges[3 * k];
        hi = ranges[3 * k + 1];
        if (!(ranges[3 * k + 2] >= until)) until = ranges[3 * k + 2];  // the earliest (a NaN too: never a refresh)
        k++;
      }
      uint16_t at = static_cast<uint16_t>(l.ttl[i] | (l.address[i] ? kAddressRecord : 0));
      memcpy(p + e.TtlAt(i), &at, 2);
      memcpy(p + e.RangeAt(i), &lo, 8);
      memcpy(p + e.RangeAt(i) + 8, &hi, 8);
    }
    for (int i = 0; i < l.names; i++) {
      uint64_t nh = 0;
      ReadName(b, len, l.nameAt[i], l, &nh);  // Walk read it already
      uint32_t nslot = static_cast<uint32_t>(nh & (kNameGenerations - 1));
      memcpy(p + e.NameAt(i), &nslot, 4);
      memcpy(p + e.NameAt(i) + 4, &names_[nslot], 4);
    }
    memcpy(p + e.UntilAt(), &until, 8);
    stored_++;
    return true;
  }

  void Forget(const std::string& name) {
    uint64_t h = kFnvOffset;
    for (unsigned char c : name) h = (h ^ Lower(c)) * kFnvPrime;
    names_[h & (kNameGenerations - 1)]++;
  }

  void Clear() {
    if (++generation_ == 0) generation_ = 1;  // 0 marks an empty slot
  }

  uint64_t hits() const { return hits_; }
  uint64_t misses() const { return misses_; }
  uint64_t refreshes() const { return refreshes_; }
  uint64_t stored() const { return stored_; }

 private:
  uint32_t Miss() {
    misses_++;
    return 0;
  }

  Entry* entries_;
  uint32_t mask_;
  double minTtlMs_;
  double graceMs_;
  std::vector<uint32_t> names_;
  uint64_t* seen_;  // calloc'ed (its pages resident as answers mark them); null: remembered at first sight
  uint32_t seenSet_ = 0;
  uint32_t generation_ = 1;
  uint32_t stamp_ = 0;
  bool disabled_ = false;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
  uint64_t refreshes_ = 0;
  uint64_t stored_ = 0;
};

uint32_t AnswerMemoCheck(AnswerMemoCore* memo, const uint8_t* msg, size_t len, double nowMs) { return memo->Check(msg, len, nowMs); }

namespace {

class AnswerMemo : public Napi::ObjectWrap<AnswerMemo> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "AnswerMemo",
                       {InstanceMethod("remember", &AnswerMemo::Remember), InstanceMethod("check", &AnswerMemo::Check),
                        InstanceMethod("forget", &AnswerMemo::Forget), InstanceMethod("clear", &AnswerMemo::Clear),
                        InstanceAccessor("hits", &AnswerMemo::Hits, nullptr), InstanceAccessor("misses", &AnswerMemo::Misses, nullptr),
                        InstanceAccessor("refreshes", &AnswerMemo::Refreshes, nullptr),
                        InstanceAccessor("stored", &AnswerMemo::Stored, nullptr)});
  }

  explicit AnswerMemo(const Napi::CallbackInfo& info) : Napi::ObjectWrap<AnswerMemo>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber()) {
      ThrowType(env, "new AnswerMemo(slots, minTtlMs, graceMs)");
      return;
    }
    uint32_t slots = info[0].As<Napi::Number>().Uint32Value();
    if (slots < kWays || slots > (1u << 20) || (slots & (slots - 1))) {
      ThrowRange(env, "AnswerMemo: slots must be a power of two from 4 to 2^20");
      return;
    }
    bool secondSight = info.Length() > 3 && info[3].ToBoolean().Value();
    core_ = std::make_unique<AnswerMemoCore>(slots, info[1].As<Napi::Number>().DoubleValue(), info[2].As<Napi::Number>().DoubleValue(), secondSight);
  }

  AnswerMemoCore* core() { return core_.get(); }

 private:
  Napi::Value Remember(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!core_) return env.Undefined();
    if (!info[0].IsBuffer() || !info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array || !info[2].IsNumber())
      return ThrowType(env, "remember(msg: Buffer, ranges: Float64Array, count)");
    auto msg = info[0].As<Napi::Buffer<uint8_t>>();
    auto ranges = info[1].As<Napi::Float64Array>();
    uint32_t count = info[2].As<Napi::Number>().Uint32Value();
    if (3 * static_cast<size_t>(count) > ranges.ElementLength()) return ThrowRange(env, "remember: count is beyond ranges");
    return Napi::Boolean::New(env, core_->Remember(msg.Data(), msg.Length(), ranges.Data(), count));
  }

  Napi::Value Check(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!core_) return env.Undefined();
    if (!info[0].IsBuffer() || !info[1].IsNumber()) return ThrowType(env, "check(msg: Buffer, nowMs)");
    auto msg = info[0].As<Napi::Buffer<uint8_t>>();
    return Napi::Number::New(env, core_->Check(msg.Data(), msg.Length(), info[1].As<Napi::Number>().DoubleValue()));
  }

  Napi::Value Forget(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) return ThrowType(env, "forget(name: string)");
    if (core_) core_->Forget(info[0].As<Napi::String>().Utf8Value());
    return env.Undefined();
  }

  Napi::Value Clear(const Napi::CallbackInfo& info) {
    if (core_) core_->Clear();
    return info.Env().Undefined();
  }

  Napi::Value Hits(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), core_ ? static_cast<double>(core_->hits()) : 0); }
  Napi::Value Misses(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), core_ ? static_cast<double>(core_->misses()) : 0); }
  Napi::Value Refreshes(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), core_ ? static_cast<double>(core_->refreshes()) : 0); }
  Napi::Value Stored(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), core_ ? static_cast<double>(core_->stored()) : 0); }

  std::unique_ptr<AnswerMemoCore> core_;
};

}  // namespace

AnswerMemoCore* AnswerMemoOf(Napi::Env env, Napi::Value v) {
  AddonData* d = Data(env);
  if (!v.IsObject() || d->answer_memo.IsEmpty() || !v.As<Napi::Object>().InstanceOf(d->answer_memo.Value())) return nullptr;
  return AnswerMemo::Unwrap(v.As<Napi::Object>())->core();
}

void RegisterAnswerMemo(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = AnswerMemo::Define(env);
  Data(env)->answer_memo = Napi::Persistent(ctor);
  exports.Set("AnswerMemo", ctor);
}

}  // namespace sluice
