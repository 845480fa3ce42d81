// ramfs through the Node interface: every operation, its exact errors, readdir resumption
// over a large directory, and concurrent I/O on one node.
#include "ninefold/fs/ramfs.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "fs_test_util.h"
#include "ninefold/wire/codec.h"

namespace ninefold::fs {
namespace {

using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

constexpr uint32_t kAtRemoveDir = 0x200;

using testing::Bytes;
using testing::Code;

class RamFsTest : public ::testing::Test {
 protected:
  void SetUp() override { Attach({}); }

  void Attach(RamFsOptions options) {
    auto fs = MakeRamFs(options);
    ASSERT_TRUE(fs.has_value());
    fs_ = std::move(*fs);
    auto root = fs_->Attach({.uname = "glenda", .uid = 1000}, "");
    ASSERT_TRUE(root.has_value());
    root_ = std::move(*root);
  }

  std::unique_ptr<Node> Walk(Node& from, std::string_view path) {
    std::unique_ptr<Node> node = *from.Clone();
    size_t start = 0;
    while (start < path.size()) {
      size_t end = path.find('/', start);
      if (end == std::string_view::npos) end = path.size();
      auto next = node->Walk(path.substr(start, end - start));
      if (!next) return nullptr;
      node = std::move(*next);
      start = end + 1;
    }
    return node;
  }
  std::unique_ptr<Node> Walk(std::string_view path) { return Walk(*root_, path); }

  // Creates `name` in `dir` holding `text`, open read-write.
  std::unique_ptr<Node> MakeFile(Node& dir, std::string_view name, std::string_view text = "") {
    auto node = dir.Create(name, O_RDWR, 0644, 100);
    EXPECT_TRUE(node.has_value());
    if (!node) return nullptr;
    if (!text.empty()) {
      EXPECT_EQ(*(*node)->Write(0, Bytes(text)), text.size());
    }
    return std::move(*node);
  }
  std::unique_ptr<Node> MakeFile(std::string_view name, std::string_view text = "") {
    return MakeFile(*root_, name, text);
  }

  static std::string ReadAll(Node& node, size_t chunk = 7) {
    std::string out;
    std::vector<std::byte> buf(chunk);
    for (;;) {
      auto n = node.Read(out.size(), buf);
      EXPECT_TRUE(n.has_value());
      if (!n || *n == 0) return out;
      out.append(reinterpret_cast<const char*>(buf.data()), *n);
    }
  }

  std::string ReadPath(std::string_view path) {
    auto node = Walk(path);
    EXPECT_NE(node, nullptr);
    if (!node) return {};
    EXPECT_TRUE(node->Open(O_RDONLY).has_value());
    return ReadAll(*node);
  }

  // A directory entry with its own copy of the name.
  struct Listed {
    wire::Qid qid;
    uint64_t offset = 0;
    uint8_t type = 0;
    std::string name;
  };

  // Every entry of `dir` (opened here), read with replies of `buffer` bytes.
  static std::vector<Listed> List(Node& dir, size_t buffer = 512) {
    auto open = dir.Clone();
    EXPECT_TRUE((*open)->Open(O_RDONLY | O_DIRECTORY).has_value());
    std::vector<Listed> entries;
    std::vector<std::byte> buf(buffer);
    uint64_t offset = 0;
    for (;;) {
      auto n = (*open)->ReadDir(offset, buf);
      EXPECT_TRUE(n.has_value());
      if (!n || *n == 0) return entries;
      std::span<const std::byte> data(buf.data(), *n);
      while (!data.empty()) {
        auto e = wire::DecodeDirent(data);
        EXPECT_TRUE(e.has_value());
        if (!e) return entries;
        offset = e->offset;
        entries.push_back({e->qid, e->offset, e->type, std::string(e->name)});
      }
    }
  }
  static std::vector<std::string> Names(Node& dir) {
    std::vector<std::string> names;
    for (const auto& e : List(dir)) names.push_back(e.name);
    return names;
  }

  wire::Rgetattr Attr(Node& node) { return *node.GetAttr(0x3fff); }

