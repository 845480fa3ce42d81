// p9load: a small 9P2000.L load generator, for comparing servers side by side
// (bench/server_vs_diod.sh runs it against diod and `ninefold serve`).
//
//   p9load --addr 'tcp!127.0.0.1!5640' --aname /srv/x --op read --file big
//          --outstanding 16 --msize 1M --bytes 1G
//   op=read outstanding=16 msize=1048576 ops=... rpcs=... bytes=... seconds=... ops_s=...
//   rpcs_s=... mb_s=... p50_us=... p99_us=...      (one line; --json: one JSON object)
//
// One thread, one connection, one non-blocking socket: `--outstanding N` requests are kept
// in flight with tags 0..N-1, each tag (a "slot") issuing its next request as soon as its
// reply is in. Ops:
//
//   getattr  Tgetattr (basic mask) on a fid walked to --file (default: the attach root)
//   read     sequential Tread of --file with count = msize - 24, N in flight at consecutive
//            offsets, wrapping at --size (default: the file's size from Rgetattr)
//   write    the same with Twrite into a file it creates (--file, default
//            p9load-write-PID) and removes at the end; wraps at --size (default 1 GiB)
//   create   Twalk (clone the root) + Tlcreate + Tclunk + Twalk (to the new name) + Tremove
//            of a unique name: five round trips per op. Twalk+Tremove rather than Tunlinkat
//            because diod answers Tunlinkat with EOPNOTSUPP; both servers get the same
//            sequence.
//
// The first 0.5 s (--warmup) are not counted: an op counts when it starts after the
// warm-up and completes before the end (--duration seconds after the warm-up, or the
// moment --bytes measured bytes are done). Ops still in flight then complete uncounted
// (a create sequence always finishes, so no file is left behind). Latency is per op, from
// its first request being queued to its last reply being decoded. MB is 10^6 bytes.
//
// `--idle-connections N` instead opens N connections, does Tversion + Tattach on each,
// prints "ready" and holds them until killed (or for --duration seconds): for measuring
// a server's memory per connection.
//
// Any Rlerror ends the run with its errno and exit status 1; usage errors exit 2.
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "fmt/format.h"
#include "ninefold/transport/address.h"
#include "ninefold/wire/codec.h"

