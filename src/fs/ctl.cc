#include "ninefold/fs/ctl.h"

#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "fmt/format.h"

namespace ninefold::fs {
namespace {

Result<std::string> Date() {
  timeval tv{};
  struct timezone tz {};
  if (gettimeofday(&tv, &tz) != 0) return Errno(errno, "gettimeofday");
  return fmt::format("{}.{} {}.{}\n", tv.tv_sec, tv.tv_usec, tz.tz_minuteswest, tz.tz_dsttime);
}

Result<std::string> ProcFile(const char* path) {
  std::ifstream in(path);
  if (!in) return Errno(ENOENT, path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

Result<size_t> Zeros(uint64_t, std::span<std::byte> out) {
  std::fill(out.begin(), out.end(), std::byte{0});
  return out.size();
}

Result<size_t> EndOfFile(uint64_t, std::span<std::byte>) { return size_t{0}; }

Result<size_t> Discard(uint64_t, std::span<const std::byte> data) { return data.size(); }

// `f` after a 100 ms sleep per call: a request slow enough to flush.
template <class F>
auto Slow(F f) {
  return [f](uint64_t offset, auto data) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return f(offset, data);
  };
}

}  // namespace

std::shared_ptr<SyntheticDir> MakeCtlDir() {
  auto dir = SyntheticDir::Make();
  dir->AddFile("version", ReadOnly([] { return std::string(kCtlVersion); }));
  dir->AddFile("date", ReadOnly(Date));
  dir->AddFile("zero", {.read = Zeros, .may_block = false});
  dir->AddFile("zero100", {.read = Slow(Zeros)});
  dir->AddFile("null", {.read = EndOfFile, .write = Discard, .may_block = false});
  dir->AddFile("null100", {.read = EndOfFile, .write = Slow(Discard)});
  dir->AddFile("meminfo", ReadOnly([] { return ProcFile("/proc/meminfo"); }));
  return dir;
}

std::unique_ptr<FileServer> MakeCtlServer() { return MakeSyntheticServer(MakeCtlDir()); }

}  // namespace ninefold::fs