  std::unique_ptr<FileServer> fs_;
  std::unique_ptr<Node> root_;
};

// --- navigation and qids ------------------------------------------------------------------

TEST_F(RamFsTest, WalkDotDotAtRootStaysAtRoot) {
  auto up = root_->Walk("..");
  ASSERT_TRUE(up.has_value());
  EXPECT_EQ((*up)->qid(), root_->qid());
  EXPECT_EQ(root_->qid().type, wire::kQtDir);
}

TEST_F(RamFsTest, WalkDotDotFromSubdirReachesParent) {
  ASSERT_TRUE(root_->Mkdir("a", 0755, 0).has_value());
  ASSERT_TRUE(Walk("a")->Mkdir("b", 0755, 0).has_value());
  EXPECT_EQ(Walk("a/b/..")->qid(), Walk("a")->qid());
  EXPECT_EQ(Walk("a/b/../..")->qid(), root_->qid());
}

TEST_F(RamFsTest, WalkMissingNameIsENOENTAndFromFileIsENOTDIR) {
  EXPECT_EQ(Code(root_->Walk("nope")), std::errc::no_such_file_or_directory);
  auto file = MakeFile("f");
  EXPECT_EQ(Code(Walk("f")->Walk("x")), std::errc::not_a_directory);
  EXPECT_EQ(Code(root_->Walk(std::string(256, 'n'))), std::errc::filename_too_long);
}

TEST_F(RamFsTest, QidsHaveUniquePathsAndTypes) {
  auto file = MakeFile("f");
  auto dir = root_->Mkdir("d", 0755, 0);
  auto link = root_->Symlink("l", "f", 0);
  ASSERT_TRUE(dir.has_value() && link.has_value());
  std::set<uint64_t> paths{root_->qid().path, file->qid().path, dir->path, link->path};
  EXPECT_EQ(paths.size(), 4u);
  EXPECT_EQ(file->qid().type, wire::kQtFile);
  EXPECT_EQ(dir->type, wire::kQtDir);
  EXPECT_EQ(link->type, wire::kQtSymlink);
  EXPECT_EQ(Walk("d")->qid(), *dir);
}

TEST_F(RamFsTest, QidVersionGrowsWithWritesSetattrAndDirectoryChanges) {
  auto file = MakeFile("f");
  uint32_t v0 = file->qid().version;
  ASSERT_TRUE(file->Write(0, Bytes("x")).has_value());
  uint32_t v1 = file->qid().version;
  EXPECT_GT(v1, v0);
  wire::Tsetattr chmod{.valid = 0x1, .mode = 0600};
  ASSERT_TRUE(file->SetAttr(chmod).has_value());
  EXPECT_GT(file->qid().version, v1);
  uint32_t dir_v = root_->qid().version;
  MakeFile("g");
  EXPECT_GT(root_->qid().version, dir_v);
}

// --- create, open, read, write -----------------------------------------------------------

TEST_F(RamFsTest, CreateWriteReadBack) {
  auto file = MakeFile("hello", "hello, world\n");
  EXPECT_EQ(ReadAll(*file), "hello, world\n");
  EXPECT_EQ(ReadPath("hello"), "hello, world\n");
  auto attr = Attr(*Walk("hello"));
  EXPECT_EQ(attr.mode, S_IFREG | 0644u);
  EXPECT_EQ(attr.size, 13u);
  EXPECT_EQ(attr.uid, 1000u);  // the attaching identity
  EXPECT_EQ(attr.gid, 100u);   // the gid Create named
  EXPECT_EQ(attr.nlink, 1u);
}

TEST_F(RamFsTest, CreateExclusiveOfExistingNameIsEEXIST) {
  MakeFile("f");
  EXPECT_EQ(Code(root_->Create("f", O_RDWR | O_CREAT | O_EXCL, 0644, 0)), std::errc::file_exists);
  ASSERT_TRUE(root_->Mkdir("d", 0755, 0).has_value());
  EXPECT_EQ(Code(root_->Create("d", O_RDWR | O_CREAT | O_EXCL, 0644, 0)), std::errc::file_exists);
}

TEST_F(RamFsTest, CreateWithoutExclusiveOpensTheExistingFile) {
  MakeFile("f", "keep");
  auto again = root_->Create("f", O_RDONLY | O_CREAT, 0644, 0);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(ReadAll(**again), "keep");
  EXPECT_EQ(Code(root_->Create(".", O_RDWR, 0644, 0)), std::errc::file_exists);
  EXPECT_EQ(Code(Walk("f")->Create("x", O_RDWR, 0644, 0)), std::errc::not_a_directory);
}

TEST_F(RamFsTest, OpenTruncEmptiesTheFile) {
  MakeFile("f", "old contents");
  auto node = Walk("f");
  ASSERT_TRUE(node->Open(O_WRONLY | O_TRUNC).has_value());
  EXPECT_EQ(Attr(*node).size, 0u);
  // O_RDONLY | O_TRUNC does not truncate (open(2): only when the mode allows writing).
  MakeFile("g", "stays");
  ASSERT_TRUE(Walk("g")->Open(O_RDONLY | O_TRUNC).has_value());
  EXPECT_EQ(ReadPath("g"), "stays");
}

TEST_F(RamFsTest, OpenAppendWritesAtTheEndWhateverTheOffset) {
  MakeFile("log", "one\n");
  auto node = Walk("log");
  ASSERT_TRUE(node->Open(O_WRONLY | O_APPEND).has_value());
  ASSERT_TRUE(node->Write(0, Bytes("two\n")).has_value());
  ASSERT_TRUE(node->Write(0, Bytes("three\n")).has_value());
  EXPECT_EQ(ReadPath("log"), "one\ntwo\nthree\n");
}

TEST_F(RamFsTest, OpenDirectoryFlagOnFileIsENOTDIR) {
  MakeFile("f");
  EXPECT_EQ(Code(Walk("f")->Open(O_RDONLY | O_DIRECTORY)), std::errc::not_a_directory);
}

TEST_F(RamFsTest, OpeningADirectoryForWritingIsEISDIR) {
  ASSERT_TRUE(root_->Mkdir("d", 0755, 0).has_value());
  EXPECT_EQ(Code(Walk("d")->Open(O_WRONLY)), std::errc::is_a_directory);
  EXPECT_EQ(Code(Walk("d")->Open(O_RDWR)), std::errc::is_a_directory);
  auto dir = Walk("d");
  ASSERT_TRUE(dir->Open(O_RDONLY).has_value());
  std::byte buf[8];
  EXPECT_EQ(Code(dir->Read(0, buf)), std::errc::is_a_directory);
  EXPECT_EQ(Code(dir->Write(0, Bytes("x"))), std::errc::is_a_directory);
}

TEST_F(RamFsTest, ReadAndWriteNeedTheMatchingOpenModeElseEBADF) {
  MakeFile("f", "data");
  std::byte buf[8];
  auto closed = Walk("f");
  EXPECT_EQ(Code(closed->Read(0, buf)), std::errc::bad_file_descriptor);
  auto reader = Walk("f");
  ASSERT_TRUE(reader->Open(O_RDONLY).has_value());
  EXPECT_EQ(Code(reader->Write(0, Bytes("x"))), std::errc::bad_file_descriptor);
  auto writer = Walk("f");
  ASSERT_TRUE(writer->Open(O_WRONLY).has_value());
  EXPECT_EQ(Code(writer->Read(0, buf)), std::errc::bad_file_descriptor);
}

TEST_F(RamFsTest, SparseFileReadsZerosInHolesAndAllocatesOnlyWrittenPages) {
  auto file = MakeFile("sparse");
  constexpr uint64_t kFar = 1ull << 40;  // 1 TiB
  ASSERT_TRUE(file->Write(kFar, Bytes("end")).has_value());
  auto attr = Attr(*file);
  EXPECT_EQ(attr.size, kFar + 3);
  EXPECT_EQ(attr.blocks, kRamFsPageSize / 512);  // one page
  std::vector<std::byte> buf(10000, std::byte{0x55});
  ASSERT_EQ(*file->Read(12345, buf), buf.size());
  EXPECT_EQ(std::count(buf.begin(), buf.end(), std::byte{0}), 10000);
  std::byte tail[8];
  ASSERT_EQ(*file->Read(kFar - 2, tail), 5u);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(tail), 5), std::string("\0\0end", 5));
}

TEST_F(RamFsTest, WriteAcrossPageBoundariesReadsBackExactly) {
  auto file = MakeFile("f");
  std::string data;
  for (int i = 0; i < 3 * 4096 + 100; ++i) data += static_cast<char>('a' + i % 26);
  ASSERT_EQ(*file->Write(4000, Bytes(data)), data.size());
  std::string all = ReadAll(*file, 5000);
  ASSERT_EQ(all.size(), 4000 + data.size());
  EXPECT_EQ(all.substr(0, 4000), std::string(4000, '\0'));
  EXPECT_EQ(all.substr(4000), data);
}

// --- page sharing (Node::Share) -----------------------------------------------------------

std::string Pattern(size_t n, int seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed * 7 + i / 4096) & 0xff);
  return s;
}

