// exportfs: every operation against a temporary host directory, checked against what the
// host itself sees (stat, std::ifstream, getxattr). The tests run as root.
#include "ninefold/fs/exportfs.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ninefold/wire/codec.h"

namespace ninefold::fs {
namespace {

namespace stdfs = std::filesystem;

std::span<const std::byte> Bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

std::string HostRead(const stdfs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void HostWrite(const stdfs::path& p, std::string_view data) {
  std::ofstream(p, std::ios::binary) << data;
}

struct stat HostStat(const stdfs::path& p) {
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return st;
}

// True when `dir`'s file system accepts user.* xattrs.
bool UserXattrsWork(const std::string& dir) {
  std::string probe = dir + "/.xattr-probe";
  HostWrite(probe, "");
  bool ok = ::setxattr(probe.c_str(), "user.probe", "1", 1, 0) == 0;
  ::unlink(probe.c_str());
  return ok;
}

class ExportFsTest : public ::testing::Test {
 protected:
  void SetUp() override { MakeTemp("/tmp"); }
  void TearDown() override {
    std::error_code ec;
    stdfs::remove_all(base_, ec);
  }

  void MakeTemp(const std::string& parent) {
    if (!base_.empty()) stdfs::remove_all(base_);
    std::string tmpl = parent + "/ninefold-exportfs-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    base_ = tmpl;
    dir_ = base_ / "export";
    stdfs::create_directory(dir_);
  }

  std::unique_ptr<Node> Root(ExportOptions opts = {}) {
    auto fs = MakeExportFs(dir_, opts);
    EXPECT_TRUE(fs) << fs.error().ToString();
    auto root = (*fs)->Attach(Identity{"root", 0}, "ignored");
    EXPECT_TRUE(root) << root.error().ToString();
    return std::move(*root);
  }

  // Walks "a/b/c" one name at a time.
  static Result<std::unique_ptr<Node>> WalkPath(Node& from, const std::string& path) {
    auto cur = from.Clone();
    std::stringstream ss(path);
    std::string name;
    while (cur && std::getline(ss, name, '/')) cur = (*cur)->Walk(name);
    return cur;
  }

  std::unique_ptr<Node> MustWalk(Node& from, const std::string& path) {
    auto n = WalkPath(from, path);
    EXPECT_TRUE(n) << path << ": " << n.error().ToString();
    return n ? std::move(*n) : nullptr;
  }

  static std::string ReadAll(Node& n) {
    std::string out;
    std::vector<std::byte> buf(7);  // small on purpose: several reads
    for (uint64_t off = 0;;) {
      auto got = n.Read(off, buf);
      EXPECT_TRUE(got) << got.error().ToString();
      if (!got || *got == 0) return out;
      out.append(reinterpret_cast<const char*>(buf.data()), *got);
      off += *got;
    }
  }

  // Every entry of a directory, read with replies of `reply_size` bytes.
  static std::vector<std::pair<std::string, wire::Dirent>> ReadDirAll(Node& dir,
                                                                      size_t reply_size) {
    std::vector<std::pair<std::string, wire::Dirent>> entries;
    std::vector<std::byte> buf(reply_size);
    uint64_t offset = 0;
    for (int replies = 0; replies < 100000; ++replies) {
      auto used = dir.ReadDir(offset, buf);
      EXPECT_TRUE(used) << used.error().ToString();
      if (!used || *used == 0) break;
      std::span<const std::byte> data(buf.data(), *used);
      while (!data.empty()) {
        auto d = wire::DecodeDirent(data);
        EXPECT_TRUE(d);
        if (!d) return entries;
        entries.emplace_back(std::string(d->name), *d);
        offset = d->offset;
      }
    }
    return entries;
  }

  stdfs::path base_;  // removed after the test
  stdfs::path dir_;   // the exported directory, base_/export
};

TEST_F(ExportFsTest, AttachIgnoresAnameAndReturnsTheRootDirectory) {
  auto fs = MakeExportFs(dir_, {});
  ASSERT_TRUE(fs);
  auto a = (*fs)->Attach(Identity{}, "");
  auto b = (*fs)->Attach(Identity{}, "/some/other/aname");
  ASSERT_TRUE(a && b);
  EXPECT_EQ((*a)->qid().type, wire::kQtDir);
  EXPECT_EQ((*a)->qid().path, HostStat(dir_).st_ino);
  EXPECT_EQ((*a)->qid(), (*b)->qid());
}

TEST_F(ExportFsTest, MakeExportFsFailsOnMissingOrNonDirectory) {
  auto missing = MakeExportFs((base_ / "nope").string(), {});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code().value(), ENOENT);
  HostWrite(base_ / "file", "x");
  auto file = MakeExportFs((base_ / "file").string(), {});
  ASSERT_FALSE(file);
  EXPECT_EQ(file.error().code().value(), ENOTDIR);
}

TEST_F(ExportFsTest, WalkAndGetAttrMatchTheHost) {
  stdfs::create_directories(dir_ / "a/b");
  HostWrite(dir_ / "a/b/f", "hello");
  auto root = Root();
  auto f = MustWalk(*root, "a/b/f");
  ASSERT_TRUE(f);
  struct stat st = HostStat(dir_ / "a/b/f");
  EXPECT_EQ(f->qid().type, wire::kQtFile);
  EXPECT_EQ(f->qid().path, st.st_ino);
  auto attr = f->GetAttr(~0ull);
  ASSERT_TRUE(attr) << attr.error().ToString();
  EXPECT_EQ(attr->valid & 0x7ff, 0x7ffu);
  EXPECT_EQ(attr->qid, f->qid());
  EXPECT_EQ(attr->mode, st.st_mode);
  EXPECT_EQ(attr->uid, st.st_uid);
  EXPECT_EQ(attr->gid, st.st_gid);
  EXPECT_EQ(attr->nlink, st.st_nlink);
  EXPECT_EQ(attr->size, 5u);
  EXPECT_EQ(attr->blocks, static_cast<uint64_t>(st.st_blocks));
  EXPECT_EQ(attr->mtime_sec, static_cast<uint64_t>(st.st_mtim.tv_sec));
  EXPECT_EQ(attr->mtime_nsec, static_cast<uint64_t>(st.st_mtim.tv_nsec));
  EXPECT_EQ(attr->ctime_sec, static_cast<uint64_t>(st.st_ctim.tv_sec));

  auto b = MustWalk(*root, "a/b");
  EXPECT_EQ(b->qid().type, wire::kQtDir);
  EXPECT_EQ(b->qid().path, HostStat(dir_ / "a/b").st_ino);
  auto up = b->Walk("..");
  ASSERT_TRUE(up);
  EXPECT_EQ((*up)->qid().path, HostStat(dir_ / "a").st_ino);
  auto self = b->Walk(".");
  ASSERT_TRUE(self);
  EXPECT_EQ((*self)->qid(), b->qid());
  auto clone = b->Clone();
  ASSERT_TRUE(clone);
  EXPECT_EQ((*clone)->qid(), b->qid());
}

TEST_F(ExportFsTest, WalkErrors) {
  HostWrite(dir_ / "f", "");
  auto root = Root();
  auto missing = root->Walk("missing");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code().value(), ENOENT);
  auto f = MustWalk(*root, "f");
  auto through = f->Walk("x");
  ASSERT_FALSE(through);
  EXPECT_EQ(through.error().code().value(), ENOTDIR);
}

TEST_F(ExportFsTest, WalkOntoSymlinkYieldsTheSymlink) {
  stdfs::create_directory(dir_ / "d");
  stdfs::create_directory_symlink("d", dir_ / "l");
  auto root = Root();
  auto l = MustWalk(*root, "l");
  EXPECT_EQ(l->qid().type, wire::kQtSymlink);
  EXPECT_EQ(l->qid().path, HostStat(dir_ / "l").st_ino);
  auto attr = l->GetAttr(~0ull);
  ASSERT_TRUE(attr);
  EXPECT_TRUE(S_ISLNK(attr->mode));
  auto target = l->ReadLink();
  ASSERT_TRUE(target);
  EXPECT_EQ(*target, "d");
}

TEST_F(ExportFsTest, SetAttrModeUidGid) {
  HostWrite(dir_ / "f", "");
  auto f = MustWalk(*Root(), "f");
  wire::Tsetattr req;
  req.valid = 0x1;  // MODE
  req.mode = 04751;
  ASSERT_TRUE(f->SetAttr(req));
  EXPECT_EQ(HostStat(dir_ / "f").st_mode & 07777, 04751u);
  req = {};
  req.valid = 0x2 | 0x4;  // UID | GID
  req.uid = 1234;
  req.gid = 5678;
  auto ok = f->SetAttr(req);
  ASSERT_TRUE(ok) << ok.error().ToString();
  EXPECT_EQ(HostStat(dir_ / "f").st_uid, 1234u);
  EXPECT_EQ(HostStat(dir_ / "f").st_gid, 5678u);
  req.valid = 0x4;  // GID only: the uid stays
  req.uid = 1;
  req.gid = 42;
  ASSERT_TRUE(f->SetAttr(req));
  EXPECT_EQ(HostStat(dir_ / "f").st_uid, 1234u);
  EXPECT_EQ(HostStat(dir_ / "f").st_gid, 42u);
}

TEST_F(ExportFsTest, SetAttrSizeTruncatesAndExtends) {
  HostWrite(dir_ / "f", "0123456789");
  auto f = MustWalk(*Root(), "f");
  wire::Tsetattr req;
  req.valid = 0x8;  // SIZE
  req.size = 4;
  ASSERT_TRUE(f->SetAttr(req));
  EXPECT_EQ(HostRead(dir_ / "f"), "0123");
  req.size = 6;
  ASSERT_TRUE(f->SetAttr(req));
  EXPECT_EQ(HostRead(dir_ / "f"), std::string("0123\0\0", 6));
  auto dir = MustWalk(*Root(), ".");
  auto bad = dir->SetAttr(req);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code().value(), EISDIR);
}

