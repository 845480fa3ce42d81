// Shared memory regions: memfd-backed pages that two processes map, and the page
// allocator that hands them out the way malloc hands out bytes.
//
//   Result<std::shared_ptr<Region>> r = Region::Create(64 << 20, "ninefold-ring");
//   Result<PageRun> run = (*r)->pages().Allocate(3);        // 3 contiguous pages
//   std::span<std::byte> bytes = (*r)->Bytes(*run);
//   int fd = (*r)->fd();                                    // send with SCM_RIGHTS
//   auto peer = Region::Map(received_fd, expected_size);    // the other side
//
// A Region owns its descriptor and its mapping. Nothing read from shared memory is
// trusted: Bytes() and Contains() check offsets and lengths against the region, so a
// peer's page number or offset can never reach outside it.
//
// Threading: Region is immutable after creation (any thread); PageAllocator is guarded
// by its own mutex (any thread).
#ifndef NINEFOLD_BUF_REGION_H_
#define NINEFOLD_BUF_REGION_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>
#include <vector>

#include "ninefold/base/result.h"

namespace ninefold::buf {

constexpr size_t kPageSize = 4096;

// Pages [first, first + count) of a region.
struct PageRun {
  uint32_t first = 0;
  uint32_t count = 0;
  bool operator==(const PageRun&) const = default;
};

// First-fit allocator of contiguous page runs over `pages` pages, with coalescing frees.
class PageAllocator {
 public:
  explicit PageAllocator(uint32_t pages);
  // ENOMEM ("no run of N free pages") when no run is free; EINVAL for count 0.
  [[nodiscard]] Result<PageRun> Allocate(uint32_t count);
  // Frees pages returned by Allocate: a whole run or any part of one (ramfs frees its
  // runs a page at a time). Freeing a page that is free is a program bug (aborts).
  void Free(PageRun run);
  uint32_t free_pages() const;
  uint32_t total_pages() const { return total_; }

 private:
  const uint32_t total_;
  mutable std::mutex mu_;
  std::vector<PageRun> free_;  // guarded by mu_; sorted by first, never adjacent
};

class Region {
 public:
  // A new memfd of `bytes` rounded up to whole pages, mapped read-write and shared.
  //
  // With `peers` kReadOnly only this mapping can ever write the pages: the memfd is sealed
  // F_SEAL_FUTURE_WRITE once mapped, so write(2), fallocate and new shared writable
  // mappings fail through every descriptor of it — one handed to a peer, or one a peer
  // reopens through /proc/PID/fd/N (a read-only descriptor alone does not stop that: a
  // memfd's mode is 0777). Private (copy-on-write) mappings remain possible.
  enum class PeerAccess { kReadWrite, kReadOnly };
  [[nodiscard]] static Result<std::shared_ptr<Region>> Create(
      size_t bytes, std::string_view name, PeerAccess peers = PeerAccess::kReadWrite);
  // Maps a region received from a peer. The descriptor is taken over (closed on error
  // too); its size must be exactly `expected_bytes` (else EINVAL), so a peer cannot make
  // us map less than the layout we will index.
  [[nodiscard]] static Result<std::shared_ptr<Region>> Map(int fd, size_t expected_bytes);

  ~Region();
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;

  int fd() const { return fd_; }
  std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  uint32_t page_count() const { return static_cast<uint32_t>(size_ / kPageSize); }
  PageAllocator& pages() { return pages_; }

  // True when [offset, offset + length) lies inside the region (overflow-safe).
  bool Contains(uint64_t offset, uint64_t length) const {
    return offset <= size_ && length <= size_ - offset;
  }
  // The bytes of a range, or EFAULT when it does not lie inside the region.
  [[nodiscard]] Result<std::span<std::byte>> Bytes(uint64_t offset, uint64_t length) const;
  [[nodiscard]] Result<std::span<std::byte>> Bytes(PageRun run) const {
    return Bytes(uint64_t{run.first} * kPageSize, uint64_t{run.count} * kPageSize);
  }

 private:
  Region(int fd, std::byte* data, size_t size);
  int fd_;
  std::byte* data_;
  size_t size_;
  PageAllocator pages_;
};

}  // namespace ninefold::buf

#endif  // NINEFOLD_BUF_REGION_H_
