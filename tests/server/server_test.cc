// The server framework over real sockets, driven by a raw 9P client built on the codec:
// version negotiation, the three dialects, Tflush ordering, concurrency, limits,
// malformed input and disconnects.
#include "ninefold/server/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "ninefold/buf/buffer.h"
#include "ninefold/client/fs.h"
#include "ninefold/fs/exportfs.h"
#include "ninefold/fs/ramfs.h"
#include "ninefold/fs/readonly.h"
#include "ninefold/fs/synthetic.h"
#include "ninefold/wire/codec.h"

namespace ninefold::server {
namespace {

using namespace std::chrono_literals;
using wire::Dialect;

// A gate a test opens to let blocked reads finish.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  void Open() {
    std::lock_guard lock(mu);
    open = true;
    cv.notify_all();
  }
  void Wait() {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return open; });
  }
};

// Counts the nodes alive, so tests can see fids released.
std::atomic<int> g_live_nodes{0};
class CountingNode final : public fs::Node {
 public:
  explicit CountingNode(std::unique_ptr<fs::Node> inner) : inner_(std::move(inner)) {
    g_live_nodes++;
  }
  ~CountingNode() override { g_live_nodes--; }
  wire::Qid qid() const override { return inner_->qid(); }
  Result<std::unique_ptr<fs::Node>> Walk(std::string_view name) override {
    return Wrap(inner_->Walk(name));
  }
  Result<std::unique_ptr<fs::Node>> Clone() const override { return Wrap(inner_->Clone()); }
  Result<wire::Rgetattr> GetAttr(uint64_t mask) override { return inner_->GetAttr(mask); }
  Result<uint32_t> Open(uint32_t flags) override { return inner_->Open(flags); }
  Result<size_t> Read(uint64_t off, std::span<std::byte> out) override {
    return inner_->Read(off, out);
  }

 private:
  static Result<std::unique_ptr<fs::Node>> Wrap(Result<std::unique_ptr<fs::Node>> n) {
    if (!n) return n;
    return std::unique_ptr<fs::Node>(new CountingNode(std::move(*n)));
  }
  std::unique_ptr<fs::Node> inner_;
};
class CountingServer final : public fs::FileServer {
 public:
  explicit CountingServer(std::unique_ptr<fs::FileServer> inner) : inner_(std::move(inner)) {}
  Result<std::unique_ptr<fs::Node>> Attach(const fs::Identity& who,
                                           std::string_view aname) override {
    auto n = inner_->Attach(who, aname);
    if (!n) return n;
    return std::unique_ptr<fs::Node>(new CountingNode(std::move(*n)));
  }

 private:
  std::unique_ptr<fs::FileServer> inner_;
};

// A blocking 9P client on a TCP (or unix) socket: sends frames, receives and decodes
// replies.
class RawClient {
 public:
  explicit RawClient(const std::string& unix_path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", unix_path.c_str());
    EXPECT_EQ(::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0) << unix_path;
  }
  explicit RawClient(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~RawClient() { ::close(fd_); }

  void SendRaw(std::span<const std::byte> bytes) {
    ASSERT_EQ(::write(fd_, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }
  void Send(uint16_t tag, const wire::Message& msg) {
    auto bytes = wire::Encode(wire::Frame{tag, msg}, dialect_, 1 << 20);
    ASSERT_TRUE(bytes) << bytes.error().ToString();
    SendRaw(*bytes);
  }
  // Waits up to `timeout` for a reply; nullopt on timeout or EOF.
  std::optional<wire::Frame> Recv(std::chrono::milliseconds timeout = 5000ms) {
    std::byte header[4];
    if (!ReadFull(header, 4, timeout)) return std::nullopt;
    uint32_t size;
    std::memcpy(&size, header, 4);
    buf_.assign(header, header + 4);
    buf_.resize(size);
    if (!ReadFull(buf_.data() + 4, size - 4, timeout)) return std::nullopt;
    auto f = wire::Decode(buf_, dialect_);
    EXPECT_TRUE(f) << f.error().ToString();
    if (!f) return std::nullopt;
    return *f;
  }
  template <class R>
  R Call(uint16_t tag, const wire::Message& msg) {
    Send(tag, msg);
    auto f = Recv();
    EXPECT_TRUE(f.has_value()) << "no reply";
    if (!f) return R{};
    EXPECT_EQ(f->tag, tag);
    EXPECT_TRUE(std::holds_alternative<R>(f->msg))
        << "got " << wire::Format(*f, dialect_) << ", wanted " << R::kName;
    return std::holds_alternative<R>(f->msg) ? std::get<R>(f->msg) : R{};
  }
  // The errno of an Rlerror / Rerror reply, or -1.
  int CallError(uint16_t tag, const wire::Message& msg) {
    Send(tag, msg);
    auto f = Recv();
    if (!f) return -1;
    if (auto* e = std::get_if<wire::Rlerror>(&f->msg)) return static_cast<int>(e->ecode);
    if (auto* e = std::get_if<wire::Rerror>(&f->msg)) return static_cast<int>(e->errnum);
    ADD_FAILURE() << "expected an error, got " << wire::Format(*f, dialect_);
    return -1;
  }
  void Version(Dialect d, uint32_t msize = 65536) {
    auto rv = Call<wire::Rversion>(wire::kNoTag,
                                   wire::Tversion{.msize = msize, .version = wire::DialectName(d)});
    EXPECT_EQ(rv.version, wire::DialectName(d));
    dialect_ = d;
  }
  void Attach(uint32_t fid, std::string_view aname) {
    Call<wire::Rattach>(
        1, wire::Tattach{
               .fid = fid, .afid = wire::kNoFid, .uname = "test", .aname = aname, .n_uname = 0});
  }
  // True once the server has closed the connection.
  bool Closed(std::chrono::milliseconds timeout = 5000ms) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
    char c;
    return ::recv(fd_, &c, 1, MSG_PEEK) == 0;
  }
  Dialect dialect_ = Dialect::k9P2000L;

 private:
  bool ReadFull(std::byte* p, size_t n, std::chrono::milliseconds timeout) {
    while (n > 0) {
      pollfd pfd{fd_, POLLIN, 0};
      if (::poll(&pfd, 1, static_cast<int>(timeout.count())) <= 0) return false;
      ssize_t r = ::read(fd_, p, n);
      if (r <= 0) return false;
      p += r;
      n -= static_cast<size_t>(r);
    }
    return true;
  }
  int fd_;
  std::vector<std::byte> buf_;
};

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ram = fs::MakeRamFs();
    ASSERT_TRUE(ram);
    table_.Add("ram", std::move(*ram));
    auto counted = fs::MakeRamFs();
    ASSERT_TRUE(counted);
    table_.Add("counted", std::make_unique<CountingServer>(std::move(*counted)));
    auto dir = fs::SyntheticDir::Make();
    dir->AddFile("block",
                 {.read = [gate = &gate_](uint64_t, std::span<std::byte>) -> Result<size_t> {
                   gate->Wait();
                   return 0;
                 }});
    dir->AddFile("data", fs::ReadOnly([]() -> Result<std::string> { return "hello"; }));
    dir->AddFile("sink", {.write = [this](uint64_t offset,
                                          std::span<const std::byte> data) -> Result<size_t> {
                   std::lock_guard lock(sink_mu_);
                   sink_[offset].assign(reinterpret_cast<const char*>(data.data()), data.size());
                   return data.size();
                 }});
    table_.Add("synthetic", fs::MakeSyntheticServer(dir));
    server_ = std::make_unique<Server>(
        table_, ServerOptions{.msize = 1 << 20, .max_fids = 32, .worker_threads = 4});
    auto bound = server_->Listen(*transport::ParseAddress("tcp!127.0.0.1!0"));
    ASSERT_TRUE(bound) << bound.error().ToString();
    port_ = bound->port;
    thread_ = std::thread([this] { server_->Run(); });
  }
  void TearDown() override {
    gate_.Open();
    server_->Shutdown();
    thread_.join();
  }

