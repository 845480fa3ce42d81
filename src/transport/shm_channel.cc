// The shm!/PATH transport: see shm.h for the protocol.
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <iterator>
#include <mutex>
#include <utility>

#include "asio/bind_executor.hpp"
#include "asio/dispatch.hpp"
#include "asio/local/stream_protocol.hpp"
#include "asio/posix/stream_descriptor.hpp"
#include "asio/post.hpp"
#include "asio/steady_timer.hpp"
#include "asio/strand.hpp"
#include "fmt/format.h"
#include "ninefold/base/errc.h"
#include "ninefold/base/log.h"
#include "ninefold/buf/region.h"
#include "ninefold/transport/ring.h"
#include "shm.h"

namespace ninefold::transport {
namespace {

using Clock = std::chrono::steady_clock;
using stream_protocol = asio::local::stream_protocol;

// Each ring holds frames up to 2 MiB (max_frame = capacity / 2 - 8): msize 1 MiB fits.
constexpr uint32_t kRingCapacity = 4u << 20;
// The longest a sleeping receiver goes without looking at its ring.
constexpr auto kNap = std::chrono::milliseconds(100);
// Queue pairs per connection unless the listener or NINEFOLD_SHM_QUEUES says otherwise:
// one, since more measured no gain on a 2-core machine (docs/shm.md, "Queue pairs").
constexpr uint32_t kDefaultShmQueues = 1;
// How long one Poll handler keeps polling an empty ring before it lets the io thread run
// other handlers: short, since those (other connections on a server's io thread) wait.
constexpr auto kSpinInPlace = std::chrono::microseconds(5);

Error Errno(int err, std::string context) {
  return Error(std::error_code(err, std::generic_category()), std::move(context));
}

uint32_t RingBytes() {
  size_t n = RingView::Footprint(kRingCapacity);
  return static_cast<uint32_t>((n + buf::kPageSize - 1) / buf::kPageSize * buf::kPageSize);
}

// One message received from `socket` with its descriptors: at most `size` bytes into
// `body`; the first fds.size() descriptors into `fds` (close-on-exec), any more closed.
struct ReceivedMessage {
  size_t bytes = 0;
  size_t fds = 0;  // descriptors that came, kept or not
  int flags = 0;   // msg_flags: MSG_TRUNC, MSG_CTRUNC
};
Result<ReceivedMessage> ReceiveWithFds(int socket, void* body, size_t size, std::span<int> fds,
                                       int flags) {
  alignas(cmsghdr) char control[CMSG_SPACE(8 * sizeof(int))] = {};
  iovec iov{body, size};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC | flags);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Unexpected(Errno(errno, "recvmsg"));
  ReceivedMessage r{.bytes = static_cast<size_t>(n), .fds = 0, .flags = msg.msg_flags};
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < k; ++i, ++r.fds) {
      int got;
      std::memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof got);
      if (r.fds < fds.size()) {
        fds[r.fds] = got;
      } else {
        ::close(got);
      }
    }
  }
  return r;
}

// One queue pair: a ring each way and a pages socket. Frames on one queue keep their
// order; queues carry no order between them.
struct QueueRings {
  RingView rx;
  RingView tx;
  int pages_fd = -1;  // our end of this queue's pages socket (or -1)
};

// A thread's queue on a client with several: threads take queues in turn as they first
// send, so that concurrent senders rarely share a ring (or its lock).
uint32_t ThreadSlot() {
  static std::atomic<uint32_t> next{0};
  thread_local const uint32_t slot = next.fetch_add(1, std::memory_order_relaxed);
  return slot;
}

constexpr uint8_t kTflush = 108;  // 9P message type (the transport does not link the codec)

class ShmChannel final : public Channel, public std::enable_shared_from_this<ShmChannel> {
  // One queue pair as this side uses it.
  struct Queue {
    explicit Queue(const QueueRings& r) : rx(r.rx), tx(r.tx), pages_fd(r.pages_fd) {}
    RingConsumer rx;  // Poll's (one chain at a time)
    RingProducer tx;  // guarded by mu
    const int pages_fd;
    mutable std::mutex mu;
    std::deque<OutFrame> pending;   // guarded by mu: frames waiting for ring room
    size_t queued = 0;              // guarded by mu
    bool waiting_for_room = false;  // guarded by mu: tx's "producer asleep" word is set
  };

 public:
  ShmChannel(asio::io_context& io, stream_protocol::socket socket,
             std::shared_ptr<buf::Region> region, std::shared_ptr<buf::Arena> arena,
             const std::vector<QueueRings>& rings, int my_wake_fd, int peer_wake_fd,
             bool takes_pages, std::string peer)
      : io_(io),
        strand_(asio::make_strand(io)),
        socket_(std::move(socket)),
        region_(std::move(region)),
        arena_(std::move(arena)),
        wake_(strand_, my_wake_fd),
        wake_fd_(my_wake_fd),
        peer_wake_fd_(peer_wake_fd),
        takes_pages_(takes_pages),
        nap_(strand_),
        peer_(std::move(peer)),
        spin_(ShmSpin()) {
    NINEFOLD_CHECK(!rings.empty() && rings.size() <= kMaxShmQueues);
    for (const QueueRings& r : rings) {
      queues_.push_back(std::make_unique<Queue>(r));
      queues_.back()->rx.set_wake_fd(peer_wake_fd_);
      queues_.back()->tx.set_wake_fd(peer_wake_fd_);
    }
    if (queues_.size() > 1) tag_queue_ = std::make_unique<std::atomic<uint8_t>[]>(65536);
  }
  ~ShmChannel() override {
    ReleaseFramePages();  // a record whose frame was refused after TakePages
    ::close(peer_wake_fd_);
    for (auto& q : queues_) {
      if (q->pages_fd >= 0) ::close(q->pages_fd);
    }
  }

