// The Session's asynchronous behaviour against each real server: many reads in flight
// checked byte for byte, split writes, cancellation, a server killed mid-transfer, the
// three completion styles, and one session shared by eight threads.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <random>

#include "asio/bind_cancellation_slot.hpp"
#include "asio/bind_executor.hpp"
#include "asio/cancellation_signal.hpp"
#include "asio/co_spawn.hpp"
#include "asio/executor_work_guard.hpp"
#include "asio/post.hpp"
#include "asio/use_awaitable.hpp"
#include "client_test_util.h"
#include "fmt/format.h"

namespace ninefold::client_test {
namespace {

using Clock = std::chrono::steady_clock;

class SessionAsync : public ServerTest {
 protected:
  // Connects with `msize`, attaches, and opens `name` read-only.
  void OpenFile(const std::string& name, uint32_t msize = 65536) {
    conn_ = Connect({.msize = msize});
    ASSERT_TRUE(conn_);
    root_ = Attach(*conn_);
    Result<Fid> f = OpenNew(*conn_, root_, {name}, O_RDONLY);
    ASSERT_TRUE(f) << f.error().ToString();
    fid_ = *f;
  }
  Session& s() { return conn_->s(); }

  std::unique_ptr<Conn> conn_;
  Fid root_ = wire::kNoFid, fid_ = wire::kNoFid;
};

// Reads at random offsets and sizes, `window` in flight at once, each issued from the
// completion of an earlier one; every byte is compared with the file.
struct ReadStorm {  // shared: completions keep it alive
  std::shared_ptr<Session> session;
  Fid fid;
  const std::vector<std::byte>* content;
  size_t max_len;
  int total;
  // An error reply ends the storm, unless this is false: then only a session that
  // stopped does (a scribbled request may be answered with an error by the server).
  bool stop_on_error = true;
  std::mt19937_64 rng{42};  // io thread (and the starting thread, before any completion)
  std::mutex mu;
  int issued = 0, completed = 0, failed = 0, mismatched = 0, short_reads = 0;  // guarded by mu
  std::error_code first_error;                                                 // guarded by mu
  bool stop = false;                                                           // guarded by mu
  std::promise<void> all_done;

  static void IssueOne(const std::shared_ptr<ReadStorm>& st) {
    uint64_t offset;
    size_t len;
    {
      std::lock_guard lock(st->mu);
      if (st->stop || st->issued == st->total) return;
      ++st->issued;
      offset = st->rng() % (st->content->size() + 1000);
      len = 1 + st->rng() % st->max_len;
    }
    auto buf = std::make_shared<std::vector<std::byte>>(len);
    st->session->AsyncRead(st->fid, offset, *buf, [st, buf, offset](Result<size_t> r) {
      st->Check(offset, *buf, r);
      IssueOne(st);
    });
  }
  void Check(uint64_t offset, const std::vector<std::byte>& buf, const Result<size_t>& r) {
    std::lock_guard lock(mu);
    ++completed;
    if (!r) {
      if (failed++ == 0) first_error = r.error().code();
      if (stop_on_error || !session->connected()) stop = true;
    } else {
      size_t want = offset >= content->size() ? 0 : std::min(buf.size(), content->size() - offset);
      if (*r != want) ++short_reads;
      if (*r > want ||
          std::memcmp(buf.data(), content->data() + std::min<size_t>(offset, content->size()),
                      *r) != 0) {
        ++mismatched;
      }
    }
    if (completed == issued && (stop || issued == total)) all_done.set_value();
  }
};

// Waits for `done`; if it does not come, closes the session (which must complete what is
// pending) so that no completion outlives the test's state.
bool WaitOrClose(std::future<void>& done, std::chrono::seconds timeout, Conn& conn) {
  if (done.wait_for(timeout) == std::future_status::ready) return true;
  conn.s().Close();
  if (done.wait_for(10s) != std::future_status::ready) {
    std::fprintf(stderr, "completions missing even after Close(): aborting\n");
    std::abort();
  }
  return false;
}

// The client's own mappings of the shm! transport's shared region (memfd
// "ninefold-shm"), from /proc/self/maps: what the server writes to, seen from here.
std::vector<std::span<std::byte>> SharedRegionMappings() {
  std::vector<std::span<std::byte>> out;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.find("memfd:ninefold-shm") == std::string::npos) continue;
    uintptr_t from = 0, to = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx", &from, &to) != 2) continue;
    if (line.find("rw") == std::string::npos) continue;  // scribble where writable
    out.emplace_back(reinterpret_cast<std::byte*>(from), to - from);
  }
  return out;
}

