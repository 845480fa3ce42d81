#include "connection.h"

#include <algorithm>
#include <cstring>

#include "asio/post.hpp"
#include "fmt/format.h"
#include "ninefold/base/errc.h"
#include "ninefold/base/log.h"

namespace ninefold::server {
namespace {

// Below this a client could not even carry an Rread header and a byte.
constexpr uint32_t kMinMsize = 256;

// A read of at least this much is bulk work for IoThreads (a spare thread may join to
// overlap such copies on another core).
constexpr uint32_t kBulkBytes = 32 * 1024;
// Twrite data smaller than this is read into memory: below it two splices cost about what
// a copy does (as for reads, ops.cc).
constexpr size_t kSpliceWriteMin = 16 * 1024;

// Writes are not: writes to one file take its inode lock in turn, so a second thread
// writing the same stream only waits for the first (perf: rwsem spinning, context
// switches) — measured 12% slower at msize 64K and up to 40% at 1M over tcp than one
// thread (docs/performance.md).
bool IsBulk(const wire::Frame& frame) {
  if (const auto* r = std::get_if<wire::Tread>(&frame.msg)) return r->count >= kBulkBytes;
  return false;
}

// An Rread whose data starts with bytes waiting in a pipe: its head (encoded for the rest
// of the data only) counts them too.
void AddSplicedBytes(transport::OutFrame& out, std::shared_ptr<transport::SplicePipe> pipe) {
  transport::AddToRreadCount(out.head, static_cast<int64_t>(pipe->pending));
  out.spliced = std::move(pipe);
}

bool Contains(const std::vector<uint16_t>& tags, uint16_t tag) {
  return std::find(tags.begin(), tags.end(), tag) != tags.end();
}

// Removes `tag` (order does not matter): false when it was not there.
bool Remove(std::vector<uint16_t>& tags, uint16_t tag) {
  auto it = std::find(tags.begin(), tags.end(), tag);
  if (it == tags.end()) return false;
  *it = tags.back();
  tags.pop_back();
  return true;
}

}  // namespace

bool TagSet::Contains(uint16_t tag) const {
  if (bits_) return (bits_[tag / 64] >> (tag % 64)) & 1;
  return ninefold::server::Contains(listed_, tag);
}

void TagSet::Insert(uint16_t tag) {
  ++size_;
  if (!bits_ && listed_.size() < kListed) {
    listed_.push_back(tag);
    return;
  }
  if (!bits_) {
    bits_ = std::make_unique<uint64_t[]>(65536 / 64);  // zeroed
    for (uint16_t t : listed_) bits_[t / 64] |= uint64_t{1} << (t % 64);
    listed_ = {};
  }
  bits_[tag / 64] |= uint64_t{1} << (tag % 64);
}

bool TagSet::Erase(uint16_t tag) {
  if (bits_) {
    uint64_t bit = uint64_t{1} << (tag % 64);
    if (!(bits_[tag / 64] & bit)) return false;
    bits_[tag / 64] &= ~bit;
  } else if (!Remove(listed_, tag)) {
    return false;
  }
  --size_;
  return true;
}

void TagSet::Clear() {
  listed_.clear();
  bits_.reset();
  size_ = 0;
}

Connection::Connection(asio::io_context& io, IoThreads& threads, fs::FileServer& root,
                       const ServerOptions& options, ServerStats& stats,
                       std::shared_ptr<transport::Channel> channel, transport::PipePool* pipes)
    : io_(io),
      threads_(threads),
      root_(root),
      options_(options),
      stats_(stats),
      channel_(std::move(channel)),
      pipes_(channel_->can_splice() || channel_->can_share_pages() ? pipes : nullptr),
      splices_(channel_->can_splice()),
      splice_read_max_(channel_->splice_read_max()),
      shares_pages_(channel_->can_share_pages()),
      trace_(options.trace) {}

void Connection::Start(std::function<void()> on_closed) {
  {
    std::lock_guard lock(mu_);
    on_closed_ = std::move(on_closed);
  }
  channel_->SetMaxFrame(options_.msize);
  // Twrite data from the socket into pipes and on into files, as reads go the other way.
  if (splices_ && pipes_ != nullptr) channel_->SpliceWrites(pipes_, kSpliceWriteMin);
  Log(LogLevel::kDebug, "{}: connected", channel_->peer());
  channel_->Start([self = shared_from_this()](std::span<const std::byte> f) { self->OnFrame(f); },
                  [self = shared_from_this()](const Error& why) { self->OnClosed(why); });
}

void Connection::Drain() {
  std::lock_guard lock(mu_);
  draining_ = true;
  channel_->PauseReading();
  MaybeFinishDrainLocked();
}

void Connection::MaybeFinishDrainLocked() {
  if (!draining_ || !in_flight_.empty() || closed_ || drain_check_posted_) return;
  // Close from the io_context, after the replies already sent have been written.
  drain_check_posted_ = true;
  asio::post(io_, [self = shared_from_this()] { self->FinishDrain(); });
}

void Connection::FinishDrain() {
  if (channel_->queued_bytes() == 0) {
    channel_->Close();
    return;
  }
  auto timer = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(5));
  timer->async_wait(
      [self = shared_from_this(), timer](const std::error_code&) { self->FinishDrain(); });
}

