// Private to the fuse layer: buffers for the data of FUSE reads and writes, kept for reuse.
//
// Every read and write holds a buffer of up to max_read/max_write bytes while its Session
// operation runs. Allocating each anew (Session::AllocateBuffer) was cheap over shm, where
// it is a run of arena pages mapped once, but not over tcp and unix: private page-aligned
// memory this large is mapped and unmapped by malloc, and every use faulted each page in
// again (zeroed by the kernel): tcp reads ran at 40% of their speed. Kept buffers are
// also the ones most recently used (last in, first out), so their bytes are still in the
// caches.
//
// Sizes are rounded up to a power of two (at least a page): few sizes, so a kept buffer
// fits most requests. At most `max_kept` bytes are kept; a buffer returned beyond that is
// freed.
//
// Threading: any thread (a mutex guards the kept buffers).
#ifndef NINEFOLD_SRC_FUSE_BUFFER_POOL_H_
#define NINEFOLD_SRC_FUSE_BUFFER_POOL_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "ninefold/buf/buffer.h"

namespace ninefold::fuse::internal {

// Bytes from a BufferPool: `bytes` (exactly the size asked for) lies in `*owner`, which
// goes back to the pool when the last copy of `owner` is gone.
struct PooledBytes {
  std::shared_ptr<buf::Buffer> owner;
  std::span<std::byte> bytes;
};

class BufferPool : public std::enable_shared_from_this<BufferPool> {
 public:
  using Allocator = std::function<buf::Buffer(size_t size)>;
  // `allocate` makes a new buffer of exactly `size` bytes (Session::AllocateBuffer).
  static std::shared_ptr<BufferPool> Create(Allocator allocate, size_t max_kept);

  // `size` bytes, in a kept buffer when one of their size class is free.
  PooledBytes Take(size_t size);

 private:
  BufferPool(Allocator allocate, size_t max_kept);
  void Give(buf::Buffer buffer);

  const Allocator allocate_;
  const size_t max_kept_;
  std::mutex mu_;
  std::vector<std::vector<buf::Buffer>> kept_;  // by size class (log2); guarded by mu_
  size_t kept_bytes_ = 0;                       // guarded by mu_
};

}  // namespace ninefold::fuse::internal

#endif  // NINEFOLD_SRC_FUSE_BUFFER_POOL_H_
