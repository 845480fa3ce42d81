// The Session core: tags, the wait queue, reply dispatch, flush, deadlines and failure.
// Everything in Impl is touched only on the session's io thread, except the fid pool
// (fid_mu) and the counters (atomics), which any thread may use.
#include "ninefold/client/session.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <deque>
#include <mutex>

#include "asio/post.hpp"
#include "asio/steady_timer.hpp"
#include "fmt/format.h"
#include "ninefold/base/log.h"
#include "ninefold/wire/codec.h"

namespace ninefold::client {

using Clock = std::chrono::steady_clock;

namespace {
// The tags of one operation's requests on the wire. Most operations have one or a few, so
// those live inline: no allocation per request.
class OpTags {
 public:
  void Add(uint16_t tag) {
    if (inline_count_ < kInline) {
      inline_[inline_count_++] = tag;
    } else {
      more_.push_back(tag);
    }
  }
  // Order does not matter: a freed inline place takes the last tag.
  void Remove(uint16_t tag) {
    auto end = inline_.begin() + inline_count_;
    if (auto it = std::find(inline_.begin(), end, tag); it != end) {
      if (!more_.empty()) {
        *it = more_.back();
        more_.pop_back();
      } else {
        *it = inline_[--inline_count_];
      }
      return;
    }
    std::erase(more_, tag);
  }
  std::vector<uint16_t> All() const {
    std::vector<uint16_t> all(inline_.begin(), inline_.begin() + inline_count_);
    all.insert(all.end(), more_.begin(), more_.end());
    return all;
  }

 private:
  static constexpr uint8_t kInline = 6;
  std::array<uint16_t, kInline> inline_{};
  uint8_t inline_count_ = 0;
  std::vector<uint16_t> more_;
};
}  // namespace

struct Session::OpState {
  OpTags tags;  // its requests on the wire
  bool cancelled = false;
  std::chrono::milliseconds deadline{0};  // per request; zero: none
};

namespace {
// DeadlineScope's value on this thread; negative: none (the session's default applies).
thread_local std::chrono::milliseconds t_deadline{-1};
}  // namespace

DeadlineScope::DeadlineScope(std::chrono::milliseconds deadline) : previous_(t_deadline) {
  t_deadline = deadline;
}
DeadlineScope::~DeadlineScope() { t_deadline = previous_; }

namespace {

// A request on the wire (slots_ is indexed by tag).
struct Slot {
  bool in_use = false;
  bool is_flush = false;      // a Tflush; `flush_of` is the tag it flushes
  bool flushing = false;      // a Tflush for it is on the wire
  bool answered = false;      // its reply arrived while the flush was pending
  bool accepts_pipe = false;  // its reply's data may come in a pipe (ReplyTo::pipe)
  uint8_t type = 0;           // the T-message's type byte, for error context
  uint16_t flush_of = 0;
  Error abort;                         // what the operation completes with if the flush wins
  std::chrono::milliseconds limit{0};  // its deadline (zero: none)
  Clock::time_point due = Clock::time_point::max();

  // Back to unused. A plain request's slot set only the first fields: those are cleared
  // in place (this runs for every reply) rather than through a whole new Slot.
  void Reset() {
    if (is_flush || flushing || answered || limit.count() != 0) {
      *this = Slot{};
      return;
    }
    in_use = false;
    accepts_pipe = false;
    type = 0;
  }
};

// What the errno of a 9P2000 Rerror's text is, when it is one we know: Plan 9's own
// strings and the strerror() texts Unix servers send.
int ErrnoFromText(std::string_view text) {
  static constexpr std::pair<std::string_view, int> kPlan9[] = {
      {"file does not exist", ENOENT},
      {"permission denied", EACCES},
      {"file already exists", EEXIST},
      {"file exists", EEXIST},
      {"not a directory", ENOTDIR},
      {"is a directory", EISDIR},
      {"directory not empty", ENOTEMPTY},
      {"file is a directory", EISDIR},
      {"unknown fid", EBADF},
      {"read/write -- on non open fid", EBADF},
  };
  for (const auto& [s, e] : kPlan9) {
    if (text == s) return e;
  }
  for (int e = 1; e < 134; ++e) {
    if (text == std::strerror(e)) return e;
  }
  return EIO;
}

Error ReplyError(const wire::Message& reply, uint8_t request_type) {
  std::string_view request = wire::TypeName(request_type);
  if (const auto* l = std::get_if<wire::Rlerror>(&reply)) {
    return Error(std::error_code(static_cast<int>(l->ecode), std::generic_category()),
                 std::string(request));
  }
  const auto& r = std::get<wire::Rerror>(reply);
  int err = r.errnum != 0 ? static_cast<int>(r.errnum) : ErrnoFromText(r.ename);
  return Error(std::error_code(err, std::generic_category()),
               fmt::format("{}: server says '{}'", request, r.ename));
}

}  // namespace

struct Session::Impl {
  explicit Impl(asio::io_context::executor_type ex) : deadline_timer(ex), connect_timer(ex) {}