  Gate gate_;
  std::mutex sink_mu_;
  std::map<uint64_t, std::string> sink_;  // what "sink" was written, by offset
  ExportTable table_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  uint16_t port_ = 0;
};

TEST_F(ServerTest, VersionNegotiatesDialectAndMsize) {
  RawClient c(port_);
  auto rv = c.Call<wire::Rversion>(wire::kNoTag,
                                   wire::Tversion{.msize = 1u << 24, .version = "9P2000.L"});
  EXPECT_EQ(rv.msize, 1u << 20);  // the server's limit
  EXPECT_EQ(rv.version, "9P2000.L");
  rv = c.Call<wire::Rversion>(wire::kNoTag, wire::Tversion{.msize = 8192, .version = "9P2000.u"});
  EXPECT_EQ(rv.msize, 8192u);
  EXPECT_EQ(rv.version, "9P2000.u");
  rv = c.Call<wire::Rversion>(wire::kNoTag, wire::Tversion{.msize = 8192, .version = "9P2000.x"});
  EXPECT_EQ(rv.version, "9P2000");
  rv = c.Call<wire::Rversion>(wire::kNoTag, wire::Tversion{.msize = 8192, .version = "9P3000"});
  EXPECT_EQ(rv.version, "unknown");
}

TEST_F(ServerTest, RequestsBeforeVersionAreRefused) {
  RawClient c(port_);
  EXPECT_EQ(c.CallError(1, wire::Tattach{.fid = 0, .afid = wire::kNoFid, .aname = "ram"}), EPROTO);
}

TEST_F(ServerTest, AuthIsNotRequiredTheWayDiodClientsExpect) {
  RawClient c(port_);
  c.Version(Dialect::k9P2000L);
  EXPECT_EQ(c.CallError(1, wire::Tauth{.afid = 0, .uname = "", .aname = "ram"}), ENOENT);
  c.Attach(0, "ram");
}

TEST_F(ServerTest, CreateWriteReadInDotL) {
  RawClient c(port_);
  c.Version(Dialect::k9P2000L);
  c.Attach(0, "ram");
  c.Call<wire::Rwalk>(2, wire::Twalk{.fid = 0, .newfid = 1});
  c.Call<wire::Rlcreate>(
      3, wire::Tlcreate{.fid = 1, .name = "f", .flags = O_RDWR | O_CREAT, .mode = 0644});
  std::string data = "ninefold";
  EXPECT_EQ(c.Call<wire::Rwrite>(4, wire::Twrite{.fid = 1, .data = wire::Data(data)}).count, 8u);
  c.Send(5, wire::Tread{.fid = 1, .offset = 4, .count = 100});
  auto r = c.Recv();
  ASSERT_TRUE(r);
  EXPECT_EQ(std::get<wire::Rread>(r->msg).data.AsString(), "fold");
  EXPECT_EQ(c.CallError(6, wire::Twalk{.fid = 0, .newfid = 2, .wnames = {"missing"}}), ENOENT);
  EXPECT_EQ(c.CallError(7, wire::Tgetattr{.fid = 99}), EBADF);
}

TEST_F(ServerTest, FlushIsAnsweredOnlyAfterTheFlushedReply) {
  RawClient c(port_);
  c.Version(Dialect::k9P2000L);
  c.Attach(0, "synthetic");
  c.Call<wire::Rwalk>(2, wire::Twalk{.fid = 0, .newfid = 1, .wnames = {"block"}});
  c.Call<wire::Rlopen>(3, wire::Tlopen{.fid = 1, .flags = O_RDONLY});
  c.Send(10, wire::Tread{.fid = 1, .offset = 0, .count = 10});
  c.Send(11, wire::Tflush{.oldtag = 10});
  // While the read is blocked, another fid still gets answered at once...
  auto attr = c.Call<wire::Rgetattr>(12, wire::Tgetattr{.fid = 0, .request_mask = 0x7ff});
  EXPECT_NE(attr.qid.type & wire::kQtDir, 0);
  // ...and so does a Tflush of the waiting Tflush (nothing to wait for: a flush has no
  // reply of its own to come)...
  c.Call<wire::Rflush>(13, wire::Tflush{.oldtag = 11});
  // ...but neither the read nor the flush is.
  EXPECT_FALSE(c.Recv(200ms).has_value());
  gate_.Open();
  auto first = c.Recv();
  auto second = c.Recv();
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->tag, 10);  // the flushed request's reply, then Rflush: never the reverse
  EXPECT_TRUE(std::holds_alternative<wire::Rread>(first->msg));
  EXPECT_EQ(second->tag, 11);
  EXPECT_TRUE(std::holds_alternative<wire::Rflush>(second->msg));
}

TEST_F(ServerTest, BlockedCallDoesNotHoldUpCallsThatMayBlockOnOtherFids) {
  RawClient c(port_);
  c.Version(Dialect::k9P2000L);
  c.Attach(0, "synthetic");
  c.Call<wire::Rwalk>(2, wire::Twalk{.fid = 0, .newfid = 1, .wnames = {"block"}});
  c.Call<wire::Rlopen>(3, wire::Tlopen{.fid = 1, .flags = O_RDONLY});
  c.Call<wire::Rwalk>(4, wire::Twalk{.fid = 0, .newfid = 2, .wnames = {"data"}});
  c.Call<wire::Rlopen>(5, wire::Tlopen{.fid = 2, .flags = O_RDONLY});
  c.Send(10, wire::Tread{.fid = 1, .offset = 0, .count = 10});  // blocks in the back end
  // "data" may block as well, so these cannot run where the blocked read runs: another
  // thread must take over the connection (in a few milliseconds).
  auto r = c.Call<wire::Rread>(11, wire::Tread{.fid = 2, .offset = 0, .count = 100});
  EXPECT_EQ(r.data.AsString(), "hello");
  c.Call<wire::Rgetattr>(12, wire::Tgetattr{.fid = 2, .request_mask = wire::kGetattrBasic});
  gate_.Open();
  auto blocked = c.Recv();
  ASSERT_TRUE(blocked);
  EXPECT_EQ(blocked->tag, 10);
  EXPECT_TRUE(std::holds_alternative<wire::Rread>(blocked->msg));
}

