// Corrupted frames give the exact error the decoder's contract (codec.h) promises: every
// prefix truncated, the size field and every count field shrunk, grown and maxed out, one
// byte flipped everywhere, unknown and foreign type bytes. The sweeps run over every
// alternative of wire::Message in every dialect it exists in; hand-picked cases pin the
// whole Error::ToString() text, byte offset included. Encode's refusals close the file.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "ninefold/wire/codec.h"

namespace ninefold::wire {
namespace {

constexpr Dialect kDialects[] = {Dialect::k9P2000, Dialect::k9P2000u, Dialect::k9P2000L};
constexpr uint32_t kMsize = 1 << 20;

std::vector<std::byte> Bytes(std::initializer_list<unsigned> values) {
  std::vector<std::byte> out;
  for (unsigned v : values) out.push_back(static_cast<std::byte>(v));
  return out;
}
void SetLe16(std::vector<std::byte>& buf, size_t off, uint16_t v) {
  for (int i = 0; i < 2; ++i) buf[off + i] = static_cast<std::byte>(v >> (8 * i));
}
void SetLe32(std::vector<std::byte>& buf, size_t off, uint32_t v) {
  for (int i = 0; i < 4; ++i) buf[off + i] = static_cast<std::byte>(v >> (8 * i));
}
uint32_t GetLe(const std::vector<std::byte>& buf, size_t off, int width) {
  uint32_t v = 0;
  for (int i = 0; i < width; ++i) v |= std::to_integer<uint32_t>(buf[off + i]) << (8 * i);
  return v;
}

std::vector<std::byte> MustEncode(const Frame& frame, Dialect d) {
  Result<std::vector<std::byte>> bytes = Encode(frame, d, kMsize);
  if (!bytes) {
    ADD_FAILURE() << "cannot encode the test frame: " << bytes.error().ToString();
    return {};
  }
  return *std::move(bytes);
}

bool IsDecodeErrc(const std::error_code& code) {
  for (Errc e : {Errc::kTruncated, Errc::kSizeMismatch, Errc::kCountTooLarge, Errc::kStringTooLong,
                 Errc::kFrameTooLarge, Errc::kFrameTooSmall, Errc::kTooManyWalkElements,
                 Errc::kUnknownType, Errc::kWrongDialect}) {
    if (code == e) return true;
  }
  return false;
}

// Decoding `bytes` fails with `code` and, when `text` is given, exactly that ToString().
testing::AssertionResult FailsWith(const std::vector<std::byte>& bytes, Dialect d, Errc code,
                                   std::string_view text = {}, const Limits& limits = {}) {
  Result<Frame> r = Decode(bytes, d, limits);
  if (r) return testing::AssertionFailure() << "decoded: " << Format(*r, d);
  const Error& e = r.error();
  if (e.code() != code || (!text.empty() && e.ToString() != text)) {
    auto failure = testing::AssertionFailure();
    failure << "got \"" << e.ToString() << "\" (" << e.code() << "), want "
            << make_error_code(code);
    if (!text.empty()) failure << " \"" << text << "\"";
    return failure;
  }
  return testing::AssertionSuccess();
}

// Fills every field with a distinct, non-trivial value; walk lists get three elements.
class Sampler {
 public:
  template <class T>
  requires std::is_unsigned_v<T>
  void Fill(T& v) { v = static_cast<T>(0x0123456789ABCDEFull * ++counter_); }
  void Fill(std::string_view& v) {
    static constexpr std::string_view kPool[] = {"glenda", "usr", "", "ñandú", "9P2000.L"};
    v = kPool[counter_++ % std::size(kPool)];
  }
  void Fill(Data& v) { v = Data(std::string_view("hello, world\n")); }
  void Fill(std::optional<uint32_t>& v) { v = 1; }
  template <class T>
  void Fill(BoundedVector<T, kMaxWalkElements>& v) {
    for (int i = 0; i < 3; ++i) {
      T item{};
      Fill(item);
      (void)v.push_back(item);
    }
  }
  template <Record R>
  void Fill(R& record) {
    std::apply([&](const auto&... desc) { (Fill(record.*(desc.member)), ...); }, R::Fields());
  }

