// exportfs: see ninefold/fs/exportfs.h for the confinement rules this file implements.
#include "ninefold/fs/exportfs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <mutex>
#include <vector>

#include "exportfs_locks.h"
#include "exportfs_path.h"
#include "ninefold/wire/codec.h"

namespace ninefold::fs {
namespace {

using exportfs_internal::CheckName;
using exportfs_internal::FileKey;
using exportfs_internal::JoinPath;
using exportfs_internal::LockOwner;
using exportfs_internal::LockOwners;
using exportfs_internal::OpenBeneath;
using exportfs_internal::SplitPath;
using exportfs_internal::UniqueFd;

// The open(2) flags a client may ask for; anything else (O_CREAT, O_NOFOLLOW, O_PATH,
// O_TMPFILE, FASYNC, O_NOCTTY) is dropped or decided here.
constexpr int kOpenFlagsKept = O_ACCMODE | O_APPEND | O_TRUNC | O_NONBLOCK | O_DSYNC | O_SYNC |
                               O_DIRECT | O_NOATIME | O_LARGEFILE | O_DIRECTORY;

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif

// State shared by the server and every node it made (nodes may outlive the server).
struct Export {
  UniqueFd root;     // O_PATH | O_DIRECTORY: everything is resolved beneath it
  UniqueFd proc_fd;  // /proc/self/fd: reopens our own descriptors by number
  ExportOptions opts;
  wire::Qid root_qid;
  LockOwners locks;
};

wire::Qid QidOf(const struct stat& st) {
  wire::Qid q;
  q.type = S_ISDIR(st.st_mode)   ? wire::kQtDir
           : S_ISLNK(st.st_mode) ? wire::kQtSymlink
                                 : wire::kQtFile;
  q.path = st.st_ino;
  return q;
}

std::string Quoted(std::string_view op, std::string_view name) {
  std::string s(op);
  s += " '";
  s += name;
  s += '\'';
  return s;
}

template <class F>
auto Retry(F f) {
  decltype(f()) r;
  do {
    r = f();
  } while (r < 0 && errno == EINTR);
  return r;
}

class ExportNode : public Node {
 public:
  // path_fd: an O_PATH descriptor for the file, shared with clones; null for a node that
  // Create made, whose open descriptor serves instead.
  ExportNode(std::shared_ptr<Export> exp, std::shared_ptr<const UniqueFd> path_fd,
             const struct stat& st, std::string path)
      : exp_(std::move(exp)),
        path_fd_(std::move(path_fd)),
        qid_(QidOf(st)),
        type_(st.st_mode & S_IFMT),
        file_{st.st_dev, st.st_ino},
        path_(std::move(path)) {}

  ~ExportNode() override {
    if (open_fd_.valid()) exp_->locks.ReleasedAll(file_, this);
  }

  static Result<std::unique_ptr<ExportNode>> Make(std::shared_ptr<Export> exp, UniqueFd fd,
                                                  std::string path) {
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return Errno(errno, Quoted("fstat", path));
    return std::make_unique<ExportNode>(
        std::move(exp), std::make_shared<const UniqueFd>(std::move(fd)), st, std::move(path));
  }

  wire::Qid qid() const override { return qid_; }

  Result<std::unique_ptr<Node>> Walk(std::string_view name) override;
  Result<std::unique_ptr<Node>> Clone() const override;
  Result<wire::Rgetattr> GetAttr(uint64_t request_mask) override;
  Result<void> SetAttr(const wire::Tsetattr& req) override;
  Result<uint32_t> Open(uint32_t flags) override;
  Result<std::unique_ptr<Node>> Create(std::string_view name, uint32_t flags, uint32_t mode,
                                       uint32_t gid) override;
  Result<size_t> Read(uint64_t offset, std::span<std::byte> out) override;
  int data_fd() const override { return type_ == S_IFREG ? open_fd_.get() : -1; }
  Result<size_t> Write(uint64_t offset, std::span<const std::byte> data) override;
  Result<size_t> WriteFromPipe(uint64_t offset, int pipe_fd, size_t count) override;
  Result<size_t> ReadDir(uint64_t offset, std::span<std::byte> out) override;
  Result<wire::Qid> Mkdir(std::string_view name, uint32_t mode, uint32_t gid) override;
  Result<wire::Qid> Symlink(std::string_view name, std::string_view target, uint32_t gid) override;
  Result<wire::Qid> Mknod(std::string_view name, uint32_t mode, uint32_t major, uint32_t minor,
                          uint32_t gid) override;
  Result<void> Link(std::string_view name, Node& target) override;
  Result<void> RenameAt(std::string_view old_name, Node& new_dir,
                        std::string_view new_name) override;
  Result<void> UnlinkAt(std::string_view name, uint32_t flags) override;
  Result<void> Rename(Node& new_dir, std::string_view new_name) override;
  Result<void> Remove() override;
  Result<std::string> ReadLink() override;
  Result<wire::Rstatfs> StatFs() override;
  Result<void> Fsync(bool datasync) override;
  Result<uint8_t> Lock(const wire::Tlock& req) override;
  Result<LockInfo> GetLock(const wire::Tgetlock& req) override;
  Result<std::string> GetXattr(std::string_view name) override;
  Result<void> SetXattr(std::string_view name, std::string_view value, uint32_t flags) override;
  Result<void> RemoveXattr(std::string_view name) override;

