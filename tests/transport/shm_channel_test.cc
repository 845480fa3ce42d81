// The shm!/PATH transport through the Channel interface: frames both ways intact and in
// order (sizes up to 1 MiB, senders on several threads), a peer process killed while
// connected (noticed promptly, its descriptors and memory released), and a hostile
// client scribbling over the whole shared region while a well-behaved client keeps
// working.
#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <future>
#include <iterator>
#include <map>
#include <random>
#include <thread>

#include "asio/executor_work_guard.hpp"
#include "asio/post.hpp"
#include "gtest/gtest.h"
#include "ninefold/transport/channel.h"
#include "ninefold/transport/ring.h"
#include "src/transport/shm.h"

namespace ninefold::transport {
namespace {

using namespace std::chrono_literals;

// A frame as the channel expects it: size[4] (the whole length) then `seq` and a pattern.
std::vector<std::byte> MakeFrame(uint32_t seq, size_t size) {
  std::vector<std::byte> f(std::max<size_t>(size, 11));
  uint32_t n = static_cast<uint32_t>(f.size());
  std::memcpy(f.data(), &n, 4);
  std::memcpy(f.data() + 7, &seq, 4);
  for (size_t i = 11; i < f.size(); ++i) f[i] = static_cast<std::byte>((seq + i) & 0xff);
  return f;
}

uint16_t Field16(std::span<const std::byte> f, size_t at) {
  if (f.size() < at + 2) return 0xffff;
  return static_cast<uint16_t>(static_cast<uint8_t>(f[at]) | static_cast<uint8_t>(f[at + 1]) << 8);
}

// A MakeFrame with 9P's type and tag bytes set.
std::vector<std::byte> MakeMessage(uint8_t type, uint16_t tag, uint32_t seq, size_t size) {
  std::vector<std::byte> f = MakeFrame(seq, size);
  f[4] = static_cast<std::byte>(type);
  std::memcpy(f.data() + 5, &tag, 2);
  return f;
}

bool FrameOk(std::span<const std::byte> f, uint32_t* seq) {
  if (f.size() < 11) return false;
  std::memcpy(seq, f.data() + 7, 4);
  for (size_t i = 11; i < f.size(); ++i) {
    if (f[i] != static_cast<std::byte>((*seq + i) & 0xff)) return false;
  }
  return true;
}

size_t OpenFds() {
  size_t n = 0;
  for (auto& e : std::filesystem::directory_iterator("/proc/self/fd")) n += !e.path().empty();
  return n;
}

// An io thread and a shm listener that echoes every frame back on its channel (a payload
// that came apart, by reference into the arena, is echoed joined to its head). A frame
// with a placement is answered with an 11-byte head and a payload the server writes into
// the placement (MakeFrame's pattern), which therefore goes back by reference.
class EchoServer {
 public:
  // When set, each frame is answered with reply(its seq) instead of its echo.
  using Reply = std::function<OutFrame(uint32_t seq)>;
  // `queues`: shm queue pairs per connection (0: the default).
  explicit EchoServer(Reply reply = nullptr, uint32_t queues = 0)
      : reply_(std::move(reply)),
        path_(std::filesystem::temp_directory_path() /
              ("nf-shm-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++))) {
    Address a{.kind = Address::Kind::kShm, .path = path_.string()};
    auto l = Listen(io_, a,
                    [this](std::shared_ptr<Channel> ch) {
                      ch->SetMaxFrame(4u << 20);
                      std::weak_ptr<Channel> weak = ch;
                      ch->Start(
                          [this, weak](std::span<const std::byte> f) {
                            auto c = weak.lock();
                            if (!c) return;
                            {
                              std::lock_guard lock(mu_);
                              seen_.push_back(Seen{c->FrameQueue(), Field16(f, 5), Field16(f, 7),
                                                   static_cast<uint8_t>(f[4])});
                            }
                            if (c->FrameAcceptsPipe()) accepts_pipe_++;
                            if (reply_) {
                              uint32_t seq;
                              std::memcpy(&seq, f.data() + 7, 4);
                              c->Send(reply_(seq));
                              return;
                            }
                            std::span<std::byte> place = c->FramePlacement();
                            std::span<const std::byte> apart = c->FramePayload();
                            if (!place.empty()) {
                              placements_++;
                              uint32_t seq;
                              std::memcpy(&seq, f.data() + 7, 4);
                              std::vector<std::byte> head = MakeFrame(seq, 11);
                              auto size = static_cast<uint32_t>(11 + place.size());
                              std::memcpy(head.data(), &size, 4);
                              for (size_t i = 0; i < place.size(); ++i) {
                                place[i] = static_cast<std::byte>((seq + 11 + i) & 0xff);
                              }
                              c->Send(OutFrame{std::move(head), place, nullptr});
                              return;
                            }
                            if (!apart.empty()) payloads_apart_++;
                            std::vector<std::byte> whole(f.begin(), f.end());
                            whole.insert(whole.end(), apart.begin(), apart.end());
                            c->Send(OutFrame{std::move(whole), {}, nullptr});
                          },
                          [this, ch](const Error& why) mutable {
                            std::lock_guard lock(mu_);
                            closes_.push_back(why);
                            ch.reset();
                          });
                      std::lock_guard lock(mu_);
                      accepted_.push_back(ch);
                    },
                    {.shm_queues = queues});
    EXPECT_TRUE(l) << l.error().ToString();
    listener_ = std::move(*l);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~EchoServer() {
    asio::post(io_, [this] {
      listener_->Close();
      std::vector<std::weak_ptr<Channel>> accepted;
      {
        std::lock_guard lock(mu_);
        accepted = accepted_;
      }
      for (auto& w : accepted) {  // outside mu_: the close handler takes it
        if (auto c = w.lock()) c->Close();
      }
    });
    work_.reset();
    thread_.join();
  }
  std::string address() const { return "shm!" + path_.string(); }
  std::vector<Error> closes() {
    std::lock_guard lock(mu_);
    return closes_;
  }
  // A frame as the server saw it: the queue it came on, its tag, the 16 bits after the
  // tag (MakeFrame's seq; a Tflush's oldtag) and its type byte.
  struct Seen {
    uint32_t queue;
    uint16_t tag, next16;
    uint8_t type;
  };
  std::vector<Seen> seen() {
    std::lock_guard lock(mu_);
    return seen_;
  }
  uint32_t payloads_apart() const { return payloads_apart_; }
  uint32_t placements() const { return placements_; }
  uint32_t accepts_pipe() const { return accepts_pipe_; }

 private:
  static inline int counter_ = 0;
  Reply reply_;
  std::filesystem::path path_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  std::unique_ptr<Listener> listener_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::weak_ptr<Channel>> accepted_;  // guarded by mu_
  std::vector<Error> closes_;                     // guarded by mu_
  std::vector<Seen> seen_;                        // guarded by mu_
  std::atomic<uint32_t> payloads_apart_{0}, placements_{0}, accepts_pipe_{0};
};

// A client channel on its own io thread that collects echoed frames.
struct Client {
  explicit Client(const std::string& address) {
    auto a = ParseAddress(address);
    EXPECT_TRUE(a);
    auto ch = Dial(io, *a, 5s);
    EXPECT_TRUE(ch) << ch.error().ToString();
    channel = *ch;
    channel->SetMaxFrame(4u << 20);
    channel->Start(
        [this](std::span<const std::byte> f) {
          std::span<const std::byte> apart = channel->FramePayload();
          std::vector<std::byte> whole(f.begin(), f.end());
          if (!apart.empty()) {
            payload_at = apart.data();
            whole.insert(whole.end(), apart.begin(), apart.end());
          }
          if (size_t piped = channel->FramePipeBytes(); piped > 0) {
            // An Rread head of count 0 whose data waits in the pipe: read it out.
            pipes_seen++;
            int fd = channel->TakeFramePipe();
            size_t at = whole.size();
            whole.resize(at + piped);
            ssize_t n = ::read(fd, whole.data() + at, piped);
            if (n != static_cast<ssize_t>(piped)) bad++;
            ::close(fd);
            auto size = static_cast<uint32_t>(whole.size());
            std::memcpy(whole.data(), &size, 4);
          }
          if (const buf::FileRef* pages = channel->FramePages()) {
            pages_seen++;
            // Usable as the channel promises: whole pages map copy-on-write elsewhere.
            size_t n = pages->length / buf::kPageSize * buf::kPageSize;
            void* p = n == 0 ? MAP_FAILED
                             : ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE, pages->fd,
                                      static_cast<off_t>(pages->offset));
            if (p != MAP_FAILED) {
              if (std::memcmp(p, apart.data(), n) == 0) aliased++;
              ::munmap(p, n);
            }
          }
          uint32_t seq = 0;
          if (!FrameOk(whole, &seq) || seq != received) bad++;
          received++;
          bytes += whole.size();
        },
        [this](const Error& why) { closed.set_value(why); });
    thread = std::thread([this] { io.run(); });
  }
  ~Client() {
    channel->Close();
    work.reset();
    thread.join();
  }
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::shared_ptr<Channel> channel;
  std::thread thread;
  std::atomic<uint32_t> received{0}, bad{0}, pages_seen{0}, aliased{0}, pipes_seen{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<const std::byte*> payload_at{nullptr};  // the last payload that came apart
  std::promise<Error> closed;
};

bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

TEST(ShmChannelTest, FramesRoundTripInOrderUpToOneMiB) {
  EchoServer server;
  Client client(server.address());
  std::mt19937 rng(3);
  constexpr uint32_t kFrames = 3000;
  for (uint32_t i = 0; i < kFrames; ++i) {
    size_t size = i % 100 == 0 ? (1u << 20) : rng() % 9000;
    client.channel->Send(OutFrame{MakeFrame(i, size), {}, nullptr});
  }
  ASSERT_TRUE(WaitFor([&] { return client.received == kFrames; }, 60s))
      << client.received << " of " << kFrames;
  EXPECT_EQ(client.bad, 0u);
}

// Takes (and holds, in `held`) every buffer this thread keeps: earlier tests' sends on
// this thread may have left some (at most 8; more is harmless).
void TakeAllKept(std::vector<std::vector<std::byte>>& held) {
  for (int i = 0; i < 16; ++i) held.push_back(TakeFrameBuffer());
}

TEST(FrameBuffersTest, ABufferHandedBackIsTakenAgainEmptyWithItsRoom) {
  std::vector<std::vector<std::byte>> held;
  TakeAllKept(held);
  std::vector<std::byte> first = TakeFrameBuffer();
  EXPECT_TRUE(first.empty());
  EXPECT_GE(first.capacity(), 160u);  // an Rgetattr's head fits without growing
  first.reserve(1000);                // told apart from a new buffer by its room
  first.resize(100, std::byte{7});
  const std::byte* memory = first.data();
  RecycleFrameBuffer(std::move(first));
  std::vector<std::byte> again = TakeFrameBuffer();
  EXPECT_EQ(again.data(), memory);
  EXPECT_EQ(again.capacity(), 1000u);
  EXPECT_TRUE(again.empty());
  // Too large to keep (a batch of frames): freed, not handed out again.
  std::vector<std::byte> big(64 * 1024);
  const std::byte* big_memory = big.data();
  RecycleFrameBuffer(std::move(big));
  std::vector<std::byte> next = TakeFrameBuffer();
  EXPECT_NE(next.data(), big_memory);
  EXPECT_LE(next.capacity(), 4096u);
}

TEST(FrameBuffersTest, AThreadKeepsOnlyAFew) {
  // Each buffer grown to its own size, so one taken again is told from a new one (256).
  std::vector<std::vector<std::byte>> taken(20);
  for (size_t i = 0; i < taken.size(); ++i) {
    taken[i] = TakeFrameBuffer();
    taken[i].reserve(300 + i);
  }
  for (auto& b : taken) RecycleFrameBuffer(std::move(b));
  size_t kept_again = 0;
  for (auto& b : taken) {
    b = TakeFrameBuffer();
    if (b.capacity() >= 300) kept_again++;
  }
  EXPECT_EQ(kept_again, 8u);  // frame_buffers.cc: kKept
}

TEST(ShmChannelTest, ASentFramesHeadComesBackForTheNextFrame) {
  EchoServer server;
  Client client(server.address());
  // Sent from this thread: once in the ring, the head's buffer is this thread's to reuse.
  std::vector<std::vector<std::byte>> held;
  TakeAllKept(held);
  std::vector<std::byte> head = TakeFrameBuffer();
  std::vector<std::byte> frame = MakeFrame(0, 100);
  head.reserve(1000);  // told apart from a new buffer by its room
  head.assign(frame.begin(), frame.end());
  client.channel->Send(OutFrame{std::move(head), {}, nullptr});
  EXPECT_EQ(TakeFrameBuffer().capacity(), 1000u);
  // So does the head of a frame whose payload travels apart (an Rread, a Twrite).
  auto whole = MakeFrame(1, 5000);
  head = TakeFrameBuffer();
  head.reserve(1200);
  head.assign(whole.begin(), whole.begin() + 100);
  auto payload = std::make_shared<std::vector<std::byte>>(whole.begin() + 100, whole.end());
  client.channel->Send(OutFrame{std::move(head), *payload, payload});
  EXPECT_EQ(TakeFrameBuffer().capacity(), 1200u);
  ASSERT_TRUE(WaitFor([&] { return client.received == 2; }, 10s));
  EXPECT_EQ(client.bad, 0u);
}

TEST(ShmChannelTest, HeadAndPayloadTravelAsOneFrame) {
  EchoServer server;
  Client client(server.address());
  auto whole = MakeFrame(0, 5000);
  std::vector<std::byte> head(whole.begin(), whole.begin() + 100);
  auto payload = std::make_shared<std::vector<std::byte>>(whole.begin() + 100, whole.end());
  client.channel->Send(OutFrame{head, *payload, payload});
  ASSERT_TRUE(WaitFor([&] { return client.received == 1; }, 10s));
  EXPECT_EQ(client.bad, 0u);
  EXPECT_EQ(client.bytes, 5000u);
}

// A payload that lies in the shared arena travels as a reference: the server sees it
// apart from the head, at the same bytes, and nothing is lost.
TEST(ShmChannelTest, PayloadInTheArenaTravelsByReference) {
  EchoServer server;
  Client client(server.address());
  std::shared_ptr<buf::Arena> arena = client.channel->arena();
  ASSERT_NE(arena, nullptr);
  auto whole = MakeFrame(0, 300000);
  buf::Buffer payload = buf::Buffer::Allocate(whole.size() - 100, arena);
  ASSERT_TRUE(payload.shared());
  std::memcpy(payload.data(), whole.data() + 100, payload.size());
  client.channel->Send(OutFrame{{whole.begin(), whole.begin() + 100}, payload.span(), nullptr});
  ASSERT_TRUE(WaitFor([&] { return client.received == 1; }, 10s));
  EXPECT_EQ(client.bad, 0u);
  EXPECT_EQ(client.bytes, whole.size());
  EXPECT_EQ(server.payloads_apart(), 1u);
}

// A placement: the server writes the reply's payload into the client's buffer itself and
// the reply refers to it — the client finds the data where it asked for it.
TEST(ShmChannelTest, PlacementIsWhereTheReplyPayloadArrives) {
  EchoServer server;
  Client client(server.address());
  buf::Buffer dest = buf::Buffer::Allocate(1 << 20, client.channel->arena());
  ASSERT_TRUE(dest.shared());
  std::memset(dest.data(), 0xee, dest.size());
  for (uint32_t i = 0; i < 20; ++i) {
    std::span<std::byte> place = dest.span().subspan(i * 4096, 10000 + i);
    client.channel->Send(OutFrame{MakeFrame(i, 11), {}, nullptr, place});
    ASSERT_TRUE(WaitFor([&] { return client.received == i + 1; }, 10s));
    EXPECT_EQ(client.payload_at.load(), place.data()) << "reply " << i;
  }
  EXPECT_EQ(client.bad, 0u);
  EXPECT_EQ(server.placements(), 20u);
}

// Pages of a sealed memfd whose bytes are the pattern of frame `seq`'s payload, one run
// per frame, with a read-only descriptor for them: what ramfs hands out.
struct PagesSource {
  static constexpr size_t kPayload = 300000;
  static constexpr uint64_t kStride = 80 * buf::kPageSize;  // > kPayload, whole pages
  explicit PagesSource(uint32_t frames) {
    auto r = buf::Region::Create(frames * kStride, "test-pages");
    EXPECT_TRUE(r);
    region = std::move(*r);
    ro_fd = ::open(("/proc/self/fd/" + std::to_string(region->fd())).c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_GE(ro_fd, 0);
    for (uint32_t i = 0; i < frames; ++i) {
      std::vector<std::byte> whole = MakeFrame(i, 11 + kPayload);
      std::memcpy(region->data() + i * kStride, whole.data() + 11, kPayload);
    }
  }
  ~PagesSource() { ::close(ro_fd); }
  OutFrame Reply(uint32_t seq, buf::FileRef pages) const {
    std::vector<std::byte> head = MakeFrame(seq, 11);
    auto size = static_cast<uint32_t>(11 + kPayload);
    std::memcpy(head.data(), &size, 4);
    return OutFrame{
        std::move(head), {region->data() + seq * kStride, kPayload}, region, {}, nullptr, pages};
  }
  OutFrame Good(uint32_t seq) const {
    return Reply(seq, {.fd = ro_fd, .offset = seq * kStride, .length = kPayload});
  }
  std::shared_ptr<buf::Region> region;
  int ro_fd = -1;
};

// A payload offered as pages crosses as a descriptor: the client gets the bytes as a
// read-only mapping plus the file to map them itself, and every descriptor is closed
// after its frame.
TEST(ShmChannelTest, PagesCrossAsADescriptorAndArriveMapped) {
  constexpr uint32_t kFrames = 60;
  PagesSource source(kFrames);
  EchoServer server([&](uint32_t seq) { return source.Good(seq); });
  Client client(server.address());
  size_t fds_before = OpenFds();
  for (uint32_t i = 0; i < kFrames; ++i)
    client.channel->Send(OutFrame{MakeFrame(i, 11), {}, nullptr});
  ASSERT_TRUE(WaitFor([&] { return client.received == kFrames; }, 20s)) << client.received;
  EXPECT_EQ(client.bad, 0u);
  EXPECT_EQ(client.pages_seen, kFrames);
  EXPECT_EQ(client.aliased, kFrames);
  EXPECT_TRUE(WaitFor([&] { return OpenFds() <= fds_before; }, 5s))
      << OpenFds() << " descriptors open, " << fds_before << " before";
}

// Byte streams cannot hand over a descriptor: the payload goes inline.
TEST(ShmChannelTest, PagesOnAByteStreamAreSentAsBytes) {
  asio::io_context io;
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  auto a = OpenFdChannel(io, sv[0], sv[0]);
  auto b = OpenFdChannel(io, sv[1], sv[1]);
  ASSERT_TRUE(a && b);
  EXPECT_FALSE((*a)->can_share_pages());
  PagesSource source(1);
  std::vector<std::byte> got;
  (*b)->Start(
      [&](std::span<const std::byte> f) {
        EXPECT_EQ((*b)->FramePages(), nullptr);
        got.assign(f.begin(), f.end());
      },
      [](const Error&) {});
  (*a)->Start([](std::span<const std::byte>) {}, [](const Error&) {});
  (*a)->Send(source.Good(0));
  for (int i = 0; i < 2000 && got.empty(); ++i) io.run_for(5ms);
  uint32_t seq = 99;
  EXPECT_EQ(got.size(), 11 + PagesSource::kPayload);
  EXPECT_TRUE(FrameOk(got, &seq));
  EXPECT_EQ(seq, 0u);
  (*a)->Close();
  (*b)->Close();
}

// A server that hands over what cannot be mapped safely (a file that could shrink under
// the mapping, pages past its end, a misaligned offset, not a file at all) ends the
// session with a protocol error; the client process is unharmed.
TEST(ShmChannelHostileTest, PagesThatCannotBeMappedSafelyAreRefused) {
  PagesSource source(1);
  int unsealed = ::memfd_create("unsealed", MFD_CLOEXEC);
  ASSERT_GE(unsealed, 0);
  ASSERT_EQ(::ftruncate(unsealed, 1 << 20), 0);
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  const uint64_t end = source.region->size();
  const struct {
    const char* what;
    buf::FileRef pages;
  } cases[] = {
      {"unsealed memfd", {.fd = unsealed, .offset = 0, .length = PagesSource::kPayload}},
      {"past the end", {.fd = source.ro_fd, .offset = end - 4096, .length = PagesSource::kPayload}},
      {"offset past the end", {.fd = source.ro_fd, .offset = end + 4096, .length = 100}},
      {"misaligned", {.fd = source.ro_fd, .offset = 100, .length = PagesSource::kPayload}},
      {"a pipe", {.fd = pipe_fds[0], .offset = 0, .length = PagesSource::kPayload}},
  };
  for (const auto& c : cases) {
    EchoServer server([&](uint32_t seq) { return source.Reply(seq, c.pages); });
    Client client(server.address());
    auto closed = client.closed.get_future();
    client.channel->Send(OutFrame{MakeFrame(0, 11), {}, nullptr});
    ASSERT_EQ(closed.wait_for(10s), std::future_status::ready) << c.what;
    Error why = closed.get();
    EXPECT_EQ(why.code(), std::errc::protocol_error) << c.what << ": " << why.ToString();
    EXPECT_NE(why.ToString().find("pages record"), std::string::npos) << why.ToString();
    EXPECT_EQ(client.received, 0u) << c.what;
  }
  ::close(unsealed);
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
}

// Pages go from server to client only: a client that sends a pages record is cut off.
TEST(ShmChannelHostileTest, AClientSendingPagesIsCutOff) {
  PagesSource source(1);
  EchoServer server;
  Client client(server.address());
  auto closed = client.closed.get_future();
  client.channel->Send(source.Good(0));
  ASSERT_EQ(closed.wait_for(10s), std::future_status::ready);
  ASSERT_TRUE(WaitFor([&] { return !server.closes().empty(); }, 5s));
  EXPECT_EQ(server.closes()[0].code(), std::errc::protocol_error) << server.closes()[0].ToString();
}

// A pipe holding the pattern of frame `seq`'s payload of `bytes` (claiming `claim` bytes:
// a lie when they differ), as a server's spliced read leaves it; closed when dropped.
std::shared_ptr<SplicePipe> PipeOf(uint32_t seq, size_t bytes, size_t claim) {
  int fds[2];
  EXPECT_EQ(::pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
  EXPECT_GT(::fcntl(fds[1], F_SETPIPE_SZ, 1 << 20), 0);
  std::vector<std::byte> whole = MakeFrame(seq, 11 + bytes);
  EXPECT_EQ(::write(fds[1], whole.data() + 11, bytes), static_cast<ssize_t>(bytes));
  return std::shared_ptr<SplicePipe>(
      new SplicePipe{.read_fd = fds[0], .write_fd = fds[1], .pending = claim}, [](SplicePipe* p) {
        ::close(p->read_fd);
        ::close(p->write_fd);
        delete p;
      });
}

// An Rread-shaped reply to `seq` whose first `piped` data bytes wait in a pipe (the head
// counts them, as the server's AddSplicedBytes makes it) and `after` follow as a payload.
// MakeFrame keeps seq where an Rread has its count: the count is seq + claim when the
// pipe goes alone (the channel takes `claim` off it), seq when its bytes go inline.
OutFrame SplicedReply(uint32_t seq, size_t piped, size_t after, size_t claim) {
  std::vector<std::byte> head = MakeFrame(seq, 11);
  head[4] = std::byte{117};  // Rread
  auto size = static_cast<uint32_t>(11 + claim + after);
  std::memcpy(head.data(), &size, 4);
  auto count = static_cast<uint32_t>(after == 0 ? seq + claim : seq);
  std::memcpy(head.data() + 7, &count, 4);
  auto tail = std::make_shared<std::vector<std::byte>>(MakeFrame(seq, 11 + piped + after));
  std::span<const std::byte> payload = std::span<const std::byte>(*tail).subspan(11 + piped);
  return OutFrame{std::move(head), payload, tail, {}, PipeOf(seq, piped, claim)};
}

// A reply whose data waits in a pipe crosses as the pipe: the client gets an empty head
// and the pipe's read end holding the bytes (nothing copied by either channel). With a
// payload after the pipe's bytes, the pipe is read out and everything goes inline.
// Requests marked accepts_pipe say so to the server; descriptors are not leaked.
TEST(ShmChannelTest, PipesCrossAsADescriptorHoldingTheData) {
  constexpr uint32_t kFrames = 40;
  EchoServer server([](uint32_t seq) {
    size_t piped = 4096 * (1 + seq % 64) - seq;  // page multiples and not
    return SplicedReply(seq, piped, seq % 2 == 1 ? 0 : 500, piped);
  });
  Client client(server.address());
  size_t fds_before = OpenFds();
  for (uint32_t i = 0; i < kFrames; ++i) {
    client.channel->Send(OutFrame{
        .head = MakeFrame(i, 11), .payload = {}, .owner = nullptr, .accepts_pipe = i < 10});
  }
  ASSERT_TRUE(WaitFor([&] { return client.received == kFrames; }, 20s)) << client.received;
  EXPECT_EQ(client.bad, 0u);
  EXPECT_EQ(client.pipes_seen, kFrames / 2);  // the odd ones: no payload after the pipe
  EXPECT_EQ(server.accepts_pipe(), 10u);
  EXPECT_TRUE(WaitFor([&] { return OpenFds() <= fds_before; }, 5s))
      << OpenFds() << " descriptors open, " << fds_before << " before";
}

// A server that hands over a pipe holding less than it claims, or something that is not
// a pipe, ends the session with a protocol error (the client would otherwise wait for
// bytes that never come); a client's pipe record is cut off the same way.
TEST(ShmChannelHostileTest, PipesThatDoNotHoldTheirBytesAreRefused) {
  {
    EchoServer server([](uint32_t seq) { return SplicedReply(seq, 1000, 0, 5000); });
    Client client(server.address());
    auto closed = client.closed.get_future();
    client.channel->Send(OutFrame{MakeFrame(0, 11), {}, nullptr});
    ASSERT_EQ(closed.wait_for(10s), std::future_status::ready);
    Error why = closed.get();
    EXPECT_EQ(why.code(), std::errc::protocol_error) << why.ToString();
    EXPECT_NE(why.ToString().find("pipe record"), std::string::npos) << why.ToString();
    EXPECT_EQ(client.received, 0u);
  }
  {
    int memfd = ::memfd_create("not-a-pipe", MFD_CLOEXEC);
    ASSERT_GE(memfd, 0);
    ASSERT_EQ(::ftruncate(memfd, 1 << 20), 0);
    EchoServer server([memfd](uint32_t seq) {
      OutFrame f = SplicedReply(seq, 1000, 0, 1000);
      auto fake = std::make_shared<SplicePipe>(SplicePipe{.read_fd = memfd, .pending = 1000});
      f.spliced = fake;
      return f;
    });
    Client client(server.address());
    auto closed = client.closed.get_future();
    client.channel->Send(OutFrame{MakeFrame(0, 11), {}, nullptr});
    ASSERT_EQ(closed.wait_for(10s), std::future_status::ready);
    Error why = closed.get();
    EXPECT_NE(why.ToString().find("not a pipe"), std::string::npos) << why.ToString();
    ::close(memfd);
  }
  {
    EchoServer server;
    Client client(server.address());
    client.channel->Send(SplicedReply(0, 1000, 0, 1000));
    ASSERT_TRUE(WaitFor([&] { return !server.closes().empty(); }, 10s));
    EXPECT_EQ(server.closes()[0].code(), std::errc::protocol_error)
        << server.closes()[0].ToString();
  }
}

// Byte streams have no arena: a placement is ignored and a payload is sent inline.
TEST(ShmChannelTest, ByteStreamsHaveNoArena) {
  asio::io_context io;
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  auto ch = OpenFdChannel(io, sv[0], sv[0]);
  ASSERT_TRUE(ch) << ch.error().ToString();
  EXPECT_EQ((*ch)->arena(), nullptr);
  EXPECT_TRUE((*ch)->FramePayload().empty());
  EXPECT_TRUE((*ch)->FramePlacement().empty());
  (*ch)->Close();
  ::close(sv[1]);
}

// A client's batch: several whole frames back to back in one OutFrame's head.
TEST(ShmChannelTest, SeveralFramesInOneHeadArriveSeparately) {
  EchoServer server;
  Client client(server.address());
  std::vector<std::byte> batch;
  for (uint32_t i = 0; i < 3; ++i) {
    auto f = MakeFrame(i, 50 + i * 10);
    batch.insert(batch.end(), f.begin(), f.end());
  }
  client.channel->Send(OutFrame{batch, {}, nullptr});
  ASSERT_TRUE(WaitFor([&] { return client.received == 3; }, 10s)) << client.received;
  EXPECT_EQ(client.bad, 0u);
  EXPECT_EQ(client.bytes, 50u + 60 + 70);
}

TEST(ShmChannelTest, SendersOnManyThreads) {
  EchoServer server;
  Client client(server.address());
  // Frames carry no order across threads here: count and check content only.
  std::atomic<uint32_t> next{0};
  std::vector<std::thread> senders;
  for (int t = 0; t < 4; ++t) {
    senders.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        client.channel->Send(OutFrame{MakeFrame(0, 64 + (next++ % 3000)), {}, nullptr});
      }
    });
  }
  for (auto& s : senders) s.join();
  ASSERT_TRUE(WaitFor([&] { return client.received == 8000; }, 60s)) << client.received;
  EXPECT_EQ(client.bytes.load() > 8000u * 64, true);
}

// A client channel that records, per reply, the queue it came back on and its tag.
struct QueueClient {
  explicit QueueClient(const std::string& address) {
    auto a = ParseAddress(address);
    EXPECT_TRUE(a);
    auto ch = Dial(io, *a, 5s);
    EXPECT_TRUE(ch) << ch.error().ToString();
    channel = *ch;
    channel->Start(
        [this](std::span<const std::byte> f) {
          std::lock_guard lock(mu);
          replies.emplace_back(channel->FrameQueue(), Field16(f, 5));
        },
        [](const Error&) {});
    thread = std::thread([this] { io.run(); });
  }
  ~QueueClient() {
    channel->Close();
    work.reset();
    thread.join();
  }
  size_t count() {
    std::lock_guard lock(mu);
    return replies.size();
  }
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::shared_ptr<Channel> channel;
  std::thread thread;
  std::mutex mu;
  std::vector<std::pair<uint32_t, uint16_t>> replies;  // guarded by mu: {queue, tag}
};

// With several queue pairs, each sending thread has a queue of its own (its frames in
// order there), and the server answers each frame on the queue it came in on.
TEST(ShmChannelTest, EachSendingThreadHasItsQueueAndRepliesComeBackOnIt) {
  EchoServer server(nullptr, 4);
  QueueClient client(server.address());
  ASSERT_EQ(client.channel->queues(), 4u);
  constexpr uint16_t kThreads = 4, kFrames = 300;
  std::vector<std::thread> senders;
  for (uint16_t t = 0; t < kThreads; ++t) {
    senders.emplace_back([&, t] {
      for (uint32_t i = 0; i < kFrames; ++i) {
        client.channel->Send(OutFrame{MakeMessage(100, t, i, 64 + i % 500), {}, nullptr});
      }
    });
  }
  for (auto& s : senders) s.join();
  ASSERT_TRUE(WaitFor([&] { return client.count() == kThreads * kFrames; }, 30s)) << client.count();
  std::vector<EchoServer::Seen> seen = server.seen();
  ASSERT_EQ(seen.size(), size_t{kThreads} * kFrames);
  std::map<uint16_t, uint32_t> queue_of;  // tag (= thread) -> the queue it came on
  std::map<uint16_t, uint32_t> next_seq;  // tag -> the seq expected next
  for (const EchoServer::Seen& s : seen) {
    auto [it, first] = queue_of.emplace(s.tag, s.queue);
    EXPECT_EQ(it->second, s.queue) << "thread " << s.tag << " changed queues";
    EXPECT_EQ(s.next16, next_seq[s.tag]++) << "thread " << s.tag << " out of order";
  }
  std::set<uint32_t> used;
  for (auto [tag, queue] : queue_of) used.insert(queue);
  EXPECT_EQ(used.size(), size_t{kThreads}) << "threads that started one after another share queues";
  std::lock_guard lock(client.mu);
  for (auto [queue, tag] : client.replies) {
    EXPECT_EQ(queue, queue_of[tag]) << "a reply to thread " << tag << " came on another queue";
  }
}

// A Tflush goes on the queue of the request it flushes, whatever thread sends it: the
// server then sees it after that request, and answers both on that ring in order.
TEST(ShmChannelTest, TflushTakesTheQueueOfTheRequestItFlushes) {
  EchoServer server(nullptr, 2);
  QueueClient client(server.address());
  // Threads started one after another take the queues in turn: find one whose own
  // queue differs from the first's, so that only the routing can put its Tflush there.
  std::thread([&] {
    client.channel->Send(OutFrame{MakeMessage(116, 7, 0, 23), {}, nullptr});
  }).join();
  for (uint16_t tag = 20; tag < 24; ++tag) {
    std::thread([&] {
      client.channel->Send(OutFrame{MakeMessage(100, tag, 0, 11), {}, nullptr});
      client.channel->Send(OutFrame{MakeMessage(108, tag + 10, 7, 11), {}, nullptr});  // Tflush 7
    }).join();
  }
  ASSERT_TRUE(WaitFor([&] { return client.count() == 9; }, 10s)) << client.count();
  std::map<uint16_t, uint32_t> queue_of;
  for (const EchoServer::Seen& s : server.seen()) queue_of[s.tag] = s.queue;
  std::set<uint32_t> own_queues;
  for (uint16_t tag = 20; tag < 24; ++tag) {
    own_queues.insert(queue_of[tag]);
    EXPECT_EQ(queue_of[tag + 10], queue_of[7]) << "the Tflush sent with tag " << tag + 10;
  }
  EXPECT_EQ(own_queues.size(), 2u) << "the senders never used the other queue";
}

// A client process killed by SIGKILL: the server's channel closes promptly, and its
// region and descriptors are released.
TEST(ShmChannelTest, KilledPeerIsNoticedAndReleased) {
  EchoServer server;
  {
    Client warm(server.address());  // first connection allocates lazily-made state
  }
  ASSERT_TRUE(WaitFor([&] { return server.closes().size() == 1; }, 5s));
  size_t fds_before = OpenFds();
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    asio::io_context io;
    auto ch = Dial(io, *ParseAddress(server.address()), 5s);
    if (!ch) _exit(1);
    ::pause();
    _exit(0);
  }
  // Connected (the server accepted) before the kill.
  ASSERT_TRUE(WaitFor([&] { return OpenFds() > fds_before; }, 5s));
  auto t0 = std::chrono::steady_clock::now();
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  ASSERT_TRUE(WaitFor([&] { return server.closes().size() == 2; }, 5s));
  auto noticed = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(noticed, 2s);
  EXPECT_FALSE(server.closes()[1].code()) << server.closes()[1].ToString();  // clean EOF
  // At most as many as before: the warm-up connection's descriptors may still have been
  // on their way out when they were counted.
  EXPECT_TRUE(WaitFor([&] { return OpenFds() <= fds_before; }, 5s))
      << OpenFds() << " descriptors open, " << fds_before << " before";
}

// The server's own end closing: the client's channel closes with a clean EOF.
TEST(ShmChannelTest, ServerGoingAwayClosesTheClient) {
  auto server = std::make_unique<EchoServer>();
  Client client(server->address());
  auto closed = client.closed.get_future();
  server.reset();
  ASSERT_EQ(closed.wait_for(5s), std::future_status::ready);
  EXPECT_FALSE(closed.get().code());
}

TEST(ShmChannelTest, DialingNothingFailsClearly) {
  asio::io_context io;
  auto ch = Dial(io, *ParseAddress("shm!/nonexistent/ninefold.sock"), 1s);
  ASSERT_FALSE(ch);
  EXPECT_EQ(ch.error().code(), std::errc::no_such_file_or_directory);
  EXPECT_NE(ch.error().ToString().find("shm!/nonexistent/ninefold.sock"), std::string::npos);
}

// unix! and shm! listen on a socket file the same way: a live server's file is never
// taken over (address_in_use, naming the address), a dead server's leftover is replaced.
TEST(ShmChannelTest, UnixAndShmListenersRefuseALiveSocketAndReplaceAStaleOne) {
  for (const char* scheme : {"unix", "shm"}) {
    SCOPED_TRACE(scheme);
    std::string path = (std::filesystem::temp_directory_path() /
                        ("ninefold-listen-" + std::to_string(::getpid()) + "-" + scheme))
                           .string();
    ::unlink(path.c_str());
    Address address = *ParseAddress(std::string(scheme) + "!" + path);
    asio::io_context io;
    auto ignore = [](std::shared_ptr<Channel>) {};
    {
      auto first = Listen(io, address, ignore);
      ASSERT_TRUE(first) << first.error().ToString();
      auto second = Listen(io, address, ignore);
      ASSERT_FALSE(second);
      EXPECT_EQ(second.error().code(), std::errc::address_in_use);
      EXPECT_NE(second.error().ToString().find(path), std::string::npos);
    }
    // A socket file nobody listens on any more (a server that was killed).
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
    ::unlink(path.c_str());
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ::close(fd);
    ASSERT_TRUE(std::filesystem::exists(path));
    auto again = Listen(io, address, ignore);
    ASSERT_TRUE(again) << again.error().ToString();
    again->reset();
    ::unlink(path.c_str());
  }
}

// The raw end of an shm! connection, as a hostile client holds it: the server's hello and
// its three descriptors, received as OpenShmClient receives them, and the whole region
// mapped read-write — but none of the client's checks on the layout, and no channel.
// Unmaps the region and closes every descriptor when destroyed.
class RawShmClient {
 public:
  RawShmClient() = default;
  RawShmClient(const RawShmClient&) = delete;
  RawShmClient& operator=(const RawShmClient&) = delete;
  ~RawShmClient() {
    if (region_ != nullptr) ::munmap(region_, hello_.region_bytes);
    for (int fd : fds_) {
      if (fd >= 0) ::close(fd);
    }
    if (socket_ >= 0) ::close(socket_);
  }

