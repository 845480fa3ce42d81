// A few frame buffers kept per thread (channel.h: TakeFrameBuffer, RecycleFrameBuffer).

#include <array>
#include <cstddef>
#include <vector>

#include "ninefold/transport/channel.h"

namespace ninefold::transport {
namespace {

// A new buffer has room for the heads of ordinary messages (an Rgetattr is 160 bytes);
// larger buffers (a batch of frames, a long Twalk) are freed, as are any beyond the few a
// thread keeps.
constexpr size_t kRoom = 256;
constexpr size_t kLargest = 4096;
constexpr size_t kKept = 8;

struct Kept {
  std::array<std::vector<std::byte>, kKept> buffers;
  size_t count = 0;
};
thread_local Kept kept;

}  // namespace

std::vector<std::byte> TakeFrameBuffer() {
  if (kept.count == 0) {
    std::vector<std::byte> fresh;
    fresh.reserve(kRoom);
    return fresh;
  }
  return std::move(kept.buffers[--kept.count]);
}

void RecycleFrameBuffer(std::vector<std::byte>&& buffer) {
  if (buffer.capacity() < kRoom || buffer.capacity() > kLargest || kept.count == kKept) return;
  buffer.clear();
  kept.buffers[kept.count++] = std::move(buffer);
}

}  // namespace ninefold::transport