std::string_view View(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// What the descriptor holds at [offset, offset + n), read through it.
std::string ReadFd(int fd, uint64_t offset, size_t n) {
  std::string out(n, '\0');
  EXPECT_EQ(::pread(fd, out.data(), n, static_cast<off_t>(offset)), static_cast<ssize_t>(n));
  return out;
}

TEST_F(RamFsTest, SharedPagesLieInAReadOnlyFileAndNeverChange) {
  const std::string data = Pattern((3 << 20) + 100, 1);
  auto file = MakeFile("big", data);
  std::optional<buf::SharedBytes> shared = file->Share(1 << 20, 2 << 20);
  ASSERT_TRUE(shared);
  ASSERT_EQ(shared->bytes.size(), 2u << 20);
  EXPECT_EQ(View(shared->bytes), std::string_view(data).substr(1 << 20, 2 << 20));
  EXPECT_EQ(shared->file.length, shared->bytes.size());
  EXPECT_EQ(shared->file.offset % kRamFsPageSize, 0u);
  const int fd = shared->file.fd;
  EXPECT_EQ(::fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
  EXPECT_EQ(::pwrite(fd, "x", 1, static_cast<off_t>(shared->file.offset)), -1);
  EXPECT_EQ(errno, EBADF);
  EXPECT_EQ(ReadFd(fd, shared->file.offset, 2 << 20), data.substr(1 << 20, 2 << 20));
  // Not even a descriptor reopened for writing (a memfd's mode is 0777) can change it.
  int rw = ::open(("/proc/self/fd/" + std::to_string(fd)).c_str(), O_RDWR | O_CLOEXEC);
  if (rw >= 0) {
    EXPECT_EQ(::pwrite(rw, "x", 1, static_cast<off_t>(shared->file.offset)), -1);
    EXPECT_EQ(errno, EPERM);
    EXPECT_EQ(::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, rw,
                     static_cast<off_t>(shared->file.offset)),
              MAP_FAILED);
    EXPECT_EQ(::fallocate(rw, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                          static_cast<off_t>(shared->file.offset), 4096),
              -1);
    ::close(rw);
  }
  EXPECT_EQ(View(shared->bytes), std::string_view(data).substr(1 << 20, 2 << 20));

  // The same range again: the same pages (copied into their run once, not per share).
  std::optional<buf::SharedBytes> again = file->Share(1 << 20, 2 << 20);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->file.offset, shared->file.offset);
  EXPECT_EQ(again->bytes.data(), shared->bytes.data());

  // Writes and truncation after sharing go elsewhere: the file changes, what was given not.
  ASSERT_EQ(*file->Write((1 << 20) + 5000, Bytes("CHANGED")), 7u);
  std::string now = data;
  now.replace((1 << 20) + 5000, 7, "CHANGED");
  EXPECT_EQ(ReadAll(*file, 1 << 20), now);
  EXPECT_EQ(View(shared->bytes), std::string_view(data).substr(1 << 20, 2 << 20));
  EXPECT_EQ(ReadFd(fd, shared->file.offset, 2 << 20), data.substr(1 << 20, 2 << 20));
  ASSERT_TRUE(file->SetAttr(wire::Tsetattr{.valid = 0x8, .size = 0}).has_value());
  ASSERT_EQ(*file->Write(0, Bytes(std::string(3 << 20, 'z'))), 3u << 20);
  EXPECT_EQ(View(shared->bytes), std::string_view(data).substr(1 << 20, 2 << 20));
  EXPECT_EQ(ReadFd(fd, shared->file.offset, 2 << 20), data.substr(1 << 20, 2 << 20));
  EXPECT_EQ(ReadAll(*file, 1 << 20), std::string(3 << 20, 'z'));
}

TEST_F(RamFsTest, SharingAgreesWithReadEverywhereUpToTheEnd) {
  const std::string data = Pattern((2 << 20) + 123, 2);
  auto file = MakeFile("f", data);
  for (uint64_t at = 0; at < data.size(); at += 256 << 10) {
    std::optional<buf::SharedBytes> shared = file->Share(at, 300 << 10);  // overlapping
    ASSERT_TRUE(shared) << at;
    EXPECT_EQ(View(shared->bytes), std::string_view(data).substr(at, 300 << 10)) << at;
  }
  std::optional<buf::SharedBytes> tail = file->Share(2 << 20, 1 << 20);
  ASSERT_TRUE(tail);
  EXPECT_EQ(View(tail->bytes), std::string_view(data).substr(2 << 20));
  // The rest of its last page is zeros, as past the end of any file.
  EXPECT_EQ(ReadFd(tail->file.fd, tail->file.offset, kRamFsPageSize),
            data.substr(2 << 20) + std::string(kRamFsPageSize - 123, '\0'));
  EXPECT_EQ(ReadAll(*file, 100000), data);
}

TEST_F(RamFsTest, ShareDeclinesWhatItCannotOffer) {
  auto small = MakeFile("small", Pattern(512 << 10, 3));
  EXPECT_FALSE(small->Share(0, 256 << 10)) << "a file under 1 MiB: copied, no memfd of its own";
  auto big = MakeFile("big", Pattern(4 << 20, 4));
  EXPECT_FALSE(big->Share(100, 1 << 20)) << "misaligned";
  EXPECT_FALSE(big->Share(4 << 20, 1 << 20)) << "at the end";
  EXPECT_FALSE(big->Share(0, 0));
  ASSERT_TRUE(big->Write(10 << 20, Bytes("far")).has_value());
  EXPECT_FALSE(big->Share(4 << 20, 1 << 20)) << "a hole";
  EXPECT_TRUE(big->Share(0, 1 << 20));
  auto writer = Walk("big");
  ASSERT_TRUE(writer->Open(O_WRONLY).has_value());
  EXPECT_FALSE(writer->Share(0, 1 << 20)) << "not open for reading";
  EXPECT_FALSE(Walk("big")->Share(0, 1 << 20)) << "not open";
  ASSERT_TRUE(root_->Mkdir("d", 0755, 100).has_value());
  auto dir = Walk("d");
  ASSERT_TRUE(dir->Open(O_RDONLY | O_DIRECTORY).has_value());
  EXPECT_FALSE(dir->Share(0, 1 << 20));
}

TEST_F(RamFsTest, TruncateThenGrowReadsZerosNotOldData) {
  auto file = MakeFile("f", std::string(6000, 'x'));
  wire::Tsetattr shrink{.valid = 0x8, .size = 10};
  ASSERT_TRUE(file->SetAttr(shrink).has_value());
  EXPECT_EQ(Attr(*file).size, 10u);
  EXPECT_EQ(Attr(*file).blocks, kRamFsPageSize / 512);
  wire::Tsetattr grow{.valid = 0x8, .size = 6000};
  ASSERT_TRUE(file->SetAttr(grow).has_value());
  EXPECT_EQ(ReadAll(*file, 4096), std::string(10, 'x') + std::string(5990, '\0'));
}

// --- attributes ----------------------------------------------------------------------------

