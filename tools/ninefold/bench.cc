// ninefold bench: drives one 9P server with N requests in flight from one client thread and
// measures it: ops/s, MB/s, the full latency distribution, and bytes copied vs shared.
//
// How it measures (the instrument every performance claim is made with, so it says what
// it does):
//  * One connection, one asynchronous Session. Every operation runs on the session's io
//    thread: N "slots" each start an operation, and each completion handler records it
//    and starts that slot's next one, so N operations are always in flight and no thread
//    waits on any of them. The main thread only sets up, waits and reports.
//  * A warm-up (--warmup seconds) runs the same load unmeasured; then a window of
//    --duration seconds is measured: an operation counts when it completes inside the
//    window, and its latency is from the moment it was issued to its completion handler.
//    After the window the slots stop issuing and what is in flight drains, unmeasured.
//  * Every latency in the window is recorded in a log-bucket histogram (64 linear buckets
//    per power of two: values within 1/64 of the truth, reported as the bucket's upper
//    bound; min, max and mean are exact).
//  * requests/s is T-messages sent in the window (Session::stats()); bytes copied, placed
//    and shared are what the session's Mover did with the payload in the window (each byte
//    counted once, by its strategy: see SessionStats), also per byte delivered.
//  * Every slot owns its read destination or write source, of the memory --buffer names:
//    private (a std::vector), aligned (a buf::Buffer's private memory) or shared
//    (Session::AllocateBuffer: the shm arena, else private). The memory decides the
//    strategy: shared -> placed (b), aligned -> page sharing (c) where offered, else copied.
//
// Ops (--path is relative to the attached tree):
//   getattr  Tgetattr (9P2000.L, basic mask) or Tstat (9P2000/.u) of a fid walked once to
//            --path (default: the root).
//   read     AsyncRead of --size bytes (default: one iounit, msize - 24) per op at
//            consecutive offsets of --path, wrapping at its size (a file of size 0, like
//            ctl's zero, is read at offset 0). Without --path, a file of --file-size bytes
//            is created at the root first, filled, read, and removed at the end. A read of
//            0 bytes is an error.
//   write    AsyncWrite of --size bytes per op at consecutive offsets wrapping at
//            --file-size, into --path (opened for writing, not truncated) or, without it, a
//            file created at the root and removed at the end.
//   create   three round trips per op: Twalk (clone --path, default the root), Tlcreate
//            (9P2000.L) or Tcreate of a unique name, Tremove of that fid.
// A --size larger than the iounit makes each op several concurrent requests (the session
// splits it); ops/s counts ops, requests/s counts requests.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <future>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "asio/post.hpp"
#include "asio/steady_timer.hpp"
#include "asio/use_future.hpp"
#include "fmt/format.h"
#include "ninefold/buf/buffer.h"
#include "ninefold/buf/region.h"
#include "tools/ninefold/client_options.h"
#include "tools/ninefold/commands.h"

namespace ninefold::tools {
namespace {

using client::Session;
using Clock = std::chrono::steady_clock;

struct BenchOptions {
  ConnectOptions connect;
  std::string op;
  uint32_t outstanding = 1;
  uint64_t size = 0;  // bytes per read/write op; 0: one iounit
  uint64_t file_size = 64u << 20;
  double duration = 5;
  double warmup = 1;
  std::string path;
  std::string buffer = "private";  // read/write memory: private, aligned or shared
  bool touch = false;              // read every byte each read delivered
  bool json = false;
};

// One slot's read destination or write source, of the memory --buffer names.
class IoBuffer {
 public:
  IoBuffer() = default;
  IoBuffer(std::string_view kind, const Session& session, size_t size) {
    if (kind == "private") {
      vector_.resize(size);
      bytes_ = vector_;
    } else {
      memory_ = kind == "shared" ? session.AllocateBuffer(size) : buf::Buffer::Allocate(size);
      bytes_ = memory_.span();
    }
  }
  std::span<std::byte> bytes() const { return bytes_; }
  bool shared() const { return memory_.shared(); }
  bool page_aligned() const {
    return reinterpret_cast<uintptr_t>(bytes_.data()) % buf::kPageSize == 0;
  }

