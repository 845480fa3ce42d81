// Table-driven round trip: every alternative of wire::Message, in every dialect it exists
// in, is filled with varied values, encoded, decoded, compared, re-encoded byte for byte
// and printed. The loop runs over the Message variant itself, so a message cannot exist
// without being tested here.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <variant>
#include <vector>

#include "ninefold/wire/codec.h"

namespace ninefold::wire {
namespace {

constexpr Dialect kDialects[] = {Dialect::k9P2000, Dialect::k9P2000u, Dialect::k9P2000L};

// Fills every field present in `d` with values drawn from `rng`; absent fields keep their
// defaults (they are not on the wire, so they could not survive a round trip).
class Filler {
 public:
  Filler(uint32_t seed, Dialect d) : rng_(seed), d_(d) {
    payload_.resize(4096);
    for (auto& b : payload_) b = static_cast<std::byte>(rng_());
  }

  template <class T>
  requires std::is_unsigned_v<T>
  void Fill(T& v) {
    // Edge values as often as ordinary ones.
    switch (rng_() % 4) {
      case 0:
        v = 0;
        break;
      case 1:
        v = static_cast<T>(~T{0});
        break;
      default:
        v = static_cast<T>(rng_() * 0x9E3779B97F4A7C15ull);
        break;
    }
  }
  void Fill(std::string_view& v) {
    static const std::string kLong(300, 'x');
    static const std::string_view kPool[] = {"", "a", "glenda", "it's", "ñandú/\xff\n", kLong};
    v = kPool[rng_() % std::size(kPool)];
  }
  void Fill(Data& v) {
    size_t n = rng_() % 3 == 0 ? 0 : rng_() % payload_.size();
    v = Data(std::span<const std::byte>(payload_).first(n));
  }
  void Fill(std::optional<uint32_t>& v) {
    if (rng_() % 2) {
      v.reset();
    } else {
      v = static_cast<uint32_t>(rng_());
    }
  }
  template <class T>
  void Fill(BoundedVector<T, kMaxWalkElements>& v) {
    v.clear();
    size_t n = rng_() % (kMaxWalkElements + 1);
    for (size_t i = 0; i < n; ++i) {
      T item{};
      Fill(item);
      ASSERT_TRUE(v.push_back(item));
    }
  }
  template <Record R>
  void Fill(R& record) {
    std::apply(
        [&](const auto&... desc) {
          ((desc.dialects & Bit(d_) ? Fill(record.*(desc.member)) : void()), ...);
        },
        R::Fields());
  }

 private:
  std::mt19937_64 rng_;
  Dialect d_;
  std::vector<std::byte> payload_;
};

template <class M>
void CheckRoundTrip(Dialect d, uint32_t seed) {
  SCOPED_TRACE(std::string(M::kName) + " in " + std::string(DialectName(d)) + " seed " +
               std::to_string(seed));
  M msg{};
  Filler filler(seed, d);  // owns the payload bytes msg points into
  filler.Fill(msg);
  Frame frame{static_cast<uint16_t>(seed * 7919), msg};

  Result<std::vector<std::byte>> bytes = Encode(frame, d, 1 << 20);
  ASSERT_TRUE(bytes) << bytes.error().ToString();
  ASSERT_EQ(*EncodedSize(frame, d), bytes->size());
  EXPECT_EQ(static_cast<uint8_t>((*bytes)[4]), M::kType);

  Result<Frame> back = Decode(*bytes, d);
  ASSERT_TRUE(back) << back.error().ToString();
  ASSERT_TRUE(std::holds_alternative<M>(back->msg));
  EXPECT_EQ(back->tag, frame.tag);
  EXPECT_TRUE(std::get<M>(back->msg) == msg);

  Result<std::vector<std::byte>> again = Encode(*back, d, 1 << 20);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *bytes);

  // The scatter/gather form is the same bytes, with the payload left in place.
  std::vector<std::byte> head(bytes->size());
  Result<EncodedHead> h = EncodeHead(frame, d, head, 1 << 20);
  ASSERT_TRUE(h) << h.error().ToString();
  head.resize(h->head_size);
  head.insert(head.end(), h->payload.begin(), h->payload.end());
  EXPECT_EQ(head, *bytes);

