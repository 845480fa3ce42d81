// The ctl tree: the files diod's tools (diodcat, dioddate, diodload) read and write.
#include "ninefold/fs/ctl.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

#include "ninefold/wire/codec.h"

namespace ninefold::fs {
namespace {

using ::testing::ElementsAre;
using ::testing::MatchesRegex;

class CtlTest : public ::testing::Test {
 protected:
  std::unique_ptr<Node> Open(std::string_view name, uint32_t flags) {
    auto node = root_->Walk(name);
    EXPECT_TRUE(node.has_value()) << name;
    if (!node) return nullptr;
    EXPECT_TRUE((*node)->Open(flags).has_value()) << name;
    return std::move(*node);
  }
  std::string ReadAll(std::string_view name) {
    auto node = Open(name, O_RDONLY);
    std::string out;
    std::vector<std::byte> buf(8192);
    for (;;) {
      auto n = node->Read(out.size(), buf);
      EXPECT_TRUE(n.has_value());
      if (!n || *n == 0) return out;
      out.append(reinterpret_cast<const char*>(buf.data()), *n);
    }
  }

  std::unique_ptr<FileServer> server_ = MakeCtlServer();
  std::unique_ptr<Node> root_ = *server_->Attach({.uname = "root", .uid = 0}, "ctl");
};

TEST_F(CtlTest, ZeroReturnsSixtyFourKiBOfZerosAtAnyOffset) {
  auto zero = Open("zero", O_RDONLY);
  std::vector<std::byte> buf(64 * 1024, std::byte{0xff});
  auto n = zero->Read(0, buf);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, buf.size());
  EXPECT_EQ(std::count(buf.begin(), buf.end(), std::byte{0}), 64 * 1024);
  std::fill(buf.begin(), buf.end(), std::byte{0xff});
  EXPECT_EQ(*zero->Read(1ull << 40, buf), buf.size());
  EXPECT_EQ(std::count(buf.begin(), buf.end(), std::byte{0}), 64 * 1024);
}

TEST_F(CtlTest, NullSwallowsOneMiBAndReadsAsEndOfFile) {
  auto null = Open("null", O_RDWR);
  std::vector<std::byte> mib(1 << 20, std::byte{'x'});
  auto n = null->Write(0, mib);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, mib.size());
  std::byte buf[64];
  EXPECT_EQ(*null->Read(0, buf), 0u);
}

TEST_F(CtlTest, NullAcceptsGetattrAndTruncatingSetattrAsDiodloadAndShellsDo) {
  auto null = *root_->Walk("null");
  auto attr = null->GetAttr(0x7ff);
  ASSERT_TRUE(attr.has_value());
  EXPECT_EQ(attr->mode, S_IFREG | 0666u);
  EXPECT_EQ(attr->size, 0u);
  wire::Tsetattr truncate{.valid = 0x8, .size = 0};
  EXPECT_TRUE(null->SetAttr(truncate).has_value());
  EXPECT_TRUE(Open("null", O_WRONLY | O_TRUNC) != nullptr);
}

TEST_F(CtlTest, VersionIsTheNinefoldVersionLine) {
  EXPECT_EQ(ReadAll("version"), "ninefold 0.1.0\n");
  EXPECT_EQ((*root_->Walk("version"))->GetAttr(0x7ff)->mode, S_IFREG | 0444u);
}

TEST_F(CtlTest, DateIsTheCurrentTimeInTheFormatDioddateScans) {
  std::string date = ReadAll("date");
  EXPECT_THAT(date, MatchesRegex("[0-9]+\\.[0-9]+ -?[0-9]+\\.-?[0-9]+\n"));
  // dioddate: sscanf(buf, "%lu.%lu %d.%d", &tv_sec, &tv_usec, &minuteswest, &dsttime) == 4.
  unsigned long sec = 0, usec = 0;
  int minuteswest = 0, dsttime = 0;
  ASSERT_EQ(std::sscanf(date.c_str(), "%lu.%lu %d.%d", &sec, &usec, &minuteswest, &dsttime), 4);
  EXPECT_LT(usec, 1000000u);
  long now = static_cast<long>(std::time(nullptr));
  EXPECT_LE(std::labs(static_cast<long>(sec) - now), 2);
}

TEST_F(CtlTest, WritingReadOnlyFilesIsEACCES) {
  for (std::string_view name : {"version", "date", "zero"}) {
    auto node = *root_->Walk(name);
    auto opened = node->Open(O_WRONLY);
    ASSERT_FALSE(opened.has_value()) << name;
    EXPECT_EQ(opened.error().code(), std::errc::permission_denied) << name;
  }
}

TEST_F(CtlTest, SlowVariantsTakeAtLeastOneHundredMilliseconds) {
  auto zero100 = Open("zero100", O_RDONLY);
  std::byte buf[16];
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(*zero100->Read(0, buf), 16u);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(100));
}

TEST_F(CtlTest, ListsTheFilesDiodsToolsUse) {
  auto dir = *root_->Clone();
  ASSERT_TRUE(dir->Open(O_RDONLY).has_value());
  std::vector<std::byte> buf(4096);
  auto n = dir->ReadDir(0, buf);
  ASSERT_TRUE(n.has_value());
  std::span<const std::byte> data(buf.data(), *n);
  std::vector<std::string> names;
  uint64_t last = 0;
  while (!data.empty()) {
    auto e = *wire::DecodeDirent(data);
    names.emplace_back(e.name);
    last = e.offset;
  }
  EXPECT_THAT(names, ElementsAre(".", "..", "version", "date", "zero", "zero100", "null", "null100",
                                 "meminfo"));
  EXPECT_EQ(*dir->ReadDir(last, buf), 0u);  // resuming after the last entry: the end
}

TEST_F(CtlTest, MeminfoIsTheHostsMeminfo) {
  EXPECT_THAT(ReadAll("meminfo"), ::testing::StartsWith("MemTotal:"));
}

}  // namespace
}  // namespace ninefold::fs
