// Synthetic files: a file defined in a few lines is served with working read, write,
// getattr, walk and readdir.
#include "ninefold/fs/synthetic.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "fs_test_util.h"
#include "ninefold/wire/codec.h"

namespace ninefold::fs {
namespace {

using ::testing::ElementsAre;

using testing::Bytes;
using testing::Code;

class SyntheticTest : public ::testing::Test {
 protected:
  std::unique_ptr<Node> Root() {
    if (!server_) server_ = MakeSyntheticServer(dir_);
    return *server_->Attach({}, "");
  }
  std::unique_ptr<Node> Open(std::string_view name, uint32_t flags) {
    auto node = Root()->Walk(name);
    EXPECT_TRUE(node.has_value());
    if (!node) return nullptr;
    auto opened = (*node)->Open(flags);
    EXPECT_TRUE(opened.has_value());
    return std::move(*node);
  }
  static std::string ReadAll(Node& node, size_t chunk = 3) {
    std::string out;
    std::vector<std::byte> buf(chunk);
    for (;;) {
      auto n = node.Read(out.size(), buf);
      EXPECT_TRUE(n.has_value());
      if (!n || *n == 0) return out;
      out.append(reinterpret_cast<const char*>(buf.data()), *n);
    }
  }
  static std::vector<std::string> Names(Node& dir) {
    auto open = *dir.Clone();
    EXPECT_TRUE(open->Open(O_RDONLY).has_value());
    std::vector<std::string> names;
    std::vector<std::byte> buf(64);  // a few entries per reply: exercises resumption
    uint64_t offset = 0;
    for (;;) {
      auto n = open->ReadDir(offset, buf);
      EXPECT_TRUE(n.has_value());
      if (!n || *n == 0) return names;
      std::span<const std::byte> data(buf.data(), *n);
      while (!data.empty()) {
        auto e = wire::DecodeDirent(data);
        names.emplace_back(e->name);
        offset = e->offset;
      }
    }
  }

