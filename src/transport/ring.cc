// The shared ring. The doorbell protocol is Dekker's: a side about to sleep stores its
// "asleep" word and then re-reads the other side's index; a side that publishes stores
// its index and then reads the "asleep" word (both sequentially consistent), so at least
// one of them sees the other and no wake-up is lost. Futex calls are the shared (not
// private) kind: the words live in memory two processes map.
#include "ninefold/transport/ring.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cstring>
#include <ctime>

#include "fmt/format.h"

#if defined(__SANITIZE_THREAD__)
#define NINEFOLD_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define NINEFOLD_UNDER_TSAN 1
#endif
#endif
#ifdef NINEFOLD_UNDER_TSAN
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#endif

namespace ninefold::transport {
namespace {

using Clock = std::chrono::steady_clock;

// RingView::sync_key: one of these per ring id (ids that collide only add order).
uint64_t sync_keys[4096];
void* SyncKey(uint64_t id) { return &sync_keys[id % std::size(sync_keys)]; }

void TsanRelease([[maybe_unused]] void* key) {
#ifdef NINEFOLD_UNDER_TSAN
  __tsan_release(key);
#endif
}
void TsanAcquire([[maybe_unused]] void* key) {
#ifdef NINEFOLD_UNDER_TSAN
  __tsan_acquire(key);
#endif
}

void FutexWait(std::atomic<uint32_t>* word, uint32_t expected, std::chrono::microseconds nap) {
  timespec ts{static_cast<time_t>(nap.count() / 1000000),
              static_cast<long>((nap.count() % 1000000) * 1000)};
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT, expected, &ts, nullptr, 0);
}

// Rings the doorbell: an eventfd when the sleeper waits in an event loop, else the futex.
void Wake(std::atomic<uint32_t>* word, int fd) {
  if (fd >= 0) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(fd, &one, sizeof one);  // EAGAIN: already rung
    return;
  }
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, 1, nullptr, nullptr, 0);
}

// A record: length[4] pad[4] mark[8] bytes[length], starting on a cache line. Records
// share no line, so the line a consumer polls for the next record's mark is not also the
// one it is reading the last record from: measured with a getattr's frames (19 bytes one
// way, 160 back; bench/pingpong's ring row), 16-byte records took 0.63-0.74 µs a round
// trip and line-aligned ones 0.42, alternating the two builds in one process
// (docs/shm.md). Any room left before the ring's end holds a header.
constexpr uint32_t kRecordHeader = 16;
constexpr uint32_t kCacheLine = 64;
constexpr uint32_t RecordSize(uint32_t n) {
  return (kRecordHeader + n + kCacheLine - 1) & ~(kCacheLine - 1);
}

// Copies bytes [from, to) of the frame `head` then `payload` to the same offsets at `at`.
void CopyFrame(std::byte* at, std::span<const std::byte> head, std::span<const std::byte> payload,
               size_t from, size_t to) {
  if (from < head.size()) {
    size_t end = std::min(to, head.size());
    std::memcpy(at + from, head.data() + from, end - from);
    from = end;
  }
  if (from < to) std::memcpy(at + from, payload.data() + (from - head.size()), to - from);
}

// A record's position word: its last word written, and the consumer's signal. It holds
// the position's complement, so that fresh (zeroed) memory marks no record.
std::atomic_ref<uint64_t> MarkOf(std::byte* record) {
  return std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(record + 8));
}
constexpr uint64_t Mark(uint64_t position) { return ~position; }

Error Corrupt(std::string what) {
  return Error(std::errc::protocol_error, "ring corrupt: " + std::move(what));
}

bool TimedOut(Clock::time_point start, const WaitPolicy& wait) {
  return wait.timeout.count() > 0 && Clock::now() - start >= wait.timeout;
}

}  // namespace

Result<RingView> RingView::Init(std::span<std::byte> memory) {
  if (memory.size() < sizeof(RingHeader) + 64 ||
      reinterpret_cast<uintptr_t>(memory.data()) % 64 != 0) {
    return Unexpected(Error(std::errc::invalid_argument, "ring memory too small or unaligned"));
  }
  size_t room = memory.size() - sizeof(RingHeader);
  uint32_t capacity = std::bit_floor(static_cast<uint32_t>(std::min<size_t>(room, 1u << 30)));
  auto* h = new (memory.data()) RingHeader{};
  h->tail.store(0);
  h->head.store(0);
  h->consumer_asleep.store(0);
  h->producer_asleep.store(0);
  h->capacity = capacity;
  h->magic = kRingMagic;
  static std::atomic<uint64_t> next_id{0};
  h->sync_id = next_id.fetch_add(1, std::memory_order_relaxed);
  return RingView(h, memory.data() + sizeof(RingHeader), capacity, SyncKey(h->sync_id));
}