  // Connects to the listener at `address` ("shm!PATH"), receives the hello with its
  // descriptors and maps the region. Once per object: ASSERT_TRUE(raw.Connect(address)).
  testing::AssertionResult Connect(const std::string& address) {
    Result<Address> a = ParseAddress(address);
    if (!a || a->kind != Address::Kind::kShm) {
      return testing::AssertionFailure() << "not an shm! address: " << address;
    }
    socket_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (socket_ < 0) return SystemFailure("socket");
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::strncpy(sun.sun_path, a->path.c_str(), sizeof sun.sun_path - 1);
    if (::connect(socket_, reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0) {
      return SystemFailure("connect to " + a->path);
    }
    timeval limit{.tv_sec = 10, .tv_usec = 0};  // a server that never says hello: fail, not hang
    if (::setsockopt(socket_, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit) != 0) {
      return SystemFailure("setsockopt SO_RCVTIMEO");
    }
    Result<ReceivedShmHello> received = ReceiveShmHello(socket_);
    if (!received) return testing::AssertionFailure() << received.error().ToString();
    hello_ = received->hello;
    std::copy(std::begin(received->fds), std::end(received->fds), fds_);
    void* region =
        ::mmap(nullptr, hello_.region_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fds_[0], 0);
    if (region == MAP_FAILED) {
      return SystemFailure("map the region of " + std::to_string(hello_.region_bytes) + " bytes");
    }
    region_ = static_cast<std::byte*>(region);
    return testing::AssertionSuccess();
  }

  const ShmHello& hello() const { return hello_; }
  std::span<std::byte> region() const {
    return {region_, region_ != nullptr ? hello_.region_bytes : 0};
  }
  int memfd() const { return fds_[0]; }
  int server_eventfd() const { return fds_[1]; }  // the server's doorbell: write 8 bytes
  int client_eventfd() const { return fds_[2]; }
  int pages_socket(uint32_t queue = 0) const { return fds_[3 + queue]; }

 private:
  static testing::AssertionResult SystemFailure(const std::string& what) {
    return testing::AssertionFailure() << what << ": " << std::strerror(errno);
  }

  int socket_ = -1;
  ShmHello hello_{};
  // memfd, server eventfd, client eventfd, a pages socket per queue (the hello's order)
  int fds_[3 + kMaxShmQueues] = {-1, -1, -1, -1, -1, -1, -1};
  std::byte* region_ = nullptr;
};

// A hostile client: takes the hello like any client, then writes random values over the
// whole shared region. The server must close that connection with an error, not crash
// or hang, and keep serving a well-behaved client meanwhile.
TEST(ShmChannelHostileTest, ScribblerIsCutOffOthersUnaffected) {
  EchoServer server;
  RawShmClient hostile;
  ASSERT_TRUE(hostile.Connect(server.address()));
  std::span<std::byte> region = hostile.region();

  Client good(server.address());
  std::atomic<bool> stop{false};
  std::thread scribbler([&] {
    std::mt19937 rng(11);
    auto* words = reinterpret_cast<uint32_t*>(region.data());
    size_t word_count = region.size() / 4;
    uint64_t ring = 1;
    while (!stop) {
      words[rng() % word_count] = rng();
      // Keep ringing the server's doorbell so it looks at the garbage.
      if (rng() % 64 == 0) [[maybe_unused]]
        auto n = ::write(hostile.server_eventfd(), &ring, 8);
    }
  });
  for (uint32_t i = 0; i < 500; ++i) good.channel->Send(OutFrame{MakeFrame(i, 3000), {}, nullptr});
  bool cut_off = WaitFor(
      [&] {
        for (const Error& e : server.closes()) {
          if (e.code()) return true;
        }
        return false;
      },
      20s);
  bool good_done = WaitFor([&] { return good.received == 500; }, 30s);
  stop = true;
  scribbler.join();
  EXPECT_TRUE(cut_off) << "the server never noticed the scribbling";
  EXPECT_TRUE(good_done) << good.received << " of 500 echoed to the good client";
  EXPECT_EQ(good.bad, 0u);
}

// A hostile server's hello: a queue count out of range, descriptors that do not match
// it, rings of one queue on top of another's, a data area over a ring. The client
// refuses each before mapping anything, saying why; the same hello made right connects
// with its two queues.
TEST(ShmChannelHostileTest, HellosWithBadQueuesAreRefused) {
  constexpr uint64_t kRing = 64 * 1024;  // ring footprint: a page multiple
  struct Case {
    const char* name;
    uint32_t queues;
    size_t pages_sockets;  // descriptors sent after the first three
    uint32_t s2c_offset;
    uint64_t data_offset;
    const char* expect;  // in the error; empty: connects
  };
  const Case cases[] = {
      {"no queues", 0, 0, kRing, 4 * kRing, "0 queues"},
      {"five queues", 5, 4, kRing, 10 * kRing, "5 queues"},
      {"a pages socket missing", 2, 1, kRing, 4 * kRing, "4 descriptors, not 5"},
      {"queue 1 on queue 0's ring", 2, 2, 2 * kRing, 4 * kRing, "queues of rings"},
      {"data over queue 1", 2, 2, kRing, 3 * kRing, "data area"},
      {"right", 2, 2, kRing, 4 * kRing, ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const uint64_t data_bytes = 16 * buf::kPageSize;
    Result<std::shared_ptr<buf::Region>> region =
        buf::Region::Create(5 * kRing + data_bytes, "hostile-hello");
    ASSERT_TRUE(region) << region.error().ToString();
    for (uint64_t at = 0; at < 4 * kRing; at += kRing) {
      ASSERT_TRUE(RingView::Init({(*region)->data() + at, kRing}));
    }
    ShmHello hello{.magic = kShmMagic,
                   .version = kShmVersion,
                   .region_bytes = (*region)->size(),
                   .ring_bytes = static_cast<uint32_t>(kRing),
                   .c2s_offset = 0,
                   .s2c_offset = c.s2c_offset,
                   .queues = c.queues,
                   .data_offset = c.data_offset,
                   .data_bytes = data_bytes};
    int link[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, link), 0);
    std::vector<int> fds = {(*region)->fd(), ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK),
                            ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
    std::vector<int> ours;  // our ends of the pages sockets
    for (size_t i = 0; i < c.pages_sockets; ++i) {
      int pair[2];
      ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
      ours.push_back(pair[0]);
      fds.push_back(pair[1]);
    }
    ASSERT_EQ(SendWithFds(link[0], &hello, sizeof hello, fds, 0),
              static_cast<ssize_t>(sizeof hello));
    for (size_t i = 1; i < fds.size(); ++i) ::close(fds[i]);  // the client has them now
    asio::io_context io;
    Result<std::shared_ptr<Channel>> ch =
        OpenShmClient(io, link[1], Address{.kind = Address::Kind::kShm, .path = "/hostile"}, 5s);
    if (c.expect[0] == '\0') {
      ASSERT_TRUE(ch) << ch.error().ToString();
      EXPECT_EQ((*ch)->queues(), 2u);
      (*ch)->Close();
    } else {
      ASSERT_FALSE(ch) << "connected";
      EXPECT_NE(ch.error().ToString().find(c.expect), std::string::npos) << ch.error().ToString();
    }
    ::close(link[0]);
    for (int fd : ours) ::close(fd);
  }
}

// A hostile client whose ring records carry trailers that point outside the data area,
// name an unknown kind, or make a record longer than its frame without one: each time
// the server closes that connection with a reason naming the fault, and never touches
// memory outside the region (ASan runs this too).
TEST(ShmChannelHostileTest, BadTrailersCloseTheConnection) {
  struct Case {
    const char* name;
    uint32_t magic, kind;
    uint64_t offset, length;  // offset: from the data area's start (UINT64_MAX: its end)
    const char* expect;       // in the close reason
  };
  const Case cases[] = {
      {"payload past the end", kTrailerMagic, kTrailerPayload, UINT64_MAX, 4096,
       "outside a data area"},
      {"placement past the end", kTrailerMagic, kTrailerPlacement, UINT64_MAX - 4095, 8192,
       "outside a data area"},
      {"huge length", kTrailerMagic, kTrailerPayload, 0, UINT64_MAX, "outside a data area"},
      {"unknown kind", kTrailerMagic, 9, 0, 64, "trailer kind 9"},
      {"a pipe from a client", kTrailerMagic, kTrailerPipe, 0, 64, "trailer kind 4"},
      {"a payload that accepts a pipe", kTrailerMagic, kTrailerPayload | kTrailerAcceptsPipe, 0, 64,
       "with a pipe"},
      {"no magic", 0x12345678, kTrailerPayload, 0, 64, "without a trailer"},
      {"payload size mismatch", kTrailerMagic, kTrailerPayload, 0, 7, "size field"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EchoServer server;
    RawShmClient hostile;
    ASSERT_TRUE(hostile.Connect(server.address()));
    const ShmHello& hello = hostile.hello();
    auto ring = RingView::Attach(hostile.region().subspan(hello.c2s_offset, hello.ring_bytes));
    ASSERT_TRUE(ring) << ring.error().ToString();
    RingProducer tx(*ring);
    // A Twrite-shaped head (23 bytes) whose size field counts a payload of c.length.
    std::vector<std::byte> head = MakeFrame(1, 23);
    auto declared = static_cast<uint32_t>(23 + (c.length < 1u << 20 ? c.length : 0));
    std::memcpy(head.data(), &declared, 4);
    ShmTrailer trailer{.magic = c.magic,
                       .kind = c.kind,
                       .offset = c.offset == UINT64_MAX ? hello.data_bytes : c.offset,
                       .length = c.length};
    if (c.offset == UINT64_MAX - 4095) trailer.offset = hello.data_bytes - 4096;
    if (std::string_view(c.name) == "payload size mismatch") trailer.length = 64;
    auto pushed = tx.TryPush(head, std::as_bytes(std::span(&trailer, 1)));
    ASSERT_TRUE(pushed && *pushed);
    uint64_t one = 1;
    ASSERT_EQ(::write(hostile.server_eventfd(), &one, 8), 8);
    bool closed = WaitFor([&] { return !server.closes().empty(); }, 10s);
    ASSERT_TRUE(closed) << "the server did not close the connection";
    Error why = server.closes()[0];
    EXPECT_TRUE(why.code()) << why.ToString();
    EXPECT_NE(why.ToString().find(c.expect), std::string::npos) << why.ToString();
  }
}

}  // namespace
}  // namespace ninefold::transport