TEST_F(ServerTest, PipelinedWritesArriveIntact) {
  // Many Twrites in one burst, of many sizes: the server keeps each frame's bytes (no
  // copy) while it reads the next ones, so this checks that no frame is overwritten.
  RawClient c(port_);
  c.Version(Dialect::k9P2000L);
  c.Attach(0, "synthetic");
  c.Call<wire::Rwalk>(2, wire::Twalk{.fid = 0, .newfid = 1, .wnames = {"sink"}});
  c.Call<wire::Rlopen>(3, wire::Tlopen{.fid = 1, .flags = O_WRONLY});
  constexpr int kWrites = 64;
  std::vector<std::string> payloads;
  std::vector<std::byte> burst;
  uint64_t offset = 0;
  for (int i = 0; i < kWrites; ++i) {
    size_t size = 1 + (static_cast<size_t>(i) * 7919) % 60000;
    std::string p(size, '\0');
    for (size_t j = 0; j < size; ++j) p[j] = static_cast<char>('a' + (i + j) % 26);
    auto frame =
        wire::Encode(wire::Frame{static_cast<uint16_t>(100 + i),
                                 wire::Twrite{.fid = 1, .offset = offset, .data = wire::Data(p)}},
                     Dialect::k9P2000L, 65536);
    ASSERT_TRUE(frame);
    burst.insert(burst.end(), frame->begin(), frame->end());
    payloads.push_back(std::move(p));
    offset += 100000;
  }
  c.SendRaw(burst);
  std::set<uint16_t> answered;
  for (int i = 0; i < kWrites; ++i) {
    auto f = c.Recv();
    ASSERT_TRUE(f) << "reply " << i;
    ASSERT_TRUE(std::holds_alternative<wire::Rwrite>(f->msg))
        << wire::Format(*f, Dialect::k9P2000L);
    int n = f->tag - 100;
    ASSERT_TRUE(n >= 0 && n < kWrites);
    EXPECT_EQ(std::get<wire::Rwrite>(f->msg).count, payloads[static_cast<size_t>(n)].size());
    answered.insert(f->tag);
  }
  EXPECT_EQ(answered.size(), static_cast<size_t>(kWrites));
  std::lock_guard lock(sink_mu_);
  ASSERT_EQ(sink_.size(), static_cast<size_t>(kWrites));
  for (int i = 0; i < kWrites; ++i) {
    EXPECT_EQ(sink_[static_cast<uint64_t>(i) * 100000], payloads[static_cast<size_t>(i)])
        << "write " << i;
  }
}