  void Start(FrameHandler on_frame, CloseHandler on_close) override {
    on_frame_ = std::move(on_frame);
    {
      std::lock_guard lock(mu_);
      on_close_ = std::move(on_close);
    }
    WatchSocket();
    idle_since_ = Clock::now();
    asio::post(io_, [self = shared_from_this()] { self->Poll(); });
  }
  void SetMaxFrame(uint32_t max_frame) override { max_frame_.store(max_frame); }
  void PauseReading() override { paused_.store(true); }
  void ResumeReading() override { paused_.store(false); }

  void Send(OutFrame frame) override {
    if (closed_.load()) return;
    if (!frame.payload.empty() || !frame.placement.empty() || frame.pages.fd >= 0 ||
        frame.spliced || frame.accepts_pipe) {
      SendWithExtras(frame);
    } else {
      SendPlain(frame);
    }
    // In the ring now (or moved to a queue's pending frames, which leaves it empty): the
    // head's buffer is this thread's to reuse.
    RecycleFrameBuffer(std::move(frame.head));
  }

  // One frame with a payload, pages, a pipe, a placement, or that accepts a pipe.
  void SendWithExtras(OutFrame& frame) {
    Queue& q = QueueFor(frame.head);
    std::lock_guard lock(q.mu);
    if (frame.pages.fd >= 0) {
      // The descriptor goes ahead of the record that names it, on the same queue; when
      // it cannot go now (the client is not taking them: its socket is full), the
      // payload is sent.
      if (HandOver(q, frame.pages.fd, frame.pages.offset, frame.pages.length)) {
        frame.payload = {};
      } else {
        frame.pages = {};
      }
    }
    if (frame.spliced) {
      if (Result<void> ok = SendSplicedLocked(q, frame); !ok) return FailLater(ok.error());
    }
    SendOneLocked(q, frame.head, frame, &frame);
  }

  // `head` may hold several whole frames back to back: one ring record each, on each
  // one's queue (locked once for a run of frames on the same queue).
  void SendPlain(OutFrame& frame) {
    static const OutFrame kPlain;
    std::span<const std::byte> rest = frame.head;
    std::unique_lock<std::mutex> lock;
    while (rest.size() >= 4) {
      uint32_t size;
      std::memcpy(&size, rest.data(), 4);
      if (size < 7 || size > rest.size()) {
        return FailLater(
            Error(std::errc::invalid_argument,
                  fmt::format("sending a frame of {} bytes with {} left", size, rest.size())));
      }
      Queue& q = QueueFor(rest.first(size));
      if (lock.mutex() != &q.mu) {
        if (lock.owns_lock()) lock.unlock();  // never two queues' locks at once
        lock = std::unique_lock(q.mu);
      }
      SendOneLocked(q, rest.first(size), kPlain, size == frame.head.size() ? &frame : nullptr);
      rest = rest.subspan(size);
    }
  }

  // Sends descriptor `fd` with a note of offset and length on the pages socket; false
  // when it cannot go now.
  bool HandOver(const Queue& q, int fd, uint64_t offset, uint64_t length) const {
    if (q.pages_fd < 0) return false;
    ShmPagesNote note{.offset = offset, .length = length};
    return SendWithFds(q.pages_fd, &note, sizeof note, {&fd, 1}, MSG_DONTWAIT) ==
           static_cast<ssize_t>(sizeof note);
  }