 private:
  std::vector<std::byte> vector_;  // private
  buf::Buffer memory_;             // aligned, shared
  std::span<std::byte> bytes_;     // into one of them (both keep their bytes when moved)
};

// Latencies in ns, HDR-style: values below 128 exactly, above in buckets of 1/64 of their
// power of two. Fixed size, no allocation while recording.
class Histogram {
 public:
  void Record(uint64_t v) {
    ++counts_[Index(v)];
    ++count_;
    sum_ += v;
    min_ = std::min(min_, v);
    max_ = std::max(max_, v);
  }
  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ ? min_ : 0; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ ? static_cast<double>(sum_) / count_ : 0; }
  // The smallest recorded value v (to bucket precision) with at least p of all at or below.
  uint64_t Percentile(double p) const {
    if (count_ == 0) return 0;
    auto rank = static_cast<uint64_t>(std::ceil(p * static_cast<double>(count_)));
    rank = std::clamp<uint64_t>(rank, 1, count_);
    uint64_t seen = 0;
    for (size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min(Highest(i), max_);
    }
    return max_;
  }

 private:
  static constexpr int kSubBits = 6;
  static size_t Index(uint64_t v) {
    if (v < (uint64_t{2} << kSubBits)) return static_cast<size_t>(v);
    int shift = 63 - std::countl_zero(v) - kSubBits;
    return ((static_cast<size_t>(shift) + 1) << kSubBits) + static_cast<size_t>(v >> shift) -
           (size_t{1} << kSubBits);
  }
  static uint64_t Highest(size_t index) {
    if (index < (size_t{2} << kSubBits)) return index;
    size_t shift = (index >> kSubBits) - 1;
    uint64_t sub = index - ((shift + 1) << kSubBits) + (size_t{1} << kSubBits);
    return ((sub + 1) << shift) - 1;
  }

  std::vector<uint64_t> counts_ = std::vector<uint64_t>(Index(~uint64_t{0}) + 1);
  uint64_t count_ = 0, sum_ = 0, min_ = ~uint64_t{0}, max_ = 0;
};

// What the window measured.
struct Measured {
  // The slots' buffers (read/write): how many lie in the shm arena, how many start on a page.
  size_t slots_in_arena = 0, slots_page_aligned = 0;
  uint64_t ops = 0;
  uint64_t bytes = 0;
  double seconds = 0;
  client::SessionStats before, after;
  double cpu_seconds = 0;  // this process's user + system time in the window
  Histogram latency;
  std::optional<Error> failure;
};

// The load: slots issuing operations from their completion handlers. Everything but the
// constructor and Run's waiting runs on the session's io thread.
class Load : public std::enable_shared_from_this<Load> {
 public:
  Load(const BenchOptions& opt, std::shared_ptr<Session> session, Session::Fid target,
       uint64_t wrap, uint64_t size)
      : opt_(opt),
        kind_(opt.op == "getattr" ? Kind::kGetattr
              : opt.op == "read"  ? Kind::kRead
              : opt.op == "write" ? Kind::kWrite
                                  : Kind::kCreate),
        session_(std::move(session)),
        target_(target),
        wrap_(wrap),
        size_(size),
        warmup_timer_(session_->get_executor()),
        end_timer_(session_->get_executor()),
        slots_(opt.outstanding) {
    if (opt_.op == "read" || opt_.op == "write") {
      for (Slot& s : slots_) {
        s.io = IoBuffer(opt_.buffer, *session_, size_);
        // Touched now (a write's payload, a read's zeros), not on the first ops measured.
        std::span<std::byte> b = s.io.bytes();
        for (size_t i = 0; i < b.size(); ++i) {
          b[i] = opt_.op == "write" ? static_cast<std::byte>(i * 7) : std::byte{0};
        }
        m_.slots_in_arena += s.io.shared();
        m_.slots_page_aligned += s.io.page_aligned();
      }
    }
    name_prefix_ = fmt::format(".ninefold-bench-{}-", ::getpid());
  }

