// Every 9P2000.L operation the Session offers, against each real server: the reply, the
// exact errno of the failures, and the effect seen on the exported directory itself.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "client_test_util.h"
#include "fmt/format.h"

namespace ninefold::client_test {
namespace {

// Tsetattr valid bits and Tlock values (9P2000.L, as the Linux kernel sends them).
constexpr uint32_t kSetMode = 0x1, kSetSize = 0x8, kSetMtime = 0x20, kSetMtimeSet = 0x100;
constexpr uint8_t kLockRead = 0, kLockWrite = 1, kLockUnlock = 2;
constexpr uint8_t kLockSuccess = 0, kLockBlocked = 1;
constexpr uint32_t kAtRemoveDir = 0x200;

class SessionOps : public ServerTest {
 protected:
  void SetUp() override {
    ServerTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    conn_ = Connect();
    ASSERT_TRUE(conn_);
    root_ = Attach(*conn_);
  }
  void TearDown() override {
    conn_.reset();
    ServerTest::TearDown();
  }
  Session& s() { return conn_->s(); }
  template <class R, class T>
  Result<R> Call(const T& request) {
    return Get(s().AsyncRequest<R>(request, asio::use_future));
  }
  Result<void> Clunk(Fid fid) { return Get(s().AsyncClunk(fid, asio::use_future)); }
  Result<wire::Rgetattr> Getattr(Fid fid) {
    return Get(s().AsyncGetattr(fid, client::kGetattrBasic, asio::use_future));
  }
  Result<size_t> Write(Fid fid, uint64_t off, std::span<const std::byte> b) {
    return Get(s().AsyncWrite(fid, off, b, asio::use_future));
  }
  Result<std::vector<std::byte>> ReadAll(Fid fid, size_t max) {
    std::vector<std::byte> buf(max);
    Result<size_t> n = Get(s().AsyncRead(fid, 0, buf, asio::use_future));
    if (!n) return Unexpected(n.error());
    buf.resize(*n);
    return buf;
  }
  struct stat HostStat(const std::string& rel) {
    struct stat st {};
    EXPECT_EQ(::lstat(Host(rel).c_str(), &st), 0) << rel << ": " << std::strerror(errno);
    return st;
  }
  bool HostExists(const std::string& rel) {
    struct stat st;
    return ::lstat(Host(rel).c_str(), &st) == 0;
  }

