// 9P2000 and 9P2000.u mapped onto the 9P2000.L-shaped FileServer: Topen -> Open,
// Tcreate -> Create/Mkdir/Symlink/Mknod, Tstat -> GetAttr, Twstat -> SetAttr/Rename,
// directory reads -> ReadDir + Walk + GetAttr per entry, as stat records.
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <charconv>

#include "fmt/format.h"
#include "ops.h"

namespace ninefold::server {
namespace {

using fs::Errno;

// 9P2000 mode bits (high bits of Stat.mode / Tcreate perm).
using wire::kDmDevice;
using wire::kDmDir;
using wire::kDmLink;
using wire::kDmNamedPipe;
using wire::kDmSetgid;
using wire::kDmSetuid;
using wire::kDmSocket;
using wire::kDmSymlink;
constexpr uint8_t kOrclose = 0x40;
constexpr uint32_t kNoValue32 = 0xFFFFFFFF;
constexpr uint64_t kNoValue64 = ~uint64_t{0};

bool IsDotU(const Connection& c) { return c.dialect() == wire::Dialect::k9P2000u; }

std::string UserName(uint32_t uid) {
  struct passwd pw, *result = nullptr;
  char buf[1024];
  if (getpwuid_r(uid, &pw, buf, sizeof buf, &result) == 0 && result != nullptr) {
    return pw.pw_name;
  }
  return std::to_string(uid);
}

std::string GroupName(uint32_t gid) {
  struct group gr, *result = nullptr;
  char buf[1024];
  if (getgrgid_r(gid, &gr, buf, sizeof buf, &result) == 0 && result != nullptr) {
    return gr.gr_name;
  }
  return std::to_string(gid);
}

std::optional<uint32_t> GroupId(std::string_view name) {
  uint32_t id = 0;
  auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), id);
  if (ec == std::errc() && end == name.data() + name.size()) return id;
  struct group gr, *result = nullptr;
  char buf[1024];
  std::string n(name);
  if (getgrnam_r(n.c_str(), &gr, buf, sizeof buf, &result) == 0 && result != nullptr) {
    return gr.gr_gid;
  }
  return std::nullopt;
}

// The strings a Stat's views point into.
struct StatStrings {
  std::string name, uid, gid, extension;
};

// A stat record for `node` (whose attributes are `a`) named `name`.
wire::Stat MakeStat(fs::Node& node, const wire::Rgetattr& a, std::string name, bool dotu,
                    StatStrings& s) {
  uint32_t mode = a.mode & 0777;
  switch (a.mode & S_IFMT) {
    case S_IFDIR:
      mode |= kDmDir;
      break;
    case S_IFLNK:
      if (dotu) mode |= kDmSymlink;
      break;
    case S_IFCHR:
    case S_IFBLK:
      if (dotu) mode |= kDmDevice;
      break;
    case S_IFIFO:
      if (dotu) mode |= kDmNamedPipe;
      break;
    case S_IFSOCK:
      if (dotu) mode |= kDmSocket;
      break;
  }
  if (dotu && (a.mode & S_ISUID)) mode |= kDmSetuid;
  if (dotu && (a.mode & S_ISGID)) mode |= kDmSetgid;
  s.name = std::move(name);
  s.uid = UserName(a.uid);
  s.gid = GroupName(a.gid);
  if (dotu) {
    if ((a.mode & S_IFMT) == S_IFLNK) {
      if (auto target = node.ReadLink()) s.extension = std::move(*target);
    } else if ((a.mode & S_IFMT) == S_IFCHR || (a.mode & S_IFMT) == S_IFBLK) {
      s.extension = fmt::format("{} {} {}", (a.mode & S_IFMT) == S_IFCHR ? 'c' : 'b', major(a.rdev),
                                minor(a.rdev));
    }
  }
  wire::Stat st;
  st.qid = a.qid;
  st.mode = mode;
  st.atime = static_cast<uint32_t>(a.atime_sec);
  st.mtime = static_cast<uint32_t>(a.mtime_sec);
  st.length = (a.mode & S_IFMT) == S_IFDIR ? 0 : a.size;
  st.name = s.name;
  st.uid = s.uid;
  st.gid = s.gid;
  st.muid = s.uid;
  st.extension = s.extension;
  st.n_uid = a.uid;
  st.n_gid = a.gid;
  st.n_muid = a.uid;
  return st;
}

std::string LastName(const Fid& f) { return f.path.empty() ? "/" : f.path.back(); }

// The node of the fid's parent directory, re-walked from its attach root.
Result<std::unique_ptr<fs::Node>> Parent(const Fid& f) {
  Result<std::unique_ptr<fs::Node>> node = f.root->Clone();
  for (size_t i = 0; node && i + 1 < f.path.size(); ++i) node = (*node)->Walk(f.path[i]);
  return node;
}

}  // namespace

uint32_t OpenFlagsFromMode(uint8_t mode) {
  static constexpr uint32_t kAccess[] = {O_RDONLY, O_WRONLY, O_RDWR, O_RDONLY};  // OEXEC
  uint32_t flags = kAccess[mode & 3];
  if (mode & 0x10) flags |= O_TRUNC;
  return flags;
}

