// A single-producer / single-consumer ring of frames in shared memory, with futex
// doorbells that are rung only when the other side sleeps. The building block of the
// shm transport: one ring per direction.
//
//   Result<RingView> ring = RingView::Init(region_bytes);     // creator formats it
//   RingView peer_side = *RingView::Attach(same_bytes);      // the peer, in its mapping
//   RingProducer tx(*ring);  RingConsumer rx(peer_side);
//   tx.Push(head, payload, {.spin = 2000});                   // blocks while full
//   Result<std::span<const std::byte>> f = rx.Wait({.spin = 2000});  // blocks while empty
//   Use(*f);  rx.Pop();
//
// Layout: a 192-byte header (producer line: tail + the consumer's sleep word; consumer
// line: head + the producer's sleep word; a constant line: magic and capacity) then
// `capacity` bytes of records: length[4] pad[4] mark[8] bytes[length], each starting on a
// cache line (64 bytes).
// A record never wraps; a length of kWrapMarker sends the reader to the start. A record's
// mark (the complement of its position, its start in bytes ever written: 64 bits, it
// never repeats, and zeroed memory marks nothing) is stored last: the consumer polls the
// mark of the record it expects next, not the producer's tail, so a frame crosses between
// cores as its own cache lines and nothing more. The tail is kept for a consumer about to
// sleep (a tail past a record that is not marked is corrupt). Each side keeps the other's
// index as last read and re-reads it only when it must.
//
// Nothing in the ring is trusted: the indices, lengths, marks and sleep words may be
// scribbled on by a hostile peer at any moment. Every read is validated (EPROTO "ring
// corrupt: ...") and never leads outside the ring; a frame handed out is a span inside
// the ring, whose bytes the peer could still change — copy it before parsing what must
// stay consistent.
// Sleeps are bounded (a peer that never rings cannot make us sleep more than `nap`
// at a time), so a liar costs latency, never a hang; dead peers are noticed by the
// transport, not here.
//
// Threading: one thread produces and one consumes on each side of a ring (SPSC).
#ifndef NINEFOLD_TRANSPORT_RING_H_
#define NINEFOLD_TRANSPORT_RING_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>

#include "ninefold/base/result.h"

namespace ninefold::transport {

// One iteration of a spinning wait: tells the CPU so (x86 PAUSE), sparing the sibling
// hyperthread and the memory bus.
inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

struct RingHeader {
  // Producer's cache line.
  alignas(64) std::atomic<uint32_t> tail;  // bytes published, free-running
  std::atomic<uint32_t> consumer_asleep;   // futex word: 1 while the consumer sleeps
  // Consumer's cache line.
  alignas(64) std::atomic<uint32_t> head;  // bytes consumed, free-running
  std::atomic<uint32_t> producer_asleep;   // futex word: 1 while the producer waits for room
  // Written once by the creator.
  alignas(64) uint32_t magic;
  uint32_t capacity;
  uint64_t sync_id;  // only names the ring to ThreadSanitizer (see RingView::sync_key)
};
static_assert(sizeof(RingHeader) == 192);
static_assert(std::atomic<uint32_t>::is_always_lock_free);

constexpr uint32_t kRingMagic = 0x9f01d001;
constexpr uint32_t kWrapMarker = 0xffffffff;

// How long to spin, then how long each futex sleep may last before re-checking.
struct WaitPolicy {
  uint32_t spin = 2000;  // polls before sleeping (0: sleep at once)
  std::chrono::microseconds nap{100000};
  // Give up after this long (zero: never): ETIMEDOUT.
  std::chrono::milliseconds timeout{0};
};

// A ring laid out in `memory` (both sides hold one; it does not own the memory).
class RingView {
 public:
  // Formats `memory` (size: header + a power-of-two capacity >= 64). EINVAL otherwise.
  [[nodiscard]] static Result<RingView> Init(std::span<std::byte> memory);
  // Uses a ring the peer formatted; checks magic and that capacity fits `memory`.
  [[nodiscard]] static Result<RingView> Attach(std::span<std::byte> memory);
  // Bytes a ring with `capacity` record bytes occupies.
  static constexpr size_t Footprint(uint32_t capacity) { return sizeof(RingHeader) + capacity; }

  RingHeader& header() const { return *header_; }
  std::byte* data() const { return data_; }
  uint32_t capacity() const { return capacity_; }  // our copy: never re-read from the peer
  // The largest frame that fits.
  uint32_t max_frame() const { return capacity_ / 2 - 16; }
  // For ThreadSanitizer builds: an address both sides' views of this ring agree on, even
  // in two mappings of it in one process (tests), where publishing releases and peeking
  // acquires. TSan cannot tell that two mappings are one memory, so without it the order
  // the ring gives (a buffer written, then a frame naming it) looks like a race.
  void* sync_key() const { return sync_key_; }