 private:
  // The parent directory (re-resolved beneath the root) and this file's name in it.
  struct ParentRef {
    int dir;
    UniqueFd owned;  // dir, unless dir is the export root's own descriptor
    std::string name;
  };

  std::string path() const {
    std::lock_guard lock(path_mu_);
    return path_;
  }
  bool is_dir() const { return type_ == S_IFDIR; }
  // The descriptor every call on this file uses: O_PATH, or for a node Create made (which
  // is open from the start) its open descriptor.
  int node_fd() const { return path_fd_ ? path_fd_->get() : open_fd_.get(); }
  // "N": node_fd()'s name in /proc/self/fd.
  std::string FdName() const { return std::to_string(node_fd()); }
  std::string ProcPath() const { return "/proc/self/fd/" + FdName(); }

  Result<void> CheckWritable(std::string_view op) const {
    if (exp_->opts.read_only) return Errno(EROFS, std::string(op));
    return {};
  }
  Result<void> CheckDir(std::string_view op) const {
    if (!is_dir()) return Errno(ENOTDIR, std::string(op));
    return {};
  }
  // Another node of this export, or EXDEV.
  Result<ExportNode*> Peer(Node& other, std::string_view op) const {
    auto* peer = dynamic_cast<ExportNode*>(&other);
    if (peer == nullptr || peer->exp_ != exp_) return Errno(EXDEV, std::string(op));
    return peer;
  }
  Result<std::unique_ptr<Node>> Parent() const;
  Result<ParentRef> ResolveParent(std::string_view op) const;
  // Chmod of the file an fd refers to, never following a symlink.
  Result<void> Chmod(int fd, mode_t mode) const;
  // After creating `name` here: sets its group and the permission bits the host umask
  // took away, and returns its qid.
  Result<wire::Qid> FinishCreated(std::string_view name, uint32_t mode, uint32_t gid,
                                  bool fix_mode) const;
  Result<int> OpenFd(std::string_view op) const {
    if (!open_fd_.valid()) return Errno(EBADF, std::string(op) + ": fid not open");
    return open_fd_.get();
  }

  const std::shared_ptr<Export> exp_;
  // O_PATH, shared by clones (never an open file description: a clone must not keep a
  // clunked fid's OFD locks alive). Null for a node Create made.
  const std::shared_ptr<const UniqueFd> path_fd_;
  const wire::Qid qid_;
  const mode_t type_;  // S_IFMT bits: a file's type never changes
  const FileKey file_;

  mutable std::mutex path_mu_;
  std::string path_;  // relative to the export root; "" is the root. Guarded by path_mu_.

