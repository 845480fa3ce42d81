// Session: the asynchronous 9P client core. One Session speaks to one server over one
// Channel: it negotiates version and msize, hands out tags and fids, keeps any number of
// requests in flight (up to SessionOptions::max_outstanding; more wait in order for a
// tag), and completes each operation through an Asio completion token — a callback,
// asio::use_future or asio::use_awaitable all work:
//
//   auto s = co_await Session::AsyncConnect(channel, {.msize = 1 << 20}, use_awaitable);
//   Result<wire::Qid> root = co_await (*s)->AsyncAttach(fid, "glenda", "", use_awaitable);
//   Result<size_t> n = co_await (*s)->AsyncRead(fid, 0, buf, use_awaitable);
//   (*s)->AsyncGetattr(fid, kGetattrBasic, [](Result<wire::Rgetattr> a) { ... });
//
// Every completion carries one Result<T>: the value, or an Error whose code is the server's
// errno (Rlerror; a 9P2000.u Rerror's errno; for plain 9P2000 an errno recognised from the
// message, else EIO, with the server's text as context), std::errc::operation_canceled
// (cancelled by the caller and flushed), std::errc::timed_out (past its deadline and
// flushed), std::errc::not_connected (the channel is gone: every pending and later
// operation fails at once, none ever hangs), or EPROTO for a reply that breaks the
// protocol (which also closes the session).
//
// Cancellation: bind an asio::cancellation_slot to the token
// (asio::bind_cancellation_slot(signal.slot(), token)) and emit the signal from the
// session's executor; the session sends Tflush for every request of that operation. The
// operation completes with operation_canceled once the server confirms with Rflush —
// unless the server answered first, in which case it completes with that answer, as 9P
// requires. A request past its deadline (SessionOptions::deadline, or a DeadlineScope
// around the call) is flushed the same way and completes with timed_out; if the server
// answers neither it nor the Tflush within another deadline, the session fails.
//
// Large reads and writes are split into iounit-sized requests, all issued at once and
// reassembled in order; walks of more than 16 names are split into successive Twalks.
//
// Threading: a Session lives on its channel's io_context; all its state is touched only
// there, so the request path takes no locks. Every public member function may be called
// from any thread: the work is dispatched to the io_context (inline when the caller
// already runs on it). Completion handlers run on the handler's associated executor (by
// default inline on the io_context's thread: do not block in them). Buffers given to
// AsyncRead/AsyncWrite must stay valid until the operation completes.
#ifndef NINEFOLD_CLIENT_SESSION_H_
#define NINEFOLD_CLIENT_SESSION_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "asio/associated_cancellation_slot.hpp"
#include "asio/associated_executor.hpp"
#include "asio/async_result.hpp"
#include "asio/dispatch.hpp"
#include "asio/io_context.hpp"
#include "ninefold/base/result.h"
#include "ninefold/buf/buffer.h"
#include "ninefold/transport/channel.h"
#include "ninefold/wire/messages.h"

namespace ninefold::client {

struct SessionOptions {
  // Proposed in Tversion; the session uses what the server answers (never more).
  uint32_t msize = 512 * 1024;
  wire::Dialect dialect = wire::Dialect::k9P2000L;
  // Requests on the wire at once; later ones wait in order for a free tag.
  uint32_t max_outstanding = 256;
  // Each request's deadline (zero: none). A request still unanswered after it is flushed
  // and its operation completes with std::errc::timed_out.
  std::chrono::milliseconds deadline{0};
  // How long AsyncConnect waits for Rversion before failing with timed_out (or `deadline`,
  // when that is shorter).
  std::chrono::milliseconds connect_timeout = std::chrono::seconds(10);
};

// Gives the operations started on this thread while it lives their own per-request
// deadline, instead of SessionOptions::deadline (zero: none):
//   { DeadlineScope d(200ms); session->AsyncRead(fid, 0, buf, token); }
class DeadlineScope {
 public:
  explicit DeadlineScope(std::chrono::milliseconds deadline);
  ~DeadlineScope();
  DeadlineScope(const DeadlineScope&) = delete;
  DeadlineScope& operator=(const DeadlineScope&) = delete;