// A hostile server over shm!: random bytes land all over the shared region (ring
// headers, indices, frames in flight) while reads stream. The client decodes frames in
// place there (Channel::DeliverInPlace), so this is what it must survive: every
// operation completes promptly with a result or an error, the session fails with a
// reason instead of crashing or hanging (ASan runs this too), and the server — whose
// copy of the region was scribbled as well — drops that connection and serves a new one.
TEST_P(SessionAsync, ScribbledSharedMemoryFailsTheSessionCleanly) {
  constexpr size_t kRingsPart = 9u << 20;
  if (GetParam().net != Net::kShm) GTEST_SKIP() << "shm! only";
  const auto content = RandomBytes(4 << 20, 13);
  WriteHostFile(Host("big"), content);
  OpenFile("big");
  std::vector<std::span<std::byte>> regions = SharedRegionMappings();
  ASSERT_FALSE(regions.empty()) << "no ninefold-shm mapping in /proc/self/maps";
  auto storm_ptr = std::shared_ptr<ReadStorm>(new ReadStorm{.session = conn_->session(),
                                                            .fid = fid_,
                                                            .content = &content,
                                                            .max_len = 2 * s().msize(),
                                                            .total = 1 << 30,
                                                            .stop_on_error = false});
  ReadStorm& storm = *storm_ptr;
  auto done = storm.all_done.get_future();
  asio::post(conn_->io(), [&] {
    for (int i = 0; i < 64; ++i) ReadStorm::IssueOne(storm_ptr);
  });
  for (auto warm = Clock::now() + 30s; Clock::now() < warm;) {
    std::this_thread::sleep_for(2ms);
    std::lock_guard lock(storm.mu);
    if (storm.completed >= 200) break;
  }
  std::mt19937_64 rng(99);
  // At least 500 ms, and on until the session notices (at most 20 s): most scribbles
  // only change bytes no frame uses at the time.
  auto until = Clock::now() + 500ms, limit = Clock::now() + 20s;
  uint64_t writes = 0;
  while ((Clock::now() < until || s().connected()) && Clock::now() < limit &&
         done.wait_for(0s) != std::future_status::ready) {
    std::span<std::byte> r = regions[rng() % regions.size()];
    // Three in four land on the rings (the region's first ~8 MiB, before the 64 MiB data
    // area: see shm_channel.cc), where headers, indices and frames are; the rest anywhere.
    // Spread evenly, most would only change payload bytes and the session might never
    // see a broken frame.
    size_t span = rng() % 4 != 0 ? std::min<size_t>(r.size(), kRingsPart) : r.size();
    size_t at = rng() % span;
    size_t n = std::min<size_t>(1 + rng() % 64, r.size() - at);
    for (size_t i = 0; i < n; ++i) {
      reinterpret_cast<volatile std::byte*>(r.data())[at + i] = static_cast<std::byte>(rng());
    }
    if (++writes % 64 == 0) std::this_thread::yield();
  }
  {
    std::lock_guard lock(storm.mu);
    storm.stop = true;  // no new reads; the ones in flight must still complete
  }
  ASSERT_TRUE(WaitOrClose(done, 10s, *conn_))
      << "operations hung after the shared memory was scribbled on (" << writes << " writes)";
  {
    std::lock_guard lock(storm.mu);
    std::printf("%lu scribbles; %d reads completed, %d failed (first: %s), %d mismatched\n",
                static_cast<unsigned long>(writes), storm.completed, storm.failed,
                storm.first_error.message().c_str(), storm.mismatched);
    EXPECT_GE(storm.failed, 1) << "the session never noticed " << writes << " scribbles";
  }
  EXPECT_FALSE(s().connected());
  auto later = s().AsyncGetattr(fid_, client::kGetattrBasic, asio::use_future);
  ASSERT_EQ(later.wait_for(2s), std::future_status::ready);
  EXPECT_FALSE(later.get());
  // The server survived its own copy being scribbled and serves a new connection.
  storm_ptr->session.reset();  // before the io_context it belongs to goes
  conn_.reset();
  std::unique_ptr<Conn> fresh = Connect();
  ASSERT_TRUE(fresh);
  Fid root = Attach(*fresh);
  auto attr = Get(fresh->s().AsyncGetattr(root, client::kGetattrBasic, asio::use_future));
  ASSERT_TRUE(attr) << attr.error().ToString();
  EXPECT_TRUE(attr->qid.type & wire::kQtDir);
}

TEST_P(SessionAsync, TenThousandRandomReadsInFlightMatchTheFile) {
  const auto content = RandomBytes(3 << 20, 7);
  WriteHostFile(Host("big"), content);
  OpenFile("big");
  auto storm_ptr = std::shared_ptr<ReadStorm>(new ReadStorm{.session = conn_->session(),
                                                            .fid = fid_,
                                                            .content = &content,
                                                            .max_len = 3 * s().msize() + 100,
                                                            .total = 10000});
  ReadStorm& storm = *storm_ptr;
  auto done = storm.all_done.get_future();
  // 96 operations at once (each up to 4 Treads: more requests than the 256 tags at times).
  asio::post(conn_->io(), [&] {
    for (int i = 0; i < 96; ++i) ReadStorm::IssueOne(storm_ptr);
  });
  ASSERT_TRUE(WaitOrClose(done, 300s, *conn_)) << "reads did not all complete";
  std::lock_guard lock(storm.mu);
  EXPECT_EQ(storm.completed, 10000);
  EXPECT_EQ(storm.failed, 0) << storm.first_error.message();
  EXPECT_EQ(storm.mismatched, 0);
  EXPECT_EQ(storm.short_reads, 0);
  EXPECT_GE(s().stats().bytes_read, 10000u);
}