void Connection::OnClosed(const Error& why) {
  std::unordered_map<uint32_t, std::shared_ptr<Fid>> fids;
  std::function<void()> done;
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    closed_ = true;
    ForgetInFlightLocked();
    done = std::move(on_closed_);
    std::lock_guard fids_lock(fids_mu_);
    fids.swap(fids_);
  }
  if (why.code()) {
    if (why.code().category() == NinefoldCategory()) stats_.malformed_frames++;
    Log(LogLevel::kWarn, "{}: closing: {}", channel_->peer(), why.ToString());
  } else {
    Log(LogLevel::kDebug, "{}: disconnected", channel_->peer());
  }
  // Release every fid (and so every open file) of this connection. Requests still
  // running keep theirs until they finish; their replies are dropped.
  fids.clear();
  if (done) done();
}

void Connection::OnFrame(std::span<const std::byte> bytes) {
  stats_.requests++;
  wire::Limits limits{.msize = versioned_ ? msize() : options_.msize};
  uint8_t type = static_cast<uint8_t>(bytes[4]);
  // Before Tversion only Tversion is meaningful; decode it in any dialect.
  const wire::Dialect decode_as = versioned_ ? dialect() : wire::Dialect::k9P2000L;
  // Over shm a Twrite's data may lie apart, in the shared arena, and a Tread may name
  // where in the arena its data should go, or accept it in a pipe.
  const std::span<const std::byte> payload = channel_->FramePayload();
  const ReplyTo to{.placement = channel_->FramePlacement(), .pipe = channel_->FrameAcceptsPipe()};
  // Over tcp and unix a large Twrite's data may wait in a pipe instead.
  std::shared_ptr<transport::SplicePipe> data = channel_->FrameDataPipe();
  wire::Frame frame;
  Result<void> decoded = wire::DecodeInto(bytes, payload, decode_as, limits, frame);
  if (!decoded) {
    stats_.malformed_frames++;
    Log(LogLevel::kWarn, "{}: malformed {} frame, closing connection: {}", channel_->peer(),
        wire::TypeName(type).empty() ? "unknown" : wire::TypeName(type),
        decoded.error().ToString());
    channel_->Close();
    return;
  }
  uint16_t tag = frame.tag;
  if (trace_) {
    Log(LogLevel::kInfo, "{} <- {}{}", channel_->peer(), wire::Format(frame, dialect()),
        data ? fmt::format(" (+{} bytes ahead of its data, in a pipe)", data->pending) : "");
  }

  if (const auto* tv = std::get_if<wire::Tversion>(&frame.msg)) {
    HandleVersion(tag, *tv);
    return;
  }
  if (!versioned_) {
    std::lock_guard lock(mu_);
    SendLocked(tag, ErrorReply(Error(std::errc::protocol_error, "Tversion first")));
    return;
  }
  if (wire::TypeOf(frame.msg) % 2 == 1) {
    Log(LogLevel::kWarn, "{}: client sent a reply ({}), closing connection", channel_->peer(),
        wire::TypeName(type));
    stats_.malformed_frames++;
    channel_->Close();
    return;
  }
  // The decoded message's views point into the channel's buffer: keep it (no copy).
  std::shared_ptr<const void> keep = channel_->RetainFrame();
  if (!keep) {
    auto copy = std::make_shared<std::vector<std::byte>>(bytes.begin(), bytes.end());
    NINEFOLD_CHECK(wire::DecodeInto(*copy, payload, decode_as, limits, frame).has_value());
    keep = std::move(copy);
  }
  const bool runs_inline = RunsInline(frame);
  uint64_t generation = 0;
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    if (!in_flight_.Contains(tag) && tag != wire::kNoTag) {
      if (const auto* tf = std::get_if<wire::Tflush>(&frame.msg)) {
        HandleFlushLocked(tag, *tf);
        return;
      }
      if (runs_inline) {
        // Answered before mu_ is let go: no Tflush can find it in flight (they come from
        // this read loop, after it), a drain waits for it, and its tag is never marked
        // in use. A node that answers inline never blocks (in-memory back ends).
        channel_->Send(Run(tag, std::move(keep), frame, to, std::move(data)));
        return;
      }
      in_flight_.Insert(tag);
      if (in_flight_.size() >= options_.max_outstanding && !paused_) {
        paused_ = true;
        channel_->PauseReading();
      }
      generation = generation_;
    } else {
      tag = wire::kNoTag;  // reused: closed below, outside the lock
    }
  }
  if (tag == wire::kNoTag) {
    // A tag in use: answering would confuse the reply to the first request.
    Log(LogLevel::kWarn, "{}: tag {} reused while in flight, closing connection", channel_->peer(),
        frame.tag);
    stats_.malformed_frames++;
    channel_->Close();
    return;
  }
  // It may block. The last frame read so far runs here once the channel reads on
  // without us (ReadAhead): if it does block, a spare thread carries on with the
  // frames that follow (io_threads.h). Frames with others behind them are posted, so
  // that those are delivered first.
  if (channel_->ReadAhead()) {
    transport::OutFrame out;
    {
      IoThreads::BlockingScope blocking(threads_, IsBulk(frame));
      out = Run(tag, std::move(keep), frame, to, std::move(data));
    }
    Complete(tag, std::move(out), generation);
    return;
  }
  channel_->YieldAfterFrame();
  asio::post(io_, [self = shared_from_this(), tag, keep = std::move(keep), f = std::move(frame),
                   generation, to, data = std::move(data)]() mutable {
    transport::OutFrame out;
    {
      IoThreads::BlockingScope blocking(self->threads_, IsBulk(f));
      out = self->Run(tag, std::move(keep), f, to, std::move(data));
    }
    self->Complete(tag, std::move(out), generation);
  });
}