TEST_F(ExportFsTest, SetAttrExplicitTimesAndNow) {
  HostWrite(dir_ / "f", "");
  auto f = MustWalk(*Root(), "f");
  wire::Tsetattr req;
  req.valid = 0x10 | 0x20 | 0x80 | 0x100;  // ATIME | MTIME | ATIME_SET | MTIME_SET
  req.atime_sec = 1000000000;
  req.atime_nsec = 123;
  req.mtime_sec = 1200000000;
  req.mtime_nsec = 456;
  ASSERT_TRUE(f->SetAttr(req));
  struct stat st = HostStat(dir_ / "f");
  EXPECT_EQ(st.st_atim.tv_sec, 1000000000);
  EXPECT_EQ(st.st_atim.tv_nsec, 123);
  EXPECT_EQ(st.st_mtim.tv_sec, 1200000000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 456);

  // MTIME without MTIME_SET: the server's "now"; atime untouched.
  time_t before = ::time(nullptr);
  req = {};
  req.valid = 0x20;
  ASSERT_TRUE(f->SetAttr(req));
  st = HostStat(dir_ / "f");
  EXPECT_GE(st.st_mtim.tv_sec, before - 1);
  EXPECT_EQ(st.st_atim.tv_sec, 1000000000);

  auto attr = f->GetAttr(~0ull);
  ASSERT_TRUE(attr);
  EXPECT_EQ(attr->atime_sec, 1000000000u);
  EXPECT_EQ(attr->atime_nsec, 123u);
}

