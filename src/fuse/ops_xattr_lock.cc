// Extended attributes (Txattrwalk / Txattrcreate) and locks (Tlock / Tgetlock).
#include <fcntl.h>
#include <sys/file.h>

#include <chrono>

#include "asio/steady_timer.hpp"
#include "src/fuse/filesystem.h"

namespace ninefold::fuse::internal {

namespace {

// 9P2000.L lock types, Tlock flags and Rlock status values.
constexpr uint8_t kLockRead = 0, kLockWrite = 1, kLockUnlock = 2;
constexpr uint32_t kLockFlagBlock = 1;
constexpr uint8_t kLockSuccess = 0, kLockBlocked = 1;
// How long to wait before asking again for a lock the server said is held.
constexpr auto kLockRetry = std::chrono::milliseconds(50);
constexpr int kXattrReplace = 2;  // XATTR_REPLACE

uint8_t LockType(short posix) {
  return posix == F_RDLCK ? kLockRead : posix == F_WRLCK ? kLockWrite : kLockUnlock;
}

}  // namespace

void Filesystem::Getxattr(fuse_req_t req, fuse_ino_t ino, std::string name, size_t size) {
  Fid node = FidOrFail(req, ino);
  if (node == wire::kNoFid) return;
  CallPtr call = Begin(req);
  Fid fid = session_->AllocFid();
  // An empty name lists the names (listxattr).
  session_->AsyncRequest<wire::Rxattrwalk>(
      wire::Txattrwalk{.fid = node, .newfid = fid, .name = name},
      Bind(call, [this, req, call, fid, size](Result<wire::Rxattrwalk> w) {
        if (!w) {
          session_->ReleaseFid(fid);
          return Fail(req, w.error());
        }
        if (size == 0) {
          Clunk(fid);
          return (void)fuse_reply_xattr(req, w->size);
        }
        if (w->size > size) {
          Clunk(fid);
          return (void)fuse_reply_err(req, ERANGE);
        }
        auto buf = std::make_shared<std::vector<std::byte>>(w->size);
        session_->AsyncRead(fid, 0, *buf, Bind(call, [this, req, call, fid, buf](Result<size_t> n) {
                              Clunk(fid);
                              if (!n) return Fail(req, n.error());
                              fuse_reply_buf(req, reinterpret_cast<const char*>(buf->data()), *n);
                            }));
      }));
}

void Filesystem::Setxattr(fuse_req_t req, fuse_ino_t ino, std::string name,
                          std::shared_ptr<std::vector<char>> value, int flags) {
  Fid node = FidOrFail(req, ino);
  if (node == wire::kNoFid) return;
  CallPtr call = Begin(req);
  Fid fid = session_->AllocFid();
  // Txattrcreate turns a clone of the inode's fid into the attribute; the value is
  // written to it, and the clunk sets it (and reports whether that worked).
  auto fail_clunk = [this, req](Fid f, const Error& e) {
    Clunk(f);
    Fail(req, e);
  };
  session_->AsyncWalk(node, fid, {}, Bind(call, [=, this](Result<std::vector<wire::Qid>> w) {
                        if (!w) {
                          session_->ReleaseFid(fid);
                          return Fail(req, w.error());
                        }
                        session_->AsyncRequest<wire::Rxattrcreate>(
                            wire::Txattrcreate{.fid = fid,
                                               .name = name,
                                               .attr_size = value->size(),
                                               .flags = static_cast<uint32_t>(flags)},
                            Bind(call, [=, this](Result<wire::Rxattrcreate> c) {
                              if (!c) return fail_clunk(fid, c.error());
                              auto commit = [=, this] {
                                session_->AsyncClunk(fid, Bind(call, [req, call](Result<void> r) {
                                                       fuse_reply_err(req,
                                                                      r ? 0 : Errno(r.error()));
                                                     }));
                              };
                              if (value->empty()) return commit();
                              std::span<const std::byte> src(
                                  reinterpret_cast<const std::byte*>(value->data()), value->size());
                              session_->AsyncWrite(fid, 0, src, Bind(call, [=](Result<size_t> n) {
                                                     if (!n) return fail_clunk(fid, n.error());
                                                     commit();
                                                   }));
                            }));
                      }));
}

void Filesystem::Removexattr(fuse_req_t req, fuse_ino_t ino, std::string name) {
  // As Linux's v9fs sends it: an empty Txattrcreate with XATTR_REPLACE.
  Setxattr(req, ino, std::move(name), std::make_shared<std::vector<char>>(), kXattrReplace);
}

void Filesystem::Getlk(fuse_req_t req, Handle* h, struct flock lock) {
  CallPtr call = Begin(req);
  wire::Tgetlock g{.fid = h->fid,
                   .type = LockType(lock.l_type),
                   .start = static_cast<uint64_t>(lock.l_start),
                   .length = static_cast<uint64_t>(lock.l_len),
                   .proc_id = static_cast<uint32_t>(lock.l_pid)};
  session_->AsyncGetlock(
      g, client_id_, Bind(call, [req, call](Result<client::LockInfo> r) {
        if (!r) return (void)fuse_reply_err(req, Errno(r.error()));
        struct flock out = {};
        out.l_whence = SEEK_SET;
        out.l_type = r->type == kLockRead ? F_RDLCK : r->type == kLockWrite ? F_WRLCK : F_UNLCK;
        out.l_start = static_cast<off_t>(r->start);
        out.l_len = static_cast<off_t>(r->length);
        out.l_pid = static_cast<pid_t>(r->proc_id);
        fuse_reply_lock(req, &out);
      }));
}

void Filesystem::Setlk(fuse_req_t req, Handle* h, short type, uint64_t start, uint64_t length,
                       uint32_t pid, bool wait) {
  CallPtr call = Begin(req);
  wire::Tlock l{.fid = h->fid,
                .type = LockType(type),
                .flags = wait ? kLockFlagBlock : 0,
                .start = start,
                .length = length,
                .proc_id = pid};
  LockLoop(call, h->fid, l, wait);
}

void Filesystem::LockLoop(const CallPtr& call, Fid fid, wire::Tlock request, bool wait) {
  request.fid = fid;
  request.client_id = client_id_;
  session_->AsyncRequest<wire::Rlock>(
      request, Bind(call, [this, call, fid, request, wait](Result<wire::Rlock> r) {
        fuse_req_t req = call->req;
        if (!r) return Fail(req, r.error());
        if (r->status == kLockSuccess) return (void)fuse_reply_err(req, 0);
        if (r->status != kLockBlocked) return (void)fuse_reply_err(req, ENOLCK);
        if (!wait) return (void)fuse_reply_err(req, EAGAIN);
        // Held by someone else: ask again a little later (as Linux's v9fs does); an
        // interrupt cancels the wait.
        auto timer = std::make_shared<asio::steady_timer>(session_->get_executor(), kLockRetry);
        timer->async_wait(Bind(call, [this, call, fid, request, timer](std::error_code ec) {
          if (ec) return (void)fuse_reply_err(call->req, EINTR);
          LockLoop(call, fid, request, true);
        }));
      }));
}

}  // namespace ninefold::fuse::internal