void Connection::HandleVersion(uint16_t tag, const wire::Tversion& tv) {
  std::unordered_map<uint32_t, std::shared_ptr<Fid>> old_fids;  // released after unlocking
  std::lock_guard lock(mu_);
  // A new session: everything of the old one is abandoned.
  generation_++;
  ForgetInFlightLocked();
  if (paused_ && !draining_) {
    paused_ = false;
    channel_->ResumeReading();
  }
  {
    std::lock_guard fids_lock(fids_mu_);
    old_fids.swap(fids_);
  }
  std::string_view v = tv.version;
  std::optional<wire::Dialect> d = wire::ParseDialect(v);
  if (!d && v.substr(0, 6) == "9P2000") d = wire::Dialect::k9P2000;  // "9P2000.x": the base
  if (!d || tv.msize < kMinMsize) {
    versioned_ = false;
    wire::Rversion rv{.msize = std::min(tv.msize, options_.msize), .version = "unknown"};
    SendLocked(tag, Reply{rv, nullptr});
    Log(LogLevel::kInfo, "{}: refused version '{}' msize {}", channel_->peer(), v, tv.msize);
    return;
  }
  dialect_ = *d;
  msize_ = std::min(tv.msize, options_.msize);
  versioned_ = true;
  channel_->SetMaxFrame(msize());
  wire::Rversion rv{.msize = msize(), .version = wire::DialectName(dialect())};
  SendLocked(tag, Reply{rv, nullptr});
  Log(LogLevel::kDebug, "{}: {} msize {}", channel_->peer(), wire::DialectName(dialect()), msize());
}