TEST_F(ExportFsTest, CreateWritesAFileTheHostReads) {
  ::umask(022);  // the server's umask must not eat the client's bits
  auto root = Root();
  auto f = root->Create("new", O_RDWR, 0666, 4321);
  ASSERT_TRUE(f) << f.error().ToString();
  struct stat st = HostStat(dir_ / "new");
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0666u);
  EXPECT_EQ(st.st_gid, 4321u);
  EXPECT_EQ((*f)->qid().path, st.st_ino);
  auto n = (*f)->Write(0, Bytes("hello world"));
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 11u);
  EXPECT_EQ(HostRead(dir_ / "new"), "hello world");
  EXPECT_EQ(ReadAll(**f), "hello world");

  // O_EXCL on an existing name fails; without it the file is opened as it is.
  auto excl = root->Create("new", O_RDWR | O_EXCL, 0600, wire::kNoUid);
  ASSERT_FALSE(excl);
  EXPECT_EQ(excl.error().code().value(), EEXIST);
  auto again = root->Create("new", O_RDONLY, 0600, wire::kNoUid);
  ASSERT_TRUE(again);
  EXPECT_EQ(ReadAll(**again), "hello world");
  EXPECT_EQ(HostStat(dir_ / "new").st_mode & 0777, 0666u);  // not re-moded
}

TEST_F(ExportFsTest, OpenReadWriteTruncate) {
  HostWrite(dir_ / "f", "abcdefghijklmnopqrstuvwxyz");
  auto root = Root();
  auto r = MustWalk(*root, "f");
  auto iounit = r->Open(O_RDONLY);
  ASSERT_TRUE(iounit);
  EXPECT_EQ(ReadAll(*r), "abcdefghijklmnopqrstuvwxyz");
  std::vector<std::byte> buf(3);
  auto got = r->Read(24, buf);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, 2u);
  auto ro_write = r->Write(0, Bytes("x"));
  ASSERT_FALSE(ro_write);
  EXPECT_EQ(ro_write.error().code().value(), EBADF);

  auto w = MustWalk(*root, "f");
  ASSERT_TRUE(w->Open(O_WRONLY));
  ASSERT_TRUE(w->Write(2, Bytes("XY")));
  EXPECT_EQ(HostRead(dir_ / "f"), "abXYefghijklmnopqrstuvwxyz");

  auto t = MustWalk(*root, "f");
  ASSERT_TRUE(t->Open(O_WRONLY | O_TRUNC));
  EXPECT_EQ(HostRead(dir_ / "f"), "");

  auto unopened = MustWalk(*root, "f");
  auto bad = unopened->Read(0, buf);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code().value(), EBADF);
}