  // Decoding the head and a payload that lies apart (a shared-memory reference) gives
  // the same message, its data viewing the payload where it lies.
  if (!h->payload.empty()) {
    std::span<const std::byte> apart_head(bytes->data(), h->head_size);
    Result<Frame> split = Decode(apart_head, h->payload, d);
    ASSERT_TRUE(split) << split.error().ToString();
    EXPECT_TRUE(std::get<M>(split->msg) == msg);
    EXPECT_EQ(split->tag, frame.tag);
    std::visit(
        [&](const auto& m) {
          if constexpr (requires { m.data.bytes; }) {
            EXPECT_EQ(m.data.bytes.data(), h->payload.data());
          }
        },
        split->msg);
    // A payload one byte short or long of the count is refused.
    EXPECT_FALSE(Decode(apart_head, h->payload.first(h->payload.size() - 1), d));
  }

  // Printing names the message and every field present in this dialect.
  std::string line = Format(*back, d);
  EXPECT_EQ(line.rfind(std::string(M::kName) + " tag ", 0), 0u) << line;
  auto expect_named = [&](std::string_view name, DialectSet dialects) {
    if (dialects & Bit(d)) {
      std::string needle = " ";  // (not " " + name: GCC 12 warns falsely, -Wrestrict)
      needle.append(name).append(" ");
      EXPECT_NE(line.find(needle), std::string::npos) << name << ": " << line;
    }
  };
  std::apply([&](const auto&... desc) { (expect_named(desc.name, desc.dialects), ...); },
             M::Fields());
}

template <class M>
void CheckMessage() {
  for (Dialect d : kDialects) {
    if (M::kDialects & Bit(d)) {
      for (uint32_t seed = 1; seed <= 40; ++seed) CheckRoundTrip<M>(d, seed);
    } else {
      // Not in this dialect: refused both ways, with the precise code.
      M msg{};
      Result<size_t> size = EncodedSize(Frame{1, msg}, d);
      ASSERT_FALSE(size) << M::kName;
      EXPECT_EQ(size.error().code(), Errc::kWrongDialect);
      Dialect valid =
          (M::kDialects & Bit(Dialect::k9P2000L)) ? Dialect::k9P2000L : Dialect::k9P2000;
      Result<std::vector<std::byte>> bytes = Encode(Frame{1, msg}, valid, 1 << 20);
      ASSERT_TRUE(bytes);
      Result<Frame> back = Decode(*bytes, d);
      ASSERT_FALSE(back) << M::kName;
      EXPECT_EQ(back.error().code(), Errc::kWrongDialect);
    }
  }
}

template <size_t... I>
void CheckAll(std::index_sequence<I...>) {
  (CheckMessage<std::variant_alternative_t<I, Message>>(), ...);
}

TEST(RoundTrip, EveryMessageInEveryDialect) {
  CheckAll(std::make_index_sequence<std::variant_size_v<Message>>());
}

TEST(TypeTable, KnowsExactlyTheMessagesOfTheVariant) {
  size_t known = 0;
  for (int t = 0; t < 256; ++t) {
    if (!TypeName(static_cast<uint8_t>(t)).empty()) {
      ++known;
      EXPECT_NE(TypeDialects(static_cast<uint8_t>(t)), 0) << t;
    }
  }
  EXPECT_EQ(known, std::variant_size_v<Message>);
  EXPECT_EQ(TypeName(110), "Twalk");
  EXPECT_EQ(TypeName(7), "Rlerror");
  EXPECT_EQ(TypeName(106), "");  // Terror does not exist
  EXPECT_EQ(TypeName(6), "");    // nor does Tlerror
}

TEST(TypeTable, DialectsOfTypicalMessages) {
  EXPECT_EQ(TypeDialects(Tversion::kType), kAllDialects);
  EXPECT_EQ(TypeDialects(Rerror::kType), kClassic);
  EXPECT_EQ(TypeDialects(Tstat::kType), kClassic);
  EXPECT_EQ(TypeDialects(Tgetattr::kType), kOnlyDotL);
  EXPECT_EQ(TypeDialects(Rlerror::kType), kOnlyDotL);
}

TEST(Format, MatchesThePlan9Style) {
  Twalk walk;
  walk.fid = 1;
  walk.newfid = 2;
  walk.wnames = {"usr", "glenda"};
  EXPECT_EQ(Format(Frame{3, walk}, Dialect::k9P2000),
            "Twalk tag 3 fid 1 newfid 2 nwname 2 'usr' 'glenda'");
  Rread read;
  std::string data = "hello, world\n";
  read.data = Data(std::string_view(data));
  EXPECT_EQ(Format(Frame{5, read}, Dialect::k9P2000L), "Rread tag 5 count 13 'hello, world\\n'");
  Rwalk rwalk;
  rwalk.wqids = {Qid{kQtDir, 7, 0x2a}};
  EXPECT_EQ(Format(Frame{5, rwalk}, Dialect::k9P2000L),
            "Rwalk tag 5 nwqid 1 (000000000000002a 7 d)");
  Tattach attach;
  attach.fid = 0;
  attach.afid = kNoFid;
  attach.uname = "glenda";
  attach.aname = "";
  attach.n_uname = 1000;
  EXPECT_EQ(Format(Frame{1, attach}, Dialect::k9P2000),
            "Tattach tag 1 fid 0 afid 4294967295 uname 'glenda' aname ''");
  EXPECT_EQ(Format(Frame{1, attach}, Dialect::k9P2000L),
            "Tattach tag 1 fid 0 afid 4294967295 uname 'glenda' aname '' n_uname 1000");
}

}  // namespace
}  // namespace ninefold::wire

