// Open files and directories: each open clones the inode's fid and opens the clone
// (Tlopen/Tlcreate), so every open file has a fid of its own for I/O and locks.
#include <dirent.h>
#include <fcntl.h>

#include <algorithm>
#include <cstring>

#include "asio/post.hpp"
#include "ninefold/base/log.h"
#include "src/fuse/filesystem.h"

namespace ninefold::fuse::internal {

namespace {

// The open flags a server is asked for: access mode and the flags that change what
// reads and writes mean; never O_DIRECT (the server's buffers need not be aligned).
uint32_t ServerFlags(int flags, bool writeback) {
  uint32_t keep = O_ACCMODE | O_TRUNC | O_APPEND | O_SYNC | O_DSYNC | O_CREAT | O_EXCL;
  uint32_t f = static_cast<uint32_t>(flags) & keep;
  if (writeback) {
    // The kernel fills partial pages by reading, and appends by itself.
    if ((f & O_ACCMODE) == O_WRONLY) f = (f & ~uint32_t{O_ACCMODE}) | O_RDWR;
    f &= ~uint32_t{O_APPEND};
  }
  return f;
}

}  // namespace

// How the kernel may cache an open file, set in the open or create reply. Cached pages are
// dropped at every open unless the caller allowed caching: close-to-open consistency with
// other clients. A file opened with O_DIRECT is read and written directly
// (FOPEN_DIRECT_IO): that is what O_DIRECT asks for, and it keeps the kernel from asking
// for the attributes before every read (with the default attr timeout of 0 and
// FUSE_CAP_AUTO_INVAL_DATA it sends a GETATTR ahead of each read that goes through the
// page-cache path, O_DIRECT reads included: a third of the requests of fio's 1 MiB
// O_DIRECT reads, each a round trip the read waits for).
void Filesystem::SetCaching(fuse_file_info& fi, bool dir) const {
  fi.keep_cache = options_.attr_timeout > 0 || options_.writeback_cache;
  fi.direct_io = !dir && (fi.flags & O_DIRECT) != 0;
}

void Filesystem::Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info fi, bool dir) {
  Fid node = FidOrFail(req, ino);
  if (node == wire::kNoFid) return;
  CallPtr call = Begin(req);
  Fid fid = session_->AllocFid();
  uint32_t flags = dir ? O_RDONLY : ServerFlags(fi.flags, options_.writeback_cache);
  flags &= ~uint32_t{O_CREAT | O_EXCL};
  session_->AsyncWalk(
      node, fid, {},
      Bind(call, [this, req, call, fid, fi, dir, flags, ino](Result<std::vector<wire::Qid>> w) {
        if (!w) {
          session_->ReleaseFid(fid);
          return Fail(req, w.error());
        }
        session_->AsyncRequest<wire::Rlopen>(
            wire::Tlopen{.fid = fid, .flags = flags},
            Bind(call, [this, req, call, fid, fi, dir, ino](Result<wire::Rlopen> r) mutable {
              if (!r) {
                Clunk(fid);
                return Fail(req, r.error());
              }
              auto* h = new Handle{.fid = fid, .dir = dir, .ino = ino};
              fi.fh = reinterpret_cast<uint64_t>(h);
              SetCaching(fi, dir);
              open_[ino].push_back(h);
              if (fuse_reply_open(req, &fi) != 0) Drop(h);
            }));
      }));
}

// A new file: Twalk (clone of the directory's fid), Tlcreate (the clone becomes the new,
// open file), then the walk to the new name (the inode's own fid) and the Tgetattr of
// the open file together, as neither names a fid the other makes: three round trips
// instead of four. (A request never names a fid whose Twalk or Tlcreate is still
// unanswered: see Probe.)
struct Filesystem::CreateState {
  CallPtr call;
  Fid fid;   // the clone that becomes the open file
  Fid node;  // walked to the new name: the inode's fid
  fuse_file_info fi;
  int pending = 2;
  Result<std::vector<wire::Qid>> walked = Unexpected(Error(std::errc::io_error, "not walked"));
  Result<wire::Rgetattr> attr = Unexpected(Error(std::errc::io_error, "no attributes"));
};

