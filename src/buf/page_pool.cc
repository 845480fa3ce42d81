#include "ninefold/buf/page_pool.h"

#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <vector>

namespace ninefold::buf {

struct PagePool::State {
  struct Slab {
    std::shared_ptr<Region> region;
    std::vector<uint32_t> free;  // page indices not in use
  };
  explicit State(uint32_t pages) : slab_pages(pages) {}
  const uint32_t slab_pages;
  mutable std::mutex mu;
  std::map<uintptr_t, Slab> slabs;  // by base address; guarded by mu
  std::set<uintptr_t> with_room;    // slabs that have a free page; guarded by mu
  uint64_t in_use = 0;              // guarded by mu

  void Free(std::byte* page) {
    std::shared_ptr<Region> last;  // unmapped outside the lock
    std::lock_guard lock(mu);
    auto it = slabs.upper_bound(reinterpret_cast<uintptr_t>(page));
    NINEFOLD_CHECK(it != slabs.begin());
    --it;
    Slab& slab = it->second;
    auto index = static_cast<uint32_t>((page - slab.region->data()) / kPageSize);
    NINEFOLD_CHECK(index < slab_pages);
    slab.free.push_back(index);
    --in_use;
    with_room.insert(it->first);
    // An empty slab goes back to the system, unless it is the only one left.
    if (slab.free.size() == slab_pages && slabs.size() > 1) {
      last = std::move(slab.region);
      with_room.erase(it->first);
      slabs.erase(it);
    }
  }
};

std::shared_ptr<PagePool> PagePool::Create(size_t slab_bytes) {
  size_t pages = std::max<size_t>(1, (slab_bytes + kPageSize - 1) / kPageSize);
  return std::shared_ptr<PagePool>(new PagePool(
      std::make_shared<State>(static_cast<uint32_t>(std::min<size_t>(pages, 1u << 20)))));
}

PagePool::PagePool(std::shared_ptr<State> state) : state_(std::move(state)) {}
PagePool::~PagePool() = default;

std::shared_ptr<std::byte> PagePool::Allocate(bool zeroed) {
  State& s = *state_;
  std::byte* page = nullptr;
  {
    std::lock_guard lock(s.mu);
    if (s.with_room.empty()) {
      Result<std::shared_ptr<Region>> region =
          Region::Create(uint64_t{s.slab_pages} * kPageSize, "ninefold-pages");
      if (!region) return nullptr;
      auto base = reinterpret_cast<uintptr_t>((*region)->data());
      State::Slab& slab = s.slabs[base];
      slab.region = std::move(*region);
      slab.free.reserve(s.slab_pages);
      for (uint32_t i = s.slab_pages; i-- > 0;) slab.free.push_back(i);  // low pages first
      s.with_room.insert(base);
    }
    auto it = s.slabs.find(*s.with_room.begin());
    State::Slab& slab = it->second;
    page = slab.region->data() + uint64_t{slab.free.back()} * kPageSize;
    slab.free.pop_back();
    if (slab.free.empty()) s.with_room.erase(it->first);
    ++s.in_use;
  }
  if (zeroed) std::memset(page, 0, kPageSize);
  return std::shared_ptr<std::byte>(page, [state = state_](std::byte* p) { state->Free(p); });
}

uint64_t PagePool::pages_in_use() const {
  std::lock_guard lock(state_->mu);
  return state_->in_use;
}

uint64_t PagePool::slabs() const {
  std::lock_guard lock(state_->mu);
  return state_->slabs.size();
}

}  // namespace ninefold::buf