// The Mover, seen through the counters: the same AsyncRead/AsyncWrite calls, with a
// buffer from AllocateBuffer or ordinary memory. Over shm (ninefold serve) the buffer
// lies in the shared arena and the server writes reads there itself (bytes_placed, no
// client copy) and takes writes from there (no copy into the ring); over sockets the
// buffer is private and every byte is copied once by the client.
TEST_P(SessionAsync, BufferStrategyFollowsTheTransport) {
  const auto content = RandomBytes((3 << 20) + 777, 11);
  WriteHostFile(Host("big"), content);
  OpenFile("big", 256 * 1024);
  const bool shm = GetParam().net == Net::kShm;

  buf::Buffer shared = s().AllocateBuffer(content.size());
  EXPECT_EQ(shared.shared(), shm);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(shared.data()) % buf::kPageSize, 0u);
  client::SessionStats before = s().stats();
  auto n = Get(s().AsyncRead(fid_, 0, shared.span(), asio::use_future));
  ASSERT_TRUE(n) << n.error().ToString();
  ASSERT_EQ(*n, content.size());
  EXPECT_EQ(std::memcmp(shared.data(), content.data(), content.size()), 0);
  client::SessionStats after = s().stats();
  EXPECT_EQ(after.bytes_read - before.bytes_read, content.size());
  EXPECT_EQ(after.bytes_placed - before.bytes_placed, shm ? content.size() : 0);
  EXPECT_EQ(after.bytes_copied - before.bytes_copied, shm ? 0 : content.size());
  EXPECT_EQ(after.bytes_shared - before.bytes_shared, 0u);

  // Ordinary memory: the client copies, whatever the transport. Misaligned on purpose.
  std::vector<std::byte> plain(content.size() + 1);
  before = after;
  n = Get(s().AsyncRead(fid_, 5, std::span(plain).subspan(1), asio::use_future));
  ASSERT_TRUE(n) << n.error().ToString();
  ASSERT_EQ(*n, content.size() - 5);
  EXPECT_EQ(std::memcmp(plain.data() + 1, content.data() + 5, *n), 0);
  after = s().stats();
  EXPECT_EQ(after.bytes_copied - before.bytes_copied, *n);
  EXPECT_EQ(after.bytes_placed - before.bytes_placed, 0u);

  // A buffer reference reads the same way as its span.
  std::fill_n(shared.data(), 4096, std::byte{0});
  n = Get(s().AsyncRead(fid_, 4096, shared.ref(), asio::use_future));
  ASSERT_TRUE(n) << n.error().ToString();
  EXPECT_EQ(*n, content.size() - 4096);
  EXPECT_EQ(std::memcmp(shared.data(), content.data() + 4096, *n), 0);
  EXPECT_EQ(s().stats().bytes_placed - after.bytes_placed, shm ? *n : 0);
  int fd = -1;
  auto refused = Get(s().AsyncRead(fid_, 0, buf::FileRef{fd, 0, 10}, asio::use_future));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), std::errc::invalid_argument);

  // Writes from a shared buffer go by reference over shm.
  WriteHostFile(Host("out"), Bytes(""));
  Result<Fid> out = OpenNew(*conn_, root_, {"out"}, O_RDWR);
  ASSERT_TRUE(out) << out.error().ToString();
  std::memcpy(shared.data(), content.data(), content.size());
  before = s().stats();
  auto w = Get(s().AsyncWrite(*out, 0, shared.span(), asio::use_future));
  ASSERT_TRUE(w) << w.error().ToString();
  EXPECT_EQ(*w, content.size());
  after = s().stats();
  EXPECT_EQ(after.bytes_placed - before.bytes_placed, shm ? content.size() : 0);
  EXPECT_EQ(after.bytes_copied - before.bytes_copied, shm ? 0 : content.size());
  EXPECT_TRUE(ReadHostFile(Host("out")) == content) << "written file differs";
}

