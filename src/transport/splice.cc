#include "ninefold/transport/splice.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

namespace ninefold::transport {
namespace {

Error SpliceError(int err, std::string what) {
  return Error(std::error_code(err, std::generic_category()), std::move(what));
}

void ClosePipe(SplicePipe& p) {
  if (p.read_fd >= 0) ::close(p.read_fd);
  if (p.write_fd >= 0) ::close(p.write_fd);
  p.read_fd = p.write_fd = -1;
}

}  // namespace

struct PipePool::State {
  std::mutex mu;
  size_t max_pipes;
  size_t pipe_bytes;
  size_t live = 0;                                // guarded by mu: pipes that exist
  std::vector<std::unique_ptr<SplicePipe>> idle;  // guarded by mu
  bool closing = false;                           // guarded by mu: the pool is gone

  // A pipe back from its user: kept when empty, closed when not (or when the pool is
  // gone).
  void Return(SplicePipe* raw) {
    std::unique_ptr<SplicePipe> p(raw);
    std::lock_guard lock(mu);
    if (p->pending == 0 && !closing) {
      idle.push_back(std::move(p));
      return;
    }
    ClosePipe(*p);
    live--;
  }
};

PipePool::PipePool(size_t max_pipes, size_t pipe_bytes) : state_(std::make_shared<State>()) {
  state_->max_pipes = max_pipes;
  state_->pipe_bytes = pipe_bytes;
}

PipePool::~PipePool() {
  std::lock_guard lock(state_->mu);
  state_->closing = true;
  for (auto& p : state_->idle) ClosePipe(*p);
  state_->live -= state_->idle.size();
  state_->idle.clear();
}

size_t PipePool::pipes() const {
  std::lock_guard lock(state_->mu);
  return state_->live;
}

std::shared_ptr<SplicePipe> PipePool::Take() {
  std::unique_ptr<SplicePipe> p;
  {
    std::lock_guard lock(state_->mu);
    if (!state_->idle.empty()) {
      p = std::move(state_->idle.back());
      state_->idle.pop_back();
    } else if (state_->live < state_->max_pipes) {
      state_->live++;  // reserved; given back below if the kernel says no
    } else {
      return nullptr;
    }
  }
  if (!p) {
    p = std::make_unique<SplicePipe>();
    int fds[2];
    bool sized = false;
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0) {
      p->read_fd = fds[0];
      p->write_fd = fds[1];
      // As large as allowed, halving from the wish: the kernel caps unprivileged pipes
      // at fs/pipe-max-size and refuses more once the user has many pipe pages. The
      // default size (64 KiB) serves if none is granted: more of a read is copied.
      for (size_t want = state_->pipe_bytes; want >= 4096 && !sized; want /= 2) {
        sized = ::fcntl(p->read_fd, F_SETPIPE_SZ, static_cast<int>(want)) > 0;
      }
      sized = sized || ::fcntl(p->read_fd, F_GETPIPE_SZ) > 0;
    }
    if (!sized) {
      ClosePipe(*p);
      std::lock_guard lock(state_->mu);
      state_->live--;
      return nullptr;
    }
  }
  return std::shared_ptr<SplicePipe>(p.release(),
                                     [state = state_](SplicePipe* raw) { state->Return(raw); });
}

void AddToRreadCount(std::span<std::byte> head, int64_t delta) {
  NINEFOLD_CHECK(head.size() == 11 && static_cast<uint8_t>(head[4]) == 117);  // Rread
  for (size_t at : {size_t{0}, size_t{7}}) {
    uint32_t v;
    std::memcpy(&v, head.data() + at, 4);  // little-endian host, as the codec
    v = static_cast<uint32_t>(v + delta);
    std::memcpy(head.data() + at, &v, 4);
  }
}

Result<size_t> FillPipe(SplicePipe& pipe, int fd, uint64_t offset, size_t count) {
  if (offset > static_cast<uint64_t>(INT64_MAX)) {
    return Unexpected(SpliceError(EINVAL, "splice offset"));
  }
  auto off = static_cast<loff_t>(offset);
  size_t moved = 0;
  while (moved < count) {
    // Non-blocking on the pipe (a full pipe ends the fill); the file side may still
    // wait for the disk, which is why this runs where blocking calls do.
    ssize_t n = ::splice(fd, &off, pipe.write_fd, nullptr, count - moved,
                         SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN && moved > 0) break;  // the pipe is full
    if (n < 0) return Unexpected(SpliceError(errno, "splice from file"));
    if (n == 0) break;  // end of file
    moved += static_cast<size_t>(n);
    pipe.pending += static_cast<size_t>(n);
  }
  return moved;
}

}  // namespace ninefold::transport