  std::unique_ptr<Conn> conn_;
  Fid root_ = wire::kNoFid;
};

TEST_P(SessionOps, WalkMoreThanSixteenNames) {
  std::string rel;
  for (int i = 0; i < 20; ++i) rel += fmt::format("{}d{}", i ? "/" : "", i);
  std::filesystem::create_directories(Host(rel));
  WriteHostFile(Host(rel + "/leaf"), Bytes("deep"));
  std::vector<std::string> names;
  for (int i = 0; i < 20; ++i) names.push_back(fmt::format("d{}", i));
  names.push_back("leaf");

  Fid fid = s().AllocFid();
  auto qids = Get(s().AsyncWalk(root_, fid, names, asio::use_future));
  ASSERT_TRUE(qids) << qids.error().ToString();
  ASSERT_EQ(qids->size(), 21u);
  for (int i = 0; i < 20; ++i) EXPECT_TRUE((*qids)[i].type & wire::kQtDir) << i;
  EXPECT_FALSE(qids->back().type & wire::kQtDir);
  auto a = Getattr(fid);
  ASSERT_TRUE(a) << a.error().ToString();
  EXPECT_EQ(a->size, 4u);
  EXPECT_EQ(a->qid, qids->back());
  EXPECT_EQ(a->mtime_sec, static_cast<uint64_t>(HostStat(rel + "/leaf").st_mtime));
  EXPECT_TRUE(Clunk(fid));

  // No names: a clone of the root.
  Fid clone = s().AllocFid();
  auto none = Get(s().AsyncWalk(root_, clone, {}, asio::use_future));
  ASSERT_TRUE(none) << none.error().ToString();
  EXPECT_TRUE(none->empty());
  EXPECT_TRUE(Clunk(clone));
}

TEST_P(SessionOps, WalkToAMissingNameFailsWithEnoentAndLeavesNewfidFree) {
  std::filesystem::create_directories(Host("a/b"));
  std::vector<std::string> deep;
  std::string rel;
  for (int i = 0; i < 18; ++i) {
    deep.push_back(fmt::format("c{}", i));
    rel += "/" + deep.back();
  }
  std::filesystem::create_directories(Host(rel));
  struct Case {
    std::vector<std::string> names;
    const char* what;
  };
  std::vector<std::string> missing_at_17 = deep;
  missing_at_17[16] = "nope";
  std::vector<std::string> missing_at_18 = deep;
  missing_at_18[17] = "nope";
  const Case cases[] = {
      {{"nope"}, "first name"},
      {{"a", "b", "nope"}, "third name"},
      {missing_at_17, "17th name (first of the second Twalk)"},
      {missing_at_18, "18th name (second of the second Twalk)"},
  };
  Fid newfid = s().AllocFid();
  for (const Case& c : cases) {
    auto r = Get(s().AsyncWalk(root_, newfid, c.names, asio::use_future));
    ASSERT_FALSE(r) << c.what;
    EXPECT_EQ(r.error().code(), Errc(std::errc::no_such_file_or_directory))
        << c.what << ": " << r.error().ToString();
    // newfid is not in use on the server: the same number walks again.
    auto again = Get(s().AsyncWalk(root_, newfid, {"a"}, asio::use_future));
    ASSERT_TRUE(again) << c.what << ": newfid still in use? " << again.error().ToString();
    ASSERT_TRUE(Clunk(newfid));
    newfid = s().AllocFid();
  }
}

TEST_P(SessionOps, LcreateWriteLopenRead) {
  Result<Fid> dir = WalkNew(*conn_, root_, {});
  ASSERT_TRUE(dir);
  auto made = Call<wire::Rlcreate>(wire::Tlcreate{.fid = *dir,
                                                  .name = "new.txt",
                                                  .flags = O_RDWR | O_CREAT | O_EXCL,
                                                  .mode = 0640,
                                                  .gid = ::getgid()});
  ASSERT_TRUE(made) << made.error().ToString();
  EXPECT_EQ(made->qid.type & wire::kQtDir, 0);
  auto content = Bytes("hello, 9p client\n");
  auto n = Write(*dir, 0, content);  // the fid now is the open file
  ASSERT_TRUE(n) << n.error().ToString();
  EXPECT_EQ(*n, content.size());
  EXPECT_EQ(ReadHostFile(Host("new.txt")), content);
  EXPECT_EQ(HostStat("new.txt").st_mode, S_IFREG | 0640u);
  EXPECT_TRUE(Clunk(*dir));

  // Exclusive create of an existing name.
  Result<Fid> dir2 = WalkNew(*conn_, root_, {});
  ASSERT_TRUE(dir2);
  auto dup = Call<wire::Rlcreate>(wire::Tlcreate{.fid = *dir2,
                                                 .name = "new.txt",
                                                 .flags = O_RDWR | O_CREAT | O_EXCL,
                                                 .mode = 0640,
                                                 .gid = ::getgid()});
  EXPECT_EQ(Code(dup), Errc(std::errc::file_exists));
  EXPECT_TRUE(Clunk(*dir2));

  Result<Fid> ro = OpenNew(*conn_, root_, {"new.txt"}, O_RDONLY);
  ASSERT_TRUE(ro) << ro.error().ToString();
  auto back = ReadAll(*ro, 4096);
  ASSERT_TRUE(back) << back.error().ToString();
  EXPECT_EQ(*back, content);
  // Reading at the end, and past it, returns 0 bytes.
  std::vector<std::byte> buf(10);
  auto at_end = Get(s().AsyncRead(*ro, content.size(), buf, asio::use_future));
  EXPECT_EQ(at_end.value_or(99), 0u);
  auto past = Get(s().AsyncRead(*ro, 1 << 20, buf, asio::use_future));
  EXPECT_EQ(past.value_or(99), 0u);
  // A read-only fid refuses writes.
  EXPECT_EQ(Code(Write(*ro, 0, content)), Errc(std::errc::bad_file_descriptor));
  EXPECT_EQ(ReadHostFile(Host("new.txt")), content);
  EXPECT_TRUE(Clunk(*ro));

  // O_TRUNC empties it.
  Result<Fid> tr = OpenNew(*conn_, root_, {"new.txt"}, O_WRONLY | O_TRUNC);
  ASSERT_TRUE(tr) << tr.error().ToString();
  EXPECT_EQ(HostStat("new.txt").st_size, 0);
  EXPECT_TRUE(Clunk(*tr));
}

TEST_P(SessionOps, ReaddirReturnsEveryEntryOnce) {
  std::set<std::string> want = {".", ".."};
  for (int i = 0; i < 300; ++i) {
    std::string name = fmt::format("entry-with-a-longish-name-{:03}", i);
    WriteHostFile(Host(name), Bytes("x"));
    want.insert(name);
  }
  std::filesystem::create_directory(Host("subdir"));
  want.insert("subdir");

  Result<Fid> dir = OpenNew(*conn_, root_, {}, O_RDONLY | O_DIRECTORY);
  ASSERT_TRUE(dir) << dir.error().ToString();
  std::map<std::string, int> seen;
  uint64_t offset = 0;
  int batches = 0;
  for (;;) {
    auto batch = Get(s().AsyncReaddir(*dir, offset, asio::use_future));
    ASSERT_TRUE(batch) << batch.error().ToString();
    if (batch->empty()) break;
    ++batches;
    for (const auto& e : *batch) {
      seen[e.name]++;
      if (e.name == "subdir") {
        EXPECT_EQ(e.type, DT_DIR);
        EXPECT_TRUE(e.qid.type & wire::kQtDir);
      } else if (e.name.starts_with("entry")) {
        EXPECT_EQ(e.type, DT_REG) << e.name;
      }
    }
    offset = batch->back().offset;
    ASSERT_LT(batches, 1000) << "readdir does not end";
  }
  std::set<std::string> got;
  for (const auto& [name, count] : seen) {
    EXPECT_EQ(count, 1) << name << " returned " << count << " times";
    got.insert(name);
  }
  EXPECT_EQ(got, want);
  EXPECT_TRUE(Clunk(*dir));
}

TEST_P(SessionOps, GetattrAndSetattrModeSizeMtime) {
  WriteHostFile(Host("f"), RandomBytes(5000, 1));
  Result<Fid> fid = WalkNew(*conn_, root_, {"f"});
  ASSERT_TRUE(fid);
  auto a = Getattr(*fid);
  ASSERT_TRUE(a) << a.error().ToString();
  struct stat st = HostStat("f");
  EXPECT_EQ(a->size, 5000u);
  EXPECT_EQ(a->mode, st.st_mode);
  EXPECT_EQ(a->nlink, st.st_nlink);
  EXPECT_EQ(a->uid, st.st_uid);
  EXPECT_EQ(a->gid, st.st_gid);
  EXPECT_EQ(a->mtime_sec, static_cast<uint64_t>(st.st_mtim.tv_sec));

  auto mode = Call<wire::Rsetattr>(wire::Tsetattr{.fid = *fid, .valid = kSetMode, .mode = 0604});
  ASSERT_TRUE(mode) << mode.error().ToString();
  EXPECT_EQ(HostStat("f").st_mode, S_IFREG | 0604u);

  auto size = Call<wire::Rsetattr>(wire::Tsetattr{.fid = *fid, .valid = kSetSize, .size = 100});
  ASSERT_TRUE(size) << size.error().ToString();
  EXPECT_EQ(HostStat("f").st_size, 100);
  auto content = ReadHostFile(Host("f"));
  auto want = RandomBytes(5000, 1);
  want.resize(100);
  EXPECT_EQ(content, want);

  auto mtime = Call<wire::Rsetattr>(wire::Tsetattr{.fid = *fid,
                                                   .valid = kSetMtime | kSetMtimeSet,
                                                   .mtime_sec = 1000000000,
                                                   .mtime_nsec = 123456789});
  ASSERT_TRUE(mtime) << mtime.error().ToString();
  st = HostStat("f");
  EXPECT_EQ(st.st_mtim.tv_sec, 1000000000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 123456789);

  a = Getattr(*fid);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->mode, S_IFREG | 0604u);
  EXPECT_EQ(a->size, 100u);
  EXPECT_EQ(a->mtime_sec, 1000000000u);
  EXPECT_EQ(a->mtime_nsec, 123456789u);
  EXPECT_TRUE(Clunk(*fid));

