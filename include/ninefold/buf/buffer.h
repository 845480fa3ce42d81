// Buffer references: where data is, described by kind, so that one read or write call
// works whether the bytes move by copy, by the peer writing into shared memory, or by
// sharing pages. See DESIGN.md, "buf".
//
//   buf::Buffer b = session->AllocateBuffer(1 << 20);   // like malloc; maybe shared
//   co_await session->AsyncRead(fid, 0, b.ref(), use_awaitable);
//
// Kinds (the Mover in the client chooses a strategy from them; callers never switch):
//   Virtual  {ptr,len} in this address space: ordinary memory
//   Region   {region,offset,len} in memory the peer has mapped too: the peer can write
//            a read's data there itself (one copy in all, by the peer)
//   Pages    {region, page indices, first-page offset, len}: data in shared pages that
//            this process may never map; it can be handed on untouched
//   File     {fd,offset,len}: for splice/sendfile/copy_file_range paths
// A BufferList is a scatter/gather list of them.
//
// Threading: BufferRefs are values (any thread). An Arena's allocator is thread-safe.
// A Buffer is owned by one thread at a time, like any object.
#ifndef NINEFOLD_BUF_BUFFER_H_
#define NINEFOLD_BUF_BUFFER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <variant>
#include <vector>

#include "ninefold/base/result.h"
#include "ninefold/buf/region.h"

namespace ninefold::buf {

struct Virtual {
  std::span<std::byte> bytes;
};
struct RegionRef {
  std::shared_ptr<Region> region;
  uint64_t offset = 0;
  uint64_t length = 0;
};
struct Pages {
  std::shared_ptr<Region> region;
  std::vector<uint32_t> pages;  // page indices in `region`, in order
  uint32_t first_offset = 0;    // where the data starts in the first page
  uint64_t length = 0;
};
struct FileRef {
  int fd = -1;
  uint64_t offset = 0;
  uint64_t length = 0;
};

using BufferRef = std::variant<Virtual, RegionRef, Pages, FileRef>;

// Bytes that also lie in whole pages of a file that will never change them (a memfd,
// open read-only): a reader on the same host may map `file` instead of copying `bytes`
// (page sharing, strategy c). `file.offset` is a page multiple and `file.length` equals
// bytes.size(); `owner` keeps the descriptor and both views alive.
struct SharedBytes {
  std::span<const std::byte> bytes;
  FileRef file;
  std::shared_ptr<const void> owner;
};
using BufferList = std::vector<BufferRef>;

// The bytes a reference covers, or EFAULT when they lie outside its region, EINVAL for
// kinds this process cannot address directly (Pages that are not contiguous, File).
[[nodiscard]] Result<std::span<std::byte>> Addressable(const BufferRef& ref);
uint64_t LengthOf(const BufferRef& ref);

// A page-aligned part of a region that its users allocate from: a shared-memory
// channel lends one to its owner, so that buffers the peer may write into (or read
// from) can be handed out like malloc's.
class Arena : public std::enable_shared_from_this<Arena> {
 public:
  // `offset` and `size` are page multiples inside `region` (checked: EINVAL).
  [[nodiscard]] static Result<std::shared_ptr<Arena>> Create(std::shared_ptr<Region> region,
                                                             uint64_t offset, uint64_t size);
  std::span<std::byte> bytes() const { return bytes_; }
  const std::shared_ptr<Region>& region() const { return region_; }
  uint64_t offset() const { return offset_; }  // of bytes() in region()
  PageAllocator& pages() { return pages_; }
  // True when [p, p + n) lies inside this arena.
  bool Contains(const void* p, size_t n) const {
    auto a = reinterpret_cast<uintptr_t>(p);
    auto b = reinterpret_cast<uintptr_t>(bytes_.data());
    return a >= b && a - b <= bytes_.size() && n <= bytes_.size() - (a - b);
  }

 private:
  Arena(std::shared_ptr<Region> region, uint64_t offset, uint64_t size);
  std::shared_ptr<Region> region_;
  uint64_t offset_;
  std::span<std::byte> bytes_;
  PageAllocator pages_;
};

// Memory for I/O, owned: whole pages of an Arena when one has room, else page-aligned
// private memory mapped for it alone. Freed on destruction; movable.
class Buffer {
 public:
  Buffer() = default;
  // `size` bytes (rounded up to pages) from `arena` if it has a free run, else private.
  static Buffer Allocate(size_t size, const std::shared_ptr<Arena>& arena = nullptr);
  ~Buffer();
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  std::span<std::byte> span() const { return {data_, size_}; }
  std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  // True when the bytes lie in shared memory (an Arena).
  bool shared() const { return arena_ != nullptr; }
  // A Region reference for shared buffers, else Virtual.
  BufferRef ref() const;

 private:
  void Release();
  std::shared_ptr<Arena> arena_;
  PageRun run_;
  std::byte* data_ = nullptr;
  size_t size_ = 0;
};

// True when [p, p + n) lies inside the private memory of one live Buffer (Allocate
// without an arena's room): memory this library mapped for that buffer alone, which a
// read may therefore remap onto shared pages (page sharing) without changing what anyone
// else sees. Any other memory (the caller's heap, its shared or file mappings, an arena)
// is only ever written to. Any thread.
bool InPrivateBuffer(const void* p, size_t n);

}  // namespace ninefold::buf

#endif  // NINEFOLD_BUF_BUFFER_H_
