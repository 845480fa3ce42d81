// BufferPool (src/fuse/buffer_pool.h): size classes, reuse, the limit on kept bytes, and
// buffers that outlive the pool's other owners.
#include "src/fuse/buffer_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "ninefold/buf/region.h"

namespace ninefold::fuse::internal {
namespace {

// An allocator that records every size it was asked for.
struct CountingAllocator {
  std::shared_ptr<std::vector<size_t>> sizes = std::make_shared<std::vector<size_t>>();
  BufferPool::Allocator Get() const {
    return [sizes = sizes](size_t size) {
      sizes->push_back(size);
      return buf::Buffer::Allocate(size);
    };
  }
};

TEST(BufferPoolTest, TakeGivesExactlyTheSizeFromAPowerOfTwoBuffer) {
  CountingAllocator alloc;
  auto pool = BufferPool::Create(alloc.Get(), 16 << 20);
  PooledBytes a = pool->Take(100);
  EXPECT_EQ(a.bytes.size(), 100u);
  PooledBytes b = pool->Take(buf::kPageSize + 1);
  EXPECT_EQ(b.bytes.size(), buf::kPageSize + 1);
  PooledBytes c = pool->Take(1u << 20);
  EXPECT_EQ(c.bytes.size(), 1u << 20);
  // At least a page; otherwise the next power of two.
  EXPECT_EQ(*alloc.sizes, (std::vector<size_t>{buf::kPageSize, 2 * buf::kPageSize, 1u << 20}));
  // Every byte is usable.
  std::fill(c.bytes.begin(), c.bytes.end(), std::byte{0x5a});
  EXPECT_EQ(c.bytes.back(), std::byte{0x5a});
}

TEST(BufferPoolTest, AReturnedBufferServesTheNextRequestOfItsClass) {
  CountingAllocator alloc;
  auto pool = BufferPool::Create(alloc.Get(), 16 << 20);
  std::byte* first;
  {
    PooledBytes a = pool->Take(60000);
    first = a.bytes.data();
  }                                       // back to the pool
  PooledBytes again = pool->Take(65536);  // same class (64 KiB)
  EXPECT_EQ(again.bytes.data(), first);
  EXPECT_EQ(alloc.sizes->size(), 1u);
  PooledBytes other = pool->Take(70000);  // the next class: a new buffer
  EXPECT_NE(other.bytes.data(), first);
  EXPECT_EQ(alloc.sizes->size(), 2u);
}

TEST(BufferPoolTest, TheLastReturnedIsTheFirstReused) {
  CountingAllocator alloc;
  auto pool = BufferPool::Create(alloc.Get(), 16 << 20);
  std::byte* second;
  {
    PooledBytes a = pool->Take(4096);
    PooledBytes b = pool->Take(4096);
    second = b.bytes.data();
    a = {};  // a goes back first, then b
  }
  EXPECT_EQ(pool->Take(4096).bytes.data(), second);
}

TEST(BufferPoolTest, KeepsNoMoreThanItsLimit) {
  CountingAllocator alloc;
  auto pool = BufferPool::Create(alloc.Get(), 2 * buf::kPageSize);
  {
    PooledBytes a = pool->Take(buf::kPageSize);
    PooledBytes b = pool->Take(buf::kPageSize);
    PooledBytes c = pool->Take(buf::kPageSize);
  }  // two are kept, the third is freed
  EXPECT_EQ(alloc.sizes->size(), 3u);
  PooledBytes a = pool->Take(buf::kPageSize);
  PooledBytes b = pool->Take(buf::kPageSize);
  EXPECT_EQ(alloc.sizes->size(), 3u);
  PooledBytes c = pool->Take(buf::kPageSize);
  EXPECT_EQ(alloc.sizes->size(), 4u);
  // A buffer larger than the whole limit is never kept.
  { PooledBytes big = pool->Take(1u << 20); }
  PooledBytes big = pool->Take(1u << 20);
  EXPECT_EQ(alloc.sizes->size(), 6u);
}

TEST(BufferPoolTest, BytesOutliveTheirTaker) {
  CountingAllocator alloc;
  auto pool = BufferPool::Create(alloc.Get(), 16 << 20);
  PooledBytes held = pool->Take(8192);
  std::weak_ptr<BufferPool> weak = pool;
  pool.reset();  // the held buffer keeps the pool alive until it is returned
  EXPECT_FALSE(weak.expired());
  held.bytes[0] = std::byte{1};
  held = {};
  EXPECT_TRUE(weak.expired());
}

TEST(BufferPoolTest, ThreadsNeverShareABuffer) {
  auto pool = BufferPool::Create([](size_t n) { return buf::Buffer::Allocate(n); }, 64 << 20);
  constexpr int kThreads = 4;
  constexpr int kRounds = 2000;
  std::vector<std::thread> threads;
  std::atomic<int> clashes{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        PooledBytes p = pool->Take(4096 << (i % 3));
        auto mark = static_cast<std::byte>(t + 1);
        std::fill(p.bytes.begin(), p.bytes.end(), mark);
        for (std::byte b : p.bytes) {
          if (b != mark) {
            clashes++;
            break;
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(clashes.load(), 0) << "a buffer was handed to two takers at once";
}

}  // namespace
}  // namespace ninefold::fuse::internal