// Many reads in flight, each into its own buffer from AllocateBuffer (over shm: placed
// in the arena by the server), at random offsets and sizes, checked byte for byte; the
// arena's pages all come back when the buffers are freed.
TEST_P(SessionAsync, RandomReadsIntoAllocatedBuffersMatchTheFile) {
  const auto content = RandomBytes(2 << 20, 13);
  WriteHostFile(Host("big"), content);
  OpenFile("big");
  constexpr int kReads = 2000;
  struct State {
    std::mutex mu;
    int issued = 0, completed = 0, failed = 0, mismatched = 0;
    std::string first_error;
    std::promise<void> done;
  };
  auto st = std::make_shared<State>();
  auto session = conn_->session();
  std::function<void()> issue;
  std::mt19937_64 rng(5);  // io thread only (after the first post)
  issue = [&, st, session] {
    {
      std::lock_guard lock(st->mu);
      ++st->issued;
    }
    uint64_t offset = rng() % content.size();
    size_t len = 1 + rng() % (3 * s().msize());
    auto b = std::make_shared<buf::Buffer>(session->AllocateBuffer(len));
    session->AsyncRead(fid_, offset, b->span(), [&, st, b, offset](Result<size_t> r) mutable {
      bool again;
      {
        std::lock_guard lock(st->mu);
        size_t want = std::min(b->size(), content.size() - offset);
        if (!r) {
          if (st->failed++ == 0) st->first_error = r.error().ToString();
        } else if (*r != want || std::memcmp(b->data(), content.data() + offset, want) != 0) {
          ++st->mismatched;
        }
        b.reset();  // freed before it counts: the arena is whole again after the last
        ++st->completed;
        again = st->issued < kReads;
        if (st->completed == kReads) st->done.set_value();
      }
      if (again) issue();
    });
  };
  auto done = st->done.get_future();
  asio::post(conn_->io(), [&] {
    for (int i = 0; i < 32; ++i) issue();
  });
  ASSERT_TRUE(WaitOrClose(done, 120s, *conn_));
  std::lock_guard lock(st->mu);
  EXPECT_EQ(st->failed, 0) << st->first_error;
  EXPECT_EQ(st->mismatched, 0);
  client::SessionStats stats = s().stats();
  if (GetParam().net == Net::kShm) {
    EXPECT_EQ(stats.bytes_placed, stats.bytes_read);
    EXPECT_EQ(stats.bytes_copied, 0u);
  } else {
    EXPECT_EQ(stats.bytes_copied, stats.bytes_read);
  }
  // Every page is free again: the whole arena (64 MiB) comes in one piece, and more than
  // it falls back to private memory.
  EXPECT_EQ(s().AllocateBuffer(64 << 20).shared(), GetParam().net == Net::kShm);
  EXPECT_FALSE(s().AllocateBuffer((64 << 20) + 1).shared());
}

TEST_P(SessionAsync, WriteLargerThanMsizeReadsBackIdentical) {
  WriteHostFile(Host("out"), Bytes(""));
  conn_ = Connect({.msize = 65536});
  ASSERT_TRUE(conn_);
  root_ = Attach(*conn_);
  Result<Fid> f = OpenNew(*conn_, root_, {"out"}, O_RDWR);
  ASSERT_TRUE(f) << f.error().ToString();
  const auto data = RandomBytes((5 << 20) + 123, 9);
  const uint64_t offset = 777;
  auto n = Get(s().AsyncWrite(*f, offset, data, asio::use_future));
  ASSERT_TRUE(n) << n.error().ToString();
  EXPECT_EQ(*n, data.size());
  EXPECT_GT(data.size(), 50 * s().iounit());

  auto host = ReadHostFile(Host("out"));
  ASSERT_EQ(host.size(), offset + data.size());
  EXPECT_TRUE(std::all_of(host.begin(), host.begin() + offset,
                          [](std::byte b) { return b == std::byte{0}; }));
  EXPECT_TRUE(std::equal(data.begin(), data.end(), host.begin() + offset)) << "host file differs";

  std::vector<std::byte> back(data.size() + 5000);
  auto r = Get(s().AsyncRead(*f, offset, back, asio::use_future));
  ASSERT_TRUE(r) << r.error().ToString();
  ASSERT_EQ(*r, data.size());
  back.resize(*r);
  EXPECT_TRUE(back == data) << "read back differs";
  EXPECT_EQ(s().stats().bytes_written, data.size());
}