Result<Reply> HandleOpen(Connection& c, const wire::Topen& m) {
  auto fid = c.GetFid(m.fid);
  if (!fid) return Unexpected(fid.error());
  Fid& f = **fid;
  if (f.open) return Errno(EBADF, "fid already open");
  uint32_t flags = OpenFlagsFromMode(m.mode);
  if (f.is_dir) flags |= O_DIRECTORY;
  Result<uint32_t> iounit = f.node->Open(flags);
  if (!iounit) return Unexpected(iounit.error());
  f.open = true;
  f.remove_on_clunk = (m.mode & kOrclose) != 0;
  {
    std::lock_guard lock(f.dir_mu);
    f.dir_next_offset = 0;
    f.dir_cookie = 0;
  }
  uint32_t unit = *iounit != 0 ? std::min(*iounit, c.iounit()) : c.iounit();
  return Reply{wire::Ropen{.qid = f.node->qid(), .iounit = unit}, nullptr};
}

Result<Reply> HandleCreate(Connection& c, const wire::Tcreate& m) {
  auto fid = c.GetFid(m.fid);
  if (!fid) return Unexpected(fid.error());
  Fid& dir = **fid;
  if (m.name.empty() || m.name.find('/') != std::string_view::npos || m.name == "." ||
      m.name == "..") {
    return Errno(EINVAL, fmt::format("bad name '{}'", m.name));
  }
  bool dotu = IsDotU(c);
  uint32_t perm = m.perm & 0777;
  std::unique_ptr<fs::Node> node;
  bool open = false;
  if (m.perm & kDmDir) {
    if (auto q = dir.node->Mkdir(m.name, perm, wire::kNoUid); !q) return Unexpected(q.error());
    auto child = dir.node->Walk(m.name);
    if (!child) return Unexpected(child.error());
    if (auto ok = (*child)->Open(O_RDONLY | O_DIRECTORY); !ok) return Unexpected(ok.error());
    node = std::move(*child);
    open = true;
  } else if (dotu && (m.perm & (kDmSymlink | kDmDevice | kDmNamedPipe | kDmSocket | kDmLink))) {
    Result<wire::Qid> q = Errno(EINVAL, "Tcreate special file");
    if (m.perm & kDmLink) {
      // The extension names the fid of the link's target, in decimal.
      uint32_t target_fid = 0;
      std::string_view ext = m.extension;
      while (!ext.empty() && (ext.back() == '\n' || ext.back() == ' ')) ext.remove_suffix(1);
      auto [end, ec] = std::from_chars(ext.data(), ext.data() + ext.size(), target_fid);
      if (ec != std::errc() || end != ext.data() + ext.size()) {
        return Errno(EINVAL, fmt::format("hard link extension '{}'", m.extension));
      }
      auto target = c.GetFid(target_fid);
      if (!target) return Unexpected(target.error());
      if (auto ok = dir.node->Link(m.name, *(*target)->node); !ok) return Unexpected(ok.error());
      q = (*target)->node->qid();
    } else if (m.perm & kDmSymlink) {
      q = dir.node->Symlink(m.name, m.extension, wire::kNoUid);
    } else if (m.perm & kDmDevice) {
      char type = 0;
      unsigned maj = 0, min = 0;
      if (std::sscanf(std::string(m.extension).c_str(), "%c %u %u", &type, &maj, &min) != 3 ||
          (type != 'c' && type != 'b')) {
        return Errno(EINVAL, fmt::format("device extension '{}'", m.extension));
      }
      q = dir.node->Mknod(m.name, perm | (type == 'c' ? S_IFCHR : S_IFBLK), maj, min, wire::kNoUid);
    } else if (m.perm & kDmNamedPipe) {
      q = dir.node->Mknod(m.name, perm | S_IFIFO, 0, 0, wire::kNoUid);
    } else if (m.perm & kDmSocket) {
      q = dir.node->Mknod(m.name, perm | S_IFSOCK, 0, 0, wire::kNoUid);
    }
    if (!q) return Unexpected(q.error());
    auto child = dir.node->Walk(m.name);
    if (!child) return Unexpected(child.error());
    node = std::move(*child);
  } else {
    auto created =
        dir.node->Create(m.name, OpenFlagsFromMode(m.mode) | O_CREAT | O_EXCL, perm, wire::kNoUid);
    if (!created) return Unexpected(created.error());
    node = std::move(*created);
    open = true;
  }
  auto f = std::make_shared<Fid>();
  f->node = std::move(node);
  f->root = dir.root;
  f->who = dir.who;
  f->path = dir.path;
  f->path.emplace_back(m.name);
  f->open = open;
  f->is_dir = (m.perm & kDmDir) != 0;
  f->remove_on_clunk = (m.mode & kOrclose) != 0;
  wire::Qid qid = f->node->qid();
  c.ReplaceFid(m.fid, std::move(f));
  return Reply{wire::Rcreate{.qid = qid, .iounit = c.iounit()}, nullptr};
}