void Filesystem::Create(fuse_req_t req, fuse_ino_t parent, std::string name, mode_t mode,
                        fuse_file_info fi) {
  Fid dir = FidOrFail(req, parent);
  if (dir == wire::kNoFid) return;
  auto s = std::make_shared<CreateState>();
  s->call = Begin(req);
  s->fid = session_->AllocFid();
  s->fi = fi;
  uint32_t flags = ServerFlags(fi.flags, options_.writeback_cache) | O_CREAT;
  uint32_t gid = fuse_req_ctx(req)->gid;
  const CallPtr& call = s->call;
  session_->AsyncWalk(
      dir, s->fid, {},
      Bind(call, [this, s, dir, name, mode, flags, gid](Result<std::vector<wire::Qid>> w) {
        if (!w) {
          session_->ReleaseFid(s->fid);
          return Fail(s->call->req, w.error());
        }
        session_->AsyncRequest<wire::Rlcreate>(
            wire::Tlcreate{
                .fid = s->fid, .name = name, .flags = flags, .mode = mode & 07777, .gid = gid},
            Bind(s->call, [this, s, dir, name](Result<wire::Rlcreate> r) {
              if (!r) {
                Clunk(s->fid);
                return Fail(s->call->req, r.error());
              }
              s->node = session_->AllocFid();
              session_->AsyncWalk(
                  dir, s->node, {name},
                  BindEach(s->call, [this, s](Result<std::vector<wire::Qid>> walked) {
                    s->walked = std::move(walked);
                    FinishCreate(s);
                  }));
              session_->AsyncGetattr(s->fid, client::kGetattrBasic,
                                     BindEach(s->call, [this, s](Result<wire::Rgetattr> a) {
                                       s->attr = std::move(a);
                                       FinishCreate(s);
                                     }));
            }));
      }));
}

// Runs when both the walk to the new name and the Tgetattr are answered.
void Filesystem::FinishCreate(const std::shared_ptr<CreateState>& s) {
  if (--s->pending > 0) return;
  fuse_req_t req = s->call->req;
  if (!s->walked || !s->attr) {
    if (s->walked) {
      Clunk(s->node);
    } else {
      session_->ReleaseFid(s->node);
    }
    Clunk(s->fid);
    return Fail(req, s->walked ? s->attr.error() : s->walked.error());
  }
  fuse_entry_param e = Register(Probed{s->node, *s->attr});
  auto* h = new Handle{.fid = s->fid, .ino = e.ino};
  fuse_file_info fi = s->fi;
  fi.fh = reinterpret_cast<uint64_t>(h);
  SetCaching(fi, false);
  open_[h->ino].push_back(h);
  if (fuse_reply_create(req, &e, &fi) != 0) {
    Forget(e.ino, 1);
    Drop(h);
  }
}

void Filesystem::Read(fuse_req_t req, Handle* h, size_t size, off_t off) {
  CallPtr call = Begin(req);
  // On a shared-memory session the buffer lies in the arena, and the server reads the
  // file straight into it: the kernel's copy into the reader's pages is the only other.
  // Better still, a server that can splice the file hands over a pipe holding its pages,
  // which goes on into /dev/fuse by splice: the kernel's copy is then the only one.
  PooledBytes data = TakeBuffer(size);
  session_->AsyncReadPiped(h->fid, static_cast<uint64_t>(off), data.bytes,
                           Bind(call, [this, req, call, data](Result<client::PipedRead> r) {
                             if (!r) return (void)fuse_reply_err(req, Errno(r.error()));
                             auto reply = [req, data, r = std::move(*r)] {
                               if (r.pipe) return ReplyFromPipe(req, *r.pipe, r.bytes);
                               fuse_reply_buf(req, reinterpret_cast<const char*>(data.bytes.data()),
                                              r.bytes);
                             };
                             // Small answers cost less than the hand-over to another thread.
                             if (r->bytes < kReplyElsewhereFrom) return reply();
                             asio::post(repliers_, std::move(reply));
                           }));
}

void Filesystem::ReplyFromPipe(fuse_req_t req, const client::PipeEnd& pipe, size_t bytes) {
  // Without waiting: the server may hold the pipe's ends too (a short reply then).
  fuse_bufvec from = FUSE_BUFVEC_INIT(bytes);
  from.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD);
  from.buf[0].fd = pipe.fd();
  int err = fuse_reply_data(req, &from, FUSE_BUF_SPLICE_NONBLOCK);
  if (err != 0) Log(LogLevel::kDebug, "fuse read reply from a pipe: {}", std::strerror(-err));
}

void Filesystem::Write(fuse_req_t req, Handle* h, PooledBytes data, off_t off) {
  CallPtr call = Begin(req);
  session_->AsyncWrite(h->fid, static_cast<uint64_t>(off), data.bytes,
                       Bind(call, [req, call, data](Result<size_t> n) {
                         if (!n) return (void)fuse_reply_err(req, Errno(n.error()));
                         fuse_reply_write(req, *n);
                       }));
}

void Filesystem::Release(fuse_req_t req, Handle* h) {
  Drop(h);
  fuse_reply_err(req, 0);
}

void Filesystem::Drop(Handle* h) {
  auto it = open_.find(h->ino);
  if (it != open_.end()) {
    std::erase(it->second, h);
    if (it->second.empty()) open_.erase(it);
  }
  Clunk(h->fid);
  delete h;
}

void Filesystem::Fsync(fuse_req_t req, Handle* h, bool datasync) {
  CallPtr call = Begin(req);
  session_->AsyncRequest<wire::Rfsync>(wire::Tfsync{.fid = h->fid, .datasync = datasync ? 1u : 0u},
                                       Bind(call, [req, call](Result<wire::Rfsync> r) {
                                         fuse_reply_err(req, r ? 0 : Errno(r.error()));
                                       }));
}

}  // namespace ninefold::fuse::internal