  // Truncating a directory is EISDIR.
  Result<Fid> d = WalkNew(*conn_, root_, {});
  ASSERT_TRUE(d);
  EXPECT_EQ(Code(Call<wire::Rsetattr>(wire::Tsetattr{.fid = *d, .valid = kSetSize, .size = 0})),
            Errc(std::errc::is_a_directory));
  EXPECT_TRUE(Clunk(*d));
}

TEST_P(SessionOps, Mkdir) {
  auto made = Call<wire::Rmkdir>(
      wire::Tmkdir{.dfid = root_, .name = "dir", .mode = 0750, .gid = ::getgid()});
  ASSERT_TRUE(made) << made.error().ToString();
  EXPECT_TRUE(made->qid.type & wire::kQtDir);
  EXPECT_EQ(HostStat("dir").st_mode, S_IFDIR | 0750u);
  auto again = Call<wire::Rmkdir>(
      wire::Tmkdir{.dfid = root_, .name = "dir", .mode = 0750, .gid = ::getgid()});
  EXPECT_EQ(Code(again), Errc(std::errc::file_exists));
}

TEST_P(SessionOps, RenameAndRenameat) {
  std::filesystem::create_directories(Host("from"));
  std::filesystem::create_directories(Host("to"));
  WriteHostFile(Host("from/a"), Bytes("A"));
  WriteHostFile(Host("from/b"), Bytes("B"));

  Result<Fid> from = WalkNew(*conn_, root_, {"from"});
  Result<Fid> to = WalkNew(*conn_, root_, {"to"});
  ASSERT_TRUE(from && to);
  auto r = Call<wire::Rrenameat>(
      wire::Trenameat{.olddirfid = *from, .oldname = "a", .newdirfid = *to, .newname = "a2"});
  if (IsDiod()) {
    // diod 1.0.24 does not implement Trenameat (the Linux kernel falls back to Trename).
    EXPECT_EQ(Code(r), Errc(std::errc::operation_not_supported));
    std::printf("diod: Trenameat is EOPNOTSUPP; Trename only\n");
  } else {
    ASSERT_TRUE(r) << r.error().ToString();
    EXPECT_FALSE(HostExists("from/a"));
    EXPECT_EQ(ReadHostFile(Host("to/a2")), Bytes("A"));
    auto missing = Call<wire::Rrenameat>(
        wire::Trenameat{.olddirfid = *from, .oldname = "a", .newdirfid = *to, .newname = "x"});
    EXPECT_EQ(Code(missing), Errc(std::errc::no_such_file_or_directory));
  }

  Result<Fid> b = WalkNew(*conn_, root_, {"from", "b"});
  ASSERT_TRUE(b);
  auto rn = Call<wire::Rrename>(wire::Trename{.fid = *b, .dfid = *to, .name = "b2"});
  ASSERT_TRUE(rn) << rn.error().ToString();
  EXPECT_FALSE(HostExists("from/b"));
  EXPECT_EQ(ReadHostFile(Host("to/b2")), Bytes("B"));
  // The fid follows the file.
  auto a = Getattr(*b);
  ASSERT_TRUE(a) << a.error().ToString();
  EXPECT_EQ(a->size, 1u);
  for (Fid f : {*from, *to, *b}) EXPECT_TRUE(Clunk(f));
}

TEST_P(SessionOps, RemoveAndUnlinkat) {
  std::filesystem::create_directories(Host("full/sub"));
  std::filesystem::create_directories(Host("empty"));
  WriteHostFile(Host("f1"), Bytes("1"));
  WriteHostFile(Host("f2"), Bytes("2"));

  Result<Fid> f1 = WalkNew(*conn_, root_, {"f1"});
  ASSERT_TRUE(f1);
  auto removed = Get(s().AsyncRemove(*f1, asio::use_future));
  ASSERT_TRUE(removed) << removed.error().ToString();
  EXPECT_FALSE(HostExists("f1"));

  auto un = Call<wire::Runlinkat>(wire::Tunlinkat{.dirfid = root_, .name = "f2"});
  if (IsDiod()) {
    // diod 1.0.24 does not implement Tunlinkat (the Linux kernel falls back to Tremove).
    EXPECT_EQ(Code(un), Errc(std::errc::operation_not_supported));
    std::printf("diod: Tunlinkat is EOPNOTSUPP; Tremove only\n");
    Result<Fid> full = WalkNew(*conn_, root_, {"full"});
    ASSERT_TRUE(full);
    EXPECT_EQ(Code(Get(s().AsyncRemove(*full, asio::use_future))),
              Errc(std::errc::directory_not_empty));
    EXPECT_TRUE(HostExists("full/sub"));
    return;
  }
  ASSERT_TRUE(un) << un.error().ToString();
  EXPECT_FALSE(HostExists("f2"));
  EXPECT_EQ(Code(Call<wire::Runlinkat>(wire::Tunlinkat{.dirfid = root_, .name = "f2"})),
            Errc(std::errc::no_such_file_or_directory));

  auto rmdir = Call<wire::Runlinkat>(
      wire::Tunlinkat{.dirfid = root_, .name = "empty", .flags = kAtRemoveDir});
  ASSERT_TRUE(rmdir) << rmdir.error().ToString();
  EXPECT_FALSE(HostExists("empty"));
  EXPECT_EQ(Code(Call<wire::Runlinkat>(
                wire::Tunlinkat{.dirfid = root_, .name = "full", .flags = kAtRemoveDir})),
            Errc(std::errc::directory_not_empty));
  EXPECT_TRUE(HostExists("full/sub"));

  // Tremove of a non-empty directory fails, and still releases the fid.
  Result<Fid> full = WalkNew(*conn_, root_, {"full"});
  ASSERT_TRUE(full);
  EXPECT_EQ(Code(Get(s().AsyncRemove(*full, asio::use_future))),
            Errc(std::errc::directory_not_empty));
  EXPECT_TRUE(HostExists("full/sub"));
}

TEST_P(SessionOps, SymlinkAndReadlink) {
  WriteHostFile(Host("target"), Bytes("t"));
  auto made = Call<wire::Rsymlink>(
      wire::Tsymlink{.fid = root_, .name = "link", .symtgt = "target", .gid = ::getgid()});
  ASSERT_TRUE(made) << made.error().ToString();
  EXPECT_TRUE(made->qid.type & wire::kQtSymlink);
  char buf[64] = {};
  ASSERT_EQ(::readlink(Host("link").c_str(), buf, sizeof buf), 6);
  EXPECT_STREQ(buf, "target");

  ::symlink("../somewhere/else", Host("hostlink").c_str());
  Result<Fid> l = WalkNew(*conn_, root_, {"hostlink"});
  ASSERT_TRUE(l);
  auto target = Get(s().AsyncReadlink(*l, asio::use_future));
  ASSERT_TRUE(target) << target.error().ToString();
  EXPECT_EQ(*target, "../somewhere/else");
  EXPECT_TRUE(Clunk(*l));

  Result<Fid> f = WalkNew(*conn_, root_, {"target"});
  ASSERT_TRUE(f);
  EXPECT_EQ(Code(Get(s().AsyncReadlink(*f, asio::use_future))), Errc(std::errc::invalid_argument));
  EXPECT_TRUE(Clunk(*f));
}

TEST_P(SessionOps, Link) {
  WriteHostFile(Host("orig"), Bytes("o"));
  Result<Fid> f = WalkNew(*conn_, root_, {"orig"});
  ASSERT_TRUE(f);
  auto r = Call<wire::Rlink>(wire::Tlink{.dfid = root_, .fid = *f, .name = "hard"});
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(HostStat("hard").st_ino, HostStat("orig").st_ino);
  EXPECT_EQ(HostStat("orig").st_nlink, 2u);
  EXPECT_EQ(Code(Call<wire::Rlink>(wire::Tlink{.dfid = root_, .fid = *f, .name = "hard"})),
            Errc(std::errc::file_exists));
  EXPECT_TRUE(Clunk(*f));
}

TEST_P(SessionOps, MknodFifo) {
  auto r = Call<wire::Rmknod>(
      wire::Tmknod{.dfid = root_, .name = "fifo", .mode = S_IFIFO | 0620, .gid = ::getgid()});
  ASSERT_TRUE(r) << r.error().ToString();
  struct stat st = HostStat("fifo");
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0620u);
}

