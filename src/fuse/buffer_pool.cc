// BufferPool: see buffer_pool.h.
#include "src/fuse/buffer_pool.h"

#include <algorithm>
#include <bit>
#include <utility>

#include "ninefold/buf/region.h"

namespace ninefold::fuse::internal {

namespace {

// The size class of `size`: log2 of the power of two it is rounded up to.
size_t ClassOf(size_t size) { return std::bit_width(std::max(size, buf::kPageSize) - 1); }

}  // namespace

std::shared_ptr<BufferPool> BufferPool::Create(Allocator allocate, size_t max_kept) {
  return std::shared_ptr<BufferPool>(new BufferPool(std::move(allocate), max_kept));
}

BufferPool::BufferPool(Allocator allocate, size_t max_kept)
    : allocate_(std::move(allocate)), max_kept_(max_kept) {}

PooledBytes BufferPool::Take(size_t size) {
  size_t c = ClassOf(size);
  buf::Buffer buffer;
  {
    std::lock_guard lock(mu_);
    if (c < kept_.size() && !kept_[c].empty()) {
      buffer = std::move(kept_[c].back());
      kept_[c].pop_back();
      kept_bytes_ -= buffer.size();
    }
  }
  if (buffer.size() == 0) buffer = allocate_(size_t{1} << c);
  auto owner = std::shared_ptr<buf::Buffer>(new buf::Buffer(std::move(buffer)),
                                            [self = shared_from_this()](buf::Buffer* b) {
                                              self->Give(std::move(*b));
                                              delete b;
                                            });
  return PooledBytes{owner, owner->span().first(size)};
}

void BufferPool::Give(buf::Buffer buffer) {
  size_t c = ClassOf(buffer.size());
  std::lock_guard lock(mu_);
  if (buffer.size() == 0 || kept_bytes_ + buffer.size() > max_kept_) return;  // freed here
  if (kept_.size() <= c) kept_.resize(c + 1);
  kept_bytes_ += buffer.size();
  kept_[c].push_back(std::move(buffer));
}

}  // namespace ninefold::fuse::internal