TEST_F(ExportFsTest, AppendWritesGoToTheEnd) {
  HostWrite(dir_ / "log", "one\n");
  auto f = MustWalk(*Root(), "log");
  ASSERT_TRUE(f->Open(O_WRONLY | O_APPEND));
  ASSERT_TRUE(f->Write(0, Bytes("two\n")));
  ASSERT_TRUE(f->Write(0, Bytes("three\n")));
  EXPECT_EQ(HostRead(dir_ / "log"), "one\ntwo\nthree\n");
}

TEST_F(ExportFsTest, OpenDirectoryForWritingIsEISDIR) {
  stdfs::create_directory(dir_ / "d");
  auto d = MustWalk(*Root(), "d");
  auto bad = d->Open(O_RDWR);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code().value(), EISDIR);
  EXPECT_TRUE(d->Open(O_RDONLY));
}

TEST_F(ExportFsTest, ReadDirOfFiveThousandEntriesResumesAcrossSmallReplies) {
  constexpr int kEntries = 5000;
  // Hard links: creating 5,000 inodes costs seconds on some disks, a link microseconds.
  HostWrite(dir_ / "entry-0", "");
  for (int i = 1; i < kEntries; ++i) {
    ASSERT_EQ(::link((dir_ / "entry-0").c_str(), (dir_ / ("entry-" + std::to_string(i))).c_str()),
              0);
  }
  const ino_t ino = HostStat(dir_ / "entry-0").st_ino;
  stdfs::create_directory(dir_ / "sub");
  auto root = Root();
  ASSERT_TRUE(root->Open(O_RDONLY | O_DIRECTORY));
  auto entries = ReadDirAll(*root, 512);
  std::map<std::string, int> seen;
  for (auto& [name, d] : entries) {
    ++seen[name];
    if (name == "." || name == ".." || name == "sub") {
      EXPECT_EQ(d.qid.type, wire::kQtDir) << name;
    } else {
      EXPECT_EQ(d.qid.type, wire::kQtFile) << name;
      EXPECT_EQ(d.type, DT_REG) << name;
      EXPECT_EQ(d.qid.path, ino) << name;
    }
  }
  EXPECT_EQ(entries.size(), kEntries + 3u);
  EXPECT_EQ(seen.size(), kEntries + 3u);
  for (auto& [name, count] : seen) EXPECT_EQ(count, 1) << name;
  for (int i = 0; i < kEntries; i += 997) EXPECT_EQ(seen["entry-" + std::to_string(i)], 1);
  EXPECT_EQ(seen["."], 1);
  EXPECT_EQ(seen[".."], 1);

  // Restarting from any returned offset gives the same tail.
  uint64_t mid = entries[entries.size() / 2].second.offset;
  std::vector<std::byte> buf(512);
  auto used = root->ReadDir(mid, buf);
  ASSERT_TRUE(used);
  std::span<const std::byte> data(buf.data(), *used);
  auto first = wire::DecodeDirent(data);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->name, entries[entries.size() / 2 + 1].first);
}

TEST_F(ExportFsTest, ReadDirNeedsAnOpenDirectoryAndRoomForOneEntry) {
  HostWrite(dir_ / "f", "");
  auto root = Root();
  std::vector<std::byte> buf(512);
  auto unopened = root->ReadDir(0, buf);
  ASSERT_FALSE(unopened);
  EXPECT_EQ(unopened.error().code().value(), EBADF);
  auto f = MustWalk(*root, "f");
  ASSERT_TRUE(f->Open(O_RDONLY));
  auto notdir = f->ReadDir(0, buf);
  ASSERT_FALSE(notdir);
  EXPECT_EQ(notdir.error().code().value(), ENOTDIR);
  ASSERT_TRUE(root->Open(O_RDONLY));
  std::vector<std::byte> tiny(10);
  auto small = root->ReadDir(0, tiny);
  ASSERT_FALSE(small);
  EXPECT_EQ(small.error().code().value(), EINVAL);
}

