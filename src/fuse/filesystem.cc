// The Filesystem's plumbing (requests, interrupts, entries) and its attribute operations.
#include "src/fuse/filesystem.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <thread>

#include "asio/post.hpp"

namespace ninefold::fuse::internal {

// Tsetattr valid bits (9P2000.L, as Linux's v9fs sends them).
constexpr uint32_t kSetMode = 0x1, kSetUid = 0x2, kSetGid = 0x4, kSetSize = 0x8;
constexpr uint32_t kSetAtime = 0x10, kSetMtime = 0x20, kSetCtime = 0x40;
constexpr uint32_t kSetAtimeSet = 0x80, kSetMtimeSet = 0x100;

// Read and write buffers kept for reuse: more than the kernel keeps in flight at once
// (12 background requests of up to 512 KiB) with room for a few synchronous ones.
constexpr size_t kKeptBuffers = 8u << 20;

uint32_t MaxIo(const Session& session) {
  uint32_t page = static_cast<uint32_t>(::sysconf(_SC_PAGESIZE));
  return std::min<uint32_t>(std::max(page, session.iounit() / page * page), 1u << 20);
}

uint32_t MaxRead(const Session& session) {
  uint32_t max = MaxIo(session);
  if (session.takes_pipes()) {
    max = std::min(max, kPipeMaxRead);
  } else if (session.shares_memory()) {
    max = std::min(max, kShmMaxRead);
  }
  return max;
}

int Errno(const Error& error) {
  const std::error_code& code = error.code();
  if (code.category() != std::generic_category() || code.value() <= 0) return EIO;
  switch (code.value()) {
    case ECANCELED:
      return EINTR;
    case ENOTCONN:
    case ETIMEDOUT:
    case EPROTO:
      return EIO;
    default:
      return code.value();
  }
}

Call::~Call() { fs->calls_.erase(id); }

Filesystem::Filesystem(std::shared_ptr<Session> session, Fid root, uint64_t root_path,
                       Options options)
    : session_(std::move(session)),
      options_(std::move(options)),
      max_read_(MaxRead(*session_)),
      buffers_(BufferPool::Create(
          [session = session_](size_t size) { return session->AllocateBuffer(size); },
          kKeptBuffers)),
      repliers_(std::clamp(std::thread::hardware_concurrency(), 1u, 8u)),
      nodes_(root, root_path) {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || !host[0])
    std::snprintf(host, sizeof host, "ninefold");
  client_id_ = host;
}

Filesystem::~Filesystem() { repliers_.join(); }

void Filesystem::Post(std::function<void()> fn) {
  asio::post(session_->get_executor(), [self = shared_from_this(), fn = std::move(fn)] { fn(); });
}

void Filesystem::Shutdown() {
  for (Fid fid : nodes_.Clear()) Clunk(fid);
}

CallPtr Filesystem::Begin(fuse_req_t req) {
  auto call = std::make_shared<Call>();
  call->fs = shared_from_this();
  call->req = req;
  call->id = next_call_++;
  calls_[call->id] = call.get();
  // Runs at once if the request was interrupted already; from a FUSE thread otherwise.
  fuse_req_interrupt_func(
      req,
      [](fuse_req_t r, void* data) {
        auto* fs = static_cast<Filesystem*>(fuse_req_userdata(r));
        uint64_t id = reinterpret_cast<uintptr_t>(data);
        fs->Post([fs, id] { fs->Interrupt(id); });
      },
      reinterpret_cast<void*>(static_cast<uintptr_t>(call->id)));
  return call;
}

void Filesystem::Interrupt(uint64_t id) {
  auto it = calls_.find(id);
  if (it == calls_.end()) return;
  it->second->signal.emit(asio::cancellation_type::all);
  for (auto& more : it->second->more) more->emit(asio::cancellation_type::all);
}

Fid Filesystem::FidOrFail(fuse_req_t req, fuse_ino_t ino) {
  std::optional<Fid> fid = nodes_.FidOf(ino);
  if (!fid) {
    fuse_reply_err(req, ESTALE);
    return wire::kNoFid;
  }
  return *fid;
}

void Filesystem::Clunk(Fid fid) {
  if (fid != wire::kNoFid) session_->AsyncClunk(fid, [](Result<void>) {});
}

void Filesystem::Fail(fuse_req_t req, const Error& error) { fuse_reply_err(req, Errno(error)); }

