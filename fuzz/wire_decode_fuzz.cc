// libFuzzer target for wire::Decode: one frame in one dialect, round trip both ways.
//
// Input: selector[1] frame[...]. selector % 3 picks the dialect (9P2000, 9P2000.u,
// 9P2000.L); (selector / 3) % 4 picks the limits (default; max_string 16; msize 512;
// both), so the limit checks are reached as easily as the happy path.
//
// Properties, each an abort() with a message when broken:
//   * decode fails  -> the Error has a ninefold-category code and a non-empty context;
//   * decode passes -> PeekFrameSize agrees with the frame's length, EncodedSize and
//     Encode give back exactly the input bytes, decoding those gives an equal Frame,
//     EncodeHead + payload is the same bytes, and Format prints the message's name.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "ninefold/wire/codec.h"

namespace ninefold::wire {
namespace {

[[noreturn]] void Fail(const char* what, std::span<const std::byte> frame, Dialect d) {
  std::fprintf(stderr, "wire_decode_fuzz: %s (dialect %s, %zu-byte frame)\n", what,
               std::string(DialectName(d)).c_str(), frame.size());
  std::abort();
}

void CheckError(const Error& e, std::span<const std::byte> frame, Dialect d) {
  if (e.code().category() != NinefoldCategory())
    Fail("error code outside NinefoldCategory", frame, d);
  if (e.code().value() == 0) Fail("error with a zero code", frame, d);
  if (e.context().empty()) Fail("error without context", frame, d);
  if (e.ToString().empty()) Fail("empty Error::ToString", frame, d);
}

bool SameBytes(std::span<const std::byte> a, std::span<const std::byte> b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
}

void CheckFrame(std::span<const std::byte> frame, Dialect d, const Limits& limits) {
  Result<Frame> decoded = Decode(frame, d, limits);
  if (!decoded) {
    CheckError(decoded.error(), frame, d);
    return;
  }

  Result<uint32_t> peeked = PeekFrameSize(frame, limits);
  if (!peeked || *peeked != frame.size()) Fail("PeekFrameSize disagrees with Decode", frame, d);

  Result<size_t> size = EncodedSize(*decoded, d);
  if (!size) Fail("EncodedSize fails on a decoded frame", frame, d);
  if (*size != frame.size()) Fail("EncodedSize differs from the decoded frame's size", frame, d);

  std::vector<std::byte> out(frame.size());
  Result<size_t> n = Encode(*decoded, d, out, limits.msize);
  if (!n) Fail("Encode fails on a decoded frame", frame, d);
  if (*n != frame.size() || !SameBytes(out, frame)) {
    Fail("re-encoding differs from the decoded bytes", frame, d);
  }

  Result<Frame> again = Decode(out, d, limits);
  if (!again) Fail("decoding the re-encoded frame fails", frame, d);
  if (!(*again == *decoded))
    Fail("decoding the re-encoded frame gives a different Frame", frame, d);

  std::vector<std::byte> head(frame.size());
  Result<EncodedHead> h = EncodeHead(*decoded, d, head, limits.msize);
  if (!h) Fail("EncodeHead fails on a decoded frame", frame, d);
  if (h->head_size + h->payload.size() != frame.size() ||
      !SameBytes(std::span(head).first(h->head_size), frame.first(h->head_size)) ||
      !SameBytes(h->payload, frame.subspan(h->head_size))) {
    Fail("EncodeHead + payload differs from the frame", frame, d);
  }

  std::string line = Format(*decoded, d);
  std::string_view name = TypeName(TypeOf(decoded->msg));
  if (name.empty() || line.compare(0, name.size(), name) != 0) {
    Fail("Format does not start with the message's name", frame, d);
  }
}

}  // namespace
}  // namespace ninefold::wire

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ninefold::wire;
  if (size == 0) return 0;
  const uint8_t selector = data[0];
  const Dialect d = static_cast<Dialect>(selector % 3);
  Limits limits;
  const unsigned variant = (selector / 3) % 4;
  if (variant & 1) limits.max_string = 16;
  if (variant & 2) limits.msize = 512;
  CheckFrame(std::as_bytes(std::span(data + 1, size - 1)), d, limits);
  return 0;
}