TEST_F(RamFsTest, SetAttrChangesModeOwnerAndExplicitTimes) {
  auto file = MakeFile("f");
  wire::Tsetattr req{.valid = 0x1 | 0x2 | 0x4 | 0x10 | 0x20 | 0x80 | 0x100,
                     .mode = 0640,
                     .uid = 7,
                     .gid = 8,
                     .atime_sec = 1000,
                     .atime_nsec = 5,
                     .mtime_sec = 2000,
                     .mtime_nsec = 6};
  ASSERT_TRUE(file->SetAttr(req).has_value());
  auto a = Attr(*file);
  EXPECT_EQ(a.mode, S_IFREG | 0640u);
  EXPECT_EQ(a.uid, 7u);
  EXPECT_EQ(a.gid, 8u);
  EXPECT_EQ(a.atime_sec, 1000u);
  EXPECT_EQ(a.atime_nsec, 5u);
  EXPECT_EQ(a.mtime_sec, 2000u);
  EXPECT_EQ(a.mtime_nsec, 6u);
  EXPECT_GT(a.ctime_sec, 2000u);  // ctime is now
  // ATIME without ATIME_SET means "now".
  wire::Tsetattr touch{.valid = 0x10 | 0x20};
  ASSERT_TRUE(file->SetAttr(touch).has_value());
  EXPECT_GT(Attr(*file).atime_sec, 1000u);
  EXPECT_GT(Attr(*file).mtime_sec, 2000u);
  // The type bits of mode are not changeable.
  wire::Tsetattr chmod{.valid = 0x1, .mode = S_IFDIR | 0755};
  ASSERT_TRUE(file->SetAttr(chmod).has_value());
  EXPECT_EQ(Attr(*file).mode, S_IFREG | 0755u);
}

TEST_F(RamFsTest, SetAttrSizeOnDirectoryIsEISDIRAndOnSymlinkEINVAL) {
  ASSERT_TRUE(root_->Mkdir("d", 0755, 0).has_value());
  ASSERT_TRUE(root_->Symlink("l", "d", 0).has_value());
  wire::Tsetattr req{.valid = 0x8, .size = 0};
  EXPECT_EQ(Code(Walk("d")->SetAttr(req)), std::errc::is_a_directory);
  EXPECT_EQ(Code(Walk("l")->SetAttr(req)), std::errc::invalid_argument);
}

TEST_F(RamFsTest, WriteUpdatesMtimeAndSize) {
  auto file = MakeFile("f");
  wire::Tsetattr old{.valid = 0x20 | 0x100, .mtime_sec = 1};
  ASSERT_TRUE(file->SetAttr(old).has_value());
  ASSERT_TRUE(file->Write(0, Bytes("abc")).has_value());
  EXPECT_GT(Attr(*file).mtime_sec, 1u);
  EXPECT_EQ(Attr(*file).size, 3u);
}

// --- directories, links, special files -------------------------------------------------------

TEST_F(RamFsTest, MkdirCountsLinksOfChildAndParent) {
  EXPECT_EQ(Attr(*root_).nlink, 2u);
  auto qid = root_->Mkdir("d", 0750, 5);
  ASSERT_TRUE(qid.has_value());
  EXPECT_EQ(Attr(*root_).nlink, 3u);
  auto d = Attr(*Walk("d"));
  EXPECT_EQ(d.mode, S_IFDIR | 0750u);
  EXPECT_EQ(d.nlink, 2u);
  EXPECT_EQ(d.gid, 5u);
  EXPECT_EQ(Code(root_->Mkdir("d", 0755, 0)), std::errc::file_exists);
  EXPECT_EQ(Code(root_->Mkdir("..", 0755, 0)), std::errc::file_exists);
  EXPECT_EQ(Code(root_->Mkdir("a/b", 0755, 0)), std::errc::invalid_argument);
}

TEST_F(RamFsTest, SymlinkStoresTargetAndCannotBeOpened) {
  auto qid = root_->Symlink("link", "some/where", 0);
  ASSERT_TRUE(qid.has_value());
  auto link = Walk("link");
  EXPECT_EQ(*link->ReadLink(), "some/where");
  auto a = Attr(*link);
  EXPECT_EQ(a.mode, S_IFLNK | 0777u);
  EXPECT_EQ(a.size, 10u);
  EXPECT_EQ(Code(link->Open(O_RDONLY)), std::errc::too_many_symbolic_link_levels);
  MakeFile("f");
  EXPECT_EQ(Code(Walk("f")->ReadLink()), std::errc::invalid_argument);
  EXPECT_EQ(Code(root_->Symlink("link", "x", 0)), std::errc::file_exists);
}

TEST_F(RamFsTest, HardLinkSharesDataAndCountsNlink) {
  auto file = MakeFile("a", "shared");
  ASSERT_TRUE(root_->Link("b", *file).has_value());
  EXPECT_EQ(Attr(*file).nlink, 2u);
  EXPECT_EQ(Walk("b")->qid().path, file->qid().path);
  EXPECT_EQ(ReadPath("b"), "shared");
  ASSERT_TRUE(root_->UnlinkAt("a", 0).has_value());
  EXPECT_EQ(Attr(*file).nlink, 1u);
  EXPECT_EQ(ReadPath("b"), "shared");
  EXPECT_EQ(Code(root_->Link("b", *file)), std::errc::file_exists);
}

TEST_F(RamFsTest, HardLinkToDirectoryIsEPERMAndToRemovedFileENOENT) {
  ASSERT_TRUE(root_->Mkdir("d", 0755, 0).has_value());
  EXPECT_EQ(Code(root_->Link("d2", *Walk("d"))), std::errc::operation_not_permitted);
  auto file = MakeFile("f");
  ASSERT_TRUE(root_->UnlinkAt("f", 0).has_value());
  EXPECT_EQ(Code(root_->Link("g", *file)), std::errc::no_such_file_or_directory);
}

TEST_F(RamFsTest, LinkAcrossFileSystemsIsEXDEV) {
  auto other = *MakeRamFs();
  auto other_root = *other->Attach({}, "");
  auto file = MakeFile(*other_root, "f");
  EXPECT_EQ(Code(root_->Link("f", *file)), std::errc::cross_device_link);
  EXPECT_EQ(Code(other_root->RenameAt("f", *root_, "f")), std::errc::cross_device_link);
}

TEST_F(RamFsTest, MknodMakesMetadataOnlyFifoAndDeviceNodes) {
  auto fifo = root_->Mknod("fifo", S_IFIFO | 0600, 0, 0, 0);
  auto chr = root_->Mknod("tty", S_IFCHR | 0620, 4, 1, 5);
  ASSERT_TRUE(fifo.has_value() && chr.has_value());
  EXPECT_EQ(Attr(*Walk("fifo")).mode, S_IFIFO | 0600u);
  auto a = Attr(*Walk("tty"));
  EXPECT_EQ(a.mode, S_IFCHR | 0620u);
  EXPECT_EQ(a.rdev, makedev(4, 1));
  EXPECT_EQ(Code(Walk("tty")->Open(O_RDWR)), std::errc::no_such_device_or_address);
  EXPECT_EQ(Code(root_->Mknod("d", S_IFDIR | 0755, 0, 0, 0)), std::errc::invalid_argument);
  auto entries = List(*root_);
  ASSERT_EQ(entries.size(), 4u);
  EXPECT_EQ(entries[2].type, 1);  // DT_FIFO
  EXPECT_EQ(entries[3].type, 2);  // DT_CHR
}

