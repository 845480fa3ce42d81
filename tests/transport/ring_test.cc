// The shared ring: frames in order and intact across wrap-around, full and empty
// behaviour, both doorbell paths (spinning and sleeping) between two threads, and a
// hostile peer scribbling over the whole ring while traffic runs.
#include "ninefold/transport/ring.h"

#include <atomic>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace ninefold::transport {
namespace {

// Ring memory on the heap, sized exactly, so ASan catches any access outside it. Zeroed,
// as a fresh shared region is: heap memory may still hold an earlier test's ring (a
// valid header, records whose marks match a new ring's positions).
struct RingMemory {
  explicit RingMemory(uint32_t capacity)
      : bytes(static_cast<std::byte*>(
            ::operator new (RingView::Footprint(capacity), std::align_val_t{64}))),
        size(RingView::Footprint(capacity)) {
    std::memset(bytes, 0, size);
  }
  ~RingMemory() { ::operator delete (bytes, std::align_val_t{64}); }
  std::span<std::byte> span() const { return {bytes, size}; }
  std::byte* bytes;
  size_t size;
};

std::vector<std::byte> Pattern(uint32_t seq, size_t n) {
  std::vector<std::byte> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((seq * 131 + i) & 0xff);
  return v;
}

TEST(RingTest, AttachChecksMagicAndCapacity) {
  RingMemory mem(1024);
  EXPECT_FALSE(RingView::Attach(mem.span()));  // not formatted: bad magic
  ASSERT_TRUE(RingView::Init(mem.span()));
  auto ok = RingView::Attach(mem.span());
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->capacity(), 1024u);
  reinterpret_cast<RingHeader*>(mem.bytes)->capacity = 1 << 20;  // larger than the memory
  auto bad = RingView::Attach(mem.span());
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), std::errc::protocol_error);
  reinterpret_cast<RingHeader*>(mem.bytes)->capacity = 1000;  // not a power of two
  EXPECT_FALSE(RingView::Attach(mem.span()));
}

// A peer that sets the indices before the other side attaches (the ring memory is
// shared) can leave them unaligned, e.g. 2 bytes before the ring's end: a length word
// there would cross the end. Both sides refuse instead (found by the scribbling test).
TEST(RingTest, UnalignedStartIndicesAreRefused) {
  RingMemory mem(1024);
  auto ring = RingView::Init(mem.span());
  ASSERT_TRUE(ring);
  auto& h = reinterpret_cast<RingHeader*>(mem.bytes)[0];
  h.tail.store(1022);
  h.head.store(1022);
  RingProducer tx(*ring);
  std::vector<std::byte> f(16);
  auto pushed = tx.TryPush(f, {});
  ASSERT_FALSE(pushed);
  EXPECT_EQ(pushed.error().code(), std::errc::protocol_error);
  h.tail.store(1030);  // 8 bytes "published" from the unaligned head
  RingConsumer rx(*ring);
  auto peeked = rx.TryPeek();
  ASSERT_FALSE(peeked);
  EXPECT_EQ(peeked.error().code(), std::errc::protocol_error);
}

TEST(RingTest, FramesSurviveWrapAroundInOrder) {
  RingMemory mem(1024);
  auto ring = RingView::Init(mem.span());
  ASSERT_TRUE(ring);
  RingProducer tx(*ring);
  RingConsumer rx(*RingView::Attach(mem.span()));
  std::mt19937 rng(7);
  uint32_t sent = 0, received = 0;
  while (received < 5000) {
    // Fill until full, then drain a random number: the tail passes the end many times.
    for (;;) {
      size_t n = rng() % 200;
      auto frame = Pattern(sent, n);
      auto head = std::span(frame).first(std::min<size_t>(n, 7));
      auto payload = std::span(frame).subspan(head.size());
      auto pushed = tx.TryPush(head, payload);
      ASSERT_TRUE(pushed) << pushed.error().ToString();
      if (!*pushed) break;
      ++sent;
    }
    for (uint32_t k = rng() % 8 + 1; k > 0 && received < sent; --k) {
      auto next = rx.TryPeek();
      ASSERT_TRUE(next && next->ready);
      auto want = Pattern(received, next->frame.size());
      ASSERT_TRUE(std::equal(want.begin(), want.end(), next->frame.begin(), next->frame.end()))
          << received;
      rx.Pop();
      ++received;
    }
  }
}