 private:
  uint64_t counter_ = 0;
};

template <class Fn, size_t... I>
void ForEachMessage(Fn& fn, std::index_sequence<I...>) {
  (fn(std::variant_alternative_t<I, Message>{}), ...);
}
// Calls fn(M{}) for every alternative M of Message.
template <class Fn>
void ForEachMessage(Fn fn) {
  ForEachMessage(fn, std::make_index_sequence<std::variant_size_v<Message>>());
}

struct Sample {
  std::string name;  // "Twalk in 9P2000.u"
  Dialect dialect;
  std::vector<std::byte> bytes;
};

// Every message in every dialect it exists in, filled by Sampler and encoded.
const std::vector<Sample>& Samples() {
  static const std::vector<Sample> samples = [] {
    std::vector<Sample> out;
    ForEachMessage([&](auto msg) {
      Sampler().Fill(msg);
      for (Dialect d : kDialects) {
        if (!(msg.kDialects & Bit(d))) continue;
        out.push_back({std::string(msg.kName) + " in " + std::string(DialectName(d)), d,
                       MustEncode(Frame{0x1234, msg}, d)});
      }
    });
    return out;
  }();
  return samples;
}

std::vector<std::byte> Prefix(const std::vector<std::byte>& bytes, size_t n) {
  return {bytes.begin(), bytes.begin() + n};
}

// ---------------------------------------------------------------------------------------
// 1. Truncation.

TEST(Corruption, EveryProperPrefixOfEveryMessageIsTruncated) {
  ASSERT_GT(Samples().size(), std::variant_size_v<Message>);
  for (const Sample& s : Samples()) {
    SCOPED_TRACE(s.name);
    ASSERT_TRUE(Decode(s.bytes, s.dialect));
    for (size_t n = 0; n < s.bytes.size(); ++n) {
      EXPECT_TRUE(FailsWith(Prefix(s.bytes, n), s.dialect, Errc::kTruncated)) << "prefix " << n;
    }
  }
}

TEST(Corruption, TruncationNamesWhatIsMissing) {
  auto clunk = MustEncode(Frame{1, Tclunk{.fid = 7}}, Dialect::k9P2000L);
  EXPECT_TRUE(FailsWith(Prefix(clunk, 3), Dialect::k9P2000L, Errc::kTruncated,
                        "truncated frame: size field needs 4 bytes, 3 present"));
  EXPECT_TRUE(FailsWith(Prefix(clunk, 10), Dialect::k9P2000L, Errc::kTruncated,
                        "truncated frame: size 11 but 10 bytes present"));
}

// ---------------------------------------------------------------------------------------
// 2. The size field.

TEST(Corruption, SizeTooSmallWithFrameCutToMatchNeverDecodesButABareTfsync) {
  for (const Sample& s : Samples()) {
    SCOPED_TRACE(s.name);
    const bool is_tfsync = static_cast<uint8_t>(s.bytes[4]) == Tfsync::kType;
    for (size_t k = 1; k + kHeaderSize <= s.bytes.size(); ++k) {
      auto cut = Prefix(s.bytes, s.bytes.size() - k);
      SetLe32(cut, 0, static_cast<uint32_t>(cut.size()));
      Result<Frame> r = Decode(cut, s.dialect);
      if (is_tfsync && k == 4) {  // datasync[4] is optional: the bare `fid` form
        ASSERT_TRUE(r) << r.error().ToString();
        EXPECT_EQ(std::get<Tfsync>(r->msg).datasync, std::nullopt);
        EXPECT_EQ(std::get<Tfsync>(r->msg).fid, GetLe(s.bytes, 7, 4));
        continue;
      }
      ASSERT_FALSE(r) << "cut by " << k << ": " << Format(*r, s.dialect);
      EXPECT_TRUE(r.error().code() == Errc::kSizeMismatch ||
                  r.error().code() == Errc::kCountTooLarge)
          << "cut by " << k << ": " << r.error().ToString();
    }
  }
}

TEST(Corruption, SizeTooSmallReportsTheFieldItCuts) {
  auto clunk = MustEncode(Frame{1, Tclunk{.fid = 7}}, Dialect::k9P2000L);
  clunk.pop_back();
  SetLe32(clunk, 0, 10);
  EXPECT_TRUE(FailsWith(clunk, Dialect::k9P2000L, Errc::kSizeMismatch,
                        "size field disagrees with content: Tclunk.fid at byte 7: "
                        "needs 4 bytes, 3 left"));
  auto write =
      MustEncode(Frame{1, Twrite{.fid = 1, .offset = 2, .data = Data("hello")}}, Dialect::k9P2000L);
  write.pop_back();
  SetLe32(write, 0, 27);
  EXPECT_TRUE(FailsWith(write, Dialect::k9P2000L, Errc::kCountTooLarge,
                        "count larger than the frame: Twrite.count at byte 19: count 5, 4 left"));
}

TEST(Corruption, SizeTooSmallWithoutCuttingIsAMismatch) {
  auto clunk = MustEncode(Frame{1, Tclunk{.fid = 7}}, Dialect::k9P2000L);
  SetLe32(clunk, 0, 10);
  EXPECT_TRUE(FailsWith(clunk, Dialect::k9P2000L, Errc::kSizeMismatch,
                        "size field disagrees with content: size 10 but 11 bytes given"));
}

TEST(Corruption, SizeTooLargeWithTrailingBytesLeavesBytesAfterTheLastField) {
  for (const Sample& s : Samples()) {
    SCOPED_TRACE(s.name);
    for (size_t k : {1, 4, 100}) {
      auto longer = s.bytes;
      longer.resize(s.bytes.size() + k, std::byte{0x5a});
      SetLe32(longer, 0, static_cast<uint32_t>(longer.size()));
      Result<Frame> r = Decode(longer, s.dialect);
      ASSERT_FALSE(r) << "grown by " << k;
      EXPECT_EQ(r.error().code(), Errc::kSizeMismatch);
      EXPECT_TRUE(r.error().context().ends_with(std::to_string(k) + " bytes after the last field"))
          << r.error().ToString();
    }
  }
  auto clunk = MustEncode(Frame{1, Tclunk{.fid = 7}}, Dialect::k9P2000L);
  clunk.resize(14);
  SetLe32(clunk, 0, 14);
  EXPECT_TRUE(FailsWith(clunk, Dialect::k9P2000L, Errc::kSizeMismatch,
                        "size field disagrees with content: Tclunk at byte 11: "
                        "3 bytes after the last field"));
}

TEST(Corruption, SizeTooLargeWithoutTheBytesIsTruncated) {
  for (const Sample& s : Samples()) {
    auto claimed = s.bytes;
    SetLe32(claimed, 0, static_cast<uint32_t>(s.bytes.size() + 1));
    EXPECT_TRUE(FailsWith(claimed, s.dialect, Errc::kTruncated)) << s.name;
  }
}

TEST(Corruption, TfsyncDatasyncIsOptionalButNeverPartial) {
  auto bare = MustEncode(Frame{1, Tfsync{.fid = 9, .datasync = std::nullopt}}, Dialect::k9P2000L);
  ASSERT_EQ(bare.size(), 11u);
  for (size_t k = 1; k <= 4; ++k) {
    auto longer = bare;
    longer.resize(11 + k, std::byte{1});
    SetLe32(longer, 0, static_cast<uint32_t>(longer.size()));
    Result<Frame> r = Decode(longer, Dialect::k9P2000L);
    if (k == 4) {
      ASSERT_TRUE(r) << r.error().ToString();
      EXPECT_EQ(std::get<Tfsync>(r->msg).datasync, 0x01010101u);
    } else {
      EXPECT_TRUE(FailsWith(longer, Dialect::k9P2000L, Errc::kSizeMismatch,
                            "size field disagrees with content: Tfsync.datasync at byte 11: "
                            "needs 4 bytes, " +
                                std::to_string(k) + " left"));
    }
  }
}

TEST(Corruption, SizeOutsideHeaderAndMsize) {
  auto frame = Bytes({0, 0, 0, 0, Rclunk::kType, 0, 0});
  for (uint32_t size = 0; size < 7; ++size) {
    SetLe32(frame, 0, size);
    EXPECT_TRUE(FailsWith(frame, Dialect::k9P2000L, Errc::kFrameTooSmall,
                          "frame smaller than its header: size " + std::to_string(size) + " < 7"));
  }
  SetLe32(frame, 0, 0xFFFFFFFF);
  EXPECT_TRUE(FailsWith(frame, Dialect::k9P2000L, Errc::kFrameTooLarge,
                        "frame larger than msize: size 4294967295 > msize 16777216"));
  auto version =
      MustEncode(Frame{kNoTag, Tversion{.msize = 8192, .version = "9P2000.L"}}, Dialect::k9P2000L);
  ASSERT_EQ(version.size(), 21u);
  EXPECT_TRUE(FailsWith(version, Dialect::k9P2000L, Errc::kFrameTooLarge,
                        "frame larger than msize: size 21 > msize 20", {.msize = 20}));
  EXPECT_TRUE(Decode(version, Dialect::k9P2000L, {.msize = 21}));
}

// ---------------------------------------------------------------------------------------
// 3. Count fields. Layouts: size[4] type[1] tag[2], then the message's fields at byte 7.

TEST(Corruption, PayloadCountsOfTwriteRreadRreaddir) {
  const Data hello("hello");
  struct Case {
    std::string name;
    Dialect dialect;
    std::vector<std::byte> bytes;
    size_t count_at;  // "hello" follows at count_at + 4, the frame ends 5 bytes later
  } cases[] = {
      {"Twrite", Dialect::k9P2000L,
       MustEncode(Frame{1, Twrite{.fid = 1, .offset = 2, .data = hello}}, Dialect::k9P2000L), 19},
      {"Rread", Dialect::k9P2000, MustEncode(Frame{1, Rread{.data = hello}}, Dialect::k9P2000), 7},
      {"Rreaddir", Dialect::k9P2000L,
       MustEncode(Frame{1, Rreaddir{.data = hello}}, Dialect::k9P2000L), 7},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ASSERT_EQ(GetLe(c.bytes, c.count_at, 4), 5u);
    auto with = [&](uint32_t count) {
      auto bytes = c.bytes;
      SetLe32(bytes, c.count_at, count);
      return bytes;
    };
    const std::string field = c.name + ".count at byte " + std::to_string(c.count_at);
    EXPECT_TRUE(FailsWith(with(6), c.dialect, Errc::kCountTooLarge,
                          "count larger than the frame: " + field + ": count 6, 5 left"));
    EXPECT_TRUE(FailsWith(with(0xFFFFFFFF), c.dialect, Errc::kCountTooLarge,
                          "count larger than the frame: " + field + ": count 4294967295, 5 left"));
    EXPECT_TRUE(FailsWith(with(4), c.dialect, Errc::kSizeMismatch,
                          "size field disagrees with content: " + c.name + " at byte " +
                              std::to_string(c.count_at + 8) + ": 1 bytes after the last field"));
    EXPECT_TRUE(FailsWith(with(0), c.dialect, Errc::kSizeMismatch,
                          "size field disagrees with content: " + c.name + " at byte " +
                              std::to_string(c.count_at + 4) + ": 5 bytes after the last field"));
  }
}

TEST(Corruption, TwalkNameLengthsAndNwname) {
  // fid at 7, newfid at 11, nwname at 15, "ab" at 17, "0123456789" at 21; 33 bytes.
  auto walk = MustEncode(Frame{1, Twalk{.fid = 1, .newfid = 2, .wnames = {"ab", "0123456789"}}},
                         Dialect::k9P2000);
  ASSERT_EQ(walk.size(), 33u);
  ASSERT_EQ(GetLe(walk, 21, 2), 10u);
  const Dialect d = Dialect::k9P2000;
  auto with = [&](size_t off, uint16_t v) {
    auto bytes = walk;
    SetLe16(bytes, off, v);
    return bytes;
  };
  EXPECT_TRUE(FailsWith(with(21, 300), d, Errc::kCountTooLarge,
                        "count larger than the frame: Twalk.nwname[1] at byte 21: "
                        "string length 300, 10 left"));
  EXPECT_TRUE(FailsWith(with(21, 0xFFFF), d, Errc::kCountTooLarge,
                        "count larger than the frame: Twalk.nwname[1] at byte 21: "
                        "string length 65535, 10 left"));
  EXPECT_TRUE(FailsWith(with(21, 9), d, Errc::kSizeMismatch,
                        "size field disagrees with content: Twalk at byte 32: "
                        "1 bytes after the last field"));
  // "ab" grown by one swallows the next length's low byte; the next length is then
  // 0x3000 (its high byte 0x00 and '0').
  EXPECT_TRUE(FailsWith(with(17, 3), d, Errc::kCountTooLarge,
                        "count larger than the frame: Twalk.nwname[1] at byte 22: "
                        "string length 12288, 9 left"));
  EXPECT_TRUE(FailsWith(with(15, 3), d, Errc::kSizeMismatch,
                        "size field disagrees with content: Twalk.nwname[2] at byte 33: "
                        "needs 2 bytes, 0 left"));
  EXPECT_TRUE(FailsWith(with(15, 1), d, Errc::kSizeMismatch,
                        "size field disagrees with content: Twalk at byte 21: "
                        "12 bytes after the last field"));
  EXPECT_TRUE(FailsWith(with(15, 16), d, Errc::kSizeMismatch));  // the limit, not over it
  EXPECT_TRUE(FailsWith(with(15, 17), d, Errc::kTooManyWalkElements,
                        "more than 16 walk elements: Twalk.nwname at byte 15: "
                        "nwname 17 exceeds 16"));
  EXPECT_TRUE(FailsWith(with(15, 0xFFFF), d, Errc::kTooManyWalkElements,
                        "more than 16 walk elements: Twalk.nwname at byte 15: "
                        "nwname 65535 exceeds 16"));
}

TEST(Corruption, SeventeenRealWalkElementsAreTooMany) {
  Twalk walk{.fid = 1, .newfid = 2, .wnames = {}};
  for (size_t i = 0; i < kMaxWalkElements; ++i) ASSERT_TRUE(walk.wnames.push_back("d"));
  auto bytes = MustEncode(Frame{1, walk}, Dialect::k9P2000L);
  ASSERT_TRUE(Decode(bytes, Dialect::k9P2000L));
  bytes.insert(bytes.end(), {std::byte{1}, std::byte{0}, std::byte{'e'}});
  SetLe32(bytes, 0, static_cast<uint32_t>(bytes.size()));
  SetLe16(bytes, 15, 17);
  EXPECT_TRUE(FailsWith(bytes, Dialect::k9P2000L, Errc::kTooManyWalkElements));
}

TEST(Corruption, RwalkNwqid) {
  // nwqid at 7, two qid[13] from 9; 35 bytes.
  auto walk = MustEncode(Frame{1, Rwalk{.wqids = {Qid{kQtDir, 1, 2}, Qid{kQtFile, 3, 4}}}},
                         Dialect::k9P2000L);
  ASSERT_EQ(walk.size(), 35u);
  const Dialect d = Dialect::k9P2000L;
  auto with = [&](uint16_t nwqid) {
    auto bytes = walk;
    SetLe16(bytes, 7, nwqid);
    return bytes;
  };
  EXPECT_TRUE(FailsWith(with(3), d, Errc::kSizeMismatch,
                        "size field disagrees with content: Rwalk.nwqid[2] at byte 35: "
                        "needs 1 bytes, 0 left"));
  EXPECT_TRUE(FailsWith(with(1), d, Errc::kSizeMismatch,
                        "size field disagrees with content: Rwalk at byte 22: "
                        "13 bytes after the last field"));
  EXPECT_TRUE(FailsWith(with(17), d, Errc::kTooManyWalkElements,
                        "more than 16 walk elements: Rwalk.nwqid at byte 7: nwqid 17 exceeds 16"));
  EXPECT_TRUE(FailsWith(with(0xFFFF), d, Errc::kTooManyWalkElements));
}

TEST(Corruption, TversionAndTattachStringLengths) {
  // Tversion: msize at 7, version length at 11, "9P2000.L" at 13; 21 bytes.
  auto version =
      MustEncode(Frame{kNoTag, Tversion{.msize = 8192, .version = "9P2000.L"}}, Dialect::k9P2000L);
  const Dialect dl = Dialect::k9P2000L;
  SetLe16(version, 11, 9);
  EXPECT_TRUE(FailsWith(version, dl, Errc::kCountTooLarge,
                        "count larger than the frame: Tversion.version at byte 11: "
                        "string length 9, 8 left"));
  SetLe16(version, 11, 0xFFFF);
  EXPECT_TRUE(FailsWith(version, dl, Errc::kCountTooLarge));
  SetLe16(version, 11, 7);
  EXPECT_TRUE(FailsWith(version, dl, Errc::kSizeMismatch,
                        "size field disagrees with content: Tversion at byte 20: "
                        "1 bytes after the last field"));
  SetLe16(version, 11, 0);
  EXPECT_TRUE(FailsWith(version, dl, Errc::kSizeMismatch));

  // Tattach in 9P2000: fid at 7, afid at 11, uname length at 15, "glenda" at 17, aname
  // length at 23; 25 bytes.
  auto attach =
      MustEncode(Frame{1, Tattach{.fid = 1, .afid = kNoFid, .uname = "glenda", .aname = ""}},
                 Dialect::k9P2000);
  ASSERT_EQ(attach.size(), 25u);
  const Dialect d = Dialect::k9P2000;
  SetLe16(attach, 15, 9);
  EXPECT_TRUE(FailsWith(attach, d, Errc::kCountTooLarge,
                        "count larger than the frame: Tattach.uname at byte 15: "
                        "string length 9, 8 left"));
  SetLe16(attach, 15, 0xFFFF);
  EXPECT_TRUE(FailsWith(attach, d, Errc::kCountTooLarge));
  SetLe16(attach, 15, 7);  // swallows aname's low length byte; one byte is left for two
  EXPECT_TRUE(FailsWith(attach, d, Errc::kSizeMismatch,
                        "size field disagrees with content: Tattach.aname at byte 24: "
                        "needs 2 bytes, 1 left"));
  SetLe16(attach, 15, 5);  // aname's length is then 'a' (97)
  EXPECT_TRUE(FailsWith(attach, d, Errc::kCountTooLarge,
                        "count larger than the frame: Tattach.aname at byte 22: "
                        "string length 97, 1 left"));
}

// Rstat in 9P2000: n[2] at 7, size[2] at 9, then 39 bytes of fixed fields from 11 and the
// strings name "lib" (length at 50), uid "glenda", gid "sys", muid "glenda" (length at 68).
std::vector<std::byte> SampleRstat() {
  Stat st;
  st.type = 1;
  st.dev = 2;
  st.qid = {kQtDir, 3, 4};
  st.mode = 0755 | 0x80000000u;
  st.name = "lib";
  st.uid = "glenda";
  st.gid = "sys";
  st.muid = "glenda";
  return MustEncode(Frame{1, Rstat{.stat = st}}, Dialect::k9P2000);
}

TEST(Corruption, RstatLengthAndStatSizeMustAgree) {
  const auto rstat = SampleRstat();
  ASSERT_EQ(rstat.size(), 76u);
  ASSERT_EQ(GetLe(rstat, 7, 2), 67u);
  ASSERT_EQ(GetLe(rstat, 9, 2), 65u);
  const Dialect d = Dialect::k9P2000;
  auto with = [&](uint16_t n, uint16_t size) {
    auto bytes = rstat;
    SetLe16(bytes, 7, n);
    SetLe16(bytes, 9, size);
    return bytes;
  };
  EXPECT_TRUE(FailsWith(with(68, 65), d, Errc::kCountTooLarge,
                        "count larger than the frame: Rstat.stat at byte 7: "
                        "stat length 68, 67 left"));
  EXPECT_TRUE(FailsWith(with(0xFFFF, 65), d, Errc::kCountTooLarge));
  EXPECT_TRUE(FailsWith(with(66, 65), d, Errc::kSizeMismatch,
                        "size field disagrees with content: Rstat.stat at byte 9: "
                        "stat size 65 disagrees with its 64 bytes"));
  EXPECT_TRUE(FailsWith(with(0, 65), d, Errc::kSizeMismatch));
  EXPECT_TRUE(FailsWith(with(67, 64), d, Errc::kSizeMismatch,
                        "size field disagrees with content: Rstat.stat at byte 9: "
                        "stat size 64 disagrees with its 65 bytes"));
  EXPECT_TRUE(FailsWith(with(67, 66), d, Errc::kSizeMismatch));
  EXPECT_TRUE(FailsWith(with(67, 0xFFFF), d, Errc::kSizeMismatch));
  // Both shrunk consistently: the last string no longer fits in the stat.
  EXPECT_TRUE(FailsWith(with(66, 64), d, Errc::kCountTooLarge,
                        "count larger than the frame: Rstat.stat at byte 68: "
                        "string length 6, 5 left"));
  // The last string shrunk: the stat's declared length is not used up.
  auto short_muid = rstat;
  SetLe16(short_muid, 68, 5);
  EXPECT_TRUE(FailsWith(short_muid, d, Errc::kSizeMismatch,
                        "size field disagrees with content: Rstat.stat at byte 75: "
                        "stat length 67 leaves 1 bytes unused"));
}

// ---------------------------------------------------------------------------------------
// 4. Limits and type bytes.

TEST(Corruption, StringOverTheConfiguredLimit) {
  auto version =
      MustEncode(Frame{kNoTag, Tversion{.msize = 8192, .version = "9P2000.L"}}, Dialect::k9P2000L);
  EXPECT_TRUE(FailsWith(version, Dialect::k9P2000L, Errc::kStringTooLong,
                        "string longer than its limit: Tversion.version at byte 11: "
                        "string length 8 exceeds limit 7",
                        {.max_string = 7}));
  EXPECT_TRUE(Decode(version, Dialect::k9P2000L, {.max_string = 8}));

  auto walk = MustEncode(Frame{1, Twalk{.fid = 1, .newfid = 2, .wnames = {"ab", "0123456789"}}},
                         Dialect::k9P2000);
  EXPECT_TRUE(FailsWith(walk, Dialect::k9P2000, Errc::kStringTooLong,
                        "string longer than its limit: Twalk.nwname[1] at byte 21: "
                        "string length 10 exceeds limit 5",
                        {.max_string = 5}));
  EXPECT_TRUE(FailsWith(SampleRstat(), Dialect::k9P2000, Errc::kStringTooLong,
                        "string longer than its limit: Rstat.stat at byte 50: "
                        "string length 3 exceeds limit 2",
                        {.max_string = 2}));
  const std::string big(Limits{}.max_string + 1, 'x');
  auto readlink = MustEncode(Frame{1, Rreadlink{.target = big}}, Dialect::k9P2000L);
  EXPECT_TRUE(FailsWith(readlink, Dialect::k9P2000L, Errc::kStringTooLong));
}

TEST(Corruption, EveryTypeByteIsUnknownForeignOrDecodedInAMinimalFrame) {
  for (Dialect d : kDialects) {
    // Size of each known message, all fields default, in `d`; 7 means it has no fields.
    std::array<size_t, 256> default_size{};
    ForEachMessage([&](auto msg) {
      if (msg.kDialects & Bit(d)) default_size[msg.kType] = *EncodedSize(Frame{0, msg}, d);
    });
    for (int t = 0; t < 256; ++t) {
      SCOPED_TRACE("type " + std::to_string(t) + " in " + std::string(DialectName(d)));
      auto frame = Bytes({7, 0, 0, 0, static_cast<unsigned>(t), 0, 0});
      if (TypeDialects(t) == 0) {
        EXPECT_TRUE(FailsWith(frame, d, Errc::kUnknownType,
                              "unknown message type: type " + std::to_string(t) + " at byte 4"));
      } else if (!(TypeDialects(t) & Bit(d))) {
        EXPECT_TRUE(FailsWith(frame, d, Errc::kWrongDialect));
      } else if (default_size[t] == kHeaderSize) {
        Result<Frame> r = Decode(frame, d);
        ASSERT_TRUE(r) << r.error().ToString();
        EXPECT_EQ(TypeOf(r->msg), t);
      } else {
        EXPECT_TRUE(FailsWith(frame, d, Errc::kSizeMismatch));
      }
    }
  }
  auto tgetattr = Bytes({7, 0, 0, 0, Tgetattr::kType, 0, 0});
  EXPECT_TRUE(FailsWith(tgetattr, Dialect::k9P2000u, Errc::kWrongDialect,
                        "message type not valid in this dialect: Tgetattr (type 24) in 9P2000.u"));
}

// ---------------------------------------------------------------------------------------
// 5. Arbitrary bytes: an error from the contract's list, with a context, or a frame that
// re-encodes to exactly the bytes it came from.

testing::AssertionResult DecodesOrFailsCleanly(const std::vector<std::byte>& bytes, Dialect d) {
  Result<Frame> r = Decode(bytes, d);
  if (!r) {
    if (IsDecodeErrc(r.error().code()) && !r.error().context().empty()) {
      return testing::AssertionSuccess();
    }
    return testing::AssertionFailure() << "unexpected error: " << r.error().ToString();
  }
  Result<std::vector<std::byte>> again = Encode(*r, d, Limits{}.msize);
  if (!again) return testing::AssertionFailure() << "re-encode: " << again.error().ToString();
  if (*again != bytes)
    return testing::AssertionFailure() << "re-encodes differently: " << Format(*r, d);
  return testing::AssertionSuccess();
}

TEST(Corruption, EveryFlippedByteDecodesOrFailsCleanly) {
  for (const Sample& s : Samples()) {
    SCOPED_TRACE(s.name);
    for (size_t i = 0; i < s.bytes.size(); ++i) {
      for (unsigned mask : {0x01u, 0x80u, 0xFFu}) {
        auto flipped = s.bytes;
        flipped[i] ^= static_cast<std::byte>(mask);
        for (Dialect d : kDialects) {
          EXPECT_TRUE(DecodesOrFailsCleanly(flipped, d)) << "byte " << i << " ^ " << mask;
        }
      }
    }
  }
}

TEST(Corruption, RandomBodiesBehindAValidHeaderDecodeOrFailCleanly) {
  std::mt19937 rng(9);
  for (Dialect d : kDialects) {
    std::vector<uint8_t> types;  // those valid in d, so decoding gets past the header
    for (int t = 0; t < 256; ++t) {
      if (TypeDialects(static_cast<uint8_t>(t)) & Bit(d)) types.push_back(static_cast<uint8_t>(t));
    }
    for (int i = 0; i < 10000; ++i) {
      std::vector<std::byte> frame(kHeaderSize + rng() % 80);
      // Mostly small values: plausible counts and lengths, so decoding gets deep.
      for (auto& b : frame) b = static_cast<std::byte>(rng() % 4 == 0 ? rng() : rng() % 4);
      SetLe32(frame, 0, static_cast<uint32_t>(frame.size()));
      frame[4] = static_cast<std::byte>(types[rng() % types.size()]);
      EXPECT_TRUE(DecodesOrFailsCleanly(frame, d)) << "iteration " << i;
    }
  }
}

// ---------------------------------------------------------------------------------------
// 6. Encode refuses, writing nothing.

TEST(EncodeRefusal, FrameOverMsizeOrBufferTooSmallWritesNothing) {
  const std::string payload(100, 'p');
  const Frame write{1, Twrite{.fid = 1, .offset = 0, .data = Data(std::string_view(payload))}};
  std::vector<std::byte> out(256, std::byte{0xAB});
  const auto untouched = out;

  Result<size_t> r = Encode(write, Dialect::k9P2000L, out, 64);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::kFrameTooLarge);
  EXPECT_EQ(r.error().ToString(), "frame larger than msize: Twrite needs 123 bytes, msize is 64");
  EXPECT_EQ(out, untouched);