TEST_F(ExportFsTest, MkdirSymlinkMknodLink) {
  ::umask(022);
  HostWrite(dir_ / "f", "data");
  auto root = Root();
  auto d = root->Mkdir("d", 0775, 777);
  ASSERT_TRUE(d) << d.error().ToString();
  struct stat st = HostStat(dir_ / "d");
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0775u);
  EXPECT_EQ(st.st_gid, 777u);
  EXPECT_EQ(d->type, wire::kQtDir);
  EXPECT_EQ(d->path, st.st_ino);

  auto s = root->Symlink("s", "d/../f", 778);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->type, wire::kQtSymlink);
  EXPECT_EQ(stdfs::read_symlink(dir_ / "s"), "d/../f");
  EXPECT_EQ(HostStat(dir_ / "s").st_gid, 778u);

  auto fifo = root->Mknod("fifo", S_IFIFO | 0640, 0, 0, wire::kNoUid);
  ASSERT_TRUE(fifo) << fifo.error().ToString();
  st = HostStat(dir_ / "fifo");
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  auto chr = root->Mknod("null", S_IFCHR | 0666, 1, 3, wire::kNoUid);
  ASSERT_TRUE(chr);
  st = HostStat(dir_ / "null");
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(1, 3));
  auto reg = root->Mknod("reg", S_IFREG | 0600, 0, 0, wire::kNoUid);
  ASSERT_TRUE(reg);
  EXPECT_TRUE(S_ISREG(HostStat(dir_ / "reg").st_mode));
  auto attr = MustWalk(*root, "null")->GetAttr(~0ull);
  ASSERT_TRUE(attr);
  EXPECT_EQ(attr->rdev, makedev(1, 3));

  auto f = MustWalk(*root, "f");
  auto dd = MustWalk(*root, "d");
  ASSERT_TRUE(dd->Link("hard", *f));
  EXPECT_EQ(HostStat(dir_ / "d/hard").st_ino, HostStat(dir_ / "f").st_ino);
  EXPECT_EQ(HostStat(dir_ / "f").st_nlink, 2u);
  auto exists = root->Mkdir("d", 0755, wire::kNoUid);
  ASSERT_FALSE(exists);
  EXPECT_EQ(exists.error().code().value(), EEXIST);
}

TEST_F(ExportFsTest, RenameMovesTheNodeAndItsParent) {
  stdfs::create_directories(dir_ / "a");
  stdfs::create_directories(dir_ / "b");
  HostWrite(dir_ / "a/f", "x");
  auto root = Root();
  auto f = MustWalk(*root, "a/f");
  auto b = MustWalk(*root, "b");
  ASSERT_TRUE(f->Rename(*b, "g"));
  EXPECT_FALSE(stdfs::exists(dir_ / "a/f"));
  EXPECT_EQ(HostRead(dir_ / "b/g"), "x");
  // The node follows its file: it can be renamed again and removed from its new place.
  ASSERT_TRUE(f->Rename(*root, "top"));
  EXPECT_EQ(HostRead(dir_ / "top"), "x");
  ASSERT_TRUE(f->Remove());
  EXPECT_FALSE(stdfs::exists(dir_ / "top"));

  // A renamed directory's ".." is its new parent.
  stdfs::create_directories(dir_ / "a/sub");
  auto sub = MustWalk(*root, "a/sub");
  ASSERT_TRUE(sub->Rename(*b, "sub2"));
  auto up = sub->Walk("..");
  ASSERT_TRUE(up);
  EXPECT_EQ((*up)->qid().path, HostStat(dir_ / "b").st_ino);
}

TEST_F(ExportFsTest, RenameAtAndUnlinkAt) {
  stdfs::create_directories(dir_ / "a");
  stdfs::create_directories(dir_ / "b");
  stdfs::create_directories(dir_ / "emptydir");
  HostWrite(dir_ / "a/f", "x");
  auto root = Root();
  auto a = MustWalk(*root, "a");
  auto b = MustWalk(*root, "b");
  ASSERT_TRUE(a->RenameAt("f", *b, "g"));
  EXPECT_EQ(HostRead(dir_ / "b/g"), "x");
  auto missing = a->RenameAt("f", *b, "g");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code().value(), ENOENT);

  auto isdir = root->UnlinkAt("emptydir", 0);
  ASSERT_FALSE(isdir);
  EXPECT_EQ(isdir.error().code().value(), EISDIR);
  ASSERT_TRUE(root->UnlinkAt("emptydir", AT_REMOVEDIR));
  EXPECT_FALSE(stdfs::exists(dir_ / "emptydir"));
  auto notdir = b->UnlinkAt("g", AT_REMOVEDIR);
  ASSERT_FALSE(notdir);
  EXPECT_EQ(notdir.error().code().value(), ENOTDIR);
  ASSERT_TRUE(b->UnlinkAt("g", 0));
  EXPECT_FALSE(stdfs::exists(dir_ / "b/g"));
  auto badflags = b->UnlinkAt("x", 0x1);
  ASSERT_FALSE(badflags);
  EXPECT_EQ(badflags.error().code().value(), EINVAL);
}