  // io thread.
  std::vector<Slot> slots;
  std::vector<RawDone> dones;             // by tag, beside slots (RawDone is not trivially movable)
  std::vector<uint16_t> free_tags;        // tags for requests: [0, max_outstanding)
  std::vector<uint16_t> free_flush_tags;  // tags for Tflush: [max_outstanding, 2*max)
  struct Waiting {
    std::vector<std::byte> frame;
    std::span<const std::byte> payload;
    RawDone done;
    ReplyTo to;
  };
  std::deque<Waiting> waiting;
  RawDone version_done;  // the Tversion's completion until Rversion
  bool closed = false;
  Error failure;
  asio::steady_timer deadline_timer;  // the next Sweep
  bool sweep_armed = false;
  Clock::time_point sweep_due;
  asio::steady_timer connect_timer;  // Rversion
  std::vector<std::byte> batch;      // frames to send at the end of this burst
  bool flush_posted = false;
  // Over shm every frame becomes its own ring record anyway: gathering them saves no
  // system call and only delays each request by a trip through the io_context.
  bool send_at_once = false;

  // Any thread.
  std::mutex fid_mu;
  std::vector<Fid> free_fids;  // guarded by fid_mu
  Fid next_fid = 1;            // guarded by fid_mu
  std::atomic<uint64_t> requests{0}, flushes{0}, bytes_read{0}, bytes_written{0};
  std::atomic<uint64_t> bytes_copied{0}, bytes_placed{0}, bytes_shared{0}, bytes_piped{0};
  void CountMoved(size_t n, Moved how) {
    std::atomic<uint64_t>& counter = how == Moved::kCopied   ? bytes_copied
                                     : how == Moved::kPlaced ? bytes_placed
                                     : how == Moved::kShared ? bytes_shared
                                                             : bytes_piped;
    counter.fetch_add(n, std::memory_order_relaxed);
  }
};

Session::Session(std::shared_ptr<transport::Channel> channel, SessionOptions options,
                 asio::io_context::executor_type executor)
    : channel_(std::move(channel)),
      executor_(executor),
      options_(options),
      impl_(std::make_unique<Impl>(executor)) {
  options_.max_outstanding = std::clamp<uint32_t>(options_.max_outstanding, 1, 32000);
  uint32_t n = options_.max_outstanding;
  impl_->slots.resize(2 * n);
  impl_->dones.resize(2 * n);
  for (uint32_t t = n; t-- > 0;) impl_->free_tags.push_back(static_cast<uint16_t>(t));
  for (uint32_t t = 2 * n; t-- > n;) impl_->free_flush_tags.push_back(static_cast<uint16_t>(t));
  impl_->send_at_once = shares_memory();
}

Session::~Session() = default;

const std::string& Session::peer() const { return channel_->peer(); }

SessionStats Session::stats() const {
  SessionStats s;
  s.requests = impl_->requests.load(std::memory_order_relaxed);
  s.flushes = impl_->flushes.load(std::memory_order_relaxed);
  s.bytes_read = impl_->bytes_read.load(std::memory_order_relaxed);
  s.bytes_written = impl_->bytes_written.load(std::memory_order_relaxed);
  s.bytes_copied = impl_->bytes_copied.load(std::memory_order_relaxed);
  s.bytes_placed = impl_->bytes_placed.load(std::memory_order_relaxed);
  s.bytes_shared = impl_->bytes_shared.load(std::memory_order_relaxed);
  s.bytes_piped = impl_->bytes_piped.load(std::memory_order_relaxed);
  return s;
}

Session::Fid Session::AllocFid() {
  std::lock_guard lock(impl_->fid_mu);
  if (!impl_->free_fids.empty()) {
    Fid fid = impl_->free_fids.back();
    impl_->free_fids.pop_back();
    return fid;
  }
  return impl_->next_fid++;
}

void Session::ReleaseFid(Fid fid) {
  std::lock_guard lock(impl_->fid_mu);
  impl_->free_fids.push_back(fid);
}

PipeEnd::~PipeEnd() {
  if (fd_ >= 0) ::close(fd_);
}

void Session::CountRead(size_t n, Moved how) {
  impl_->bytes_read.fetch_add(n, std::memory_order_relaxed);
  impl_->CountMoved(n, how);
}
void Session::CountWritten(size_t n, Moved how) {
  impl_->bytes_written.fetch_add(n, std::memory_order_relaxed);
  impl_->CountMoved(n, how);
}

std::shared_ptr<Session::OpState> Session::NewOp(bool cancellable) {
  auto deadline = t_deadline.count() >= 0 ? t_deadline : options_.deadline;
  // Without either, the operation's tags need not be tracked and no flush can be asked for.
  if (!cancellable && deadline.count() <= 0) return nullptr;
  auto op = std::make_shared<OpState>();
  op->deadline = deadline;
  return op;
}

Session::RawDone Session::Release(Fid fid, Done<void> done) {
  auto op = done.op;
  return RawDone{op, [this, fid, done = std::move(done)](Result<const wire::Message*> r) {
                   ReleaseFid(fid);
                   if (!r) return done(Unexpected(r.error()));
                   done(Result<void>());
                 }};
}

Error Session::WrongReply(std::string_view expected, const wire::Message& got) {
  return Error(std::errc::protocol_error,
               fmt::format("expected {}, got {}", expected, wire::TypeName(wire::TypeOf(got))));
}

OwnedStat Session::Own(const wire::Stat& s) {
  return OwnedStat{s.type,
                   s.dev,
                   s.qid,
                   s.mode,
                   s.atime,
                   s.mtime,
                   s.length,
                   std::string(s.name),
                   std::string(s.uid),
                   std::string(s.gid),
                   std::string(s.muid),
                   std::string(s.extension),
                   s.n_uid,
                   s.n_gid,
                   s.n_muid};
}

Result<std::vector<std::byte>> Session::EncodeRequest(const wire::Message& request) const {
  // Before Rversion (msize_ 0) only Tversion is encoded, against the proposed msize.
  std::vector<std::byte> frame = transport::TakeFrameBuffer();
  Result<void> ok =
      wire::Encode(0, request, options_.dialect, frame, msize_ ? msize_ : options_.msize);
  if (!ok) return Unexpected(ok.error());
  return frame;
}

void Session::Send(const wire::Message& request, RawDone done) {
  Result<std::vector<std::byte>> frame = EncodeRequest(request);
  if (!frame) return done(Unexpected(frame.error()));
  SendEncoded(std::move(*frame), {}, std::move(done));
}

void Session::SendEncoded(std::vector<std::byte> frame, std::span<const std::byte> payload,
                          RawDone done, ReplyTo to) {
  Impl& im = *impl_;
  if (im.closed) return done(Unexpected(im.failure));
  if (done.op && done.op->cancelled) {
    return done(Unexpected(Error(std::errc::operation_canceled, "cancelled before sending")));
  }
  if (im.free_tags.empty() || !im.waiting.empty()) {
    im.waiting.push_back({std::move(frame), payload, std::move(done), to});
    return;
  }
  uint16_t tag = im.free_tags.back();
  im.free_tags.pop_back();
  Transmit(tag, std::move(frame), payload, std::move(done), to);
}

void Session::Transmit(uint16_t tag, std::vector<std::byte> frame,
                       std::span<const std::byte> payload, RawDone done, ReplyTo to) {
  Impl& im = *impl_;
  frame[5] = static_cast<std::byte>(tag & 0xff);
  frame[6] = static_cast<std::byte>(tag >> 8);
  Slot& slot = im.slots[tag];  // free: as Reset left it
  slot.in_use = true;
  slot.accepts_pipe = to.pipe;
  slot.type = static_cast<uint8_t>(frame[4]);
  if (done.op && done.op->deadline.count() > 0) {
    slot.limit = done.op->deadline;
    slot.due = Clock::now() + done.op->deadline;
    ScheduleSweep(slot.due);
  }
  if (done.op) done.op->tags.Add(tag);
  im.dones[tag] = std::move(done);
  im.requests.fetch_add(1, std::memory_order_relaxed);
  Emit(std::move(frame), payload, to);
}

// Frames sent while the io thread works through a burst of replies (each completion may
// issue the next request) are gathered into one buffer and written with one send when
// the burst is over; a frame with a large payload goes out by itself, after the batch,
// so that order is kept and the payload is not copied. So does a frame with a placement
// (a Tread whose data the server may write into shared memory), and every frame over shm
// (send_at_once).
void Session::Emit(std::vector<std::byte> frame, std::span<const std::byte> payload, ReplyTo to) {
  Impl& im = *impl_;
  constexpr size_t kCopyPayloadBelow = 4096;
  if (payload.size() >= kCopyPayloadBelow || !to.placement.empty() || to.pipe || im.send_at_once) {
    FlushBatch();
    channel_->Send(transport::OutFrame{.head = std::move(frame),
                                       .payload = payload,
                                       .placement = to.placement,
                                       .accepts_pipe = to.pipe});
    return;
  }
  if (im.batch.empty() && !im.flush_posted) {
    im.flush_posted = true;
    asio::post(executor_, [self = shared_from_this()] {
      self->impl_->flush_posted = false;
      self->FlushBatch();
    });
  }
  if (im.batch.empty()) {
    im.batch = std::move(frame);
  } else {
    im.batch.insert(im.batch.end(), frame.begin(), frame.end());
  }
  im.batch.insert(im.batch.end(), payload.begin(), payload.end());
}

void Session::FlushBatch() {
  Impl& im = *impl_;
  if (im.batch.empty()) return;
  std::vector<std::byte> out = std::move(im.batch);
  im.batch.clear();
  if (!im.closed) channel_->Send(transport::OutFrame{std::move(out), {}, nullptr});
}

// Sends what waits for a tag, in order, while tags are free.
void Session::Pump() {
  Impl& im = *impl_;
  while (!im.closed && !im.waiting.empty() && !im.free_tags.empty()) {
    Impl::Waiting w = std::move(im.waiting.front());
    im.waiting.pop_front();
    if (w.done.op && w.done.op->cancelled) {
      w.done(Unexpected(Error(std::errc::operation_canceled, "cancelled before sending")));
      continue;
    }
    uint16_t tag = im.free_tags.back();
    im.free_tags.pop_back();
    Transmit(tag, std::move(w.frame), w.payload, std::move(w.done), w.to);
  }
}

// Frees a request's tag and returns its completion.
Session::RawDone Session::Retire(uint16_t tag) {
  Impl& im = *impl_;
  RawDone done = std::move(im.dones[tag]);
  im.dones[tag].fn = nullptr;
  if (done.op) done.op->tags.Remove(tag);
  bool flush = im.slots[tag].is_flush;
  im.slots[tag].Reset();
  (flush ? im.free_flush_tags : im.free_tags).push_back(tag);
  return done;
}

void Session::Flush(uint16_t tag, Error why) {
  Impl& im = *impl_;
  Slot& slot = im.slots[tag];
  if (im.closed || !slot.in_use || slot.is_flush || slot.flushing) return;
  slot.flushing = true;
  slot.abort = std::move(why);
  uint16_t ftag = im.free_flush_tags.back();  // one per request tag: never empty
  im.free_flush_tags.pop_back();
  Result<std::vector<std::byte>> frame = EncodeRequest(wire::Tflush{.oldtag = tag});
  NINEFOLD_CHECK(frame.has_value());
  (*frame)[5] = static_cast<std::byte>(ftag & 0xff);
  (*frame)[6] = static_cast<std::byte>(ftag >> 8);
  im.slots[ftag] =
      Slot{.in_use = true, .is_flush = true, .type = wire::Tflush::kType, .flush_of = tag};
  if (slot.limit.count() > 0) {
    // A server that answers neither the request nor its Tflush within the request's own
    // deadline is declared dead.
    im.slots[ftag].limit = slot.limit;
    im.slots[ftag].due = Clock::now() + slot.limit;
    ScheduleSweep(im.slots[ftag].due);
  }
  im.requests.fetch_add(1, std::memory_order_relaxed);
  im.flushes.fetch_add(1, std::memory_order_relaxed);
  Emit(std::move(*frame), {}, ReplyTo{});
}

void Session::Cancel(const std::shared_ptr<OpState>& op) {
  asio::post(executor_, [self = shared_from_this(), op] {
    if (op->cancelled) return;
    op->cancelled = true;
    std::vector<uint16_t> tags = op->tags.All();
    for (uint16_t tag : tags) self->Flush(tag, Error(std::errc::operation_canceled, "flushed"));
  });
}

void Session::Close() {
  asio::dispatch(executor_, [self = shared_from_this()] {
    self->Fail(Error(std::errc::not_connected, "session closed"));
  });
}

void Session::Fail(Error why) {
  Impl& im = *impl_;
  if (im.closed) return;
  // Connected, the session keeps itself alive (self_); from here on only its users do.
  auto keep = std::move(self_);
  im.closed = true;
  im.failure = std::move(why);
  connected_.store(false, std::memory_order_release);
  im.deadline_timer.cancel();
  im.connect_timer.cancel();
  im.batch.clear();
  channel_->Close();
  if (im.version_done.fn) {
    RawDone d = std::move(im.version_done);
    d(Unexpected(im.failure));
  }
  for (size_t tag = 0; tag < im.slots.size(); ++tag) {
    if (!im.slots[tag].in_use) continue;
    bool flush = im.slots[tag].is_flush;
    bool answered = im.slots[tag].answered;
    // A request already flushed (cancelled, or past its deadline) keeps that reason.
    Error reason = im.slots[tag].flushing ? im.slots[tag].abort : im.failure;
    RawDone d = Retire(static_cast<uint16_t>(tag));
    if (!flush && !answered) d(Unexpected(std::move(reason)));
  }
  std::deque<Impl::Waiting> waiting = std::move(im.waiting);
  for (auto& w : waiting) w.done(Unexpected(im.failure));
}

void Session::OnClose(const Error& why) {
  std::string reason = why.code() ? why.ToString() : "the server closed the connection";
  Fail(Error(std::errc::not_connected, fmt::format("{}: {}", channel_->peer(), reason)));
}

// nfs-ganesha (4.3) answers errors with type 107 (Rerror) carrying an Rlerror's body:
// ecode[4], 11 bytes in all, also to a Tversion of 9P2000.u. Neither 9P2000.L (no type
// 107) nor 9P2000.u (ename[s] errno[4]: 13 bytes at least) has a frame of that shape, so
// it is read as the Rlerror it means; in 9P2000 it is a valid Rerror and never gets here.
std::optional<wire::Frame> Session::RerrorAsRlerror(std::span<const std::byte> bytes) const {
  if (options_.dialect == wire::Dialect::k9P2000 || bytes.size() != 11 ||
      std::to_integer<uint8_t>(bytes[4]) != wire::Rerror::kType) {
    return std::nullopt;
  }
  uint32_t ecode = 0;
  for (int i = 3; i >= 0; --i) ecode = (ecode << 8) | std::to_integer<uint32_t>(bytes[7 + i]);
  auto tag = static_cast<uint16_t>(std::to_integer<uint16_t>(bytes[5]) |
                                   (std::to_integer<uint16_t>(bytes[6]) << 8));
  return wire::Frame{.tag = tag, .msg = wire::Rlerror{.ecode = ecode}};
}

void Session::OnFrame(std::span<const std::byte> bytes) {
  Impl& im = *impl_;
  if (im.closed) return;
  auto keep = shared_from_this();  // a completion may Close() and drop the last reference
  uint16_t tag = static_cast<uint16_t>(std::to_integer<uint16_t>(bytes[5]) |
                                       (std::to_integer<uint16_t>(bytes[6]) << 8));
  wire::Limits limits{.msize = msize_ ? msize_ : options_.msize};
  // Over shm an Rread's data may arrive apart, by reference into the shared arena.
  std::span<const std::byte> payload = channel_->FramePayload();
  wire::Frame frame;
  Result<void> decoded = wire::DecodeInto(bytes, payload, options_.dialect, limits, frame);
  if (!decoded && tag == wire::kNoTag && im.version_done.fn &&
      decoded.error().code() == Errc::kWrongDialect) {
    // A server refusing our version may answer in its own dialect (diod: Rlerror).
    decoded = wire::DecodeInto(bytes, {}, wire::Dialect::k9P2000L, limits, frame);
  }
  if (!decoded) {
    if (auto lerror = RerrorAsRlerror(bytes)) {
      frame = std::move(*lerror);
      decoded = {};
    }
  }
  if (!decoded) {
    return Fail(Error(
        decoded.error().code(),
        fmt::format("malformed reply from {}: {}", channel_->peer(), decoded.error().ToString())));
  }
  if (tag == wire::kNoTag && im.version_done.fn) {
    RawDone d = std::move(im.version_done);
    im.version_done = RawDone{};
    return d(&frame.msg);
  }
  if (tag >= im.slots.size() || !im.slots[tag].in_use) {
    return Fail(Error(std::errc::protocol_error,
                      fmt::format("{} answered tag {}, which is not in flight: {}",
                                  channel_->peer(), tag, wire::Format(frame, options_.dialect))));
  }
  Slot& slot = im.slots[tag];
  const wire::Message& msg = frame.msg;
  if (channel_->FramePipeBytes() > 0 &&
      (!slot.accepts_pipe || !std::holds_alternative<wire::Rread>(msg))) {
    return Fail(Error(std::errc::protocol_error,
                      fmt::format("{} answered tag {} with a pipe it did not ask for: {}",
                                  channel_->peer(), tag, wire::Format(frame, options_.dialect))));
  }
  if (slot.is_flush) {
    if (!std::holds_alternative<wire::Rflush>(msg)) {
      return Fail(Error(std::errc::protocol_error,
                        fmt::format("{} answered Tflush with {}", channel_->peer(),
                                    wire::TypeName(wire::TypeOf(msg)))));
    }
    uint16_t old = slot.flush_of;
    Retire(tag);
    bool answered = im.slots[old].answered;
    Error abort = im.slots[old].abort;
    RawDone d = Retire(old);
    Pump();
    if (!answered) d(Unexpected(std::move(abort)));
    return;
  }
  bool is_error =
      std::holds_alternative<wire::Rlerror>(msg) || std::holds_alternative<wire::Rerror>(msg);
  uint8_t type = slot.type;
  RawDone d;
  if (slot.flushing) {
    // Answered before the flush: the operation gets this answer; the tag stays taken
    // until Rflush.
    slot.answered = true;
    d = std::move(im.dones[tag]);
    im.dones[tag] = RawDone{};
    if (d.op) d.op->tags.Remove(tag);
  } else {
    d = Retire(tag);
    Pump();
  }
  if (is_error) return d(Unexpected(ReplyError(msg, type)));
  d(&msg);
}

// Runs Sweep at `due` unless it is already due earlier.
void Session::ScheduleSweep(Clock::time_point due) {
  Impl& im = *impl_;
  if (im.sweep_armed && im.sweep_due <= due) return;
  im.sweep_armed = true;
  im.sweep_due = due;
  im.deadline_timer.expires_at(due);
  im.deadline_timer.async_wait([weak = weak_from_this()](const std::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self) return;  // rescheduled (operation_aborted) or gone
    self->impl_->sweep_armed = false;
    self->Sweep();
  });
}

