// The fuse_lowlevel_ops table: each entry copies what it needs out of the request's
// arguments (they live only during the call) and posts the work to the io thread.
#include <sys/file.h>

#include <cstring>

#include "src/fuse/filesystem.h"

namespace ninefold::fuse::internal {

namespace {

Filesystem* Self(fuse_req_t req) { return static_cast<Filesystem*>(fuse_req_userdata(req)); }
Handle* HandleOf(const fuse_file_info* fi) { return reinterpret_cast<Handle*>(fi->fh); }
// The open file's fid when the kernel names one (fstat, ftruncate), else kNoFid.
Fid OpenFid(const fuse_file_info* fi) { return fi ? HandleOf(fi)->fid : wire::kNoFid; }

// Runs `method` with `args` on fs's io thread.
template <class... Args, class... Given>
void Enqueue(fuse_req_t req, void (Filesystem::*method)(fuse_req_t, Args...), Given... args) {
  Filesystem* fs = Self(req);
  fs->Post([fs, req, method, ... a = std::move(args)]() mutable {
    (fs->*method)(req, std::move(a)...);
  });
}

void OpInit(void* userdata, fuse_conn_info* conn) {
  static_cast<Filesystem*>(userdata)->Init(conn);
}

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Enqueue(req, &Filesystem::Lookup, parent, std::string(name));
}

void OpForget(fuse_req_t req, fuse_ino_t ino, uint64_t n) {
  Filesystem* fs = Self(req);
  fs->Post([fs, ino, n] { fs->Forget(ino, n); });
  fuse_reply_none(req);
}

void OpForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  Filesystem* fs = Self(req);
  std::vector<fuse_forget_data> all(forgets, forgets + count);
  fs->Post([fs, all = std::move(all)] {
    for (const fuse_forget_data& f : all) fs->Forget(f.ino, f.nlookup);
  });
  fuse_reply_none(req);
}

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Enqueue(req, &Filesystem::Getattr, ino, OpenFid(fi));
}

void OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
  Enqueue(req, &Filesystem::Setattr, ino, *attr, to_set, OpenFid(fi));
}

void OpReadlink(fuse_req_t req, fuse_ino_t ino) { Enqueue(req, &Filesystem::Readlink, ino); }

void OpMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  Enqueue(req, &Filesystem::Mknod, parent, std::string(name), mode, rdev);
}

void OpMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  Enqueue(req, &Filesystem::Mkdir, parent, std::string(name), mode);
}

void OpUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Enqueue(req, &Filesystem::Remove, parent, std::string(name), false);
}

void OpRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Enqueue(req, &Filesystem::Remove, parent, std::string(name), true);
}

void OpSymlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
  Enqueue(req, &Filesystem::Symlink, std::string(target), parent, std::string(name));
}

void OpRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t new_parent,
              const char* new_name, unsigned int flags) {
  Enqueue(req, &Filesystem::Rename, parent, std::string(name), new_parent, std::string(new_name),
          flags);
}

void OpLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t new_parent, const char* new_name) {
  Enqueue(req, &Filesystem::Link, ino, new_parent, std::string(new_name));
}

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Enqueue(req, &Filesystem::Open, ino, *fi, false);
}

void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Enqueue(req, &Filesystem::Open, ino, *fi, true);
}

void OpCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
              fuse_file_info* fi) {
  Enqueue(req, &Filesystem::Create, parent, std::string(name), mode, *fi);
}

void OpRead(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  Enqueue(req, &Filesystem::Read, HandleOf(fi), size, off);
}

void OpWrite(fuse_req_t req, fuse_ino_t, const char* buf, size_t size, off_t off,
             fuse_file_info* fi) {
  // The buffer is libfuse's, reused for the next request once this returns. On a
  // shared-memory session the copy lands in the arena and the Twrite refers to it there:
  // the server writes the file from it, with no copy into the ring.
  PooledBytes data = Self(req)->TakeBuffer(size);
  if (size > 0) std::memcpy(data.bytes.data(), buf, size);
  Enqueue(req, &Filesystem::Write, HandleOf(fi), std::move(data), off);
}