  // An Rread whose data starts with frame.spliced->pending bytes in a pipe (its head
  // counts them). Alone, the pipe's read end goes to the client ahead of the record and
  // the head is made to count none of them (kPipe); the pipe is then the client's (its
  // pending bytes make PipePool close our ends instead of reusing it). Otherwise (a
  // client that cannot take it now, data after the pipe's) its bytes are read out and
  // sent as the payload.
  Result<void> SendSplicedLocked(const Queue& q, OutFrame& frame) {
    SplicePipe& pipe = *frame.spliced;
    if (frame.payload.empty() && HandOver(q, pipe.read_fd, 0, pipe.pending)) {
      AddToRreadCount(frame.head, -static_cast<int64_t>(pipe.pending));
      return {};
    }
    auto bytes = std::make_shared<std::vector<std::byte>>(pipe.pending + frame.payload.size());
    size_t got = 0;
    while (got < pipe.pending) {
      ssize_t n = ::read(pipe.read_fd, bytes->data() + got, pipe.pending - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Unexpected(Errno(n < 0 ? errno : EPIPE, "reading a spliced reply's pipe"));
      got += static_cast<size_t>(n);
    }
    pipe.pending = 0;  // emptied: back to the pool
    std::memcpy(bytes->data() + got, frame.payload.data(), frame.payload.size());
    frame.payload = *bytes;
    frame.owner = std::move(bytes);
    frame.spliced = nullptr;
    return {};
  }

  // What follows a frame's head in its ring record: the payload itself, or a trailer
  // (written to *t) when the payload lies in the arena (sent by reference), went as pages
  // or a pipe (its descriptor already handed over), or the frame names a placement in
  // the arena or accepts a pipe.
  std::span<const std::byte> TailFor(const OutFrame& f, ShmTrailer* t) const {
    auto trailer = [&](uint32_t kind, uint64_t offset, uint64_t length) {
      *t = ShmTrailer{.magic = kTrailerMagic, .kind = kind, .offset = offset, .length = length};
      return std::as_bytes(std::span<const ShmTrailer>(t, 1));
    };
    if (f.spliced) return trailer(kTrailerPipe, 0, f.spliced->pending);
    if (f.pages.fd >= 0 && f.payload.empty()) {
      return trailer(kTrailerPages, f.pages.offset, f.pages.length);
    }
    const uint32_t pipe_flag = f.accepts_pipe && takes_pages_ ? kTrailerAcceptsPipe : 0;
    if (!arena_) return pipe_flag ? trailer(pipe_flag, 0, 0) : f.payload;
    auto in_arena = [&](const std::byte* p) { return uint64_t(p - arena_->bytes().data()); };
    if (!f.payload.empty() && arena_->Contains(f.payload.data(), f.payload.size())) {
      return trailer(kTrailerPayload, in_arena(f.payload.data()), f.payload.size());
    }
    if (f.payload.empty() && !f.placement.empty() &&
        arena_->Contains(f.placement.data(), f.placement.size())) {
      return trailer(kTrailerPlacement | pipe_flag, in_arena(f.placement.data()),
                     f.placement.size());
    }
    if (f.payload.empty() && pipe_flag) return trailer(pipe_flag, 0, 0);
    return f.payload;
  }

  // Pushes one frame (`head`, then what `extras` adds: payload, trailer) on queue `q`
  // (its lock held), or queues it (moving `whole` when it is exactly this frame, else
  // copying the head) behind frames already waiting there for room.
  void SendOneLocked(Queue& q, std::span<const std::byte> head, const OutFrame& extras,
                     OutFrame* whole) {
    if (q.pending.empty()) {
      ShmTrailer t;
      Result<bool> pushed = q.tx.TryPush(head, TailFor(extras, &t));
      if (!pushed) return FailLater(pushed.error());
      if (*pushed) return;
    }
    q.queued += head.size() + extras.payload.size();
    if (whole != nullptr) {
      q.pending.push_back(std::move(*whole));
    } else {
      q.pending.push_back(OutFrame{{head.begin(), head.end()}, {}, nullptr});
    }
    FlushLocked(q);
  }

  // The queue a frame goes out on. A server answers on the queue the request came in on
  // (so an Rflush follows the reply it flushes on one ring); a client sends on its
  // thread's queue, except a Tflush, which follows the request it flushes.
  Queue& QueueFor(std::span<const std::byte> head) {
    if (queues_.size() == 1 || head.size() < 7) return *queues_[0];
    const uint16_t tag = Le16(head.data() + 5);
    if (!takes_pages_) return *queues_[tag_queue_[tag].load(std::memory_order_relaxed)];
    uint8_t i = static_cast<uint8_t>(ThreadSlot() % queues_.size());
    if (static_cast<uint8_t>(head[4]) == kTflush && head.size() >= 9) {
      i = tag_queue_[Le16(head.data() + 7)].load(std::memory_order_relaxed);
    }
    tag_queue_[tag].store(i, std::memory_order_relaxed);
    return *queues_[i];
  }
  static uint16_t Le16(const std::byte* p) {
    return static_cast<uint16_t>(static_cast<uint8_t>(p[0]) | static_cast<uint8_t>(p[1]) << 8);
  }

  void Close() override { Stop(Error()); }
  const std::string& peer() const override { return peer_; }
  size_t queued_bytes() const override {
    size_t n = 0;
    for (const auto& q : queues_) {
      std::lock_guard lock(q->mu);
      n += q->queued;
    }
    return n;
  }
  std::shared_ptr<const void> RetainFrame() override { return current_; }
  void DeliverInPlace() override { in_place_ = true; }
  void YieldAfterFrame() override { yield_ = true; }
  std::shared_ptr<buf::Arena> arena() const override { return arena_; }
  std::span<const std::byte> FramePayload() const override { return frame_payload_; }
  std::span<std::byte> FramePlacement() const override { return frame_placement_; }
  const buf::FileRef* FramePages() const override {
    return frame_pages_.fd >= 0 ? &frame_pages_ : nullptr;
  }
  bool FrameAcceptsPipe() const override { return frame_accepts_pipe_; }
  size_t FramePipeBytes() const override { return frame_pipe_bytes_; }
  uint32_t FrameQueue() const override { return frame_queue_; }
  uint32_t queues() const override { return static_cast<uint32_t>(queues_.size()); }
  int TakeFramePipe() override { return std::exchange(frame_pipe_, -1); }
  bool can_share_pages() const override { return queues_[0]->pages_fd >= 0 && !takes_pages_; }
  bool takes_pipes() const override { return queues_[0]->pages_fd >= 0 && takes_pages_; }

 private:
  bool closed() const { return closed_.load(); }

  // io thread, one chain at a time: delivers what the ring holds, then spins or sleeps.
  void Poll() {
    if (closed()) {
      on_frame_ = nullptr;  // only Poll calls it: safe to drop here (breaks owner cycles)
      return;
    }
    if (paused_.load()) {
      asio::post(strand_, [self = shared_from_this()] {
        self->nap_.expires_after(std::chrono::milliseconds(1));
        self->nap_.async_wait([self](const std::error_code&) { self->Poll(); });
      });
      return;
    }
    const auto in_place_until = Clock::now() + kSpinInPlace;
    for (;;) {
      yield_ = false;
      int delivered = DeliverReady();
      if (delivered < 0) return;
      for (auto& q : queues_) {
        std::lock_guard lock(q->mu);
        FlushLocked(*q);
      }
      auto now = Clock::now();
      if (delivered > 0) idle_since_ = now;
      if (delivered > 0 || now - idle_since_ < spin_) {
        // Look again right here for a while. Each post costs the io thread a turn of
        // Asio's reactor (an epoll_wait system call) before Poll runs again, and a frame
        // arriving meanwhile waits for it. After kSpinInPlace other handlers (other
        // connections) get their turn; at once when a frame's handler posted work
        // (YieldAfterFrame).
        if (now < in_place_until && !yield_) {
          Watch();
          continue;
        }
        asio::post(io_, [self = shared_from_this()] { self->Poll(); });
        return;
      }
      asio::post(strand_, [self = shared_from_this()] { self->Sleep(); });
      return;
    }
  }

  // Between two rounds of Poll's spinning (each takes the queues' locks to flush and
  // reads the clock), watches only the next records' marks for a few pauses, so a frame
  // is seen within a pause of being published rather than within a round.
  void Watch() {
    constexpr int kPolls = 16;
    for (int i = 0; i < kPolls; ++i) {
      for (auto& q : queues_) {
        if (q->rx.Ready()) return;
      }
      CpuRelax();
    }
  }

  // A handler closed the channel: Poll drops on_frame_ and ends the chain.
  int EndClosedChain() {
    Poll();
    return -1;
  }

  // Hands the ready frames (up to 64 per queue, the queues in turn) to on_frame_; how
  // many, or -1 when the chain ended here (the channel stopped on a bad record, or a
  // handler closed it: Poll then dropped on_frame_).
  int DeliverReady() {
    int delivered = 0;
    for (size_t n = 0; n < queues_.size(); ++n) {
      int d = DeliverFrom((first_rx_ + n) % queues_.size());
      if (d < 0) return -1;
      delivered += d;
    }
    first_rx_ = (first_rx_ + 1) % queues_.size();
    return delivered;
  }

  int DeliverFrom(size_t k) {
    Queue& q = *queues_[k];
    frame_queue_ = static_cast<uint32_t>(k);
    int delivered = 0;
    while (delivered < 64 && !paused_.load()) {
      Result<RingConsumer::Next> next = q.rx.TryPeek();
      if (!next) {
        StopOn(next.error());
        return -1;
      }
      if (!next->ready) break;
      std::span<const std::byte> head = next->frame;
      uint32_t declared = 0;
      if (head.size() >= 4) std::memcpy(&declared, head.data(), 4);
      frame_payload_ = {};
      frame_placement_ = {};
      frame_accepts_pipe_ = false;
      if (declared != head.size() && head.size() >= 7 + sizeof(ShmTrailer)) {
        ShmTrailer t;  // read once: the peer may change the ring's bytes meanwhile
        std::memcpy(&t, head.data() + head.size() - sizeof t, sizeof t);
        head = head.first(head.size() - sizeof t);
        if (Result<void> ok = TakeTrailer(t); !ok) {
          StopOn(ok.error());
          return -1;
        }
      }
      uint64_t size = head.size() + frame_payload_.size();
      if (head.size() < 7 || size > max_frame_.load() || declared != size) {
        Errc code = size > max_frame_.load() ? Errc::kFrameTooLarge : Errc::kSizeMismatch;
        Stop(Error(code, fmt::format("frame of {} bytes (size field {}) from {} (limit {})", size,
                                     declared, peer_, max_frame_.load())));
        return -1;
      }
      if (tag_queue_ && !takes_pages_) {
        // A server answers on the queue the request came in on (QueueFor).
        tag_queue_[Le16(head.data() + 5)].store(static_cast<uint8_t>(k), std::memory_order_relaxed);
      }
      if (in_place_) {
        // The owner reads each field once (DeliverInPlace): no copy, the ring's bytes.
        on_frame_(head);
        ReleaseFramePages();
        q.rx.Pop();
        ++delivered;
        if (closed()) return EndClosedChain();
        continue;
      }
      // A private copy: the peer could rewrite the ring's bytes while we parse them. The
      // copy's buffer is reused for the next frame unless the handler retained it.
      if (!scratch_ || scratch_.use_count() > 1)
        scratch_ = std::make_shared<std::vector<std::byte>>();
      scratch_->assign(head.begin(), head.end());
      q.rx.Pop();
      current_ = scratch_;
      on_frame_(std::span<const std::byte>(scratch_->data(), scratch_->size()));
      current_.reset();
      ReleaseFramePages();
      ++delivered;
      if (closed()) return EndClosedChain();
    }
    return delivered;
  }

  // Checks a record's trailer against the arena and sets frame_payload_/frame_placement_
  // (and the frame_pages_/frame_pipe_ of a client, frame_accepts_pipe_ of a server).
  Result<void> TakeTrailer(ShmTrailer t) {
    if (t.magic != kTrailerMagic) {
      return Unexpected(
          Error(Errc::kSizeMismatch, "record longer than its frame, without a trailer"));
    }
    if (takes_pages_ && t.kind == kTrailerPages) return TakePages(t);
    if (takes_pages_ && t.kind == kTrailerPipe) return TakePipe(t);
    if (!takes_pages_ && (t.kind & kTrailerAcceptsPipe)) {
      frame_accepts_pipe_ = true;
      t.kind &= ~kTrailerAcceptsPipe;
      if (t.kind == 0 && t.offset == 0 && t.length == 0) return {};
      if (t.kind != kTrailerPlacement) {
        return Unexpected(
            Error(std::errc::protocol_error, fmt::format("trailer kind {} with a pipe", t.kind)));
      }
    }
    uint64_t area = arena_ ? arena_->bytes().size() : 0;
    if (t.length == 0 || t.offset > area || t.length > area - t.offset) {
      return Unexpected(Error(std::errc::bad_address,
                              fmt::format("trailer names {}+{} outside a data area of {} bytes",
                                          t.offset, t.length, area)));
    }
    std::span<std::byte> range = arena_->bytes().subspan(t.offset, t.length);
    if (t.kind == kTrailerPayload) {
      frame_payload_ = range;
    } else if (t.kind == kTrailerPlacement) {
      frame_placement_ = range;
    } else {
      return Unexpected(Error(std::errc::protocol_error, fmt::format("trailer kind {}", t.kind)));
    }
    return {};
  }

  // The descriptor a kPages or kPipe record names: the next message on the pages socket,
  // exactly one descriptor with a note that repeats the trailer's offset and length.
  Result<int> ReceiveDescriptor(const ShmTrailer& t, std::string_view what) {
    ShmPagesNote note;
    int fd = -1;
    Result<ReceivedMessage> got =
        ReceiveWithFds(queues_[frame_queue_]->pages_fd, &note, sizeof note, {&fd, 1}, MSG_DONTWAIT);
    if (!got) {
      return Unexpected(Error(got.error().code(), fmt::format("a {} record without its "
                                                              "descriptor: pages socket recvmsg",
                                                              what)));
    }
    std::string why;
    if (got->bytes != sizeof note || got->fds != 1 || (got->flags & (MSG_TRUNC | MSG_CTRUNC))) {
      why = fmt::format("a note of {} bytes with {} descriptors", got->bytes, got->fds);
    } else if (note.offset != t.offset || note.length != t.length) {
      why = fmt::format("the note says {}+{}, the record {}+{}", note.offset, note.length, t.offset,
                        t.length);
    } else if (t.length == 0 || t.length > max_frame_.load()) {
      why = fmt::format("{} bytes", t.length);
    }
    if (why.empty()) return fd;
    if (fd >= 0) ::close(fd);
    return Unexpected(Error(std::errc::protocol_error, fmt::format("{} record: {}", what, why)));
  }

  // A kPipe record: the pipe must hold the record's bytes (it stays the server's to
  // write, and to read: whoever takes the bytes must not wait for them).
  Result<void> TakePipe(const ShmTrailer& t) {
    Result<int> fd = ReceiveDescriptor(t, "pipe");
    if (!fd) return Unexpected(fd.error());
    struct stat st {};
    int queued = 0;
    if (t.offset != 0 || ::fstat(*fd, &st) != 0 || !S_ISFIFO(st.st_mode) ||
        ::ioctl(*fd, FIONREAD, &queued) != 0 || queued < 0 ||
        static_cast<uint64_t>(queued) < t.length) {
      ::close(*fd);
      return Unexpected(Error(std::errc::protocol_error,
                              fmt::format("pipe record: {} bytes at {} in a descriptor that is "
                                          "not a pipe holding them ({} queued)",
                                          t.length, t.offset, queued)));
    }
    // Ours to read without waiting, whatever the server set (it may set it back: the
    // reader passes SPLICE_F_NONBLOCK too).
    ::fcntl(*fd, F_SETFL, ::fcntl(*fd, F_GETFL) | O_NONBLOCK);
    frame_pipe_ = *fd;
    frame_pipe_bytes_ = t.length;
    return {};
  }

  // A kPages record: takes its descriptor from the pages socket, checks it against the
  // trailer and maps the pages read-only as the frame's payload (until ReleaseFramePages).
  Result<void> TakePages(const ShmTrailer& t) {
    Result<int> received = ReceiveDescriptor(t, "pages");
    if (!received) return Unexpected(received.error());
    const int fd = *received;
    auto bad = [&](std::string why) {
      ::close(fd);
      return Unexpected(Error(std::errc::protocol_error, "pages record: " + why));
    };
    const uint64_t mapped = (t.length + buf::kPageSize - 1) / buf::kPageSize * buf::kPageSize;
    if (t.offset % buf::kPageSize != 0) {
      return bad(fmt::format("{} bytes at {}", t.length, t.offset));
    }
    // A file that could shrink under our mapping would fault (SIGBUS) on access.
    struct stat st {};
    int seals = ::fcntl(fd, F_GET_SEALS);
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || seals < 0 || !(seals & F_SEAL_SHRINK) ||
        static_cast<uint64_t>(st.st_size) < t.offset ||
        static_cast<uint64_t>(st.st_size) - t.offset < mapped) {
      return bad(fmt::format("{}+{} of a file of {} bytes that is not sealed against shrinking",
                             t.offset, t.length, st.st_size));
    }
    void* p = ::mmap(nullptr, mapped, PROT_READ, MAP_SHARED, fd, static_cast<off_t>(t.offset));
    if (p == MAP_FAILED) return bad(fmt::format("mmap: {}", std::strerror(errno)));
    frame_pages_ = buf::FileRef{.fd = fd, .offset = t.offset, .length = t.length};
    frame_pages_map_ = {static_cast<std::byte*>(p), mapped};
    frame_payload_ = {static_cast<const std::byte*>(p), t.length};
    return {};
  }

