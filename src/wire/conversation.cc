#include "ninefold/wire/conversation.h"

#include "fmt/format.h"

namespace ninefold::wire {

Conversation::Conversation(std::optional<Dialect> fixed)
    : fixed_(fixed.has_value()), dialect_(fixed) {}

Result<Frame> Conversation::Decode(std::span<const std::byte> frame) {
  // Tversion and Rversion have the same layout in every dialect.
  Dialect d = dialect_.value_or(Dialect::k9P2000L);
  if (!dialect_ && frame.size() > 4) {
    uint8_t type = static_cast<uint8_t>(frame[4]);
    if (type != Tversion::kType && type != Rversion::kType) {
      std::string_view name = TypeName(type);
      return Unexpected(
          Error(Errc::kNoDialect, fmt::format("{} (type {}) before any Tversion/Rversion; give the "
                                              "dialect explicitly",
                                              name.empty() ? "unknown" : name, type)));
    }
  }
  Result<Frame> out = wire::Decode(frame, d, limits_);
  if (out) Observe(*out);
  return out;
}

void Conversation::Observe(const Frame& frame) {
  if (const auto* t = std::get_if<Tversion>(&frame.msg)) {
    if (!fixed_) {
      if (auto d = ParseDialect(t->version)) dialect_ = d;
    }
  } else if (const auto* r = std::get_if<Rversion>(&frame.msg)) {
    if (!fixed_) {
      if (auto d = ParseDialect(r->version)) dialect_ = d;
    }
    if (r->msize >= kHeaderSize) limits_.msize = r->msize;
  }
}

}  // namespace ninefold::wire
