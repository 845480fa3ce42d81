// Operations that make, remove or rename names: each is one request on the parent
// directory's fid, then (for new names) a lookup that answers with the new entry.
#include <fcntl.h>
#include <sys/sysmacros.h>

#include "src/fuse/filesystem.h"

namespace ninefold::fuse::internal {

namespace {
constexpr uint32_t kAtRemoveDir = 0x200;  // Tunlinkat flags: AT_REMOVEDIR
bool Unsupported(const Error& e) { return e.code() == std::errc::operation_not_supported; }
}  // namespace

template <class R, class Request>
void Filesystem::MakeThenLookup(fuse_req_t req, const Request& request, Fid dir, std::string name) {
  CallPtr call = Begin(req);
  session_->AsyncRequest<R>(request, Bind(call, [this, req, call, dir, name](Result<R> r) {
                              if (!r) return Fail(req, r.error());
                              LookupChild(call, dir, name,
                                          [this, req, call](Result<fuse_entry_param> e) {
                                            ReplyEntry(req, std::move(e));
                                          });
                            }));
}

void Filesystem::Mknod(fuse_req_t req, fuse_ino_t parent, std::string name, mode_t mode,
                       dev_t rdev) {
  Fid dir = FidOrFail(req, parent);
  if (dir == wire::kNoFid) return;
  wire::Tmknod m{.dfid = dir,
                 .name = name,
                 .mode = mode,
                 .major = major(rdev),
                 .minor = minor(rdev),
                 .gid = fuse_req_ctx(req)->gid};
  MakeThenLookup<wire::Rmknod>(req, m, dir, name);
}

void Filesystem::Mkdir(fuse_req_t req, fuse_ino_t parent, std::string name, mode_t mode) {
  Fid dir = FidOrFail(req, parent);
  if (dir == wire::kNoFid) return;
  wire::Tmkdir m{.dfid = dir, .name = name, .mode = mode & 07777, .gid = fuse_req_ctx(req)->gid};
  MakeThenLookup<wire::Rmkdir>(req, m, dir, name);
}

void Filesystem::Symlink(fuse_req_t req, std::string target, fuse_ino_t parent, std::string name) {
  Fid dir = FidOrFail(req, parent);
  if (dir == wire::kNoFid) return;
  wire::Tsymlink s{.fid = dir, .name = name, .symtgt = target, .gid = fuse_req_ctx(req)->gid};
  MakeThenLookup<wire::Rsymlink>(req, s, dir, name);
}

void Filesystem::Link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent, std::string name) {
  Fid fid = FidOrFail(req, ino);
  if (fid == wire::kNoFid) return;
  Fid dir = FidOrFail(req, parent);
  if (dir == wire::kNoFid) return;
  wire::Tlink l{.dfid = dir, .fid = fid, .name = name};
  MakeThenLookup<wire::Rlink>(req, l, dir, name);
}

// Servers without Tunlinkat/Trenameat (diod answers EOPNOTSUPP) get what Linux's v9fs
// falls back to: Tremove of a walked fid, and Trename of one.
void Filesystem::Remove(fuse_req_t req, fuse_ino_t parent, std::string name, bool dir) {
  Fid dfid = FidOrFail(req, parent);
  if (dfid == wire::kNoFid) return;
  CallPtr call = Begin(req);
  if (!has_unlinkat_) return RemoveByFid(call, dfid, std::move(name));
  session_->AsyncRequest<wire::Runlinkat>(
      wire::Tunlinkat{.dirfid = dfid, .name = name, .flags = dir ? kAtRemoveDir : 0},
      Bind(call, [this, req, call, dfid, name](Result<wire::Runlinkat> r) {
        if (!r && Unsupported(r.error())) {
          has_unlinkat_ = false;
          return RemoveByFid(call, dfid, name);
        }
        fuse_reply_err(req, r ? 0 : Errno(r.error()));
      }));
}

void Filesystem::RemoveByFid(const CallPtr& call, Fid dir, std::string name) {
  Fid fid = session_->AllocFid();
  session_->AsyncWalk(dir, fid, {std::move(name)},
                      Bind(call, [this, call, fid](Result<std::vector<wire::Qid>> w) {
                        if (!w) {
                          session_->ReleaseFid(fid);
                          return Fail(call->req, w.error());
                        }
                        session_->AsyncRemove(fid, Bind(call, [call](Result<void> r) {
                                                fuse_reply_err(call->req, r ? 0 : Errno(r.error()));
                                              }));
                      }));
}

void Filesystem::Rename(fuse_req_t req, fuse_ino_t parent, std::string name, fuse_ino_t new_parent,
                        std::string new_name, unsigned flags) {
  // Trenameat has no flags: RENAME_NOREPLACE or RENAME_EXCHANGE cannot be kept atomically,
  // so they are refused (callers such as mv then fall back to a plain rename).
  if (flags != 0) return (void)fuse_reply_err(req, EINVAL);
  Fid from = FidOrFail(req, parent);
  if (from == wire::kNoFid) return;
  Fid to = FidOrFail(req, new_parent);
  if (to == wire::kNoFid) return;
  CallPtr call = Begin(req);
  if (!has_renameat_) return RenameByFid(call, from, std::move(name), to, std::move(new_name));
  session_->AsyncRequest<wire::Rrenameat>(
      wire::Trenameat{.olddirfid = from, .oldname = name, .newdirfid = to, .newname = new_name},
      Bind(call, [this, req, call, from, name, to, new_name](Result<wire::Rrenameat> r) {
        if (!r && Unsupported(r.error())) {
          has_renameat_ = false;
          return RenameByFid(call, from, name, to, new_name);
        }
        fuse_reply_err(req, r ? 0 : Errno(r.error()));
      }));
}

void Filesystem::RenameByFid(const CallPtr& call, Fid from, std::string name, Fid to,
                             std::string new_name) {
  Fid fid = session_->AllocFid();
  session_->AsyncWalk(from, fid, {std::move(name)},
                      Bind(call, [this, call, fid, to, new_name](Result<std::vector<wire::Qid>> w) {
                        if (!w) {
                          session_->ReleaseFid(fid);
                          return Fail(call->req, w.error());
                        }
                        session_->AsyncRequest<wire::Rrename>(
                            wire::Trename{.fid = fid, .dfid = to, .name = new_name},
                            Bind(call, [this, call, fid](Result<wire::Rrename> r) {
                              Clunk(fid);
                              fuse_reply_err(call->req, r ? 0 : Errno(r.error()));
                            }));
                      }));
}

void Filesystem::Readlink(fuse_req_t req, fuse_ino_t ino) {
  Fid fid = FidOrFail(req, ino);
  if (fid == wire::kNoFid) return;
  CallPtr call = Begin(req);
  session_->AsyncReadlink(fid, Bind(call, [this, req, call](Result<std::string> target) {
                            if (!target) return Fail(req, target.error());
                            fuse_reply_readlink(req, target->c_str());
                          }));
}

}  // namespace ninefold::fuse::internal