  void ReleaseFramePages() {
    if (frame_pipe_ >= 0) ::close(frame_pipe_);
    frame_pipe_ = -1;
    frame_pipe_bytes_ = 0;
    if (frame_pages_.fd < 0) return;
    ::munmap(frame_pages_map_.data(), frame_pages_map_.size());
    ::close(frame_pages_.fd);
    frame_pages_ = {};
    frame_pages_map_ = {};
    frame_payload_ = {};
  }

  // Announces the sleep, re-checks the ring (the sender may have published just before),
  // then waits for the eventfd or the nap timer, whichever comes first.
  void Sleep() {                  // strand
    if (closed()) return Poll();  // Stop ran first: Poll drops on_frame_
    bool ready = false;
    for (auto& q : queues_) q->rx.SetAsleep(true);
    for (auto& q : queues_) {
      Result<bool> has = q->rx.HasData();
      if (!has) {
        StopOn(has.error());
        return Poll();  // drops on_frame_ (the chain ends here)
      }
      ready = ready || *has;
    }
    if (ready) {
      for (auto& q : queues_) q->rx.SetAsleep(false);
      asio::post(io_, [self = shared_from_this()] { self->Poll(); });
      return;
    }
    sleeping_.store(true);
    wake_.async_wait(asio::posix::stream_descriptor::wait_read,
                     [self = shared_from_this()](const std::error_code& ec) {
                       if (ec) return;
                       uint64_t n;
                       [[maybe_unused]] ssize_t r = ::read(self->wake_fd_, &n, sizeof n);
                       self->Wake();
                     });
    nap_.expires_after(kNap);
    nap_.async_wait([self = shared_from_this()](const std::error_code& ec) {
      if (!ec) self->Wake();
    });
  }

