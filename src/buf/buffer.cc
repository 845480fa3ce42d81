#include "ninefold/buf/buffer.h"

#include <sys/mman.h>

#include <map>
#include <mutex>
#include <new>
#include <string>
#include <utility>

namespace ninefold::buf {
namespace {

// The live Buffers' private mappings, by start address: what InPrivateBuffer answers from.
struct PrivateMappings {
  std::mutex mu;
  std::map<uintptr_t, size_t> by_start;  // guarded by mu
};
PrivateMappings& Mappings() {
  static auto* m = new PrivateMappings;  // never destroyed: Buffers may outlive statics
  return *m;
}

size_t MappedBytes(size_t size) { return (size + kPageSize - 1) / kPageSize * kPageSize; }

}  // namespace

bool InPrivateBuffer(const void* p, size_t n) {
  auto a = reinterpret_cast<uintptr_t>(p);
  PrivateMappings& m = Mappings();
  std::lock_guard lock(m.mu);
  auto it = m.by_start.upper_bound(a);
  if (it == m.by_start.begin()) return false;
  --it;
  return a - it->first <= it->second && n <= it->second - (a - it->first);
}

uint64_t LengthOf(const BufferRef& ref) {
  return std::visit(
      [](const auto& r) -> uint64_t {
        if constexpr (requires { r.bytes; }) {
          return r.bytes.size();
        } else {
          return r.length;
        }
      },
      ref);
}

Result<std::span<std::byte>> Addressable(const BufferRef& ref) {
  if (const auto* v = std::get_if<Virtual>(&ref)) return v->bytes;
  if (const auto* r = std::get_if<RegionRef>(&ref)) {
    if (!r->region)
      return Unexpected(Error(std::errc::invalid_argument, "region reference to no region"));
    return r->region->Bytes(r->offset, r->length);
  }
  if (const auto* p = std::get_if<Pages>(&ref); p && p->region) {
    // Addressable when the pages are consecutive: one span of the region.
    bool consecutive = true;
    for (size_t i = 1; i < p->pages.size(); ++i) consecutive &= p->pages[i] == p->pages[0] + i;
    if (consecutive && !p->pages.empty()) {
      return p->region->Bytes(uint64_t{p->pages[0]} * kPageSize + p->first_offset, p->length);
    }
  }
  return Unexpected(
      Error(std::errc::invalid_argument, "buffer reference kind is not addressable memory here"));
}

Arena::Arena(std::shared_ptr<Region> region, uint64_t offset, uint64_t size)
    : region_(std::move(region)),
      offset_(offset),
      bytes_(region_->data() + offset, size),
      pages_(static_cast<uint32_t>(size / kPageSize)) {}

Result<std::shared_ptr<Arena>> Arena::Create(std::shared_ptr<Region> region, uint64_t offset,
                                             uint64_t size) {
  if (!region || offset % kPageSize != 0 || size % kPageSize != 0 || size == 0 ||
      !region->Contains(offset, size)) {
    return Unexpected(Error(std::errc::invalid_argument,
                            "arena " + std::to_string(offset) + "+" + std::to_string(size) +
                                " is not whole pages inside its region"));
  }
  return std::shared_ptr<Arena>(new Arena(std::move(region), offset, size));
}

Buffer Buffer::Allocate(size_t size, const std::shared_ptr<Arena>& arena) {
  Buffer b;
  size_t pages = (size + kPageSize - 1) / kPageSize;
  if (pages == 0) return b;
  if (arena && pages <= UINT32_MAX) {
    Result<PageRun> run = arena->pages().Allocate(static_cast<uint32_t>(pages));
    if (run) {
      b.arena_ = arena;
      b.run_ = *run;
      b.data_ = arena->bytes().data() + uint64_t{run->first} * kPageSize;
      b.size_ = size;
      return b;
    }
  }
  const size_t mapped = MappedBytes(size);  // what Release unmaps
  void* p = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  b.data_ = static_cast<std::byte*>(p);
  b.size_ = size;
  PrivateMappings& m = Mappings();
  std::lock_guard lock(m.mu);
  m.by_start[reinterpret_cast<uintptr_t>(p)] = mapped;
  return b;
}

Buffer::~Buffer() { Release(); }

void Buffer::Release() {
  if (arena_) {
    arena_->pages().Free(run_);
  } else if (data_ != nullptr) {
    {
      PrivateMappings& m = Mappings();
      std::lock_guard lock(m.mu);
      m.by_start.erase(reinterpret_cast<uintptr_t>(data_));
    }
    ::munmap(data_, MappedBytes(size_));  // and whatever a read mapped over it
  }
  arena_.reset();
  data_ = nullptr;
  size_ = 0;
}

Buffer::Buffer(Buffer&& other) noexcept
    : arena_(std::move(other.arena_)),
      run_(other.run_),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    Release();
    arena_ = std::move(other.arena_);
    run_ = other.run_;
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

BufferRef Buffer::ref() const {
  if (arena_) {
    return RegionRef{arena_->region(), arena_->offset() + uint64_t{run_.first} * kPageSize, size_};
  }
  return Virtual{span()};
}

}  // namespace ninefold::buf