  // Runs warm-up, window and drain; returns what was measured. Main thread.
  Measured Run() {
    std::future<void> done = done_.get_future();
    asio::post(session_->get_executor(), [self = shared_from_this()] { self->Start(); });
    auto limit = std::chrono::duration<double>(opt_.warmup + opt_.duration + 60);
    if (done.wait_for(limit) != std::future_status::ready) {
      // The server stopped answering: closing fails every pending operation at once.
      session_->Close();
      done.wait();
    }
    return std::move(m_);
  }

 private:
  struct Slot {
    Clock::time_point started;
    uint64_t offset = 0;
    IoBuffer io;           // read: the destination; write: the source
    std::string name;      // create: the file's name
    Session::Fid fid = 0;  // create: the fid walked for it
  };

  void Start() {
    start_ = Clock::now();
    warmup_timer_.expires_at(start_ + Seconds(opt_.warmup));
    warmup_timer_.async_wait([self = shared_from_this()](const std::error_code& ec) {
      if (ec || self->stopping_) return;
      self->measuring_ = true;
      self->window_start_ = Clock::now();
      self->m_.before = self->session_->stats();
      self->cpu_start_ = CpuSeconds();
    });
    end_timer_.expires_at(start_ + Seconds(opt_.warmup + opt_.duration));
    end_timer_.async_wait([self = shared_from_this()](const std::error_code& ec) {
      if (ec) return;
      self->EndWindow();
    });
    // Counted before any starts: an operation failing at once must not end the run.
    in_flight_ = slots_.size();
    for (size_t i = 0; i < slots_.size(); ++i) {
      if (stopping_) {
        Retire();
      } else {
        Issue(i);
      }
    }
  }

  void Retire() {
    if (--in_flight_ == 0) done_.set_value();
  }

  static double CpuSeconds() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    auto sec = [](const timeval& tv) {
      return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
    };
    return sec(ru.ru_utime) + sec(ru.ru_stime);
  }

  static Clock::duration Seconds(double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  }

  void EndWindow() {
    if (measuring_) {
      m_.seconds = std::chrono::duration<double>(Clock::now() - window_start_).count();
      m_.after = session_->stats();
      m_.cpu_seconds = CpuSeconds() - cpu_start_;
    }
    measuring_ = false;
    stopping_ = true;
  }

  void Issue(size_t i) {
    Slot& s = slots_[i];
    s.started = Clock::now();
    if (kind_ == Kind::kGetattr) {
      if (session_->dialect() == wire::Dialect::k9P2000L) {
        session_->AsyncGetattr(target_, client::kGetattrBasic, [this, i](Result<wire::Rgetattr> r) {
          Complete(i, r ? Result<size_t>(size_t{0}) : Unexpected(r.error()));
        });
      } else {
        session_->AsyncStat(target_, [this, i](Result<client::OwnedStat> r) {
          Complete(i, r ? Result<size_t>(size_t{0}) : Unexpected(r.error()));
        });
      }
    } else if (kind_ == Kind::kRead) {
      s.offset = NextOffset();
      session_->AsyncRead(target_, s.offset, s.io.bytes(), [this, i](Result<size_t> r) {
        if (r && opt_.touch) Touch(slots_[i].io.bytes().first(*r));
        if (r && *r == 0) {
          r = Unexpected(Error(std::errc::io_error,
                               fmt::format("read of 0 bytes at offset {}: is the file shorter "
                                           "than --size?",
                                           slots_[i].offset)));
        }
        Complete(i, std::move(r));
      });
    } else if (kind_ == Kind::kWrite) {
      s.offset = NextOffset();
      session_->AsyncWrite(target_, s.offset, s.io.bytes(), [this, i](Result<size_t> r) {
        if (r && *r != size_) {
          r = Unexpected(
              Error(std::errc::io_error, fmt::format("short write: {} of {} bytes", *r, size_)));
        }
        Complete(i, std::move(r));
      });
    } else {
      IssueCreate(i);
    }
  }