 private:
  RingView(RingHeader* h, std::byte* d, uint32_t c, void* key)
      : header_(h), data_(d), capacity_(c), sync_key_(key) {}
  RingHeader* header_;
  std::byte* data_;
  uint32_t capacity_;
  void* sync_key_;
};

class RingProducer {
 public:
  explicit RingProducer(RingView ring);
  // Appends one frame (head then payload) if there is room: true; false when full.
  // EMSGSIZE for a frame larger than max_frame(); EPROTO when the peer broke the ring.
  [[nodiscard]] Result<bool> TryPush(std::span<const std::byte> head,
                                     std::span<const std::byte> payload = {});
  // Waits (spin, then sleep) for room, then appends.
  // As RingConsumer::SetAsleep, for a producer waiting for room in an event loop.
  void SetWaitingForRoom(bool waiting) {
    ring_.header().producer_asleep.store(waiting ? 1 : 0, std::memory_order_seq_cst);
  }
  [[nodiscard]] Result<void> Push(std::span<const std::byte> head,
                                  std::span<const std::byte> payload, const WaitPolicy& wait);
  // Wakes a sleeping consumer by writing this eventfd instead of a futex wake (for a
  // consumer that sleeps in an event loop). -1: futex.
  void set_wake_fd(int fd) { wake_fd_ = fd; }
  uint64_t wakeups_sent() const { return wakeups_; }

 private:
  // Bytes in use, from the cached head unless that leaves less than `need` free.
  Result<uint32_t> Used(uint32_t need);
  // Marks the record at `record` (`size` bytes) published and rings if the peer sleeps.
  void Publish(std::byte* record, uint32_t size);
  // The ring's tail: bytes published, as the header's 32-bit index (ours; the shared copy
  // is only written).
  uint32_t tail() const { return static_cast<uint32_t>(position_); }
  RingView ring_;
  uint64_t position_;  // the next record's position (bytes ever published), its mark's source
  // The consumer's index as last read: re-read only when it leaves too little room, so a
  // push does not pull the consumer's cache line over on every frame.
  uint32_t head_seen_;
  int wake_fd_ = -1;
  uint64_t wakeups_ = 0;
};

class RingConsumer {
 public:
  explicit RingConsumer(RingView ring);
  // The next frame, if one is ready; EPROTO when the ring is corrupt. The frame stays
  // in the ring (and valid) until Pop().
  struct Next {
    bool ready = false;
    std::span<const std::byte> frame;
  };
  [[nodiscard]] Result<Next> TryPeek();
  // Waits (spin, then sleep) for a frame.
  [[nodiscard]] Result<std::span<const std::byte>> Wait(const WaitPolicy& wait);
  // Whether a frame is ready (after the one handed out, if any). For the re-check before
  // sleeping: unlike TryPeek it also reads the producer's tail, and a tail that has
  // passed a record the producer never marked is EPROTO (else it would wait forever).
  [[nodiscard]] Result<bool> HasData() const;
  // Whether the next frame is ready, from its mark alone: the cheapest poll (one cache
  // line, no check of the record), for spinning between TryPeek calls.
  bool Ready() const { return Marked(); }
  // Releases the frame last returned, and wakes a producer waiting for room.
  void Pop();
  // As RingProducer::set_wake_fd, for waking a producer that waits for room.
  void set_wake_fd(int fd) { wake_fd_ = fd; }
  // For consumers that sleep elsewhere (an event loop): announce the sleep, then re-check
  // with TryPeek before sleeping; clear it on waking.
  void SetAsleep(bool asleep) {
    ring_.header().consumer_asleep.store(asleep ? 1 : 0, std::memory_order_seq_cst);
  }
  uint64_t sleeps() const { return sleeps_; }

 private:
  RingView ring_;
  int wake_fd_ = -1;
  // The record expected next (after the one handed out, if any) carries its position's
  // mark: it is published.
  bool Marked() const;
  // The ring's head: bytes consumed, as the header's 32-bit index.
  uint32_t head() const { return static_cast<uint32_t>(position_); }
  uint64_t position_;     // bytes consumed, in 64 bits: the next record's position
  uint32_t pending_ = 0;  // bytes of the frame handed out, released by Pop
  uint64_t sleeps_ = 0;
};

}  // namespace ninefold::transport

#endif  // NINEFOLD_TRANSPORT_RING_H_
