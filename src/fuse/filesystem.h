// Private to the fuse layer: the FUSE low-level operations on top of a Session.
//
// Threading: the FUSE threads only copy each request's arguments and post it to the
// session's io thread (Enqueue); every member below runs there, so the node table, the
// open handles and the interrupt registry need no locks. Replies (fuse_reply_*) are sent
// from Session completions, also on the io thread: nothing here ever blocks on the server.
#ifndef NINEFOLD_SRC_FUSE_FILESYSTEM_H_
#define NINEFOLD_SRC_FUSE_FILESYSTEM_H_

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "asio/bind_cancellation_slot.hpp"
#include "asio/cancellation_signal.hpp"
#include "asio/thread_pool.hpp"
#include "ninefold/client/session.h"
#include "ninefold/fuse/mount.h"
#include "src/fuse/buffer_pool.h"
#include "src/fuse/node_table.h"

namespace ninefold::fuse::internal {

using client::Session;

// The errno a FUSE reply carries for a Session error: the server's errno; EINTR for an
// interrupted (flushed) request; EIO for a lost connection, a deadline or a protocol
// fault.
int Errno(const Error& error);

// The largest FUSE read or write: what one Rread/Twrite carries, in whole pages, at most
// 1 MiB (libfuse's buffer).
uint32_t MaxIo(const Session& session);
// The largest FUSE read: MaxIo, but at most kShmMaxRead on a shared-memory session whose
// reads are copied (placed in the arena), kPipeMaxRead on one whose reads may come as
// pipes.
uint32_t MaxRead(const Session& session);
// Over shm a placed read's data is copied twice (the server's pread into the arena, the
// kernel's from there into the reader's pages), and both copies are faster when what is
// in flight stays in the caches: the kernel keeps up to 12 FUSE reads in flight
// (max_background), 3 MiB at 256 KiB. fio's 1 MiB O_DIRECT reads measured ~10% faster at
// 256 KiB than at 508 KiB (128 KiB: about the same as 256; 1020 KiB, with --msize 1M:
// ~25% slower; docs/fuse-performance.md). Over sockets the cost per request dominates
// instead, and 256 KiB was ~20% slower over tcp.
constexpr uint32_t kShmMaxRead = 256 * 1024;
// A read that comes as a pipe is copied once, by the kernel, and fewer, larger requests
// measured ~8% faster (508 KiB against 256 KiB). libfuse splices the reply through a pipe
// of its own that must hold the header and the data within fs/pipe-max-size (1 MiB by
// default): past that it would read the pipe into memory instead.
constexpr uint32_t kPipeMaxRead = 512 * 1024;
// Reads of this size or more are answered from Filesystem::repliers_, not the io thread.
constexpr size_t kReplyElsewhereFrom = 64 * 1024;

// An open file or directory (fuse_file_info::fh points at one).
struct Handle {
  Fid fid = wire::kNoFid;
  bool dir = false;
  fuse_ino_t ino = 0;
  // Directories: the entries of the last Treaddir, which began at `first_offset`; the
  // kernel reads a page of entries at a time, so one Treaddir serves several readdirs.
  std::vector<client::DirEntry> entries;
  uint64_t first_offset = 0;
};

class Filesystem;

// One FUSE request in flight: a FUSE interrupt of it emits `signal`, which cancels (and
// flushes) the Session operation bound to it at the time.
struct Call {
  std::shared_ptr<Filesystem> fs;  // kept alive until its last request completes
  fuse_req_t req;
  uint64_t id;
  asio::cancellation_signal signal;
  // A signal for each operation that runs beside others of this request (a signal's
  // slot holds one handler at a time); an interrupt emits these too.
  std::vector<std::unique_ptr<asio::cancellation_signal>> more;
  ~Call();
};
using CallPtr = std::shared_ptr<Call>;

class Filesystem : public std::enable_shared_from_this<Filesystem> {
 public:
  Filesystem(std::shared_ptr<Session> session, Fid root, uint64_t root_path, Options options);
  ~Filesystem();

  static const fuse_lowlevel_ops& Ops();
  const Options& options() const { return options_; }
  // MaxRead of the session, fixed at construction: the max_read mount option and Init's
  // conn->max_read must agree.
  uint32_t max_read() const { return max_read_; }
  // io thread: clunks every fid the table holds (at unmount).
  void Shutdown();
  // Any thread, once no FUSE request will come: waits for the replies being made and
  // ends the threads that make them; replies for reads still in flight are dropped. Before
  // fuse_session_destroy: libfuse gives each thread that replies by splice a pipe of its
  // own, freed when the thread ends while the session exists (else leaked).
  void StopReplying() { repliers_.join(); }

