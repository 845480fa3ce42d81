// Golden vectors: real 9P conversations between peers nobody on this team wrote (the
// Linux kernel's v9fs and diod's clients against diod), captured byte for byte by
// scripts/capture-golden.sh (see golden/README.md). Every frame must decode, re-encode to
// the identical bytes, and every reply must answer a request of the matching kind.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "ninefold/wire/conversation.h"

namespace ninefold::wire {
namespace {

namespace fs = std::filesystem;

std::vector<std::byte> ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(chars.size());
  std::transform(chars.begin(), chars.end(), out.begin(), [](char c) { return std::byte(c); });
  return out;
}

std::vector<fs::path> Captures() {
  std::vector<fs::path> out;
  for (const auto& entry : fs::directory_iterator(NINEFOLD_GOLDEN_DIR)) {
    auto ext = entry.path().extension();
    if (ext == ".c2s" || ext == ".s2c") out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The dialect a capture is decoded in: followed from its Tversion/Rversion, except for
// the two server streams whose only frame is diod's Rlerror refusing 9P2000.u/9P2000
// (diod answers in 9P2000.L terms before any version is agreed).
std::optional<Dialect> FixedDialect(const fs::path& path) {
  std::string name = path.filename().string();
  if (name == "kernel-u-c1.s2c" || name == "kernel-9p2000-c1.s2c") return Dialect::k9P2000L;
  return std::nullopt;
}

struct Decoded {
  std::vector<Frame> frames;
  std::vector<std::span<const std::byte>> raw;
};

// Splits and decodes a whole capture; fails the test on any error.
Decoded DecodeCapture(const fs::path& path, const std::vector<std::byte>& bytes) {
  Decoded out;
  Conversation conv(FixedDialect(path));
  std::span<const std::byte> rest(bytes);
  while (!rest.empty()) {
    Result<uint32_t> size = conv.NextFrameSize(rest);
    EXPECT_TRUE(size) << path << ": " << size.error().ToString();
    if (!size || *size > rest.size()) {
      ADD_FAILURE() << path << ": capture ends inside a frame";
      break;
    }
    auto raw = rest.first(*size);
    Result<Frame> frame = conv.Decode(raw);
    EXPECT_TRUE(frame) << path << " at byte " << (raw.data() - bytes.data()) << ": "
                       << frame.error().ToString();
    if (!frame) break;
    out.frames.push_back(*frame);
    out.raw.push_back(raw);
    rest = rest.subspan(*size);
  }
  return out;
}

TEST(Golden, CapturesArePresent) {
  // scripts/capture-golden.sh writes 22 streams; losing some would silently weaken the
  // tests below.
  EXPECT_GE(Captures().size(), 22u);
}

TEST(Golden, EveryFrameDecodesAndReencodesIdentically) {
  size_t total = 0;
  for (const fs::path& path : Captures()) {
    SCOPED_TRACE(path.filename().string());
    std::vector<std::byte> bytes = ReadFile(path);
    ASSERT_FALSE(bytes.empty());
    Decoded d = DecodeCapture(path, bytes);
    Conversation conv(FixedDialect(path));
    for (size_t i = 0; i < d.frames.size(); ++i) {
      ASSERT_TRUE(conv.Decode(d.raw[i]));  // to know the dialect in force for frame i
      Result<std::vector<std::byte>> again =
          Encode(d.frames[i], *conv.dialect(), conv.limits().msize);
      ASSERT_TRUE(again) << again.error().ToString();
      EXPECT_TRUE(std::equal(again->begin(), again->end(), d.raw[i].begin(), d.raw[i].end()))
          << "frame " << i << " re-encodes differently: " << Format(d.frames[i], *conv.dialect());
    }
    total += d.frames.size();
  }
  EXPECT_GT(total, 3000u);
}

// Every reply in an s2c stream answers an outstanding request of the c2s stream with the
// same tag: R type = T type + 1, or an error reply. Tags are free again once answered.
TEST(Golden, RepliesMatchRequestsByTagAndType) {
  for (const fs::path& c2s : Captures()) {
    if (c2s.extension() != ".c2s") continue;
    fs::path s2c = fs::path(c2s).replace_extension(".s2c");
    SCOPED_TRACE(c2s.filename().string());
    std::vector<std::byte> tbytes = ReadFile(c2s), rbytes = ReadFile(s2c);
    Decoded t = DecodeCapture(c2s, tbytes), r = DecodeCapture(s2c, rbytes);
    // Requests and replies interleave in time but each stream keeps its own order: a
    // reply's request is the latest earlier request with that tag not yet answered.
    std::map<uint16_t, std::vector<uint8_t>> outstanding;  // tag -> request types, FIFO
    size_t next_t = 0;
    for (const Frame& reply : r.frames) {
      uint8_t rtype = TypeOf(reply.msg);
      // Admit requests until the one this reply answers is outstanding (replies never
      // precede their requests).
      while (outstanding[reply.tag].empty() && next_t < t.frames.size()) {
        const Frame& req = t.frames[next_t++];
        outstanding[req.tag].push_back(TypeOf(req.msg));
      }
      ASSERT_FALSE(outstanding[reply.tag].empty())
          << "reply " << TypeName(rtype) << " tag " << reply.tag << " answers no request";
      uint8_t ttype = outstanding[reply.tag].front();
      outstanding[reply.tag].erase(outstanding[reply.tag].begin());
      bool is_error = rtype == Rlerror::kType || rtype == Rerror::kType;
      EXPECT_TRUE(is_error || rtype == ttype + 1)
          << TypeName(ttype) << " answered by " << TypeName(rtype) << " tag " << reply.tag;
    }
  }
}

template <class M>
const M& Get(const Frame& f) {
  EXPECT_TRUE(std::holds_alternative<M>(f.msg)) << "expected " << M::kName;
  static const M kEmpty{};
  return std::holds_alternative<M>(f.msg) ? std::get<M>(f.msg) : kEmpty;
}

fs::path Golden(const char* name) { return fs::path(NINEFOLD_GOLDEN_DIR) / name; }

// What the captures are known to say (golden/README.md, "Observed").
TEST(Golden, KernelMountNegotiatesAsDocumented) {
  auto tbytes = ReadFile(Golden("kernel-L-c1.c2s"));
  auto rbytes = ReadFile(Golden("kernel-L-c1.s2c"));
  Decoded t = DecodeCapture(Golden("kernel-L-c1.c2s"), tbytes);
  Decoded r = DecodeCapture(Golden("kernel-L-c1.s2c"), rbytes);
  ASSERT_GE(t.frames.size(), 3u);
  const auto& tv = Get<Tversion>(t.frames[0]);
  EXPECT_EQ(t.frames[0].tag, kNoTag);
  EXPECT_EQ(tv.msize, 131072u);
  EXPECT_EQ(tv.version, "9P2000.L");
  const auto& rv = Get<Rversion>(r.frames[0]);
  EXPECT_EQ(rv.msize, 65536u);
  EXPECT_EQ(rv.version, "9P2000.L");
  const auto& attach = Get<Tattach>(t.frames[1]);
  EXPECT_EQ(attach.afid, kNoFid);
  EXPECT_EQ(attach.uname, "nobody");
  EXPECT_EQ(attach.n_uname, kNoUid);
  // Every Tfsync the kernel sent carries the datasync field.
  for (const Frame& f : t.frames) {
    if (const auto* s = std::get_if<Tfsync>(&f.msg)) {
      EXPECT_TRUE(s->datasync.has_value());
    }
  }
}

TEST(Golden, DiodRefusesOtherDialectsWithRlerror) {
  for (const char* name : {"kernel-u-c1", "kernel-9p2000-c1"}) {
    SCOPED_TRACE(name);
    fs::path c2s = Golden(name).replace_extension(".c2s");
    fs::path s2c = Golden(name).replace_extension(".s2c");
    auto tbytes = ReadFile(c2s), rbytes = ReadFile(s2c);
    Decoded t = DecodeCapture(c2s, tbytes), r = DecodeCapture(s2c, rbytes);
    ASSERT_EQ(t.frames.size(), 1u);
    ASSERT_EQ(r.frames.size(), 1u);
    EXPECT_EQ(Get<Tversion>(t.frames[0]).version,
              std::string(name) == "kernel-u-c1" ? "9P2000.u" : "9P2000");
    EXPECT_EQ(Get<Rlerror>(r.frames[0]).ecode, 5u);  // EIO
  }
}

TEST(Golden, ReaddirPayloadsAreWholeDirents) {
  // Rreaddir data is a sequence of qid[13] offset[8] type[1] name[s] entries that fills
  // the payload exactly; check each one the kernel received.
  auto bytes = ReadFile(Golden("kernel-L-c1.s2c"));
  Decoded r = DecodeCapture(Golden("kernel-L-c1.s2c"), bytes);
  size_t entries = 0;
  for (const Frame& f : r.frames) {
    const auto* rd = std::get_if<Rreaddir>(&f.msg);
    if (rd == nullptr) continue;
    auto p = rd->data.bytes;
    while (!p.empty()) {
      Result<Dirent> e = DecodeDirent(p);
      ASSERT_TRUE(e) << e.error().ToString();
      EXPECT_FALSE(e->name.empty());
      ++entries;
    }
  }
  EXPECT_GT(entries, 10u);
}

}  // namespace
}  // namespace ninefold::wire