struct stat Filesystem::StatOf(const wire::Rgetattr& a) const {
  struct stat st = {};
  st.st_ino = a.qid.path;
  st.st_mode = a.mode;
  st.st_nlink = a.nlink;
  st.st_uid = a.uid;
  st.st_gid = a.gid;
  st.st_rdev = a.rdev;
  st.st_size = static_cast<off_t>(a.size);
  st.st_blksize = static_cast<blksize_t>(a.blksize ? a.blksize : 4096);
  st.st_blocks = static_cast<blkcnt_t>(a.blocks);
  st.st_atim = {static_cast<time_t>(a.atime_sec), static_cast<long>(a.atime_nsec)};
  st.st_mtim = {static_cast<time_t>(a.mtime_sec), static_cast<long>(a.mtime_nsec)};
  st.st_ctim = {static_cast<time_t>(a.ctime_sec), static_cast<long>(a.ctime_nsec)};
  return st;
}

fuse_entry_param Filesystem::Entry(uint64_t ino, const wire::Rgetattr& attr) const {
  fuse_entry_param e = {};
  e.ino = ino;
  e.attr = StatOf(attr);
  e.attr_timeout = options_.attr_timeout;
  e.entry_timeout = options_.entry_timeout;
  return e;
}

void Filesystem::Probe(const CallPtr& call, Fid dir, std::string name, ProbeDone done) {
  Fid fid = session_->AllocFid();
  session_->AsyncWalk(
      dir, fid, {std::move(name)},
      BindEach(call, [this, call, fid, done](Result<std::vector<wire::Qid>> walked) {
        if (!walked) {
          session_->ReleaseFid(fid);
          return done(Unexpected(walked.error()));
        }
        session_->AsyncGetattr(fid, client::kGetattrBasic,
                               BindEach(call, [this, fid, done](Result<wire::Rgetattr> a) {
                                 if (!a) {
                                   Clunk(fid);
                                   return done(Unexpected(a.error()));
                                 }
                                 done(Probed{fid, *a});
                               }));
      }));
}

fuse_entry_param Filesystem::Register(const Probed& probed) {
  NodeTable::Added added = nodes_.Add(probed.attr.qid.path, probed.fid);
  Clunk(added.surplus);
  fuse_entry_param e = Entry(added.ino, probed.attr);
  last_attr_[added.ino] = e.attr;
  return e;
}

void Filesystem::LookupChild(const CallPtr& call, Fid dir, std::string name, EntryDone done) {
  Probe(call, dir, std::move(name), [this, done](Result<Probed> p) {
    if (!p) return done(Unexpected(p.error()));
    done(Register(*p));
  });
}

void Filesystem::ReplyEntry(fuse_req_t req, Result<fuse_entry_param> entry) {
  if (!entry) return Fail(req, entry.error());
  // The kernel counts a lookup only if it received the reply.
  if (fuse_reply_entry(req, &*entry) != 0) Forget(entry->ino, 1);
}

void Filesystem::Init(fuse_conn_info* conn) {
  // One FUSE write or read becomes Session requests of at most the iounit each; let the
  // kernel send as much as one message can carry (and as libfuse's buffer holds), except
  // for reads over shm (MaxRead).
  conn->max_write = MaxIo(*session_);
  conn->max_read = max_read_;  // libfuse insists it equals the max_read mount option
  conn->max_readahead = std::min<uint32_t>(max_read_, conn->max_readahead);
  if (options_.writeback_cache && (conn->capable & FUSE_CAP_WRITEBACK_CACHE)) {
    conn->want |= FUSE_CAP_WRITEBACK_CACHE;
  } else {
    conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  }
  // Reads answered with a pipe (Read) go on into /dev/fuse by splice; without this
  // libfuse would read the pipe into memory first.
  if (session_->takes_pipes() && (conn->capable & FUSE_CAP_SPLICE_WRITE)) {
    conn->want |= FUSE_CAP_SPLICE_WRITE;
  }
  // O_TRUNC goes to the server with Tlopen instead of a separate setattr.
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  conn->time_gran = 1;
  // READDIRPLUS answers a directory read with every entry's inode and attributes, so
  // `ls -l` needs no LOOKUP and GETATTR per entry. That pays only if the kernel may keep
  // what it learns: with both timeouts 0 it looks every entry up again anyway, and the
  // lookups readdirplus made would be wasted. "auto": the kernel switches to plain
  // READDIR (one Treaddir for thousands of names) when nobody looks at the entries.
  constexpr unsigned kPlus = FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO;
  if ((options_.attr_timeout > 0 || options_.entry_timeout > 0) &&
      (conn->capable & FUSE_CAP_READDIRPLUS)) {
    conn->want |= kPlus & conn->capable;
  } else {
    conn->want &= ~kPlus;
  }
}

void Filesystem::Lookup(fuse_req_t req, fuse_ino_t parent, std::string name) {
  Fid dir = FidOrFail(req, parent);
  if (dir == wire::kNoFid) return;
  CallPtr call = Begin(req);
  LookupChild(call, dir, std::move(name),
              [this, req, call](Result<fuse_entry_param> e) { ReplyEntry(req, std::move(e)); });
}