TEST_F(RamFsTest, UnlinkAtFollowsUnlinkAndRmdirRules) {
  MakeFile("f");
  ASSERT_TRUE(root_->Mkdir("d", 0755, 0).has_value());
  MakeFile(*Walk("d"), "inner");
  EXPECT_EQ(Code(root_->UnlinkAt("f", kAtRemoveDir)), std::errc::not_a_directory);
  EXPECT_EQ(Code(root_->UnlinkAt("d", 0)), std::errc::is_a_directory);
  EXPECT_EQ(Code(root_->UnlinkAt("d", kAtRemoveDir)), std::errc::directory_not_empty);
  EXPECT_EQ(Code(root_->UnlinkAt("missing", 0)), std::errc::no_such_file_or_directory);
  EXPECT_EQ(Code(root_->UnlinkAt(".", kAtRemoveDir)), std::errc::invalid_argument);
  EXPECT_EQ(Code(root_->UnlinkAt("f", 0x1)), std::errc::invalid_argument);
  ASSERT_TRUE(Walk("d")->UnlinkAt("inner", 0).has_value());
  ASSERT_TRUE(root_->UnlinkAt("d", kAtRemoveDir).has_value());
  ASSERT_TRUE(root_->UnlinkAt("f", 0).has_value());
  EXPECT_EQ(Attr(*root_).nlink, 2u);
  EXPECT_THAT(Names(*root_), ElementsAre(".", ".."));
}

TEST_F(RamFsTest, UnlinkedOpenFileKeepsItsDataReadableAndWritable) {
  auto file = MakeFile("tmp", "still here");
  ASSERT_TRUE(root_->UnlinkAt("tmp", 0).has_value());
  EXPECT_EQ(Code(root_->Walk("tmp")), std::errc::no_such_file_or_directory);
  EXPECT_EQ(ReadAll(*file), "still here");
  ASSERT_TRUE(file->Write(10, Bytes("!")).has_value());
  EXPECT_EQ(ReadAll(*file), "still here!");
  EXPECT_EQ(Attr(*file).nlink, 0u);
}

TEST_F(RamFsTest, RemovedDirectoryCannotBeWalkedOrFilled) {
  ASSERT_TRUE(root_->Mkdir("d", 0755, 0).has_value());
  auto dir = Walk("d");
  ASSERT_TRUE(root_->UnlinkAt("d", kAtRemoveDir).has_value());
  EXPECT_EQ(Code(dir->Walk("..")), std::errc::no_such_file_or_directory);
  EXPECT_EQ(Code(dir->Create("f", O_RDWR, 0644, 0)), std::errc::no_such_file_or_directory);
  EXPECT_EQ(Code(dir->Mkdir("x", 0755, 0)), std::errc::no_such_file_or_directory);
}

// --- rename ----------------------------------------------------------------------------------

TEST_F(RamFsTest, RenameAtMovesAFileBetweenDirectories) {
  ASSERT_TRUE(root_->Mkdir("a", 0755, 0).has_value());
  ASSERT_TRUE(root_->Mkdir("b", 0755, 0).has_value());
  MakeFile(*Walk("a"), "f", "moved");
  ASSERT_TRUE(Walk("a")->RenameAt("f", *Walk("b"), "g").has_value());
  EXPECT_EQ(Code(Walk("a")->Walk("f")), std::errc::no_such_file_or_directory);
  EXPECT_EQ(ReadPath("b/g"), "moved");
  EXPECT_EQ(Code(root_->RenameAt("missing", *root_, "x")), std::errc::no_such_file_or_directory);
}

TEST_F(RamFsTest, RenameAtReplacesAnExistingFile) {
  MakeFile("src", "new");
  auto old_target = MakeFile("dst", "old");
  ASSERT_TRUE(root_->RenameAt("src", *root_, "dst").has_value());
  EXPECT_EQ(ReadPath("dst"), "new");
  EXPECT_THAT(Names(*root_), ElementsAre(".", "..", "dst"));
  EXPECT_EQ(Attr(*old_target).nlink, 0u);
  EXPECT_EQ(ReadAll(*old_target), "old");  // still open
}

TEST_F(RamFsTest, RenameAtReplacesAnEmptyDirectoryAndFixesLinkCounts) {
  ASSERT_TRUE(root_->Mkdir("a", 0755, 0).has_value());
  ASSERT_TRUE(root_->Mkdir("b", 0755, 0).has_value());
  ASSERT_TRUE(Walk("a")->Mkdir("sub", 0755, 0).has_value());
  ASSERT_TRUE(Walk("b")->Mkdir("empty", 0755, 0).has_value());
  ASSERT_TRUE(Walk("a")->RenameAt("sub", *Walk("b"), "empty").has_value());
  EXPECT_EQ(Attr(*Walk("a")).nlink, 2u);
  EXPECT_EQ(Attr(*Walk("b")).nlink, 3u);
  EXPECT_EQ(Walk("b/empty/..")->qid(), Walk("b")->qid());
}

TEST_F(RamFsTest, RenameTypeMismatchesAreENOTDIRAndEISDIR) {
  MakeFile("f");
  ASSERT_TRUE(root_->Mkdir("d", 0755, 0).has_value());
  EXPECT_EQ(Code(root_->RenameAt("d", *root_, "f")), std::errc::not_a_directory);
  EXPECT_EQ(Code(root_->RenameAt("f", *root_, "d")), std::errc::is_a_directory);
  EXPECT_EQ(Code(root_->RenameAt("f", *Walk("f"), "x")), std::errc::not_a_directory);
}

TEST_F(RamFsTest, RenameOverNonEmptyDirectoryIsENOTEMPTY) {
  ASSERT_TRUE(root_->Mkdir("a", 0755, 0).has_value());
  ASSERT_TRUE(root_->Mkdir("b", 0755, 0).has_value());
  MakeFile(*Walk("b"), "f");
  EXPECT_EQ(Code(root_->RenameAt("a", *root_, "b")), std::errc::directory_not_empty);
}

TEST_F(RamFsTest, RenameDirectoryIntoItsOwnSubtreeIsEINVAL) {
  ASSERT_TRUE(root_->Mkdir("a", 0755, 0).has_value());
  ASSERT_TRUE(Walk("a")->Mkdir("b", 0755, 0).has_value());
  EXPECT_EQ(Code(root_->RenameAt("a", *Walk("a/b"), "x")), std::errc::invalid_argument);
  EXPECT_EQ(Code(root_->RenameAt("a", *Walk("a"), "x")), std::errc::invalid_argument);
  EXPECT_EQ(Code(Walk("a")->Rename(*Walk("a/b"), "x")), std::errc::invalid_argument);
}