namespace ninefold::wire {
namespace {

TEST(DirEntries, DirentsFillAReplyAndReadBack) {
  std::vector<std::byte> out(110);  // room for a (30 bytes) and b (75), not b twice
  size_t used = 0;
  Dirent a{Qid{kQtDir, 1, 2}, 1, 4, "subdir"};
  Dirent b{Qid{kQtFile, 3, 4}, 2, 8, "a-rather-long-file-name-that-will-not-fit-twice.txt"};
  ASSERT_TRUE(AppendDirent(out, &used, a));
  EXPECT_EQ(used, 24u + 6u);
  ASSERT_TRUE(AppendDirent(out, &used, b));
  size_t full = used;
  EXPECT_FALSE(AppendDirent(out, &used, b));  // no room: belongs in the next Rreaddir
  EXPECT_EQ(used, full);

  std::span<const std::byte> data = std::span<const std::byte>(out).first(used);
  Result<Dirent> ra = DecodeDirent(data);
  ASSERT_TRUE(ra);
  EXPECT_EQ(*ra, a);
  Result<Dirent> rb = DecodeDirent(data);
  ASSERT_TRUE(rb);
  EXPECT_EQ(*rb, b);
  EXPECT_TRUE(data.empty());
}

TEST(DirEntries, TruncatedDirentIsAPreciseError) {
  std::vector<std::byte> out(64);
  size_t used = 0;
  ASSERT_TRUE(AppendDirent(out, &used, Dirent{Qid{}, 9, 0, "name"}));
  std::span<const std::byte> data = std::span<const std::byte>(out).first(used - 1);
  Result<Dirent> e = DecodeDirent(data);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code(), Errc::kCountTooLarge);
  EXPECT_EQ(e.error().context(), "Dirent at byte 22: string length 4, 3 left");
}

TEST(DirEntries, StatsInBothClassicDialects) {
  Stat s;
  s.qid = Qid{kQtDir, 0, 77};
  s.mode = 0x80000000u | 0755;
  s.length = 0;
  s.name = "usr";
  s.uid = s.gid = s.muid = "glenda";
  for (Dialect d : {Dialect::k9P2000, Dialect::k9P2000u}) {
    Stat want = s;
    if (d == Dialect::k9P2000u) {
      want.extension = "";
      want.n_uid = want.n_gid = want.n_muid = 1000;
    }
    std::vector<std::byte> out(200);
    size_t used = 0;
    ASSERT_TRUE(AppendDirStat(out, &used, want, d));
    ASSERT_TRUE(AppendDirStat(out, &used, want, d));
    std::span<const std::byte> data = std::span<const std::byte>(out).first(used);
    for (int i = 0; i < 2; ++i) {
      Result<Stat> back = DecodeDirStat(data, d);
      ASSERT_TRUE(back) << back.error().ToString();
      EXPECT_EQ(*back, want);
    }
    EXPECT_TRUE(data.empty());
  }
}

}  // namespace
}  // namespace ninefold::wire