void Filesystem::Forget(fuse_ino_t ino, uint64_t n) {
  if (std::optional<Fid> fid = nodes_.Forget(ino, n)) {
    Clunk(*fid);
    last_attr_.erase(ino);
  }
}

void Filesystem::Getattr(fuse_req_t req, fuse_ino_t ino, Fid open_fid) {
  Fid fid = open_fid;
  if (fid == wire::kNoFid && (fid = FidOrFail(req, ino)) == wire::kNoFid) return;
  GetattrOf(Begin(req), fid, ino, open_fid == wire::kNoFid);
}

void Filesystem::GetattrOf(const CallPtr& call, Fid fid, fuse_ino_t ino, bool retry) {
  session_->AsyncGetattr(
      fid, client::kGetattrBasic, Bind(call, [this, call, ino, retry](Result<wire::Rgetattr> a) {
        if (!a && a.error().code() == std::errc::no_such_file_or_directory) {
          auto it = open_.find(ino);
          if (it != open_.end() && !it->second.empty()) {
            if (retry) return GetattrOf(call, it->second.front()->fid, ino, false);
            if (auto last = last_attr_.find(ino); last != last_attr_.end()) {
              last->second.st_nlink = 0;
              return (void)fuse_reply_attr(call->req, &last->second, options_.attr_timeout);
            }
          }
        }
        if (!a) return Fail(call->req, a.error());
        struct stat st = StatOf(*a);
        last_attr_[ino] = st;
        fuse_reply_attr(call->req, &st, options_.attr_timeout);
      }));
}

void Filesystem::Setattr(fuse_req_t req, fuse_ino_t ino, struct stat attr, int to_set,
                         Fid open_fid) {
  Fid fid = open_fid;
  if (fid == wire::kNoFid && (fid = FidOrFail(req, ino)) == wire::kNoFid) return;
  wire::Tsetattr s{.fid = fid};
  if (to_set & FUSE_SET_ATTR_MODE) s.valid |= kSetMode, s.mode = attr.st_mode;
  if (to_set & FUSE_SET_ATTR_UID) s.valid |= kSetUid, s.uid = attr.st_uid;
  if (to_set & FUSE_SET_ATTR_GID) s.valid |= kSetGid, s.gid = attr.st_gid;
  if (to_set & FUSE_SET_ATTR_SIZE)
    s.valid |= kSetSize, s.size = static_cast<uint64_t>(attr.st_size);
  if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
    s.valid |= kSetAtime;  // without kSetAtimeSet: the server's clock
  } else if (to_set & FUSE_SET_ATTR_ATIME) {
    s.valid |= kSetAtime | kSetAtimeSet;
    s.atime_sec = static_cast<uint64_t>(attr.st_atim.tv_sec);
    s.atime_nsec = static_cast<uint64_t>(attr.st_atim.tv_nsec);
  }
  if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
    s.valid |= kSetMtime;
  } else if (to_set & FUSE_SET_ATTR_MTIME) {
    s.valid |= kSetMtime | kSetMtimeSet;
    s.mtime_sec = static_cast<uint64_t>(attr.st_mtim.tv_sec);
    s.mtime_nsec = static_cast<uint64_t>(attr.st_mtim.tv_nsec);
  }
  if (to_set & FUSE_SET_ATTR_CTIME) s.valid |= kSetCtime;
  CallPtr call = Begin(req);
  session_->AsyncRequest<wire::Rsetattr>(
      s, Bind(call, [this, req, call, fid](Result<wire::Rsetattr> r) {
        if (!r) return Fail(req, r.error());
        session_->AsyncGetattr(fid, client::kGetattrBasic,
                               Bind(call, [this, req, call](Result<wire::Rgetattr> a) {
                                 if (!a) return Fail(req, a.error());
                                 struct stat st = StatOf(*a);
                                 fuse_reply_attr(req, &st, options_.attr_timeout);
                               }));
      }));
}

void Filesystem::Statfs(fuse_req_t req, fuse_ino_t ino) {
  Fid fid = FidOrFail(req, ino);
  if (fid == wire::kNoFid) return;
  CallPtr call = Begin(req);
  session_->AsyncRequest<wire::Rstatfs>(wire::Tstatfs{.fid = fid},
                                        Bind(call, [this, req, call](Result<wire::Rstatfs> r) {
                                          if (!r) return Fail(req, r.error());
                                          struct statvfs v = {};
                                          v.f_bsize = v.f_frsize = r->bsize;
                                          v.f_blocks = r->blocks;
                                          v.f_bfree = r->bfree;
                                          v.f_bavail = r->bavail;
                                          v.f_files = r->files;
                                          v.f_ffree = v.f_favail = r->ffree;
                                          v.f_fsid = r->fsid;
                                          v.f_namemax = r->namelen;
                                          fuse_reply_statfs(req, &v);
                                        }));
}

}  // namespace ninefold::fuse::internal