 private:
  std::chrono::milliseconds previous_;
};

// Counters; Session::stats() may be read from any thread.
struct SessionStats {
  uint64_t requests = 0;       // T-messages sent (flushes included)
  uint64_t flushes = 0;        // Tflush sent
  uint64_t bytes_read = 0;     // Rread payload delivered into callers' buffers
  uint64_t bytes_written = 0;  // Twrite payload the server accepted
  // How payload moved (see buf/buffer.h and docs/shm.md). Each read or write byte is
  // counted once, by the strategy the Mover chose for it:
  uint64_t bytes_copied = 0;  // (a) copied by the client: out of a reply, or into a
                              //     request (socket or ring)
  uint64_t bytes_placed = 0;  // (b) through the caller's shared buffer (AllocateBuffer):
                              //     the server's own read or write was the only copy
  uint64_t bytes_shared = 0;  // (c) delivered by sharing pages: no copy at all
  uint64_t bytes_piped = 0;   // handed to the caller in a pipe the server filled from its
                              //     file (AsyncReadPiped): not copied on the way
};

// The read end of a pipe holding a read's data (AsyncReadPiped); closed with the last
// reference. The server that filled it may still hold its ends: read it without waiting
// (O_NONBLOCK, SPLICE_F_NONBLOCK) and treat fewer bytes than promised as an error.
class PipeEnd {
 public:
  explicit PipeEnd(int fd) : fd_(fd) {}
  ~PipeEnd();
  PipeEnd(const PipeEnd&) = delete;
  PipeEnd& operator=(const PipeEnd&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

// What AsyncReadPiped read: `bytes` of data, waiting in `pipe` when it is set, else in
// the destination.
struct PipedRead {
  size_t bytes = 0;
  std::shared_ptr<const PipeEnd> pipe;
};

// One directory entry of AsyncReaddir, owned. For 9P2000/.u the entry comes from a stat
// and `offset` is the byte offset at which the next read continues.
struct DirEntry {
  wire::Qid qid;
  uint64_t offset = 0;
  uint8_t type = 0;  // DT_* (from the qid type for 9P2000/.u)
  std::string name;
};

// A 9P2000/.u stat, owned (Rstat's strings are views into the reply).
struct OwnedStat {
  uint16_t type = 0;
  uint32_t dev = 0;
  wire::Qid qid;
  uint32_t mode = 0;  // DM* bits | permissions
  uint32_t atime = 0;
  uint32_t mtime = 0;
  uint64_t length = 0;
  std::string name, uid, gid, muid, extension;
  uint32_t n_uid = wire::kNoUid, n_gid = wire::kNoUid, n_muid = wire::kNoUid;
};

// Rgetlock, owned.
struct LockInfo {
  uint8_t type = 0;
  uint64_t start = 0;
  uint64_t length = 0;
  uint32_t proc_id = 0;
  std::string client_id;
};

// Tgetattr request masks (9P2000.L).
constexpr uint64_t kGetattrBasic = 0x7ff;
constexpr uint64_t kGetattrAll = 0x3fff;

class Session : public std::enable_shared_from_this<Session> {
 public:
  using Fid = uint32_t;
  template <class T>
  using Signature = void(Result<T>);

  // Starts `channel` (which must not have been started), sends Tversion and completes with
  // the session once Rversion arrives. A server that answers another dialect fails with
  // EPROTONOSUPPORT naming its answer.
  template <class Token>
  static auto AsyncConnect(std::shared_ptr<transport::Channel> channel, SessionOptions options,
                           asio::io_context::executor_type executor, Token&& token) {
    return asio::async_initiate<Token, Signature<std::shared_ptr<Session>>>(
        [](auto handler, std::shared_ptr<transport::Channel> ch, SessionOptions opts,
           asio::io_context::executor_type ex) {
          std::shared_ptr<Session> s(new Session(std::move(ch), opts, ex));
          auto done = s->Wrap<std::shared_ptr<Session>>(std::move(handler));
          asio::dispatch(ex, [s, done = std::move(done)]() mutable { s->StartConnect(done); });
        },
        token, std::move(channel), options, executor);
  }

  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Negotiated values (fixed once connected).
  uint32_t msize() const { return msize_; }
  wire::Dialect dialect() const { return options_.dialect; }
  // The largest Tread/Twrite payload: msize - 24.
  uint32_t iounit() const { return msize_ - static_cast<uint32_t>(wire::kIoHeaderSize); }
  const SessionOptions& options() const { return options_; }
  const std::string& peer() const;
  asio::io_context::executor_type get_executor() const { return executor_; }
  SessionStats stats() const;

  // A fid number unused on this session until released. AsyncClunk and AsyncRemove
  // release their fid whatever the outcome; ReleaseFid is for a fid the server does not
  // hold (a walk that failed). Any thread.
  Fid AllocFid();
  void ReleaseFid(Fid fid);

  // Closes the channel; every pending operation completes with not_connected. Any thread.
  // An open session keeps itself alive (its channel refers to it) until Close() or until
  // the connection ends; drop the last shared_ptr only after that.
  void Close();
  // False once the channel closed (either side) or a reply broke the protocol.
  bool connected() const { return connected_.load(std::memory_order_acquire); }

  // --- operations (all dialects unless noted) --------------------------------------------
  // Tattach without authentication (afid NOFID); n_uname is sent in .u and .L.
  template <class Token>
  auto AsyncAttach(Fid fid, std::string uname, std::string aname, Token&& token,
                   uint32_t n_uname = wire::kNoUid) {
    return Call<wire::Qid>(token, [=, this](Done<wire::Qid> done) {
      Send(
          wire::Tattach{
              .fid = fid, .afid = wire::kNoFid, .uname = uname, .aname = aname, .n_uname = n_uname},
          Map<wire::Rattach>(std::move(done), [](const wire::Rattach& r) { return r.qid; }));
    });
  }

  // Walks `names` from fid to newfid (newfid may equal fid; no names clones the fid).
  // More than 16 names go in several Twalks. A name that does not exist fails with ENOENT
  // naming it; newfid is then not in use. Completes with one qid per name.
  template <class Token>
  auto AsyncWalk(Fid fid, Fid newfid, std::vector<std::string> names, Token&& token) {
    return Call<std::vector<wire::Qid>>(token, [=, this](Done<std::vector<wire::Qid>> done) {
      StartWalk(fid, newfid, names, std::move(done));
    });
  }

  // Reads up to dest.size() bytes at offset (concurrent Treads when larger than the
  // iounit). Completes with the bytes read: fewer only at the end of the file.
  // The same call for every transport and buffer: when dest lies in a buffer from
  // AllocateBuffer on a shared-memory session, the server writes the data there itself
  // (stats: bytes_placed); otherwise the client copies it from the reply (bytes_copied).
  template <class Token>
  auto AsyncRead(Fid fid, uint64_t offset, std::span<std::byte> dest, Token&& token) {
    return Call<size_t>(
        token, [=, this](Done<size_t> done) { StartRead(fid, offset, dest, std::move(done)); });
  }
  // The same, for a buffer reference (Virtual or Region; EINVAL for kinds a read cannot
  // land in here).
  template <class Token>
  auto AsyncRead(Fid fid, uint64_t offset, const buf::BufferRef& dest, Token&& token) {
    Result<std::span<std::byte>> bytes = buf::Addressable(dest);
    return Call<size_t>(token, [=, this](Done<size_t> done) {
      if (!bytes) return done(Unexpected(bytes.error()));
      StartRead(fid, offset, *bytes, std::move(done));
    });
  }

  // AsyncRead for a caller that moves the data on without looking at it (a FUSE daemon
  // splicing it into /dev/fuse): when the session takes_pipes() and dest fits in one
  // request, the server may answer with the data in a pipe (exportfs does: it fills the
  // pipe from its file, so no one copies the data on the way; stats: bytes_piped).
  // Otherwise the data lands in dest, exactly as AsyncRead puts it there.
  template <class Token>
  auto AsyncReadPiped(Fid fid, uint64_t offset, std::span<std::byte> dest, Token&& token) {
    return Call<PipedRead>(token, [=, this](Done<PipedRead> done) {
      StartReadPiped(fid, offset, dest, std::move(done));
    });
  }
  // True when the server may answer AsyncReadPiped with pipes (shm).
  bool takes_pipes() const { return channel_->takes_pipes(); }

  // Memory for reads and writes, like malloc's: on a shared-memory session it comes from
  // the memory the server maps too (so reads land there without a copy by the client and
  // writes from it are not copied), else from private memory. Any thread.
  buf::Buffer AllocateBuffer(size_t size) const {
    return buf::Buffer::Allocate(size, channel_->arena());
  }
  // True when this session's transport has memory shared with the server (shm), so
  // AllocateBuffer places buffers there while it has room.
  bool shares_memory() const { return channel_->arena() != nullptr; }
  // Writes src at offset (concurrent Twrites when larger than the iounit). Completes with
  // the bytes written; fewer than src.size() only if the server wrote less.
  template <class Token>
  auto AsyncWrite(Fid fid, uint64_t offset, std::span<const std::byte> src, Token&& token) {
    return Call<size_t>(
        token, [=, this](Done<size_t> done) { StartWrite(fid, offset, src, std::move(done)); });
  }

  // One directory read of an open directory: 9P2000.L Treaddir at `offset` (0, then the
  // last entry's offset), or a 9P2000/.u Tread of stats (offset in bytes, continue at the
  // last entry's offset). An empty vector is the end.
  template <class Token>
  auto AsyncReaddir(Fid fid, uint64_t offset, Token&& token) {
    return Call<std::vector<DirEntry>>(token, [=, this](Done<std::vector<DirEntry>> done) {
      StartReaddir(fid, offset, std::move(done));
    });
  }

  // Tclunk / Tremove: the fid returns to the pool whatever the outcome.
  template <class Token>
  auto AsyncClunk(Fid fid, Token&& token) {
    return Call<void>(token, [=, this](Done<void> done) {
      Send(wire::Tclunk{.fid = fid}, Release(fid, std::move(done)));
    });
  }
  template <class Token>
  auto AsyncRemove(Fid fid, Token&& token) {
    return Call<void>(token, [=, this](Done<void> done) {
      Send(wire::Tremove{.fid = fid}, Release(fid, std::move(done)));
    });
  }

  // 9P2000.L Tgetattr.
  template <class Token>
  auto AsyncGetattr(Fid fid, uint64_t mask, Token&& token) {
    return AsyncRequest<wire::Rgetattr>(wire::Tgetattr{.fid = fid, .request_mask = mask},
                                        std::forward<Token>(token));
  }
  // 9P2000.L Treadlink.
  template <class Token>
  auto AsyncReadlink(Fid fid, Token&& token) {
    return Call<std::string>(token, [=, this](Done<std::string> done) {
      Send(wire::Treadlink{.fid = fid},
           Map<wire::Rreadlink>(std::move(done),
                                [](const wire::Rreadlink& r) { return std::string(r.target); }));
    });
  }
  // 9P2000/.u Tstat.
  template <class Token>
  auto AsyncStat(Fid fid, Token&& token) {
    return Call<OwnedStat>(token, [=, this](Done<OwnedStat> done) {
      Send(wire::Tstat{.fid = fid},
           Map<wire::Rstat>(std::move(done), [](const wire::Rstat& r) { return Own(r.stat); }));
    });
  }
  // 9P2000.L Tgetlock.
  template <class Token>
  auto AsyncGetlock(wire::Tgetlock request, std::string client_id, Token&& token) {
    return Call<LockInfo>(token, [=, this](Done<LockInfo> done) mutable {
      request.client_id = client_id;
      Send(request, Map<wire::Rgetlock>(std::move(done), [](const wire::Rgetlock& r) {
             return LockInfo{r.type, r.start, r.length, r.proc_id, std::string(r.client_id)};
           }));
    });
  }

  // Any other request whose reply holds no views — Tlopen, Tlcreate, Tsetattr, Tmkdir,
  // Tsymlink, Tmknod, Tlink, Trename, Trenameat, Tunlinkat, Tstatfs, Tfsync, Tlock,
  // Txattrwalk, Txattrcreate, Topen, Tcreate, Twstat — completing with its reply:
  //   session->AsyncRequest<wire::Rlopen>(wire::Tlopen{.fid = f, .flags = O_RDONLY}, token);
  // The request is encoded before this returns, so its string views need only live until
  // then. A reply of another type fails with EPROTO.
  template <class Reply, class Request, class Token>
  auto AsyncRequest(const Request& request, Token&& token) {
    // The handler completes straight from the raw reply (no Done<Reply> in between).
    return asio::async_initiate<Token, Signature<Reply>>(
        [this](auto handler, Result<std::vector<std::byte>> encoded) {
          auto op = NewOp(handler);
          RawDone done{std::move(op),
                       Completion<Reply, Result<const wire::Message*>, &Session::Expect<Reply>>(
                           std::move(handler))};
          OnIoThread([this, frame = std::move(encoded), done = std::move(done)]() mutable {
            if (!frame) return done(Unexpected(frame.error()));
            SendEncoded(std::move(*frame), {}, std::move(done));
          });
        },
        token, EncodeRequest(wire::Message(request)));
  }

 private:
  struct Impl;
  struct OpState;  // one caller-visible operation: its tags, for cancellation
  struct Walk;

  // A completion: the function that finishes the operation, and the operation it is part
  // of (requests sent on its behalf are flushed together when it is cancelled).
  template <class T>
  struct Done {
    std::shared_ptr<OpState> op;
    std::function<void(Result<T>)> fn;
    void operator()(Result<T> r) const { fn(std::move(r)); }
  };
  // The decoded reply (valid during the call) or an Error.
  using RawDone = Done<const wire::Message*>;
  using ReplyTo = transport::ReplyTo;

  Session(std::shared_ptr<transport::Channel> channel, SessionOptions options,
          asio::io_context::executor_type executor);

  // Makes a Done that completes `handler` on its associated executor and flushes the
  // operation's requests when the handler's cancellation slot fires.
  template <class T, class Handler>
  Done<T> Wrap(Handler handler) {
    auto op = NewOp(handler);
    return Done<T>{std::move(op), Completion<T, Result<T>, &Session::Same<T>>(std::move(handler))};
  }

  // The operation state a handler needs: none when nothing can cancel it and it has no
  // deadline (no tags need tracking), else one whose cancellation flushes its requests.
  template <class Handler>
  std::shared_ptr<OpState> NewOp(Handler& handler) {
    auto slot = asio::get_associated_cancellation_slot(handler);
    auto op = NewOp(slot.is_connected());
    if (slot.is_connected()) {
      slot.assign([weak = weak_from_this(), op](asio::cancellation_type) {
        if (auto self = weak.lock()) self->Cancel(op);
      });
    }
    return op;
  }

  // The function that completes `handler` with Convert(From), a Result<T>. Completions
  // are called on the io thread: a handler whose executor is the session's own runs right
  // there (what asio::dispatch would do, without its hop); any other executor gets the
  // result dispatched to it. (Convert is a template argument, not a capture, so that a
  // small handler alone fits in std::function's own storage: no allocation.)
  template <class T, class From, Result<T> (*Convert)(From), class Handler>
  std::function<void(From)> Completion(Handler handler) {
    using Ex = asio::associated_executor_t<Handler, asio::io_context::executor_type>;
    if constexpr (std::is_same_v<Ex, asio::io_context::executor_type> &&
                  std::is_copy_constructible_v<Handler>) {
      if (asio::get_associated_executor(handler, executor_) == executor_) {
        return [handler = std::move(handler)](From from) mutable {
          auto mine = asio::get_associated_cancellation_slot(handler);
          if (mine.is_connected()) mine.clear();
          std::move(handler)(Convert(std::move(from)));
        };
      }
    }
    auto ex = asio::get_associated_executor(handler, executor_);
    auto h = std::make_shared<Handler>(std::move(handler));
    return [h, ex](From from) {
      auto mine = asio::get_associated_cancellation_slot(*h);
      if (mine.is_connected()) mine.clear();
      asio::dispatch(ex, [h, r = Convert(std::move(from))]() mutable { (*h)(std::move(r)); });
    };
  }

  // Runs f on the io thread: now when already there, else dispatched.
  template <class F>
  void OnIoThread(F f) {
    if (executor_.running_in_this_thread()) return f();
    asio::dispatch(executor_, [self = shared_from_this(), f = std::move(f)]() mutable { f(); });
  }

  // async_initiate + a hop to the io thread, where `start(done)` runs.
  template <class T, class Token, class Start>
  auto Call(Token& token, Start start) {
    return asio::async_initiate<Token, Signature<T>>(
        [this](auto handler, Start s) {
          Done<T> done = this->Wrap<T>(std::move(handler));
          this->OnIoThread(
              [s = std::move(s), done = std::move(done)]() mutable { s(std::move(done)); });
        },
        token, std::move(start));
  }

  // A RawDone that converts a reply of type R with `make` and hands it to `done`.
  template <class R, class T, class F>
  static RawDone Map(Done<T> done, F make) {
    auto op = done.op;
    return RawDone{op, [done = std::move(done), make](Result<const wire::Message*> r) {
                     Result<const R*> reply = ReplyAs<R>(r);
                     if (!reply) return done(Unexpected(reply.error()));
                     done(make(**reply));
                   }};
  }
  template <class T>
  static Result<T> Same(Result<T> r) {
    return r;
  }
  // The reply if it is an R (valid while the reply is), or why it is not one.
  template <class R>
  static Result<const R*> ReplyAs(const Result<const wire::Message*>& r) {
    if (!r) return Unexpected(r.error());
    if (const R* reply = std::get_if<R>(*r)) return reply;
    return Unexpected(WrongReply(R::kName, **r));
  }
  // The reply as an R (copied), or why it is not one.
  template <class R>
  static Result<R> Expect(Result<const wire::Message*> r) {
    Result<const R*> reply = ReplyAs<R>(r);
    if (!reply) return Unexpected(reply.error());
    return **reply;
  }
  // For Rclunk/Rremove: release the fid, then complete.
  RawDone Release(Fid fid, Done<void> done);
  static Error WrongReply(std::string_view expected, const wire::Message& got);
  static OwnedStat Own(const wire::Stat& stat);

  Result<std::vector<std::byte>> EncodeRequest(const wire::Message& request) const;
  // Encodes and sends `request` for `done.op`; the tag is filled in here.
  void Send(const wire::Message& request, RawDone done);
  // Sends an encoded frame (tag bytes patched here) followed by `payload`, which is not
  // copied and must stay valid until `done` runs.
  // `to`: where the server may put the reply's payload instead (shm).
  void SendEncoded(std::vector<std::byte> frame, std::span<const std::byte> payload, RawDone done,
                   ReplyTo to = {});

  // A new operation's state (nullptr when it is not `cancellable` and has no deadline).
  std::shared_ptr<OpState> NewOp(bool cancellable);
  void Cancel(const std::shared_ptr<OpState>& op);  // any thread
  // io thread: the request machinery (session.cc).
  void Transmit(uint16_t tag, std::vector<std::byte> frame, std::span<const std::byte> payload,
                RawDone done, ReplyTo to);
  void Pump();
  void Emit(std::vector<std::byte> frame, std::span<const std::byte> payload, ReplyTo to);
  void FlushBatch();
  RawDone Retire(uint16_t tag);
  void Flush(uint16_t tag, Error why);
  void Fail(Error why);
  void OnFrame(std::span<const std::byte> frame);
  std::optional<wire::Frame> RerrorAsRlerror(std::span<const std::byte> frame) const;
  void OnClose(const Error& why);
  void ScheduleSweep(std::chrono::steady_clock::time_point due);
  void Sweep();
  // How the payload moved: a copy by the client, placed by the server in shared memory,
  // or shared pages (SessionStats).
  enum class Moved { kCopied, kPlaced, kShared, kPiped };
  void CountRead(size_t n, Moved how);
  void CountWritten(size_t n, Moved how);
  void StartConnect(Done<std::shared_ptr<Session>> done);
  void StartWalk(Fid fid, Fid newfid, std::vector<std::string> names,
                 Done<std::vector<wire::Qid>> done);
  void StartRead(Fid fid, uint64_t offset, std::span<std::byte> dest, Done<size_t> done);
  void StartReadPiped(Fid fid, uint64_t offset, std::span<std::byte> dest, Done<PipedRead> done);
  // Inside a read's completion: puts an Rread's data into dest (placed there already,
  // mapped as shared pages, or copied) and counts how; the bytes, or why the reply is
  // not one for a read of dest.size().
  Result<size_t> Deliver(const wire::Message& reply, std::span<std::byte> dest);
  // Inside a read's completion: maps the reply's whole pages onto `dest` when the reply
  // came as pages (Channel::FramePages) and dest starts on a page; the bytes so mapped
  // (0: none, the caller copies).
  size_t AliasPages(const wire::Rread& reply, std::span<std::byte> dest);
  void StartWrite(Fid fid, uint64_t offset, std::span<const std::byte> src, Done<size_t> done);
  void StartReaddir(Fid fid, uint64_t offset, Done<std::vector<DirEntry>> done);

  const std::shared_ptr<transport::Channel> channel_;
  const asio::io_context::executor_type executor_;
  SessionOptions options_;  // dialect fixed at construction
  uint32_t msize_ = 0;      // set once by Rversion, before the session is handed out
  std::atomic<bool> connected_{false};
  std::shared_ptr<Session> self_;  // io thread: set while the channel is open
  std::unique_ptr<Impl> impl_;     // io-thread state (tags, queue, counters, fid pool)
};

}  // namespace ninefold::client

#endif  // NINEFOLD_CLIENT_SESSION_H_