// Flushes requests past their deadline; declares the server dead when a Tflush is not
// answered within the deadline either.
void Session::Sweep() {
  Impl& im = *impl_;
  if (im.closed) return;
  auto keep = shared_from_this();
  auto now = Clock::now();
  auto next = Clock::time_point::max();
  for (size_t tag = 0; tag < im.slots.size(); ++tag) {
    Slot& slot = im.slots[tag];
    if (!slot.in_use || slot.due == Clock::time_point::max()) continue;
    if (slot.due > now) {
      next = std::min(next, slot.due);
      continue;
    }
    if (slot.is_flush) {
      return Fail(
          Error(std::errc::not_connected,
                fmt::format("{} answered neither {} nor its Tflush within {} ms", peer(),
                            wire::TypeName(im.slots[slot.flush_of].type), slot.limit.count())));
    }
    slot.due = Clock::time_point::max();  // flushed once; the Tflush has its own deadline
    Flush(static_cast<uint16_t>(tag),
          Error(std::errc::timed_out, fmt::format("{} unanswered after {} ms",
                                                  wire::TypeName(slot.type), slot.limit.count())));
    if (im.closed) return;
  }
  if (next != Clock::time_point::max()) ScheduleSweep(next);
}

void Session::StartConnect(Done<std::shared_ptr<Session>> done) {
  auto self = shared_from_this();
  // The session keeps itself alive while its channel is open; Fail lets go.
  self_ = self;
  channel_->SetMaxFrame(options_.msize);
  // OnFrame decodes each reply once and completions copy what they keep (no reply type
  // with views reaches a caller), so a shared-memory channel need not copy frames first.
  channel_->DeliverInPlace();
  channel_->Start([this](std::span<const std::byte> f) { OnFrame(f); },
                  [this](const Error& why) { OnClose(why); });
  std::string_view version = wire::DialectName(options_.dialect);
  Result<std::vector<std::byte>> frame =
      EncodeRequest(wire::Tversion{.msize = options_.msize, .version = version});
  NINEFOLD_CHECK(frame.has_value());
  (*frame)[5] = (*frame)[6] = std::byte{0xff};  // Tversion travels with NOTAG
  impl_->version_done = RawDone{
      done.op, [self, done, version](Result<const wire::Message*> r) {
        if (!r) return done(Unexpected(r.error()));
        const auto* v = std::get_if<wire::Rversion>(*r);
        if (v == nullptr) {
          bool refused = std::holds_alternative<wire::Rlerror>(**r) ||
                         std::holds_alternative<wire::Rerror>(**r);
          Error err = refused
                          ? Error(std::errc::protocol_not_supported,
                                  fmt::format("{} refused {}: {}", self->peer(), version,
                                              ReplyError(**r, wire::Tversion::kType).ToString()))
                          : WrongReply("Rversion", **r);
          self->Fail(err);
          return done(Unexpected(err));
        }
        if (v->version != version) {
          Error err(std::errc::protocol_not_supported,
                    fmt::format("{} does not speak {} (it answered '{}')", self->peer(), version,
                                v->version));
          self->Fail(err);
          return done(Unexpected(err));
        }
        if (v->msize < 4096 || v->msize > self->options_.msize) {
          Error err(std::errc::protocol_error,
                    fmt::format("{} answered msize {} to our {}", self->peer(), v->msize,
                                self->options_.msize));
          self->Fail(err);
          return done(Unexpected(err));
        }
        self->msize_ = v->msize;
        self->channel_->SetMaxFrame(v->msize);
        self->connected_.store(true, std::memory_order_release);
        self->impl_->connect_timer.cancel();
        done(self);
      }};
  impl_->requests.fetch_add(1, std::memory_order_relaxed);
  channel_->Send(transport::OutFrame{std::move(*frame), {}, nullptr});
  // A peer that never answers Tversion (not a 9P server, or a hung one) must not hang us.
  // The request deadline, when shorter, applies to Tversion too.
  auto limit = options_.connect_timeout;
  if (options_.deadline.count() > 0) limit = std::min(limit, options_.deadline);
  impl_->connect_timer.expires_after(limit);
  impl_->connect_timer.async_wait([this, self, limit](const std::error_code& ec) {
    if (ec || !impl_->version_done.fn) return;
    Fail(Error(std::errc::timed_out,
               fmt::format("{} did not answer Tversion within {} ms", peer(), limit.count())));
  });
}

}  // namespace ninefold::client
