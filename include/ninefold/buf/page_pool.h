// Single pages for in-memory file systems, carved from memfd slabs: exactly one page of
// memory per page handed out (a 4 KiB-aligned heap allocation costs twice that), slabs
// returned to the system when their last page is freed, and data that lives in shared
// memory from the start (so it can later be handed to a client as buf::Pages).
//
//   auto pool = PagePool::Create(16 << 20);
//   std::shared_ptr<std::byte> page = pool->Allocate();  // kPageSize bytes, or null
//
// A page is freed when its last shared_ptr goes; pages keep their slab (and the pool's
// bookkeeping) alive, so they may outlive the pool object.
//
// Threading: Allocate and page frees may run on any thread (one mutex).
#ifndef NINEFOLD_BUF_PAGE_POOL_H_
#define NINEFOLD_BUF_PAGE_POOL_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "ninefold/buf/region.h"

namespace ninefold::buf {

class PagePool {
 public:
  // Slabs of `slab_bytes` (rounded up to whole pages, at least one).
  static std::shared_ptr<PagePool> Create(size_t slab_bytes = 16u << 20);
  ~PagePool();
  PagePool(const PagePool&) = delete;
  PagePool& operator=(const PagePool&) = delete;

  // One page, its contents undefined (zeroed when `zeroed`); null when no slab can be
  // made (memfd or mmap failed: out of memory or descriptors).
  std::shared_ptr<std::byte> Allocate(bool zeroed = false);

  uint64_t pages_in_use() const;
  uint64_t slabs() const;

  struct State;

 private:
  explicit PagePool(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

}  // namespace ninefold::buf

#endif  // NINEFOLD_BUF_PAGE_POOL_H_
