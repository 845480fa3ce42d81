// Follows one 9P conversation (or one direction of it) frame by frame: which dialect and
// msize are in force, learned from Tversion/Rversion, so that each later frame is decoded
// under the right rules. Used by `ninefold decode` and by NINEFOLD_TRACE.
//
//   Conversation conv;                        // or Conversation(Dialect::k9P2000L)
//   while (auto size = conv.NextFrameSize(rest)) { ...; auto f = conv.Decode(frame); }
//
// Thread safety: none; one Conversation per stream, used by one thread at a time.
#ifndef NINEFOLD_WIRE_CONVERSATION_H_
#define NINEFOLD_WIRE_CONVERSATION_H_

#include <optional>
#include <span>

#include "ninefold/wire/codec.h"

namespace ninefold::wire {

class Conversation {
 public:
  // With no dialect, the dialect is taken from the stream: a Tversion proposes one, an
  // Rversion settles it (and its msize becomes the frame limit). Until then only
  // Tversion/Rversion decode; anything else is Errc::kNoDialect. A fixed dialect is kept
  // whatever the stream says.
  explicit Conversation(std::optional<Dialect> fixed = std::nullopt);

  // The length of the next frame at the start of `bytes` under the current limits.
  [[nodiscard]] Result<uint32_t> NextFrameSize(std::span<const std::byte> bytes) const {
    return PeekFrameSize(bytes, limits_);
  }
  // Decodes one whole frame and updates the negotiated dialect and msize.
  [[nodiscard]] Result<Frame> Decode(std::span<const std::byte> frame);

  std::optional<Dialect> dialect() const { return dialect_; }
  const Limits& limits() const { return limits_; }

 private:
  void Observe(const Frame& frame);

  bool fixed_;
  std::optional<Dialect> dialect_;
  Limits limits_;
};

}  // namespace ninefold::wire

#endif  // NINEFOLD_WIRE_CONVERSATION_H_