TEST_F(RamFsTest, RenameBetweenTwoNamesOfOneFileDoesNothing) {
  auto file = MakeFile("a", "x");
  ASSERT_TRUE(root_->Link("b", *file).has_value());
  ASSERT_TRUE(root_->RenameAt("a", *root_, "b").has_value());
  EXPECT_THAT(Names(*root_), UnorderedElementsAre(".", "..", "a", "b"));
  EXPECT_EQ(Attr(*file).nlink, 2u);
}

TEST_F(RamFsTest, RenameMovesTheNodesOwnFileAndKeepsTracking) {
  ASSERT_TRUE(root_->Mkdir("d", 0755, 0).has_value());
  MakeFile("f", "data");
  auto node = Walk("f");
  ASSERT_TRUE(node->Rename(*Walk("d"), "g").has_value());
  EXPECT_EQ(ReadPath("d/g"), "data");
  ASSERT_TRUE(node->Rename(*root_, "h").has_value());  // the node follows its file
  EXPECT_EQ(ReadPath("h"), "data");
  EXPECT_EQ(Code(root_->Rename(*Walk("d"), "x")), std::errc::device_or_resource_busy);
}

TEST_F(RamFsTest, RemoveUnlinksTheNodesFileWithRmdirRules) {
  MakeFile("f");
  ASSERT_TRUE(Walk("f")->Remove().has_value());
  EXPECT_EQ(Code(root_->Walk("f")), std::errc::no_such_file_or_directory);
  ASSERT_TRUE(root_->Mkdir("d", 0755, 0).has_value());
  MakeFile(*Walk("d"), "x");
  EXPECT_EQ(Code(Walk("d")->Remove()), std::errc::directory_not_empty);
  ASSERT_TRUE(Walk("d/x")->Remove().has_value());
  ASSERT_TRUE(Walk("d")->Remove().has_value());
  EXPECT_EQ(Code(root_->Remove()), std::errc::device_or_resource_busy);
  auto gone = MakeFile("g");
  ASSERT_TRUE(gone->Remove().has_value());
  EXPECT_EQ(Code(gone->Remove()), std::errc::no_such_file_or_directory);
}

// --- readdir -----------------------------------------------------------------------------------

TEST_F(RamFsTest, ReadDirListsDotDotDotThenEntriesWithTypesAndQids) {
  auto file = MakeFile("f");
  ASSERT_TRUE(root_->Mkdir("d", 0755, 0).has_value());
  ASSERT_TRUE(root_->Symlink("l", "f", 0).has_value());
  auto entries = List(*root_);
  ASSERT_EQ(entries.size(), 5u);
  EXPECT_EQ(entries[0].name, ".");
  EXPECT_EQ(entries[0].qid, root_->qid());
  EXPECT_EQ(entries[1].name, "..");
  EXPECT_EQ(entries[1].qid, root_->qid());
  EXPECT_EQ(entries[2].name, "f");
  EXPECT_EQ(entries[2].type, 8);  // DT_REG
  EXPECT_EQ(entries[2].qid.path, file->qid().path);
  EXPECT_EQ(entries[3].type, 4);   // DT_DIR
  EXPECT_EQ(entries[4].type, 10);  // DT_LNK
  for (size_t i = 1; i < entries.size(); ++i) EXPECT_GT(entries[i].offset, entries[i - 1].offset);
}

TEST_F(RamFsTest, ReadDirOfFiveThousandEntriesIn512ByteRepliesListsEveryNameOnce) {
  std::set<std::string> want;
  for (int i = 0; i < 5000; ++i) {
    std::string name = "entry-" + std::to_string(i);
    ASSERT_TRUE(root_->Mkdir(name, 0755, 0).has_value());
    want.insert(name);
  }
  auto entries = List(*root_, 512);
  std::multiset<std::string> got;
  for (const auto& e : entries) got.emplace(e.name);
  EXPECT_EQ(got.size(), 5002u);
  EXPECT_EQ(got.count("."), 1u);
  EXPECT_EQ(got.count(".."), 1u);
  for (const auto& name : want) EXPECT_EQ(got.count(name), 1u) << name;
}

TEST_F(RamFsTest, ReadDirResumesCorrectlyAcrossConcurrentCreatesAndUnlinks) {
  for (int i = 0; i < 10; ++i) MakeFile("f" + std::to_string(i));
  auto dir = root_->Clone();
  ASSERT_TRUE((*dir)->Open(O_RDONLY).has_value());
  // Read ".", "..", f0..f2 (5 entries) with a buffer sized for exactly those.
  std::vector<std::byte> buf(5 * (13 + 8 + 1 + 2 + 2));
  auto n = (*dir)->ReadDir(0, buf);
  ASSERT_TRUE(n.has_value());
  std::span<const std::byte> data(buf.data(), *n);
  uint64_t offset = 0;
  std::vector<std::string> seen;
  while (!data.empty()) {
    auto e = *wire::DecodeDirent(data);
    seen.emplace_back(e.name);
    offset = e.offset;
  }
  ASSERT_THAT(seen, ElementsAre(".", "..", "f0", "f1", "f2"));
  // Meanwhile: an already-listed entry and a not-yet-listed one go, a new one comes.
  ASSERT_TRUE(root_->UnlinkAt("f1", 0).has_value());
  ASSERT_TRUE(root_->UnlinkAt("f5", 0).has_value());
  MakeFile("new");
  std::vector<std::byte> rest(4096);
  auto m = (*dir)->ReadDir(offset, rest);
  ASSERT_TRUE(m.has_value());
  std::span<const std::byte> more(rest.data(), *m);
  std::vector<std::string> after;
  while (!more.empty()) after.emplace_back(wire::DecodeDirent(more)->name);
  EXPECT_THAT(after, ElementsAre("f3", "f4", "f6", "f7", "f8", "f9", "new"));
}

TEST_F(RamFsTest, ReadDirErrors) {
  MakeFile("f");
  std::byte buf[512];
  auto file = Walk("f");
  ASSERT_TRUE(file->Open(O_RDONLY).has_value());
  EXPECT_EQ(Code(file->ReadDir(0, buf)), std::errc::not_a_directory);
  EXPECT_EQ(Code(root_->ReadDir(0, buf)), std::errc::bad_file_descriptor);  // not open
  auto dir = root_->Clone();
  ASSERT_TRUE((*dir)->Open(O_RDONLY).has_value());
  EXPECT_EQ(Code((*dir)->ReadDir(0, std::span(buf, 10))), std::errc::invalid_argument);
}

