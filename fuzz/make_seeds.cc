// Writes the seed corpora of the wire fuzzers (run by scripts/run-fuzz.sh):
//
//   make_seeds GOLDEN_DIR DECODE_OUT STREAM_OUT
//
// DECODE_OUT gets one file per frame, prefixed with the dialect selector byte that
// wire_decode_fuzz expects: every frame of every tests/wire/golden capture (*.c2s, *.s2c;
// the dialect followed with wire::Conversation, 9P2000.L until a Tversion/Rversion says
// otherwise), and a sample of every message in every dialect it exists in. STREAM_OUT gets
// the capture files whole and one synthetic conversation per dialect. File names are a
// hash of the contents, so duplicates collapse. A missing or empty GOLDEN_DIR is fine.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "ninefold/wire/conversation.h"

namespace ninefold::wire {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<std::byte>;

constexpr Dialect kDialects[] = {Dialect::k9P2000, Dialect::k9P2000u, Dialect::k9P2000L};
constexpr uint32_t kMsize = 1 << 20;

class SeedDir {
 public:
  explicit SeedDir(fs::path dir) : dir_(std::move(dir)) { fs::create_directories(dir_); }
  void Write(std::span<const std::byte> bytes) {
    uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
    for (std::byte b : bytes) h = (h ^ static_cast<uint8_t>(b)) * 0x100000001b3ull;
    char name[17];
    std::snprintf(name, sizeof name, "%016llx", static_cast<unsigned long long>(h));
    std::ofstream out(dir_ / name, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    ++written_;
  }
  void WriteFrame(Dialect d, std::span<const std::byte> frame) {
    Bytes seed{static_cast<std::byte>(d)};
    seed.insert(seed.end(), frame.begin(), frame.end());
    Write(seed);
  }
  size_t written() const { return written_; }

 private:
  fs::path dir_;
  size_t written_ = 0;
};

Bytes ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Bytes bytes(chars.size());
  std::memcpy(bytes.data(), chars.data(), chars.size());
  return bytes;
}

// Splits a capture into frames by their size fields; the dialect of each frame is the one
// the conversation has learned so far (frames it cannot decode keep the last one known).
void SplitCapture(std::span<const std::byte> stream, SeedDir& decode) {
  Conversation conv;
  Dialect last = Dialect::k9P2000L;
  while (stream.size() >= 4) {
    uint32_t size = 0;
    for (int i = 3; i >= 0; --i) size = (size << 8) | static_cast<uint8_t>(stream[i]);
    if (size < kHeaderSize || size > stream.size()) break;
    std::span<const std::byte> frame = stream.first(size);
    Result<Frame> f = conv.Decode(frame);
    if (f && conv.dialect()) last = *conv.dialect();
    decode.WriteFrame(last, frame);
    stream = stream.subspan(size);
  }
}

// Dirents for a sample Rreaddir: qid[13] offset[8] type[1] name[s], little-endian.
Bytes SampleDirents() {
  Bytes out;
  auto put = [&](uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out.push_back(static_cast<std::byte>(v >> (8 * i)));
  };
  const char* names[] = {".", "..", "hello.txt"};
  for (uint64_t i = 0; i < 3; ++i) {
    put(i == 2 ? kQtFile : kQtDir, 1);
    put(0, 4);
    put(0x1000 + i, 8);
    put(i + 1, 8);
    put(i == 2 ? 8 : 4, 1);
    std::string_view name = names[i];
    put(name.size(), 2);
    for (char c : name) out.push_back(static_cast<std::byte>(c));
  }
  return out;
}

// Every message default-constructed, plus filled samples of the common ones.
std::vector<Frame> SampleFrames(Dialect d) {
  static const Bytes dirents = SampleDirents();
  static const std::string text = "hello, world\n";
  std::vector<Frame> frames;
  [&]<size_t... I>(std::index_sequence<I...>) {
    (frames.push_back(Frame{static_cast<uint16_t>(I), std::variant_alternative_t<I, Message>{}}),
     ...);
  }
  (std::make_index_sequence<std::variant_size_v<Message>>());

  const Qid dir{kQtDir, 3, 0x2a};
  const Qid file{kQtFile, 1, 0x2b};
  frames.push_back({kNoTag, Tversion{.msize = 65536, .version = DialectName(d)}});
  frames.push_back({kNoTag, Rversion{.msize = 65536, .version = DialectName(d)}});
  frames.push_back(
      {1, Tattach{.fid = 0, .afid = kNoFid, .uname = "glenda", .aname = "/", .n_uname = 1000}});
  frames.push_back({1, Rattach{.qid = dir}});
  Twalk walk;
  walk.newfid = 1;
  walk.wnames = {"usr", "glenda", "lib", "profile"};
  frames.push_back({2, walk});
  Rwalk rwalk;
  rwalk.wqids = {dir, dir, dir, file};
  frames.push_back({2, rwalk});
  frames.push_back({3, Tread{.fid = 1, .offset = 0, .count = 8192}});
  frames.push_back({3, Rread{.data = Data(std::string_view(text))}});
  frames.push_back({4, Twrite{.fid = 1, .offset = 13, .data = Data(std::string_view(text))}});
  frames.push_back({5, Rerror{.ename = "file does not exist", .errnum = 2}});
  frames.push_back({5, Rlerror{.ecode = 2}});
  Stat stat{.qid = file,
            .mode = 0644,
            .length = 13,
            .name = "hello.txt",
            .uid = "glenda",
            .gid = "sys",
            .muid = "glenda",
            .extension = "",
            .n_uid = 1000,
            .n_gid = 1000,
            .n_muid = 1000};
  frames.push_back({6, Rstat{.stat = stat}});
  frames.push_back({6, Twstat{.fid = 1, .stat = stat}});
  frames.push_back({7, Tgetattr{.fid = 1, .request_mask = 0x7ff}});
  frames.push_back({7, Rgetattr{.valid = 0x7ff,
                                .qid = file,
                                .mode = 0100644,
                                .uid = 1000,
                                .gid = 1000,
                                .nlink = 1,
                                .size = 13,
                                .blksize = 4096,
                                .blocks = 8}});
  frames.push_back({8, Treaddir{.fid = 1, .offset = 0, .count = 8192}});
  frames.push_back({8, Rreaddir{.data = Data(std::span<const std::byte>(dirents))}});
  frames.push_back(
      {9, Tlcreate{.fid = 1, .name = "new", .flags = 0x241, .mode = 0644, .gid = 1000}});
  frames.push_back({10, Tsymlink{.fid = 1, .name = "link", .symtgt = "hello.txt", .gid = 0}});
  frames.push_back({11, Rreadlink{.target = "hello.txt"}});
  return frames;
}

int Main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: make_seeds GOLDEN_DIR DECODE_OUT STREAM_OUT\n");
    return 2;
  }
  const fs::path golden = argv[1];
  SeedDir decode(argv[2]);
  SeedDir stream(argv[3]);

  size_t captures = 0;
  std::error_code ec;
  if (fs::is_directory(golden, ec)) {
    for (const fs::directory_entry& entry : fs::directory_iterator(golden, ec)) {
      const fs::path& path = entry.path();
      if (!entry.is_regular_file() || (path.extension() != ".c2s" && path.extension() != ".s2c")) {
        continue;
      }
      Bytes bytes = ReadFile(path);
      if (bytes.empty()) continue;
      SplitCapture(bytes, decode);
      stream.Write(bytes);
      ++captures;
    }
  }

  for (Dialect d : kDialects) {
    Bytes conversation;
    for (const Frame& frame : SampleFrames(d)) {
      if (!(TypeDialects(TypeOf(frame.msg)) & Bit(d))) continue;
      Result<Bytes> bytes = Encode(frame, d, kMsize);
      if (!bytes) {
        std::fprintf(stderr, "make_seeds: cannot encode %s in %s: %s\n",
                     std::string(TypeName(TypeOf(frame.msg))).c_str(),
                     std::string(DialectName(d)).c_str(), bytes.error().ToString().c_str());
        return 1;
      }
      decode.WriteFrame(d, *bytes);
      // The stream seed: the samples' Tversion comes first so the conversation learns `d`.
      if (std::holds_alternative<Tversion>(frame.msg) &&
          !std::get<Tversion>(frame.msg).version.empty()) {
        conversation.insert(conversation.begin(), bytes->begin(), bytes->end());
      } else if (!std::holds_alternative<Tversion>(frame.msg) &&
                 !std::holds_alternative<Rversion>(frame.msg)) {
        conversation.insert(conversation.end(), bytes->begin(), bytes->end());
      }
    }
    stream.Write(conversation);
  }
  std::printf("make_seeds: %zu captures; %zu decode seeds, %zu stream seeds\n", captures,
              decode.written(), stream.written());
  return 0;
}

}  // namespace
}  // namespace ninefold::wire

int main(int argc, char** argv) { return ninefold::wire::Main(argc, argv); }