TEST_P(SessionOps, Statfs) {
  auto r = Call<wire::Rstatfs>(wire::Tstatfs{.fid = root_});
  ASSERT_TRUE(r) << r.error().ToString();
  struct statvfs host {};
  ASSERT_EQ(::statvfs(export_.c_str(), &host), 0);
  EXPECT_EQ(r->bsize, host.f_bsize);
  EXPECT_EQ(r->blocks, host.f_blocks);
  EXPECT_EQ(r->namelen, host.f_namemax);
  EXPECT_GT(r->bfree, 0u);
  EXPECT_LE(r->bavail, r->bfree);
}

TEST_P(SessionOps, Fsync) {
  WriteHostFile(Host("f"), Bytes(""));
  Result<Fid> f = OpenNew(*conn_, root_, {"f"}, O_WRONLY);
  ASSERT_TRUE(f) << f.error().ToString();
  auto data = RandomBytes(10000, 2);
  ASSERT_EQ(Write(*f, 0, data).value_or(0), data.size());
  auto r = Call<wire::Rfsync>(wire::Tfsync{.fid = *f, .datasync = 0});
  ASSERT_TRUE(r) << r.error().ToString();
  auto d = Call<wire::Rfsync>(wire::Tfsync{.fid = *f, .datasync = 1});
  ASSERT_TRUE(d) << d.error().ToString();
  EXPECT_EQ(ReadHostFile(Host("f")), data);
  EXPECT_TRUE(Clunk(*f));
}