// --- statfs, fsync, size limit ----------------------------------------------------------------

TEST_F(RamFsTest, StatFsReportsTheSizeLimitAndUse) {
  Attach({.max_bytes = 1 << 20});
  auto before = *root_->StatFs();
  EXPECT_EQ(before.bsize, 4096u);
  EXPECT_EQ(before.blocks, 256u);
  EXPECT_EQ(before.bfree, 256u);
  EXPECT_EQ(before.namelen, 255u);
  MakeFile("f", std::string(10000, 'x'));
  EXPECT_EQ(root_->StatFs()->bfree, 253u);
  EXPECT_TRUE(root_->Fsync(false).has_value());
}

TEST_F(RamFsTest, WritingPastTheSizeLimitIsENOSPCAfterAShortWrite) {
  Attach({.max_bytes = 2 * kRamFsPageSize});
  auto file = MakeFile("f");
  std::string big(3 * kRamFsPageSize, 'x');
  auto n = file->Write(0, Bytes(big));
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, 2 * kRamFsPageSize);
  EXPECT_EQ(Code(file->Write(*n, Bytes("y"))), std::errc::no_space_on_device);
  // Freeing space (unlink of the last name and last node) makes room again.
  ASSERT_TRUE(root_->UnlinkAt("f", 0).has_value());
  file.reset();
  auto again = MakeFile("g");
  EXPECT_EQ(*again->Write(0, Bytes(big)), 2 * kRamFsPageSize);
}

// Pages handed to a client keep their memory when the file moves on (a rewrite copies
// them), so they keep counting against the size limit until the last of them goes: no
// client can make a ramfs hold more than its limit by reading and rewriting.
TEST_F(RamFsTest, SharedPagesStayChargedUntilTheyAreGone) {
  Attach({.max_bytes = 8 << 20});
  const uint64_t blocks = root_->StatFs()->blocks;
  auto used = [&] { return (blocks - root_->StatFs()->bfree) * kRamFsPageSize; };
  auto file = MakeFile("f", Pattern(2 << 20, 5));
  EXPECT_EQ(used(), 2u << 20);
  std::vector<buf::SharedBytes> given;
  for (int round = 1; round <= 3; ++round) {
    std::optional<buf::SharedBytes> shared = file->Share(0, 2 << 20);
    ASSERT_TRUE(shared) << round;
    given.push_back(std::move(*shared));
    auto n = file->Write(0, Bytes(std::string(2 << 20, static_cast<char>('a' + round))));
    ASSERT_TRUE(n && *n == (2u << 20)) << round;
    EXPECT_EQ(used(), (2u + 2 * round) << 20) << round;
  }
  ASSERT_TRUE(file->Share(0, 2 << 20));  // the limit reached: the next rewrite has no room
  EXPECT_EQ(Code(file->Write(0, Bytes(std::string(2 << 20, 'z')))), std::errc::no_space_on_device);
  // Truncating into the middle of a page a client holds needs a copy of it: no room, so
  // ENOSPC, and nothing else the request asked for is done either.
  const uint32_t perm = Attr(*file).mode & 07777;
  EXPECT_EQ(Code(file->SetAttr(wire::Tsetattr{.valid = 0x1 | 0x8, .mode = 0600, .size = 100})),
            std::errc::no_space_on_device);
  EXPECT_EQ(Attr(*file).size, 2u << 20);
  EXPECT_EQ(Attr(*file).mode & 07777, perm);
  ASSERT_TRUE(file->SetAttr(wire::Tsetattr{.valid = 0x8, .size = 1 << 20}).has_value())
      << "at a page boundary nothing needs copying";
  for (size_t i = 0; i < given.size(); ++i) {  // and what was given never changed
    EXPECT_EQ(View(given[i].bytes),
              i == 0 ? Pattern(2 << 20, 5) : std::string(2 << 20, static_cast<char>('a' + i)));
  }
  // Gone from the file system and from every holder: every byte is free again.
  ASSERT_TRUE(root_->UnlinkAt("f", 0).has_value());
  file.reset();
  EXPECT_GT(used(), 0u) << "the pages given out are still held";
  given.clear();
  EXPECT_EQ(used(), 0u);
}

TEST_F(RamFsTest, MakeRamFsRejectsTypeBitsInRootMode) {
  auto fs = MakeRamFs({.root_mode = S_IFDIR | 0755});
  ASSERT_FALSE(fs.has_value());
  EXPECT_EQ(fs.error().code(), std::errc::invalid_argument);
}

// --- locks -----------------------------------------------------------------------------------

wire::Tlock LockReq(uint8_t type, uint64_t start, uint64_t length, uint32_t proc,
                    std::string_view client) {
  return {.type = type, .start = start, .length = length, .proc_id = proc, .client_id = client};
}
wire::Tgetlock GetLockReq(uint8_t type, uint64_t start, uint64_t length, uint32_t proc,
                          std::string_view client) {
  return {.type = type, .start = start, .length = length, .proc_id = proc, .client_id = client};
}

TEST_F(RamFsTest, WriteLockConflictsWithOtherOwnersOnly) {
  auto file = MakeFile("f");
  EXPECT_EQ(*file->Lock(LockReq(1, 0, 100, 1, "host-a")), kLockSuccess);
  EXPECT_EQ(*file->Lock(LockReq(1, 50, 10, 1, "host-a")), kLockSuccess);  // same owner
  EXPECT_EQ(*file->Lock(LockReq(0, 99, 1, 2, "host-a")), kLockBlocked);   // other proc
  EXPECT_EQ(*file->Lock(LockReq(1, 0, 1, 1, "host-b")), kLockBlocked);    // other client
  EXPECT_EQ(*file->Lock(LockReq(1, 100, 0, 2, "host-a")), kLockSuccess);  // [100, EOF)
}

TEST_F(RamFsTest, ReadLocksShareAndBlockWriters) {
  auto file = MakeFile("f");
  EXPECT_EQ(*file->Lock(LockReq(0, 0, 10, 1, "c")), kLockSuccess);
  EXPECT_EQ(*file->Lock(LockReq(0, 5, 10, 2, "c")), kLockSuccess);
  EXPECT_EQ(*file->Lock(LockReq(1, 12, 1, 3, "c")), kLockBlocked);
  EXPECT_EQ(*file->Lock(LockReq(2, 0, 0, 2, "c")), kLockSuccess);  // unlock all of proc 2
  EXPECT_EQ(*file->Lock(LockReq(1, 12, 1, 3, "c")), kLockSuccess);
}