namespace ninefold::bench {
namespace {

using wire::Frame;

constexpr wire::Dialect kDialect = wire::Dialect::k9P2000L;
constexpr uint32_t kRootFid = 0;
constexpr uint32_t kFileFid = 1;
constexpr uint32_t kScratchFid = 2;
constexpr uint32_t kFirstSlotFid = 16;     // create: slot s uses fid kFirstSlotFid + s
constexpr uint64_t kGetattrBasic = 0x7ff;  // P9_GETATTR_BASIC
// 9P2000.L open flags (Linux values, as the protocol defines them).
constexpr uint32_t kDotlRdonly = 0, kDotlWronly = 01, kDotlRdwr = 02, kDotlCreate = 0100,
                   kDotlExcl = 0200, kDotlTrunc = 01000;

[[noreturn]] void Die(const std::string& message) {
  fmt::print(stderr, "p9load: {}\n", message);
  std::exit(1);
}

[[noreturn]] void Usage(const std::string& message) {
  fmt::print(stderr,
             "p9load: {}\n"
             "usage: p9load --addr ADDR [--aname NAME] --op getattr|read|write|create\n"
             "              [--file NAME] [--outstanding N] [--msize N] [--size BYTES]\n"
             "              [--duration S | --bytes B] [--warmup S] [--json] [--overwrite]\n"
             "       p9load --addr ADDR [--aname NAME] --idle-connections N [--duration S]\n"
             "ADDR: tcp!HOST!PORT or unix!PATH; sizes take K, M, G (powers of 1024)\n"
             "write: a new file (truncated, removed at the end), or with --overwrite the\n"
             "existing --file, written in place and kept\n",
             message);
  std::exit(2);
}

uint64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Options {
  std::string addr;
  std::string aname;
  std::string op = "getattr";
  std::string file;
  uint32_t outstanding = 1;
  uint32_t msize = 64 * 1024;
  uint64_t size = 0;  // 0: read: the file's size; write: 1 GiB
  double duration = 0;
  uint64_t bytes = 0;
  double warmup = 0.5;
  bool json = false;
  bool overwrite = false;  // write: into the existing --file, not a new file
  uint32_t idle_connections = 0;
};

// A 9P connection: a non-blocking socket, an input buffer that frames are decoded from in
// place, and an output queue of byte ranges the caller keeps alive until they are sent.
class Connection {
 public:
  explicit Connection(const transport::Address& address) {
    if (address.kind == transport::Address::Kind::kTcp) {
      addrinfo hints{};
      hints.ai_socktype = SOCK_STREAM;
      addrinfo* found = nullptr;
      std::string port = std::to_string(address.port);
      int rc = getaddrinfo(address.host.c_str(), port.c_str(), &hints, &found);
      if (rc != 0) Die(fmt::format("{}: {}", address.ToString(), gai_strerror(rc)));
      fd_ = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd_ < 0 || connect(fd_, found->ai_addr, found->ai_addrlen) != 0) {
        Die(fmt::format("connect {}: {}", address.ToString(), std::strerror(errno)));
      }
      freeaddrinfo(found);
      int one = 1;  // requests are whole frames: never hold one back waiting for an ack
      setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    } else if (address.kind == transport::Address::Kind::kUnix) {
      sockaddr_un sun{};
      sun.sun_family = AF_UNIX;
      if (address.path.size() >= sizeof sun.sun_path) Die("unix socket path too long");
      std::memcpy(sun.sun_path, address.path.data(), address.path.size());
      fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd_ < 0 || connect(fd_, reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0) {
        Die(fmt::format("connect {}: {}", address.ToString(), std::strerror(errno)));
      }
    } else {
      Die(fmt::format("{}: only tcp and unix addresses", address.ToString()));
    }
    fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
    SetMsize(64 * 1024);
  }
  ~Connection() { close(fd_); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  uint32_t msize() const { return msize_; }
  bool has_output() const { return !out_.empty(); }

  // Queues `bytes` for sending; they must stay valid and unchanged until sent.
  void Queue(std::span<const std::byte> bytes) {
    if (!bytes.empty()) out_.push_back(bytes);
  }

  // Encodes `frame` into `buf` (whose bytes must live until sent) and queues it. A Twrite's
  // payload is not copied: it is queued by reference after the head.
  void Send(const Frame& frame, std::span<std::byte> buf) {
    auto head = wire::EncodeHead(frame, kDialect, buf, msize_);
    if (!head)
      Die(fmt::format("encode {}: {}", wire::Format(frame, kDialect), head.error().ToString()));
    Queue(buf.first(head->head_size));
    Queue(head->payload);
  }

  // Sends queued bytes until done or the socket is full.
  void Flush() {
    while (!out_.empty()) {
      std::array<iovec, 64> iov;
      size_t n = 0;
      for (auto it = out_.begin(); it != out_.end() && n < iov.size(); ++it, ++n) {
        iov[n] = {const_cast<std::byte*>(it->data()), it->size()};
      }
      ssize_t sent = writev(fd_, iov.data(), static_cast<int>(n));
      if (sent < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        Die(fmt::format("send: {}", std::strerror(errno)));
      }
      size_t left = static_cast<size_t>(sent);
      while (left > 0) {
        if (out_.front().size() <= left) {
          left -= out_.front().size();
          out_.pop_front();
        } else {
          out_.front() = out_.front().subspan(left);
          left = 0;
        }
      }
    }
  }

  // Waits until the socket is readable (or writable, while output is queued).
  void Wait() {
    pollfd p{fd_, static_cast<short>(POLLIN | (out_.empty() ? 0 : POLLOUT)), 0};
    while (poll(&p, 1, -1) < 0) {
      if (errno != EINTR) Die(fmt::format("poll: {}", std::strerror(errno)));
    }
  }

  // One read() of what is available, then `on_frame` for every complete frame in the
  // buffer. A decoded Frame is a view into the buffer: valid only during the call.
  template <class F>
  void Receive(F&& on_frame) {
    ssize_t got = read(fd_, in_.data() + end_, in_.size() - end_);
    if (got == 0) Die("server closed the connection");
    if (got < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      Die(fmt::format("receive: {}", std::strerror(errno)));
    }
    end_ += static_cast<size_t>(got);
    wire::Limits limits{.msize = msize_};
    while (end_ - begin_ >= 4) {
      std::span<const std::byte> avail(in_.data() + begin_, end_ - begin_);
      auto size = wire::PeekFrameSize(avail, limits);
      if (!size) Die(fmt::format("bad reply: {}", size.error().ToString()));
      if (avail.size() < *size) break;
      auto frame = wire::Decode(avail.first(*size), kDialect, limits);
      if (!frame) Die(fmt::format("bad reply: {}", frame.error().ToString()));
      begin_ += *size;
      on_frame(*frame);
    }
    if (begin_ == end_) {
      begin_ = end_ = 0;
    } else if (in_.size() - end_ < msize_) {  // the rest of a largest frame might not fit
      std::memmove(in_.data(), in_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
  }

  // A blocking round trip, for setup and teardown (nothing else may be in flight).
  template <class F>
  void Call(const Frame& request, F&& on_reply) {
    std::vector<std::byte> buf(8192);
    Send(request, buf);
    bool done = false;
    while (!done) {
      Flush();
      Wait();
      Receive([&](const Frame& reply) {
        if (reply.tag != request.tag) Die(fmt::format("unexpected tag {}", reply.tag));
        if (auto* e = std::get_if<wire::Rlerror>(&reply.msg)) {
          Die(fmt::format("{}: Rlerror {} ({})", wire::Format(request, kDialect), e->ecode,
                          std::strerror(static_cast<int>(e->ecode))));
        }
        on_reply(reply);
        done = true;
      });
    }
  }

  // Tversion (9P2000.L, tag NOTAG) and Tattach of kRootFid as root (n_uname 0), no afid.
  void Handshake(uint32_t msize, std::string_view aname) {
    Call(Frame{wire::kNoTag, wire::Tversion{.msize = msize, .version = "9P2000.L"}},
         [&](const Frame& r) {
           auto* v = std::get_if<wire::Rversion>(&r.msg);
           if (!v || v->version != "9P2000.L") Die("server does not speak 9P2000.L");
           if (v->msize > msize || v->msize < 4096) Die(fmt::format("bad msize {}", v->msize));
           SetMsize(v->msize);
         });
    Call(Frame{0, wire::Tattach{.fid = kRootFid,
                                .afid = wire::kNoFid,
                                .uname = "root",
                                .aname = aname,
                                .n_uname = 0}},
         [](const Frame&) {});
  }

 private:
  void SetMsize(uint32_t msize) {
    msize_ = msize;
    in_.resize(std::max<size_t>(4 * static_cast<size_t>(msize), 256 * 1024));
  }

  int fd_ = -1;
  uint32_t msize_ = 0;
  std::vector<std::byte> in_;  // unparsed input is in_[begin_, end_)
  size_t begin_ = 0;
  size_t end_ = 0;
  std::deque<std::span<const std::byte>> out_;
};

wire::WalkNames SplitPath(std::string_view path) {
  wire::WalkNames names;
  while (!path.empty()) {
    size_t slash = path.find('/');
    std::string_view name = path.substr(0, slash);
    if (!name.empty() && !names.push_back(name)) Die("--file: too many path elements");
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
  }
  return names;
}

// What one run measured.
struct Measured {
  uint64_t ops = 0;
  uint64_t rpcs = 0;  // round trips of counted ops
  uint64_t bytes = 0;
  double seconds = 0;
  std::vector<uint64_t> latency_ns;
};

// Runs the op with `outstanding` slots until the end condition, then drains.
class Load {
 public:
  Load(const Options& opt, Connection& conn) : opt_(opt), conn_(conn) {
    slots_.resize(opt.outstanding);
    count_ = conn.msize() - static_cast<uint32_t>(wire::kIoHeaderSize);
    if (opt.op == "write") payload_.assign(count_, std::byte{0x5a});
    name_prefix_ = fmt::format("p9load-{}-", getpid());
  }

  void Setup() {
    if (opt_.op == "getattr" || opt_.op == "read" || opt_.overwrite) {
      Frame walk{0,
                 wire::Twalk{.fid = kRootFid, .newfid = kFileFid, .wnames = SplitPath(opt_.file)}};
      conn_.Call(walk, [&](const Frame& r) {
        auto* w = std::get_if<wire::Rwalk>(&r.msg);
        if (!w || w->wqids.size() != std::get<wire::Twalk>(walk.msg).wnames.size()) {
          Die(fmt::format("walk to '{}' failed", opt_.file));
        }
      });
    }
    if (opt_.op == "read") {
      size_ = opt_.size;
      conn_.Call(Frame{0, wire::Tgetattr{.fid = kFileFid, .request_mask = kGetattrBasic}},
                 [&](const Frame& r) {
                   if (size_ == 0) size_ = std::get<wire::Rgetattr>(r.msg).size;
                 });
      if (size_ == 0) Die(fmt::format("'{}' is empty: nothing to read", opt_.file));
      conn_.Call(Frame{0, wire::Tlopen{.fid = kFileFid, .flags = kDotlRdonly}},
                 [](const Frame&) {});
    }
    if (opt_.op == "write") size_ = opt_.size != 0 ? opt_.size : uint64_t{1} << 30;
    if (opt_.op == "write" && opt_.overwrite) {
      conn_.Call(Frame{0, wire::Tlopen{.fid = kFileFid, .flags = kDotlWronly}},
                 [&](const Frame& r) {
                   if (!std::holds_alternative<wire::Rlopen>(r.msg))
                     Die(fmt::format("cannot open '{}' for writing", opt_.file));
                 });
    } else if (opt_.op == "write") {
      write_name_ = opt_.file.empty() ? fmt::format("p9load-write-{}", getpid()) : opt_.file;
      conn_.Call(Frame{0, wire::Twalk{.fid = kRootFid, .newfid = kFileFid}}, [](const Frame&) {});
      conn_.Call(Frame{0, wire::Tlcreate{.fid = kFileFid,
                                         .name = write_name_,
                                         .flags = kDotlWronly | kDotlCreate | kDotlTrunc,
                                         .mode = 0644,
                                         .gid = 0}},
                 [](const Frame&) {});
    }
  }

  void Teardown() {
    if (opt_.op == "create") return;
    conn_.Call(Frame{0, wire::Tclunk{.fid = kFileFid}}, [](const Frame&) {});
    if (opt_.op == "write" && !opt_.overwrite) {
      wire::Twalk walk{.fid = kRootFid, .newfid = kScratchFid};
      (void)walk.wnames.push_back(write_name_);
      conn_.Call(Frame{0, walk}, [](const Frame&) {});
      conn_.Call(Frame{0, wire::Tremove{.fid = kScratchFid}}, [](const Frame&) {});
    }
  }

  Measured Run() {
    start_ns_ = NowNs();
    measure_ns_ = start_ns_ + static_cast<uint64_t>(opt_.warmup * 1e9);
    stop_ns_ =
        opt_.bytes != 0 ? UINT64_MAX : measure_ns_ + static_cast<uint64_t>(opt_.duration * 1e9);
    for (uint16_t tag = 0; tag < slots_.size(); ++tag) StartOp(tag, start_ns_);
    while (in_flight_ > 0) {
      conn_.Flush();
      conn_.Wait();
      conn_.Receive([&](const Frame& reply) { OnReply(reply); });
    }
    if (end_ns_ == 0) end_ns_ = NowNs();  // the run ended before the window closed
    m_.seconds = static_cast<double>(end_ns_ - std::min(measure_ns_, end_ns_)) / 1e9;
    return std::move(m_);
  }

 private:
  struct Slot {
    uint64_t started_ns = 0;  // when the op's first request was queued
    int step = 0;             // create: which request of the sequence is in flight
    uint32_t rpcs = 0;
    uint64_t offset = 0;
    std::string name;                // create: the file's name
    std::array<std::byte, 512> buf;  // the request being sent; see Connection::Send
  };

  void StartOp(uint16_t tag, uint64_t now) {
    if (now >= stop_ns_) return;
    Slot& s = slots_[tag];
    s.started_ns = now;
    s.step = 0;
    s.rpcs = 0;
    if (opt_.op == "read" || opt_.op == "write") {
      s.offset = next_offset_;
      next_offset_ += std::min<uint64_t>(count_, size_ - next_offset_);
      if (next_offset_ >= size_) next_offset_ = 0;
    } else if (opt_.op == "create") {
      s.name = name_prefix_ + std::to_string(next_name_++);
    }
    ++in_flight_;
    Issue(tag);
  }

  void Issue(uint16_t tag) {
    Slot& s = slots_[tag];
    ++s.rpcs;
    const uint32_t slot_fid = kFirstSlotFid + tag;
    auto count = static_cast<uint32_t>(std::min<uint64_t>(count_, size_ - s.offset));
    Frame f{tag, {}};
    if (opt_.op == "getattr") {
      f.msg = wire::Tgetattr{.fid = kFileFid, .request_mask = kGetattrBasic};
    } else if (opt_.op == "read") {
      f.msg = wire::Tread{.fid = kFileFid, .offset = s.offset, .count = count};
    } else if (opt_.op == "write") {
      f.msg = wire::Twrite{.fid = kFileFid,
                           .offset = s.offset,
                           .data = wire::Data(std::span(payload_).first(count))};
    } else if (s.step == 0) {
      f.msg = wire::Twalk{.fid = kRootFid, .newfid = slot_fid};
    } else if (s.step == 1) {
      f.msg = wire::Tlcreate{.fid = slot_fid,
                             .name = s.name,
                             .flags = kDotlRdwr | kDotlCreate | kDotlExcl,
                             .mode = 0644,
                             .gid = 0};
    } else if (s.step == 2) {
      f.msg = wire::Tclunk{.fid = slot_fid};
    } else if (s.step == 3) {
      wire::Twalk walk{.fid = kRootFid, .newfid = slot_fid};
      (void)walk.wnames.push_back(s.name);
      f.msg = walk;
    } else {
      f.msg = wire::Tremove{.fid = slot_fid};
    }
    conn_.Send(f, s.buf);
  }

  void OnReply(const Frame& reply) {
    if (reply.tag >= slots_.size()) Die(fmt::format("reply with unknown tag {}", reply.tag));
    Slot& s = slots_[reply.tag];
    if (auto* e = std::get_if<wire::Rlerror>(&reply.msg)) {
      Die(fmt::format("{} (step {}) on tag {}: Rlerror {} ({})", opt_.op, s.step, reply.tag,
                      e->ecode, std::strerror(static_cast<int>(e->ecode))));
    }
    uint64_t bytes = 0;
    if (auto* r = std::get_if<wire::Rread>(&reply.msg)) {
      if (r->data.size() == 0) {
        Die(fmt::format("Rread of 0 bytes at offset {}: is the file shorter than --size?",
                        s.offset));
      }
      bytes = r->data.size();
    } else if (auto* w = std::get_if<wire::Rwrite>(&reply.msg)) {
      bytes = w->count;
    }
    if (opt_.op == "create" && ++s.step < 5) {
      Issue(reply.tag);
      return;
    }
    --in_flight_;
    uint64_t now = NowNs();
    if (s.started_ns >= measure_ns_ && now <= stop_ns_ && end_ns_ == 0) {
      ++m_.ops;
      m_.rpcs += s.rpcs;
      m_.bytes += bytes;
      m_.latency_ns.push_back(now - s.started_ns);
      if (opt_.bytes != 0 && m_.bytes >= opt_.bytes) stop_ns_ = end_ns_ = now;
    }
    if (now > stop_ns_ && end_ns_ == 0) end_ns_ = stop_ns_;
    StartOp(reply.tag, now);
  }

  const Options& opt_;
  Connection& conn_;
  std::vector<Slot> slots_;  // indexed by tag
  uint32_t count_ = 0;       // read/write: bytes per request
  uint64_t size_ = 0;        // read/write: offsets wrap here
  uint64_t next_offset_ = 0;
  uint64_t next_name_ = 0;
  std::string name_prefix_;
  std::string write_name_;
  std::vector<std::byte> payload_;  // write: what every Twrite sends
  uint64_t start_ns_ = 0, measure_ns_ = 0, stop_ns_ = 0, end_ns_ = 0;
  uint32_t in_flight_ = 0;  // ops started and not yet completed
  Measured m_;
};

double Percentile(std::vector<uint64_t>& v, double p) {
  if (v.empty()) return 0;
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<ptrdiff_t>(i), v.end());
  return static_cast<double>(v[i]) / 1e3;
}

void Report(const Options& opt, uint32_t msize, Measured& m) {
  double s = m.seconds > 0 ? m.seconds : 1e-9;
  std::vector<std::pair<std::string, std::string>> kv = {
      {"op", opt.op},
      {"outstanding", std::to_string(opt.outstanding)},
      {"msize", std::to_string(msize)},
      {"ops", std::to_string(m.ops)},
      {"rpcs", std::to_string(m.rpcs)},
      {"bytes", std::to_string(m.bytes)},
      {"seconds", fmt::format("{:.3f}", m.seconds)},
      {"ops_s", fmt::format("{:.0f}", static_cast<double>(m.ops) / s)},
      {"rpcs_s", fmt::format("{:.0f}", static_cast<double>(m.rpcs) / s)},
      {"mb_s", fmt::format("{:.1f}", static_cast<double>(m.bytes) / s / 1e6)},
      {"p50_us", fmt::format("{:.1f}", Percentile(m.latency_ns, 0.50))},
      {"p99_us", fmt::format("{:.1f}", Percentile(m.latency_ns, 0.99))},
  };
  std::string line;
  for (const auto& [k, v] : kv) {
    bool text = k == "op";
    if (opt.json) {
      line += fmt::format("{}\"{}\": {}{}{}", line.empty() ? "{" : ", ", k, text ? "\"" : "", v,
                          text ? "\"" : "");
    } else {
      line += fmt::format("{}{}={}", line.empty() ? "" : " ", k, v);
    }
  }
  fmt::print("{}{}\n", line, opt.json ? "}" : "");
}

uint64_t ParseSize(std::string_view flag, std::string_view text) {
  std::string s(text);
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str(), &end);
  std::string_view suffix(end);
  double unit = 1;
  if (suffix == "K" || suffix == "KiB" || suffix == "k") unit = 1024;
  if (suffix == "M" || suffix == "MiB") unit = 1024.0 * 1024;
  if (suffix == "G" || suffix == "GiB") unit = 1024.0 * 1024 * 1024;
  if (end == s.c_str() || errno != 0 || v < 0 || (unit == 1 && !suffix.empty())) {
    Usage(fmt::format("{}: bad size '{}'", flag, text));
  }
  return static_cast<uint64_t>(v * unit);
}

Options ParseOptions(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string_view value;
    size_t eq = arg.find('=');
    bool inline_value = arg.starts_with("--") && eq != std::string_view::npos;
    if (inline_value) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto next = [&]() -> std::string_view {
      if (inline_value) return value;
      if (i + 1 >= argc) Usage(fmt::format("{} needs a value", arg));
      return argv[++i];
    };
    auto number = [&](uint64_t max) {
      uint64_t n = ParseSize(arg, next());
      if (n == 0 || n > max) Usage(fmt::format("{}: out of range", arg));
      return n;
    };
    auto seconds = [&] {
      std::string v(next());
      char* end = nullptr;
      double d = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end != '\0' || d < 0) Usage(fmt::format("{}: bad seconds", arg));
      return d;
    };
    if (arg == "--addr") {
      opt.addr = next();
    } else if (arg == "--aname") {
      opt.aname = next();
    } else if (arg == "--op") {
      opt.op = next();
    } else if (arg == "--file") {
      opt.file = next();
    } else if (arg == "--outstanding") {
      opt.outstanding = static_cast<uint32_t>(number(4096));
    } else if (arg == "--msize") {
      opt.msize = static_cast<uint32_t>(number(64u << 20));
    } else if (arg == "--size") {
      opt.size = ParseSize(arg, next());
    } else if (arg == "--duration") {
      opt.duration = seconds();
    } else if (arg == "--bytes") {
      opt.bytes = ParseSize(arg, next());
    } else if (arg == "--warmup") {
      opt.warmup = seconds();
    } else if (arg == "--json") {
      opt.json = true;
    } else if (arg == "--overwrite") {
      opt.overwrite = true;
    } else if (arg == "--idle-connections") {
      opt.idle_connections = static_cast<uint32_t>(number(100000));
    } else if (arg == "-h" || arg == "--help") {
      Usage("a 9P2000.L load generator");
    } else {
      Usage(fmt::format("unknown argument '{}'", arg));
    }
  }
  if (opt.addr.empty()) Usage("--addr is required");
  if (opt.op != "getattr" && opt.op != "read" && opt.op != "write" && opt.op != "create") {
    Usage(fmt::format("unknown --op '{}'", opt.op));
  }
  if (opt.msize < 4096) Usage("--msize must be at least 4096");
  if (opt.overwrite && (opt.op != "write" || opt.file.empty()))
    Usage("--overwrite needs --op write and --file");
  if (opt.duration == 0 && opt.bytes == 0 && opt.idle_connections == 0) opt.duration = 5;
  return opt;
}

int Main(int argc, char** argv) {
  Options opt = ParseOptions(argc, argv);
  auto address = transport::ParseAddress(opt.addr);
  if (!address) Usage(address.error().ToString());

  if (opt.idle_connections > 0) {
    std::vector<std::unique_ptr<Connection>> conns;
    for (uint32_t i = 0; i < opt.idle_connections; ++i) {
      conns.push_back(std::make_unique<Connection>(*address));
      conns.back()->Handshake(opt.msize, opt.aname);
    }
    fmt::print("idle_connections={} msize={} ready\n", conns.size(), conns.back()->msize());
    std::fflush(stdout);
    if (opt.duration > 0) {
      std::this_thread::sleep_for(std::chrono::duration<double>(opt.duration));
    } else {
      for (;;) pause();
    }
    return 0;
  }

  Connection conn(*address);
  conn.Handshake(opt.msize, opt.aname);
  Load load(opt, conn);
  load.Setup();
  Measured m = load.Run();
  load.Teardown();
  Report(opt, conn.msize(), m);
  return 0;
}

}  // namespace
}  // namespace ninefold::bench

int main(int argc, char** argv) { return ninefold::bench::Main(argc, argv); }
