// Payloads that never enter user memory: a server moves a read's data from the file into
// a pipe with splice(2) (the pipe then holds references to the file's page-cache pages,
// nothing is copied) and the channel moves it on from the pipe into its socket the same
// way. Over tcp or unix that leaves one copy on the whole path (the client's own receive)
// instead of three (the server's pread, its send, the client's receive).
//
// Pipes are reused through a PipePool shared by every connection of a server; a pipe
// comes back to the pool only when it was emptied (a channel closed mid-frame leaves
// bytes in it: that pipe is closed instead).
#ifndef NINEFOLD_TRANSPORT_SPLICE_H_
#define NINEFOLD_TRANSPORT_SPLICE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "ninefold/base/result.h"

namespace ninefold::transport {

// One pipe. `pending`: bytes in it not yet moved on (written by one thread at a time:
// the filler, then the channel that sends it).
struct SplicePipe {
  int read_fd = -1;
  int write_fd = -1;
  size_t pending = 0;
};

class PipePool {
 public:
  // At most `max_pipes` pipes exist at once (each counts against the user's pipe page
  // limit, fs/pipe-user-pages-soft); each is sized up to `pipe_bytes` (the kernel's
  // fs/pipe-max-size may cap it lower).
  PipePool(size_t max_pipes, size_t pipe_bytes);
  ~PipePool();
  PipePool(const PipePool&) = delete;
  PipePool& operator=(const PipePool&) = delete;

  // An empty pipe, or null when `max_pipes` are in use or the kernel refuses a new one
  // (the caller then reads the ordinary way). Thread-safe.
  std::shared_ptr<SplicePipe> Take();

  // Pipes that exist now (in use or idle), for tests.
  size_t pipes() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// An Rread's head (size[4] type[1] tag[2] count[4]: 11 bytes in every dialect) whose
// data grows or shrinks by `delta` bytes apart from what follows the head in memory
// (bytes waiting in a pipe): adds `delta` to its size and count fields.
void AddToRreadCount(std::span<std::byte> head, int64_t delta);

// Moves up to `count` bytes of `fd` (a regular file) at `offset` into `pipe`, without
// copying them. Returns the bytes moved: fewer than `count` at end of file or when the
// pipe is full (page-granular: data starting mid-page needs one slot more). Errors are
// splice(2)'s: EINVAL or ENOSYS when the file system cannot splice (read it instead).
[[nodiscard]] Result<size_t> FillPipe(SplicePipe& pipe, int fd, uint64_t offset, size_t count);

}  // namespace ninefold::transport

#endif  // NINEFOLD_TRANSPORT_SPLICE_H_