TEST_F(ExportFsTest, RemoveFilesAndDirectories) {
  stdfs::create_directories(dir_ / "d/full");
  HostWrite(dir_ / "d/full/f", "");
  auto root = Root();
  auto f = MustWalk(*root, "d/full/f");
  ASSERT_TRUE(f->Remove());
  EXPECT_FALSE(stdfs::exists(dir_ / "d/full/f"));
  HostWrite(dir_ / "d/full/f", "");
  auto full = MustWalk(*root, "d/full");
  auto notempty = full->Remove();
  ASSERT_FALSE(notempty);
  EXPECT_EQ(notempty.error().code().value(), ENOTEMPTY);
  stdfs::remove(dir_ / "d/full/f");
  ASSERT_TRUE(full->Remove());
  EXPECT_FALSE(stdfs::exists(dir_ / "d/full"));
  auto gone = full->Remove();
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code().value(), ENOENT);
}

TEST_F(ExportFsTest, ReadLinkStatFsFsync) {
  stdfs::create_symlink("some/long/target", dir_ / "l");
  HostWrite(dir_ / "f", "x");
  auto root = Root();
  auto l = MustWalk(*root, "l");
  auto target = l->ReadLink();
  ASSERT_TRUE(target);
  EXPECT_EQ(*target, "some/long/target");
  std::string long_target(3000, 'x');
  ASSERT_TRUE(root->Symlink("long", long_target, wire::kNoUid));
  auto long_read = MustWalk(*root, "long")->ReadLink();
  ASSERT_TRUE(long_read);
  EXPECT_EQ(*long_read, long_target);
  auto notlink = MustWalk(*root, "f")->ReadLink();
  ASSERT_FALSE(notlink);
  EXPECT_EQ(notlink.error().code().value(), EINVAL);

  auto sfs = root->StatFs();
  ASSERT_TRUE(sfs);
  struct statfs host;
  ASSERT_EQ(::statfs(dir_.c_str(), &host), 0);
  EXPECT_EQ(sfs->type, static_cast<uint32_t>(host.f_type));
  EXPECT_EQ(sfs->bsize, static_cast<uint32_t>(host.f_bsize));
  EXPECT_EQ(sfs->blocks, host.f_blocks);
  EXPECT_EQ(sfs->files, host.f_files);
  EXPECT_EQ(sfs->namelen, static_cast<uint32_t>(host.f_namelen));

  auto f = MustWalk(*root, "f");
  auto unopened = f->Fsync(false);
  ASSERT_FALSE(unopened);
  EXPECT_EQ(unopened.error().code().value(), EBADF);
  ASSERT_TRUE(f->Open(O_RDWR));
  EXPECT_TRUE(f->Fsync(false));
  EXPECT_TRUE(f->Fsync(true));
}

wire::Tlock LockReq(uint8_t type, uint64_t start, uint64_t length, uint32_t proc,
                    std::string_view client) {
  wire::Tlock req;
  req.type = type;
  req.start = start;
  req.length = length;
  req.proc_id = proc;
  req.client_id = client;
  return req;
}

