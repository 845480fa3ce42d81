// exportfs confinement: a catalogue of attacks, each asserting its exact outcome, and
// after each one that the host files beside the export are untouched.
//
// Layout of every test:   base/export      the exported directory
//                         base/outside     the sentinel: a file, a directory, a symlink
//                         base/elsewhere   where the "host" (the test) moves things
// The outcomes exportfs defines (see ninefold/fs/exportfs.h):
//   * ".." at the root is the root; ".." re-resolves the recorded parent beneath the root.
//   * A name that is not one plain component ("", ".", "..", anything with '/' or NUL)
//     is EINVAL for every name-taking operation (Walk allows "." and "..").
//   * A symlink is never followed: Walk yields the symlink (qid type symlink), walking
//     through it is ENOTDIR (it is not a directory), opening it is ELOOP (O_NOFOLLOW's
//     answer), and re-resolving a parent path that now contains a symlink is ELOOP
//     (RESOLVE_NO_SYMLINKS).
//   * A node of another export is EXDEV for Link and RenameAt/Rename.
//   * Device nodes cannot be opened (EACCES) unless ExportOptions::open_devices.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "ninefold/fs/exportfs.h"
#include "ninefold/wire/codec.h"

namespace ninefold::fs {
namespace {

namespace stdfs = std::filesystem;

void HostWrite(const stdfs::path& p, std::string_view data) {
  std::ofstream(p, std::ios::binary) << data;
}

std::string HostRead(const stdfs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

ino_t Ino(const stdfs::path& p) {
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return st.st_ino;
}

// Reads a file without touching its atime, so that the atime in a snapshot betrays only
// reads by someone else.
std::string ReadNoAtime(const stdfs::path& p) {
  int fd = ::open(p.c_str(), O_RDONLY | O_NOATIME | O_CLOEXEC);
  if (fd < 0) return "<unreadable>";
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

// Everything observable about a tree: per entry, its type, mode, owner, size, times,
// inode, link count, content or link target, and xattrs. (Directories' and symlinks'
// atimes are left out: listing and readlink, which the snapshot itself does, set them.)
std::string Snapshot(const stdfs::path& root) {
  std::ostringstream out;
  std::vector<stdfs::path> paths{root};
  for (auto& e : stdfs::recursive_directory_iterator(root)) paths.push_back(e.path());
  for (auto& p : paths) {
    struct stat st {};
    ::lstat(p.c_str(), &st);
    out << p.string() << " mode=" << std::oct << st.st_mode << std::dec << " uid=" << st.st_uid
        << " gid=" << st.st_gid << " size=" << st.st_size << " ino=" << st.st_ino
        << " nlink=" << st.st_nlink << " mtime=" << st.st_mtim.tv_sec << "." << st.st_mtim.tv_nsec
        << " ctime=" << st.st_ctim.tv_sec << "." << st.st_ctim.tv_nsec;
    if (S_ISREG(st.st_mode)) {
      out << " atime=" << st.st_atim.tv_sec << "." << st.st_atim.tv_nsec
          << " data=" << ReadNoAtime(p);
    }
    if (S_ISLNK(st.st_mode)) out << " target=" << stdfs::read_symlink(p).string();
    char names[1024];
    ssize_t n = ::llistxattr(p.c_str(), names, sizeof names);
    if (n > 0) out << " xattrs=" << std::string(names, static_cast<size_t>(n));
    out << "\n";
  }
  return out.str();
}

class ExportFsEscapeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = "/tmp/ninefold-escape-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    base_ = tmpl;
    dir_ = base_ / "export";
    outside_ = base_ / "outside";
    elsewhere_ = base_ / "elsewhere";
    stdfs::create_directories(dir_);
    stdfs::create_directories(outside_ / "subdir");
    stdfs::create_directories(elsewhere_);
    HostWrite(outside_ / "secret", "the secret\n");
    HostWrite(outside_ / "subdir/deeper", "deeper secret\n");
    stdfs::create_symlink("secret", outside_ / "link");
    ::setxattr((outside_ / "secret").c_str(), "user.secret", "v", 1, 0);
    ::chmod((outside_ / "secret").c_str(), 0640);
    // Times that no accidental touch would reproduce.
    struct timespec ts[2] = {{1000000000, 1}, {1000000000, 2}};
    ::utimensat(AT_FDCWD, (outside_ / "secret").c_str(), ts, AT_SYMLINK_NOFOLLOW);
    ::utimensat(AT_FDCWD, (outside_ / "subdir/deeper").c_str(), ts, AT_SYMLINK_NOFOLLOW);
    ::utimensat(AT_FDCWD, (outside_ / "link").c_str(), ts, AT_SYMLINK_NOFOLLOW);
    sentinel_ = Snapshot(outside_);
    base_ino_ = Ino(base_);

    auto fs = MakeExportFs(dir_, {});
    ASSERT_TRUE(fs);
    fs_ = std::move(*fs);
    auto root = fs_->Attach(Identity{"root", 0}, "");
    ASSERT_TRUE(root);
    root_ = std::move(*root);
  }

  void TearDown() override {
    EXPECT_EQ(Snapshot(outside_), sentinel_) << "the attack changed files outside the export";
    root_.reset();
    std::error_code ec;
    stdfs::remove_all(base_, ec);
  }

  std::unique_ptr<Node> MustWalk(Node& from, const std::string& path) {
    auto cur = from.Clone();
    std::stringstream ss(path);
    std::string name;
    while (cur && std::getline(ss, name, '/')) cur = (*cur)->Walk(name);
    EXPECT_TRUE(cur) << path << ": " << cur.error().ToString();
    return cur ? std::move(*cur) : nullptr;
  }

  template <class R>
  static int Err(const R& r) {
    return r ? 0 : r.error().code().value();
  }

  // Names that must never be accepted as one component.
  static std::vector<std::string> BadNames() {
    return {"..",        ".",
            "a/b",       "",
            "../escape", "../outside/secret",
            "/abs",      std::string("ok\0/../x", 8)};
  }

  // The root's entries (name, qid), as a client lists them.
  std::vector<std::pair<std::string, wire::Qid>> ListRoot() {
    auto dir = root_->Clone();
    EXPECT_TRUE(dir && (*dir)->Open(O_RDONLY));
    std::vector<std::byte> buf(256);
    std::vector<std::pair<std::string, wire::Qid>> out;
    uint64_t offset = 0;
    for (;;) {
      auto used = (*dir)->ReadDir(offset, buf);
      EXPECT_TRUE(used);
      if (!used || *used == 0) break;
      std::span<const std::byte> data(buf.data(), *used);
      while (!data.empty()) {
        auto d = wire::DecodeDirent(data);
        EXPECT_TRUE(d);
        if (!d) return out;
        out.emplace_back(std::string(d->name), d->qid);
        offset = d->offset;
      }
    }
    return out;
  }

  stdfs::path base_, dir_, outside_, elsewhere_;
  std::string sentinel_;
  ino_t base_ino_ = 0;
  std::unique_ptr<FileServer> fs_;
  std::unique_ptr<Node> root_;
};

// 1. ".." at the root, many times over, is the root.
TEST_F(ExportFsEscapeTest, DotDotAtRootStaysAtRoot) {
  auto cur = root_->Clone();
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(cur);
    cur = (*cur)->Walk("..");
    ASSERT_TRUE(cur);
    EXPECT_EQ((*cur)->qid(), root_->qid());
  }
  EXPECT_EQ(Err((*cur)->Walk("outside")), ENOENT);  // the sentinel is not a child
}

// 2. Walking down and then up more often than down ends at the root.
TEST_F(ExportFsEscapeTest, DotDotSequenceAfterWalkingDownStopsAtRoot) {
  stdfs::create_directories(dir_ / "a/b/c");
  auto c = MustWalk(*root_, "a/b/c");
  auto up = MustWalk(*c, "../../../../../..");
  EXPECT_EQ(up->qid(), root_->qid());
  EXPECT_NE(up->qid().path, base_ino_);
  EXPECT_EQ(Err(up->Walk("outside")), ENOENT);
}

// 3. A name with '/' is not a path: EINVAL, whatever it would have resolved to.
TEST_F(ExportFsEscapeTest, WalkNameWithSlashIsEINVAL) {
  stdfs::create_directories(dir_ / "a");
  EXPECT_EQ(Err(root_->Walk("a/../../outside")), EINVAL);
  EXPECT_EQ(Err(root_->Walk("../outside")), EINVAL);
  EXPECT_EQ(Err(root_->Walk("/etc")), EINVAL);
  EXPECT_EQ(Err(root_->Walk("a/")), EINVAL);
}

// 4. A NUL byte cannot cut a name short ("a\0/.." would be "a" to the kernel).
TEST_F(ExportFsEscapeTest, WalkNameWithNulIsEINVAL) {
  stdfs::create_directories(dir_ / "a");
  EXPECT_EQ(Err(root_->Walk(std::string("a\0/../..", 8))), EINVAL);
  EXPECT_EQ(Err(root_->Create(std::string("f\0x", 3), O_RDWR, 0644, wire::kNoUid)), EINVAL);
}

// 5. An absolute symlink to /etc is the symlink; walking through it is ENOTDIR.
TEST_F(ExportFsEscapeTest, AbsoluteSymlinkToEtcIsNotFollowed) {
  stdfs::create_symlink("/etc", dir_ / "etc");
  stdfs::create_symlink(outside_, dir_ / "out");
  auto etc = MustWalk(*root_, "etc");
  EXPECT_EQ(etc->qid().type, wire::kQtSymlink);
  EXPECT_EQ(Err(etc->Walk("passwd")), ENOTDIR);
  auto out = MustWalk(*root_, "out");
  EXPECT_EQ(Err(out->Walk("secret")), ENOTDIR);
  EXPECT_EQ(Err(out->Open(O_RDONLY)), ELOOP);
  EXPECT_EQ(*out->ReadLink(), outside_.string());  // the client sees only the text
}

// 6. A relative symlink climbing out of the export is not followed either.
TEST_F(ExportFsEscapeTest, RelativeSymlinkClimbingOutIsNotFollowed) {
  stdfs::create_directories(dir_ / "a");
  stdfs::create_symlink("../../outside", dir_ / "a/up");
  stdfs::create_symlink("../../../../../../../etc", dir_ / "a/etc");
  auto up = MustWalk(*root_, "a/up");
  EXPECT_EQ(up->qid().type, wire::kQtSymlink);
  EXPECT_EQ(Err(up->Walk("secret")), ENOTDIR);
  EXPECT_EQ(Err(MustWalk(*root_, "a/etc")->Walk("passwd")), ENOTDIR);
  EXPECT_EQ(Err(up->Walk("..")), ENOTDIR);
}

// 7. Even a symlink to a directory inside the export is not followed by Walk.
TEST_F(ExportFsEscapeTest, SymlinkToInsideDirectoryIsNotFollowed) {
  stdfs::create_directories(dir_ / "real");
  HostWrite(dir_ / "real/f", "");
  stdfs::create_directory_symlink("real", dir_ / "alias");
  auto alias = MustWalk(*root_, "alias");
  EXPECT_EQ(alias->qid().type, wire::kQtSymlink);
  EXPECT_EQ(alias->qid().path, Ino(dir_ / "alias"));
  EXPECT_EQ(Err(alias->Walk("f")), ENOTDIR);
}

// 8. A chain of symlinks ending at "/" is one symlink node; opening it is ELOOP.
TEST_F(ExportFsEscapeTest, SymlinkChainIsNotFollowed) {
  stdfs::create_symlink("l2", dir_ / "l1");
  stdfs::create_symlink("l3", dir_ / "l2");
  stdfs::create_symlink("/", dir_ / "l3");
  auto l1 = MustWalk(*root_, "l1");
  EXPECT_EQ(l1->qid().type, wire::kQtSymlink);
  EXPECT_EQ(*l1->ReadLink(), "l2");
  EXPECT_EQ(Err(l1->Open(O_RDONLY)), ELOOP);
  EXPECT_EQ(Err(l1->Walk("etc")), ENOTDIR);
}

// 9. Race: a directory is swapped for a symlink to "/" between two walks.
TEST_F(ExportFsEscapeTest, SymlinkSwappedForDirectoryBetweenWalks) {
  stdfs::create_directories(dir_ / "d/sub");
  HostWrite(dir_ / "d/sub/f", "inside");
  auto d = MustWalk(*root_, "d");
  auto sub = MustWalk(*root_, "d/sub");
  stdfs::rename(dir_ / "d", elsewhere_ / "d");
  stdfs::create_directory_symlink("/", dir_ / "d");
  // The held node is the directory it was walked to, not whatever is named "d" now.
  auto f = MustWalk(*d, "sub/f");
  EXPECT_EQ(f->qid().path, Ino(elsewhere_ / "d/sub/f"));
  EXPECT_EQ(Err(d->Walk("etc")), ENOENT);
  // ".." from the held child re-resolves "d" beneath the root and meets the symlink.
  EXPECT_EQ(Err(sub->Walk("..")), ELOOP);
  // A fresh walk sees the symlink, as a node, not "/".
  auto now = MustWalk(*root_, "d");
  EXPECT_EQ(now->qid().type, wire::kQtSymlink);
  EXPECT_EQ(Err(now->Walk("etc")), ENOTDIR);
}

// 10. A directory moved outside the export while a node inside it is held: ".." never
//     reaches the directory's new host parent.
TEST_F(ExportFsEscapeTest, DirectoryMovedOutsideThenDotDot) {
  stdfs::create_directories(dir_ / "a/b");
  auto a = MustWalk(*root_, "a");
  auto b = MustWalk(*root_, "a/b");
  stdfs::rename(dir_ / "a", elsewhere_ / "a");
  // a's recorded parent is the root: ".." from it stays inside.
  auto up_a = a->Walk("..");
  ASSERT_TRUE(up_a);
  EXPECT_EQ((*up_a)->qid(), root_->qid());
  EXPECT_EQ(Err((*up_a)->Walk("elsewhere")), ENOENT);
  // b's recorded parent "a" no longer exists in the export.
  EXPECT_EQ(Err(b->Walk("..")), ENOENT);
  // When "a" exists again inside, ".." is that inside directory, never the moved one.
  stdfs::create_directories(dir_ / "a");
  auto up_b = b->Walk("..");
  ASSERT_TRUE(up_b);
  EXPECT_EQ((*up_b)->qid().path, Ino(dir_ / "a"));
  EXPECT_NE((*up_b)->qid().path, Ino(elsewhere_ / "a"));
  auto up_up = MustWalk(**up_b, "../..");
  EXPECT_EQ(up_up->qid(), root_->qid());
}

// 11. Remove of a node whose directory was moved outside does not touch the moved file.
TEST_F(ExportFsEscapeTest, DirectoryMovedOutsideThenRemove) {
  stdfs::create_directories(dir_ / "a");
  HostWrite(dir_ / "a/f", "keep");
  auto f = MustWalk(*root_, "a/f");
  stdfs::rename(dir_ / "a", elsewhere_ / "a");
  EXPECT_EQ(Err(f->Remove()), ENOENT);
  EXPECT_EQ(HostRead(elsewhere_ / "a/f"), "keep");
  // And if another "a/f" appears inside, it is not this node's file: ESTALE.
  stdfs::create_directories(dir_ / "a");
  HostWrite(dir_ / "a/f", "other");
  EXPECT_EQ(Err(f->Remove()), ESTALE);
  EXPECT_EQ(Err(f->Rename(*root_, "g")), ESTALE);
  EXPECT_EQ(HostRead(dir_ / "a/f"), "other");
  EXPECT_EQ(HostRead(elsewhere_ / "a/f"), "keep");
}

// 12. Magic links: /proc/self/root and /proc/self/cwd are symlinks like any other.
TEST_F(ExportFsEscapeTest, ProcSelfRootAndCwdAreNotFollowed) {
  stdfs::create_symlink("/proc/self/root", dir_ / "root");
  stdfs::create_symlink("/proc/self/cwd", dir_ / "cwd");
  for (const char* name : {"root", "cwd"}) {
    auto n = MustWalk(*root_, name);
    EXPECT_EQ(n->qid().type, wire::kQtSymlink) << name;
    EXPECT_EQ(Err(n->Walk("etc")), ENOTDIR) << name;
    EXPECT_EQ(Err(n->Open(O_RDONLY)), ELOOP) << name;
    EXPECT_EQ(Err(n->Open(O_RDONLY | O_DIRECTORY)), ELOOP) << name;
  }
}

// 13. A symlink to /proc/self/fd/N, where N is an open descriptor of the server process
//     on a directory outside the export.
TEST_F(ExportFsEscapeTest, ProcSelfFdMagicLinkIsNotFollowed) {
  int fd = ::open(outside_.c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  int file_fd = ::open((outside_ / "secret").c_str(), O_RDWR);
  ASSERT_GE(file_fd, 0);
  stdfs::create_symlink("/proc/self/fd/" + std::to_string(fd), dir_ / "fddir");
  stdfs::create_symlink("/proc/self/fd/" + std::to_string(file_fd), dir_ / "fdfile");
  auto dirlink = MustWalk(*root_, "fddir");
  EXPECT_EQ(dirlink->qid().type, wire::kQtSymlink);
  EXPECT_EQ(Err(dirlink->Walk("secret")), ENOTDIR);
  auto filelink = MustWalk(*root_, "fdfile");
  EXPECT_EQ(Err(filelink->Open(O_RDWR)), ELOOP);
  wire::Tsetattr trunc;
  trunc.valid = 0x8;
  EXPECT_EQ(Err(filelink->SetAttr(trunc)), EINVAL);
  ::close(fd);
  ::close(file_fd);
}

// 14. Create with a traversing name is EINVAL and creates nothing anywhere.
TEST_F(ExportFsEscapeTest, CreateWithBadNamesIsEINVAL) {
  for (const std::string& name : BadNames()) {
    EXPECT_EQ(Err(root_->Create(name, O_RDWR, 0644, wire::kNoUid)), EINVAL) << name;
  }
  EXPECT_FALSE(stdfs::exists(base_ / "escape"));
}

// 15. Mkdir.
TEST_F(ExportFsEscapeTest, MkdirWithBadNamesIsEINVAL) {
  for (const std::string& name : BadNames()) {
    EXPECT_EQ(Err(root_->Mkdir(name, 0755, wire::kNoUid)), EINVAL) << name;
  }
  EXPECT_FALSE(stdfs::exists(base_ / "escape"));
}

// 16. Symlink (the name; the target is only text and may say anything).
TEST_F(ExportFsEscapeTest, SymlinkWithBadNamesIsEINVAL) {
  for (const std::string& name : BadNames()) {
    EXPECT_EQ(Err(root_->Symlink(name, "/etc", wire::kNoUid)), EINVAL) << name;
  }
  EXPECT_FALSE(stdfs::exists(base_ / "escape"));
}

// 17. Mknod.
TEST_F(ExportFsEscapeTest, MknodWithBadNamesIsEINVAL) {
  for (const std::string& name : BadNames()) {
    EXPECT_EQ(Err(root_->Mknod(name, S_IFIFO | 0644, 0, 0, wire::kNoUid)), EINVAL) << name;
  }
  EXPECT_FALSE(stdfs::exists(base_ / "escape"));
}

// 18. Link: a name with "../x" is rejected; a node of another export is EXDEV.
TEST_F(ExportFsEscapeTest, LinkWithBadNamesOrForeignTargetIsRejected) {
  HostWrite(dir_ / "f", "");
  auto f = MustWalk(*root_, "f");
  for (const std::string& name : BadNames()) {
    EXPECT_EQ(Err(root_->Link(name, *f)), EINVAL) << name;
  }
  EXPECT_EQ(Err(root_->Link("../x", *f)), EINVAL);
  // The only nodes a client holds come from an export; one from another export (here,
  // an export of the sentinel) cannot be linked in.
  auto other = MakeExportFs(outside_, {});
  ASSERT_TRUE(other);
  auto other_root = (*other)->Attach(Identity{}, "");
  ASSERT_TRUE(other_root);
  auto secret = MustWalk(**other_root, "secret");
  EXPECT_EQ(Err(root_->Link("stolen", *secret)), EXDEV);
  EXPECT_FALSE(stdfs::exists(dir_ / "stolen"));
}

// 19. RenameAt: bad old or new names; a foreign destination directory is EXDEV.
TEST_F(ExportFsEscapeTest, RenameAtWithBadNamesOrForeignDirIsRejected) {
  HostWrite(dir_ / "f", "mine");
  for (const std::string& name : BadNames()) {
    EXPECT_EQ(Err(root_->RenameAt(name, *root_, "g")), EINVAL) << name;
    EXPECT_EQ(Err(root_->RenameAt("f", *root_, name)), EINVAL) << name;
  }
  auto other = MakeExportFs(outside_, {});
  ASSERT_TRUE(other);
  auto other_root = (*other)->Attach(Identity{}, "");
  ASSERT_TRUE(other_root);
  EXPECT_EQ(Err(root_->RenameAt("f", **other_root, "f")), EXDEV);
  EXPECT_EQ(Err((*other_root)->RenameAt("secret", *root_, "secret")), EXDEV);
  EXPECT_EQ(HostRead(dir_ / "f"), "mine");
}

// 20. Rename: bad new names, a foreign directory, and the root itself.
TEST_F(ExportFsEscapeTest, RenameWithBadNamesForeignDirOrRootIsRejected) {
  HostWrite(dir_ / "f", "mine");
  auto f = MustWalk(*root_, "f");
  for (const std::string& name : BadNames()) {
    EXPECT_EQ(Err(f->Rename(*root_, name)), EINVAL) << name;
  }
  auto other = MakeExportFs(outside_, {});
  ASSERT_TRUE(other);
  auto other_root = (*other)->Attach(Identity{}, "");
  ASSERT_TRUE(other_root);
  EXPECT_EQ(Err(f->Rename(**other_root, "f")), EXDEV);
  EXPECT_EQ(Err(root_->Rename(*root_, "x")), EBUSY);
  EXPECT_EQ(Err(root_->Remove()), EBUSY);
  EXPECT_EQ(HostRead(dir_ / "f"), "mine");
}

// 21. UnlinkAt: "..", "." and paths are EINVAL (not EISDIR/ENOTEMPTY from the kernel).
TEST_F(ExportFsEscapeTest, UnlinkAtWithBadNamesIsEINVAL) {
  for (const std::string& name : BadNames()) {
    EXPECT_EQ(Err(root_->UnlinkAt(name, 0)), EINVAL) << name;
    EXPECT_EQ(Err(root_->UnlinkAt(name, AT_REMOVEDIR)), EINVAL) << name;
  }
  EXPECT_EQ(Err(root_->UnlinkAt("../outside/secret", 0)), EINVAL);
}

// 22. A symlink the client creates pointing outside cannot be opened through.
TEST_F(ExportFsEscapeTest, ClientSymlinkOutsideCannotBeOpened) {
  ASSERT_TRUE(root_->Symlink("s", (outside_ / "secret").string(), wire::kNoUid));
  ASSERT_TRUE(root_->Symlink("rel", "../outside/secret", wire::kNoUid));
  for (const char* name : {"s", "rel"}) {
    auto s = MustWalk(*root_, name);
    EXPECT_EQ(Err(s->Open(O_RDONLY)), ELOOP) << name;
    EXPECT_EQ(Err(s->Open(O_WRONLY | O_TRUNC)), ELOOP) << name;
    std::vector<std::byte> buf(64);
    EXPECT_EQ(Err(s->Read(0, buf)), EBADF) << name;
  }
  // Create over the symlink's name must not follow it to the target either.
  EXPECT_EQ(Err(root_->Create("s", O_RDWR | O_TRUNC, 0644, wire::kNoUid)), ELOOP);
  EXPECT_EQ(Err(root_->Create("s", O_RDWR | O_EXCL, 0644, wire::kNoUid)), EEXIST);
}

// 23. SetAttr on a symlink to an outside file changes at most the symlink.
TEST_F(ExportFsEscapeTest, SetAttrThroughSymlinkDoesNotTouchTarget) {
  stdfs::create_symlink(outside_ / "secret", dir_ / "s");
  auto s = MustWalk(*root_, "s");
  wire::Tsetattr req;
  req.valid = 0x8;  // SIZE
  EXPECT_EQ(Err(s->SetAttr(req)), EINVAL);
  req.valid = 0x1;  // MODE
  req.mode = 0777;
  EXPECT_EQ(Err(s->SetAttr(req)), EOPNOTSUPP);
  req.valid = 0x2 | 0x4;  // UID | GID: lchown semantics
  req.uid = 4242;
  req.gid = 4343;
  EXPECT_TRUE(s->SetAttr(req));
  req.valid = 0x10 | 0x20 | 0x80 | 0x100;  // explicit times: lutimes semantics
  req.atime_sec = 5;
  req.mtime_sec = 6;
  EXPECT_TRUE(s->SetAttr(req));
  struct stat st {};
  ASSERT_EQ(::lstat((dir_ / "s").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 4242u);
  EXPECT_EQ(st.st_mtim.tv_sec, 6);
  // (TearDown checks the target's mode, owner, size and times are as they were.)
}

// 24. Xattrs on a symlink to an outside file: never the target's.
TEST_F(ExportFsEscapeTest, XattrOnSymlinkToOutsideDoesNotReachTarget) {
  stdfs::create_symlink(outside_ / "secret", dir_ / "s");
  auto s = MustWalk(*root_, "s");
  EXPECT_EQ(Err(s->GetXattr("user.secret")), ENODATA);
  auto list = s->GetXattr("");
  ASSERT_TRUE(list);
  EXPECT_EQ(list->find("user.secret"), std::string::npos);
  EXPECT_EQ(Err(s->SetXattr("user.planted", "x", 0)), EPERM);  // no user.* on symlinks
  EXPECT_EQ(Err(s->RemoveXattr("user.secret")), EPERM);
}

// 25. Readdir of the root shows only the export's entries, and its ".." is the root.
TEST_F(ExportFsEscapeTest, ReadDirRevealsNothingOutside) {
  HostWrite(dir_ / "visible", "");
  std::vector<std::string> names;
  for (auto& [name, qid] : ListRoot()) {
    names.push_back(name);
    if (name == "..") {
      EXPECT_EQ(qid, root_->qid());
      EXPECT_NE(qid.path, base_ino_);
    }
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{".", "..", "visible"}));
}

// 26. A device node (which a client may Mknod) cannot be opened: it would reach the
//     host's devices.
TEST_F(ExportFsEscapeTest, DeviceNodesCannotBeOpened) {
  ASSERT_TRUE(root_->Mknod("mem", S_IFCHR | 0600, 1, 1, wire::kNoUid));  // /dev/mem
  ASSERT_TRUE(root_->Mknod("vda", S_IFBLK | 0600, 253, 0, wire::kNoUid));
  EXPECT_EQ(Err(MustWalk(*root_, "mem")->Open(O_RDONLY)), EACCES);
  EXPECT_EQ(Err(MustWalk(*root_, "vda")->Open(O_RDWR)), EACCES);
  EXPECT_EQ(Err(root_->Create("mem", O_RDONLY, 0600, wire::kNoUid)), EACCES);
}

// 27. Walking from a file, even with "..", is ENOTDIR: a file (perhaps a host hard link
//     to a file elsewhere) gives no way to the directories around it.
TEST_F(ExportFsEscapeTest, WalkFromAFileIsENOTDIR) {
  HostWrite(dir_ / "h", "");
  auto h = MustWalk(*root_, "h");
  EXPECT_EQ(Err(h->Walk("..")), ENOTDIR);
  EXPECT_EQ(Err(h->Walk(".")), 0);  // "." is the node itself
  EXPECT_EQ(Err(h->Walk("deeper")), ENOTDIR);
}

}  // namespace
}  // namespace ninefold::fs
