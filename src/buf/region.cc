#include "ninefold/buf/region.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace ninefold::buf {
namespace {

Error Errno(std::string context) {
  return Error(std::error_code(errno, std::generic_category()), std::move(context));
}

}  // namespace

PageAllocator::PageAllocator(uint32_t pages) : total_(pages) {
  if (pages > 0) free_.push_back({0, pages});
}

Result<PageRun> PageAllocator::Allocate(uint32_t count) {
  if (count == 0) return Unexpected(Error(std::errc::invalid_argument, "allocate 0 pages"));
  std::lock_guard lock(mu_);
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    if (it->count < count) continue;
    PageRun run{it->first, count};
    it->first += count;
    it->count -= count;
    if (it->count == 0) free_.erase(it);
    return run;
  }
  return Unexpected(
      Error(std::errc::not_enough_memory, "no run of " + std::to_string(count) + " free pages"));
}

void PageAllocator::Free(PageRun run) {
  NINEFOLD_CHECK(run.count > 0 && run.first <= total_ && run.count <= total_ - run.first);
  std::lock_guard lock(mu_);
  auto it = free_.begin();
  while (it != free_.end() && it->first < run.first) ++it;
  // Never overlapping a free run: that would be a double free.
  NINEFOLD_CHECK(it == free_.end() || run.first + run.count <= it->first);
  NINEFOLD_CHECK(it == free_.begin() || std::prev(it)->first + std::prev(it)->count <= run.first);
  it = free_.insert(it, run);
  if (auto next = std::next(it); next != free_.end() && it->first + it->count == next->first) {
    it->count += next->count;
    free_.erase(next);
  }
  if (it != free_.begin()) {
    auto prev = std::prev(it);
    if (prev->first + prev->count == it->first) {
      prev->count += it->count;
      free_.erase(it);
    }
  }
}

uint32_t PageAllocator::free_pages() const {
  std::lock_guard lock(mu_);
  uint32_t n = 0;
  for (const PageRun& r : free_) n += r.count;
  return n;
}

Region::Region(int fd, std::byte* data, size_t size)
    : fd_(fd), data_(data), size_(size), pages_(static_cast<uint32_t>(size / kPageSize)) {}

Region::~Region() {
  ::munmap(data_, size_);
  ::close(fd_);
}

Result<std::shared_ptr<Region>> Region::Create(size_t bytes, std::string_view name,
                                               PeerAccess peers) {
  size_t size = (bytes + kPageSize - 1) / kPageSize * kPageSize;
  if (size == 0 || size / kPageSize > UINT32_MAX) {
    return Unexpected(
        Error(std::errc::invalid_argument, "region of " + std::to_string(bytes) + " bytes"));
  }
  int fd = ::memfd_create(std::string(name).c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return Unexpected(Errno("memfd_create"));
  auto fail = [fd](std::string what) {
    Error e = Errno(std::move(what));
    ::close(fd);
    return Unexpected(e);
  };
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    return fail("ftruncate memfd to " + std::to_string(size));
  }
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return fail("mmap region");
  // The size is part of the layout both sides index: nobody may change it.
  int seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
  if (peers == PeerAccess::kReadOnly) seals |= F_SEAL_FUTURE_WRITE;
  if (::fcntl(fd, F_ADD_SEALS, seals) != 0) {
    ::munmap(p, size);
    return fail("seal memfd");
  }
  return std::shared_ptr<Region>(new Region(fd, static_cast<std::byte*>(p), size));
}

Result<std::shared_ptr<Region>> Region::Map(int fd, size_t expected_bytes) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    Error e = Errno("fstat region");
    ::close(fd);
    return Unexpected(e);
  }
  // Without the seals, the peer could shrink the file under us (SIGBUS on access).
  int seals = ::fcntl(fd, F_GET_SEALS);
  if (static_cast<size_t>(st.st_size) != expected_bytes || expected_bytes % kPageSize != 0 ||
      seals < 0 || !(seals & F_SEAL_SHRINK)) {
    ::close(fd);
    return Unexpected(Error(std::errc::invalid_argument,
                            "region of " + std::to_string(st.st_size) + " bytes, expected " +
                                std::to_string(expected_bytes) + " (sealed against shrinking)"));
  }
  void* p = ::mmap(nullptr, expected_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    Error e = Errno("mmap region");
    ::close(fd);
    return Unexpected(e);
  }
  return std::shared_ptr<Region>(new Region(fd, static_cast<std::byte*>(p), expected_bytes));
}

Result<std::span<std::byte>> Region::Bytes(uint64_t offset, uint64_t length) const {
  if (!Contains(offset, length)) {
    return Unexpected(Error(std::errc::bad_address,
                            "range " + std::to_string(offset) + "+" + std::to_string(length) +
                                " outside a region of " + std::to_string(size_) + " bytes"));
  }
  return std::span<std::byte>(data_ + offset, length);
}

}  // namespace ninefold::buf