// The locks /proc/locks lists on an inode (any kind: POSIX, OFD or flock).
int HostLocksOn(ino_t inode) {
  std::ifstream in("/proc/locks");
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    if (line.find(fmt::format(":{} ", inode)) != std::string::npos) ++n;
  }
  return n;
}

TEST_P(SessionOps, LockAndGetlock) {
  WriteHostFile(Host("f"), Bytes("lock me"));
  ino_t inode = HostStat("f").st_ino;
  Result<Fid> f = OpenNew(*conn_, root_, {"f"}, O_RDWR);
  ASSERT_TRUE(f) << f.error().ToString();
  auto got = Call<wire::Rlock>(wire::Tlock{
      .fid = *f, .type = kLockWrite, .start = 0, .length = 0, .proc_id = 1, .client_id = "one"});
  ASSERT_TRUE(got) << got.error().ToString();
  EXPECT_EQ(got->status, kLockSuccess);
  EXPECT_EQ(HostLocksOn(inode), 1) << "the server holds no lock on the host file";

  // Another connection (another owner) sees it and cannot take it.
  auto other = Connect();
  ASSERT_TRUE(other);
  Fid other_root = Attach(*other);
  Result<Fid> g = OpenNew(*other, other_root, {"f"}, O_RDWR);
  ASSERT_TRUE(g) << g.error().ToString();
  auto info = Get(other->s().AsyncGetlock(
      wire::Tgetlock{.fid = *g, .type = kLockWrite, .start = 0, .length = 0, .proc_id = 2}, "two",
      asio::use_future));
  ASSERT_TRUE(info) << info.error().ToString();
  EXPECT_EQ(info->type, kLockWrite) << "Tgetlock does not report the conflicting lock";
  auto blocked = Get(other->s().AsyncRequest<wire::Rlock>(
      wire::Tlock{.fid = *g, .type = kLockRead, .proc_id = 2, .client_id = "two"},
      asio::use_future));
  ASSERT_TRUE(blocked) << blocked.error().ToString();
  EXPECT_EQ(blocked->status, kLockBlocked);

  auto unlocked = Call<wire::Rlock>(wire::Tlock{
      .fid = *f, .type = kLockUnlock, .start = 0, .length = 0, .proc_id = 1, .client_id = "one"});
  ASSERT_TRUE(unlocked) << unlocked.error().ToString();
  EXPECT_EQ(unlocked->status, kLockSuccess);
  EXPECT_EQ(HostLocksOn(inode), 0);
  info = Get(other->s().AsyncGetlock(
      wire::Tgetlock{.fid = *g, .type = kLockWrite, .start = 0, .length = 0, .proc_id = 2}, "two",
      asio::use_future));
  ASSERT_TRUE(info) << info.error().ToString();
  EXPECT_EQ(info->type, kLockUnlock);
  EXPECT_TRUE(Clunk(*f));
}