Result<RingView> RingView::Attach(std::span<std::byte> memory) {
  if (memory.size() < sizeof(RingHeader) + 64 ||
      reinterpret_cast<uintptr_t>(memory.data()) % 64 != 0) {
    return Unexpected(Error(std::errc::invalid_argument, "ring memory too small or unaligned"));
  }
  auto* h = reinterpret_cast<RingHeader*>(memory.data());
  uint32_t capacity = h->capacity;  // read once: our copy is what we trust from now on
  if (h->magic != kRingMagic) return Unexpected(Corrupt("bad magic"));
  if (capacity < 64 || !std::has_single_bit(capacity) ||
      capacity > memory.size() - sizeof(RingHeader)) {
    return Unexpected(Corrupt(fmt::format("capacity {} in {} bytes", capacity, memory.size())));
  }
  return RingView(h, memory.data() + sizeof(RingHeader), capacity, SyncKey(h->sync_id));
}

// --- producer ---------------------------------------------------------------------------

RingProducer::RingProducer(RingView ring)
    : ring_(ring),
      // The ring starts empty: the producer begins where the consumer is.
      position_(ring.header().head.load(std::memory_order_relaxed)),
      head_seen_(tail()) {}

Result<uint32_t> RingProducer::Used(uint32_t need) {
  uint32_t used = tail() - head_seen_;
  if (used <= ring_.capacity() && ring_.capacity() - used >= need) return used;
  head_seen_ = ring_.header().head.load(std::memory_order_acquire);
  used = tail() - head_seen_;
  if (used > ring_.capacity()) {
    return Unexpected(Corrupt(fmt::format("head {} is {} bytes behind tail {} (capacity {})",
                                          head_seen_, used, tail(), ring_.capacity())));
  }
  return used;
}

void RingProducer::Publish(std::byte* record, uint32_t size) {
  RingHeader& h = ring_.header();
  TsanRelease(ring_.sync_key());
  MarkOf(record).store(Mark(position_), std::memory_order_seq_cst);
  position_ += size;
  h.tail.store(tail(), std::memory_order_release);
  if (h.consumer_asleep.load(std::memory_order_seq_cst) != 0) {
    Wake(&h.consumer_asleep, wake_fd_);
    ++wakeups_;
  }
}

Result<bool> RingProducer::TryPush(std::span<const std::byte> head,
                                   std::span<const std::byte> payload) {
  size_t n = head.size() + payload.size();
  if (n > ring_.max_frame()) {
    return Unexpected(Error(std::errc::message_size,
                            fmt::format("frame of {} bytes, ring takes {}", n, ring_.max_frame())));
  }
  // A start index read from the shared header that is not aligned (a hostile peer's)
  // would put a record header across the ring's end.
  if (tail() % kCacheLine != 0) {
    return Unexpected(Corrupt(fmt::format("tail {} is not {}-aligned", tail(), kCacheLine)));
  }
  uint32_t cap = ring_.capacity();
  uint32_t record = RecordSize(static_cast<uint32_t>(n));
  uint32_t pos = tail() & (cap - 1);
  uint32_t contiguous = cap - pos;
  uint32_t need = record <= contiguous ? record : contiguous + record;
  Result<uint32_t> used = Used(need);
  if (!used) return Unexpected(used.error());
  if (cap - *used < need) return false;
  if (record > contiguous) {
    uint32_t marker = kWrapMarker;
    std::memcpy(ring_.data() + pos, &marker, 4);
    Publish(ring_.data() + pos, contiguous);
    pos = 0;
  }
  auto len = static_cast<uint32_t>(n);
  std::byte* at = ring_.data() + pos;
  // The consumer watches the mark's cache line: the record's other lines are written
  // first, and that line last, in one burst, so it changes hands once (not once for the
  // length and again for the mark, with the consumer's polling read in between).
  const size_t first = std::min<size_t>(n, kCacheLine - kRecordHeader);
  CopyFrame(at + kRecordHeader, head, payload, first, n);
  CopyFrame(at + kRecordHeader, head, payload, 0, first);
  std::memcpy(at, &len, 4);
  Publish(at, record);
  return true;
}