// Nothing is buffered here (without the writeback cache the kernel sends every write at
// once), so close(2) needs no round trip.
void OpFlush(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

void OpRelease(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  Enqueue(req, &Filesystem::Release, HandleOf(fi));
}

void OpFsync(fuse_req_t req, fuse_ino_t, int datasync, fuse_file_info* fi) {
  Enqueue(req, &Filesystem::Fsync, HandleOf(fi), datasync != 0);
}

void OpReaddir(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  Enqueue(req, &Filesystem::Readdir, HandleOf(fi), size, off, false);
}

void OpReaddirplus(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  Enqueue(req, &Filesystem::Readdir, HandleOf(fi), size, off, true);
}

void OpStatfs(fuse_req_t req, fuse_ino_t ino) { Enqueue(req, &Filesystem::Statfs, ino); }

void OpSetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
                int flags) {
  auto v = std::make_shared<std::vector<char>>(value, value + size);
  Enqueue(req, &Filesystem::Setxattr, ino, std::string(name), std::move(v), flags);
}

void OpGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  Enqueue(req, &Filesystem::Getxattr, ino, std::string(name), size);
}

void OpListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  Enqueue(req, &Filesystem::Getxattr, ino, std::string(), size);
}

void OpRemovexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  Enqueue(req, &Filesystem::Removexattr, ino, std::string(name));
}

void OpGetlk(fuse_req_t req, fuse_ino_t, fuse_file_info* fi, struct flock* lock) {
  Enqueue(req, &Filesystem::Getlk, HandleOf(fi), *lock);
}

void OpSetlk(fuse_req_t req, fuse_ino_t, fuse_file_info* fi, struct flock* lock, int sleep) {
  Enqueue(req, &Filesystem::Setlk, HandleOf(fi), lock->l_type, static_cast<uint64_t>(lock->l_start),
          static_cast<uint64_t>(lock->l_len), static_cast<uint32_t>(lock->l_pid), sleep != 0);
}

void OpFlock(fuse_req_t req, fuse_ino_t, fuse_file_info* fi, int op) {
  short type = (op & LOCK_SH) ? F_RDLCK : (op & LOCK_EX) ? F_WRLCK : F_UNLCK;
  Enqueue(req, &Filesystem::Setlk, HandleOf(fi), type, uint64_t{0}, uint64_t{0},
          static_cast<uint32_t>(fuse_req_ctx(req)->pid), (op & LOCK_NB) == 0);
}

fuse_lowlevel_ops MakeOps() {
  fuse_lowlevel_ops ops;
  std::memset(&ops, 0, sizeof ops);
  ops.init = OpInit;
  ops.lookup = OpLookup;
  ops.forget = OpForget;
  ops.forget_multi = OpForgetMulti;
  ops.getattr = OpGetattr;
  ops.setattr = OpSetattr;
  ops.readlink = OpReadlink;
  ops.mknod = OpMknod;
  ops.mkdir = OpMkdir;
  ops.unlink = OpUnlink;
  ops.rmdir = OpRmdir;
  ops.symlink = OpSymlink;
  ops.rename = OpRename;
  ops.link = OpLink;
  ops.open = OpOpen;
  ops.read = OpRead;
  ops.write = OpWrite;
  ops.flush = OpFlush;
  ops.release = OpRelease;
  ops.fsync = OpFsync;
  ops.opendir = OpOpendir;
  ops.readdir = OpReaddir;
  ops.readdirplus = OpReaddirplus;  // used only if Init asks for it
  ops.releasedir = OpRelease;
  ops.fsyncdir = OpFsync;
  ops.statfs = OpStatfs;
  ops.setxattr = OpSetxattr;
  ops.getxattr = OpGetxattr;
  ops.listxattr = OpListxattr;
  ops.removexattr = OpRemovexattr;
  ops.create = OpCreate;
  ops.getlk = OpGetlk;
  ops.setlk = OpSetlk;
  ops.flock = OpFlock;
  return ops;
}

}  // namespace

const fuse_lowlevel_ops& Filesystem::Ops() {
  static const fuse_lowlevel_ops ops = MakeOps();
  return ops;
}

}  // namespace ninefold::fuse::internal