  // create: Twalk (clone the directory) -> Tlcreate/Tcreate -> Tremove.
  void IssueCreate(size_t i) {
    Slot& s = slots_[i];
    s.name = name_prefix_ + std::to_string(next_name_++);
    s.fid = session_->AllocFid();
    session_->AsyncWalk(target_, s.fid, {}, [this, i](Result<std::vector<wire::Qid>> r) {
      if (!r) {
        session_->ReleaseFid(slots_[i].fid);
        return Complete(i, Unexpected(r.error()));
      }
      Create(i);
    });
  }
  void Create(size_t i) {
    const Slot& s = slots_[i];
    if (session_->dialect() == wire::Dialect::k9P2000L) {
      constexpr uint32_t kFlags = 02 | 0100 | 0200;  // O_RDWR | O_CREAT | O_EXCL (Linux)
      session_->AsyncRequest<wire::Rlcreate>(
          wire::Tlcreate{
              .fid = s.fid, .name = s.name, .flags = kFlags, .mode = 0644, .gid = ::getgid()},
          [this, i](Result<wire::Rlcreate> c) { Remove(i, c ? Error() : c.error()); });
    } else {
      session_->AsyncRequest<wire::Rcreate>(
          wire::Tcreate{
              .fid = s.fid, .name = s.name, .perm = 0644, .mode = static_cast<uint8_t>(ORDWR)},
          [this, i](Result<wire::Rcreate> c) { Remove(i, c ? Error() : c.error()); });
    }
  }
  // Removes the created file; when the create failed the fid is still the directory's
  // clone, so it is only clunked. Completes with the first error.
  void Remove(size_t i, Error create_error) {
    if (create_error.code()) {
      return session_->AsyncClunk(slots_[i].fid, [this, i, create_error](Result<void>) {
        Complete(i, Unexpected(create_error));
      });
    }
    session_->AsyncRemove(slots_[i].fid, [this, i](Result<void> removed) {
      Complete(i, removed ? Result<size_t>(size_t{0}) : Unexpected(removed.error()));
    });
  }

  uint64_t NextOffset() {
    uint64_t offset = next_offset_;
    next_offset_ += size_;
    if (wrap_ == 0 || next_offset_ + size_ > wrap_) next_offset_ = 0;
    return offset;
  }

  // Reads every byte of `bytes` (8 at a time) into a sum the compiler must keep.
  void Touch(std::span<const std::byte> bytes) {
    uint64_t sum = 0;
    size_t words = bytes.size() / 8;
    for (size_t w = 0; w < words; ++w) {
      uint64_t v;
      std::memcpy(&v, bytes.data() + w * 8, 8);
      sum += v;
    }
    for (size_t b = words * 8; b < bytes.size(); ++b) sum += std::to_integer<uint64_t>(bytes[b]);
    touched_ = touched_ + sum;
  }

  void Complete(size_t i, Result<size_t> r) {
    auto now = Clock::now();
    if (!r) {
      if (!m_.failure) m_.failure = r.error();
      EndWindow();
      warmup_timer_.cancel();
      end_timer_.cancel();
    } else if (measuring_) {
      ++m_.ops;
      m_.bytes += *r;
      m_.latency.Record(static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(now - slots_[i].started).count()));
    }
    if (!stopping_) return Issue(i);
    Retire();
  }

  const BenchOptions& opt_;
  // opt_.op, parsed once: Issue runs inside the measured time.
  enum class Kind { kGetattr, kRead, kWrite, kCreate };
  const Kind kind_;
  const std::shared_ptr<Session> session_;
  const Session::Fid target_;  // the fid every op works on (create: the directory)
  const uint64_t wrap_;        // read/write offsets wrap here (0: always offset 0)
  const uint64_t size_;        // read/write bytes per op
  std::string name_prefix_;
  // io thread.
  asio::steady_timer warmup_timer_, end_timer_;
  std::vector<Slot> slots_;
  volatile uint64_t touched_ = 0;  // Touch's sums: the reads cannot be optimized away
  size_t in_flight_ = 0;
  bool measuring_ = false, stopping_ = false;
  Clock::time_point start_, window_start_;
  double cpu_start_ = 0;
  uint64_t next_offset_ = 0, next_name_ = 0;
  Measured m_;  // read by the main thread after done_
  std::promise<void> done_;
};