// Opening a FIFO that has no writer blocks inside the server. Cancelling the Tlopen
// sends Tflush; the operation then completes with operation_canceled, or with the
// server's answer if the server answered first (9P lets it: ninefold serve always answers
// a request before its Rflush), and the session keeps working.
TEST_P(SessionAsync, CancelSendsTflushForABlockedRequest) {
  ASSERT_EQ(::mkfifo(Host("fifo").c_str(), 0666), 0);
  WriteHostFile(Host("plain"), Bytes("still works"));
  conn_ = Connect();
  ASSERT_TRUE(conn_);
  root_ = Attach(*conn_);
  Result<Fid> fifo = WalkNew(*conn_, root_, {"fifo"});
  ASSERT_TRUE(fifo);

  asio::cancellation_signal cancel;
  std::promise<Result<wire::Rlopen>> promise;
  s().AsyncRequest<wire::Rlopen>(
      wire::Tlopen{.fid = *fifo, .flags = O_RDONLY},
      asio::bind_cancellation_slot(
          cancel.slot(), [&](Result<wire::Rlopen> r) { promise.set_value(std::move(r)); }));
  auto result = promise.get_future();
  // The request is on the server (it does not answer while nobody writes).
  EXPECT_EQ(result.wait_for(300ms), std::future_status::timeout) << "the open did not block";
  uint64_t flushes_before = s().stats().flushes;
  asio::post(conn_->io(), [&] { cancel.emit(asio::cancellation_type::all); });
  auto sent = Clock::now() + 5s;
  while (s().stats().flushes == flushes_before && Clock::now() < sent)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(s().stats().flushes, flushes_before + 1) << "no Tflush sent";

  bool canceled_promptly = result.wait_for(1s) == std::future_status::ready;
  int writer = -1;
  if (!canceled_promptly) {
    // The server holds Rflush until the open returns: give the FIFO a writer.
    writer = ::open(Host("fifo").c_str(), O_WRONLY | O_NONBLOCK);
    EXPECT_GE(writer, 0) << std::strerror(errno);
  }
  ASSERT_EQ(result.wait_for(10s), std::future_status::ready)
      << "the cancelled open never completed";
  Result<wire::Rlopen> r = result.get();
  if (r) {
    std::printf("%s answered the Tlopen before its Rflush (as 9P allows)\n",
                TargetName(GetParam()).c_str());
    EXPECT_FALSE(canceled_promptly);
  } else {
    EXPECT_EQ(r.error().code(), Errc(std::errc::operation_canceled)) << r.error().ToString();
  }
  if (writer >= 0) ::close(writer);
  (void)Get(s().AsyncClunk(*fifo, asio::use_future));

  // The session still works.
  Result<Fid> plain = OpenNew(*conn_, root_, {"plain"}, O_RDONLY);
  ASSERT_TRUE(plain) << plain.error().ToString();
  std::vector<std::byte> buf(64);
  auto n = Get(s().AsyncRead(*plain, 0, buf, asio::use_future));
  ASSERT_TRUE(n) << n.error().ToString();
  buf.resize(*n);
  EXPECT_EQ(buf, Bytes("still works"));
}

TEST_P(SessionAsync, ServerKilledMidTransferFailsEveryPendingOperationPromptly) {
  const auto content = RandomBytes(8 << 20, 11);
  WriteHostFile(Host("big"), content);
  OpenFile("big");
  auto storm_ptr = std::shared_ptr<ReadStorm>(new ReadStorm{.session = conn_->session(),
                                                            .fid = fid_,
                                                            .content = &content,
                                                            .max_len = 2 * s().msize(),
                                                            .total = 1 << 30});
  ReadStorm& storm = *storm_ptr;
  auto done = storm.all_done.get_future();
  asio::post(conn_->io(), [&] {
    for (int i = 0; i < 128; ++i) ReadStorm::IssueOne(storm_ptr);
  });
  auto warm = Clock::now() + 30s;
  for (;;) {
    std::this_thread::sleep_for(2ms);
    std::lock_guard lock(storm.mu);
    if (storm.completed >= 300 || Clock::now() > warm) break;
  }
  server_->Kill();
  auto killed = Clock::now();
  ASSERT_TRUE(WaitOrClose(done, 5s, *conn_))
      << "operations still pending 5 s after the server died";
  std::printf("all pending operations completed %.0f ms after SIGKILL\n",
              std::chrono::duration<double, std::milli>(Clock::now() - killed).count());
  {
    std::lock_guard lock(storm.mu);
    EXPECT_GE(storm.completed, 300);
    EXPECT_GE(storm.failed, 1);
    EXPECT_EQ(storm.first_error, Errc(std::errc::not_connected)) << storm.first_error.message();
    EXPECT_EQ(storm.mismatched, 0);
  }
  EXPECT_FALSE(s().connected());
  // Later operations fail at once.
  auto later = s().AsyncGetattr(fid_, client::kGetattrBasic, asio::use_future);
  ASSERT_EQ(later.wait_for(1s), std::future_status::ready);
  EXPECT_EQ(Code(later.get()), Errc(std::errc::not_connected));
  std::vector<std::byte> buf(10);
  auto read = s().AsyncRead(fid_, 0, buf, asio::use_future);
  ASSERT_EQ(read.wait_for(1s), std::future_status::ready);
  EXPECT_EQ(Code(read.get()), Errc(std::errc::not_connected));
}