// A Twrite whose data arrives in many small segments: the server splices what it can
// into a pipe, and when the pipe's slots (one per segment) run out, reads the rest into
// memory. The node still gets the client's one write as one Write call (a synthetic file
// may take each write as a whole), every byte in order.
TEST_F(ServerTest, ATwritePartlySplicedReachesTheNodeAsOneWrite) {
  RawClient c(port_);
  c.Version(Dialect::k9P2000L);
  c.Attach(0, "synthetic");
  c.Call<wire::Rwalk>(2, wire::Twalk{.fid = 0, .newfid = 1, .wnames = {"sink"}});
  c.Call<wire::Rlopen>(3, wire::Tlopen{.fid = 1, .flags = O_WRONLY});
  std::string payload(60000, '\0');
  for (size_t j = 0; j < payload.size(); ++j) payload[j] = static_cast<char>('a' + j * 7 % 26);
  auto frame = wire::Encode(wire::Frame{9, wire::Twrite{.fid = 1, .data = wire::Data(payload)}},
                            Dialect::k9P2000L, 65536);
  ASSERT_TRUE(frame);
  // The head alone (so that the server reads exactly it and splices what follows), then
  // the data in 400 segments of 150 bytes: more than the 256 slots of the server's 1 MiB
  // pipes, so the pipe fills up before the data is all there.
  constexpr size_t kTwriteHead = 23;
  c.SendRaw(std::span<const std::byte>(*frame).first(kTwriteHead));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::span<const std::byte> rest = std::span<const std::byte>(*frame).subspan(kTwriteHead);
  while (!rest.empty()) {
    size_t n = std::min<size_t>(rest.size(), 150);
    c.SendRaw(rest.first(n));
    rest = rest.subspan(n);
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
  auto reply = c.Recv();
  ASSERT_TRUE(reply);
  ASSERT_TRUE(std::holds_alternative<wire::Rwrite>(reply->msg))
      << wire::Format(*reply, Dialect::k9P2000L);
  EXPECT_EQ(std::get<wire::Rwrite>(reply->msg).count, payload.size());
  std::lock_guard lock(sink_mu_);
  ASSERT_EQ(sink_.size(), 1u) << "one Twrite reached the node as " << sink_.size() << " writes";
  EXPECT_TRUE(sink_[0] == payload) << "the bytes differ";
}

TEST_F(ServerTest, FlushOfAnAnsweredTagIsImmediate) {
  RawClient c(port_);
  c.Version(Dialect::k9P2000L);
  c.Call<wire::Rflush>(5, wire::Tflush{.oldtag = 77});
}

TEST_F(ServerTest, MalformedFrameClosesOnlyThatConnection) {
  RawClient good(port_), bad(port_);
  good.Version(Dialect::k9P2000L);
  good.Attach(0, "ram");
  bad.Version(Dialect::k9P2000L);
  // A Twalk claiming 17 names.
  std::vector<std::byte> frame = {std::byte{17},
                                  {},
                                  {},
                                  {},
                                  std::byte{110},
                                  std::byte{1},
                                  {},
                                  {},
                                  {},
                                  {},
                                  {},
                                  std::byte{1},
                                  {},
                                  {},
                                  {},
                                  std::byte{17},
                                  {}};
  bad.SendRaw(frame);
  EXPECT_TRUE(bad.Closed());
  good.Call<wire::Rgetattr>(3, wire::Tgetattr{.fid = 0, .request_mask = 0x7ff});
  // A frame larger than the negotiated msize is refused the same way.
  RawClient big(port_);
  big.Version(Dialect::k9P2000L, 4096);
  std::vector<std::byte> huge(8192);
  uint32_t size = 8192;
  std::memcpy(huge.data(), &size, 4);
  huge[4] = std::byte{118};
  big.SendRaw(huge);
  EXPECT_TRUE(big.Closed());
}

TEST_F(ServerTest, FidLimitGivesEmfile) {
  RawClient c(port_);
  c.Version(Dialect::k9P2000L);
  c.Attach(0, "ram");
  for (uint32_t fid = 1; fid < 32; ++fid)
    c.Call<wire::Rwalk>(2, wire::Twalk{.fid = 0, .newfid = fid});
  EXPECT_EQ(c.CallError(2, wire::Twalk{.fid = 0, .newfid = 32}), EMFILE);
  c.Call<wire::Rclunk>(3, wire::Tclunk{.fid = 5});
  c.Call<wire::Rwalk>(2, wire::Twalk{.fid = 0, .newfid = 32});
}

TEST_F(ServerTest, DisconnectReleasesEveryFid) {
  int before = g_live_nodes.load();
  {
    RawClient c(port_);
    c.Version(Dialect::k9P2000L);
    c.Attach(0, "counted");
    for (uint32_t fid = 1; fid <= 10; ++fid) {
      c.Call<wire::Rwalk>(2, wire::Twalk{.fid = 0, .newfid = fid});
    }
    EXPECT_EQ(g_live_nodes.load(), before + 11);
  }
  for (int i = 0; i < 200 && g_live_nodes.load() != before; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(g_live_nodes.load(), before);
}

TEST_F(ServerTest, TagReusedWhileInFlightClosesTheConnection) {
  RawClient c(port_);
  c.Version(Dialect::k9P2000L);
  c.Attach(0, "synthetic");
  c.Call<wire::Rwalk>(2, wire::Twalk{.fid = 0, .newfid = 1, .wnames = {"block"}});
  c.Call<wire::Rlopen>(3, wire::Tlopen{.fid = 1, .flags = O_RDONLY});
  c.Send(10, wire::Tread{.fid = 1, .count = 10});
  c.Send(10, wire::Tgetattr{.fid = 0});
  EXPECT_TRUE(c.Closed());
}

// Many requests in flight on one connection (more than the server lists before it keeps
// a bit per tag): each is answered once under its own tag, a Tflush deep in the pipeline
// is answered right after the reply it flushes, a tag reused deep in it still closes the
// connection, and once all are answered every tag is free again. The reads block in the
// back end, so they stay in flight; a server with threads enough for all of them.
TEST_F(ServerTest, ManyRequestsInFlightKeepTheirTagsApart) {
  constexpr uint16_t kFirst = 1000, kCount = 100;
  Server deep(table_, ServerOptions{.msize = 1 << 16, .worker_threads = 2 * kCount + 16});
  auto bound = deep.Listen(*transport::ParseAddress("tcp!127.0.0.1!0"));
  ASSERT_TRUE(bound) << bound.error().ToString();
  std::thread runner([&] { deep.Run(); });
  auto open_block = [&](RawClient& c) {
    c.Version(Dialect::k9P2000L);
    c.Attach(0, "synthetic");
    c.Call<wire::Rwalk>(2, wire::Twalk{.fid = 0, .newfid = 1, .wnames = {"block"}});
    c.Call<wire::Rlopen>(3, wire::Tlopen{.fid = 1, .flags = O_RDONLY});
  };
  {
    RawClient reuser(bound->port);
    open_block(reuser);
    for (uint16_t t = kFirst; t < kFirst + kCount; ++t) {
      reuser.Send(t, wire::Tread{.fid = 1, .count = 10});
    }
    reuser.Send(kFirst + 50, wire::Tgetattr{.fid = 0});
    EXPECT_TRUE(reuser.Closed());
  }
  RawClient c(bound->port);
  open_block(c);
  for (uint16_t t = kFirst; t < kFirst + kCount; ++t) {
    c.Send(t, wire::Tread{.fid = 1, .count = 10});
  }
  c.Send(5000, wire::Tflush{.oldtag = kFirst + 50});
  // Nothing is answered while the reads are blocked, but a getattr on another fid is.
  auto attr = c.Call<wire::Rgetattr>(6000, wire::Tgetattr{.fid = 0, .request_mask = 0x7ff});
  EXPECT_NE(attr.qid.type & wire::kQtDir, 0);
  gate_.Open();
  std::set<uint16_t> read_tags;
  bool flushed_read_seen = false;
  for (int i = 0; i < kCount + 1; ++i) {
    auto f = c.Recv();
    ASSERT_TRUE(f) << "reply " << i << " of " << kCount + 1 << " never came";
    if (f->tag == 5000) {
      EXPECT_TRUE(std::holds_alternative<wire::Rflush>(f->msg));
      EXPECT_TRUE(flushed_read_seen) << "Rflush before the reply it flushes";
      continue;
    }
    EXPECT_TRUE(std::holds_alternative<wire::Rread>(f->msg))
        << wire::TypeName(wire::TypeOf(f->msg));
    EXPECT_TRUE(read_tags.insert(f->tag).second) << "tag " << f->tag << " answered twice";
    if (f->tag == kFirst + 50) flushed_read_seen = true;
  }
  EXPECT_EQ(read_tags.size(), kCount);
  EXPECT_EQ(*read_tags.begin(), kFirst);
  EXPECT_EQ(*read_tags.rbegin(), kFirst + kCount - 1);
  // Every tag is free again: reusing them now is no error.
  for (uint16_t t : {kFirst, uint16_t(kFirst + 50), uint16_t(kFirst + kCount - 1)}) {
    c.Call<wire::Rgetattr>(t, wire::Tgetattr{.fid = 0, .request_mask = 0x7ff});
  }
  deep.Shutdown();
  runner.join();
}

TEST_F(ServerTest, ClassicDialectsMapOntoTheFileServer) {
  for (Dialect d : {Dialect::k9P2000, Dialect::k9P2000u}) {
    SCOPED_TRACE(std::string(wire::DialectName(d)));
    RawClient c(port_);
    c.Version(d);
    c.Attach(0, "ram");
    std::string name = d == Dialect::k9P2000 ? "plain" : "dotu";
    c.Call<wire::Rwalk>(2, wire::Twalk{.fid = 0, .newfid = 1});
    c.Call<wire::Rcreate>(3, wire::Tcreate{.fid = 1, .name = name, .perm = 0640, .mode = 2});
    std::string data = "hello";
    c.Call<wire::Rwrite>(4, wire::Twrite{.fid = 1, .data = wire::Data(data)});
    auto st = c.Call<wire::Rstat>(5, wire::Tstat{.fid = 1}).stat;
    EXPECT_EQ(st.name, name);
    EXPECT_EQ(st.length, 5u);
    EXPECT_EQ(st.mode & 0777, 0640u);
    // Directory read: stat records, one of which is the new file.
    c.Call<wire::Rwalk>(6, wire::Twalk{.fid = 0, .newfid = 2});
    c.Call<wire::Ropen>(7, wire::Topen{.fid = 2, .mode = 0});
    c.Send(8, wire::Tread{.fid = 2, .offset = 0, .count = 8192});
    auto r = c.Recv();
    ASSERT_TRUE(r);
    std::span<const std::byte> data_left = std::get<wire::Rread>(r->msg).data.bytes;
    bool found = false;
    while (!data_left.empty()) {
      auto entry = wire::DecodeDirStat(data_left, d);
      ASSERT_TRUE(entry) << entry.error().ToString();
      found |= entry->name == name;
    }
    EXPECT_TRUE(found);
    // Twstat renames; errors carry a string (and, in .u, an errno).
    wire::Stat rename{.type = 0xFFFF,
                      .dev = 0xFFFFFFFF,
                      .qid = {0xFF, 0xFFFFFFFF, ~0ull},
                      .mode = 0xFFFFFFFF,
                      .atime = 0xFFFFFFFF,
                      .mtime = 0xFFFFFFFF,
                      .length = ~0ull,
                      .n_uid = 0xFFFFFFFF,
                      .n_gid = 0xFFFFFFFF,
                      .n_muid = 0xFFFFFFFF};
    std::string new_name = "renamed-" + name;
    rename.name = new_name;
    c.Call<wire::Rwstat>(9, wire::Twstat{.fid = 1, .stat = rename});
    c.Call<wire::Rwalk>(10, wire::Twalk{.fid = 0, .newfid = 3, .wnames = {new_name}});
    c.Send(11, wire::Twalk{.fid = 0, .newfid = 4, .wnames = {name}});
    auto err = c.Recv();
    ASSERT_TRUE(err);
    ASSERT_TRUE(std::holds_alternative<wire::Rerror>(err->msg)) << wire::Format(*err, d);
    EXPECT_EQ(std::get<wire::Rerror>(err->msg).ename, "No such file or directory");
    if (d == Dialect::k9P2000u) {
      EXPECT_EQ(std::get<wire::Rerror>(err->msg).errnum, static_cast<uint32_t>(ENOENT));
    }
    c.Call<wire::Rremove>(12, wire::Tremove{.fid = 3});
  }
}

}  // namespace
}  // namespace ninefold::server