  r = Encode(write, Dialect::k9P2000L, std::span(out).first(122), kMsize);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::kTruncated);
  EXPECT_EQ(r.error().ToString(), "truncated frame: output buffer of 122 bytes, 123 needed");
  EXPECT_EQ(out, untouched);

  r = Encode(write, Dialect::k9P2000L, std::span(out).first(123), 123);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(*r, 123u);
}

TEST(EncodeRefusal, StringOver65535BytesWritesNothing) {
  const std::string huge(65536, 'n');
  const Frame walk{1, Twalk{.fid = 1, .newfid = 2, .wnames = {"a", huge}}};
  std::vector<std::byte> out(1 << 17, std::byte{0xAB});
  const auto untouched = out;
  Result<size_t> r = Encode(walk, Dialect::k9P2000L, out, kMsize);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::kStringTooLong);
  EXPECT_EQ(r.error().ToString(),
            "string longer than its limit: string of 65536 bytes exceeds 65535");
  EXPECT_EQ(out, untouched);
  EXPECT_FALSE(EncodedSize(walk, Dialect::k9P2000L));
  EXPECT_FALSE(Encode(walk, Dialect::k9P2000L, kMsize));

  const std::string most(65535, 'n');
  EXPECT_TRUE(Encode(Frame{1, Rreadlink{.target = most}}, Dialect::k9P2000L, kMsize));
}

TEST(EncodeRefusal, StatOver65533BytesIsACountTooLarge) {
  const std::string half(40000, 's');
  Stat st;
  st.name = half;
  st.uid = half;
  Result<size_t> r = EncodedSize(Frame{1, Rstat{.stat = st}}, Dialect::k9P2000);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::kCountTooLarge);
}

}  // namespace
}  // namespace ninefold::wire
