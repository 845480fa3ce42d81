// Channels over byte streams (tcp, unix, inherited descriptors) and their listeners, on
// standalone Asio. Reads are Asio's (it tries the descriptor at once and waits in the
// reactor only when it would block); writes are non-blocking system calls made under the
// channel's lock, so that Send works from any thread and a reply normally leaves in the
// sender's own write, without a trip through the loop. Frames are cut from refcounted
// read buffers, so a receiver may keep a frame (RetainFrame) instead of copying it.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <type_traits>

#include "asio/connect.hpp"
#include "asio/ip/tcp.hpp"
#include "asio/local/stream_protocol.hpp"
#include "asio/posix/stream_descriptor.hpp"
#include "asio/post.hpp"
#include "asio/steady_timer.hpp"
#include "fmt/format.h"
#include "ninefold/base/errc.h"
#include "ninefold/transport/channel.h"
#include "shm.h"

namespace ninefold::transport {
namespace {

// Small to start (an idle connection costs little); grows to the largest frame seen.
constexpr size_t kInitialBuffer = 8 * 1024;
constexpr uint32_t kDefaultMaxFrame = 16u << 20;
// Read buffers kept for reuse while frames retained from others are still held.
constexpr size_t kSpareChunks = 2;
// Queued frames gathered into one write.
constexpr size_t kMaxIov = 64;
// A Twrite's head: size[4] type[1] tag[2] fid[4] offset[8] count[4], in every dialect.
constexpr size_t kTwriteHead = 23;
constexpr size_t kTwriteCountAt = 19;
constexpr uint8_t kTwrite = 118;
// Frames after a large Twrite whose successors are still read exactly up to the next
// Twrite head: a client's getattr between two writes does not cost the second its pipe.
constexpr unsigned kExactReadFrames = 4;
// Read replies larger than this are copied into a TCP socket, not spliced.
constexpr size_t kTcpSpliceReadMax = 64 * 1024;

Error FromAsio(const std::error_code& ec, std::string_view what) {
  return Error(ec, std::string(what));
}
Error FromErrno(int err, std::string_view what) {
  return Error(std::error_code(err, std::generic_category()), std::string(what));
}

// Runs `write` (a write(2)-like call: bytes written, or -1 with errno) of `len` bytes
// with SIGPIPE blocked for this thread, and takes back a SIGPIPE it raised: writing to a
// socket or pipe whose reader has gone raises one, and its default action ends the
// process (a server, or any program using a client channel); the caller sees EPIPE, as
// sendmsg's callers with MSG_NOSIGNAL do. writev(2) to a pipe and splice(2) into a
// socket have no such flag. A call that wrote some bytes before the reader went (splice
// moves one pipe buffer at a time) returns that count and has raised SIGPIPE all the
// same, so any short write takes one back too.
template <class Write>
ssize_t WithoutSigpipe(size_t len, Write write) {
  sigset_t sigpipe;
  sigset_t old;
  sigemptyset(&sigpipe);
  sigaddset(&sigpipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &sigpipe, &old);
  ssize_t n;
  do {
    n = write();
  } while (n < 0 && errno == EINTR);
  int err = errno;
  if ((n < 0 ? err == EPIPE : static_cast<size_t>(n) < len) && !sigismember(&old, SIGPIPE)) {
    timespec none{};
    while (sigtimedwait(&sigpipe, nullptr, &none) == SIGPIPE) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  errno = err;
  return n;
}

// splice(2) from a pipe into a socket, without SIGPIPE.
ssize_t SpliceNoSignal(int pipe_fd, int socket_fd, size_t len) {
  return WithoutSigpipe(len, [&] {
    return ::splice(pipe_fd, nullptr, socket_fd, nullptr, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  });
}

// A read buffer. RetainFrame hands out references that count in `holds`; the channel
// writes into a chunk's bytes again only once nothing holds it.
struct Chunk {
  explicit Chunk(size_t n) : bytes(new std::byte[n]), size(n) {}
  std::unique_ptr<std::byte[]> bytes;  // uninitialized: pages never read into cost nothing
  size_t size;
  std::atomic<uint32_t> holds{0};  // release by holders, acquire by the channel
  bool held() const { return holds.load(std::memory_order_acquire) != 0; }
};

// A frame being written: `done` bytes of head, spliced bytes and payload are out already.
struct Pending {
  explicit Pending(OutFrame f)
      : frame(std::move(f)), spliced(frame.spliced ? frame.spliced->pending : 0) {}
  OutFrame frame;
  size_t spliced;  // bytes in frame.spliced's pipe when queued
  size_t done = 0;
  size_t size() const { return frame.head.size() + spliced + frame.payload.size(); }
  // True while the next bytes to write come from the pipe.
  bool InPipe() const { return done >= frame.head.size() && done < frame.head.size() + spliced; }
};

// Stream: an Asio stream (tcp socket, unix socket, stream_descriptor), used for its
// descriptor and its readiness waits. `writer` is a second stream for fd channels whose
// write descriptor differs; otherwise null.
//
// Locking: mu_ guards the descriptors (starting operations on them, our own writes,
// closing), the write queue and the flags below it. The read side (buffers, on_frame_)
// belongs to whichever thread runs the read loop; `reading_` (under mu_) says a loop is
// running or waiting, so there is never more than one.
template <class Stream>
class StreamChannel final : public Channel,
                            public std::enable_shared_from_this<StreamChannel<Stream>> {
 public:
  StreamChannel(Stream stream, std::optional<Stream> writer, std::string peer, bool is_socket)
      : stream_(std::move(stream)),
        writer_(std::move(writer)),
        peer_(std::move(peer)),
        is_socket_(is_socket),
        chunk_(std::make_shared<Chunk>(kInitialBuffer)) {}

  void Start(FrameHandler on_frame, CloseHandler on_close) override {
    std::lock_guard lock(mu_);
    on_frame_ = std::make_shared<FrameHandler>(std::move(on_frame));
    on_close_ = std::move(on_close);
    std::error_code ignored;
    stream_.non_blocking(true, ignored);
    if (writer_) writer_->non_blocking(true, ignored);
    // The first frames are delivered from the io_context, never inside Start.
    StartReadLoopLocked();
  }
  void SetMaxFrame(uint32_t max_frame) override {
    max_frame_.store(max_frame, std::memory_order_relaxed);
  }
  void PauseReading() override {
    std::lock_guard lock(mu_);
    paused_.store(true, std::memory_order_relaxed);
  }
  void ResumeReading() override {
    std::lock_guard lock(mu_);
    if (!paused_.load(std::memory_order_relaxed)) return;
    paused_.store(false, std::memory_order_relaxed);
    // A read loop that has not noticed the pause yet just carries on; otherwise start
    // one (from the io_context: a handler that resumes never recurses into itself).
    StartReadLoopLocked();
  }

  void Send(OutFrame frame) override {
    std::deque<Pending> written;  // destroyed after unlocking: owners may be anything
    std::lock_guard lock(mu_);
    if (closed_ || failed_) return;
    Pending p(std::move(frame));
    queued_.fetch_add(p.size(), std::memory_order_relaxed);
    queue_.push_back(std::move(p));
    if (!writing_) FlushLocked(&written);
  }

  void Close() override { Stop(Error()); }
  const std::string& peer() const override { return peer_; }
  size_t queued_bytes() const override { return queued_.load(std::memory_order_relaxed); }
  bool can_splice() const override { return is_socket_; }
  size_t splice_read_max() const override {
    // Over TCP, spliced payloads above 64 KiB go slower than copied ones (on loopback,
    // 1 MiB replies: 0.6x the copy's rate in docs/performance.md), while unix sockets
    // take spliced 1 MiB replies at 3x the copy's rate.
    if constexpr (std::is_same_v<Stream, asio::ip::tcp::socket>) return kTcpSpliceReadMax;
    return SIZE_MAX;
  }

  void SpliceWrites(PipePool* pool, size_t min_bytes) override {
    if (!is_socket_) return;
    write_pipes_ = pool;
    splice_write_min_ = std::max(min_bytes, size_t{1});
  }
  std::shared_ptr<SplicePipe> FrameDataPipe() const override { return frame_pipe_; }

  bool ReadAhead() override {
    // Only on the read loop's thread, inside on_frame_, after RetainFrame.
    if (handoff_ == nullptr || !chunk_->held() || CompleteFrameBuffered()) return false;
    // A Twrite's head alone is buffered: the loop moves its data into a pipe next.
    const bool fill_next = write_pipes_ != nullptr && end_ - begin_ == kTwriteHead;
    std::byte* dst = nullptr;
    size_t room = 0;
    if (!fill_next) NextRead(&dst, &room);
    std::lock_guard lock(mu_);
    if (closed_ || paused_.load(std::memory_order_relaxed)) return false;
    // From here the read loop belongs to the read started below: DeliverFrames must not
    // touch it once on_frame_ returns, and keeps on_frame_ alive until then.
    handoff_->done = true;
    handoff_->handler = on_frame_;
    handoff_ = nullptr;
    frame_pipe_.reset();  // the handler took it before (FrameDataPipe)
    if (fill_next) {
      asio::post(stream_.get_executor(), [self = this->shared_from_this()] { self->ReadLoop(); });
    } else {
      StartReadLocked(dst, room);
    }
    return true;
  }

  std::shared_ptr<const void> RetainFrame() override {
    // Only on the read loop's thread, inside on_frame_: chunk_ is the frame's chunk.
    chunk_->holds.fetch_add(1, std::memory_order_relaxed);
    return std::shared_ptr<const void>(chunk_->bytes.get(), [chunk = chunk_](const void*) {
      chunk->holds.fetch_sub(1, std::memory_order_release);
    });
  }

 private:
  Stream& writer() { return writer_ ? *writer_ : stream_; }

  void Stop(const Error& why) {
    CloseHandler handler;
    std::shared_ptr<FrameHandler> frame_handler;
    std::deque<Pending> dropped;
    {
      std::lock_guard lock(mu_);
      if (closed_) return;
      closed_ = true;
      std::error_code ignored;
      stream_.close(ignored);  // cancels the waits: their handlers see closed_
      if (writer_) writer_->close(ignored);
      dropped.swap(queue_);
      queued_.store(0, std::memory_order_relaxed);
      handler = std::move(on_close_);
      // A running read loop drops on_frame_ itself once it sees closed_.
      if (!reading_) frame_handler = std::move(on_frame_);
    }
    if (handler) handler(why);
  }

  // --- reading -------------------------------------------------------------------------
  void StartReadLoopLocked() {
    if (closed_ || reading_ || paused_.load(std::memory_order_relaxed) || !on_frame_) return;
    reading_ = true;
    asio::post(stream_.get_executor(), [self = this->shared_from_this()] { self->ReadLoop(); });
  }

  // Ends the read loop (under mu_); returns on_frame_ to destroy outside the lock once the
  // channel is closed, breaking the cycle with its owner.
  std::shared_ptr<FrameHandler> EndReadLoopLocked() {
    reading_ = false;
    if (closed_) return std::move(on_frame_);
    return nullptr;
  }

  // True (and the loop ended) when closed or paused. The flags are read without the lock
  // first; ending the loop re-checks under it, so a concurrent resume is never missed.
  bool ShouldStop() {
    if (!closed_.load(std::memory_order_acquire) && !paused_.load(std::memory_order_relaxed)) {
      return false;
    }
    std::shared_ptr<FrameHandler> drop;
    std::lock_guard lock(mu_);
    if (!closed_ && !paused_.load(std::memory_order_relaxed)) return false;
    drop = EndReadLoopLocked();
    return true;
  }

  // The read loop: delivers every complete frame, moves a Twrite's data into a pipe when
  // it may (SpliceWrites), then reads more. Asio's read tries the descriptor at once and
  // only waits in the reactor when it would block.
  void ReadLoop() {
    for (;;) {
      if (!DeliverFrames()) return;
      if (data_pipe_ == nullptr && !StartFill()) break;
      if (fill_left_ == 0) break;  // filled: the rest of the frame is read into memory
      if (!Fill()) return;
    }
    std::byte* dst;
    size_t room;
    NextRead(&dst, &room);
    std::shared_ptr<FrameHandler> drop;
    std::lock_guard lock(mu_);
    if (closed_ || paused_.load(std::memory_order_relaxed)) {
      drop = EndReadLoopLocked();
      return;
    }
    StartReadLocked(dst, room);
  }

  void StartReadLocked(std::byte* dst, size_t room) {
    stream_.async_read_some(asio::buffer(dst, room),
                            [self = this->shared_from_this()](const std::error_code& ec, size_t n) {
                              self->OnRead(ec, n);
                            });
  }

  void OnRead(const std::error_code& ec, size_t n) {
    if (ec) {
      EndReadLoopOnError(ec == asio::error::eof ? Error() : FromAsio(ec, "read"));
      return;
    }
    end_ += n;
    ReadLoop();
  }

  // The read loop fails: stops the channel (unless closed already) and ends the loop.
  void EndReadLoopOnError(const Error& why) {
    if (!closed_.load(std::memory_order_acquire)) Stop(why);
    std::shared_ptr<FrameHandler> drop;
    std::lock_guard lock(mu_);
    drop = EndReadLoopLocked();
  }

  // --- Twrite data into pipes (SpliceWrites) ---------------------------------------------
  // Exactly a Twrite's head is buffered, its data (at least splice_write_min_ bytes) is
  // still in the socket and a pipe is free: takes the pipe (data_pipe_) and starts
  // filling it. False when the data is to be read the ordinary way.
  bool StartFill() {
    if (write_pipes_ == nullptr || end_ - begin_ != kTwriteHead) return false;
    const std::byte* head = chunk_->bytes.get() + begin_;
    uint32_t size;
    uint32_t count;
    std::memcpy(&size, head, 4);
    std::memcpy(&count, head + kTwriteCountAt, 4);
    // A size that disagrees with the count is read whole and refused by the decoder.
    if (static_cast<uint8_t>(head[4]) != kTwrite || count < splice_write_min_ ||
        size != kTwriteHead + count) {
      return false;
    }
    data_pipe_ = write_pipes_->Take();
    if (data_pipe_ == nullptr) return false;
    fill_left_ = count;
    return true;
  }

  // Moves the Twrite's data from the socket into data_pipe_ (under mu_: the descriptor is
  // closed under it). True once all of it is there, or the pipe is full (the rest is then
  // read into memory): the frame's head then counts only what is still in the socket.
  // False when the loop ended here: waiting for the socket, stopped or paused.
  bool Fill() {
    std::optional<Error> failed;
    {
      std::shared_ptr<FrameHandler> drop;
      std::lock_guard lock(mu_);
      if (closed_ || paused_.load(std::memory_order_relaxed)) {
        drop = EndReadLoopLocked();
        return false;
      }
      const int socket = stream_.native_handle();
      while (fill_left_ > 0) {
        ssize_t n = ::splice(socket, nullptr, data_pipe_->write_fd, nullptr, fill_left_,
                             SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
          data_pipe_->pending += static_cast<size_t>(n);
          fill_left_ -= static_cast<size_t>(n);
          continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) {
          int queued = 0;
          if (::ioctl(socket, FIONREAD, &queued) == 0 && queued > 0) break;  // the pipe is full
          stream_.async_wait(Stream::wait_read,
                             [self = this->shared_from_this()](const std::error_code& ec) {
                               if (ec) return self->EndReadLoopOnError(FromAsio(ec, "read"));
                               self->ReadLoop();
                             });
          return false;
        }
        if (n < 0 && errno == EINVAL && data_pipe_->pending == 0) {
          write_pipes_ = nullptr;  // this socket cannot be spliced from: read as before
          break;
        }
        failed = n == 0 ? Error() : FromErrno(errno, "splice from socket");  // EOF mid-frame
        break;
      }
    }
    if (failed) {
      EndReadLoopOnError(*failed);
      return false;
    }
    uint32_t rest = static_cast<uint32_t>(fill_left_);
    uint32_t size = static_cast<uint32_t>(kTwriteHead) + rest;
    std::byte* head = chunk_->bytes.get() + begin_;
    std::memcpy(head, &size, 4);
    std::memcpy(head + kTwriteCountAt, &rest, 4);
    fill_left_ = 0;
    if (data_pipe_->pending == 0) data_pipe_.reset();
    return true;
  }

  // Where the next read goes and how much it may take: while writes are spliced, no
  // further than the next Twrite head (or the end of the frame being read), so that the
  // data of the Twrite that follows is still in the socket when its head is here.
  void NextRead(std::byte** dst, size_t* room) {
    MakeRoom(dst, room);
    if (frames_since_large_write_ > kExactReadFrames || write_pipes_ == nullptr) return;
    const size_t avail = end_ - begin_;
    size_t want = kTwriteHead - std::min(avail, kTwriteHead);
    if (want == 0) {
      uint32_t size;
      std::memcpy(&size, chunk_->bytes.get() + begin_, 4);
      want = size - avail;  // a partial frame: DeliverFrames checked its size
    }
    *room = std::min(*room, want);
  }

  bool CompleteFrameBuffered() const {
    size_t avail = end_ - begin_;
    if (avail < 4) return false;
    uint32_t size;
    std::memcpy(&size, chunk_->bytes.get() + begin_, 4);
    return avail >= size;
  }

  // Hands out every complete frame in the buffer. False when the loop has ended here
  // (closed, paused, or handed on by ReadAhead).
  bool DeliverFrames() {
    for (;;) {
      if (ShouldStop()) return false;
      size_t avail = end_ - begin_;
      if (avail < 4) return true;
      uint32_t size;
      std::memcpy(&size, chunk_->bytes.get() + begin_, 4);  // little-endian host
      uint32_t max_frame = max_frame_.load(std::memory_order_relaxed);
      if (size < 7 || size > max_frame) {
        Stop(Error(size < 7 ? Errc::kFrameTooSmall : Errc::kFrameTooLarge,
                   fmt::format("frame of {} bytes from {} (limit {})", size, peer_, max_frame)));
        ShouldStop();
        return false;
      }
      if (avail < size) return true;
      std::span<const std::byte> frame(chunk_->bytes.get() + begin_, size);
      begin_ += size;
      frame_pipe_ = std::move(data_pipe_);  // filled for this frame, if any
      if (write_pipes_ != nullptr) {
        frames_since_large_write_ =
            IsLargeWrite(frame) ? 0 : std::min(frames_since_large_write_ + 1, kExactReadFrames + 1);
      }
      Handoff handoff;
      handoff_ = &handoff;
      (*on_frame_)(frame);
      if (handoff.done) return false;
      handoff_ = nullptr;
      frame_pipe_.reset();
    }
  }

  // A Twrite whose data is worth a pipe (counting what one holds already).
  bool IsLargeWrite(std::span<const std::byte> frame) const {
    if (frame.size() < kTwriteHead || static_cast<uint8_t>(frame[4]) != kTwrite) return false;
    uint32_t count;
    std::memcpy(&count, frame.data() + kTwriteCountAt, 4);
    return count + (frame_pipe_ ? frame_pipe_->pending : 0) >= splice_write_min_;
  }

  // A chunk of at least `size` bytes that nothing holds: a spare, or a new one.
  std::shared_ptr<Chunk> TakeChunk(size_t size) {
    for (auto it = spares_.begin(); it != spares_.end(); ++it) {
      if ((*it)->size >= size && !(*it)->held()) {
        std::shared_ptr<Chunk> c = std::move(*it);
        spares_.erase(it);
        return c;
      }
    }
    return std::make_shared<Chunk>(std::max(size, kInitialBuffer));
  }

  // Makes room after end_ for the rest of the partial frame in [begin_, end_) (or for a
  // new one), without moving bytes a retained frame still uses.
  void MakeRoom(std::byte** dst, size_t* room) {
    size_t avail = end_ - begin_;
    size_t need = 4;  // the size field, until it is known
    if (avail >= 4) {
      uint32_t size;
      std::memcpy(&size, chunk_->bytes.get() + begin_, 4);
      // Unchecked when ReadAhead comes first: never grow for a size DeliverFrames will
      // refuse anyway.
      if (size >= 7 && size <= max_frame_.load(std::memory_order_relaxed)) need = size;
    }
    const bool held = chunk_->held();
    if (avail == 0 && !held) begin_ = end_ = 0;
    if (chunk_->size - begin_ < need || end_ == chunk_->size ||
        (!held && begin_ > 0 && chunk_->size - end_ < chunk_->size / 4)) {
      if (!held && chunk_->size >= need) {
        std::memmove(chunk_->bytes.get(), chunk_->bytes.get() + begin_, avail);
      } else {
        // Retained frames keep this chunk; continue the partial frame in another.
        std::shared_ptr<Chunk> next = TakeChunk(std::max(need, chunk_->size));
        std::memcpy(next->bytes.get(), chunk_->bytes.get() + begin_, avail);
        if (held && spares_.size() < kSpareChunks) spares_.push_back(std::move(chunk_));
        chunk_ = std::move(next);
        std::erase_if(spares_, [&](const auto& c) { return c->size < chunk_->size; });
      }
      begin_ = 0;
      end_ = avail;
    }
    *dst = chunk_->bytes.get() + end_;
    *room = chunk_->size - end_;
  }

  // --- writing -------------------------------------------------------------------------
  // Writes queued frames until done or the descriptor would block (then waits for it to
  // be writable). Frames fully written move to `written`.
  void FlushLocked(std::deque<Pending>* written) {
    while (!queue_.empty()) {
      ssize_t n = queue_.front().InPipe() ? SpliceFrontLocked() : WriteQueuedLocked();
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        FailLocked(FromErrno(errno, "write"));
        return;
      }
      queued_.fetch_sub(static_cast<size_t>(n), std::memory_order_relaxed);
      size_t left = static_cast<size_t>(n);
      while (left > 0) {
        Pending& front = queue_.front();
        size_t rest = front.size() - front.done;
        if (left < rest) {
          front.done += left;
          break;
        }
        left -= rest;
        written->push_back(std::move(front));
        queue_.pop_front();
      }
    }
    writing_ = !queue_.empty();
    if (writing_) {
      writer().async_wait(
          Stream::wait_write,
          [self = this->shared_from_this()](const std::error_code& ec) { self->OnWritable(ec); });
    }
  }

  // One gathered write of queued heads and payloads, up to and including the head of
  // the first frame with spliced bytes. Bytes written, or -1 with errno.
  ssize_t WriteQueuedLocked() {
    iovec iov[kMaxIov];
    size_t count = 0;
    for (auto it = queue_.begin(); it != queue_.end() && count + 2 <= kMaxIov; ++it) {
      size_t skip = it == queue_.begin() ? it->done : 0;
      const auto& head = it->frame.head;
      const auto& payload = it->frame.payload;
      if (skip < head.size()) {
        iov[count++] = {const_cast<std::byte*>(head.data()) + skip, head.size() - skip};
        if (it->spliced > 0) break;  // the pipe's bytes follow: nothing after them here
        skip = 0;
      } else {
        skip -= head.size() + it->spliced;  // the front frame, past its pipe (InPipe is false)
      }
      if (skip < payload.size()) {
        iov[count++] = {const_cast<std::byte*>(payload.data()) + skip, payload.size() - skip};
      }
    }
    if (!is_socket_) {
      // A pipe or other descriptor (fd!R!W): writev, which raises SIGPIPE.
      size_t len = 0;
      for (size_t i = 0; i < count; ++i) len += iov[i].iov_len;
      return WithoutSigpipe(
          len, [&] { return ::writev(writer().native_handle(), iov, static_cast<int>(count)); });
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = count;
    ssize_t n;
    do {
      // No MSG_MORE before spliced bytes (nor SPLICE_F_MORE on them): over tcp it held
      // segments back and spliced reads ran at half the speed (docs/performance.md).
      n = ::sendmsg(writer().native_handle(), &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
  }

  // Moves the front frame's spliced bytes from its pipe into the socket (no copy).
  ssize_t SpliceFrontLocked() {
    Pending& front = queue_.front();
    SplicePipe& pipe = *front.frame.spliced;
    size_t want = front.frame.head.size() + front.spliced - front.done;
    ssize_t n = SpliceNoSignal(pipe.read_fd, writer().native_handle(), want);
    if (n == 0) {
      errno = EPIPE;  // the pipe was short of what it promised: the stream would be torn
      return -1;
    }
    if (n > 0) pipe.pending -= static_cast<size_t>(n);
    return n;
  }

  void OnWritable(const std::error_code& ec) {
    std::deque<Pending> written;
    std::lock_guard lock(mu_);
    if (closed_ || failed_) return;
    if (ec) {
      FailLocked(FromAsio(ec, "write"));
      return;
    }
    FlushLocked(&written);
  }

  // A write failed: drop what is queued and stop the channel from the io_context (the
  // caller holds mu_ and may hold its own locks).
  void FailLocked(const Error& why) {
    failed_ = true;
    writing_ = false;
    queued_.store(0, std::memory_order_relaxed);
    asio::post(stream_.get_executor(), [self = this->shared_from_this(), why] { self->Stop(why); });
  }

  Stream stream_;
  std::optional<Stream> writer_;
  const std::string peer_;
  const bool is_socket_;  // sendmsg (no SIGPIPE) rather than writev; splice welcome
  std::atomic<uint32_t> max_frame_{kDefaultMaxFrame};
  std::atomic<bool> paused_{false};  // written under mu_
  std::atomic<size_t> queued_{0};    // bytes not yet written

  std::mutex mu_;
  std::atomic<bool> closed_{false};  // written under mu_
  bool reading_ = false;             // guarded by mu_: a read loop runs or waits
  bool writing_ = false;             // guarded by mu_: a write wait is pending
  bool failed_ = false;              // guarded by mu_: a write failed, Stop is on its way
  std::deque<Pending> queue_;        // guarded by mu_
  CloseHandler on_close_;            // guarded by mu_

  // What ReadAhead leaves to the on_frame_ call it was made from.
  struct Handoff {
    bool done = false;
    std::shared_ptr<FrameHandler> handler;  // alive until that call returns
  };

  // The read loop's own (one loop at a time; see reading_). on_frame_ is set under mu_
  // by Start and dropped under mu_ when the loop ends on a closed channel.
  std::shared_ptr<FrameHandler> on_frame_;
  Handoff* handoff_ = nullptr;  // during an on_frame_ call
  std::shared_ptr<Chunk> chunk_;
  size_t begin_ = 0;  // first byte of the next frame
  size_t end_ = 0;    // end of the bytes read
  std::vector<std::shared_ptr<Chunk>> spares_;

  // Twrite data into pipes (SpliceWrites): set before Start; write_pipes_ is dropped by
  // the read loop if the socket cannot splice. The rest is the read loop's own.
  PipePool* write_pipes_ = nullptr;
  size_t splice_write_min_ = 0;
  unsigned frames_since_large_write_ = kExactReadFrames + 1;  // saturates there
  std::shared_ptr<SplicePipe> data_pipe_;   // of the Twrite at begin_ (filling or filled)
  size_t fill_left_ = 0;                    // its bytes still to move into data_pipe_
  std::shared_ptr<SplicePipe> frame_pipe_;  // the delivered frame's, during on_frame_
};

// Accepts connections. Its handlers may run on any thread running the io_context, and
// Close may be called from any thread: the acceptor and timer are used under
// state_->mu, which outlives *this for handlers still queued.
template <class Protocol>
class AcceptLoop final : public Listener {
 public:
  using Acceptor = typename Protocol::acceptor;
  using Socket = typename Protocol::socket;

  AcceptLoop(asio::io_context& io, Acceptor acceptor, Address address, AcceptHandler on_accept)
      : acceptor_(std::move(acceptor)),
        retry_(io),
        address_(std::move(address)),
        on_accept_(std::move(on_accept)),
        state_(std::make_shared<State>()) {
    std::lock_guard lock(state_->mu);
    AcceptLocked();
  }
  ~AcceptLoop() override { Close(); }

  const Address& address() const override { return address_; }
  void Close() override {
    std::lock_guard lock(state_->mu);
    if (!state_->alive) return;
    state_->alive = false;
    std::error_code ignored;
    acceptor_.close(ignored);
    retry_.cancel();
    if (address_.kind == Address::Kind::kUnix) ::unlink(address_.path.c_str());
  }

 private:
  struct State {
    std::mutex mu;
    bool alive = true;  // guarded by mu
  };

  void AcceptLocked() {
    acceptor_.async_accept([this, state = state_](const std::error_code& ec, Socket socket) {
      std::unique_lock lock(state->mu);
      if (!state->alive) return;
      if (ec) {
        // Out of descriptors and the like: try again shortly rather than spin.
        retry_.expires_after(std::chrono::milliseconds(100));
        retry_.async_wait([this, state](const std::error_code& e) {
          std::lock_guard retry_lock(state->mu);
          if (!e && state->alive) AcceptLocked();
        });
        return;
      }
      std::string peer = address_.ToString();
      if constexpr (std::is_same_v<Protocol, asio::ip::tcp>) {
        std::error_code ignored;
        socket.set_option(asio::ip::tcp::no_delay(true), ignored);
        auto ep = socket.remote_endpoint(ignored);
        peer = fmt::format("tcp!{}!{}", ep.address().to_string(), ep.port());
      }
      auto channel =
          std::make_shared<StreamChannel<Socket>>(std::move(socket), std::nullopt, peer, true);
      AcceptLocked();
      // Outside the lock (the handler may close this listener), and a copy: the listener
      // may be closed and destroyed meanwhile.
      AcceptHandler on_accept = on_accept_;
      lock.unlock();
      on_accept(std::move(channel));
    });
  }

  Acceptor acceptor_;
  asio::steady_timer retry_;
  Address address_;
  AcceptHandler on_accept_;
  std::shared_ptr<State> state_;
};

Result<std::unique_ptr<Listener>> ListenTcp(asio::io_context& io, const Address& address,
                                            Listener::AcceptHandler on_accept) {
  std::error_code ec;
  asio::ip::tcp::resolver resolver(io);
  auto endpoints = resolver.resolve(address.host, std::to_string(address.port),
                                    asio::ip::tcp::resolver::passive, ec);
  if (ec || endpoints.empty()) {
    return Unexpected(Error(ec ? ec : std::make_error_code(std::errc::invalid_argument),
                            "resolve " + address.host));
  }
  asio::ip::tcp::endpoint ep = *endpoints.begin();
  asio::ip::tcp::acceptor acceptor(io);
  if (acceptor.open(ep.protocol(), ec); ec) return Unexpected(FromAsio(ec, "socket"));
  acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (acceptor.bind(ep, ec); ec) {
    return Unexpected(FromAsio(ec, "bind " + address.ToString()));
  }
  if (acceptor.listen(asio::socket_base::max_listen_connections, ec); ec) {
    return Unexpected(FromAsio(ec, "listen " + address.ToString()));
  }
  Address bound = address;
  bound.port = acceptor.local_endpoint().port();
  return std::unique_ptr<Listener>(
      new AcceptLoop<asio::ip::tcp>(io, std::move(acceptor), bound, std::move(on_accept)));
}

Result<std::unique_ptr<Listener>> ListenUnix(asio::io_context& io, const Address& address,
                                             Listener::AcceptHandler on_accept) {
  auto acceptor = ListenOnUnixPath(io, address);
  if (!acceptor) return Unexpected(acceptor.error());
  return std::unique_ptr<Listener>(new AcceptLoop<asio::local::stream_protocol>(
      io, std::move(*acceptor), address, std::move(on_accept)));
}

}  // namespace

Result<asio::local::stream_protocol::acceptor> ListenOnUnixPath(asio::io_context& io,
                                                                const Address& address) {
  using asio::local::stream_protocol;
  std::error_code ec;
  if (::access(address.path.c_str(), F_OK) == 0) {
    stream_protocol::socket probe(io);
    probe.connect(stream_protocol::endpoint(address.path), ec);
    if (!ec) {
      return Unexpected(
          Error(std::errc::address_in_use, "another server listens on " + address.ToString()));
    }
    ::unlink(address.path.c_str());
  }
  stream_protocol::acceptor acceptor(io);
  if (acceptor.open(stream_protocol(), ec); ec) return Unexpected(FromAsio(ec, "socket"));
  if (acceptor.bind(stream_protocol::endpoint(address.path), ec); ec) {
    return Unexpected(FromAsio(ec, "bind " + address.ToString()));
  }
  if (acceptor.listen(asio::socket_base::max_listen_connections, ec); ec) {
    return Unexpected(FromAsio(ec, "listen " + address.ToString()));
  }
  return acceptor;
}

Result<std::unique_ptr<Listener>> Listen(asio::io_context& io, const Address& address,
                                         Listener::AcceptHandler on_accept, ListenOptions options) {
  switch (address.kind) {
    case Address::Kind::kTcp:
      return ListenTcp(io, address, std::move(on_accept));
    case Address::Kind::kUnix:
      return ListenUnix(io, address, std::move(on_accept));
    case Address::Kind::kShm:
      return ListenShm(io, address, std::move(on_accept), ShmQueues(options.shm_queues));
    case Address::Kind::kFd:
      break;
  }
  return Unexpected(
      Error(std::errc::address_family_not_supported, "cannot listen on " + address.ToString()));
}

Result<std::shared_ptr<Channel>> OpenFdChannel(asio::io_context& io, int read_fd, int write_fd) {
  using Stream = asio::posix::stream_descriptor;
  // Asio registers each descriptor with epoll once; when R and W are one descriptor the
  // writer gets its own duplicate.
  int rfd = ::dup(read_fd);
  int wfd = ::dup(write_fd);
  if (rfd < 0 || wfd < 0) {
    int err = errno;
    if (rfd >= 0) ::close(rfd);
    if (wfd >= 0) ::close(wfd);
    return Unexpected(Error(std::error_code(err, std::generic_category()), "dup"));
  }
  std::string peer = fmt::format("fd!{}!{}", read_fd, write_fd);
  // Sockets are written with MSG_NOSIGNAL; pipes and ttys with write(2).
  struct stat st;
  bool is_socket = ::fstat(rfd, &st) == 0 && S_ISSOCK(st.st_mode) && ::fstat(wfd, &st) == 0 &&
                   S_ISSOCK(st.st_mode);
  return std::shared_ptr<Channel>(
      std::make_shared<StreamChannel<Stream>>(Stream(io, rfd), Stream(io, wfd), peer, is_socket));
}

}  // namespace ninefold::transport