namespace ninefold::server {
namespace {

// A 9P2000.u directory read of many entries, in replies of the size the Linux kernel
// asks for (msize - 24), each name exactly once.
TEST_F(ServerTest, ClassicDirectoryReadListsManyEntriesOnce) {
  RawClient c(port_);
  c.Version(Dialect::k9P2000u, 131072);
  c.Attach(0, "ram");
  c.Call<wire::Rwalk>(2, wire::Twalk{.fid = 0, .newfid = 1});
  c.Call<wire::Rcreate>(
      3, wire::Tcreate{.fid = 1, .name = "many", .perm = 0x80000000u | 0755, .mode = 0});
  constexpr int kEntries = 3000;
  for (int i = 0; i < kEntries; ++i) {
    std::string name = "entry-" + std::to_string(i);
    c.Call<wire::Rwalk>(4, wire::Twalk{.fid = 0, .newfid = 2, .wnames = {"many"}});
    c.Call<wire::Rcreate>(5, wire::Tcreate{.fid = 2, .name = name, .perm = 0644, .mode = 1});
    c.Call<wire::Rclunk>(6, wire::Tclunk{.fid = 2});
  }
  c.Call<wire::Rwalk>(7, wire::Twalk{.fid = 0, .newfid = 3, .wnames = {"many"}});
  c.Call<wire::Ropen>(8, wire::Topen{.fid = 3, .mode = 0});
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (int reads = 0; reads < 1000; ++reads) {
    c.Send(9, wire::Tread{.fid = 3, .offset = offset, .count = 131072 - 24});
    auto r = c.Recv();
    ASSERT_TRUE(r);
    ASSERT_TRUE(std::holds_alternative<wire::Rread>(r->msg)) << wire::Format(*r, c.dialect_);
    auto data = std::get<wire::Rread>(r->msg).data.bytes;
    if (data.empty()) break;
    offset += data.size();
    while (!data.empty()) {
      auto st = wire::DecodeDirStat(data, Dialect::k9P2000u);
      ASSERT_TRUE(st) << st.error().ToString();
      EXPECT_TRUE(seen.insert(std::string(st->name)).second) << "twice: " << st->name;
    }
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(kEntries));
  // Linux asks for the last few bytes of its buffer: a count smaller than the next
  // entry gets an empty reply, not an error, and the read after it goes on from there.
  c.Send(10, wire::Tread{.fid = 3, .offset = 0, .count = 8192});
  auto first = c.Recv();
  ASSERT_TRUE(first);
  uint64_t next = std::get<wire::Rread>(first->msg).data.size();
  c.Send(11, wire::Tread{.fid = 3, .offset = next, .count = 20});
  auto tiny = c.Recv();
  ASSERT_TRUE(tiny);
  ASSERT_TRUE(std::holds_alternative<wire::Rread>(tiny->msg)) << wire::Format(*tiny, c.dialect_);
  EXPECT_EQ(std::get<wire::Rread>(tiny->msg).data.size(), 0u);
  c.Send(12, wire::Tread{.fid = 3, .offset = next, .count = 8192});
  auto more = c.Recv();
  ASSERT_TRUE(more);
  EXPECT_GT(std::get<wire::Rread>(more->msg).data.size(), 0u);
}

// Reads of exported host files over a socket are spliced (file -> pipe -> socket, never in
// the server's memory). Every shape of read must still return exactly the file's bytes:
// page-aligned or not, larger than a pipe holds, across and past the end of the file,
// below the splice threshold, and many at once with fewer pipes than reads (the rest are
// read the ordinary way).
class SpliceTest : public ::testing::Test {
 protected:
  void Start(unsigned splice_pipes) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "splice-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    std::mt19937 rng(7);
    contents_.resize(kSize);
    for (auto& c : contents_) c = static_cast<char>(rng());
    std::ofstream(dir_ / "file", std::ios::binary).write(contents_.data(), kSize);
    auto exp = fs::MakeExportFs(dir_.string());
    ASSERT_TRUE(exp) << exp.error().ToString();
    table_.Add("x", std::move(*exp));
    auto ram = fs::MakeRamFs();
    ASSERT_TRUE(ram) << ram.error().ToString();
    table_.Add("ram", std::move(*ram));
    auto ro = fs::MakeExportFs(dir_.string());
    ASSERT_TRUE(ro) << ro.error().ToString();
    table_.Add("ro", fs::MakeReadOnly(std::move(*ro)));
    server_ = std::make_unique<Server>(
        table_, ServerOptions{.msize = 1 << 20, .worker_threads = 4, .splice_pipes = splice_pipes});
    auto bound = server_->Listen(*transport::ParseAddress("tcp!127.0.0.1!0"));
    ASSERT_TRUE(bound) << bound.error().ToString();
    port_ = bound->port;
    socket_ = (dir_ / "sock").string();
    auto unix_bound = server_->Listen(*transport::ParseAddress("unix!" + socket_));
    ASSERT_TRUE(unix_bound) << unix_bound.error().ToString();
    thread_ = std::thread([this] { server_->Run(); });
  }
  void TearDown() override {
    if (server_) {
      server_->Shutdown();
      thread_.join();
    }
    std::filesystem::remove_all(dir_);
  }
  // Opens "file" on fid 1 of a fresh 9P2000.L connection, over unix or tcp.
  std::unique_ptr<RawClient> OpenFile(bool tcp = false) {
    auto c = tcp ? std::make_unique<RawClient>(port_) : std::make_unique<RawClient>(socket_);
    c->Version(Dialect::k9P2000L, 1 << 20);
    c->Attach(0, "x");
    c->Call<wire::Rwalk>(2, wire::Twalk{.fid = 0, .newfid = 1, .wnames = {"file"}});
    c->Call<wire::Rlopen>(3, wire::Tlopen{.fid = 1, .flags = O_RDONLY});
    return c;
  }
  // What a read of `count` at `offset` must return.
  std::string Expected(uint64_t offset, uint32_t count) const {
    if (offset >= contents_.size()) return "";
    return contents_.substr(offset, count);
  }
  static std::string DataOf(const wire::Frame& f) {
    auto data = std::get<wire::Rread>(f.msg).data.bytes;
    return std::string(reinterpret_cast<const char*>(data.data()), data.size());
  }
  // A new connection is served (after another one misbehaved or vanished).
  void ExpectStillServing() {
    auto again = OpenFile();
    again->Send(4, wire::Tread{.fid = 1, .offset = 7, .count = 100000});
    auto f = again->Recv();
    ASSERT_TRUE(f) << "the server stopped serving";
    EXPECT_TRUE(DataOf(*f) == Expected(7, 100000));
  }

  // A read's or write's place in the file.
  struct IoRange {
    uint64_t offset;
    uint32_t count;
  };

