#include "connection.h"

#include <cstring>

#include "asio/post.hpp"
#include "ninefold/base/errc.h"
#include "ninefold/base/log.h"

namespace ninefold::server {
namespace {

// Below this a client could not even carry an Rread header and a byte.
constexpr uint32_t kMinMsize = 256;

}  // namespace

Connection::Connection(asio::io_context& io, asio::thread_pool& pool, fs::FileServer& root,
                       const ServerOptions& options, ServerStats& stats,
                       std::shared_ptr<transport::Channel> channel)
    : io_(io),
      pool_(pool),
      root_(root),
      options_(options),
      stats_(stats),
      channel_(std::move(channel)),
      trace_(options.trace) {}

void Connection::Start(std::function<void()> on_closed) {
  on_closed_ = std::move(on_closed);
  channel_->SetMaxFrame(options_.msize);
  Log(LogLevel::kDebug, "{}: connected", channel_->peer());
  channel_->Start([self = shared_from_this()](std::span<const std::byte> f) { self->OnFrame(f); },
                  [self = shared_from_this()](const Error& why) { self->OnClosed(why); });
}

void Connection::Drain() {
  draining_ = true;
  channel_->PauseReading();
  MaybeFinishDrain();
}

void Connection::MaybeFinishDrain() {
  if (draining_ && in_flight_.empty() && !closed_) {
    // Let queued replies go out before closing: Close after the writes already posted.
    asio::post(io_, [self = shared_from_this()] {
      if (self->channel_->queued_bytes() == 0) {
        self->channel_->Close();
      } else {
        self->MaybeFinishDrainLater();
      }
    });
  }
}

void Connection::MaybeFinishDrainLater() {
  auto timer = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(5));
  timer->async_wait(
      [self = shared_from_this(), timer](const std::error_code&) { self->MaybeFinishDrain(); });
}

void Connection::OnClosed(const Error& why) {
  if (closed_) return;
  closed_ = true;
  if (why.code()) {
    if (why.code().category() == NinefoldCategory()) stats_.malformed_frames++;
    Log(LogLevel::kWarn, "{}: closing: {}", channel_->peer(), why.ToString());
  } else {
    Log(LogLevel::kDebug, "{}: disconnected", channel_->peer());
  }
  // Release every fid (and so every open file) of this connection. Requests still
  // running keep theirs until they finish; their replies are dropped.
  std::unordered_map<uint32_t, std::shared_ptr<Fid>> fids;
  {
    std::lock_guard lock(fids_mu_);
    fids.swap(fids_);
  }
  fids.clear();
  in_flight_.clear();
  if (on_closed_) {
    auto done = std::move(on_closed_);
    done();
  }
}