  void Wake() {
    if (!sleeping_.exchange(false)) return;  // the other waiter won
    std::error_code ignored;
    wake_.cancel(ignored);
    nap_.cancel();
    for (auto& q : queues_) q->rx.SetAsleep(false);
    idle_since_ = Clock::now();
    Poll();
  }

  // Moves q's waiting frames into its ring while there is room (its lock held);
  // otherwise asks the peer to ring us when it makes room (and re-checks, as for
  // sleeping).
  void FlushLocked(Queue& q) {
    while (!q.pending.empty()) {
      OutFrame& f = q.pending.front();
      ShmTrailer t;
      std::span<const std::byte> tail = TailFor(f, &t);
      Result<bool> pushed = q.tx.TryPush(f.head, tail);
      if (!pushed) return FailLater(pushed.error());
      if (!*pushed) {
        q.tx.SetWaitingForRoom(true);
        q.waiting_for_room = true;
        pushed = q.tx.TryPush(f.head, tail);
        if (!pushed) return FailLater(pushed.error());
        if (!*pushed) return;
      }
      q.queued -= f.head.size() + f.payload.size();
      q.pending.pop_front();
    }
    // Cleared only when set: Poll calls this on every turn, and the word lies on the
    // peer's (the consumer's) cache line.
    if (q.waiting_for_room) {
      q.tx.SetWaitingForRoom(false);
      q.waiting_for_room = false;
    }
  }