TEST_P(SessionAsync, CallbackFutureAndCoroutineCompletions) {
  const auto content = RandomBytes(200000, 3);
  WriteHostFile(Host("f"), content);
  OpenFile("f");
  std::vector<std::byte> buf(content.size());

  // Callback.
  std::promise<Result<size_t>> p;
  s().AsyncRead(fid_, 0, buf, [&](Result<size_t> r) {
    EXPECT_TRUE(conn_->io().get_executor().running_in_this_thread());
    p.set_value(std::move(r));
  });
  auto n = Get(p.get_future());
  ASSERT_TRUE(n) << n.error().ToString();
  EXPECT_EQ(*n, content.size());
  EXPECT_EQ(buf, content);

  // Callbacks bound to another executor (here another io_context's thread) run there,
  // never on the session's thread: a read (its Done) and a getattr (straight from the
  // reply).
  asio::io_context other;
  auto work = asio::make_work_guard(other);
  std::thread other_thread([&other] { other.run(); });
  std::promise<std::pair<bool, Result<size_t>>> bound_read;
  std::fill(buf.begin(), buf.end(), std::byte{0});
  s().AsyncRead(fid_, 0, buf, asio::bind_executor(other, [&](Result<size_t> r) {
                  bool here = other.get_executor().running_in_this_thread() &&
                              !conn_->io().get_executor().running_in_this_thread();
                  bound_read.set_value({here, std::move(r)});
                }));
  std::promise<std::pair<bool, Result<wire::Rgetattr>>> bound_getattr;
  s().AsyncGetattr(fid_, client::kGetattrBasic,
                   asio::bind_executor(other, [&](Result<wire::Rgetattr> r) {
                     bool here = other.get_executor().running_in_this_thread() &&
                                 !conn_->io().get_executor().running_in_this_thread();
                     bound_getattr.set_value({here, std::move(r)});
                   }));
  auto [read_there, read] = bound_read.get_future().get();
  auto [getattr_there, attr] = bound_getattr.get_future().get();
  work.reset();
  other_thread.join();
  EXPECT_TRUE(read_there);
  ASSERT_TRUE(read) << read.error().ToString();
  EXPECT_EQ(buf, content);
  EXPECT_TRUE(getattr_there);
  ASSERT_TRUE(attr) << attr.error().ToString();
  EXPECT_EQ(attr->size, content.size());

  // Future.
  std::fill(buf.begin(), buf.end(), std::byte{0});
  n = Get(s().AsyncRead(fid_, 0, buf, asio::use_future));
  ASSERT_TRUE(n);
  EXPECT_EQ(buf, content);

  // Coroutine: walk, open, read, getattr, clunk, each awaited.
  auto session = conn_->session();
  Fid root = root_;
  auto coro = [session, root, &content]() -> asio::awaitable<std::string> {
    Fid f = session->AllocFid();
    std::vector<std::string> names;  // (GCC 12 rejects a braced list inside co_await)
    names.emplace_back("f");
    Result<std::vector<wire::Qid>> q =
        co_await session->AsyncWalk(root, f, names, asio::use_awaitable);
    if (!q) co_return "walk: " + q.error().ToString();
    wire::Tlopen lopen{.fid = f, .flags = O_RDONLY};
    Result<wire::Rlopen> o =
        co_await session->AsyncRequest<wire::Rlopen>(lopen, asio::use_awaitable);
    if (!o) co_return "lopen: " + o.error().ToString();
    std::vector<std::byte> data(content.size() + 10);
    Result<size_t> got = co_await session->AsyncRead(f, 0, data, asio::use_awaitable);
    if (!got) co_return "read: " + got.error().ToString();
    data.resize(*got);
    if (data != content) co_return std::string("read: content differs");
    Result<wire::Rgetattr> a =
        co_await session->AsyncGetattr(f, client::kGetattrBasic, asio::use_awaitable);
    if (!a || a->size != content.size()) co_return std::string("getattr: wrong");
    Result<void> c = co_await session->AsyncClunk(f, asio::use_awaitable);
    if (!c) co_return "clunk: " + c.error().ToString();
    co_return std::string("ok");
  };
  std::future<std::string> out = asio::co_spawn(conn_->io(), coro(), asio::use_future);
  ASSERT_EQ(out.wait_for(30s), std::future_status::ready);
  EXPECT_EQ(out.get(), "ok");
}

TEST_P(SessionAsync, OneSessionFromEightThreads) {
  constexpr int kThreads = 8, kRounds = 60;
  for (int t = 0; t < kThreads; ++t) {
    WriteHostFile(Host(fmt::format("in{}", t)), RandomBytes(10000 + t * 1000, 100 + t));
  }
  conn_ = Connect({.msize = 8192, .max_outstanding = 16});  // tags run short: waiting queue
  ASSERT_TRUE(conn_);
  root_ = Attach(*conn_);
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Session& s = conn_->s();
      const auto want = RandomBytes(10000 + t * 1000, 100 + t);
      std::string out = fmt::format("out{}", t);
      for (int round = 0; round < kRounds; ++round) {
        Fid f = s.AllocFid();
        auto w = Get(s.AsyncWalk(root_, f, {fmt::format("in{}", t)}, asio::use_future));
        auto o = Get(s.AsyncRequest<wire::Rlopen>(wire::Tlopen{.fid = f, .flags = O_RDONLY},
                                                  asio::use_future));
        std::vector<std::byte> buf(want.size());
        auto n = Get(s.AsyncRead(f, 0, buf, asio::use_future));
        auto a = Get(s.AsyncGetattr(f, client::kGetattrBasic, asio::use_future));
        auto c = Get(s.AsyncClunk(f, asio::use_future));
        if (!w || !o || !n || *n != want.size() || buf != want || !a || a->size != want.size() ||
            !c) {
          errors++;
        }
        // Each thread also writes its own file.
        Fid d = s.AllocFid();
        auto wd = Get(s.AsyncWalk(root_, d, {}, asio::use_future));
        auto cr = Get(s.AsyncRequest<wire::Rlcreate>(
            wire::Tlcreate{
                .fid = d, .name = out, .flags = O_WRONLY | O_CREAT | O_TRUNC, .mode = 0644},
            asio::use_future));
        auto wn = Get(s.AsyncWrite(d, 0, want, asio::use_future));
        auto cd = Get(s.AsyncClunk(d, asio::use_future));
        if (!wd || !cr || !wn || *wn != want.size() || !cd) errors++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(ReadHostFile(Host(fmt::format("out{}", t))), RandomBytes(10000 + t * 1000, 100 + t));
  }
  EXPECT_TRUE(Get(s().AsyncGetattr(root_, client::kGetattrBasic, asio::use_future)));
}