TEST_F(ExportFsTest, LocksConflictBetweenFidsAndGetLockNamesTheHolder) {
  HostWrite(dir_ / "f", "0123456789");
  auto root = Root();
  auto a = MustWalk(*root, "f");
  auto b = MustWalk(*root, "f");
  ASSERT_TRUE(a->Open(O_RDWR));
  ASSERT_TRUE(b->Open(O_RDWR));

  auto got = a->Lock(LockReq(1, 0, 5, 100, "client-a"));
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, kLockSuccess);
  got = b->Lock(LockReq(1, 2, 2, 200, "client-b"));
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, kLockBlocked);
  got = b->Lock(LockReq(0, 0, 1, 200, "client-b"));  // a read lock conflicts too
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, kLockBlocked);
  got = b->Lock(LockReq(1, 5, 0, 200, "client-b"));  // [5, EOF) is free
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, kLockSuccess);

  wire::Tgetlock q;
  q.type = 1;
  q.start = 3;
  q.length = 1;
  q.proc_id = 200;
  q.client_id = "client-b";
  auto info = b->GetLock(q);
  ASSERT_TRUE(info) << info.error().ToString();
  EXPECT_EQ(info->type, 1);
  EXPECT_EQ(info->start, 0u);
  EXPECT_EQ(info->length, 5u);
  EXPECT_EQ(info->proc_id, 100u);
  EXPECT_EQ(info->client_id, "client-a");

  q.start = 100;  // held by b itself beyond 5: no conflict with its own lock
  info = b->GetLock(q);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->type, 2);  // unlocked

  q.proc_id = 100;  // a asks about b's range
  q.client_id = "client-a";
  info = a->GetLock(q);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->type, 1);
  EXPECT_EQ(info->start, 5u);
  EXPECT_EQ(info->length, 0u);
  EXPECT_EQ(info->client_id, "client-b");
  EXPECT_EQ(info->proc_id, 200u);

  // Unlock a part, then close a: b gets the whole range.
  got = a->Lock(LockReq(2, 0, 3, 100, "client-a"));
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, kLockSuccess);
  got = b->Lock(LockReq(1, 0, 3, 200, "client-b"));
  EXPECT_EQ(*got, kLockSuccess);
  got = b->Lock(LockReq(1, 3, 2, 200, "client-b"));
  EXPECT_EQ(*got, kLockBlocked);
  a.reset();  // clunk releases a's locks
  got = b->Lock(LockReq(1, 3, 2, 200, "client-b"));
  EXPECT_EQ(*got, kLockSuccess);
}

TEST_F(ExportFsTest, LockNeedsAnOpenFidWithMatchingAccess) {
  HostWrite(dir_ / "f", "");
  auto root = Root();
  auto f = MustWalk(*root, "f");
  auto unopened = f->Lock(LockReq(1, 0, 0, 1, "c"));
  ASSERT_FALSE(unopened);
  EXPECT_EQ(unopened.error().code().value(), EBADF);
  ASSERT_TRUE(f->Open(O_RDONLY));
  auto write_on_read = f->Lock(LockReq(1, 0, 0, 1, "c"));
  ASSERT_FALSE(write_on_read);
  EXPECT_EQ(write_on_read.error().code().value(), EBADF);
  auto bad = f->Lock(LockReq(7, 0, 0, 1, "c"));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code().value(), EINVAL);
  auto read = f->Lock(LockReq(0, 0, 0, 1, "c"));
  ASSERT_TRUE(read);
  EXPECT_EQ(*read, kLockSuccess);
}

TEST_F(ExportFsTest, XattrsSetGetListRemove) {
  if (!UserXattrsWork(dir_)) {
    MakeTemp("/var/tmp");
    if (!UserXattrsWork(dir_)) GTEST_SKIP() << "no file system here supports user xattrs";
  }
  HostWrite(dir_ / "f", "");
  auto f = MustWalk(*Root(), "f");
  ASSERT_TRUE(f->SetXattr("user.color", "blue", 0));
  ASSERT_TRUE(f->SetXattr("user.empty", "", 0));
  char value[16] = {};
  ASSERT_EQ(::getxattr((dir_ / "f").c_str(), "user.color", value, sizeof value), 4);
  EXPECT_STREQ(value, "blue");
  auto got = f->GetXattr("user.color");
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, "blue");
  auto empty = f->GetXattr("user.empty");
  ASSERT_TRUE(empty);
  EXPECT_EQ(*empty, "");

  auto list = f->GetXattr("");
  ASSERT_TRUE(list);
  std::set<std::string> names;
  for (size_t pos = 0; pos < list->size();) {
    std::string name(list->c_str() + pos);
    pos += name.size() + 1;
    names.insert(name);
  }
  EXPECT_TRUE(names.count("user.color"));
  EXPECT_TRUE(names.count("user.empty"));

  auto create = f->SetXattr("user.color", "red", 1);  // XATTR_CREATE
  ASSERT_FALSE(create);
  EXPECT_EQ(create.error().code().value(), EEXIST);
  auto replace = f->SetXattr("user.none", "red", 2);  // XATTR_REPLACE
  ASSERT_FALSE(replace);
  EXPECT_EQ(replace.error().code().value(), ENODATA);
  ASSERT_TRUE(f->SetXattr("user.color", "red", 2));
  EXPECT_EQ(*f->GetXattr("user.color"), "red");

  ASSERT_TRUE(f->RemoveXattr("user.color"));
  auto missing = f->GetXattr("user.color");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code().value(), ENODATA);
  EXPECT_LT(::getxattr((dir_ / "f").c_str(), "user.color", value, sizeof value), 0);

  // An open node uses the same path.
  ASSERT_TRUE(f->Open(O_RDONLY));
  EXPECT_EQ(*f->GetXattr("user.empty"), "");
}