  static constexpr size_t kSize = 3 * 1024 * 1024 + 123;
  std::filesystem::path dir_;
  std::string contents_;
  ExportTable table_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  uint16_t port_ = 0;
  std::string socket_;
};

TEST_F(SpliceTest, EveryShapeOfReadReturnsTheFileExactly) {
  Start(16);
  auto c = OpenFile();
  const uint32_t max = (1u << 20) - 24;
  const IoRange reads[] = {
      {0, max},               // a whole iounit: more pages than the pipe has slots
      {4096, 65536},          // page-aligned
      {1, 65536},             // starts mid-page
      {100000, 200000},       // neither
      {kSize - 1000, 65536},  // across the end of the file: 1000 bytes
      {kSize, 65536},         // at the end: nothing
      {kSize + 10, 100000},   // past it: nothing
      {5, 100},               // small: copied, not spliced
      {2 * max, max},         // a full one again, unaligned
  };
  uint64_t delivered = 0;
  for (const auto& r : reads) {
    c->Send(4, wire::Tread{.fid = 1, .offset = r.offset, .count = r.count});
    auto f = c->Recv();
    ASSERT_TRUE(f) << "no reply to a read of " << r.count << " at " << r.offset;
    ASSERT_TRUE(std::holds_alternative<wire::Rread>(f->msg)) << wire::Format(*f, c->dialect_);
    std::string got = DataOf(*f);
    std::string want = Expected(r.offset, r.count);
    ASSERT_EQ(got.size(), want.size()) << "read of " << r.count << " at " << r.offset;
    EXPECT_TRUE(got == want) << "wrong bytes in a read of " << r.count << " at " << r.offset;
    delivered += got.size();
  }
  const ServerStats& stats = server_->stats();
  EXPECT_GT(stats.bytes_spliced.load(), 2u * max);  // the big ones went through pipes
  EXPECT_EQ(stats.bytes_spliced.load() + stats.bytes_read.load(), delivered);
  // The connection is still in step after all of that.
  c->Call<wire::Rclunk>(5, wire::Tclunk{.fid = 1});
}

TEST_F(SpliceTest, MoreReadsInFlightThanPipesAllMatch) {
  Start(2);
  auto c = OpenFile();
  constexpr int kReads = 48;
  constexpr uint32_t kCount = 100000;
  std::map<uint16_t, uint64_t> offsets;
  for (int i = 0; i < kReads; ++i) {
    uint64_t offset = static_cast<uint64_t>(i) * 65536 + static_cast<uint64_t>(i % 7);
    offsets[static_cast<uint16_t>(10 + i)] = offset;
    c->Send(static_cast<uint16_t>(10 + i),
            wire::Tread{.fid = 1, .offset = offset, .count = kCount});
  }
  uint64_t delivered = 0;  // the last reads reach the end of the file
  for (int i = 0; i < kReads; ++i) {
    auto f = c->Recv();
    ASSERT_TRUE(f) << "reply " << i << " of " << kReads << " missing";
    ASSERT_EQ(offsets.count(f->tag), 1u) << "unexpected tag " << f->tag;
    ASSERT_TRUE(std::holds_alternative<wire::Rread>(f->msg)) << wire::Format(*f, c->dialect_);
    std::string got = DataOf(*f);
    EXPECT_TRUE(got == Expected(offsets[f->tag], kCount)) << "tag " << f->tag;
    delivered += got.size();
    offsets.erase(f->tag);
  }
  EXPECT_TRUE(offsets.empty());
  const ServerStats& stats = server_->stats();
  EXPECT_GT(stats.bytes_spliced.load(), 0u);
  EXPECT_GT(stats.bytes_read.load(), 0u) << "with 48 reads and 2 pipes, some must be copied";
  EXPECT_EQ(stats.bytes_spliced.load() + stats.bytes_read.load(), delivered);
}

// tcp splices as well (the same shapes of read, over the other kind of socket), but only
// reads up to 64 KiB: larger ones are copied (Channel::splice_read_max), as over tcp they
// go faster that way.
TEST_F(SpliceTest, TcpSplicesReadsUpTo64KiBAndCopiesLarger) {
  Start(16);
  auto c = OpenFile(/*tcp=*/true);
  const IoRange reads[] = {{0, 500000}, {3, 65536}, {kSize - 5000, 65536}, {kSize, 65536}};
  uint64_t delivered = 0;
  for (const auto& r : reads) {
    c->Send(4, wire::Tread{.fid = 1, .offset = r.offset, .count = r.count});
    auto f = c->Recv();
    ASSERT_TRUE(f) << "no reply to a read of " << r.count << " at " << r.offset;
    std::string got = DataOf(*f);
    EXPECT_TRUE(got == Expected(r.offset, r.count)) << "read of " << r.count << " at " << r.offset;
    delivered += got.size();
  }
  const ServerStats& stats = server_->stats();
  EXPECT_GE(stats.bytes_read.load(), 500000u) << "the 500,000-byte read was not copied";
  EXPECT_GE(stats.bytes_spliced.load(), 60000u) << "the 64 KiB reads were not spliced";
  EXPECT_EQ(stats.bytes_spliced.load() + stats.bytes_read.load(), delivered);
}

// A client that goes away while spliced replies are still being written: splice(2) into
// a closed socket raises SIGPIPE, which would end this (the server's) process. The server
// must drop that connection and go on serving.
TEST_F(SpliceTest, ClientGoneMidReplyLeavesTheServerServing) {
  Start(16);
  for (bool tcp : {true, false}) {
    auto c = OpenFile(tcp);
    for (uint16_t tag = 10; tag < 26; ++tag) {
      c->Send(tag, wire::Tread{.fid = 1, .offset = 0, .count = (1u << 20) - 24});
    }
    auto first = c->Recv();  // the server is writing replies by now
    ASSERT_TRUE(first);
    c.reset();  // closed with ~15 MiB of replies unread
  }
  std::this_thread::sleep_for(200ms);
  EXPECT_GT(server_->stats().bytes_spliced.load(), 0u);
  ExpectStillServing();
}

TEST_F(SpliceTest, ZeroPipesMeansEveryReadIsCopied) {
  Start(0);
  auto c = OpenFile();
  c->Send(4, wire::Tread{.fid = 1, .offset = 0, .count = 500000});
  auto f = c->Recv();
  ASSERT_TRUE(f);
  EXPECT_TRUE(DataOf(*f) == Expected(0, 500000));
  EXPECT_EQ(server_->stats().bytes_spliced.load(), 0u);
  EXPECT_EQ(server_->stats().bytes_read.load(), 500000u);
}

// --- Twrite data from the socket into pipes (Channel::SpliceWrites, Node::WriteFromPipe)

// Random bytes, different for every seed.
std::vector<std::byte> RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::byte> v(n);
  for (auto& b : v) b = static_cast<std::byte>(rng());
  return v;
}