void Connection::HandleFlushLocked(uint16_t tag, const wire::Tflush& tf) {
  if (!in_flight_.Contains(tf.oldtag) || IsWaitingFlushLocked(tf.oldtag)) {
    // Already answered (or unknown): nothing to wait for.
    SendLocked(tag, Reply{wire::Rflush{}, nullptr});
    return;
  }
  // Rflush goes out right after the flushed request's reply, never before it. The
  // FileServer call itself cannot be interrupted; its reply is still sent (the client
  // then knows what happened, as 9P allows).
  flushes_[tf.oldtag].push_back(tag);
  in_flight_.Insert(tag);
}

bool Connection::IsWaitingFlushLocked(uint16_t tag) const {
  for (const auto& [flushed, waiting] : flushes_) {
    if (Contains(waiting, tag)) return true;
  }
  return false;
}

void Connection::ForgetInFlightLocked() {
  in_flight_.Clear();
  flushes_.clear();
}

transport::OutFrame Connection::Run(uint16_t tag, std::shared_ptr<const void> keep,
                                    const wire::Frame& frame, ReplyTo to,
                                    std::shared_ptr<transport::SplicePipe> data) {
  Result<Reply> reply = HandleRequest(*this, frame, to, data.get());
  if (!reply) reply = ErrorReply(reply.error());
  if (!reply->keep) reply->keep = std::move(keep);  // views may point into the request
  if (trace_) {
    Log(LogLevel::kInfo, "{} -> {}{}", channel_->peer(),
        wire::Format(wire::Frame{tag, reply->msg}, dialect()),
        reply->spliced ? fmt::format(" (+{} bytes spliced ahead of it)", reply->spliced->pending)
                       : "");
  }
  return Encode(tag, *reply);
}

bool Connection::RunsInline(const wire::Frame& frame) {
  // A request about one fid whose node never blocks (in-memory back ends) is answered
  // in the read loop itself.
  return std::visit(
      [&](const auto& m) -> bool {
        if constexpr (
            requires { m.fid; } && !requires { m.dfid; } && !requires { m.newdirfid; }) {
          // Looked at in place (no reference taken: this runs for every request).
          std::lock_guard lock(fids_mu_);
          auto it = fids_.find(m.fid);
          return it != fids_.end() && !it->second->node->may_block();
        } else {
          return false;
        }
      },
      frame.msg);
}

void Connection::Complete(uint16_t tag, transport::OutFrame out, uint64_t generation) {
  std::lock_guard lock(mu_);
  if (closed_ || generation != generation_) return;
  if (!in_flight_.Erase(tag)) return;
  std::vector<uint16_t> flushes;
  if (!flushes_.empty()) {
    if (auto it = flushes_.find(tag); it != flushes_.end()) {
      flushes = std::move(it->second);
      flushes_.erase(it);
    }
  }
  // Under mu_: a Tflush for this tag arriving now on another thread finds it answered
  // only after this reply has been handed to the channel, so its Rflush follows it.
  channel_->Send(std::move(out));
  for (uint16_t f : flushes) {
    in_flight_.Erase(f);
    SendLocked(f, Reply{wire::Rflush{}, nullptr});
  }
  if (paused_ && in_flight_.size() < options_.max_outstanding && !draining_) {
    paused_ = false;
    channel_->ResumeReading();
  }
  MaybeFinishDrainLocked();
}

