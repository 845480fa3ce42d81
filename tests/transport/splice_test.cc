// PipePool and FillPipe (transport/splice.h): the pool's limit, reuse of emptied pipes,
// closing of pipes given back with bytes still in them, and fills at every position of
// a file. And the other way a write meets a reader that has gone: an fd!R!W channel
// writing into a pipe nobody reads.
#include "ninefold/transport/splice.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "asio/io_context.hpp"
#include "asio/post.hpp"
#include "ninefold/transport/channel.h"

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

// --- Twrite data into pipes (Channel::SpliceWrites) on a real unix socket -------------

// A Twrite frame: size[4] type[1] tag[2] fid[4] offset[8] count[4] data.
std::string TwriteFrame(uint16_t tag, const std::string& data) {
  std::string f(23, '\0');
  const uint32_t size = static_cast<uint32_t>(23 + data.size());
  const uint32_t count = static_cast<uint32_t>(data.size());
  std::memcpy(f.data(), &size, 4);
  f[4] = static_cast<char>(118);
  std::memcpy(f.data() + 5, &tag, 2);
  std::memcpy(f.data() + 19, &count, 4);
  return f + data;
}

TEST(SpliceWritesTest, APipeTakesWhatFitsAndTheFrameCarriesTheRest) {
  asio::io_context io;
  // One-page pipes: a pipe has a single slot then, which holds one buffer of the socket's
  // (up to a compound page), never all of these writes.
  PipePool pool(4, 4096);
  const std::string path = "/tmp/splice-writes-" + std::to_string(::getpid()) + ".sock";
  struct Got {
    std::string frame;
    std::string piped;
  };
  std::vector<Got> got;
  std::shared_ptr<Channel> accepted;
  auto listener = Listen(io, *ParseAddress("unix!" + path), [&](std::shared_ptr<Channel> ch) {
    accepted = ch;
    ch->SpliceWrites(&pool, 16 * 1024);
    ch->Start(
        [&, ch = ch.get()](std::span<const std::byte> f) {
          Got g{std::string(reinterpret_cast<const char*>(f.data()), f.size()), ""};
          if (std::shared_ptr<SplicePipe> pipe = ch->FrameDataPipe()) g.piped = Drain(*pipe);
          got.push_back(std::move(g));
        },
        [](const Error&) {});
  });
  ASSERT_TRUE(listener) << listener.error().ToString();

  std::vector<std::string> data;
  for (size_t n : {200000, 100000, 300000, 150000, 400000, 90000}) {
    std::string d(n, '\0');
    for (size_t i = 0; i < n; ++i) d[i] = static_cast<char>((i * 7 + n) % 253);
    data.push_back(std::move(d));
  }
  // Large, large (in a pipe: the channel reads only up to Twrite heads after a large
  // one), a small frame (Tclunk), large (still in a pipe), five small frames, large (read
  // the ordinary way, unless the socket's bytes happen to end at its head), larger than
  // the read buffer (its head may come with that read, never its end), large (in a pipe).
  std::string clunk(11, '\0');
  const uint32_t clunk_size = 11;
  std::memcpy(clunk.data(), &clunk_size, 4);
  clunk[4] = static_cast<char>(120);
  std::string stream =
      TwriteFrame(1, data[0]) + TwriteFrame(2, data[1]) + clunk + TwriteFrame(3, data[2]);
  for (int i = 0; i < 5; ++i) stream += clunk;
  stream += TwriteFrame(4, data[3]) + TwriteFrame(5, data[4]) + TwriteFrame(6, data[5]);
  const std::vector<int> writes = {0, 1, -1, 2, -1, -1, -1, -1, -1, 3, 4, 5};  // frame -> data
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  std::thread writer(
      [&] { EXPECT_EQ(::write(fd, stream.data(), stream.size()), ssize_t(stream.size())); });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (got.size() < writes.size() && std::chrono::steady_clock::now() < deadline) {
    io.run_for(std::chrono::milliseconds(10));
  }
  writer.join();
  ::close(fd);
  ASSERT_EQ(got.size(), writes.size());
  std::vector<size_t> piped;
  for (size_t i = 0; i < writes.size(); ++i) {
    const Got& g = got[i];
    if (writes[i] < 0) {
      EXPECT_EQ(g.frame, clunk) << "frame " << i;
      EXPECT_TRUE(g.piped.empty()) << "frame " << i;
      continue;
    }
    const std::string& want = data[static_cast<size_t>(writes[i])];
    uint32_t size, count;
    std::memcpy(&size, g.frame.data(), 4);
    std::memcpy(&count, g.frame.data() + 19, 4);
    EXPECT_EQ(size, g.frame.size()) << "frame " << i;
    EXPECT_EQ(count + 23, g.frame.size()) << "frame " << i;
    EXPECT_TRUE(g.piped + g.frame.substr(23) == want) << "frame " << i << ": the data differs";
    if (!g.piped.empty()) {
      piped.push_back(i);
      EXPECT_GT(count, 0u) << "frame " << i << ": a pipe of one page held it all";
    }
  }
  EXPECT_TRUE(got[0].piped.empty()) << "the first large Twrite is read whole";
  for (size_t i : {1, 3, 11}) {
    EXPECT_NE(std::find(piped.begin(), piped.end(), i), piped.end())
        << "frame " << i << " not in a pipe";
  }
  accepted->Close();
  (*listener)->Close();
}

// A channel over descriptors (fd!R!W) whose write end's reader has gone: writev raises
// SIGPIPE there, which ends the process unless the channel takes it back. The channel
// must close with EPIPE instead, and this process (the test) live on.
TEST(FdChannelTest, WritingToAPipeWithoutAReaderClosesWithEpipe) {
  int in[2];
  int out[2];
  ASSERT_EQ(::pipe(in), 0);
  ASSERT_EQ(::pipe(out), 0);
  ::close(out[0]);  // nobody reads what the channel writes
  asio::io_context io;
  Result<std::shared_ptr<Channel>> ch = OpenFdChannel(io, in[0], out[1]);
  ASSERT_TRUE(ch) << ch.error().ToString();
  std::atomic<bool> closed{false};
  Error why;
  (*ch)->Start([](std::span<const std::byte>) {},
               [&](const Error& e) {
                 why = e;
                 closed = true;
               });
  // Tclunk fid 1, tag 1: any whole frame.
  std::vector<std::byte> frame = {std::byte{11},  std::byte{0}, std::byte{0}, std::byte{0},
                                  std::byte{120}, std::byte{1}, std::byte{0}, std::byte{1},
                                  std::byte{0},   std::byte{0}, std::byte{0}};
  (*ch)->Send(OutFrame{std::move(frame), {}, nullptr});
  for (int i = 0; i < 500 && !closed; ++i) io.run_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(closed) << "the channel did not notice its reader had gone";
  EXPECT_EQ(why.code(), std::make_error_code(std::errc::broken_pipe)) << why.ToString();
  (*ch)->Close();
  io.run_for(std::chrono::milliseconds(10));
  ::close(in[1]);
}

}  // namespace
}  // namespace ninefold::transport