// The fid the load works on, and what to undo afterwards.
struct Target {
  std::optional<File> file;  // read/write
  Session::Fid fid = wire::kNoFid;
  bool walked = false;  // fid is a walked (not opened) fid to clunk
  std::string created;  // a file made for the run, removed afterwards
  uint64_t wrap = 0;
};

Result<Target> Prepare(const BenchOptions& opt, const Fs& fs, uint64_t size) {
  Target t;
  Session& session = *fs.session();
  if (opt.op == "getattr" || opt.op == "create") {
    t.fid = session.AllocFid();
    Result<std::vector<wire::Qid>> w =
        session.AsyncWalk(fs.root_fid(), t.fid, SplitPath(opt.path), asio::use_future).get();
    if (!w) {
      session.ReleaseFid(t.fid);
      return Unexpected(Error(
          w.error().code(),
          fmt::format("walk {}: {}", opt.path.empty() ? "/" : opt.path, w.error().ToString())));
    }
    t.walked = true;
    return t;
  }
  if (!opt.path.empty()) {
    Result<File> f = fs.open(opt.path, opt.op == "read" ? OREAD : OWRITE);
    if (!f) return Unexpected(f.error());
    t.wrap = opt.file_size;
    if (opt.op == "read") {
      Result<Stat> st = f->stat();
      if (!st) return Unexpected(st.error());
      t.wrap = st->size;
    }
    t.fid = f->fid();
    t.file = std::move(*f);
    return t;
  }
  t.created = fmt::format(".ninefold-bench-{}", ::getpid());
  Result<File> f = fs.create(t.created, ORDWR, 0644);
  if (!f) return Unexpected(f.error());
  t.wrap = opt.file_size;
  if (opt.op == "read") {
    // Fill it, in chunks, so that every read of the run finds data.
    std::vector<std::byte> chunk(std::min<uint64_t>(opt.file_size, 4u << 20));
    for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<std::byte>(i * 13);
    for (uint64_t off = 0; off < opt.file_size; off += chunk.size()) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(chunk.size(), opt.file_size - off));
      Result<size_t> w = f->pwrite(std::span(chunk).first(n), off);
      if (!w) return Unexpected(w.error());
    }
    if (opt.file_size < size) t.wrap = 0;
  }
  t.fid = f->fid();
  t.file = std::move(*f);
  return t;
}

void Teardown(const Fs& fs, Target& t) {
  Session& session = *fs.session();
  if (t.walked) (void)session.AsyncClunk(t.fid, asio::use_future).get();
  if (t.file) (void)t.file->close();
  if (!t.created.empty()) (void)fs.remove(t.created);
}

double Us(uint64_t ns) { return static_cast<double>(ns) / 1e3; }