  // Set by Open/Create, which the framework never runs concurrently with other calls on
  // this node; read-only afterwards.
  UniqueFd open_fd_;
  std::mutex dir_mu_;  // the open directory's position: lseek + getdents64 run under it
};

Result<std::unique_ptr<Node>> ExportNode::Walk(std::string_view name) {
  if (name == "..") return Parent();
  if (name == ".") return Clone();
  if (auto ok = CheckName(name, "walk"); !ok) return Unexpected(ok.error());
  if (auto ok = CheckDir(Quoted("walk", name)); !ok) return Unexpected(ok.error());
  auto fd = OpenBeneath(node_fd(), std::string(name), O_PATH | O_NOFOLLOW);
  if (!fd) return Errno(fd.error().code().value(), Quoted("walk", name));
  auto node = Make(exp_, std::move(*fd), JoinPath(path(), name));
  if (!node) return Unexpected(node.error());
  return std::unique_ptr<Node>(std::move(*node));
}

Result<std::unique_ptr<Node>> ExportNode::Parent() const {
  if (auto ok = CheckDir("walk '..'"); !ok) return Unexpected(ok.error());
  // Never openat(node_fd(), ".."): this directory may have been moved anywhere. Its recorded
  // parent path is resolved beneath the root instead; the root's parent is the root.
  std::string parent = SplitPath(path()).first;
  auto fd = OpenBeneath(exp_->root.get(), parent, O_PATH | O_DIRECTORY);
  if (!fd) return Errno(fd.error().code().value(), Quoted("walk '..' to", parent));
  auto node = Make(exp_, std::move(*fd), parent);
  if (!node) return Unexpected(node.error());
  return std::unique_ptr<Node>(std::move(*node));
}

Result<std::unique_ptr<Node>> ExportNode::Clone() const {
  struct stat st {};
  st.st_mode = type_;
  st.st_dev = file_.first;
  st.st_ino = file_.second;
  std::shared_ptr<const UniqueFd> path_fd = path_fd_;  // shared: no system call
  if (!path_fd) {
    // A node Create made has only its open descriptor: the clone gets an O_PATH one of
    // its own, through our magic link, which names exactly this file.
    UniqueFd fd(::openat(exp_->proc_fd.get(), FdName().c_str(), O_PATH | O_CLOEXEC));
    if (!fd.valid()) return Errno(errno, "clone");
    path_fd = std::make_shared<const UniqueFd>(std::move(fd));
  }
  return std::unique_ptr<Node>(std::make_unique<ExportNode>(exp_, std::move(path_fd), st, path()));
}

Result<wire::Rgetattr> ExportNode::GetAttr(uint64_t) {
  struct statx stx;
  if (::statx(node_fd(), "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW | AT_STATX_SYNC_AS_STAT,
              STATX_BASIC_STATS | STATX_BTIME, &stx) != 0) {
    return Errno(errno, "getattr");
  }
  wire::Rgetattr r;
  r.valid = wire::kGetattrBasic;
  r.qid = qid_;
  r.mode = stx.stx_mode;
  r.uid = stx.stx_uid;
  r.gid = stx.stx_gid;
  r.nlink = stx.stx_nlink;
  r.rdev = makedev(stx.stx_rdev_major, stx.stx_rdev_minor);
  r.size = stx.stx_size;
  r.blksize = stx.stx_blksize;
  r.blocks = stx.stx_blocks;
  r.atime_sec = static_cast<uint64_t>(stx.stx_atime.tv_sec);
  r.atime_nsec = stx.stx_atime.tv_nsec;
  r.mtime_sec = static_cast<uint64_t>(stx.stx_mtime.tv_sec);
  r.mtime_nsec = stx.stx_mtime.tv_nsec;
  r.ctime_sec = static_cast<uint64_t>(stx.stx_ctime.tv_sec);
  r.ctime_nsec = stx.stx_ctime.tv_nsec;
  if (stx.stx_mask & STATX_BTIME) {
    r.valid |= wire::kGetattrBtime;
    r.btime_sec = static_cast<uint64_t>(stx.stx_btime.tv_sec);
    r.btime_nsec = stx.stx_btime.tv_nsec;
  }
  return r;
}

Result<void> ExportNode::Chmod(int fd, mode_t mode) const {
  if (::syscall(SYS_fchmodat2, fd, "", mode, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0) return {};
  if (errno != ENOSYS) return Errno(errno, "chmod");
  // Before Linux 6.6: chmod through our own magic link, which names exactly this file.
  if (type_ == S_IFLNK) return Errno(EOPNOTSUPP, "chmod of a symlink");
  if (::fchmodat(exp_->proc_fd.get(), std::to_string(fd).c_str(), mode, 0) != 0) {
    return Errno(errno, "chmod");
  }
  return {};
}

Result<void> ExportNode::SetAttr(const wire::Tsetattr& req) {
  if (auto ok = CheckWritable("setattr"); !ok) return ok;
  if (req.valid & wire::kSetattrMode) {
    if (auto ok = Chmod(node_fd(), req.mode & 07777); !ok) return ok;
  }
  if (req.valid & (wire::kSetattrUid | wire::kSetattrGid)) {
    uid_t uid = (req.valid & wire::kSetattrUid) ? req.uid : static_cast<uid_t>(-1);
    gid_t gid = (req.valid & wire::kSetattrGid) ? req.gid : static_cast<gid_t>(-1);
    if (::fchownat(node_fd(), "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
      return Errno(errno, "chown");
    }
  }
  if (req.valid & wire::kSetattrSize) {
    if (type_ == S_IFDIR) return Errno(EISDIR, "truncate");
    if (type_ != S_IFREG) return Errno(EINVAL, "truncate: not a regular file");
    if (req.size > static_cast<uint64_t>(INT64_MAX)) return Errno(EFBIG, "truncate");
    // ftruncate needs a writable descriptor: reopen our own file for writing.
    UniqueFd w(Retry([&] {
      return ::openat(exp_->proc_fd.get(), FdName().c_str(), O_WRONLY | O_CLOEXEC | O_NONBLOCK);
    }));
    if (!w.valid()) return Errno(errno, "truncate: reopen");
    if (Retry([&] { return ::ftruncate(w.get(), static_cast<off_t>(req.size)); }) != 0) {
      return Errno(errno, "truncate");
    }
  }
  if (req.valid & (wire::kSetattrAtime | wire::kSetattrMtime)) {
    struct timespec ts[2];
    auto pick = [&](uint32_t bit, uint32_t set_bit, uint64_t sec, uint64_t nsec) {
      if (!(req.valid & bit)) return timespec{0, UTIME_OMIT};
      if (!(req.valid & set_bit)) return timespec{0, UTIME_NOW};
      return timespec{static_cast<time_t>(sec), static_cast<long>(nsec)};
    };
    ts[0] = pick(wire::kSetattrAtime, wire::kSetattrAtimeSet, req.atime_sec, req.atime_nsec);
    ts[1] = pick(wire::kSetattrMtime, wire::kSetattrMtimeSet, req.mtime_sec, req.mtime_nsec);
    if (::utimensat(node_fd(), "", ts, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
      return Errno(errno, "utimensat");
    }
  } else if ((req.valid & wire::kSetattrCtime) &&
             !(req.valid &
               (wire::kSetattrMode | wire::kSetattrUid | wire::kSetattrGid | wire::kSetattrSize))) {
    // Only "ctime = now": a no-op chown is the portable way to touch ctime alone.
    if (::fchownat(node_fd(), "", -1, -1, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
      return Errno(errno, "touch ctime");
    }
  }
  return {};
}

Result<uint32_t> ExportNode::Open(uint32_t flags) {
  int f = static_cast<int>(flags) & kOpenFlagsKept;
  if (exp_->opts.read_only && ((f & O_ACCMODE) != O_RDONLY || (f & O_TRUNC))) {
    return Errno(EROFS, "open for writing");
  }
  if (type_ == S_IFLNK) return Errno(ELOOP, "open of a symlink");
  if ((type_ == S_IFCHR || type_ == S_IFBLK) && !exp_->opts.open_devices) {
    return Errno(EACCES, "open of a device node");
  }
  if (type_ == S_IFDIR) {
    if ((f & O_ACCMODE) != O_RDONLY) return Errno(EISDIR, "open of a directory for writing");
    f = O_RDONLY | O_DIRECTORY;
  }
  // Reopen our own O_PATH descriptor through /proc/self/fd: the magic link names exactly
  // this file, so nothing is resolved by name.
  int fd = Retry([&] { return ::openat(exp_->proc_fd.get(), FdName().c_str(), f | O_CLOEXEC); });
  if (fd < 0) return Errno(errno, "open");
  open_fd_ = UniqueFd(fd);
  return 0u;
}

Result<std::unique_ptr<Node>> ExportNode::Create(std::string_view name, uint32_t flags,
                                                 uint32_t mode, uint32_t gid) {
  if (auto ok = CheckName(name, "create"); !ok) return Unexpected(ok.error());
  if (auto ok = CheckWritable(Quoted("create", name)); !ok) return Unexpected(ok.error());
  if (auto ok = CheckDir(Quoted("create", name)); !ok) return Unexpected(ok.error());
  // O_EXCL first, so that only a file made here gets the client's group and mode; without
  // the client's O_EXCL an existing file is then opened as open(2) would.
  const int f = (static_cast<int>(flags) & kOpenFlagsKept & ~O_DIRECTORY) | O_NOFOLLOW;
  auto opened = OpenBeneath(node_fd(), std::string(name), f | O_CREAT | O_EXCL, mode & 07777);
  if (!opened && opened.error().code().value() == EEXIST && !(flags & O_EXCL)) {
    // It exists: walk to it and open it with every check Open makes (symlink, device,
    // directory, read-only) before anything is opened for real.
    auto existing = Walk(name);
    if (!existing) return Unexpected(existing.error());
    if (auto ok = (*existing)->Open(flags & ~static_cast<uint32_t>(O_CREAT)); !ok) {
      return Errno(ok.error().code().value(), Quoted("create", name));
    }
    return existing;
  }
  if (!opened) return Errno(opened.error().code().value(), Quoted("create", name));
  struct stat st;
  if (::fstat(opened->get(), &st) != 0) return Errno(errno, Quoted("create", name));
  if (gid != wire::kNoUid && st.st_gid != gid) {
    // Best effort: the group is the client's wish, not a requirement of the operation.
    (void)::fchown(opened->get(), static_cast<uid_t>(-1), gid);
  }
  // The client applied its umask already; undo what the server's umask removed.
  if ((st.st_mode & 0777) != (mode & 0777)) {
    if (::fchmod(opened->get(), (st.st_mode & 07000) | (mode & 0777)) != 0) {
      return Errno(errno, Quoted("create: chmod", name));
    }
    st.st_mode = (st.st_mode & ~0777u) | (mode & 0777);
  }
  // The open descriptor also serves as the node's own (see node_fd()): no O_PATH one.
  auto node = std::make_unique<ExportNode>(exp_, nullptr, st, JoinPath(path(), name));
  node->open_fd_ = std::move(*opened);
  return std::unique_ptr<Node>(std::move(node));
}

Result<size_t> ExportNode::Read(uint64_t offset, std::span<std::byte> out) {
  auto fd = OpenFd("read");
  if (!fd) return Unexpected(fd.error());
  if (offset > static_cast<uint64_t>(INT64_MAX)) return Errno(EINVAL, "read offset");
  ssize_t n = Retry([&] { return ::pread(*fd, out.data(), out.size(), offset); });
  if (n < 0) return Errno(errno, "read");
  return static_cast<size_t>(n);
}

Result<size_t> ExportNode::Write(uint64_t offset, std::span<const std::byte> data) {
  if (auto ok = CheckWritable("write"); !ok) return Unexpected(ok.error());
  auto fd = OpenFd("write");
  if (!fd) return Unexpected(fd.error());
  if (offset > static_cast<uint64_t>(INT64_MAX)) return Errno(EINVAL, "write offset");
  // On Linux, pwrite on an O_APPEND descriptor appends whatever the offset.
  ssize_t n = Retry([&] { return ::pwrite(*fd, data.data(), data.size(), offset); });
  if (n < 0) return Errno(errno, "write");
  return static_cast<size_t>(n);
}

Result<size_t> ExportNode::WriteFromPipe(uint64_t offset, int pipe_fd, size_t count) {
  if (auto ok = CheckWritable("write"); !ok) return Unexpected(ok.error());
  auto fd = OpenFd("write");
  if (!fd) return Unexpected(fd.error());
  if (offset > static_cast<uint64_t>(INT64_MAX)) return Errno(EINVAL, "write offset");
  // From the pipe into the file's pages: the kernel's one copy, as pwrite's.
  auto off = static_cast<loff_t>(offset);
  size_t done = 0;
  while (done < count) {
    ssize_t n = ::splice(pipe_fd, nullptr, *fd, &off, count - done, SPLICE_F_MOVE);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EINVAL && done == 0) {
      // O_APPEND (splice refuses it) or a file system that cannot take a splice.
      return Node::WriteFromPipe(offset, pipe_fd, count);
    }
    if (n < 0 && done == 0) return Errno(errno, "write");
    if (n <= 0) break;  // a short write: what is done is done (ENOSPC after some, ...)
    done += static_cast<size_t>(n);
  }
  return done;
}

// struct linux_dirent64, as getdents64(2) fills it.
struct LinuxDirent64 {
  uint64_t d_ino;
  int64_t d_off;
  uint16_t d_reclen;
  uint8_t d_type;
  char d_name[1];
};

Result<size_t> ExportNode::ReadDir(uint64_t offset, std::span<std::byte> out) {
  if (auto ok = CheckDir("readdir"); !ok) return Unexpected(ok.error());
  auto fd = OpenFd("readdir");
  if (!fd) return Unexpected(fd.error());
  if (offset > static_cast<uint64_t>(INT64_MAX)) return Errno(EINVAL, "readdir offset");
  // A kernel record is never much larger than its wire encoding (24 bytes + name), so
  // a little more than `out` is about one reply's worth; the rest is read again later.
  std::vector<std::byte> buf(std::min<size_t>(out.size() + 512, 64 * 1024));
  const bool at_root = path().empty();
  std::lock_guard lock(dir_mu_);
  if (::lseek(*fd, static_cast<off_t>(offset), SEEK_SET) < 0) return Errno(errno, "readdir seek");
  size_t used = 0;
  for (;;) {
    long n = Retry([&] { return ::syscall(SYS_getdents64, *fd, buf.data(), buf.size()); });
    if (n < 0) return Errno(errno, "getdents64");
    if (n == 0) return used;
    for (long pos = 0; pos < n;) {
      auto* d = reinterpret_cast<const LinuxDirent64*>(buf.data() + pos);
      pos += d->d_reclen;
      wire::Dirent e;
      e.name = d->d_name;
      e.offset = static_cast<uint64_t>(d->d_off);
      e.type = d->d_type;
      e.qid.type = d->d_type == DT_DIR   ? wire::kQtDir
                   : d->d_type == DT_LNK ? wire::kQtSymlink
                                         : wire::kQtFile;
      e.qid.path = d->d_ino;
      // The root's ".." names the root itself, never the host directory above it.
      if (at_root && e.name == "..") {
        e.qid = exp_->root_qid;
      }
      if (!wire::AppendDirent(out, &used, e)) {
        if (used == 0) return Errno(EINVAL, "readdir: reply buffer too small for one entry");
        return used;
      }
    }
  }
}

Result<wire::Qid> ExportNode::FinishCreated(std::string_view name, uint32_t mode, uint32_t gid,
                                            bool fix_mode) const {
  auto fd = OpenBeneath(node_fd(), std::string(name), O_PATH | O_NOFOLLOW);
  if (!fd) return Unexpected(fd.error());
  if (gid != wire::kNoUid) {
    // Best effort: the group is the client's wish, not a requirement of the operation.
    (void)::fchownat(fd->get(), "", -1, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
  }
  struct stat st;
  if (::fstat(fd->get(), &st) != 0) return Errno(errno, Quoted("stat", name));
  // The client applied its umask already; undo what the server's umask removed.
  if (fix_mode && !S_ISLNK(st.st_mode) && (st.st_mode & 0777) != (mode & 0777)) {
    if (auto ok = Chmod(fd->get(), (st.st_mode & 07000) | (mode & 0777)); !ok) {
      return Unexpected(ok.error());
    }
  }
  return QidOf(st);
}

Result<wire::Qid> ExportNode::Mkdir(std::string_view name, uint32_t mode, uint32_t gid) {
  if (auto ok = CheckName(name, "mkdir"); !ok) return Unexpected(ok.error());
  if (auto ok = CheckWritable(Quoted("mkdir", name)); !ok) return Unexpected(ok.error());
  std::string n(name);
  if (::mkdirat(node_fd(), n.c_str(), mode & 07777) != 0) return Errno(errno, Quoted("mkdir", n));
  return FinishCreated(name, mode, gid, /*fix_mode=*/true);
}

Result<wire::Qid> ExportNode::Symlink(std::string_view name, std::string_view target,
                                      uint32_t gid) {
  if (auto ok = CheckName(name, "symlink"); !ok) return Unexpected(ok.error());
  if (auto ok = CheckWritable(Quoted("symlink", name)); !ok) return Unexpected(ok.error());
  if (target.empty() || target.find('\0') != std::string_view::npos) {
    return Errno(target.empty() ? ENOENT : EINVAL, Quoted("symlink target", target));
  }
  // The target is only text: the export never follows it.
  std::string n(name), t(target);
  if (::symlinkat(t.c_str(), node_fd(), n.c_str()) != 0) return Errno(errno, Quoted("symlink", n));
  return FinishCreated(name, 0, gid, /*fix_mode=*/false);
}

Result<wire::Qid> ExportNode::Mknod(std::string_view name, uint32_t mode, uint32_t major,
                                    uint32_t minor, uint32_t gid) {
  if (auto ok = CheckName(name, "mknod"); !ok) return Unexpected(ok.error());
  if (auto ok = CheckWritable(Quoted("mknod", name)); !ok) return Unexpected(ok.error());
  std::string n(name);
  if (::mknodat(node_fd(), n.c_str(), mode, makedev(major, minor)) != 0) {
    return Errno(errno, Quoted("mknod", n));
  }
  return FinishCreated(name, mode, gid, /*fix_mode=*/true);
}

Result<void> ExportNode::Link(std::string_view name, Node& target) {
  if (auto ok = CheckName(name, "link"); !ok) return ok;
  if (auto ok = CheckWritable(Quoted("link", name)); !ok) return ok;
  auto peer = Peer(target, Quoted("link", name));
  if (!peer) return Unexpected(peer.error());
  std::string n(name);
  // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; without it, link through our magic link.
  if (::linkat((*peer)->node_fd(), "", node_fd(), n.c_str(), AT_EMPTY_PATH) == 0) return {};
  if (errno != ENOENT && errno != EPERM) return Errno(errno, Quoted("link", n));
  if (::linkat(exp_->proc_fd.get(), (*peer)->FdName().c_str(), node_fd(), n.c_str(),
               AT_SYMLINK_FOLLOW) != 0) {
    return Errno(errno, Quoted("link", n));
  }
  return {};
}

Result<void> ExportNode::RenameAt(std::string_view old_name, Node& new_dir,
                                  std::string_view new_name) {
  if (auto ok = CheckName(old_name, "renameat"); !ok) return ok;
  if (auto ok = CheckName(new_name, "renameat to"); !ok) return ok;
  if (auto ok = CheckWritable(Quoted("renameat", old_name)); !ok) return ok;
  auto peer = Peer(new_dir, Quoted("renameat", old_name));
  if (!peer) return Unexpected(peer.error());
  std::string o(old_name), n(new_name);
  if (::renameat(node_fd(), o.c_str(), (*peer)->node_fd(), n.c_str()) != 0) {
    return Errno(errno, Quoted("renameat", o));
  }
  return {};
}

Result<void> ExportNode::UnlinkAt(std::string_view name, uint32_t flags) {
  if (auto ok = CheckName(name, "unlinkat"); !ok) return ok;
  if (auto ok = CheckWritable(Quoted("unlinkat", name)); !ok) return ok;
  if (flags & ~static_cast<uint32_t>(AT_REMOVEDIR)) return Errno(EINVAL, "unlinkat flags");
  std::string n(name);
  if (::unlinkat(node_fd(), n.c_str(), static_cast<int>(flags)) != 0) {
    return Errno(errno, Quoted("unlinkat", n));
  }
  return {};
}

Result<ExportNode::ParentRef> ExportNode::ResolveParent(std::string_view op) const {
  auto [dir, name] = SplitPath(path());
  if (name.empty()) return Errno(EBUSY, std::string(op) + " of the export root");
  ParentRef parent{exp_->root.get(), UniqueFd(), name};
  if (!dir.empty()) {  // else the parent is the root itself: nothing to resolve
    auto fd = OpenBeneath(exp_->root.get(), dir, O_PATH | O_DIRECTORY);
    if (!fd) return Errno(fd.error().code().value(), Quoted(op, dir));
    parent.owned = std::move(*fd);
    parent.dir = parent.owned.get();
  }
  struct stat st;
  if (::fstatat(parent.dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return Errno(errno, Quoted(op, name));
  }
  // Someone else renamed this file away (and perhaps put another in its place).
  if (FileKey{st.st_dev, st.st_ino} != file_) {
    return Errno(ESTALE, Quoted(op, name) + ": no longer this file");
  }
  return parent;
}

Result<void> ExportNode::Rename(Node& new_dir, std::string_view new_name) {
  if (auto ok = CheckName(new_name, "rename to"); !ok) return ok;
  if (auto ok = CheckWritable("rename"); !ok) return ok;
  auto peer = Peer(new_dir, "rename");
  if (!peer) return Unexpected(peer.error());
  auto parent = ResolveParent("rename");
  if (!parent) return Unexpected(parent.error());
  std::string n(new_name);
  std::string new_path = JoinPath((*peer)->path(), n);
  if (::renameat(parent->dir, parent->name.c_str(), (*peer)->node_fd(), n.c_str()) != 0) {
    return Errno(errno, Quoted("rename", parent->name));
  }
  std::lock_guard lock(path_mu_);
  path_ = std::move(new_path);
  return {};
}

Result<void> ExportNode::Remove() {
  if (auto ok = CheckWritable("remove"); !ok) return ok;
  auto parent = ResolveParent("remove");
  if (!parent) return Unexpected(parent.error());
  if (::unlinkat(parent->dir, parent->name.c_str(), is_dir() ? AT_REMOVEDIR : 0) != 0) {
    return Errno(errno, Quoted("remove", parent->name));
  }
  return {};
}

Result<std::string> ExportNode::ReadLink() {
  if (type_ != S_IFLNK) return Errno(EINVAL, "readlink: not a symlink");
  std::string buf(256, '\0');
  for (;;) {
    ssize_t n = ::readlinkat(node_fd(), "", buf.data(), buf.size());
    if (n < 0) return Errno(errno, "readlink");
    if (static_cast<size_t>(n) < buf.size()) {
      buf.resize(static_cast<size_t>(n));
      return buf;
    }
    buf.resize(buf.size() * 2);
  }
}

Result<wire::Rstatfs> ExportNode::StatFs() {
  struct statfs s;
  if (::fstatfs(node_fd(), &s) != 0) return Errno(errno, "statfs");
  wire::Rstatfs r;
  r.type = static_cast<uint32_t>(s.f_type);
  r.bsize = static_cast<uint32_t>(s.f_bsize);
  r.blocks = s.f_blocks;
  r.bfree = s.f_bfree;
  r.bavail = s.f_bavail;
  r.files = s.f_files;
  r.ffree = s.f_ffree;
  uint64_t fsid;
  static_assert(sizeof fsid == sizeof s.f_fsid);
  std::memcpy(&fsid, &s.f_fsid, sizeof fsid);
  r.fsid = fsid;
  r.namelen = static_cast<uint32_t>(s.f_namelen);
  return r;
}

Result<void> ExportNode::Fsync(bool datasync) {
  auto fd = OpenFd("fsync");
  if (!fd) return Unexpected(fd.error());
  if ((datasync ? ::fdatasync(*fd) : ::fsync(*fd)) != 0) return Errno(errno, "fsync");
  return {};
}

// A 9P lock request as a struct flock: type and [start, start+length) (length 0, or
// past 2^63, is "to EOF", and *end is then UINT64_MAX). A test (Tgetlock) of type UNLCK,
// which is what Linux's v9fs sends to ask "is any lock in the way?", tests as a write
// lock, which every other lock conflicts with (diod 1.0.24 answers EINVAL there).
Result<struct flock> ToFlock(uint8_t type, uint64_t start, uint64_t length, bool test,
                             uint64_t* end) {
  struct flock fl {};
  switch (type) {
    case wire::kLockTypeRead:
      fl.l_type = F_RDLCK;
      break;
    case wire::kLockTypeWrite:
      fl.l_type = F_WRLCK;
      break;
    case wire::kLockTypeUnlock:
      fl.l_type = test ? F_WRLCK : F_UNLCK;
      break;
    default:
      return Errno(EINVAL, test ? "getlock type" : "lock type");
  }
  if (start > static_cast<uint64_t>(INT64_MAX)) return Errno(EINVAL, "lock start");
  fl.l_whence = SEEK_SET;
  fl.l_start = static_cast<off_t>(start);
  if (length == 0 || length > static_cast<uint64_t>(INT64_MAX) - start) {
    fl.l_len = 0;
    *end = UINT64_MAX;
  } else {
    fl.l_len = static_cast<off_t>(length);
    *end = start + length;
  }
  return fl;
}

Result<uint8_t> ExportNode::Lock(const wire::Tlock& req) {
  auto fd = OpenFd("lock");
  if (!fd) return Unexpected(fd.error());
  uint64_t end;
  Result<struct flock> fl = ToFlock(req.type, req.start, req.length, /*test=*/false, &end);
  if (!fl) return Unexpected(fl.error());
  // Never blocks (P9_LOCK_FLAGS_BLOCK is the client's to retry): F_OFD_SETLK, not SETLKW.
  if (Retry([&] { return ::fcntl(*fd, F_OFD_SETLK, &*fl); }) != 0) {
    if (errno == EAGAIN || errno == EACCES) return uint8_t{kLockBlocked};
    return Errno(errno, "lock");
  }
  if (req.type == wire::kLockTypeUnlock) {
    exp_->locks.Released(file_, this, req.start, end);
  } else {
    exp_->locks.Granted(file_, this, req.start, end,
                        LockOwner{req.proc_id, std::string(req.client_id)});
  }
  return uint8_t{kLockSuccess};
}

Result<LockInfo> ExportNode::GetLock(const wire::Tgetlock& req) {
  auto fd = OpenFd("getlock");
  if (!fd) return Unexpected(fd.error());
  uint64_t end;
  Result<struct flock> test = ToFlock(req.type, req.start, req.length, /*test=*/true, &end);
  if (!test) return Unexpected(test.error());
  struct flock fl = *test;
  if (::fcntl(*fd, F_OFD_GETLK, &fl) != 0) return Errno(errno, "getlock");
  LockInfo info;
  if (fl.l_type == F_UNLCK) {
    info.type = wire::kLockTypeUnlock;
    info.start = req.start;
    info.length = req.length;
    info.proc_id = req.proc_id;
    info.client_id = std::string(req.client_id);
    return info;
  }
  info.type = fl.l_type == F_WRLCK ? wire::kLockTypeWrite : wire::kLockTypeRead;
  info.start = static_cast<uint64_t>(fl.l_start);
  info.length = static_cast<uint64_t>(fl.l_len);
  uint64_t holder_end = fl.l_len == 0 ? UINT64_MAX : info.start + info.length;
  if (auto owner = exp_->locks.Find(file_, this, info.start, holder_end)) {
    info.proc_id = owner->proc_id;
    info.client_id = std::move(owner->client_id);
  } else if (fl.l_pid > 0) {
    info.proc_id = static_cast<uint32_t>(fl.l_pid);  // a host process's classic lock
  }
  return info;
}

// xattr calls have no AT_EMPTY_PATH form before Linux 6.13 and refuse O_PATH descriptors,
// so they go through /proc/self/fd/N: the magic link resolves to exactly this node's file
// (for a symlink node, the symlink itself: the kernel does not follow it further).
Result<std::string> ExportNode::GetXattr(std::string_view name) {
  std::string path = ProcPath();
  std::string n(name);
  if (n.find('\0') != std::string::npos) return Errno(EINVAL, "getxattr name");
  for (;;) {
    ssize_t size = name.empty() ? ::listxattr(path.c_str(), nullptr, 0)
                                : ::getxattr(path.c_str(), n.c_str(), nullptr, 0);
    if (size < 0) return Errno(errno, name.empty() ? "listxattr" : Quoted("getxattr", n));
    std::string value(static_cast<size_t>(size), '\0');
    ssize_t got = name.empty() ? ::listxattr(path.c_str(), value.data(), value.size())
                               : ::getxattr(path.c_str(), n.c_str(), value.data(), value.size());
    if (got < 0 && errno == ERANGE) continue;  // it grew in between
    if (got < 0) return Errno(errno, name.empty() ? "listxattr" : Quoted("getxattr", n));
    value.resize(static_cast<size_t>(got));
    return value;
  }
}

Result<void> ExportNode::SetXattr(std::string_view name, std::string_view value, uint32_t flags) {
  if (auto ok = CheckWritable(Quoted("setxattr", name)); !ok) return ok;
  std::string n(name);
  if (n.empty() || n.find('\0') != std::string::npos) return Errno(EINVAL, "setxattr name");
  if (flags & ~static_cast<uint32_t>(XATTR_CREATE | XATTR_REPLACE)) {
    return Errno(EINVAL, "setxattr flags");
  }
  if (::setxattr(ProcPath().c_str(), n.c_str(), value.data(), value.size(),
                 static_cast<int>(flags)) != 0) {
    return Errno(errno, Quoted("setxattr", n));
  }
  return {};
}

Result<void> ExportNode::RemoveXattr(std::string_view name) {
  if (auto ok = CheckWritable(Quoted("removexattr", name)); !ok) return ok;
  std::string n(name);
  if (n.empty() || n.find('\0') != std::string::npos) return Errno(EINVAL, "removexattr name");
  if (::removexattr(ProcPath().c_str(), n.c_str()) != 0) {
    return Errno(errno, Quoted("removexattr", n));
  }
  return {};
}

class ExportFs : public FileServer {
 public:
  explicit ExportFs(std::shared_ptr<Export> exp) : exp_(std::move(exp)) {}

  Result<std::unique_ptr<Node>> Attach(const Identity&, std::string_view) override {
    int fd = ::fcntl(exp_->root.get(), F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return Errno(errno, "attach");
    auto node = ExportNode::Make(exp_, UniqueFd(fd), std::string());
    if (!node) return Unexpected(node.error());
    return std::unique_ptr<Node>(std::move(*node));
  }

 private:
  const std::shared_ptr<Export> exp_;
};

}  // namespace

Result<std::unique_ptr<FileServer>> MakeExportFs(const std::string& root_path, ExportOptions opts) {
  auto exp = std::make_shared<Export>();
  exp->opts = opts;
  exp->root = UniqueFd(::open(root_path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!exp->root.valid()) return Errno(errno, Quoted("export", root_path));
  exp->proc_fd = UniqueFd(::open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!exp->proc_fd.valid()) return Errno(errno, "export needs /proc/self/fd");
  struct stat st;
  if (::fstat(exp->root.get(), &st) != 0) return Errno(errno, Quoted("export", root_path));
  exp->root_qid = QidOf(st);
  return std::unique_ptr<FileServer>(std::make_unique<ExportFs>(std::move(exp)));
}

}  // namespace ninefold::fs