// The consumer polls the record it expects next (its mark), not the producer's tail: a
// tail that lags behind (it is stored after the mark) is no error and hides nothing; a
// tail ahead of a record that was never marked is corruption, reported by the re-check
// before sleeping instead of a wait that would never end. Zeroed memory marks nothing.
TEST(RingTest, RecordsAreFoundByTheirMarkNotByTheTail) {
  RingMemory mem(1024);
  std::memset(mem.bytes, 0, mem.size);
  auto ring = RingView::Init(mem.span());
  ASSERT_TRUE(ring);
  auto& h = reinterpret_cast<RingHeader*>(mem.bytes)[0];
  RingProducer tx(*ring);
  RingConsumer rx(*RingView::Attach(mem.span()));
  auto none = rx.TryPeek();
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->ready) << "zeroed memory read as a record";
  ASSERT_TRUE(rx.HasData());
  EXPECT_FALSE(*rx.HasData());

  auto frame = Pattern(1, 40);
  ASSERT_TRUE(*tx.TryPush(frame, {}));
  h.tail.store(0);  // as if the tail's store had not arrived yet
  ASSERT_TRUE(rx.HasData());
  EXPECT_TRUE(*rx.HasData());
  auto next = rx.TryPeek();
  ASSERT_TRUE(next && next->ready);
  EXPECT_TRUE(std::equal(frame.begin(), frame.end(), next->frame.begin(), next->frame.end()));
  rx.Pop();
  ASSERT_TRUE(rx.HasData()) << rx.HasData().error().ToString();  // the lagging tail
  EXPECT_FALSE(*rx.HasData());

  h.tail.store(h.head.load() + 64);  // "published", but no record is marked there
  auto corrupt = rx.HasData();
  ASSERT_FALSE(corrupt);
  EXPECT_EQ(corrupt.error().code(), std::errc::protocol_error);
  WaitPolicy wait{.spin = 10, .timeout = std::chrono::seconds(5)};
  auto waited = rx.Wait(wait);
  ASSERT_FALSE(waited);
  EXPECT_EQ(waited.error().code(), std::errc::protocol_error);
}

TEST(RingTest, OversizedFrameIsRefused) {
  RingMemory mem(256);
  auto ring = RingView::Init(mem.span());
  RingProducer tx(*ring);
  std::vector<std::byte> big(ring->max_frame() + 1);
  auto r = tx.TryPush(big);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), std::errc::message_size);
  EXPECT_TRUE(*tx.TryPush(std::span(big).first(ring->max_frame())));
}

// Two threads, 50k frames, checked in order; `spin` 0 forces the futex path each time.
void RunPingStream(uint32_t spin) {
  RingMemory mem(4096);
  auto ring = RingView::Init(mem.span());
  ASSERT_TRUE(ring);
  constexpr uint32_t kFrames = 50000;
  WaitPolicy wait{.spin = spin, .timeout = std::chrono::seconds(30)};
  std::thread producer([&] {
    RingProducer tx(*ring);
    for (uint32_t i = 0; i < kFrames; ++i) {
      auto f = Pattern(i, 4 + i % 300);
      std::memcpy(f.data(), &i, 4);
      ASSERT_TRUE(tx.Push(f, {}, wait));
    }
  });
  RingConsumer rx(*ring);
  for (uint32_t i = 0; i < kFrames; ++i) {
    auto f = rx.Wait(wait);
    ASSERT_TRUE(f) << f.error().ToString();
    ASSERT_EQ(f->size(), 4 + i % 300);
    uint32_t seq;
    std::memcpy(&seq, f->data(), 4);
    ASSERT_EQ(seq, i);
    rx.Pop();
  }
  producer.join();
}

TEST(RingTest, TwoThreadsSpinning) { RunPingStream(5000); }
TEST(RingTest, TwoThreadsSleeping) { RunPingStream(0); }

// A hostile peer writes random values over the whole ring (header and records) while a
// producer and a consumer run. They may see errors — never a crash, an access outside
// the ring (ASan), or a wait longer than their timeout.
TEST(RingHostileTest, ScribblingPeerCausesErrorsNotCrashes) {
  RingMemory mem(4096);
  auto ring = RingView::Init(mem.span());
  ASSERT_TRUE(ring);
  std::atomic<bool> stop{false};
  std::thread scribbler([&] {
    std::mt19937 rng(1);
    auto* words = reinterpret_cast<std::atomic<uint32_t>*>(mem.bytes);
    size_t n = mem.size / 4;
    while (!stop.load()) {
      words[rng() % n].store(rng() % 4 == 0 ? 0xffffffff : rng(), std::memory_order_relaxed);
    }
  });
  WaitPolicy wait{.spin = 100,
                  .nap = std::chrono::microseconds(1000),
                  .timeout = std::chrono::milliseconds(20)};
  size_t errors = 0, frames = 0;
  std::thread producer([&] {
    RingProducer tx(*ring);
    std::vector<std::byte> f(100);
    for (int i = 0; i < 20000; ++i) {
      if (!tx.Push(f, {}, wait)) ++errors;
    }
  });
  RingConsumer rx(*ring);
  for (int i = 0; i < 20000; ++i) {
    auto f = rx.Wait(wait);
    if (!f) {
      ++errors;
      continue;
    }
    // Touch every byte handed out: it must lie inside the ring (ASan would report).
    volatile std::byte sink{};
    for (std::byte b : *f) sink = b;
    (void)sink;
    rx.Pop();
    ++frames;
  }
  producer.join();
  stop = true;
  scribbler.join();
  EXPECT_GT(errors, 0u) << "the scribbler should have broken the ring at least once";
  std::printf("hostile ring: %zu frames, %zu errors\n", frames, errors);
}

}  // namespace
}  // namespace ninefold::transport