// A JSON string literal.
std::string Quote(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// The memory the slots' buffers ended up in: a token for JSON ("private": not all
// page-aligned, "aligned": private and page-aligned, "arena": all shared, "mixed": some)
// and a sentence for people.
std::pair<std::string, std::string> DescribeBuffers(const BenchOptions& opt, const Session& session,
                                                    const Measured& m) {
  size_t n = opt.outstanding;
  if (m.slots_in_arena == n) return {"arena", "shared (arena)"};
  std::string memory = m.slots_in_arena > 0        ? "mixed"
                       : m.slots_page_aligned == n ? "aligned"
                                                   : "private";
  if (opt.buffer == "private") {
    return {memory, memory == "aligned" ? "private (std::vector, page-aligned by chance: copied)"
                                        : "private (std::vector)"};
  }
  if (opt.buffer == "aligned") return {memory, "aligned (page-aligned private memory)"};
  // Shared asked for, not (all) granted: no arena at all, or not room for every slot.
  if (!session.shares_memory()) {
    return {memory, "shared requested, private (no arena on this transport)"};
  }
  return {memory, fmt::format("shared requested, {} of {} slot buffers in the arena (it is "
                              "full; the rest private, page-aligned)",
                              m.slots_in_arena, n)};
}

void Report(const BenchOptions& opt, const Session& session, uint64_t size, Measured& m) {
  double s = m.seconds > 0 ? m.seconds : 1e-9;
  uint64_t requests = m.after.requests - m.before.requests;
  const Histogram& h = m.latency;
  bool io = opt.op == "read" || opt.op == "write";
  auto [memory, memory_text] =
      io ? DescribeBuffers(opt, session, m) : std::pair<std::string, std::string>();
  uint64_t copied = m.after.bytes_copied - m.before.bytes_copied;
  uint64_t placed = m.after.bytes_placed - m.before.bytes_placed;
  uint64_t shared = m.after.bytes_shared - m.before.bytes_shared;
  // Per byte the ops delivered (read into the buffers, or written from them).
  auto per_byte = [&](uint64_t n) {
    return fmt::format("{:.3f}",
                       m.bytes ? static_cast<double>(n) / static_cast<double>(m.bytes) : 0.0);
  };
  // Name, value (as JSON), and the text line it belongs to.
  std::vector<std::pair<std::string, std::string>> kv = {
      {"op", Quote(opt.op)},
      {"addr", Quote(opt.connect.addr)},
      {"aname", Quote(opt.connect.aname)},
      {"path", Quote(opt.path)},
      {"dialect", Quote(wire::DialectName(session.dialect()))},
      {"msize", fmt::format("{}", session.msize())},
      {"outstanding", fmt::format("{}", opt.outstanding)},
      {"size", fmt::format("{}", io ? size : 0)},
      {"buffer", Quote(io ? opt.buffer : "")},
      {"buffer_memory", Quote(memory)},
      {"slots_in_arena", fmt::format("{}", m.slots_in_arena)},
      {"client_threads", "1"},
      {"warmup_s", fmt::format("{}", opt.warmup)},
      {"seconds", fmt::format("{:.3f}", m.seconds)},
      {"ops", fmt::format("{}", m.ops)},
      {"ops_s", fmt::format("{:.0f}", static_cast<double>(m.ops) / s)},
      {"requests", fmt::format("{}", requests)},
      {"requests_s", fmt::format("{:.0f}", static_cast<double>(requests) / s)},
      {"flushes", fmt::format("{}", m.after.flushes - m.before.flushes)},
      {"bytes", fmt::format("{}", m.bytes)},
      {"mb_s", fmt::format("{:.1f}", static_cast<double>(m.bytes) / s / 1e6)},
      {"mib_s", fmt::format("{:.1f}", static_cast<double>(m.bytes) / s / (1024.0 * 1024.0))},
      {"bytes_copied", fmt::format("{}", copied)},
      {"bytes_placed", fmt::format("{}", placed)},
      {"bytes_shared", fmt::format("{}", shared)},
      {"copied_per_byte", per_byte(copied)},
      {"placed_per_byte", per_byte(placed)},
      {"shared_per_byte", per_byte(shared)},
      {"client_cpu_s", fmt::format("{:.3f}", m.cpu_seconds)},
      {"latency_us",
       fmt::format("{{\"min\": {:.1f}, \"mean\": {:.1f}, \"p50\": {:.1f}, \"p90\": {:.1f}, "
                   "\"p99\": {:.1f}, \"p999\": {:.1f}, \"max\": {:.1f}}}",
                   Us(h.min()), h.mean() / 1e3, Us(h.Percentile(0.50)), Us(h.Percentile(0.90)),
                   Us(h.Percentile(0.99)), Us(h.Percentile(0.999)), Us(h.max()))},
  };
  if (opt.json) {
    std::string line;
    for (const auto& [k, v] : kv)
      line += fmt::format("{}\"{}\": {}", line.empty() ? "{" : ", ", k, v);
    fmt::print("{}}}\n", line);
    return;
  }
  auto get = [&](std::string_view key) {
    for (const auto& [k, v] : kv) {
      if (k == key) return v;
    }
    return std::string();
  };
  fmt::print("ninefold bench: {} on {} (aname '{}'{}), {}, msize {}, {} outstanding, 1 thread\n",
             opt.op, opt.connect.addr, opt.connect.aname,
             opt.path.empty() ? "" : ", path '" + opt.path + "'",
             wire::DialectName(session.dialect()), session.msize(), opt.outstanding);
  if (io) fmt::print("  {} bytes per op; buffer: {}\n", size, memory_text);
  fmt::print("  warm-up {:.1f} s unmeasured, then {:.3f} s measured\n", opt.warmup, m.seconds);
  fmt::print("  ops        {:>12}  {:>12} ops/s\n", m.ops, get("ops_s"));
  fmt::print("  requests   {:>12}  {:>12} requests/s  ({} flushes)\n", requests, get("requests_s"),
             get("flushes"));
  if (io) {
    fmt::print("  bytes      {:>12}  {:>12} MB/s  ({} MiB/s)\n", m.bytes, get("mb_s"),
               get("mib_s"));
  }
  fmt::print(
      "  latency us min {:.1f}  mean {:.1f}  p50 {:.1f}  p90 {:.1f}  p99 {:.1f}  p99.9 {:.1f}  "
      "max {:.1f}\n",
      Us(h.min()), h.mean() / 1e3, Us(h.Percentile(0.50)), Us(h.Percentile(0.90)),
      Us(h.Percentile(0.99)), Us(h.Percentile(0.999)), Us(h.max()));
  fmt::print("  payload    {} bytes copied, {} placed, {} shared", copied, placed, shared);
  if (io) {
    fmt::print("  (per byte delivered: {} copied, {} placed, {} shared)", get("copied_per_byte"),
               get("placed_per_byte"), get("shared_per_byte"));
  }
  fmt::print("\n");
  fmt::print("  client CPU {:.3f} s user+system ({:.0f}% of one core; {:.1f} us per op)\n",
             m.cpu_seconds, 100 * m.cpu_seconds / s,
             m.ops ? m.cpu_seconds * 1e6 / static_cast<double>(m.ops) : 0.0);
}

int RunBench(BenchOptions opt) {
  auto fail = [](const std::string& why) {
    std::fflush(stdout);
    fmt::print(stderr, "ninefold bench: {}\n", why);
    return 1;
  };
  // Every request of every slot on the wire at once: a --size above the iounit splits
  // into several (the iounit is not known before Tversion: assume the smallest msize).
  uint64_t per_op = opt.size == 0 ? 1 : (opt.size + 4096 - 25) / (4096 - 24);
  opt.connect.max_outstanding =
      static_cast<uint32_t>(std::min<uint64_t>(opt.outstanding * per_op, 32000));
  Result<Mounted> m = Mount(opt.connect);
  if (!m) return fail(DescribeMountError(opt.connect, m.error()));
  const std::shared_ptr<Session>& session = m->fs.session();
  uint64_t size = opt.size != 0 ? opt.size : session->iounit();
  Result<Target> target = Prepare(opt, m->fs, size);
  if (!target) return fail(fmt::format("setting up {}: {}", opt.op, target.error().ToString()));
  auto load = std::make_shared<Load>(opt, session, target->fid, target->wrap, size);
  Measured measured = load->Run();
  load.reset();
  Teardown(m->fs, *target);
  if (measured.failure) return fail(fmt::format("{}: {}", opt.op, measured.failure->ToString()));
  Report(opt, *session, size, measured);
  return 0;
}

}  // namespace

