// libFuzzer target for wire::Conversation: the whole input is one direction of a 9P
// byte stream, walked exactly as `ninefold decode` walks it (NextFrameSize, then Decode of
// the whole frame, stopping at the first error or at a truncated last frame), with no
// fixed dialect, so the Tversion/Rversion negotiation itself is fuzzed.
//
// Properties, each an abort() with a message when broken: every error carries a
// ninefold-category code and a context; every accepted frame re-encodes to its own bytes
// under the dialect the conversation decoded it with, and prints.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "ninefold/wire/conversation.h"

namespace ninefold::wire {
namespace {

[[noreturn]] void Fail(const char* what, size_t frame_number, size_t offset) {
  std::fprintf(stderr, "wire_stream_fuzz: %s (frame %zu at byte %zu)\n", what, frame_number,
               offset);
  std::abort();
}

void CheckError(const Error& e, size_t frame_number, size_t offset) {
  if (e.code().category() != NinefoldCategory() || e.code().value() == 0) {
    Fail("error code outside NinefoldCategory", frame_number, offset);
  }
  if (e.context().empty()) Fail("error without context", frame_number, offset);
}

void Walk(std::span<const std::byte> stream) {
  Conversation conv;
  size_t offset = 0;
  for (size_t frame_number = 1;; ++frame_number) {
    std::span<const std::byte> rest = stream.subspan(offset);
    if (rest.empty()) return;
    Result<uint32_t> size = conv.NextFrameSize(rest);
    if (!size) {
      CheckError(size.error(), frame_number, offset);
      return;
    }
    if (rest.size() < *size) return;  // the stream ends inside this frame
    std::span<const std::byte> frame = rest.first(*size);

    // The dialect the frame is decoded under; before any Tversion/Rversion the
    // conversation decodes those two (identical in every dialect) as 9P2000.L.
    const Dialect d = conv.dialect().value_or(Dialect::k9P2000L);
    Result<Frame> f = conv.Decode(frame);
    if (!f) {
      CheckError(f.error(), frame_number, offset);
      return;
    }
    // An Rversion may lower msize below its own length; it was accepted under the old one.
    const uint32_t msize = std::max(conv.limits().msize, static_cast<uint32_t>(frame.size()));
    std::vector<std::byte> out(frame.size());
    Result<size_t> n = Encode(*f, d, out, msize);
    if (!n || *n != frame.size() || std::memcmp(out.data(), frame.data(), frame.size()) != 0) {
      Fail("accepted frame does not re-encode to its own bytes", frame_number, offset);
    }
    // `ninefold decode` prints with the dialect in force after the frame; after a
    // Tversion/Rversion naming no known dialect there is none (it dereferences the empty
    // optional there), and the frame prints as it was decoded.
    if (Format(*f, conv.dialect().value_or(d)).empty()) {
      Fail("Format printed nothing", frame_number, offset);
    }
    offset += frame.size();
  }
}

}  // namespace
}  // namespace ninefold::wire

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ninefold::wire::Walk(std::as_bytes(std::span(data, size)));
  return 0;
}
