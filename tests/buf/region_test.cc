// Regions: memfd creation and sealing, mapping a peer's descriptor, range checks, the
// page allocator's first-fit allocation with coalescing frees, and buffers from arenas
// with their references.
#include "ninefold/buf/region.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "gtest/gtest.h"
#include "ninefold/buf/buffer.h"
#include "ninefold/buf/page_pool.h"

namespace ninefold::buf {
namespace {

TEST(RegionTest, CreateRoundsUpToPagesAndPeerSeesWrites) {
  auto r = Region::Create(10000, "test");
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ((*r)->size(), 3 * kPageSize);
  EXPECT_EQ((*r)->page_count(), 3u);
  std::memcpy((*r)->data() + 5000, "hello", 5);
  auto peer = Region::Map(::dup((*r)->fd()), 3 * kPageSize);
  ASSERT_TRUE(peer) << peer.error().ToString();
  EXPECT_EQ(std::memcmp((*peer)->data() + 5000, "hello", 5), 0);
  std::memcpy((*peer)->data(), "back", 4);  // shared both ways
  EXPECT_EQ(std::memcmp((*r)->data(), "back", 4), 0);
}

TEST(RegionTest, MapRefusesAnotherSizeAndUnsealedFiles) {
  auto r = Region::Create(2 * kPageSize, "test");
  ASSERT_TRUE(r);
  auto wrong = Region::Map(::dup((*r)->fd()), 4 * kPageSize);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code(), std::errc::invalid_argument);
  // A peer's memfd without seals could shrink under us: refused.
  int fd = ::memfd_create("unsealed", MFD_CLOEXEC);
  ASSERT_EQ(::ftruncate(fd, kPageSize), 0);
  auto unsealed = Region::Map(fd, kPageSize);
  ASSERT_FALSE(unsealed);
  EXPECT_EQ(unsealed.error().code(), std::errc::invalid_argument);
  // Sealed: the creator cannot shrink it either.
  EXPECT_NE(::ftruncate((*r)->fd(), kPageSize), 0);
}

TEST(RegionTest, BytesChecksEveryRangeIncludingOverflow) {
  auto r = Region::Create(kPageSize, "test");
  ASSERT_TRUE(r);
  EXPECT_TRUE((*r)->Bytes(0, kPageSize));
  EXPECT_TRUE((*r)->Bytes(kPageSize, 0));
  for (auto [off, len] : {std::pair<uint64_t, uint64_t>{1, kPageSize},
                          {kPageSize + 1, 0},
                          {~uint64_t{0}, 2},
                          {8, ~uint64_t{0} - 4}}) {
    auto b = (*r)->Bytes(off, len);
    ASSERT_FALSE(b) << off << "+" << len;
    EXPECT_EQ(b.error().code(), std::errc::bad_address);
  }
  EXPECT_FALSE((*r)->Bytes(PageRun{1, 1}));
}

TEST(PageAllocatorTest, FirstFitAndCoalescing) {
  PageAllocator a(10);
  auto x = a.Allocate(3), y = a.Allocate(3), z = a.Allocate(4);
  ASSERT_TRUE(x && y && z);
  EXPECT_EQ(*x, (PageRun{0, 3}));
  EXPECT_EQ(*y, (PageRun{3, 3}));
  EXPECT_EQ(*z, (PageRun{6, 4}));
  auto none = a.Allocate(1);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code(), std::errc::not_enough_memory);
  a.Free(*x);
  a.Free(*z);
  EXPECT_EQ(a.free_pages(), 7u);
  EXPECT_FALSE(a.Allocate(5));  // 3 + 4 free, not contiguous
  a.Free(*y);                   // joins both neighbours
  auto all = a.Allocate(10);
  ASSERT_TRUE(all);
  EXPECT_EQ(*all, (PageRun{0, 10}));
  EXPECT_EQ(a.Allocate(0).error().code(), std::errc::invalid_argument);
}

TEST(PageAllocatorDeathTest, DoubleFreeAborts) {
  PageAllocator a(4);
  auto x = a.Allocate(2);
  ASSERT_TRUE(x);
  a.Free(*x);
  EXPECT_DEATH(a.Free(*x), "NINEFOLD_CHECK");
}

