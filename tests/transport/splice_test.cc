// PipePool and FillPipe (transport/splice.h): the pool's limit, reuse of emptied pipes,
// closing of pipes given back with bytes still in them, and fills at every position of
// a file.
#include "ninefold/transport/splice.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace ninefold::transport {
namespace {

// A temporary file of `size` bytes, byte i = i % 251.
class TempFile {
 public:
  explicit TempFile(size_t size) {
    char name[] = "/tmp/splice-test-XXXXXX";
    fd_ = ::mkstemp(name);
    EXPECT_GE(fd_, 0);
    ::unlink(name);
    for (size_t i = 0; i < size; ++i) bytes_.push_back(static_cast<char>(i % 251));
    EXPECT_EQ(::pwrite(fd_, bytes_.data(), size, 0), static_cast<ssize_t>(size));
  }
  ~TempFile() { ::close(fd_); }
  int fd() const { return fd_; }
  const std::string& bytes() const { return bytes_; }

 private:
  int fd_ = -1;
  std::string bytes_;
};

// Everything the pipe holds (it is non-blocking).
std::string Drain(SplicePipe& pipe) {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(pipe.read_fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    pipe.pending -= static_cast<size_t>(n);
  }
  return out;
}

TEST(PipePoolTest, NoMoreThanItsLimitAndEmptiedPipesAreReused) {
  PipePool pool(2, 1 << 20);
  std::shared_ptr<SplicePipe> a = pool.Take();
  std::shared_ptr<SplicePipe> b = pool.Take();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(pool.Take(), nullptr) << "a third pipe beyond the limit of 2";
  EXPECT_EQ(pool.pipes(), 2u);
  int a_fd = a->read_fd;
  a.reset();  // empty: kept
  EXPECT_EQ(pool.pipes(), 2u);
  std::shared_ptr<SplicePipe> again = pool.Take();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->read_fd, a_fd) << "the emptied pipe is handed out again";
}

TEST(PipePoolTest, APipeGivenBackWithBytesInItIsClosed) {
  TempFile file(100000);
  PipePool pool(4, 1 << 20);
  std::shared_ptr<SplicePipe> p = pool.Take();
  ASSERT_TRUE(p);
  Result<size_t> n = FillPipe(*p, file.fd(), 0, 50000);
  ASSERT_TRUE(n) << n.error().ToString();
  EXPECT_EQ(*n, 50000u);
  EXPECT_EQ(pool.pipes(), 1u);
  p.reset();  // 50000 bytes never sent (a connection closed mid-frame)
  EXPECT_EQ(pool.pipes(), 0u) << "a pipe with stale bytes must not be reused";
  std::shared_ptr<SplicePipe> fresh = pool.Take();
  ASSERT_TRUE(fresh);
  EXPECT_EQ(fresh->pending, 0u);
  char c;
  EXPECT_LT(::read(fresh->read_fd, &c, 1), 0) << "a new pipe is empty";
}

TEST(PipePoolTest, FillPipeMovesExactlyTheFilesBytes) {
  TempFile file(3 * 65536 + 77);
  PipePool pool(1, 1 << 20);
  const struct {
    uint64_t offset;
    size_t count;
    size_t expected;
  } cases[] = {
      {0, 65536, 65536},          // aligned
      {1, 65536, 65536},          // mid-page
      {4000, 100000, 100000},     // across pages
      {3 * 65536, 65536, 77},     // across the end of the file
      {3 * 65536 + 77, 4096, 0},  // at the end
      {1u << 30, 4096, 0},        // far past it
  };
  for (const auto& c : cases) {
    std::shared_ptr<SplicePipe> p = pool.Take();
    ASSERT_TRUE(p);
    Result<size_t> n = FillPipe(*p, file.fd(), c.offset, c.count);
    ASSERT_TRUE(n) << n.error().ToString();
    EXPECT_EQ(*n, c.expected) << "offset " << c.offset;
    EXPECT_EQ(p->pending, *n);
    std::string got = Drain(*p);
    EXPECT_EQ(p->pending, 0u);
    EXPECT_TRUE(got ==
                file.bytes().substr(std::min<size_t>(c.offset, file.bytes().size()), c.expected))
        << "offset " << c.offset;
  }
}

TEST(PipePoolTest, FillPipeStopsWhenThePipeIsFull) {
  TempFile file(4 << 20);
  PipePool pool(1, 65536);  // one 64 KiB pipe: 16 page slots
  std::shared_ptr<SplicePipe> p = pool.Take();
  ASSERT_TRUE(p);
  Result<size_t> n = FillPipe(*p, file.fd(), 100, 1 << 20);
  ASSERT_TRUE(n) << n.error().ToString();
  EXPECT_GT(*n, 0u);
  EXPECT_LT(*n, 1u << 20) << "a full pipe ends the fill (short), it does not block";
  EXPECT_TRUE(Drain(*p) == file.bytes().substr(100, *n));
}

TEST(PipePoolTest, FillPipeRefusesAnOffsetBeyondOffT) {
  TempFile file(10);
  PipePool pool(1, 65536);
  std::shared_ptr<SplicePipe> p = pool.Take();
  ASSERT_TRUE(p);
  Result<size_t> n = FillPipe(*p, file.fd(), uint64_t{1} << 63, 10);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().code(), std::errc::invalid_argument);
}

}  // namespace
}  // namespace ninefold::transport
