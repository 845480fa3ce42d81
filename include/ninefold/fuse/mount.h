// Mount: a 9P2000.L tree as a Linux file system, through FUSE (libfuse3's low-level API).
//
//   Result<ninefold::Link> link = ninefold::dial("tcp!127.0.0.1!5640");
//   Result<ninefold::Fs> root = ninefold::fsmount(*link, {.aname = "/srv/export"});
//   Result<std::unique_ptr<fuse::Mount>> m =
//       fuse::Mount::Create(root->session(), root->root_fid(), "/mnt/9p", {});
//   Result<void> served = (*m)->Run();   // until `fusermount3 -u /mnt/9p` or SIGTERM
//
// Every FUSE request becomes one or a few asynchronous Session operations and is answered
// from their completions: any number of requests are in flight at once, and the FUSE
// threads only read requests and hand them to the session's io thread. Inode numbers
// (st_ino) are the qids' paths, so they are stable for as long as the server keeps them;
// each inode the kernel knows holds one walked fid, clunked when the kernel forgets it.
// An interrupted system call flushes its requests (Tflush) and fails with EINTR; a lost
// server makes every operation fail with EIO at once (see Options::deadline for a server
// that stops answering). Only 9P2000.L sessions are supported (EPROTONOSUPPORT else).
//
// Threading: Create, Run and the destructor belong to one thread; Exit may be called from
// any thread. The Session (and its io thread) must outlive the Mount; the root fid stays
// the caller's and is not clunked.
#ifndef NINEFOLD_FUSE_MOUNT_H_
#define NINEFOLD_FUSE_MOUNT_H_

#include <memory>
#include <string>
#include <vector>

#include "ninefold/base/result.h"
#include "ninefold/client/session.h"

namespace ninefold::fuse {

struct Options {
  // How long the kernel may cache attributes and names (seconds). 0, the default, asks
  // the server every time: nothing stale is ever seen.
  double attr_timeout = 0;
  double entry_timeout = 0;
  // The kernel's writeback cache: writes are gathered in the page cache and sent later
  // (faster small writes; another client sees them only after fsync/close). Off by default.
  bool writeback_cache = false;
  // Options for libfuse and the kernel, as after -o (e.g. "allow_other", "ro",
  // "fsname=x"). allow_other also turns on default_permissions: the server sees every
  // caller as the user who attached, so the kernel must check permissions.
  std::vector<std::string> fuse_options;
  // Threads reading /dev/fuse (they never wait for the server).
  unsigned max_threads = 4;
};

class Mount {
 public:
  // Mounts the tree below `root` (an attached fid of `session`) on `mountpoint`. Fails
  // with the cause (EPROTONOSUPPORT for a dialect other than 9P2000.L, the mount's errno,
  // the root's getattr error) and leaves nothing mounted then.
  [[nodiscard]] static Result<std::unique_ptr<Mount>> Create(
      std::shared_ptr<client::Session> session, client::Session::Fid root, std::string mountpoint,
      Options options);
  // Unmounts (if still mounted) and clunks every fid the mount holds.
  ~Mount();
  Mount(const Mount&) = delete;
  Mount& operator=(const Mount&) = delete;

  // Serves requests until the file system is unmounted, Exit is called or SIGINT/SIGTERM/
  // SIGHUP arrives (handlers are installed for the duration).
  [[nodiscard]] Result<void> Run();
  // Makes Run return once the FUSE threads wake (at the next request or signal); from a
  // signal handler or any thread. Unmounting is the prompt way to end Run.
  void Exit();

  struct State;  // private (src/fuse/)

 private:
  explicit Mount(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace ninefold::fuse

#endif  // NINEFOLD_FUSE_MOUNT_H_
