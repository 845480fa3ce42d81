// The read-only wrapper: every modifying operation fails with EROFS, on the attach root
// and on nodes reached by Walk and Clone; reads pass through.
#include "ninefold/fs/readonly.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include "fs_test_util.h"
#include "ninefold/fs/ramfs.h"
#include "ninefold/wire/codec.h"

namespace ninefold::fs {
namespace {

using testing::Bytes;
using testing::Code;

const std::error_code kRofs = std::make_error_code(std::errc::read_only_file_system);

class ReadOnlyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A tree made writable first, then served through the wrapper.
    auto ram = *MakeRamFs();
    auto root = *ram->Attach({}, "");
    auto file = *root->Create("file", O_RDWR, 0644, 0);
    ASSERT_EQ(*file->Write(0, Bytes("contents")), 8u);
    ASSERT_TRUE(file->SetXattr("user.k", "v", 0).has_value());
    ASSERT_EQ(*file->Lock({.type = 1, .start = 0, .length = 1, .proc_id = 9, .client_id = "w"}),
              kLockSuccess);
    held_ = std::move(file);  // keeps the lock for GetLock below
    ASSERT_TRUE(root->Mkdir("dir", 0755, 0).has_value());
    ASSERT_TRUE(root->Symlink("link", "file", 0).has_value());
    fs_ = MakeReadOnly(std::move(ram));
    root_ = *fs_->Attach({}, "");
  }

  std::unique_ptr<Node> Walk(std::string_view name) { return *root_->Walk(name); }

  std::unique_ptr<Node> held_;
  std::unique_ptr<FileServer> fs_;
  std::unique_ptr<Node> root_;
};

TEST_F(ReadOnlyTest, EveryModifyingOperationIsEROFS) {
  auto file = Walk("file");
  auto dir = Walk("dir");
  EXPECT_EQ(Code(file->SetAttr({.valid = 0x1, .mode = 0600})), kRofs);
  EXPECT_EQ(Code(file->SetAttr({.valid = 0})), kRofs);
  EXPECT_EQ(Code(root_->Create("new", O_RDWR | O_CREAT, 0644, 0)), kRofs);
  EXPECT_EQ(Code(file->Write(0, Bytes("x"))), kRofs);
  EXPECT_EQ(Code(root_->Mkdir("d2", 0755, 0)), kRofs);
  EXPECT_EQ(Code(root_->Symlink("l2", "file", 0)), kRofs);
  EXPECT_EQ(Code(root_->Mknod("fifo", S_IFIFO | 0644, 0, 0, 0)), kRofs);
  EXPECT_EQ(Code(root_->Link("hard", *file)), kRofs);
  EXPECT_EQ(Code(root_->RenameAt("file", *dir, "moved")), kRofs);
  EXPECT_EQ(Code(root_->UnlinkAt("file", 0)), kRofs);
  EXPECT_EQ(Code(root_->UnlinkAt("dir", 0x200)), kRofs);
  EXPECT_EQ(Code(file->Rename(*dir, "moved")), kRofs);
  EXPECT_EQ(Code(file->Remove()), kRofs);
  EXPECT_EQ(Code(file->SetXattr("user.k", "new", 0)), kRofs);
  EXPECT_EQ(Code(file->RemoveXattr("user.k")), kRofs);
}

TEST_F(ReadOnlyTest, OpenForWritingInAnyWayIsEROFS) {
  for (uint32_t flags : {O_WRONLY, O_RDWR, O_RDONLY | O_TRUNC, O_RDONLY | O_APPEND}) {
    EXPECT_EQ(Code(Walk("file")->Open(flags)), kRofs) << flags;
  }
  EXPECT_EQ(Code(root_->Open(O_RDWR)), kRofs);
}

TEST_F(ReadOnlyTest, NothingWasModifiedByTheRefusedCalls) {
  auto file = Walk("file");
  (void)file->Write(0, Bytes("xxxxxxxx"));
  (void)root_->UnlinkAt("file", 0);
  (void)file->Open(O_WRONLY | O_TRUNC);
  ASSERT_TRUE(file->Open(O_RDONLY).has_value());
  std::vector<std::byte> buf(64);
  auto n = file->Read(0, buf);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(std::string(reinterpret_cast<char*>(buf.data()), *n), "contents");
}

TEST_F(ReadOnlyTest, ReadsPassThrough) {
  auto file = Walk("file");
  EXPECT_EQ(file->GetAttr(0x7ff)->size, 8u);
  EXPECT_EQ(*file->GetXattr("user.k"), "v");
  EXPECT_EQ(*Walk("link")->ReadLink(), "file");
  EXPECT_EQ(root_->StatFs()->bsize, 4096u);
  EXPECT_TRUE(file->Fsync(false).has_value());
  LockInfo held =
      *file->GetLock({.type = 1, .start = 0, .length = 0, .proc_id = 1, .client_id = "r"});
  EXPECT_EQ(held.proc_id, 9u);
  EXPECT_EQ(Code(root_->Walk("missing")), std::errc::no_such_file_or_directory);

  auto dir = *root_->Clone();
  ASSERT_TRUE(dir->Open(O_RDONLY | O_DIRECTORY).has_value());
  std::vector<std::byte> buf(4096);
  auto n = dir->ReadDir(0, buf);
  ASSERT_TRUE(n.has_value());
  std::span<const std::byte> data(buf.data(), *n);
  int entries = 0;
  while (!data.empty() && wire::DecodeDirent(data)) ++entries;
  EXPECT_EQ(entries, 5);  // . .. file dir link
}

TEST_F(ReadOnlyTest, WalkAndCloneKeepTheWrapper) {
  auto through_walk = *(*root_->Walk("dir"))->Walk("..");
  EXPECT_EQ(Code(through_walk->Mkdir("x", 0755, 0)), kRofs);
  auto clone = *Walk("file")->Clone();
  EXPECT_EQ(Code(clone->Open(O_WRONLY)), kRofs);
  EXPECT_EQ(Walk("dir")->qid().type, wire::kQtDir);
}

}  // namespace
}  // namespace ninefold::fs