void AddBenchCommand(CLI::App& app, int* exit_code) {
  auto opt = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand(
      "bench",
      "Drive a 9P server with N operations in flight from one client thread (the asynchronous\n"
      "Session: each completion issues the next operation) and print ops/s, MB/s (10^6\n"
      "bytes), the latency distribution (min, mean, p50, p90, p99, p99.9, max; within 1/64)\n"
      "and how the payload moved: bytes copied (a), placed (b) and shared (c), also per\n"
      "byte delivered. A warm-up runs unmeasured; then operations that complete within\n"
      "--duration seconds count.\n"
      "  getattr  Tgetattr (9P2000.L) or Tstat of --path (default the root)\n"
      "  read     --size bytes per op (default msize-24) at consecutive offsets of --path,\n"
      "           wrapping at its size; without --path a --file-size file is created at\n"
      "           the root, filled, and removed afterwards\n"
      "  write    --size bytes per op into --path, or a file created (and removed), with\n"
      "           offsets wrapping at --file-size\n"
      "  create   Twalk + Tlcreate/Tcreate + Tremove of a unique name in --path (default\n"
      "           the root): three round trips per op\n"
      "Every slot (operation in flight) has its own read destination or write source, of\n"
      "the memory --buffer names, which decides how the session moves the payload:\n"
      "  private  a std::vector (default): the client copies out of each Rread, and into\n"
      "           each Twrite (bytes_copied; strategy a), even when it happens to start on\n"
      "           a page (pages are only ever mapped over a buf::Buffer's own memory)\n"
      "  aligned  a buf::Buffer's private memory: a read gets the server's pages mapped\n"
      "           copy-on-write where the server offers them (bytes_shared; c), else it\n"
      "           is copied, like writes from it (a)\n"
      "  shared   Session::AllocateBuffer: over shm the buffer lies in the arena both ends\n"
      "           map, so the server's own read or write is the only copy (bytes_placed; b);\n"
      "           tcp and unix have no arena, and it is private page-aligned memory\n"
      "Exit status 0, 1 if the server failed an operation, 2 for a usage error.");
  AddConnectOptions(cmd, &opt->connect);
  cmd->add_option("--op", opt->op, "getattr, read, write or create")
      ->required()
      ->check(CLI::IsMember({"getattr", "read", "write", "create"}));
  cmd->add_option("--outstanding", opt->outstanding, "operations in flight (default 1)")
      ->check(CLI::Range(1u, 4096u));
  cmd->add_option("--size", opt->size, "read/write bytes per op (K, M suffixes; default msize-24)")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 30));
  cmd->add_option("--file-size", opt->file_size,
                  "size of the file read/write create without --path, where write offsets "
                  "wrap (default 64M)")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 40));
  cmd->add_option("--duration", opt->duration, "seconds measured (default 5)")
      ->check(CLI::Range(0.001, 86400.0));
  cmd->add_option("--warmup", opt->warmup, "seconds run before measuring (default 1)")
      ->check(CLI::Range(0.0, 3600.0));
  cmd->add_option("--path", opt->path, "file or directory the op works on (see above)");
  cmd->add_option("--buffer", opt->buffer,
                  "read/write memory: private, aligned or shared (see above; default private)")
      ->check(CLI::IsMember({"private", "aligned", "shared"}));
  cmd->add_flag("--touch", opt->touch,
                "read: read every byte each read delivered (8 bytes at a time), as a consumer "
                "of the data would, inside the measured time (mapped pages then fault in)");
  cmd->add_flag("--json", opt->json, "print one JSON object instead of text");
  cmd->callback([opt, exit_code] { *exit_code = RunBench(*opt); });
}

}  // namespace ninefold::tools