  // --- requests, on the io thread ---------------------------------------------------------
  void Init(fuse_conn_info* conn);
  void Lookup(fuse_req_t req, fuse_ino_t parent, std::string name);
  void Forget(fuse_ino_t ino, uint64_t n);
  void Getattr(fuse_req_t req, fuse_ino_t ino, Fid open_fid);
  // Replies with fid's attributes; on ENOENT tries an open fid of `ino` (if `retry`),
  // then the last attributes seen.
  void GetattrOf(const CallPtr& call, Fid fid, fuse_ino_t ino, bool retry);
  void Setattr(fuse_req_t req, fuse_ino_t ino, struct stat attr, int to_set, Fid open_fid);
  void Readlink(fuse_req_t req, fuse_ino_t ino);
  void Mknod(fuse_req_t req, fuse_ino_t parent, std::string name, mode_t mode, dev_t rdev);
  void Mkdir(fuse_req_t req, fuse_ino_t parent, std::string name, mode_t mode);
  void Symlink(fuse_req_t req, std::string target, fuse_ino_t parent, std::string name);
  void Link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent, std::string name);
  void Remove(fuse_req_t req, fuse_ino_t parent, std::string name, bool dir);
  void Rename(fuse_req_t req, fuse_ino_t parent, std::string name, fuse_ino_t new_parent,
              std::string new_name, unsigned flags);
  void Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info fi, bool dir);
  void Create(fuse_req_t req, fuse_ino_t parent, std::string name, mode_t mode, fuse_file_info fi);
  void Read(fuse_req_t req, Handle* h, size_t size, off_t off);
  // Answers a read with `bytes` waiting in `pipe` (spliced into /dev/fuse).
  static void ReplyFromPipe(fuse_req_t req, const client::PipeEnd& pipe, size_t bytes);
  // `data` comes from TakeBuffer (so over shm it is sent by reference).
  void Write(fuse_req_t req, Handle* h, PooledBytes data, off_t off);
  void Release(fuse_req_t req, Handle* h);
  // Forgets an open file or directory and clunks its fid.
  void Drop(Handle* h);
  // keep_cache and direct_io of an open or create reply.
  void SetCaching(fuse_file_info& fi, bool dir) const;
  void Fsync(fuse_req_t req, Handle* h, bool datasync);
  // READDIR, or READDIRPLUS when `plus` (each entry with its inode and attributes).
  void Readdir(fuse_req_t req, Handle* h, size_t size, off_t off, bool plus);
  void Statfs(fuse_req_t req, fuse_ino_t ino);
  void Getxattr(fuse_req_t req, fuse_ino_t ino, std::string name, size_t size);
  void Setxattr(fuse_req_t req, fuse_ino_t ino, std::string name,
                std::shared_ptr<std::vector<char>> value, int flags);
  void Removexattr(fuse_req_t req, fuse_ino_t ino, std::string name);
  void Getlk(fuse_req_t req, Handle* h, struct flock lock);
  // POSIX (fcntl) and flock locks alike: Tlock on the open file's fid.
  // type: F_RDLCK, F_WRLCK or F_UNLCK; length 0: to the end of the file.
  void Setlk(fuse_req_t req, Handle* h, short type, uint64_t start, uint64_t length, uint32_t pid,
             bool wait);
  void Interrupt(uint64_t id);

  // Posts `fn` to the io thread (keeping the Filesystem alive until it ran). Any thread.
  void Post(std::function<void()> fn);
  // Memory for a read's data or a write's (Session::AllocateBuffer, kept for reuse): in
  // the shared-memory arena on an shm session, so the server reads into it, or writes
  // from it, itself; else private. Any thread.
  PooledBytes TakeBuffer(size_t size) { return buffers_->Take(size); }

 private:
  using EntryDone = std::function<void(Result<fuse_entry_param>)>;
  // A name walked to a fid of its own, and its attributes.
  struct Probed {
    Fid fid;
    wire::Rgetattr attr;
  };
  using ProbeDone = std::function<void(Result<Probed>)>;
  struct CreateState;

  CallPtr Begin(fuse_req_t req);
  // `fn` as a completion token whose cancellation is the request's interrupt.
  template <class F>
  auto Bind(const CallPtr& call, F fn) {
    return asio::bind_cancellation_slot(call->signal.slot(), std::move(fn));
  }
  // The same for an operation in flight beside others of the same request.
  template <class F>
  auto BindEach(const CallPtr& call, F fn) {
    call->more.push_back(std::make_unique<asio::cancellation_signal>());
    return asio::bind_cancellation_slot(call->more.back()->slot(), std::move(fn));
  }
  // The fid of `ino`, or replies ESTALE and returns kNoFid.
  Fid FidOrFail(fuse_req_t req, fuse_ino_t ino);
  void Clunk(Fid fid);
  void Fail(fuse_req_t req, const Error& error);
  // Walks dir/name to a new fid, then gets its attributes. A request never names a fid
  // before the Twalk that makes it is answered: servers may run the requests of one
  // connection in any order, and diod 1.0.24 crashes when a request names a fid being
  // made. On failure the fid is released; on success it is the caller's.
  void Probe(const CallPtr& call, Fid dir, std::string name, ProbeDone done);
  // The kernel learns (once more) of the file `probed` names: registers it in the node
  // table, counting one lookup, and returns its entry.
  fuse_entry_param Register(const Probed& probed);
  // Walks dir/name to a new fid, registers the inode and completes with its entry.
  void LookupChild(const CallPtr& call, Fid dir, std::string name, EntryDone done);
  // Replies with the entry (or the error); undoes the lookup if the kernel never got it.
  void ReplyEntry(fuse_req_t req, Result<fuse_entry_param> entry);
  // Sends `request` (answered by an R), then answers with the entry dir/name (ops_names.cc).
  template <class R, class Request>
  void MakeThenLookup(fuse_req_t req, const Request& request, Fid dir, std::string name);
  fuse_entry_param Entry(uint64_t ino, const wire::Rgetattr& attr) const;
  struct stat StatOf(const wire::Rgetattr& attr) const;
  // Tlock until granted (or refused, when !wait).
  void LockLoop(const CallPtr& call, Fid fid, wire::Tlock request, bool wait);
  void RemoveByFid(const CallPtr& call, Fid dir, std::string name);
  void RenameByFid(const CallPtr& call, Fid from, std::string name, Fid to, std::string new_name);
  void FinishCreate(const std::shared_ptr<CreateState>& s);
  void ReadMore(fuse_req_t req, Handle* h, size_t size, uint64_t off, bool plus);
  void ReplyDir(fuse_req_t req, Handle* h, size_t index, size_t size, bool plus);
  // READDIRPLUS: looks up the buffered entries from `index` that fit in `size`, all at
  // once, and replies with them (ops_dir.cc).
  void ReplyDirPlus(fuse_req_t req, Handle* h, size_t index, size_t size);

  const std::shared_ptr<Session> session_;
  const Options options_;
  const uint32_t max_read_;
  const std::shared_ptr<BufferPool> buffers_;
  // Answers large reads (Read): answering copies the data into the reader's pages (the
  // kernel does, in the thread that answers), so the session's io thread hands that to
  // these and takes the next reply meanwhile. One per CPU. Nothing posted here holds
  // the Filesystem (StopReplying, or else the destructor, joins them).
  asio::thread_pool repliers_;
  NodeTable nodes_;
  std::unordered_map<uint64_t, Call*> calls_;  // by Call::id
  // Open files by inode: a getattr that finds the name gone (a path-based server after
  // unlink) asks an open fid instead.
  std::unordered_map<fuse_ino_t, std::vector<Handle*>> open_;
  // The last attributes the server gave for each inode the kernel knows: a path-based
  // server (diod) cannot stat a file that was unlinked while open, not even through its
  // open fid, so a stat of an open file answers from these then (with no links left).
  std::unordered_map<fuse_ino_t, struct stat> last_attr_;
  uint64_t next_call_ = 1;
  bool has_unlinkat_ = true;  // false once the server answered EOPNOTSUPP
  bool has_renameat_ = true;
  std::string client_id_;  // Tlock/Tgetlock client_id: this host's name
  friend struct Call;
};

}  // namespace ninefold::fuse::internal

#endif  // NINEFOLD_SRC_FUSE_FILESYSTEM_H_
