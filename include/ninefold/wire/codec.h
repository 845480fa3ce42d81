// The 9P codec: frames to messages and back. No I/O, no threads, no shared state.
//
//   Result<Frame> f = Decode(bytes, Dialect::k9P2000L);         // bytes: exactly one frame
//   if (!f) return Unexpected(f.error());  // e.g. "count larger than the frame: Twrite.count
//                                          //        at byte 19: count 70000, 5 left"
//   std::string line = Format(*f);         // "Twalk tag 3 fid 1 newfid 2 nwname 1 'usr'"
//   Result<size_t> n = Encode(reply, Dialect::k9P2000L, out_span, msize);
//
// Decoding is total: any byte string yields a Frame or an Error whose code is one of
// Errc::kTruncated, kSizeMismatch, kCountTooLarge, kStringTooLong, kFrameTooLarge,
// kFrameTooSmall, kTooManyWalkElements, kUnknownType, kWrongDialect, and whose context
// names the message, the field and the byte offset. Decoding never reads outside the
// given span and never allocates (strings and payloads are views into it; see types.h).
// Every accepted frame re-encodes to the identical bytes.
//
// Thread safety: all functions are pure; call them from any thread.
#ifndef NINEFOLD_WIRE_CODEC_H_
#define NINEFOLD_WIRE_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ninefold/base/errc.h"
#include "ninefold/base/result.h"
#include "ninefold/wire/messages.h"
#include "ninefold/wire/types.h"

namespace ninefold::wire {

// "Twalk" for 110; empty for a type byte no dialect defines.
std::string_view TypeName(uint8_t type);
// The dialects in which `type` is valid; 0 for an unknown type.
DialectSet TypeDialects(uint8_t type);
// The type byte of the message a Frame holds.
uint8_t TypeOf(const Message& msg);

// Length of the frame that starts `bytes` (its size field), checked against limits:
// kTruncated when fewer than 4 bytes are there, kFrameTooSmall below 7, kFrameTooLarge
// above limits.msize. The frame itself may still be incomplete in `bytes`.
[[nodiscard]] Result<uint32_t> PeekFrameSize(std::span<const std::byte> bytes,
                                             const Limits& limits = {});

// Decodes exactly one frame; `frame` must hold it and nothing more.
[[nodiscard]] Result<Frame> Decode(std::span<const std::byte> frame, Dialect dialect,
                                   const Limits& limits = {});

// Decodes a frame whose trailing payload (Twrite, Rread or Rreaddir data) lies apart from
// the rest (a shared-memory channel sends it by reference): `head` is the frame up to
// and including the count field, whose size field counts the payload too. With an
// empty payload this is Decode(head). The message's data views `payload`.
[[nodiscard]] Result<Frame> Decode(std::span<const std::byte> head,
                                   std::span<const std::byte> payload, Dialect dialect,
                                   const Limits& limits = {});

// Decode(head, payload) into `out`, which a caller decoding frame after frame keeps: the
// message is decoded where it stays, not moved out through a Result. On failure `out`
// holds a message of no meaning.
[[nodiscard]] Result<void> DecodeInto(std::span<const std::byte> head,
                                      std::span<const std::byte> payload, Dialect dialect,
                                      const Limits& limits, Frame& out);

// Bytes the encoded frame takes. Fails (kWrongDialect, kStringTooLong, kCountTooLarge)
// when the frame cannot be encoded in `dialect` at all.
[[nodiscard]] Result<size_t> EncodedSize(const Frame& frame, Dialect dialect);

// Encodes into `out` and returns the frame's length. kFrameTooLarge when it would exceed
// msize, kTruncated when `out` is too small; nothing is written on failure.
[[nodiscard]] Result<size_t> Encode(const Frame& frame, Dialect dialect, std::span<std::byte> out,
                                    uint32_t msize);
[[nodiscard]] Result<std::vector<std::byte>> Encode(const Frame& frame, Dialect dialect,
                                                    uint32_t msize);
// The same for a frame given as its tag and message (no Frame to copy the message into),
// into `out`, resized to the frame (a buffer kept for reuse keeps its room).
[[nodiscard]] Result<void> Encode(uint16_t tag, const Message& msg, Dialect dialect,
                                  std::vector<std::byte>& out, uint32_t msize);

// For scatter/gather sends: encodes everything except the trailing payload of Twrite,
// Rread or Rreaddir into `head` (the payload's count field included) and returns the
// head's length plus a view of the payload, so that head + payload is the whole frame
// without copying the payload. For other messages the payload is empty.
struct EncodedHead {
  size_t head_size = 0;
  std::span<const std::byte> payload;
};
[[nodiscard]] Result<EncodedHead> EncodeHead(const Frame& frame, Dialect dialect,
                                             std::span<std::byte> head, uint32_t msize);
// The same into a buffer sized to fit the head (sized once: no separate EncodedSize).
[[nodiscard]] Result<EncodedHead> EncodeHead(const Frame& frame, Dialect dialect,
                                             std::vector<std::byte>& head, uint32_t msize);
// The same for a frame given as its tag and message (no Frame to copy the message into).
[[nodiscard]] Result<EncodedHead> EncodeHead(uint16_t tag, const Message& msg, Dialect dialect,
                                             std::vector<std::byte>& head, uint32_t msize);

// Directory-read payloads. A 9P2000.L Rreaddir carries a run of Dirents; a 9P2000 or
// 9P2000.u Rread of a directory carries a run of stats (size[2] + fields, no n[2]).
// The decoders consume one entry from the front of `data`; errors are as for Decode.
[[nodiscard]] Result<Dirent> DecodeDirent(std::span<const std::byte>& data,
                                          const Limits& limits = {});
[[nodiscard]] Result<Stat> DecodeDirStat(std::span<const std::byte>& data, Dialect dialect,
                                         const Limits& limits = {});
// Appends one entry at out[*used...] and advances *used; false, with nothing written,
// when it does not fit (it starts the next reply) or cannot be encoded.
[[nodiscard]] bool AppendDirent(std::span<std::byte> out, size_t* used, const Dirent& entry);
[[nodiscard]] bool AppendDirStat(std::span<std::byte> out, size_t* used, const Stat& entry,
                                 Dialect dialect);

// One readable line: "Twalk tag 3 fid 1 newfid 2 nwname 2 'usr' 'glenda'". Fields absent
// in `dialect` are left out; payloads print their count and a short escaped preview.
std::string Format(const Frame& frame, Dialect dialect);

}  // namespace ninefold::wire

#endif  // NINEFOLD_WIRE_CODEC_H_
