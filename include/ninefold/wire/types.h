// Vocabulary of the 9P wire: dialects, qids, payload views, limits and constants.
//
// Decoded messages are *views*: string_view fields and Data payloads point into the frame
// they were decoded from, so a decoded message is valid only while that frame's bytes are.
// Copy what you keep (std::string(msg.name)). Encoding reads the same views, so a message
// can be built from any strings the caller owns for the duration of the Encode call.
#ifndef NINEFOLD_WIRE_TYPES_H_
#define NINEFOLD_WIRE_TYPES_H_

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "ninefold/base/result.h"

namespace ninefold::wire {

// The three protocol dialects. Tversion/Rversion choose one per connection.
enum class Dialect : uint8_t { k9P2000, k9P2000u, k9P2000L };

// A set of dialects, one bit per Dialect.
using DialectSet = uint8_t;
constexpr DialectSet Bit(Dialect d) { return static_cast<DialectSet>(1u << static_cast<int>(d)); }
constexpr DialectSet kOnly9P2000 = Bit(Dialect::k9P2000);
constexpr DialectSet kOnlyDotU = Bit(Dialect::k9P2000u);
constexpr DialectSet kOnlyDotL = Bit(Dialect::k9P2000L);
constexpr DialectSet kClassic = kOnly9P2000 | kOnlyDotU;  // 9P2000 and 9P2000.u
constexpr DialectSet kDotUOrL = kOnlyDotU | kOnlyDotL;
constexpr DialectSet kAllDialects = kClassic | kOnlyDotL;

// "9P2000", "9P2000.u", "9P2000.L": the version strings Tversion carries.
std::string_view DialectName(Dialect d);
// The dialect a version string names, matched exactly as on the wire; nullopt otherwise.
std::optional<Dialect> ParseDialect(std::string_view version);

constexpr uint16_t kNoTag = 0xFFFF;
constexpr uint32_t kNoFid = 0xFFFFFFFF;
constexpr uint32_t kNoUid = 0xFFFFFFFF;  // n_uname "none" in 9P2000.u / .L
constexpr size_t kMaxWalkElements = 16;  // MAXWELEM
constexpr size_t kHeaderSize = 7;        // size[4] type[1] tag[2]
// Bytes of an Rread/Twrite frame that are not data: the iounit is msize minus this.
constexpr size_t kIoHeaderSize = 24;

// Qid types (the high bits of a 9P2000 mode).
// 9P2000 mode bits above the permissions (stat mode, Tcreate perm); .u adds the rest.
constexpr uint32_t kDmDir = 0x80000000;
constexpr uint32_t kDmSymlink = 0x02000000;    // .u
constexpr uint32_t kDmLink = 0x01000000;       // .u
constexpr uint32_t kDmDevice = 0x00800000;     // .u
constexpr uint32_t kDmNamedPipe = 0x00200000;  // .u
constexpr uint32_t kDmSocket = 0x00100000;     // .u
constexpr uint32_t kDmSetuid = 0x00080000;     // .u
constexpr uint32_t kDmSetgid = 0x00040000;     // .u

enum QidType : uint8_t {
  kQtDir = 0x80,
  kQtAppend = 0x40,
  kQtExcl = 0x20,
  kQtMount = 0x10,
  kQtAuth = 0x08,
  kQtTmp = 0x04,
  kQtSymlink = 0x02,  // 9P2000.u / .L
  kQtLink = 0x01,     // 9P2000.u / .L
  kQtFile = 0x00,
};

// 9P2000.L field values, as the Linux kernel's include/net/9p/9p.h names them.
// Tgetattr.request_mask and Rgetattr.valid (P9_GETATTR_*).
constexpr uint64_t kGetattrMode = 0x1;
constexpr uint64_t kGetattrNlink = 0x2;
constexpr uint64_t kGetattrUid = 0x4;
constexpr uint64_t kGetattrGid = 0x8;
constexpr uint64_t kGetattrRdev = 0x10;
constexpr uint64_t kGetattrAtime = 0x20;
constexpr uint64_t kGetattrMtime = 0x40;
constexpr uint64_t kGetattrCtime = 0x80;
constexpr uint64_t kGetattrIno = 0x100;
constexpr uint64_t kGetattrSize = 0x200;
constexpr uint64_t kGetattrBlocks = 0x400;
constexpr uint64_t kGetattrBtime = 0x800;
constexpr uint64_t kGetattrGen = 0x1000;
constexpr uint64_t kGetattrDataVersion = 0x2000;
constexpr uint64_t kGetattrBasic = 0x7ff;  // mode through blocks: what stat(2) has
constexpr uint64_t kGetattrAll = 0x3fff;
// Tsetattr.valid (P9_SETATTR_*): which fields to apply; *_SET means "to the time given",
// else "to now".
constexpr uint32_t kSetattrMode = 0x1;
constexpr uint32_t kSetattrUid = 0x2;
constexpr uint32_t kSetattrGid = 0x4;
constexpr uint32_t kSetattrSize = 0x8;
constexpr uint32_t kSetattrAtime = 0x10;
constexpr uint32_t kSetattrMtime = 0x20;
constexpr uint32_t kSetattrCtime = 0x40;
constexpr uint32_t kSetattrAtimeSet = 0x80;
constexpr uint32_t kSetattrMtimeSet = 0x100;
// Tlock/Tgetlock/Rgetlock.type (P9_LOCK_TYPE_*) and Tlock.flags (P9_LOCK_FLAGS_*).
constexpr uint8_t kLockTypeRead = 0;
constexpr uint8_t kLockTypeWrite = 1;
constexpr uint8_t kLockTypeUnlock = 2;
constexpr uint32_t kLockFlagBlock = 1;
constexpr uint32_t kLockFlagReclaim = 2;
// Txattrcreate.flags: setxattr(2)'s XATTR_CREATE and XATTR_REPLACE.
constexpr uint32_t kXattrCreate = 1;
constexpr uint32_t kXattrReplace = 2;

// What the decoder accepts. Frames larger than msize and strings longer than max_string
// are errors; nothing the decoder allocates is ever larger than the frame.
struct Limits {
  uint32_t msize = 16u << 20;  // before Tversion/Rversion: the largest frame we accept
  uint32_t max_string = 8192;  // path components, names, symlink targets, error strings
};

// A fixed-capacity sequence (walk names, walk qids): decoding never allocates for it.
template <class T, size_t N>
class BoundedVector {
 public:
  BoundedVector() = default;
  BoundedVector(std::initializer_list<T> items) {
    NINEFOLD_CHECK(items.size() <= N);
    for (const T& item : items) items_[size_++] = item;
  }
  static constexpr size_t capacity() { return N; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Returns false (and changes nothing) when full.
  [[nodiscard]] bool push_back(const T& item) {
    if (size_ == N) return false;
    items_[size_++] = item;
    return true;
  }
  void clear() { size_ = 0; }
  T& operator[](size_t i) { return items_[i]; }
  const T& operator[](size_t i) const { return items_[i]; }
  const T* begin() const { return items_.data(); }
  const T* end() const { return items_.data() + size_; }
  T* begin() { return items_.data(); }
  T* end() { return items_.data() + size_; }
  bool operator==(const BoundedVector& o) const {
    return std::equal(begin(), end(), o.begin(), o.end());
  }

 private:
  std::array<T, N> items_{};
  size_t size_ = 0;
};

// A count[4]-prefixed payload (Twrite, Rread, Rreaddir): a view, never a copy.
struct Data {
  std::span<const std::byte> bytes;

  Data() = default;
  explicit Data(std::span<const std::byte> b) : bytes(b) {}
  explicit Data(std::string_view s)
      : bytes(reinterpret_cast<const std::byte*>(s.data()), s.size()) {}
  size_t size() const { return bytes.size(); }
  std::string_view AsString() const {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
  }
  bool operator==(const Data& o) const {
    return std::equal(bytes.begin(), bytes.end(), o.bytes.begin(), o.bytes.end());
  }
};

}  // namespace ninefold::wire

#endif  // NINEFOLD_WIRE_TYPES_H_