void Connection::OnFrame(std::span<const std::byte> bytes) {
  stats_.requests++;
  // The channel's buffer is reused for the next frame: the request owns a copy, and the
  // decoded message's views point into it.
  auto owned = std::make_shared<std::vector<std::byte>>(bytes.begin(), bytes.end());
  wire::Limits limits{.msize = versioned_ ? msize() : options_.msize};
  uint8_t type = static_cast<uint8_t>(bytes[4]);
  // Before Tversion only Tversion is meaningful; decode it in any dialect.
  Result<wire::Frame> frame =
      wire::Decode(*owned, versioned_ ? dialect() : wire::Dialect::k9P2000L, limits);
  if (!frame) {
    stats_.malformed_frames++;
    Log(LogLevel::kWarn, "{}: malformed {} frame, closing connection: {}", channel_->peer(),
        wire::TypeName(type).empty() ? "unknown" : wire::TypeName(type), frame.error().ToString());
    channel_->Close();
    return;
  }
  uint16_t tag = frame->tag;
  if (trace_) Log(LogLevel::kInfo, "{} <- {}", channel_->peer(), wire::Format(*frame, dialect()));

  if (const auto* tv = std::get_if<wire::Tversion>(&frame->msg)) {
    HandleVersion(tag, *tv);
    return;
  }
  if (!versioned_) {
    SendNow(tag, ErrorReply(Error(std::errc::protocol_error, "Tversion first")));
    return;
  }
  if (wire::TypeOf(frame->msg) % 2 == 1) {
    Log(LogLevel::kWarn, "{}: client sent a reply ({}), closing connection", channel_->peer(),
        wire::TypeName(type));
    stats_.malformed_frames++;
    channel_->Close();
    return;
  }
  if (in_flight_.count(tag) != 0 || tag == wire::kNoTag) {
    // A tag in use: answering would confuse the reply to the first request.
    Log(LogLevel::kWarn, "{}: tag {} reused while in flight, closing connection", channel_->peer(),
        tag);
    stats_.malformed_frames++;
    channel_->Close();
    return;
  }
  if (const auto* tf = std::get_if<wire::Tflush>(&frame->msg)) {
    HandleFlush(tag, *tf);
    return;
  }
  in_flight_[tag] = InFlight{};
  if (in_flight_.size() >= options_.max_outstanding && !paused_) {
    paused_ = true;
    channel_->PauseReading();
  }
  if (RunsInline(*frame)) {
    Complete(tag, Run(tag, std::move(owned), *frame), generation_);
    return;
  }
  asio::post(pool_, [self = shared_from_this(), tag, owned, f = std::move(*frame),
                     gen = generation_]() mutable {
    self->Execute(tag, std::move(owned), std::move(f), gen);
  });
}

void Connection::HandleVersion(uint16_t tag, const wire::Tversion& tv) {
  // A new session: everything of the old one is abandoned.
  generation_++;
  in_flight_.clear();
  {
    std::lock_guard lock(fids_mu_);
    fids_.clear();
  }
  std::string_view v = tv.version;
  std::optional<wire::Dialect> d = wire::ParseDialect(v);
  if (!d && v.substr(0, 6) == "9P2000") d = wire::Dialect::k9P2000;  // "9P2000.x": the base
  if (!d || tv.msize < kMinMsize) {
    versioned_ = false;
    wire::Rversion rv{.msize = std::min(tv.msize, options_.msize), .version = "unknown"};
    SendNow(tag, Reply{rv, nullptr});
    Log(LogLevel::kInfo, "{}: refused version '{}' msize {}", channel_->peer(), v, tv.msize);
    return;
  }
  dialect_ = *d;
  msize_ = std::min(tv.msize, options_.msize);
  versioned_ = true;
  channel_->SetMaxFrame(msize());
  wire::Rversion rv{.msize = msize(), .version = wire::DialectName(dialect())};
  SendNow(tag, Reply{rv, nullptr});
  Log(LogLevel::kDebug, "{}: {} msize {}", channel_->peer(), wire::DialectName(dialect()), msize());
}

void Connection::HandleFlush(uint16_t tag, const wire::Tflush& tf) {
  auto it = in_flight_.find(tf.oldtag);
  if (it == in_flight_.end() || it->second.is_flush) {
    // Already answered (or unknown): nothing to wait for.
    SendNow(tag, Reply{wire::Rflush{}, nullptr});
    return;
  }
  // Rflush goes out right after the flushed request's reply, never before it. The
  // FileServer call itself cannot be interrupted; its reply is still sent (the client
  // then knows what happened, as 9P allows).
  in_flight_[tag] = InFlight{.is_flush = true};
  in_flight_[tf.oldtag].flushes.push_back(tag);
}

transport::OutFrame Connection::Run(uint16_t tag, std::shared_ptr<std::vector<std::byte>> bytes,
                                    const wire::Frame& frame) {
  Result<Reply> reply = HandleRequest(*this, frame);
  if (!reply) reply = ErrorReply(reply.error());
  if (!reply->keep) reply->keep = std::move(bytes);  // views may point into the request
  if (trace_) {
    Log(LogLevel::kInfo, "{} -> {}", channel_->peer(),
        wire::Format(wire::Frame{tag, reply->msg}, dialect()));
  }
  return Encode(tag, *reply);
}