  // Never stop inside Send (the contract): from the io_context instead.
  void FailLater(const Error& e) {
    asio::post(strand_, [self = shared_from_this(), e] { self->StopOn(e); });
  }

  // Stops on what the ring (or a record) says is wrong, naming the peer.
  void StopOn(const Error& e) { Stop(Error(e.code(), peer_ + ": " + e.context())); }

  // The socket carries nothing after the hello: any byte is a protocol error, EOF is the
  // peer going away.
  void WatchSocket() {
    socket_.async_read_some(
        asio::buffer(&probe_, 1),
        asio::bind_executor(
            strand_, [self = shared_from_this()](const std::error_code& ec, size_t n) {
              if (ec == asio::error::operation_aborted) return;
              if (n > 0) {
                return self->Stop(Error(std::errc::protocol_error,
                                        self->peer_ + " wrote on the shm control socket"));
              }
              // The peer is gone: EOF, or a reset when it died before reading all we sent
              // (a client killed before it took the hello).
              bool gone = !ec || ec == asio::error::eof || ec == asio::error::connection_reset;
              self->Stop(gone ? Error() : Error(ec, "shm control socket"));
            }));
  }

  void Stop(const Error& why) {
    CloseHandler handler;
    {
      std::lock_guard lock(mu_);
      if (closed_.exchange(true)) return;
      handler = std::move(on_close_);
    }
    for (auto& q : queues_) {
      std::lock_guard lock(q->mu);
      q->pending.clear();
      q->queued = 0;
    }
    // The descriptors and the timer belong to the strand (Close may come from any thread).
    asio::dispatch(strand_, [self = shared_from_this()] {
      std::error_code ignored;
      self->socket_.close(ignored);
      self->wake_.cancel(ignored);
      self->nap_.cancel();
      if (self->sleeping_.exchange(false)) self->Poll();  // drops on_frame_
    });
    if (handler) handler(why);
  }

  // A server runs its io_context on several threads. The Poll chain is one at a time by
  // construction (posted to io_, the hot path); everything that touches the eventfd
  // wait, the nap timer or the socket (Sleep, its two completions, the socket watch,
  // Stop's cancels) runs on this strand, so those never run at once on two threads.
  asio::io_context& io_;
  asio::strand<asio::io_context::executor_type> strand_;
  stream_protocol::socket socket_;
  std::shared_ptr<buf::Region> region_;  // keeps the rings mapped
  std::shared_ptr<buf::Arena> arena_;    // the data area (null when there is none)
  std::vector<std::unique_ptr<Queue>> queues_;
  // With several queues: per tag, the queue a client sent it on, or a server received it
  // on (QueueFor); null with one.
  std::unique_ptr<std::atomic<uint8_t>[]> tag_queue_;
  asio::posix::stream_descriptor wake_;  // our eventfd: the peer rings it (strand)
  const int wake_fd_;                    // its descriptor, read without touching wake_
  int peer_wake_fd_;                     // the peer's eventfd
  const bool takes_pages_;               // the client: receives kPages records
  asio::steady_timer nap_;
  std::string peer_;
  std::chrono::microseconds spin_;
  bool in_place_ = false;     // set before Start
  bool yield_ = false;        // Poll's: a handler asked for a turn of the io_context
  FrameHandler on_frame_;     // Poll's
  size_t first_rx_ = 0;       // Poll's: the queue it looks at first
  uint32_t frame_queue_ = 0;  // Poll's: the queue being delivered
  std::shared_ptr<std::vector<std::byte>> scratch_;  // Poll's: the last frame's copy
  std::shared_ptr<const void> current_;              // Poll's: the frame being delivered
  std::span<const std::byte> frame_payload_;         // Poll's: its payload by reference
  std::span<std::byte> frame_placement_;             // Poll's: where its reply may go
  buf::FileRef frame_pages_;                         // Poll's: its payload's file, if pages
  std::span<std::byte> frame_pages_map_;             // Poll's: their mapping
  int frame_pipe_ = -1;                              // Poll's: the pipe holding its data
  size_t frame_pipe_bytes_ = 0;                      // Poll's: its bytes there
  bool frame_accepts_pipe_ = false;                  // Poll's: its reply may come so
  Clock::time_point idle_since_;                     // Poll's
  std::atomic<bool> sleeping_{false};
  std::atomic<bool> paused_{false};
  std::atomic<uint32_t> max_frame_{16u << 20};
  char probe_ = 0;

  std::atomic<bool> closed_{false};  // set under mu_
  std::mutex mu_;
  CloseHandler on_close_;  // guarded by mu_
};

