// The blocking facade (dial, fsmount, Fs, File): in 9P2000.L against every server, and
// in 9P2000.u and 9P2000 against `ninefold serve` (diod speaks only 9P2000.L, and the
// client must say so exactly).
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <set>

#include "client_test_util.h"
#include "fmt/format.h"
#include "ninefold/client/fs.h"

namespace ninefold::client_test {
namespace {

std::set<std::string> Names(const std::vector<client::DirEntry>& entries) {
  std::set<std::string> names;
  for (const auto& e : entries) EXPECT_TRUE(names.insert(e.name).second) << "twice: " << e.name;
  return names;
}

// The cases every dialect runs: open/create/read/write/stat/readdir/mkdir/remove and a
// rename within a directory, each checked on the host.
void CommonFacadeCases(const Fs& root, const std::string& host, bool dot_l) {
  auto at = [&](const std::string& rel) { return host + "/" + rel; };
  // mkdir, and create inside it.
  ASSERT_TRUE(root.mkdir("dir", 0755));
  struct stat st {};
  ASSERT_EQ(::stat(at("dir").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(Code(root.mkdir("dir", 0755)), Errc(std::errc::file_exists));
  EXPECT_EQ(Code(root.create("nodir/f", ORDWR, 0644)), Errc(std::errc::no_such_file_or_directory));

  Result<File> f = root.create("dir/f", ORDWR, 0640);
  ASSERT_TRUE(f) << f.error().ToString();
  EXPECT_EQ(Code(root.create("dir/f", ORDWR, 0640)), Errc(std::errc::file_exists));
  auto hello = Bytes("hello, ");
  auto world = Bytes("world");
  EXPECT_EQ(f->write(hello).value_or(0), hello.size());
  EXPECT_EQ(f->write(world).value_or(0), world.size());  // at the advanced offset
  EXPECT_EQ(f->pwrite(Bytes("W"), 7).value_or(0), 1u);
  EXPECT_EQ(ReadHostFile(at("dir/f")), Bytes("hello, World"));
  ASSERT_EQ(::stat(at("dir/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  std::vector<std::byte> buf(5);
  EXPECT_EQ(f->pread(buf, 7).value_or(0), 5u);
  EXPECT_EQ(buf, Bytes("World"));
  Result<Stat> fst = f->stat();
  ASSERT_TRUE(fst) << fst.error().ToString();
  EXPECT_EQ(fst->size, 12u);
  EXPECT_EQ(fst->mode, st.st_mode);
  EXPECT_FALSE(fst->is_dir());
  ASSERT_TRUE(f->close());

  // open + read at the file's own offset, to the end.
  const auto big = RandomBytes(300000, 5);
  WriteHostFile(at("big"), big);
  Result<File> r = root.open("big", OREAD);
  ASSERT_TRUE(r) << r.error().ToString();
  std::vector<std::byte> all;
  std::vector<std::byte> chunk(70000);
  for (;;) {
    Result<size_t> n = r->read(chunk);
    ASSERT_TRUE(n) << n.error().ToString();
    if (*n == 0) break;
    all.insert(all.end(), chunk.begin(), chunk.begin() + *n);
  }
  EXPECT_TRUE(all == big);
  EXPECT_EQ(Code(root.open("missing", OREAD)), Errc(std::errc::no_such_file_or_directory));
  // OTRUNC.
  Result<File> t = root.open("big", OWRITE | OTRUNC);
  ASSERT_TRUE(t) << t.error().ToString();
  ASSERT_EQ(::stat(at("big").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 0);

  // stat.
  Result<Stat> ds = root.stat("dir");
  ASSERT_TRUE(ds) << ds.error().ToString();
  EXPECT_TRUE(ds->is_dir());
  EXPECT_EQ(ds->name, "dir");
  EXPECT_EQ(Code(root.stat("dir/none")), Errc(std::errc::no_such_file_or_directory));

  // readdir: every name once.
  for (int i = 0; i < 150; ++i) WriteHostFile(at(fmt::format("dir/e{:03}", i)), Bytes("e"));
  Result<std::vector<client::DirEntry>> entries = root.readdir("dir");
  ASSERT_TRUE(entries) << entries.error().ToString();
  std::set<std::string> want = {"f"};
  for (int i = 0; i < 150; ++i) want.insert(fmt::format("e{:03}", i));
  EXPECT_EQ(Names(*entries), want);

  // rename within a directory.
  ASSERT_TRUE(root.rename("dir/f", "dir/g"));
  EXPECT_FALSE(std::filesystem::exists(at("dir/f")));
  EXPECT_EQ(ReadHostFile(at("dir/g")), Bytes("hello, World"));
  EXPECT_EQ(Code(root.rename("dir/f", "dir/h")), Errc(std::errc::no_such_file_or_directory));

  // remove: a non-empty directory refuses; files and then the directory go.
  EXPECT_EQ(Code(root.remove("dir")), Errc(std::errc::directory_not_empty));
  ASSERT_TRUE(root.remove("dir/g"));
  EXPECT_FALSE(std::filesystem::exists(at("dir/g")));
  for (int i = 0; i < 150; ++i) ASSERT_TRUE(root.remove(fmt::format("dir/e{:03}", i)));
  ASSERT_TRUE(root.remove("dir"));
  EXPECT_FALSE(std::filesystem::exists(at("dir")));
  EXPECT_EQ(Code(root.remove("dir")), Errc(std::errc::no_such_file_or_directory));
  (void)dot_l;
}

class FsFacade : public ServerTest {};

TEST_P(FsFacade, DotLOperations) {
  Result<Link> link = dial(server_->address());
  ASSERT_TRUE(link) << link.error().ToString();
  Result<Fs> root = fsmount(*link, {.aname = export_, .msize = 65536});
  ASSERT_TRUE(root) << root.error().ToString();
  EXPECT_EQ(root->session()->dialect(), wire::Dialect::k9P2000L);
  CommonFacadeCases(*root, export_, true);
  // 9P2000.L renames across directories.
  std::filesystem::create_directories(Host("a"));
  std::filesystem::create_directories(Host("b"));
  WriteHostFile(Host("a/x"), Bytes("x"));
  ASSERT_TRUE(root->rename("a/x", "b/y"));
  EXPECT_EQ(ReadHostFile(Host("b/y")), Bytes("x"));
  EXPECT_FALSE(std::filesystem::exists(Host("a/x")));
}

TEST_P(FsFacade, MountOfAMissingExportFails) {
  Result<Link> link = dial(server_->address());
  ASSERT_TRUE(link) << link.error().ToString();
  Result<Fs> root = fsmount(*link, {.aname = export_ + "/does-not-exist"});
  ASSERT_FALSE(root);
  std::printf("%s: attach to a missing export: %s\n", TargetName(GetParam()).c_str(),
              root.error().ToString().c_str());
  EXPECT_NE(root.error().code(), std::error_code());
}

TEST_P(FsFacade, ClassicDialects) {
  for (wire::Dialect d : {wire::Dialect::k9P2000u, wire::Dialect::k9P2000}) {
    SCOPED_TRACE(std::string(wire::DialectName(d)));
    Result<Link> link = dial(server_->address());
    ASSERT_TRUE(link) << link.error().ToString();
    Result<Fs> root = fsmount(*link, {.aname = export_, .dialect = d});
    if (!IsNinefold()) {
      // diod (and ganesha) speak only 9P2000.L: the client says exactly that.
      ASSERT_FALSE(root);
      EXPECT_EQ(root.error().code(), Errc(std::errc::protocol_not_supported))
          << root.error().ToString();
      continue;
    }
    ASSERT_TRUE(root) << root.error().ToString();
    EXPECT_EQ(root->session()->dialect(), d);
    CommonFacadeCases(*root, export_, false);
    // Renames stay within a directory in 9P2000/.u.
    std::filesystem::create_directories(Host("a"));
    WriteHostFile(Host("a/x"), Bytes("x"));
    EXPECT_EQ(Code(root->rename("a/x", "y")), Errc(std::errc::cross_device_link));
    ASSERT_TRUE(std::filesystem::remove(Host("a/x")));
    ASSERT_TRUE(std::filesystem::remove(Host("a")));

    // Tstat through the Session: the classic stat of the root and of a file.
    const auto& s = root->session();
    auto st = Get(s->AsyncStat(root->root_fid(), asio::use_future));
    ASSERT_TRUE(st) << st.error().ToString();
    EXPECT_TRUE(st->mode & 0x80000000u) << "DMDIR";
    EXPECT_TRUE(st->qid.type & wire::kQtDir);
    WriteHostFile(Host("s"), RandomBytes(1234, 1));
    Fid fid = s->AllocFid();
    ASSERT_TRUE(Get(s->AsyncWalk(root->root_fid(), fid, {"s"}, asio::use_future)));
    auto fs = Get(s->AsyncStat(fid, asio::use_future));
    ASSERT_TRUE(fs) << fs.error().ToString();
    EXPECT_EQ(fs->length, 1234u);
    EXPECT_EQ(fs->name, "s");
    EXPECT_EQ(fs->mode & 0777, 0644u);
    struct stat host {};
    ASSERT_EQ(::stat(Host("s").c_str(), &host), 0);
    EXPECT_EQ(fs->mtime, static_cast<uint32_t>(host.st_mtime));
    if (d == wire::Dialect::k9P2000u) {
      EXPECT_EQ(fs->n_uid, host.st_uid);
    }
    EXPECT_TRUE(Get(s->AsyncClunk(fid, asio::use_future)));
    ASSERT_TRUE(std::filesystem::remove(Host("s")));
    // A classic directory read of many entries (byte offsets).
    for (int i = 0; i < 300; ++i) WriteHostFile(Host(fmt::format("many{:03}", i)), Bytes(""));
    auto entries = root->readdir("");
    ASSERT_TRUE(entries) << entries.error().ToString();
    std::set<std::string> want = {"big"};  // left by the common cases
    for (int i = 0; i < 300; ++i) want.insert(fmt::format("many{:03}", i));
    EXPECT_EQ(Names(*entries), want);
    for (int i = 0; i < 300; ++i) std::filesystem::remove(Host(fmt::format("many{:03}", i)));
  }
}

INSTANTIATE_TEST_SUITE_P(Servers, FsFacade, testing::ValuesIn(AllTargets()), ParamName);

}  // namespace
}  // namespace ninefold::client_test
