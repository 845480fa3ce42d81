// Protocol-level error codes: faults that are not errno values. They live in the
// "ninefold" std::error_category, so an Error can carry either kind of code and callers
// compare with `err.code() == Errc::kTruncated`.
#ifndef NINEFOLD_BASE_ERRC_H_
#define NINEFOLD_BASE_ERRC_H_

#include <system_error>

namespace ninefold {

enum class Errc {
  // wire: a frame (or field) ends before its declared content does.
  kTruncated = 1,
  // wire: the size field disagrees with the bytes the message's fields account for.
  kSizeMismatch,
  // wire: a count or length field claims more bytes or items than the frame holds.
  kCountTooLarge,
  // wire: a string is longer than the decoder's configured limit.
  kStringTooLong,
  // wire: a frame is larger than the negotiated msize (decode or encode).
  kFrameTooLarge,
  // wire: a size field smaller than the 7-byte header itself.
  kFrameTooSmall,
  // wire: Twalk/Rwalk with more than 16 (MAXWELEM) names or qids.
  kTooManyWalkElements,
  // wire: a type byte no dialect defines.
  kUnknownType,
  // wire: a message that exists, but not in the dialect in use.
  kWrongDialect,
  // wire: no dialect known yet (nothing negotiated, none given).
  kNoDialect,
};

const std::error_category& NinefoldCategory();

inline std::error_code make_error_code(Errc e) {  // NOLINT: found by ADL, std naming
  return {static_cast<int>(e), NinefoldCategory()};
}

}  // namespace ninefold

template <>
struct std::is_error_code_enum<ninefold::Errc> : std::true_type {};

#endif  // NINEFOLD_BASE_ERRC_H_