// Buffers come from an arena while it has room, then from private memory; references
// say which, and address the same bytes.
TEST(BufferTest, ArenaFirstThenPrivateAndReferencesAddressTheSameBytes) {
  auto region = Region::Create(16 * kPageSize, "buffer-test");
  ASSERT_TRUE(region);
  auto arena = Arena::Create(*region, 4 * kPageSize, 8 * kPageSize);
  ASSERT_TRUE(arena) << arena.error().ToString();
  EXPECT_FALSE(Arena::Create(*region, 100, kPageSize));                 // not page-aligned
  EXPECT_FALSE(Arena::Create(*region, 12 * kPageSize, 8 * kPageSize));  // past the end

  Buffer a = Buffer::Allocate(5 * kPageSize + 1, *arena);  // 6 pages
  ASSERT_TRUE(a.shared());
  EXPECT_TRUE((*arena)->Contains(a.data(), a.size()));
  Buffer b = Buffer::Allocate(3 * kPageSize, *arena);  // only 2 pages left: private
  EXPECT_FALSE(b.shared());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % kPageSize, 0u);
  EXPECT_FALSE((*arena)->Contains(b.data(), 1));
  EXPECT_EQ((*arena)->pages().free_pages(), 2u);

  BufferRef ra = a.ref();
  ASSERT_TRUE(std::holds_alternative<RegionRef>(ra));
  EXPECT_EQ(std::get<RegionRef>(ra).offset, 4 * kPageSize);
  EXPECT_EQ(LengthOf(ra), a.size());
  auto bytes = Addressable(ra);
  ASSERT_TRUE(bytes);
  EXPECT_EQ(bytes->data(), a.data());
  EXPECT_TRUE(std::holds_alternative<Virtual>(b.ref()));
  EXPECT_EQ(Addressable(b.ref())->data(), b.data());
  EXPECT_FALSE(Addressable(FileRef{0, 0, 10}));
  Pages scattered{*region, {1, 3}, 0, 2 * kPageSize};
  EXPECT_FALSE(Addressable(scattered));
  Pages run{*region, {1, 2}, 100, kPageSize};
  ASSERT_TRUE(Addressable(run));
  EXPECT_EQ(Addressable(run)->data(), (*region)->data() + kPageSize + 100);

  Buffer moved = std::move(a);
  EXPECT_EQ(a.data(), nullptr);  // NOLINT(bugprone-use-after-move): moved-from is empty
  moved = Buffer();
  EXPECT_EQ((*arena)->pages().free_pages(), 8u);  // freed by the assignment
}

// What a read may remap (page sharing): a live Buffer's own private pages, nothing else.
TEST(BufferTest, OnlyABuffersOwnPrivateMemoryIsPrivateBufferMemory) {
  auto region = Region::Create(1 << 20, "test");
  ASSERT_TRUE(region);
  auto arena = Arena::Create(*region, 0, 1 << 20);
  ASSERT_TRUE(arena);
  Buffer in_arena = Buffer::Allocate(8192, *arena);
  ASSERT_TRUE(in_arena.shared());
  EXPECT_FALSE(InPrivateBuffer(in_arena.data(), 4096));
  Buffer own = Buffer::Allocate(3 * 4096 + 10);
  ASSERT_FALSE(own.shared());
  EXPECT_TRUE(InPrivateBuffer(own.data(), own.size()));
  EXPECT_TRUE(InPrivateBuffer(own.data() + 4096, 3 * 4096));  // the whole last page
  EXPECT_FALSE(InPrivateBuffer(own.data() + 4096, 3 * 4096 + 1));
  EXPECT_FALSE(InPrivateBuffer(own.data() - 1, 2));
  std::vector<std::byte> heap(1 << 20);
  EXPECT_FALSE(InPrivateBuffer(heap.data(), 4096));
  const std::byte* gone = own.data();
  own = Buffer();
  EXPECT_FALSE(InPrivateBuffer(gone, 1));
}

// Pages come from slabs exactly: distinct, aligned, zeroed when asked; a slab whose
// pages are all free goes back to the system (but the last one stays), and pages outlive
// the pool object.
TEST(PagePoolTest, PagesAreExactAndSlabsGoBackWhenEmpty) {
  auto pool = PagePool::Create(4 * kPageSize);
  std::vector<std::shared_ptr<std::byte>> pages;
  for (int i = 0; i < 10; ++i) {
    pages.push_back(pool->Allocate(i % 2 == 0));
    ASSERT_NE(pages.back(), nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(pages.back().get()) % kPageSize, 0u);
    if (i % 2 == 0) {
      EXPECT_TRUE(std::all_of(pages.back().get(), pages.back().get() + kPageSize,
                              [](std::byte b) { return b == std::byte{0}; }));
    }
    std::memset(pages.back().get(), i + 1, kPageSize);
  }
  EXPECT_EQ(pool->pages_in_use(), 10u);
  EXPECT_EQ(pool->slabs(), 3u);  // 4 + 4 + 2
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(pages[i].get()[kPageSize - 1], static_cast<std::byte>(i + 1)) << "page " << i;
  }
  pages.erase(pages.begin(), pages.begin() + 8);  // the first two slabs empty out
  EXPECT_EQ(pool->pages_in_use(), 2u);
  EXPECT_EQ(pool->slabs(), 1u);
  auto reused = pool->Allocate(true);  // from the remaining slab's free pages
  EXPECT_EQ(pool->slabs(), 1u);
  EXPECT_EQ(reused.get()[0], std::byte{0});
  pool.reset();  // pages keep their slab mapped
  EXPECT_EQ(pages[1].get()[0], std::byte{10});
  pages.clear();
  reused.reset();
}

}  // namespace
}  // namespace ninefold::buf