class SpliceWriteTest : public SpliceTest {
 protected:
  // Creates `name` (O_RDWR | extra flags) on fid 1 of a fresh connection to export `aname`.
  std::unique_ptr<RawClient> CreateFile(bool tcp, std::string_view name, std::string aname = "x",
                                        uint32_t extra = 0) {
    auto c = tcp ? std::make_unique<RawClient>(port_) : std::make_unique<RawClient>(socket_);
    c->Version(Dialect::k9P2000L, 1 << 20);
    c->Attach(0, aname);
    c->Call<wire::Rwalk>(2, wire::Twalk{.fid = 0, .newfid = 1, .wnames = {}});
    c->Call<wire::Rlcreate>(3, wire::Tlcreate{.fid = 1,
                                              .name = name,
                                              .flags = static_cast<uint32_t>(O_RDWR) | extra,
                                              .mode = 0644,
                                              .gid = 0});
    return c;
  }
  std::string FileOnDisk(std::string_view name) const {
    std::ifstream in(dir_ / name, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  static std::string AsString(std::span<const std::byte> b) {
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
  }
  // Reads [0, size) of fid 1 back through the server.
  static std::string ReadBack(RawClient& c, uint64_t size) {
    std::string got;
    while (got.size() < size) {
      auto f = c.Recv(0ms);  // nothing may be left over
      EXPECT_FALSE(f.has_value()) << "an unexpected reply";
      c.Send(90, wire::Tread{.fid = 1, .offset = got.size(), .count = 1u << 19});
      f = c.Recv();
      if (!f || !std::holds_alternative<wire::Rread>(f->msg) || DataOf(*f).empty()) break;
      got += DataOf(*f);
    }
    return got;
  }
};

// Writes of every size around the threshold, at every alignment, pipelined with other
// requests between them (the channel stops reading exactly at a Twrite's head only while
// large writes come): each Rwrite counts all of its data and the file holds exactly what
// was written, over unix and tcp.
TEST_F(SpliceWriteTest, EveryShapeOfWriteLandsInTheFileExactly) {
  Start(16);
  const uint32_t max = (1u << 20) - 24;
  const IoRange writes[] = {
      {0, max},                     // a whole iounit: more pages than a pipe may hold
      {max, 16384},                 // exactly the threshold
      {max + 16384, 16383},         // just under it: read into memory
      {(1u << 20) + 50000, 65536},  // mid-page
      {1u << 21, 100},              // small
      {(1u << 21) + 1000, 300001},  // odd
      {3u << 20, max},              // a whole one again, page-aligned
  };
  for (bool tcp : {false, true}) {
    SCOPED_TRACE(tcp ? "tcp" : "unix");
    const std::string name = tcp ? "wtcp" : "wunix";
    auto c = CreateFile(tcp, name);
    const uint64_t piped_before = server_->stats().bytes_written_from_pipes.load();
    std::string model;
    uint64_t total = 0;
    for (int pass = 0; pass < 2; ++pass) {
      // Pass 0 one at a time, pass 1 all in flight at once with a Tgetattr after each.
      std::vector<std::vector<std::byte>> data;
      for (size_t i = 0; i < std::size(writes); ++i) {
        data.push_back(RandomBytes(writes[i].count, static_cast<uint32_t>(pass * 100 + i)));
        const auto& w = writes[i];
        if (model.size() < w.offset + w.count) model.resize(w.offset + w.count, '\0');
        model.replace(w.offset, w.count, AsString(data.back()));
        total += w.count;
        const auto tag = static_cast<uint16_t>(10 + i);
        c->Send(tag, wire::Twrite{.fid = 1, .offset = w.offset, .data = wire::Data(data.back())});
        if (pass == 1)
          c->Send(static_cast<uint16_t>(50 + i), wire::Tgetattr{.fid = 1, .request_mask = 0x7ff});
        for (int replies = pass == 0 ? 1 : 0; replies > 0; --replies) {
          auto f = c->Recv();
          ASSERT_TRUE(f) << "no reply to write " << i;
          ASSERT_TRUE(std::holds_alternative<wire::Rwrite>(f->msg))
              << wire::Format(*f, c->dialect_);
          EXPECT_EQ(std::get<wire::Rwrite>(f->msg).count, w.count) << "write " << i;
        }
      }
      if (pass == 1) {
        std::set<uint16_t> open_tags;
        for (size_t i = 0; i < std::size(writes); ++i)
          open_tags.insert({uint16_t(10 + i), uint16_t(50 + i)});
        while (!open_tags.empty()) {
          auto f = c->Recv();
          ASSERT_TRUE(f) << open_tags.size() << " replies missing";
          ASSERT_EQ(open_tags.erase(f->tag), 1u) << "unexpected tag " << f->tag;
          if (f->tag < 50) {
            ASSERT_TRUE(std::holds_alternative<wire::Rwrite>(f->msg))
                << wire::Format(*f, c->dialect_);
            EXPECT_EQ(std::get<wire::Rwrite>(f->msg).count, writes[f->tag - 10].count);
          } else {
            EXPECT_TRUE(std::holds_alternative<wire::Rgetattr>(f->msg))
                << wire::Format(*f, c->dialect_);
          }
        }
      }
    }
    EXPECT_TRUE(FileOnDisk(name) == model) << "the file differs from what was written";
    EXPECT_TRUE(ReadBack(*c, model.size()) == model);
    // Large writes after another large one reach the server in pipes (how much of each
    // fits in a pipe depends on how the socket's buffers came).
    EXPECT_GT(server_->stats().bytes_written_from_pipes.load(), piped_before);
  }
}

// More large writes in flight than there are pipes: the ones without a pipe are read
// into memory; every byte lands.
TEST_F(SpliceWriteTest, MoreWritesInFlightThanPipesAllLand) {
  Start(2);
  auto c = CreateFile(/*tcp=*/false, "many");
  constexpr int kWrites = 40;
  constexpr uint32_t kCount = 100000;
  std::string model(static_cast<size_t>(kWrites) * kCount, '\0');
  std::vector<std::vector<std::byte>> data;
  for (int i = 0; i < kWrites; ++i) {
    data.push_back(RandomBytes(kCount, 1000 + i));
    model.replace(static_cast<size_t>(i) * kCount, kCount, AsString(data.back()));
    c->Send(
        static_cast<uint16_t>(10 + i),
        wire::Twrite{.fid = 1, .offset = uint64_t{kCount} * i, .data = wire::Data(data.back())});
  }
  for (int i = 0; i < kWrites; ++i) {
    auto f = c->Recv();
    ASSERT_TRUE(f) << "reply " << i << " of " << kWrites << " missing";
    ASSERT_TRUE(std::holds_alternative<wire::Rwrite>(f->msg)) << wire::Format(*f, c->dialect_);
    EXPECT_EQ(std::get<wire::Rwrite>(f->msg).count, kCount);
  }
  EXPECT_TRUE(FileOnDisk("many") == model);
  EXPECT_GT(server_->stats().bytes_written_from_pipes.load(), 0u);
}

// Back ends without a host file take the pipe's bytes through Write (ramfs), refuse them
// as they refuse any write (a read-only export) or append them (O_APPEND, which splice(2)
// refuses); a large xattr value arrives whole. The connection stays in step throughout.
TEST_F(SpliceWriteTest, WritesThatCannotBeSplicedOnStillLand) {
  Start(16);
  const std::vector<std::byte> big = RandomBytes(200000, 5);
  const std::vector<std::byte> big2 = RandomBytes(150000, 6);
  auto write_twice = [&](RawClient& c) {  // the second comes in a pipe
    EXPECT_EQ(c.Call<wire::Rwrite>(10, wire::Twrite{.fid = 1, .offset = 0, .data = wire::Data(big)})
                  .count,
              big.size());
    EXPECT_EQ(c.Call<wire::Rwrite>(
                   11, wire::Twrite{.fid = 1, .offset = big.size(), .data = wire::Data(big2)})
                  .count,
              big2.size());
  };
  const std::string both = AsString(big) + AsString(big2);
  {
    auto c = CreateFile(/*tcp=*/false, "inram", "ram");
    write_twice(*c);
    EXPECT_TRUE(ReadBack(*c, both.size()) == both);
  }
  {
    auto c = CreateFile(/*tcp=*/true, "appended", "x", O_APPEND);
    write_twice(*c);
    EXPECT_TRUE(FileOnDisk("appended") == both);
  }
  {
    auto c = std::make_unique<RawClient>(socket_);
    c->Version(Dialect::k9P2000L, 1 << 20);
    c->Attach(0, "ro");
    c->Call<wire::Rwalk>(2, wire::Twalk{.fid = 0, .newfid = 1, .wnames = {"file"}});
    c->Call<wire::Rlopen>(3, wire::Tlopen{.fid = 1, .flags = O_RDONLY});
    for (uint16_t tag : {10, 11}) {
      EXPECT_EQ(c->CallError(tag, wire::Twrite{.fid = 1, .offset = 0, .data = wire::Data(big)}),
                EROFS);
    }
    c->Call<wire::Rgetattr>(12, wire::Tgetattr{.fid = 1, .request_mask = 0x7ff});
  }
  {
    auto c = CreateFile(/*tcp=*/false, "withxattr", "ram");
    const std::vector<std::byte> value = RandomBytes(40000, 7);
    c->Call<wire::Rwalk>(20, wire::Twalk{.fid = 1, .newfid = 2, .wnames = {}});
    c->Call<wire::Rxattrcreate>(
        21,
        wire::Txattrcreate{.fid = 2, .name = "user.big", .attr_size = value.size(), .flags = 0});
    write_twice(*c);  // large writes just before, so the value's Twrite comes in a pipe
    const uint64_t piped = server_->stats().bytes_written_from_pipes.load();
    EXPECT_EQ(
        c->Call<wire::Rwrite>(22, wire::Twrite{.fid = 2, .offset = 0, .data = wire::Data(value)})
            .count,
        value.size());
    c->Call<wire::Rclunk>(23, wire::Tclunk{.fid = 2});
    auto size =
        c->Call<wire::Rxattrwalk>(24, wire::Txattrwalk{.fid = 1, .newfid = 3, .name = "user.big"});
    ASSERT_EQ(size.size, value.size());
    auto f = (c->Send(25, wire::Tread{.fid = 3, .offset = 0, .count = 65536}), c->Recv());
    ASSERT_TRUE(f && std::holds_alternative<wire::Rread>(f->msg));
    EXPECT_TRUE(DataOf(*f) == AsString(value));
    EXPECT_EQ(server_->stats().bytes_written_from_pipes.load(), piped)
        << "xattr values are not files";
  }
  EXPECT_GT(server_->stats().bytes_written_from_pipes.load(), 0u);
}

// A client that stops in the middle of a large Twrite's data, or sends one whose size
// disagrees with its count, loses its connection; the server goes on serving.
TEST_F(SpliceWriteTest, TornAndLyingWritesCloseOnlyThatConnection) {
  Start(16);
  const std::vector<std::byte> big = RandomBytes(100000, 9);
  const std::vector<std::byte> other = RandomBytes(100000, 10);
  auto twrite = [](uint16_t tag, uint64_t offset, const std::vector<std::byte>& data) {
    auto frame = wire::Encode(
        wire::Frame{tag, wire::Twrite{.fid = 1, .offset = offset, .data = wire::Data(data)}},
        Dialect::k9P2000L, 1 << 20);
    EXPECT_TRUE(frame);
    return frame ? *frame : std::vector<std::byte>();
  };
  for (bool tcp : {false, true}) {
    SCOPED_TRACE(tcp ? "tcp" : "unix");
    const std::string torn = tcp ? "torn-tcp" : "torn-unix";
    {
      auto c = CreateFile(tcp, torn);
      c->Call<wire::Rwrite>(10, wire::Twrite{.fid = 1, .offset = 0, .data = wire::Data(big)});
      // The next one (in a pipe) ends after its head and 5000 bytes: it never happened.
      const std::vector<std::byte> frame = twrite(11, 50000, other);
      c->SendRaw(std::span(frame).first(23 + 5000));
    }  // closed here
    {
      auto c = CreateFile(tcp, "lying");
      c->Call<wire::Rwrite>(10, wire::Twrite{.fid = 1, .offset = 0, .data = wire::Data(big)});
      std::vector<std::byte> frame = twrite(11, 0, other);
      const uint32_t lie = 23 + 50000;  // the count still says 100000
      std::memcpy(frame.data(), &lie, 4);
      c->SendRaw(std::span(frame).first(lie));
      EXPECT_FALSE(c->Recv(2000ms).has_value())
          << "a Twrite whose size and count disagree was answered";
    }
    std::this_thread::sleep_for(100ms);  // the server has seen both connections go
    EXPECT_TRUE(FileOnDisk(torn) == AsString(big)) << "part of a torn write was written";
    EXPECT_TRUE(FileOnDisk("lying") == AsString(big)) << "part of a refused write was written";
  }
  ExpectStillServing();
}

TEST_F(SpliceWriteTest, ZeroPipesMeansWritesAreReadIntoMemory) {
  Start(0);
  auto c = CreateFile(/*tcp=*/true, "nopipes");
  const std::vector<std::byte> big = RandomBytes(500000, 11);
  for (uint16_t tag : {10, 11, 12}) {
    EXPECT_EQ(
        c->Call<wire::Rwrite>(tag, wire::Twrite{.fid = 1, .offset = 0, .data = wire::Data(big)})
            .count,
        big.size());
  }
  EXPECT_TRUE(FileOnDisk("nopipes") == AsString(big));
  EXPECT_EQ(server_->stats().bytes_written_from_pipes.load(), 0u);
}

// Page sharing through the server: large reads of a ramfs file over shm into page-aligned
// memory are answered with pages (ServerStats::bytes_shared counts what was offered);
// over a unix socket the same calls are copied. The bytes are right either way.
TEST(PageSharingTest, LargeRamfsReadsOverShmAreAnsweredWithPages) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "pages-XXXXXX").string();
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  const std::filesystem::path dir = tmpl;
  ExportTable table;
  auto ram = fs::MakeRamFs();
  ASSERT_TRUE(ram);
  table.Add("ram", std::move(*ram));
  Server server(table, ServerOptions{.msize = 1 << 20});
  const std::string shm = "shm!" + (dir / "shm.sock").string();
  const std::string unix_addr = "unix!" + (dir / "unix.sock").string();
  ASSERT_TRUE(server.Listen(*transport::ParseAddress(shm)));
  ASSERT_TRUE(server.Listen(*transport::ParseAddress(unix_addr)));
  std::thread thread([&] { server.Run(); });

