// session_threads: several threads sharing one ninefold client session, each making
// blocking calls back to back; what a multi-threaded program (the FUSE daemon, a
// thread pool) does to a session. bench/shm_queues.sh runs it over shm with one and with
// several queue pairs per connection, and over unix.
//
//   session_threads ADDR FILE [--aname A] [--threads T] [--seconds S] [--op stat|pread]
//                   [--size N]
//   threads=T op=stat ops=... seconds=... ops_s=... mean_us=...     (one line)
//
// FILE (relative to the attached tree) is opened once; every thread then calls
// File::stat() (one Tgetattr or Tstat round trip) or File::pread() of --size bytes at
// offset 0 (one Tread) in a loop. The first 0.5 s are not counted; then S seconds are.
// Any error ends the run with exit status 1; usage errors exit 2.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "fmt/format.h"
#include "ninefold/client/fs.h"

namespace {

using Clock = std::chrono::steady_clock;

int Usage(const char* why) {
  std::fprintf(stderr,
               "session_threads: %s\nusage: session_threads ADDR FILE [--aname A] [--threads T] "
               "[--seconds S] [--op stat|pread] [--size N]\n",
               why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return Usage("ADDR and FILE are required");
  std::string addr = argv[1], path = argv[2], aname, op = "stat";
  unsigned threads = 1;
  double seconds = 3;
  size_t size = 4096;
  for (int i = 3; i < argc; ++i) {
    std::string_view a = argv[i];
    if (i + 1 >= argc) return Usage("an option without its value");
    const char* v = argv[++i];
    if (a == "--aname") {
      aname = v;
    } else if (a == "--threads") {
      threads = static_cast<unsigned>(std::strtoul(v, nullptr, 10));
    } else if (a == "--seconds") {
      seconds = std::strtod(v, nullptr);
    } else if (a == "--op") {
      op = v;
    } else if (a == "--size") {
      size = std::strtoull(v, nullptr, 10);
    } else {
      return Usage("unknown option");
    }
  }
  if (threads < 1 || threads > 64 || seconds <= 0 || (op != "stat" && op != "pread") || size < 1 ||
      size > (16u << 20)) {
    return Usage("bad value (threads 1-64, seconds > 0, op stat or pread, size 1 to 16M)");
  }
  ninefold::Result<ninefold::Link> link = ninefold::dial(addr);
  if (!link) {
    std::fprintf(stderr, "session_threads: %s\n", link.error().ToString().c_str());
    return 1;
  }
  ninefold::Result<ninefold::Fs> root = ninefold::fsmount(*link, {.aname = aname});
  if (!root) {
    std::fprintf(stderr, "session_threads: mount: %s\n", root.error().ToString().c_str());
    return 1;
  }
  ninefold::Result<ninefold::File> file = root->open(path, ninefold::OREAD);
  if (!file) {
    std::fprintf(stderr, "session_threads: open: %s\n", file.error().ToString().c_str());
    return 1;
  }
  const auto start = Clock::now();
  const auto measure_from = start + std::chrono::milliseconds(500);
  const auto end = measure_from + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(seconds));
  std::atomic<uint64_t> ops{0};
  std::atomic<bool> failed{false};
  std::vector<std::thread> workers;
  for (unsigned t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      std::vector<std::byte> buf(size);
      uint64_t mine = 0;
      for (;;) {
        auto now = Clock::now();
        if (now >= end || failed.load(std::memory_order_relaxed)) break;
        bool ok;
        if (op == "stat") {
          ok = file->stat().has_value();
        } else {
          ninefold::Result<size_t> n = file->pread(buf, 0);
          ok = n.has_value() && *n > 0;
        }
        if (!ok) {
          failed = true;
          break;
        }
        if (now >= measure_from && Clock::now() <= end) ++mine;
      }
      ops += mine;
    });
  }
  for (auto& w : workers) w.join();
  if (failed) {
    std::fprintf(stderr, "session_threads: a %s failed (is FILE at least one byte?)\n", op.c_str());
    return 1;
  }
  double ops_s = static_cast<double>(ops.load()) / seconds;
  fmt::print("threads={} op={} ops={} seconds={:.2f} ops_s={:.0f} mean_us={:.2f}\n", threads, op,
             ops.load(), seconds, ops_s, ops_s > 0 ? 1e6 * threads / ops_s : 0.0);
  return 0;
}