Result<void> RingProducer::Push(std::span<const std::byte> head, std::span<const std::byte> payload,
                                const WaitPolicy& wait) {
  auto start = Clock::now();
  RingHeader& h = ring_.header();
  for (uint32_t spins = 0;; ++spins) {
    Result<bool> pushed = TryPush(head, payload);
    if (!pushed) return Unexpected(pushed.error());
    if (*pushed) return {};
    if (spins < wait.spin) {
      CpuRelax();
      continue;
    }
    h.producer_asleep.store(1, std::memory_order_seq_cst);
    pushed = TryPush(head, payload);
    if (!pushed || *pushed) {
      h.producer_asleep.store(0, std::memory_order_relaxed);
      if (!pushed) return Unexpected(pushed.error());
      return {};
    }
    FutexWait(&h.producer_asleep, 1, wait.nap);
    h.producer_asleep.store(0, std::memory_order_relaxed);
    if (TimedOut(start, wait)) {
      return Unexpected(Error(std::errc::timed_out, "ring full: the peer does not consume"));
    }
  }
}

// --- consumer ---------------------------------------------------------------------------

RingConsumer::RingConsumer(RingView ring)
    : ring_(ring), position_(ring.header().head.load(std::memory_order_relaxed)) {}

bool RingConsumer::Marked() const {
  uint64_t next = position_ + pending_;
  std::byte* record = ring_.data() + (static_cast<uint32_t>(next) & (ring_.capacity() - 1));
  return MarkOf(record).load(std::memory_order_seq_cst) == Mark(next);
}

Result<RingConsumer::Next> RingConsumer::TryPeek() {
  NINEFOLD_CHECK(pending_ == 0);  // Pop the previous frame first
  // As in TryPush: our index started as the shared header's, and must be aligned.
  if (head() % kCacheLine != 0) {
    return Unexpected(Corrupt(fmt::format("head {} is not {}-aligned", head(), kCacheLine)));
  }
  uint32_t cap = ring_.capacity();
  for (;;) {
    if (!Marked()) return Next{};
    uint32_t pos = head() & (cap - 1);
    std::byte* record = ring_.data() + pos;
    TsanAcquire(ring_.sync_key());
    uint32_t len;
    std::memcpy(&len, record, 4);  // read once
    if (len == kWrapMarker) {
      uint32_t skip = cap - pos;
      position_ += skip;
      ring_.header().head.store(head(), std::memory_order_release);
      continue;
    }
    if (len > ring_.max_frame()) {
      return Unexpected(
          Corrupt(fmt::format("record of {} bytes (max {})", len, ring_.max_frame())));
    }
    uint32_t size = RecordSize(len);
    if (size > cap - pos) {
      return Unexpected(
          Corrupt(fmt::format("record of {} bytes at {} crosses the end ({})", len, pos, cap)));
    }
    pending_ = size;
    return Next{true, std::span<const std::byte>(record + kRecordHeader, len)};
  }
}

Result<bool> RingConsumer::HasData() const {
  if (Marked()) return true;
  // The tail is stored after each record's mark, so it may lag behind what we consumed;
  // one ahead of us means its record's mark is visible too.
  uint32_t tail = ring_.header().tail.load(std::memory_order_acquire);
  const uint32_t next = head() + pending_;
  if (static_cast<int32_t>(tail - next) <= 0) return false;
  if (Marked()) return true;
  return Unexpected(
      Corrupt(fmt::format("tail {} has passed head {}, whose record is not marked", tail, next)));
}

Result<std::span<const std::byte>> RingConsumer::Wait(const WaitPolicy& wait) {
  auto start = Clock::now();
  RingHeader& h = ring_.header();
  for (uint32_t spins = 0;; ++spins) {
    Result<Next> next = TryPeek();
    if (!next) return Unexpected(next.error());
    if (next->ready) return next->frame;
    if (spins < wait.spin) {
      CpuRelax();
      continue;
    }
    h.consumer_asleep.store(1, std::memory_order_seq_cst);
    Result<bool> ready = HasData();
    if (!ready || *ready) {
      h.consumer_asleep.store(0, std::memory_order_relaxed);
      if (!ready) return Unexpected(ready.error());
      continue;
    }
    ++sleeps_;
    FutexWait(&h.consumer_asleep, 1, wait.nap);
    h.consumer_asleep.store(0, std::memory_order_relaxed);
    if (TimedOut(start, wait)) {
      return Unexpected(Error(std::errc::timed_out, "ring empty: the peer sends nothing"));
    }
  }
}

void RingConsumer::Pop() {
  if (pending_ == 0) return;
  position_ += pending_;
  pending_ = 0;
  RingHeader& h = ring_.header();
  h.head.store(head(), std::memory_order_seq_cst);
  if (h.producer_asleep.load(std::memory_order_seq_cst) != 0) Wake(&h.producer_asleep, wake_fd_);
}

}  // namespace ninefold::transport