// Server side of one accepted connection: make the region and eventfds, send the hello.
Result<std::shared_ptr<Channel>> AcceptShm(asio::io_context& io, stream_protocol::socket socket,
                                           const Address& address, uint32_t queues) {
  const uint32_t ring_bytes = RingBytes();
  const uint64_t rings_bytes = 2 * uint64_t{ring_bytes} * queues;
  const uint64_t data_bytes = ShmDataBytes();
  Result<std::shared_ptr<buf::Region>> region =
      buf::Region::Create(rings_bytes + data_bytes, "ninefold-shm");
  if (!region) return Unexpected(region.error());
  std::shared_ptr<buf::Arena> arena;
  if (data_bytes > 0) {
    Result<std::shared_ptr<buf::Arena>> a = buf::Arena::Create(*region, rings_bytes, data_bytes);
    if (!a) return Unexpected(a.error());
    arena = std::move(*a);
  }
  std::byte* base = (*region)->data();
  int efd_server = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  int efd_client = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  // Per queue: our end of its pages socket, then the client's.
  std::vector<int> pages(2 * queues, -1);
  auto close_all = [&] {
    for (int f : {efd_server, efd_client}) {
      if (f >= 0) ::close(f);
    }
    for (int f : pages) {
      if (f >= 0) ::close(f);
    }
  };
  if (efd_server < 0 || efd_client < 0) {
    Error e = Errno(errno, "eventfd");
    close_all();
    return Unexpected(e);
  }
  std::vector<QueueRings> rings;
  for (uint32_t i = 0; i < queues; ++i) {
    std::byte* pair = base + 2 * uint64_t{ring_bytes} * i;
    Result<RingView> c2s = RingView::Init({pair, ring_bytes});
    Result<RingView> s2c = RingView::Init({pair + ring_bytes, ring_bytes});
    if (!c2s || !s2c) {
      close_all();
      return Unexpected(c2s ? s2c.error() : c2s.error());
    }
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, &pages[2 * i]) !=
        0) {
      Error e = Errno(errno, "pages socketpair");
      close_all();
      return Unexpected(e);
    }
    rings.push_back(QueueRings{.rx = *c2s, .tx = *s2c, .pages_fd = pages[2 * i]});
  }
  ShmHello hello{.magic = kShmMagic,
                 .version = kShmVersion,
                 .region_bytes = (*region)->size(),
                 .ring_bytes = ring_bytes,
                 .c2s_offset = 0,
                 .s2c_offset = ring_bytes,
                 .queues = queues,
                 .data_offset = rings_bytes,
                 .data_bytes = data_bytes};
  std::vector<int> fds = {(*region)->fd(), efd_server, efd_client};
  for (uint32_t i = 0; i < queues; ++i) fds.push_back(pages[2 * i + 1]);
  if (SendWithFds(socket.native_handle(), &hello, sizeof hello, fds, 0) !=
      static_cast<ssize_t>(sizeof hello)) {
    Error e = Errno(errno, "send shm hello");
    close_all();
    return Unexpected(e);
  }
  for (uint32_t i = 0; i < queues; ++i) ::close(pages[2 * i + 1]);  // the client's now
  std::string peer = fmt::format("shm!{}#{}", address.path, socket.native_handle());
  return std::shared_ptr<Channel>(
      std::make_shared<ShmChannel>(io, std::move(socket), std::move(*region), std::move(arena),
                                   rings, efd_server, efd_client, false, peer));
}

class ShmListener final : public Listener {
 public:
  ShmListener(asio::io_context& io, stream_protocol::acceptor acceptor, Address address,
              AcceptHandler on_accept, uint32_t queues)
      : io_(io),
        acceptor_(std::move(acceptor)),
        address_(std::move(address)),
        on_accept_(std::move(on_accept)),
        queues_(queues),
        alive_(std::make_shared<bool>(true)) {
    AcceptNext();
  }
  ~ShmListener() override { Close(); }
  const Address& address() const override { return address_; }
  void Close() override {
    if (!*alive_) return;
    *alive_ = false;
    std::error_code ignored;
    acceptor_.close(ignored);
    ::unlink(address_.path.c_str());
  }

 private:
  void AcceptNext() {
    acceptor_.async_accept([this, alive = alive_](const std::error_code& ec,
                                                  stream_protocol::socket socket) {
      if (!*alive) return;
      if (ec) {
        if (ec == asio::error::operation_aborted) return;
        Log(LogLevel::kWarn, "accept on {}: {}", address_.ToString(), ec.message());
      } else {
        Result<std::shared_ptr<Channel>> ch = AcceptShm(io_, std::move(socket), address_, queues_);
        if (!ch) {
          Log(LogLevel::kWarn, "shm connection on {}: {}", address_.ToString(),
              ch.error().ToString());
        } else {
          AcceptHandler handler = on_accept_;
          handler(std::move(*ch));
          if (!*alive) return;
        }
      }
      AcceptNext();
    });
  }

  asio::io_context& io_;
  stream_protocol::acceptor acceptor_;
  Address address_;
  AcceptHandler on_accept_;
  const uint32_t queues_;
  std::shared_ptr<bool> alive_;  // io thread
};

}  // namespace

ssize_t SendWithFds(int socket, const void* body, size_t size, std::span<const int> fds,
                    int flags) {
  alignas(cmsghdr) char control[CMSG_SPACE((3 + kMaxShmQueues) * sizeof(int))] = {};
  NINEFOLD_CHECK(!fds.empty() && fds.size() <= 3 + kMaxShmQueues);
  iovec iov{const_cast<void*>(body), size};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = CMSG_SPACE(fds.size_bytes());
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(fds.size_bytes());
  std::memcpy(CMSG_DATA(c), fds.data(), fds.size_bytes());
  ssize_t n;
  do {
    n = ::sendmsg(socket, &msg, MSG_NOSIGNAL | flags);
  } while (n < 0 && errno == EINTR);
  return n;
}

uint64_t ShmDataBytes() {
  static const uint64_t bytes = [] {
    const char* env = std::getenv("NINEFOLD_SHM_DATA_MB");
    uint64_t mb = env ? std::strtoull(env, nullptr, 10) : 64;
    return std::min<uint64_t>(mb, 4096) << 20;
  }();
  return bytes;
}

uint32_t ShmQueues(uint32_t requested) {
  static const uint32_t from_env = [] {
    const char* env = std::getenv("NINEFOLD_SHM_QUEUES");
    if (env == nullptr) return kDefaultShmQueues;
    char* end = nullptr;
    unsigned long n = std::strtoul(env, &end, 10);
    if (end == env || *end != '\0' || n < 1 || n > kMaxShmQueues) {
      Log(LogLevel::kWarn, "NINEFOLD_SHM_QUEUES={}: not 1 to {}; using {}", env, kMaxShmQueues,
          kDefaultShmQueues);
      return kDefaultShmQueues;
    }
    return static_cast<uint32_t>(n);
  }();
  return std::clamp<uint32_t>(requested != 0 ? requested : from_env, 1, kMaxShmQueues);
}

std::chrono::microseconds ShmSpin() {
  static const std::chrono::microseconds spin = [] {
    const char* env = std::getenv("NINEFOLD_SHM_SPIN_US");
    return std::chrono::microseconds(env ? std::strtoul(env, nullptr, 10) : 50);
  }();
  return spin;
}

Result<std::unique_ptr<Listener>> ListenShm(asio::io_context& io, const Address& address,
                                            Listener::AcceptHandler on_accept, uint32_t queues) {
  auto acceptor = ListenOnUnixPath(io, address);
  if (!acceptor) return Unexpected(acceptor.error());
  return std::unique_ptr<Listener>(
      new ShmListener(io, std::move(*acceptor), address, std::move(on_accept), queues));
}