// Page sharing (strategy c): over shm, ramfs hands a large read's pages to the client,
// which maps them onto a page-aligned destination copy-on-write: nothing copied but a
// small last piece, the bytes right, and neither side's later writes seen by the other.
// Over sockets the same calls copy every byte.
TEST_P(SessionAsync, RamfsReadsIntoAlignedMemoryShareItsPages) {
  if (!IsNinefold()) GTEST_SKIP() << "ramfs is ninefold serve's";
  const bool shm = GetParam().net == Net::kShm;
  conn_ = Connect({.msize = (1 << 20) + 24});
  ASSERT_TRUE(conn_);
  root_ = s().AllocFid();
  ASSERT_TRUE(Get(s().AsyncAttach(root_, "root", "ram", asio::use_future, ::getuid())));
  Result<Fid> f = WalkNew(*conn_, root_, {});
  ASSERT_TRUE(f);
  ASSERT_TRUE(Get(s().AsyncRequest<wire::Rlcreate>(
      wire::Tlcreate{.fid = *f, .name = "big", .flags = O_RDWR | O_CREAT, .mode = 0644},
      asio::use_future)));
  // Three whole pieces (a read is split at whole pages of the iounit) and 777 bytes, a
  // piece too small to be worth sharing.
  const size_t piece = s().iounit() / buf::kPageSize * buf::kPageSize;
  const auto content = RandomBytes(3 * piece + 777, 17);
  auto w = Get(s().AsyncWrite(*f, 0, content, asio::use_future));
  ASSERT_TRUE(w && *w == content.size());

  buf::Buffer dest = buf::Buffer::Allocate(content.size());  // private, page-aligned
  ASSERT_FALSE(dest.shared());
  client::SessionStats before = s().stats();
  auto n = Get(s().AsyncRead(*f, 0, dest.span(), asio::use_future));
  ASSERT_TRUE(n) << n.error().ToString();
  ASSERT_EQ(*n, content.size());
  EXPECT_EQ(std::memcmp(dest.data(), content.data(), content.size()), 0);
  client::SessionStats after = s().stats();
  const uint64_t whole = 3 * piece;
  EXPECT_EQ(after.bytes_shared - before.bytes_shared, shm ? whole : 0);
  EXPECT_EQ(after.bytes_copied - before.bytes_copied,
            shm ? content.size() - whole : content.size());
  EXPECT_EQ(after.bytes_placed - before.bytes_placed, 0u);

  // The server's file changes: what the client was given does not.
  const auto other = RandomBytes(content.size(), 18);
  w = Get(s().AsyncWrite(*f, 0, other, asio::use_future));
  ASSERT_TRUE(w && *w == other.size());
  EXPECT_EQ(std::memcmp(dest.data(), content.data(), content.size()), 0)
      << "a write on the server showed through a shared page";
  // The client's buffer changes: the file does not.
  std::memset(dest.data(), 0x5a, 3 * buf::kPageSize);
  std::vector<std::byte> check(content.size());
  n = Get(s().AsyncRead(*f, 0, check, asio::use_future));
  ASSERT_TRUE(n && *n == other.size());
  EXPECT_TRUE(check == other) << "a write into a shared buffer reached the file";
  // Read again into the same buffer: the new content, shared again.
  before = s().stats();
  n = Get(s().AsyncRead(*f, 0, dest.span(), asio::use_future));
  ASSERT_TRUE(n && *n == other.size());
  EXPECT_EQ(std::memcmp(dest.data(), other.data(), other.size()), 0);
  EXPECT_EQ(s().stats().bytes_shared - before.bytes_shared, shm ? whole : 0);

  // A read that ends mid-page at the end of the file: its whole pages mapped, the rest
  // copied (and nothing past it touched).
  std::memset(dest.data(), 0x77, dest.size());
  before = s().stats();
  n = Get(s().AsyncRead(*f, 3 * piece - 65536, dest.span().first(3 * 65536), asio::use_future));
  ASSERT_TRUE(n && *n == 65536 + 777);
  EXPECT_EQ(std::memcmp(dest.data(), other.data() + 3 * piece - 65536, *n), 0);
  EXPECT_EQ(dest.data()[*n], std::byte{0x77});
  after = s().stats();
  EXPECT_EQ(after.bytes_shared - before.bytes_shared, shm ? 65536 : 0);
  EXPECT_EQ(after.bytes_copied - before.bytes_copied, shm ? 777 : *n);

  // Page-aligned memory that is not a Buffer's own (here a shared mapping another process
  // could see, where the caller means the data to land) is written, never remapped.
  void* m = ::mmap(nullptr, 2 << 20, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(m, MAP_FAILED);
  std::span<std::byte> mapped(static_cast<std::byte*>(m), 2 << 20);
  before = s().stats();
  n = Get(s().AsyncRead(*f, 0, mapped, asio::use_future));
  ASSERT_TRUE(n && *n == mapped.size());
  EXPECT_EQ(std::memcmp(mapped.data(), other.data(), *n), 0);
  EXPECT_EQ(s().stats().bytes_shared - before.bytes_shared, 0u);
  EXPECT_EQ(s().stats().bytes_copied - before.bytes_copied, *n);
  ::munmap(m, mapped.size());

  // Misaligned memory and offsets are copied, and right.
  std::vector<std::byte> odd(content.size());
  before = s().stats();
  n = Get(s().AsyncRead(*f, 4096, std::span(odd).subspan(1), asio::use_future));
  ASSERT_TRUE(n && *n == other.size() - 4096);
  EXPECT_EQ(std::memcmp(odd.data() + 1, other.data() + 4096, *n), 0);
  after = s().stats();
  EXPECT_EQ(after.bytes_shared - before.bytes_shared, 0u);
  EXPECT_EQ(after.bytes_copied - before.bytes_copied, *n);
  n = Get(s().AsyncRead(*f, 100, dest.span().first(1 << 20), asio::use_future));
  ASSERT_TRUE(n && *n == (1u << 20));
  EXPECT_EQ(std::memcmp(dest.data(), other.data() + 100, *n), 0);
}

// Reads the `bytes` a PipedRead left in its pipe (without waiting: the pipe must hold
// them already).
std::vector<std::byte> DrainPipe(const client::PipedRead& r) {
  std::vector<std::byte> out(r.bytes);
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = ::read(r.pipe->fd(), out.data() + got, out.size() - got);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  return out;
}

// AsyncReadPiped: over shm from ninefold serve's exportfs, a read of 16 KiB or more comes
// as a pipe the server filled from the file (bytes_piped, nothing copied or placed), up
// to a short read at the end of the file; below that size, above the iounit, or over any
// other transport or server, it lands in the destination exactly as AsyncRead's would.
TEST_P(SessionAsync, PipedReadsComeAsPipesOnlyOverShm) {
  const auto content = RandomBytes((1 << 20) + 777, 21);
  WriteHostFile(Host("big"), content);
  OpenFile("big", 256 * 1024);
  const bool pipes = IsNinefold() && GetParam().net == Net::kShm;
  EXPECT_EQ(s().takes_pipes(), GetParam().net == Net::kShm);
  buf::Buffer dest = s().AllocateBuffer(1 << 20);

  struct Case {
    uint64_t offset;
    size_t size;
    bool piped;  // over shm from ninefold
  };
  const size_t unit = s().iounit();
  const Case cases[] = {
      {0, 128 * 1024, true},                // page-aligned
      {4097, 100000, true},                 // anywhere
      {(1 << 20) - 4096, 65536, true},      // past the end: 4096 + 777 bytes, a short read
      {4096, 8192, false},                  // too small to be worth a pipe
      {0, (unit + 4096), false},            // more than one request: split, into dest
      {content.size() + 10, 65536, false},  // nothing to read
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(fmt::format("{} bytes at {}", c.size, c.offset));
    std::fill_n(dest.data(), dest.size(), std::byte{0x55});
    client::SessionStats before = s().stats();
    auto r = Get(s().AsyncReadPiped(fid_, c.offset, dest.span().first(c.size), asio::use_future));
    ASSERT_TRUE(r) << r.error().ToString();
    const size_t want =
        c.offset >= content.size() ? 0 : std::min<size_t>(c.size, content.size() - c.offset);
    ASSERT_EQ(r->bytes, want);
    const std::byte* expect = content.data() + std::min<size_t>(c.offset, content.size());
    client::SessionStats after = s().stats();
    EXPECT_EQ(after.bytes_read - before.bytes_read, want);
    if (pipes && c.piped) {
      ASSERT_NE(r->pipe, nullptr);
      std::vector<std::byte> got = DrainPipe(*r);
      ASSERT_EQ(got.size(), want);
      EXPECT_EQ(std::memcmp(got.data(), expect, want), 0);
      EXPECT_EQ(dest.data()[0], std::byte{0x55}) << "dest written although the data was piped";
      EXPECT_EQ(after.bytes_piped - before.bytes_piped, want);
      EXPECT_EQ(after.bytes_copied + after.bytes_placed, before.bytes_copied + before.bytes_placed);
    } else {
      EXPECT_EQ(r->pipe, nullptr);
      EXPECT_EQ(std::memcmp(dest.data(), expect, want), 0);
      EXPECT_EQ(after.bytes_piped, before.bytes_piped);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Servers, SessionAsync, testing::ValuesIn(AllTargets()), ParamName);

}  // namespace
}  // namespace ninefold::client_test