TEST_F(RamFsTest, UnlockingTheMiddleSplitsALock) {
  auto file = MakeFile("f");
  EXPECT_EQ(*file->Lock(LockReq(1, 0, 30, 1, "c")), kLockSuccess);
  EXPECT_EQ(*file->Lock(LockReq(2, 10, 10, 1, "c")), kLockSuccess);
  EXPECT_EQ(*file->Lock(LockReq(1, 10, 10, 2, "c")), kLockSuccess);
  EXPECT_EQ(*file->Lock(LockReq(1, 9, 1, 2, "c")), kLockBlocked);
  EXPECT_EQ(*file->Lock(LockReq(1, 20, 1, 2, "c")), kLockBlocked);
}

TEST_F(RamFsTest, GetLockReportsTheConflictingHolderOrUnlocked) {
  auto file = MakeFile("f");
  ASSERT_EQ(*file->Lock(LockReq(1, 10, 20, 42, "holder")), kLockSuccess);
  LockInfo info = *file->GetLock(GetLockReq(0, 0, 0, 7, "asker"));
  EXPECT_EQ(info.type, 1);
  EXPECT_EQ(info.start, 10u);
  EXPECT_EQ(info.length, 20u);
  EXPECT_EQ(info.proc_id, 42u);
  EXPECT_EQ(info.client_id, "holder");
  LockInfo free_range = *file->GetLock(GetLockReq(1, 30, 5, 7, "asker"));
  EXPECT_EQ(free_range.type, 2);
  EXPECT_EQ(free_range.start, 30u);
  EXPECT_EQ(free_range.length, 5u);
  LockInfo own = *file->GetLock(GetLockReq(1, 0, 0, 42, "holder"));
  EXPECT_EQ(own.type, 2);  // an owner never conflicts with itself
  EXPECT_EQ(Code(file->GetLock(GetLockReq(2, 0, 0, 1, "x"))), std::errc::invalid_argument);
  EXPECT_EQ(Code(file->Lock(LockReq(3, 0, 0, 1, "x"))), std::errc::invalid_argument);
  EXPECT_EQ(Code(file->Lock(LockReq(1, UINT64_MAX, 2, 1, "x"))), std::errc::invalid_argument);
}

TEST_F(RamFsTest, DestroyingTheNodeReleasesItsOwnersLocks) {
  MakeFile("f");
  auto holder = Walk("f");
  auto other = Walk("f");
  ASSERT_EQ(*holder->Lock(LockReq(1, 0, 0, 1, "c")), kLockSuccess);
  EXPECT_EQ(*other->Lock(LockReq(1, 0, 0, 2, "c")), kLockBlocked);
  holder.reset();  // clunk
  EXPECT_EQ(*other->Lock(LockReq(1, 0, 0, 2, "c")), kLockSuccess);
}

// --- xattrs ----------------------------------------------------------------------------------

TEST_F(RamFsTest, XattrsSetGetListRemove) {
  auto file = MakeFile("f");
  ASSERT_TRUE(file->SetXattr("user.a", "1", 0).has_value());
  ASSERT_TRUE(file->SetXattr("user.b", std::string("\0bin", 4), 0).has_value());
  EXPECT_EQ(*file->GetXattr("user.a"), "1");
  EXPECT_EQ(*file->GetXattr("user.b"), std::string("\0bin", 4));
  EXPECT_EQ(*file->GetXattr(""), std::string("user.a\0user.b\0", 14));
  ASSERT_TRUE(file->SetXattr("user.a", "2", 0).has_value());
  EXPECT_EQ(*file->GetXattr("user.a"), "2");
  ASSERT_TRUE(file->RemoveXattr("user.a").has_value());
  EXPECT_EQ(Code(file->GetXattr("user.a")), std::errc::no_message_available);
  EXPECT_EQ(Code(file->RemoveXattr("user.a")), std::errc::no_message_available);
}

TEST_F(RamFsTest, XattrCreateAndReplaceFlags) {
  auto file = MakeFile("f");
  ASSERT_TRUE(file->SetXattr("user.x", "1", 1).has_value());  // XATTR_CREATE
  EXPECT_EQ(Code(file->SetXattr("user.x", "2", 1)), std::errc::file_exists);
  ASSERT_TRUE(file->SetXattr("user.x", "3", 2).has_value());  // XATTR_REPLACE
  EXPECT_EQ(*file->GetXattr("user.x"), "3");
  EXPECT_EQ(Code(file->SetXattr("user.y", "1", 2)), std::errc::no_message_available);
  EXPECT_EQ(Code(file->SetXattr("user.y", "1", 4)), std::errc::invalid_argument);
  EXPECT_EQ(Code(file->SetXattr("", "1", 0)), std::errc::result_out_of_range);
}

// --- concurrency -------------------------------------------------------------------------------

TEST_F(RamFsTest, ConcurrentReadsAndWritesOnOneNodeSeeWholeWrites) {
  // Each writer owns a 16 KiB region and rewrites it whole with one byte value per round;
  // readers check that every region they see is uniform (a write is atomic to readers).
  constexpr int kWriters = 4, kReaders = 4, kRounds = 300;
  constexpr size_t kRegion = 16384;
  auto file = MakeFile("shared");
  ASSERT_EQ(*file->Write(0, Bytes(std::string(kWriters * kRegion, 'A'))), kWriters * kRegion);
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (int round = 0; round < kRounds; ++round) {
        std::string block(kRegion, static_cast<char>('A' + round % 26));
        if (*file->Write(w * kRegion, Bytes(block)) != kRegion) ++bad;
      }
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&, r] {
      std::vector<std::byte> buf(kRegion);
      for (int i = 0; !stop.load(); ++i) {
        size_t region = (r + i) % kWriters;
        if (*file->Read(region * kRegion, buf) != kRegion) ++bad;
        if (std::count(buf.begin(), buf.end(), buf[0]) != static_cast<long>(kRegion)) ++bad;
        auto attr = file->GetAttr(0x3fff);
        if (!attr || attr->size != kWriters * kRegion) ++bad;
      }
    });
  }
  for (int w = 0; w < kWriters; ++w) threads[w].join();
  stop = true;
  for (size_t i = kWriters; i < threads.size(); ++i) threads[i].join();
  EXPECT_EQ(bad.load(), 0);
  std::string final_text = ReadAll(*file, 65536);
  char last = static_cast<char>('A' + (kRounds - 1) % 26);
  EXPECT_EQ(final_text, std::string(kWriters * kRegion, last));
}

TEST_F(RamFsTest, ConcurrentCreatesAndUnlinksInOneDirectoryKeepItConsistent) {
  constexpr int kThreads = 4, kFiles = 200;
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto dir = *root_->Clone();
      for (int i = 0; i < kFiles; ++i) {
        std::string name = "t" + std::to_string(t) + "-" + std::to_string(i);
        if (!dir->Create(name, O_RDWR | O_EXCL, 0644, 0)) ++bad;
        if (i % 2 == 0 && !dir->UnlinkAt(name, 0)) ++bad;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(List(*root_).size(), 2u + kThreads * kFiles / 2);
}

}  // namespace
}  // namespace ninefold::fs