Result<ReceivedShmHello> ReceiveShmHello(int fd) {
  ReceivedShmHello r;
  Result<ReceivedMessage> got = ReceiveWithFds(fd, &r.hello, sizeof r.hello, r.fds, 0);
  if (!got) return Unexpected(Error(got.error().code(), "receive shm hello"));
  auto bad = [&](std::string why) {
    for (int& f : r.fds) {
      if (f >= 0) ::close(std::exchange(f, -1));
    }
    return Unexpected(Error(std::errc::protocol_error, "bad shm hello: " + why));
  };
  if (got->bytes != sizeof r.hello || (got->flags & (MSG_TRUNC | MSG_CTRUNC))) {
    return bad(
        fmt::format("{} bytes (flags {:#x})", got->bytes, static_cast<unsigned>(got->flags)));
  }
  if (r.hello.magic != kShmMagic || r.hello.version != kShmVersion) {
    return bad(fmt::format("magic {:#x} version {}", r.hello.magic, r.hello.version));
  }
  if (r.hello.queues < 1 || r.hello.queues > kMaxShmQueues) {
    return bad(fmt::format("{} queues (1 to {})", r.hello.queues, kMaxShmQueues));
  }
  if (got->fds != 3 + r.hello.queues) {
    return bad(fmt::format("{} descriptors, not {}", got->fds, 3 + r.hello.queues));
  }
  return r;
}

Result<std::shared_ptr<Channel>> OpenShmClient(asio::io_context& io, int fd, const Address& address,
                                               std::chrono::milliseconds timeout) {
  // Takes `fd` over: closed on every error, else owned by the channel.
  auto fail = [fd](Error e, std::span<int> more = {}) {
    ::close(fd);
    for (int& m : more) {
      if (m >= 0) ::close(std::exchange(m, -1));
    }
    return Unexpected(std::move(e));
  };
  pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
  int ready;
  do {
    ready = ::poll(&p, 1, static_cast<int>(timeout.count()));
  } while (ready < 0 && errno == EINTR);
  if (ready == 0) return fail(Errno(ETIMEDOUT, "no shm hello from " + address.ToString()));
  Result<ReceivedShmHello> received = ReceiveShmHello(fd);
  if (!received) {
    return fail(Error(received.error().code(),
                      fmt::format("{}: {}", address.ToString(), received.error().context())));
  }
  const ShmHello& hello = received->hello;
  std::span<int> fds = received->fds;
  auto bad = [&](std::string why) {
    return fail(Error(std::errc::protocol_error,
                      fmt::format("{}: bad shm hello: {}", address.ToString(), why)),
                fds);
  };
  // Every ring page-aligned, inside the region, and apart from every other.
  const uint64_t rb = hello.ring_bytes;
  std::vector<uint64_t> rings;
  for (uint64_t i = 0; i < hello.queues; ++i) {
    rings.push_back(hello.c2s_offset + 2 * rb * i);
    rings.push_back(hello.s2c_offset + 2 * rb * i);
  }
  std::vector<uint64_t> sorted = rings;
  std::sort(sorted.begin(), sorted.end());
  bool rings_ok = rb >= RingView::Footprint(64);
  for (size_t i = 0; i < sorted.size(); ++i) {
    rings_ok = rings_ok && sorted[i] % buf::kPageSize == 0 &&
               sorted[i] + rb <= hello.region_bytes && (i == 0 || sorted[i - 1] + rb <= sorted[i]);
  }
  if (!rings_ok) {
    return bad(fmt::format("{} queues of rings at {} and {} of {} bytes in {}", hello.queues,
                           hello.c2s_offset, hello.s2c_offset, rb, hello.region_bytes));
  }
  uint64_t data_end = hello.data_offset + hello.data_bytes;
  bool data_overlaps_ring = std::any_of(rings.begin(), rings.end(), [&](uint64_t ring) {
    return hello.data_offset < ring + rb && ring < data_end;
  });
  if (hello.data_bytes > 0 &&
      (hello.data_offset % buf::kPageSize != 0 || hello.data_bytes % buf::kPageSize != 0 ||
       hello.data_bytes > hello.region_bytes ||
       hello.data_offset > hello.region_bytes - hello.data_bytes || data_overlaps_ring)) {
    return bad(fmt::format("data area {}+{} in a region of {}", hello.data_offset, hello.data_bytes,
                           hello.region_bytes));
  }
  int region_fd = std::exchange(fds[0], -1);
  Result<std::shared_ptr<buf::Region>> region = buf::Region::Map(region_fd, hello.region_bytes);
  if (!region) return fail(region.error(), fds);
  std::byte* base = (*region)->data();
  std::vector<QueueRings> queues;
  for (uint32_t i = 0; i < hello.queues; ++i) {
    Result<RingView> c2s = RingView::Attach({base + rings[2 * i], rb});
    Result<RingView> s2c = RingView::Attach({base + rings[2 * i + 1], rb});
    if (!c2s || !s2c) return fail(c2s ? s2c.error() : c2s.error(), fds);
    queues.push_back(QueueRings{.rx = *s2c, .tx = *c2s, .pages_fd = fds[3 + i]});
  }
  std::shared_ptr<buf::Arena> arena;
  if (hello.data_bytes > 0) {
    Result<std::shared_ptr<buf::Arena>> a =
        buf::Arena::Create(*region, hello.data_offset, hello.data_bytes);
    if (!a) return fail(a.error(), fds);
    arena = std::move(*a);
  }
  stream_protocol::socket socket(io);
  std::error_code ec;
  socket.assign(stream_protocol(), fd, ec);
  if (ec) return fail(Error(ec, "shm socket"), fds);
  return std::shared_ptr<Channel>(
      std::make_shared<ShmChannel>(io, std::move(socket), std::move(*region), std::move(arena),
                                   queues, fds[2], fds[1], true, address.ToString()));
}

}  // namespace ninefold::transport
