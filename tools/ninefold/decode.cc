// ninefold decode: print a raw 9P byte stream one message per line.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "fmt/format.h"
#include "ninefold/wire/conversation.h"
#include "tools/ninefold/commands.h"

namespace ninefold::tools {
namespace {

struct DecodeOptions {
  std::string dialect;
  std::string file = "-";
  bool offsets = false;
};

// Reads `fd` in chunks and prints each complete frame as soon as it has arrived, so a
// live stream (a pipe from a socket tap) prints as it goes. Returns the exit code.
int RunDecode(const DecodeOptions& opt) {
  std::optional<wire::Dialect> fixed;
  if (!opt.dialect.empty()) {
    static const std::map<std::string, wire::Dialect> kNames = {
        {"9p2000", wire::Dialect::k9P2000},
        {"9p2000.u", wire::Dialect::k9P2000u},
        {"9p2000.l", wire::Dialect::k9P2000L}};
    std::string lower = opt.dialect;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    fixed = kNames.at(lower);  // CLI11 validated it
  }
  int fd = 0;
  std::string name = "<stdin>";
  if (opt.file != "-") {
    fd = ::open(opt.file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      fmt::print(stderr, "ninefold decode: {}: {}\n", opt.file, std::strerror(errno));
      return 2;
    }
    name = opt.file;
  }

  wire::Conversation conv(fixed);
  std::vector<std::byte> buf;
  size_t start = 0;       // first undecoded byte in buf
  uint64_t consumed = 0;  // stream offset of buf[0]
  uint64_t frames = 0;
  bool eof = false;
  int rc = 0;
  while (true) {
    auto rest = std::span<const std::byte>(buf).subspan(start);
    Result<uint32_t> size = conv.NextFrameSize(rest);
    bool complete = size && rest.size() >= *size;
    if (!complete && (!size && size.error().code() != Errc::kTruncated)) {
      fmt::print(stderr, "ninefold decode: {}: frame {} at byte {}: {}\n", name, frames + 1,
                 consumed + start, size.error().ToString());
      rc = 1;
      break;
    }
    if (complete) {
      auto frame = rest.first(*size);
      Result<wire::Frame> f = conv.Decode(frame);
      if (!f) {
        fmt::print(stderr, "ninefold decode: {}: frame {} at byte {}: {}\n", name, frames + 1,
                   consumed + start, f.error().ToString());
        rc = 1;
        break;
      }
      if (opt.offsets) fmt::print("{:>10} ", consumed + start);
      // A version string naming no dialect leaves none chosen; the frame was decoded
      // (and prints) as 9P2000.L, which shares the version messages' layout.
      fmt::print("{}\n", wire::Format(*f, conv.dialect().value_or(wire::Dialect::k9P2000L)));
      start += *size;
      ++frames;
      continue;
    }
    if (eof) {
      if (!rest.empty()) {
        fmt::print(stderr,
                   "ninefold decode: {}: frame {} at byte {}: truncated frame: stream ends "
                   "after {} of its bytes\n",
                   name, frames + 1, consumed + start, rest.size());
        rc = 1;
      }
      break;
    }
    // Need more bytes: drop what is decoded, then read.
    buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(start));
    consumed += start;
    start = 0;
    std::fflush(stdout);
    size_t have = buf.size();
    buf.resize(have + (1 << 16));
    ssize_t n;
    do {
      n = ::read(fd, buf.data() + have, 1 << 16);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      fmt::print(stderr, "ninefold decode: {}: {}\n", name, std::strerror(errno));
      rc = 2;
      break;
    }
    buf.resize(have + static_cast<size_t>(n));
    eof = n == 0;
  }
  if (fd != 0) ::close(fd);
  return rc;
}

}  // namespace

void AddDecodeCommand(CLI::App& app, int* exit_code) {
  auto opt = std::make_shared<DecodeOptions>();
  CLI::App* cmd = app.add_subcommand(
      "decode",
      "Print a raw stream of 9P frames (as a socket carries them) one message per line.\n"
      "Without --dialect the dialect follows the stream's Tversion/Rversion. On a malformed\n"
      "frame it prints the frame's number, byte offset and the reason, and exits 1.");
  cmd->add_option("--dialect", opt->dialect, "9P2000, 9P2000.u or 9P2000.L (any case)")
      ->check(CLI::IsMember({"9P2000", "9P2000.u", "9P2000.L"}, CLI::ignore_case));
  cmd->add_flag("--offsets", opt->offsets, "prefix each line with the frame's byte offset");
  cmd->add_option("FILE", opt->file, "capture file; - or nothing for stdin");
  cmd->callback([opt, exit_code] { *exit_code = RunDecode(*opt); });
}

}  // namespace ninefold::tools