  std::string content(3 * 1024 * 1024 + 5000, '\0');
  std::mt19937 rng(9);
  for (auto& c : content) c = static_cast<char>(rng());
  for (const std::string& address : {unix_addr, shm}) {
    SCOPED_TRACE(address);
    Result<Link> link = dial(address);
    ASSERT_TRUE(link) << link.error().ToString();
    Result<Fs> root = fsmount(*link, {.aname = "ram", .msize = 1 << 20});
    ASSERT_TRUE(root) << root.error().ToString();
    Result<File> file =
        address == unix_addr ? root->create("big", ORDWR, 0644) : root->open("big", OREAD);
    ASSERT_TRUE(file) << file.error().ToString();
    if (address == unix_addr) {
      auto w = file->pwrite(std::as_bytes(std::span(content)), 0);
      ASSERT_TRUE(w && *w == content.size());
    }
    buf::Buffer dest = buf::Buffer::Allocate(content.size());  // page-aligned, private
    const uint64_t before = server.stats().bytes_shared.load();
    auto n = file->pread(dest.span(), 0);
    ASSERT_TRUE(n) << n.error().ToString();
    ASSERT_EQ(*n, content.size());
    EXPECT_EQ(std::memcmp(dest.data(), content.data(), content.size()), 0);
    const uint64_t shared = server.stats().bytes_shared.load() - before;
    if (address == shm) {
      // The session reads in pieces of whole pages (255 of them at msize 1 MiB): the
      // three whole pieces at least went as pages.
      EXPECT_GE(shared, 3u * (((1u << 20) - 24) / 4096 * 4096));
      EXPECT_LE(shared, content.size());
    } else {
      EXPECT_EQ(shared, 0u);
    }
  }
  server.Shutdown();
  thread.join();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ninefold::server