TEST_F(ExportFsTest, ReadOnlyRefusesEveryModificationAndAllowsReads) {
  stdfs::create_directory(dir_ / "d");
  HostWrite(dir_ / "f", "content");
  ::setxattr((dir_ / "f").c_str(), "user.k", "v", 1, 0);
  auto root = Root({.read_only = true});
  auto f = MustWalk(*root, "f");
  auto d = MustWalk(*root, "d");
  auto expect_erofs = [](const auto& result, const char* what) {
    ASSERT_FALSE(result) << what;
    EXPECT_EQ(result.error().code().value(), EROFS) << what;
  };
  wire::Tsetattr attr;
  attr.valid = 0x1;
  attr.mode = 0777;
  expect_erofs(f->SetAttr(attr), "setattr");
  expect_erofs(root->Create("new", O_RDWR, 0644, wire::kNoUid), "create");
  expect_erofs(MustWalk(*root, "f")->Open(O_WRONLY), "open O_WRONLY");
  expect_erofs(MustWalk(*root, "f")->Open(O_RDWR), "open O_RDWR");
  expect_erofs(MustWalk(*root, "f")->Open(O_RDONLY | O_TRUNC), "open O_TRUNC");
  expect_erofs(root->Mkdir("nd", 0755, wire::kNoUid), "mkdir");
  expect_erofs(root->Symlink("ns", "f", wire::kNoUid), "symlink");
  expect_erofs(root->Mknod("nn", S_IFIFO | 0644, 0, 0, wire::kNoUid), "mknod");
  expect_erofs(root->Link("nl", *f), "link");
  expect_erofs(root->RenameAt("f", *d, "g"), "renameat");
  expect_erofs(root->UnlinkAt("f", 0), "unlinkat");
  expect_erofs(f->Rename(*d, "g"), "rename");
  expect_erofs(f->Remove(), "remove");
  expect_erofs(f->SetXattr("user.k", "w", 0), "setxattr");
  expect_erofs(f->RemoveXattr("user.k"), "removexattr");

  ASSERT_TRUE(f->Open(O_RDONLY));
  expect_erofs(f->Write(0, Bytes("x")), "write");
  EXPECT_EQ(ReadAll(*f), "content");
  EXPECT_TRUE(f->GetAttr(~0ull));
  EXPECT_TRUE(f->StatFs());
  EXPECT_TRUE(f->Fsync(false));
  auto lock = f->Lock(LockReq(0, 0, 0, 1, "c"));
  ASSERT_TRUE(lock);
  EXPECT_EQ(*lock, kLockSuccess);
  ASSERT_TRUE(root->Open(O_RDONLY));
  EXPECT_EQ(ReadDirAll(*root, 512).size(), 4u);  // . .. d f

  EXPECT_EQ(HostRead(dir_ / "f"), "content");
  EXPECT_EQ(HostStat(dir_ / "f").st_mode & 0777, 0644u);
  EXPECT_TRUE(stdfs::exists(dir_ / "d"));
  EXPECT_FALSE(stdfs::exists(dir_ / "new"));
  EXPECT_FALSE(stdfs::exists(dir_ / "nd"));
}

TEST_F(ExportFsTest, ConcurrentReadsAndWalksOnOneNode) {
  std::string data(1 << 16, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>('a' + i % 26);
  HostWrite(dir_ / "f", data);
  stdfs::create_directory(dir_ / "d");
  for (int i = 0; i < 40; ++i) HostWrite(dir_ / "d" / std::to_string(i), "");
  auto root = Root();
  auto f = MustWalk(*root, "f");
  auto d = MustWalk(*root, "d");
  ASSERT_TRUE(f->Open(O_RDONLY));
  ASSERT_TRUE(d->Open(O_RDONLY));
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::byte> buf(1000);
      for (int i = 0; i < 200; ++i) {
        uint64_t off = static_cast<uint64_t>((t * 7919 + i * 104729) % (data.size() - 1000));
        auto n = f->Read(off, buf);
        if (!n || *n != 1000 ||
            std::string_view(reinterpret_cast<char*>(buf.data()), 1000) != data.substr(off, 1000)) {
          ++failures;
        }
        if (!root->Walk("d")) ++failures;
      }
      if (ReadDirAll(*d, 256).size() != 42u) ++failures;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace ninefold::fs