void Connection::Execute(uint16_t tag, std::shared_ptr<std::vector<std::byte>> bytes,
                         wire::Frame frame, uint64_t generation) {
  transport::OutFrame out = Run(tag, std::move(bytes), frame);
  asio::post(io_, [self = shared_from_this(), tag, out = std::move(out), generation]() mutable {
    self->Complete(tag, std::move(out), generation);
  });
}

bool Connection::RunsInline(const wire::Frame& frame) {
  // A request about one fid whose node never blocks (in-memory back ends) is cheaper to
  // answer here than to hand to a worker and back: two thread wake-ups saved. Bulk data
  // still goes to the workers, so that several connections' copies use several cores.
  constexpr uint32_t kInlineData = 16 * 1024;
  if (const auto* r = std::get_if<wire::Tread>(&frame.msg); r && r->count > kInlineData) {
    return false;
  }
  if (const auto* w = std::get_if<wire::Twrite>(&frame.msg); w && w->data.size() > kInlineData) {
    return false;
  }
  return std::visit(
      [&](const auto& m) -> bool {
        if constexpr (
            requires { m.fid; } && !requires { m.dfid; } && !requires { m.newdirfid; }) {
          Result<std::shared_ptr<Fid>> fid = GetFid(m.fid);
          return fid && !(*fid)->node->may_block();
        } else {
          return false;
        }
      },
      frame.msg);
}

void Connection::Complete(uint16_t tag, transport::OutFrame out, uint64_t generation) {
  if (closed_ || generation != generation_) return;
  auto it = in_flight_.find(tag);
  if (it == in_flight_.end()) return;
  std::vector<uint16_t> flushes = std::move(it->second.flushes);
  in_flight_.erase(it);
  channel_->Send(std::move(out));
  for (uint16_t f : flushes) {
    in_flight_.erase(f);
    SendNow(f, Reply{wire::Rflush{}, nullptr});
  }
  if (paused_ && in_flight_.size() < options_.max_outstanding && !draining_) {
    paused_ = false;
    channel_->ResumeReading();
  }
  MaybeFinishDrain();
}

void Connection::SendNow(uint16_t tag, const Reply& reply) {
  if (closed_) return;
  if (trace_) {
    Log(LogLevel::kInfo, "{} -> {}", channel_->peer(),
        wire::Format(wire::Frame{tag, reply.msg}, dialect()));
  }
  channel_->Send(Encode(tag, reply));
}

transport::OutFrame Connection::Encode(uint16_t tag, const Reply& reply) const {
  wire::Frame frame{tag, reply.msg};
  transport::OutFrame out;
  Result<size_t> size = wire::EncodedSize(frame, dialect());
  if (size) {
    // The head is everything but the payload (Rread/Rreaddir data), which is sent from
    // the reply's own buffer: size it exactly, so no payload-sized buffer is allocated.
    size_t payload = std::visit(
        [](const auto& m) -> size_t {
          if constexpr (requires { m.data.bytes; }) {
            return m.data.size();
          } else {
            return 0;
          }
        },
        reply.msg);
    out.head.resize(*size - payload);
    Result<wire::EncodedHead> head = wire::EncodeHead(frame, dialect(), out.head, msize());
    if (head) {
      out.head.resize(head->head_size);
      out.payload = head->payload;
      out.owner = reply.keep;
      return out;
    }
    size = Unexpected(head.error());
  }
  // A reply that cannot be encoded (too large for msize, say) is a server bug or a
  // limit: answer with the error instead.
  Log(LogLevel::kError, "{}: cannot encode {}: {}", channel_->peer(),
      wire::TypeName(wire::TypeOf(reply.msg)), size.error().ToString());
  Reply err = ErrorReply(Error(std::errc::message_size, size.error().ToString()));
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