Result<Reply> HandleStat(Connection& c, const wire::Tstat& m) {
  auto fid = c.GetFid(m.fid);
  if (!fid) return Unexpected(fid.error());
  Fid& f = **fid;
  Result<wire::Rgetattr> attr = f.node->GetAttr(wire::kGetattrAll);
  if (!attr) return Unexpected(attr.error());
  auto strings = std::make_shared<StatStrings>();
  wire::Stat st = MakeStat(*f.node, *attr, LastName(f), IsDotU(c), *strings);
  return Reply{wire::Rstat{.stat = st}, strings};
}

Result<Reply> HandleWstat(Connection& c, const wire::Twstat& m) {
  auto fid = c.GetFid(m.fid);
  if (!fid) return Unexpected(fid.error());
  Fid& f = **fid;
  const wire::Stat& st = m.stat;
  // "Don't touch" is ~0 for numbers and "" for strings. The changes are applied in turn,
  // not atomically as Plan 9 asks; a failure part-way leaves the earlier ones done.
  wire::Tsetattr set{.fid = m.fid};
  if (st.mode != kNoValue32) {
    set.valid |= 0x1;
    set.mode = st.mode & 0777;
    if (IsDotU(c))
      set.mode |= (st.mode & kDmSetuid ? S_ISUID : 0) | (st.mode & kDmSetgid ? S_ISGID : 0);
  }
  if (st.atime != kNoValue32) {
    set.valid |= 0x10 | 0x80;
    set.atime_sec = st.atime;
  }
  if (st.mtime != kNoValue32) {
    set.valid |= 0x20 | 0x100;
    set.mtime_sec = st.mtime;
  }
  if (st.length != kNoValue64) {
    set.valid |= 0x8;
    set.size = st.length;
  }
  if (IsDotU(c) && st.n_uid != kNoValue32) {
    set.valid |= 0x2;
    set.uid = st.n_uid;
  }
  if (IsDotU(c) && st.n_gid != kNoValue32) {
    set.valid |= 0x4;
    set.gid = st.n_gid;
  } else if (!st.gid.empty()) {
    std::optional<uint32_t> gid = GroupId(st.gid);
    if (!gid) return Errno(EINVAL, fmt::format("unknown group '{}'", st.gid));
    set.valid |= 0x4;
    set.gid = *gid;
  }
  if (set.valid != 0) {
    if (auto ok = f.node->SetAttr(set); !ok) return Unexpected(ok.error());
  }
  if (!st.name.empty() && st.name != LastName(f)) {
    if (st.name.find('/') != std::string_view::npos || st.name == "." || st.name == "..") {
      return Errno(EINVAL, fmt::format("bad name '{}'", st.name));
    }
    if (f.path.empty()) return Errno(EINVAL, "cannot rename the root");
    auto parent = Parent(f);
    if (!parent) return Unexpected(parent.error());
    if (auto ok = f.node->Rename(**parent, st.name); !ok) return Unexpected(ok.error());
    f.path.back() = std::string(st.name);
  }
  return Reply{wire::Rwstat{}, nullptr};
}

Result<Reply> HandleDirRead(Connection& c, Fid& f, const wire::Tread& m) {
  if (!f.open) return Errno(EBADF, "read on a fid that is not open");
  std::lock_guard lock(f.dir_mu);
  if (m.offset == 0) {
    f.dir_next_offset = 0;
    f.dir_cookie = 0;
  } else if (m.offset != f.dir_next_offset) {
    return Errno(EINVAL, "directory read at an offset other than the previous end");
  }
  bool dotu = IsDotU(c);
  uint32_t count = std::min(m.count, c.iounit());
  auto out = std::make_shared<std::vector<std::byte>>(count);
  size_t used = 0;
  std::vector<std::byte> entries(8192);
  bool full = false;
  while (!full) {
    Result<size_t> n = f.node->ReadDir(f.dir_cookie, entries);
    if (!n) return Unexpected(n.error());
    if (*n == 0) break;
    std::span<const std::byte> rest(entries.data(), *n);
    while (!rest.empty()) {
      Result<wire::Dirent> d = wire::DecodeDirent(rest);
      if (!d) return Unexpected(Error(std::errc::io_error, d.error().ToString()));
      if (d->name != "." && d->name != "..") {
        auto child = f.node->Walk(d->name);
        if (child) {  // an entry that vanished since ReadDir is skipped
          auto attr = (*child)->GetAttr(wire::kGetattrAll);
          if (attr) {
            StatStrings strings;
            wire::Stat st = MakeStat(**child, *attr, std::string(d->name), dotu, strings);
            if (!wire::AppendDirStat(*out, &used, st, c.dialect())) {
              // This entry starts the next read. When not even it fits, the reply is
              // empty, as in Plan 9 and QEMU: Linux fills its buffer with reads until
              // one returns nothing, asking for the few bytes left at the end.
              full = true;
              break;
            }
          }
        }
      }
      f.dir_cookie = d->offset;
    }
  }
  f.dir_next_offset += used;
  return Reply{wire::Rread{.data = wire::Data(std::span<const std::byte>(out->data(), used))}, out};
}

}  // namespace ninefold::server
