// The Session against a scripted server (FakeServer): what no real server does on
// demand — staying silent, holding one request while answering others, answering Tflush
// before the flushed request. Deadlines, cancellation and a dead peer, exactly.
#include <unistd.h>

#include <set>

#include "asio/bind_cancellation_slot.hpp"
#include "asio/cancellation_signal.hpp"
#include "asio/post.hpp"
#include "client_test_util.h"
#include "ninefold/transport/channel.h"

namespace ninefold::client_test {
namespace {

using Clock = std::chrono::steady_clock;
using Request = FakeServer::Request;

bool Saw(const std::vector<Request>& rs, uint8_t type) {
  return std::any_of(rs.begin(), rs.end(), [&](const Request& r) { return r.type == type; });
}
const Request* Find(const std::vector<Request>& rs, uint8_t type) {
  for (const auto& r : rs) {
    if (r.type == type) return &r;
  }
  return nullptr;
}

// Answers Tversion, Tattach, Tgetattr, Tclunk and Tflush at once; never answers Tread.
std::vector<wire::Frame> HoldReads(const wire::Frame& f) {
  const wire::Qid dir{wire::kQtDir, 0, 1};
  if (std::holds_alternative<wire::Tversion>(f.msg)) return {FakeServer::VersionReply(f)};
  if (std::holds_alternative<wire::Tattach>(f.msg)) return {{f.tag, wire::Rattach{.qid = dir}}};
  if (std::holds_alternative<wire::Tgetattr>(f.msg)) {
    return {{f.tag, wire::Rgetattr{.valid = 0x7ff, .qid = dir, .mode = 040755, .size = 4096}}};
  }
  if (std::holds_alternative<wire::Tclunk>(f.msg)) return {{f.tag, wire::Rclunk{}}};
  if (std::holds_alternative<wire::Tflush>(f.msg)) return {{f.tag, wire::Rflush{}}};
  return {};
}

// Answers only Tversion.
std::vector<wire::Frame> VersionOnly(const wire::Frame& f) {
  if (std::holds_alternative<wire::Tversion>(f.msg)) return {FakeServer::VersionReply(f)};
  return {};
}

std::unique_ptr<Conn> Open(FakeServer& server, client::SessionOptions options = {}) {
  Result<std::unique_ptr<Conn>> c = Conn::Open(server.address(), options);
  EXPECT_TRUE(c) << c.error().ToString();
  return c ? std::move(*c) : nullptr;
}

// Open, with fid 1 attached to the server's root; null (after saying why) if either fails.
std::unique_ptr<Conn> OpenAttached(FakeServer& server, client::SessionOptions options = {}) {
  std::unique_ptr<Conn> conn = Open(server, options);
  if (!conn) return nullptr;
  Result<wire::Qid> root = Get(conn->s().AsyncAttach(1, "u", "", asio::use_future));
  EXPECT_TRUE(root) << root.error().ToString();
  return root ? std::move(conn) : nullptr;
}

// A read of `buf` at offset 0 of fid 1 that `cancel` cancels (emit it on the io thread).
std::future<Result<size_t>> CancellableRead(Session& s, std::span<std::byte> buf,
                                            asio::cancellation_signal& cancel) {
  return s.AsyncRead(1, 0, buf, asio::bind_cancellation_slot(cancel.slot(), asio::use_future));
}

// Waits (5 s at most) for a cancelled read's result: operation_canceled.
void ExpectCancelled(std::future<Result<size_t>>& read) {
  ASSERT_EQ(read.wait_for(5s), std::future_status::ready) << "cancelled read never completed";
  EXPECT_EQ(Code(read.get()), Errc(std::errc::operation_canceled));
}

TEST(SessionFake, CancelledReadCompletesWithOperationCanceledAndTheSessionGoesOn) {
  FakeServer server(HoldReads);
  auto conn = OpenAttached(server);
  ASSERT_TRUE(conn);
  Session& s = conn->s();
  asio::cancellation_signal cancel;
  std::vector<std::byte> buf(100);
  auto result = CancellableRead(s, buf, cancel);
  ASSERT_TRUE(server.WaitFor([](auto& rs) { return Saw(rs, wire::Tread::kType); }, 5s));
  asio::post(conn->io(), [&] { cancel.emit(asio::cancellation_type::all); });
  ExpectCancelled(result);
  auto rs = server.requests();
  const Request* read = Find(rs, wire::Tread::kType);
  const Request* flush = Find(rs, wire::Tflush::kType);
  ASSERT_TRUE(read && flush);
  EXPECT_EQ(flush->oldtag, read->tag);
  EXPECT_EQ(s.stats().flushes, 1u);
  // The session goes on, and the flushed tag is free again.
  for (int i = 0; i < 3; ++i) {
    auto a = Get(s.AsyncGetattr(1, client::kGetattrBasic, asio::use_future));
    ASSERT_TRUE(a) << a.error().ToString();
    EXPECT_EQ(a->size, 4096u);
  }
  EXPECT_TRUE(s.connected());
}

// A read larger than the session's iounit goes out as several Treads of one operation;
// cancelling it flushes every one of them (more than an operation keeps inline: the
// session's tag list for it spills over) and it completes once, cancelled.
TEST(SessionFake, CancellingASplitReadFlushesEveryPiece) {
  FakeServer server(HoldReads);
  auto conn = OpenAttached(server);
  ASSERT_TRUE(conn);
  Session& s = conn->s();
  // 16 half-msize pieces' worth: at least 8 Treads, whatever the pieces' exact size. The
  // session sends them all in one turn (they are well under its 64 tags).
  std::vector<std::byte> buf(16 * (s.msize() / 2));
  asio::cancellation_signal cancel;
  auto result = CancellableRead(s, buf, cancel);
  auto reads = [](const std::vector<Request>& rs) {
    return std::count_if(rs.begin(), rs.end(),
                         [](const Request& r) { return r.type == wire::Tread::kType; });
  };
  ASSERT_TRUE(server.WaitFor([&](auto& rs) { return reads(rs) >= 8; }, 5s))
      << reads(server.requests()) << " Treads";
  asio::post(conn->io(), [&] { cancel.emit(asio::cancellation_type::all); });
  ExpectCancelled(result);
  ASSERT_TRUE(server.WaitFor(
      [&](auto& rs) {
        return std::count_if(rs.begin(), rs.end(), [](const Request& r) {
                 return r.type == wire::Tflush::kType;
               }) == reads(rs);
      },
      5s));
  auto rs = server.requests();
  std::set<uint16_t> read_tags, flushed;
  for (const Request& r : rs) {
    if (r.type == wire::Tread::kType) read_tags.insert(r.tag);
    if (r.type == wire::Tflush::kType) flushed.insert(r.oldtag);
  }
  EXPECT_GT(read_tags.size(), 6u);
  EXPECT_EQ(flushed, read_tags) << "every piece, and only those, flushed once";
  EXPECT_TRUE(Get(s.AsyncGetattr(1, client::kGetattrBasic, asio::use_future)));
}

TEST(SessionFake, CancelBeforeTheRequestIsSentNeverSendsIt) {
  // One tag: the second read waits in the session's queue behind the first (held).
  FakeServer server(HoldReads);
  auto conn = OpenAttached(server, {.max_outstanding = 1});
  ASSERT_TRUE(conn);
  Session& s = conn->s();
  std::vector<std::byte> b1(10), b2(10);
  asio::cancellation_signal c1, c2;
  auto r1 = CancellableRead(s, b1, c1);
  auto r2 = CancellableRead(s, b2, c2);
  ASSERT_TRUE(server.WaitFor([](auto& rs) { return Saw(rs, wire::Tread::kType); }, 5s));
  asio::post(conn->io(), [&] { c2.emit(asio::cancellation_type::all); });
  asio::post(conn->io(), [&] { c1.emit(asio::cancellation_type::all); });
  ExpectCancelled(r1);
  ExpectCancelled(r2);
  auto rs = server.requests();
  EXPECT_EQ(
      std::count_if(rs.begin(), rs.end(), [](auto& r) { return r.type == wire::Tread::kType; }), 1)
      << "the queued read was sent after its cancellation";
  EXPECT_TRUE(Get(s.AsyncGetattr(1, client::kGetattrBasic, asio::use_future)));
}

TEST(SessionFake, DeadlineFlushesAndCompletesWithTimedOut) {
  FakeServer server(HoldReads);
  auto conn = OpenAttached(server, {.deadline = 200ms});
  ASSERT_TRUE(conn);
  Session& s = conn->s();
  std::vector<std::byte> buf(100);
  auto start = Clock::now();
  auto r = Get(s.AsyncRead(1, 0, buf, asio::use_future), 10s);
  EXPECT_EQ(Code(r), Errc(std::errc::timed_out));
  EXPECT_GE(Clock::now() - start, 200ms);
  auto rs = server.requests();
  const Request* read = Find(rs, wire::Tread::kType);
  const Request* flush = Find(rs, wire::Tflush::kType);
  ASSERT_TRUE(read && flush);
  EXPECT_EQ(flush->oldtag, read->tag);
  // Rflush came: the connection is healthy and stays.
  EXPECT_TRUE(s.connected());
  EXPECT_TRUE(Get(s.AsyncGetattr(1, client::kGetattrBasic, asio::use_future)));
}

// A DeadlineScope gives the calls made inside it their own deadline; calls outside keep
// the session's (none here): the held read outside the scope is still pending after the
// scoped one timed out.
TEST(SessionFake, DeadlineScopeAppliesOnlyToCallsMadeInIt) {
  FakeServer server(HoldReads);
  auto conn = OpenAttached(server);
  ASSERT_TRUE(conn);
  Session& s = conn->s();
  std::vector<std::byte> a(100), b(100);
  auto unscoped = s.AsyncRead(1, 0, a, asio::use_future);
  std::future<Result<size_t>> scoped;
  {
    client::DeadlineScope d(150ms);
    scoped = s.AsyncRead(1, 0, b, asio::use_future);
  }
  auto start = Clock::now();
  auto r = Get(std::move(scoped), 10s);
  EXPECT_EQ(Code(r), Errc(std::errc::timed_out));
  EXPECT_GE(Clock::now() - start, 100ms);
  EXPECT_EQ(unscoped.wait_for(300ms), std::future_status::timeout)
      << "the read started outside the scope must not have a deadline";
  EXPECT_TRUE(s.connected());
}

TEST(SessionFake, DeadlineWithAnUnansweredTflushFailsTheConnection) {
  FakeServer server(VersionOnly);
  auto conn = Open(server, {.deadline = 200ms});
  ASSERT_TRUE(conn);
  Session& s = conn->s();
  std::vector<std::byte> buf(100);
  auto r = Get(s.AsyncRead(7, 0, buf, asio::use_future), 10s);
  EXPECT_EQ(Code(r), Errc(std::errc::timed_out)) << (r ? "" : r.error().ToString());
  EXPECT_TRUE(server.WaitFor([](auto& rs) { return Saw(rs, wire::Tflush::kType); }, 1s));
  EXPECT_FALSE(s.connected());
  EXPECT_TRUE(server.WaitForClientClose(5s)) << "the session kept the connection open";
  // Later operations fail at once, as on any dead connection.
  auto later = s.AsyncGetattr(1, client::kGetattrBasic, asio::use_future);
  ASSERT_EQ(later.wait_for(1s), std::future_status::ready);
  EXPECT_EQ(Code(later.get()), Errc(std::errc::not_connected));
}

TEST(SessionFake, ServerThatNeverAnswersTversionTimesOutWithADeadline) {
  FakeServer server([](const wire::Frame&) { return std::vector<wire::Frame>{}; });
  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::thread t([&] { io.run(); });
  Result<transport::Address> addr = transport::ParseAddress(server.address());
  ASSERT_TRUE(addr);
  auto ch = transport::Dial(io, *addr);
  ASSERT_TRUE(ch) << ch.error().ToString();
  auto f = Session::AsyncConnect(*ch, {.deadline = 200ms}, io.get_executor(), asio::use_future);
  bool completed = f.wait_for(5s) == std::future_status::ready;
  EXPECT_TRUE(completed)
      << "AsyncConnect with a 200 ms deadline still waits for Rversion after 5 s";
  if (!completed) server.Stop();  // EOF: the session must complete now
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  auto s = f.get();
  EXPECT_EQ(Code(s), Errc(completed ? std::errc::timed_out : std::errc::not_connected));
  work.reset();
  t.join();
}

TEST(SessionFake, PeerClosingFailsPendingAndLaterOperations) {
  FakeServer server(HoldReads);
  auto conn = OpenAttached(server);
  ASSERT_TRUE(conn);
  Session& s = conn->s();
  std::vector<std::vector<std::byte>> bufs(50, std::vector<std::byte>(100));
  std::vector<std::future<Result<size_t>>> reads;
  for (auto& b : bufs) reads.push_back(s.AsyncRead(1, 0, b, asio::use_future));
  ASSERT_TRUE(server.WaitFor(
      [](auto& rs) {
        return std::count_if(rs.begin(), rs.end(),
                             [](auto& r) { return r.type == wire::Tread::kType; }) == 50;
      },
      5s));
  server.Stop();
  for (auto& r : reads) {
    ASSERT_EQ(r.wait_for(5s), std::future_status::ready);
    EXPECT_EQ(Code(r.get()), Errc(std::errc::not_connected));
  }
  EXPECT_FALSE(s.connected());
  EXPECT_EQ(Code(Get(s.AsyncClunk(1, asio::use_future), 1s)), Errc(std::errc::not_connected));
}

}  // namespace
}  // namespace ninefold::client_test