  std::shared_ptr<SyntheticDir> dir_ = SyntheticDir::Make();
  std::unique_ptr<FileServer> server_;
};

TEST_F(SyntheticTest, FileDefinedInThreeLinesReadsWritesStatsAndLists) {
  dir_->AddFile("null", {.read = [](uint64_t, std::span<std::byte>) -> Result<size_t> { return 0; },
                         .write = [](uint64_t, std::span<const std::byte> d) -> Result<size_t> {
                           return d.size();
                         }});
  auto node = Open("null", O_RDWR);
  EXPECT_EQ(*node->Write(0, Bytes("discard me")), 10u);
  std::byte buf[16];
  EXPECT_EQ(*node->Read(0, buf), 0u);
  auto attr = *node->GetAttr(0x7ff);
  EXPECT_EQ(attr.mode, S_IFREG | 0666u);
  EXPECT_EQ(attr.size, 0u);
  EXPECT_THAT(Names(*Root()), ElementsAre(".", "..", "null"));
}

TEST_F(SyntheticTest, ReadOnlyFileInOneLineServesItsText) {
  dir_->AddFile("version", ReadOnly([] { return std::string("ninefold 0.1.0\n"); }));
  auto node = Open("version", O_RDONLY);
  EXPECT_EQ(ReadAll(*node), "ninefold 0.1.0\n");
  auto attr = *node->GetAttr(0x7ff);
  EXPECT_EQ(attr.mode, S_IFREG | 0444u);
  EXPECT_EQ(attr.size, 15u);
  EXPECT_EQ(attr.nlink, 1u);
  EXPECT_EQ(node->qid().type, wire::kQtFile);
}

TEST_F(SyntheticTest, WriteCallbackFileInThreeLinesReceivesEveryWrite) {
  std::string sink;
  dir_->AddFile("sink",
                {.write = [&](uint64_t offset, std::span<const std::byte> d) -> Result<size_t> {
                  sink += std::to_string(offset) + ":" +
                          std::string(reinterpret_cast<const char*>(d.data()), d.size());
                  return d.size();
                }});
  auto node = Open("sink", O_WRONLY);
  EXPECT_EQ(*node->Write(0, Bytes("ab")), 2u);
  EXPECT_EQ(*node->Write(2, Bytes("cd")), 2u);
  EXPECT_EQ(sink, "0:ab2:cd");
  EXPECT_EQ(node->GetAttr(0x7ff)->mode, S_IFREG | 0222u);
  EXPECT_EQ(node->GetAttr(0x7ff)->size, 0u);
}

TEST_F(SyntheticTest, ReadCallbackGetsTheRequestOffset) {
  dir_->AddFile("counter",
                {.read = [](uint64_t offset, std::span<std::byte> out) -> Result<size_t> {
                  if (offset >= 10) return size_t{0};
                  out[0] = static_cast<std::byte>('0' + offset);
                  return size_t{1};
                }});
  EXPECT_EQ(ReadAll(*Open("counter", O_RDONLY)), "0123456789");
}

TEST_F(SyntheticTest, ModeFollowsTheCallbacks) {
  auto read = [](uint64_t, std::span<std::byte>) -> Result<size_t> { return size_t{0}; };
  auto write = [](uint64_t, std::span<const std::byte> d) -> Result<size_t> { return d.size(); };
  dir_->AddFile("rw", {.read = read, .write = write});
  dir_->AddFile("ro", {.read = read});
  dir_->AddFile("wo", {.write = write});
  auto root = Root();
  EXPECT_EQ((*root->Walk("rw"))->GetAttr(0x7ff)->mode, S_IFREG | 0666u);
  EXPECT_EQ((*root->Walk("ro"))->GetAttr(0x7ff)->mode, S_IFREG | 0444u);
  EXPECT_EQ((*root->Walk("wo"))->GetAttr(0x7ff)->mode, S_IFREG | 0222u);
  EXPECT_EQ(root->GetAttr(0x7ff)->mode, S_IFDIR | 0555u);
}

TEST_F(SyntheticTest, OpeningAgainstTheCallbacksIsEACCES) {
  dir_->AddFile("ro", ReadOnly([] { return std::string("x"); }));
  dir_->AddFile("wo", WriteOnly([](std::string_view) -> Result<void> { return {}; }));
  auto root = Root();
  EXPECT_EQ(Code((*root->Walk("ro"))->Open(O_WRONLY)), std::errc::permission_denied);
  EXPECT_EQ(Code((*root->Walk("ro"))->Open(O_RDWR)), std::errc::permission_denied);
  EXPECT_EQ(Code((*root->Walk("wo"))->Open(O_RDONLY)), std::errc::permission_denied);
  EXPECT_EQ(Code((*root->Walk("ro"))->Open(O_RDONLY | O_DIRECTORY)), std::errc::not_a_directory);
  EXPECT_EQ(Code(root->Open(O_WRONLY)), std::errc::is_a_directory);
}

TEST_F(SyntheticTest, ReadAndWriteNeedAnOpenNodeElseEBADF) {
  dir_->AddFile("f", ReadWrite([] { return std::string("x"); },
                               [](std::string_view) -> Result<void> { return {}; }));
  std::byte buf[4];
  auto closed = *Root()->Walk("f");
  EXPECT_EQ(Code(closed->Read(0, buf)), std::errc::bad_file_descriptor);
  EXPECT_EQ(Code(closed->Write(0, Bytes("x"))), std::errc::bad_file_descriptor);
  auto reader = Open("f", O_RDONLY);
  EXPECT_EQ(Code(reader->Write(0, Bytes("x"))), std::errc::bad_file_descriptor);
}

TEST_F(SyntheticTest, ContentsAreTakenOncePerOpen) {
  int calls = 0;
  dir_->AddFile("gen", ReadOnly([&] { return "generation " + std::to_string(++calls) + "\n"; }));
  auto first = Open("gen", O_RDONLY);
  EXPECT_EQ(ReadAll(*first, 2), "generation 1\n");  // many reads, one snapshot
  EXPECT_EQ(ReadAll(*first, 2), "generation 1\n");
  EXPECT_EQ(first->GetAttr(0x7ff)->size, 13u);
  auto second = Open("gen", O_RDONLY);
  EXPECT_EQ(ReadAll(*second), "generation 2\n");
}

TEST_F(SyntheticTest, WriteOnlyCommandSeesEachWriteAndItsErrors) {
  std::vector<std::string> commands;
  dir_->AddFile("ctl", WriteOnly([&](std::string_view cmd) -> Result<void> {
                  if (cmd == "bad") return Errno(EINVAL, "bad command");
                  commands.emplace_back(cmd);
                  return {};
                }));
  auto node = Open("ctl", O_WRONLY);
  EXPECT_EQ(*node->Write(0, Bytes("start")), 5u);
  EXPECT_EQ(Code(node->Write(0, Bytes("bad"))), std::errc::invalid_argument);
  EXPECT_THAT(commands, ElementsAre("start"));
}

TEST_F(SyntheticTest, ContentsErrorIsTheReadError) {
  dir_->AddFile("broken", ReadOnly([]() -> Result<std::string> { return Errno(EIO, "x"); }));
  std::byte buf[4];
  EXPECT_EQ(Code(Open("broken", O_RDONLY)->Read(0, buf)), std::errc::io_error);
}

TEST_F(SyntheticTest, DirectoriesNestAndWalkBack) {
  auto sub = dir_->AddDir("sub");
  sub->AddFile("leaf", ReadOnly([] { return std::string("leaf\n"); }));
  EXPECT_EQ(dir_->AddDir("sub"), sub);  // AddDir of an existing directory returns it
  auto root = Root();
  auto leaf = *(*root->Walk("sub"))->Walk("leaf");
  ASSERT_TRUE(leaf->Open(O_RDONLY).has_value());
  EXPECT_EQ(ReadAll(*leaf), "leaf\n");
  auto back = *(*root->Walk("sub"))->Walk("..");
  EXPECT_EQ(back->qid(), root->qid());
  EXPECT_EQ((*root->Walk(".."))->qid(), root->qid());  // ".." at the root is the root
  EXPECT_EQ((*root->Walk("sub"))->qid().type, wire::kQtDir);
  EXPECT_EQ(Code(root->Walk("missing")), std::errc::no_such_file_or_directory);
  EXPECT_EQ(Code(leaf->Walk("x")), std::errc::not_a_directory);
}

TEST_F(SyntheticTest, QidPathsAreUnique) {
  std::set<uint64_t> paths;
  for (int i = 0; i < 20; ++i)
    dir_->AddFile("f" + std::to_string(i), ReadOnly([] { return std::string(); }));
  dir_->AddDir("d");
  auto root = Root();
  paths.insert(root->qid().path);
  for (int i = 0; i < 20; ++i) paths.insert((*root->Walk("f" + std::to_string(i)))->qid().path);
  paths.insert((*root->Walk("d"))->qid().path);
  EXPECT_EQ(paths.size(), 22u);
}

TEST_F(SyntheticTest, ReadDirListsDotsThenEntriesInOrderAdded) {
  for (std::string name : {"zeta", "alpha", "mid"}) {
    dir_->AddFile(name, ReadOnly([] { return std::string(); }));
  }
  dir_->AddDir("dir");
  EXPECT_THAT(Names(*Root()), ElementsAre(".", "..", "zeta", "alpha", "mid", "dir"));
  ASSERT_TRUE(dir_->Remove("alpha"));
  EXPECT_FALSE(dir_->Remove("alpha"));
  EXPECT_THAT(Names(*Root()), ElementsAre(".", "..", "zeta", "mid", "dir"));
}

TEST_F(SyntheticTest, SetAttrIsAcceptedOnWritableFilesOnly) {
  dir_->AddFile("w", WriteOnly([](std::string_view) -> Result<void> { return {}; }));
  dir_->AddFile("r", ReadOnly([] { return std::string(); }));
  auto root = Root();
  wire::Tsetattr truncate{.valid = 0x8, .size = 0};
  EXPECT_TRUE((*root->Walk("w"))->SetAttr(truncate).has_value());
  EXPECT_EQ(Code((*root->Walk("r"))->SetAttr(truncate)), std::errc::operation_not_permitted);
  EXPECT_EQ(Code(root->Mkdir("x", 0755, 0)), std::errc::operation_not_supported);
}

TEST_F(SyntheticTest, ConcurrentReadsOfOneNodeShareOneSnapshot) {
  std::atomic<int> calls{0};
  dir_->AddFile("big", ReadOnly([&] {
                  ++calls;
                  return std::string(100000, 'q');
                }));
  auto node = Open("big", O_RDONLY);
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::byte> buf(1000);
      for (uint64_t off = t * 1000; off < 100000; off += 4000) {
        auto n = node->Read(off, buf);
        if (!n || *n != 1000 || std::count(buf.begin(), buf.end(), std::byte{'q'}) != 1000) ++bad;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(calls.load(), 1);
}

}  // namespace
}  // namespace ninefold::fs