void Connection::SendLocked(uint16_t tag, const Reply& reply) {
  if (closed_) return;
  if (trace_) {
    Log(LogLevel::kInfo, "{} -> {}", channel_->peer(),
        wire::Format(wire::Frame{tag, reply.msg}, dialect()));
  }
  channel_->Send(Encode(tag, reply));
}

transport::OutFrame Connection::Encode(uint16_t tag, const Reply& reply) const {
  transport::OutFrame out{.head = transport::TakeFrameBuffer()};
  // The head is everything but the payload (Rread/Rreaddir data), which is sent from the
  // reply's own buffer: no payload-sized buffer is allocated.
  Result<wire::EncodedHead> head = wire::EncodeHead(tag, reply.msg, dialect(), out.head, msize());
  if (head) {
    out.payload = head->payload;
    out.owner = reply.keep;
    if (reply.spliced) AddSplicedBytes(out, reply.spliced);
    out.pages = reply.pages;
    return out;
  }
  // A reply that cannot be encoded (too large for msize, say) is a server bug or a
  // limit: answer with the error instead.
  Log(LogLevel::kError, "{}: cannot encode {}: {}", channel_->peer(),
      wire::TypeName(wire::TypeOf(reply.msg)), head.error().ToString());
  Reply err = ErrorReply(Error(std::errc::message_size, head.error().ToString()));
  Result<std::vector<std::byte>> bytes =
      wire::Encode(wire::Frame{tag, err.msg}, dialect(), msize());
  NINEFOLD_CHECK(bytes.has_value());
  out.head = std::move(*bytes);
  return out;
}

Reply Connection::ErrorReply(const Error& error) const {
  stats_.errors_sent++;
  int err = EIO;
  if (error.code().category() == std::generic_category()) {
    err = error.code().value();
  } else if (error.code().category() == NinefoldCategory()) {
    err = EPROTO;
  } else if (error.code().category() == std::system_category()) {
    err = error.code().value();
  }
  Log(LogLevel::kDebug, "{}: error {}", channel_->peer(), error.ToString());
  switch (dialect()) {
    case wire::Dialect::k9P2000L:
      return Reply{wire::Rlerror{.ecode = static_cast<uint32_t>(err)}, nullptr};
    case wire::Dialect::k9P2000u:
    case wire::Dialect::k9P2000: {
      auto text = std::make_shared<std::string>(std::strerror(err));
      return Reply{wire::Rerror{.ename = *text, .errnum = static_cast<uint32_t>(err)}, text};
    }
  }
  return Reply{wire::Rlerror{.ecode = EIO}, nullptr};
}

Result<std::shared_ptr<Fid>> Connection::GetFid(uint32_t fid) {
  std::lock_guard lock(fids_mu_);
  auto it = fids_.find(fid);
  if (it == fids_.end()) {
    return Unexpected(Error(std::errc::bad_file_descriptor, "unknown fid " + std::to_string(fid)));
  }
  return it->second;
}

Result<void> Connection::AddFid(uint32_t fid, std::shared_ptr<Fid> state) {
  std::lock_guard lock(fids_mu_);
  if (fids_.count(fid) != 0) {
    return Unexpected(
        Error(std::errc::bad_file_descriptor, "fid " + std::to_string(fid) + " already in use"));
  }
  if (fids_.size() >= options_.max_fids) {
    return Unexpected(Error(std::errc::too_many_files_open,
                            "fid limit of " + std::to_string(options_.max_fids) + " reached"));
  }
  fids_[fid] = std::move(state);
  return {};
}

void Connection::ReplaceFid(uint32_t fid, std::shared_ptr<Fid> state) {
  std::lock_guard lock(fids_mu_);
  fids_[fid] = std::move(state);
}

std::shared_ptr<Fid> Connection::RemoveFid(uint32_t fid) {
  std::lock_guard lock(fids_mu_);
  auto it = fids_.find(fid);
  if (it == fids_.end()) return nullptr;
  auto out = std::move(it->second);
  fids_.erase(it);
  return out;
}

}  // namespace ninefold::server