TEST_P(SessionOps, Xattrs) {
  WriteHostFile(Host("f"), Bytes("x"));
  std::string value = "a value of 37 bytes, binary \x01\x02 too";
  // Txattrcreate turns a fid into one the value is written to; the clunk sets it.
  Result<Fid> x = WalkNew(*conn_, root_, {"f"});
  ASSERT_TRUE(x);
  auto created = Call<wire::Rxattrcreate>(wire::Txattrcreate{
      .fid = *x, .name = "user.ninefold", .attr_size = value.size(), .flags = 0});
  if (Code(created) == Errc(std::errc::operation_not_supported)) {
    (void)Clunk(*x);
    GTEST_SKIP() << TargetName(GetParam())
                 << " says EOPNOTSUPP to Txattrcreate: " << created.error().ToString();
  }
  ASSERT_TRUE(created) << created.error().ToString();
  auto n = Write(*x, 0, Bytes(value));
  ASSERT_TRUE(n) << n.error().ToString();
  EXPECT_EQ(*n, value.size());
  ASSERT_TRUE(Clunk(*x));
  char buf[128];
  ssize_t len = ::getxattr(Host("f").c_str(), "user.ninefold", buf, sizeof buf);
  ASSERT_EQ(len, static_cast<ssize_t>(value.size())) << std::strerror(errno);
  EXPECT_EQ(std::string(buf, len), value);

  // Txattrwalk + read.
  ASSERT_EQ(::setxattr(Host("f").c_str(), "user.other", "host-set", 8, 0), 0);
  Result<Fid> f = WalkNew(*conn_, root_, {"f"});
  ASSERT_TRUE(f);
  Fid xf = s().AllocFid();
  auto walked =
      Call<wire::Rxattrwalk>(wire::Txattrwalk{.fid = *f, .newfid = xf, .name = "user.other"});
  ASSERT_TRUE(walked) << walked.error().ToString();
  EXPECT_EQ(walked->size, 8u);
  auto read = ReadAll(xf, 64);
  ASSERT_TRUE(read) << read.error().ToString();
  EXPECT_EQ(*read, Bytes("host-set"));
  EXPECT_TRUE(Clunk(xf));

  // The list of names ("" walks to the list).
  Fid lf = s().AllocFid();
  auto list = Call<wire::Rxattrwalk>(wire::Txattrwalk{.fid = *f, .newfid = lf, .name = ""});
  ASSERT_TRUE(list) << list.error().ToString();
  auto names = ReadAll(lf, 4096);
  ASSERT_TRUE(names);
  std::string joined(reinterpret_cast<const char*>(names->data()), names->size());
  EXPECT_NE(joined.find(std::string("user.ninefold\0", 14)), std::string::npos) << joined;
  EXPECT_NE(joined.find(std::string("user.other\0", 11)), std::string::npos) << joined;
  EXPECT_TRUE(Clunk(lf));

  Fid mf = s().AllocFid();
  auto missing =
      Call<wire::Rxattrwalk>(wire::Txattrwalk{.fid = *f, .newfid = mf, .name = "user.none"});
  EXPECT_EQ(Code(missing), Errc(std::errc::no_message_available));  // ENODATA
  s().ReleaseFid(mf);
  EXPECT_TRUE(Clunk(*f));
}

TEST_P(SessionOps, ClunkReleasesTheFid) {
  WriteHostFile(Host("f"), Bytes("x"));
  Result<Fid> f = WalkNew(*conn_, root_, {"f"});
  ASSERT_TRUE(f);
  ASSERT_TRUE(Clunk(*f));
  // The server no longer knows the fid: ninefold says EBADF, diod EIO (its choice).
  std::error_code unknown_fid =
      Errc(IsDiod() ? std::errc::io_error : std::errc::bad_file_descriptor);
  EXPECT_EQ(Code(Getattr(*f)), unknown_fid);
  EXPECT_EQ(Code(Clunk(*f)), unknown_fid);
  // The session hands the number out again, and it works.
  Fid again = s().AllocFid();
  auto w = Get(s().AsyncWalk(root_, again, {"f"}, asio::use_future));
  ASSERT_TRUE(w) << w.error().ToString();
  EXPECT_TRUE(Getattr(again));
  EXPECT_TRUE(Clunk(again));
}

INSTANTIATE_TEST_SUITE_P(Servers, SessionOps, testing::ValuesIn(AllTargets()), ParamName);

}  // namespace
}  // namespace ninefold::client_test
