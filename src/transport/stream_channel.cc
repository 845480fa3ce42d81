// Channels over byte streams (tcp, unix, inherited descriptors) and their listeners, on
// standalone Asio. Frames are cut from a per-channel read buffer; sends are queued and
// written head + payload with one gathered write each.
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <deque>
#include <optional>

#include "asio/connect.hpp"
#include "asio/ip/tcp.hpp"
#include "asio/local/stream_protocol.hpp"
#include "asio/posix/stream_descriptor.hpp"
#include "asio/steady_timer.hpp"
#include "asio/write.hpp"
#include "fmt/format.h"
#include "ninefold/base/errc.h"
#include "ninefold/transport/channel.h"
#include "shm.h"

namespace ninefold::transport {
namespace {

// Small to start (an idle connection costs little); grows to the largest frame seen.
constexpr size_t kInitialBuffer = 8 * 1024;
constexpr uint32_t kDefaultMaxFrame = 16u << 20;

Error FromAsio(const std::error_code& ec, std::string_view what) {
  return Error(ec, std::string(what));
}

// Stream: an Asio stream (tcp socket, unix socket, stream_descriptor). `writer` is a
// second stream for fd channels whose write descriptor differs; otherwise null.
template <class Stream>
class StreamChannel final : public Channel,
                            public std::enable_shared_from_this<StreamChannel<Stream>> {
 public:
  StreamChannel(Stream stream, std::optional<Stream> writer, std::string peer)
      : stream_(std::move(stream)), writer_(std::move(writer)), peer_(std::move(peer)) {
    buf_.resize(kInitialBuffer);
  }

  void Start(FrameHandler on_frame, CloseHandler on_close) override {
    on_frame_ = std::move(on_frame);
    on_close_ = std::move(on_close);
    ReadMore();
  }
  void SetMaxFrame(uint32_t max_frame) override { max_frame_ = max_frame; }
  void PauseReading() override { paused_ = true; }
  void ResumeReading() override {
    if (!paused_) return;
    paused_ = false;
    // Frames already buffered are delivered from the io loop, not from inside the
    // caller, so a handler that resumes never recurses into itself.
    asio::post(stream_.get_executor(), [self = this->shared_from_this()] {
      self->Deliver();
      self->ReadMore();
    });
  }

  void Send(OutFrame frame) override {
    if (closed_) return;
    queued_ += frame.head.size() + frame.payload.size();
    queue_.push_back(std::move(frame));
    if (!writing_) WriteNext();
  }

  void Close() override { Stop(Error()); }
  const std::string& peer() const override { return peer_; }
  size_t queued_bytes() const override { return queued_; }

 private:
  Stream& writer() { return writer_ ? *writer_ : stream_; }

  void Stop(const Error& why) {
    if (closed_) return;
    closed_ = true;
    std::error_code ignored;
    stream_.close(ignored);
    if (writer_) writer_->close(ignored);
    queue_.clear();
    queued_ = 0;
    if (on_close_) {
      auto handler = std::move(on_close_);
      handler(why);
    }
    on_frame_ = nullptr;
  }

  void ReadMore() {
    if (closed_ || paused_ || read_pending_) return;
    if (end_ == buf_.size()) {
      // Full of one partial frame's bytes (Deliver made room for the frame it needs).
      buf_.resize(buf_.size() * 2);
    }
    read_pending_ = true;
    stream_.async_read_some(asio::buffer(buf_.data() + end_, buf_.size() - end_),
                            [self = this->shared_from_this()](const std::error_code& ec, size_t n) {
                              self->read_pending_ = false;
                              if (self->closed_) return;
                              if (ec) {
                                self->Stop(ec == asio::error::eof ? Error() : FromAsio(ec, "read"));
                                return;
                              }
                              self->end_ += n;
                              self->Deliver();
                              self->ReadMore();
                            });
  }

  // Hands out every complete frame in the buffer, then makes room for the next one.
  void Deliver() {
    while (!closed_ && !paused_) {
      size_t avail = end_ - begin_;
      if (avail < 4) break;
      uint32_t size;
      std::memcpy(&size, buf_.data() + begin_, 4);  // little-endian host (x86-64, arm64)
      if (size < 7 || size > max_frame_) {
        Stop(Error(size < 7 ? Errc::kFrameTooSmall : Errc::kFrameTooLarge,
                   fmt::format("frame of {} bytes from {} (limit {})", size, peer_, max_frame_)));
        return;
      }
      if (avail < size) {
        if (buf_.size() - begin_ < size) {
          // Move the partial frame to the front, growing the buffer if it cannot hold it.
          std::memmove(buf_.data(), buf_.data() + begin_, avail);
          begin_ = 0;
          end_ = avail;
          if (buf_.size() < size) buf_.resize(size);
        }
        break;
      }
      on_frame_(std::span<const std::byte>(buf_.data() + begin_, size));
      begin_ += size;
    }
    if (begin_ == end_) begin_ = end_ = 0;
  }

  void WriteNext() {
    writing_ = true;
    OutFrame& f = queue_.front();
    std::array<asio::const_buffer, 2> bufs = {asio::buffer(f.head),
                                              asio::buffer(f.payload.data(), f.payload.size())};
    asio::async_write(writer(), bufs,
                      [self = this->shared_from_this()](const std::error_code& ec, size_t n) {
                        if (self->closed_) return;
                        self->queued_ -= n;
                        self->queue_.pop_front();
                        if (ec) {
                          self->Stop(FromAsio(ec, "write"));
                          return;
                        }
                        if (self->queue_.empty()) {
                          self->writing_ = false;
                        } else {
                          self->WriteNext();
                        }
                      });
  }

  Stream stream_;
  std::optional<Stream> writer_;
  std::string peer_;
  FrameHandler on_frame_;
  CloseHandler on_close_;
  std::vector<std::byte> buf_;
  size_t begin_ = 0;
  size_t end_ = 0;
  uint32_t max_frame_ = kDefaultMaxFrame;
  bool paused_ = false;
  bool read_pending_ = false;
  bool closed_ = false;
  std::deque<OutFrame> queue_;
  bool writing_ = false;
  size_t queued_ = 0;
};

template <class Protocol>
class AcceptLoop final : public Listener {
 public:
  using Acceptor = typename Protocol::acceptor;
  using Socket = typename Protocol::socket;

  AcceptLoop(asio::io_context& io, Acceptor acceptor, Address address, AcceptHandler on_accept)
      : io_(io),
        acceptor_(std::move(acceptor)),
        retry_(io),
        address_(std::move(address)),
        on_accept_(std::move(on_accept)),
        alive_(std::make_shared<bool>(true)) {
    Accept();
  }
  ~AcceptLoop() override { Close(); }

  const Address& address() const override { return address_; }
  void Close() override {
    if (!*alive_) return;
    *alive_ = false;
    std::error_code ignored;
    acceptor_.close(ignored);
    retry_.cancel();
    if (address_.kind == Address::Kind::kUnix) ::unlink(address_.path.c_str());
  }

 private:
  void Accept() {
    acceptor_.async_accept([this, alive = alive_](const std::error_code& ec, Socket socket) {
      if (!*alive) return;
      if (ec) {
        // Out of descriptors and the like: try again shortly rather than spin.
        retry_.expires_after(std::chrono::milliseconds(100));
        retry_.async_wait([this, alive](const std::error_code& e) {
          if (!e && *alive) Accept();
        });
        return;
      }
      std::string peer = address_.ToString();
      if constexpr (std::is_same_v<Protocol, asio::ip::tcp>) {
        std::error_code ignored;
        socket.set_option(asio::ip::tcp::no_delay(true), ignored);
        auto ep = socket.remote_endpoint(ignored);
        peer = fmt::format("tcp!{}!{}", ep.address().to_string(), ep.port());
      }
      on_accept_(std::make_shared<StreamChannel<Socket>>(std::move(socket), std::nullopt, peer));
      Accept();
    });
  }

  asio::io_context& io_;
  Acceptor acceptor_;
  asio::steady_timer retry_;
  Address address_;
  AcceptHandler on_accept_;
  std::shared_ptr<bool> alive_;  // outlives *this for handlers still queued
};

Result<std::unique_ptr<Listener>> ListenTcp(asio::io_context& io, const Address& address,
                                            Listener::AcceptHandler on_accept) {
  std::error_code ec;
  asio::ip::tcp::resolver resolver(io);
  auto endpoints = resolver.resolve(address.host, std::to_string(address.port),
                                    asio::ip::tcp::resolver::passive, ec);
  if (ec || endpoints.empty()) {
    return Unexpected(Error(ec ? ec : std::make_error_code(std::errc::invalid_argument),
                            "resolve " + address.host));
  }
  asio::ip::tcp::endpoint ep = *endpoints.begin();
  asio::ip::tcp::acceptor acceptor(io);
  if (acceptor.open(ep.protocol(), ec); ec) return Unexpected(FromAsio(ec, "socket"));
  acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (acceptor.bind(ep, ec); ec) {
    return Unexpected(FromAsio(ec, "bind " + address.ToString()));
  }
  if (acceptor.listen(asio::socket_base::max_listen_connections, ec); ec) {
    return Unexpected(FromAsio(ec, "listen " + address.ToString()));
  }
  Address bound = address;
  bound.port = acceptor.local_endpoint().port();
  return std::unique_ptr<Listener>(
      new AcceptLoop<asio::ip::tcp>(io, std::move(acceptor), bound, std::move(on_accept)));
}

Result<std::unique_ptr<Listener>> ListenUnix(asio::io_context& io, const Address& address,
                                             Listener::AcceptHandler on_accept) {
  using asio::local::stream_protocol;
  std::error_code ec;
  // A leftover socket file from a dead server is replaced; a live one is not.
  if (::access(address.path.c_str(), F_OK) == 0) {
    stream_protocol::socket probe(io);
    probe.connect(stream_protocol::endpoint(address.path), ec);
    if (!ec) {
      return Unexpected(
          Error(std::errc::address_in_use, "another server listens on " + address.ToString()));
    }
    ::unlink(address.path.c_str());
  }
  stream_protocol::acceptor acceptor(io);
  if (acceptor.open(stream_protocol(), ec); ec) return Unexpected(FromAsio(ec, "socket"));
  if (acceptor.bind(stream_protocol::endpoint(address.path), ec); ec) {
    return Unexpected(FromAsio(ec, "bind " + address.ToString()));
  }
  if (acceptor.listen(asio::socket_base::max_listen_connections, ec); ec) {
    return Unexpected(FromAsio(ec, "listen " + address.ToString()));
  }
  return std::unique_ptr<Listener>(
      new AcceptLoop<stream_protocol>(io, std::move(acceptor), address, std::move(on_accept)));
}

}  // namespace

Result<std::unique_ptr<Listener>> Listen(asio::io_context& io, const Address& address,
                                         Listener::AcceptHandler on_accept) {
  switch (address.kind) {
    case Address::Kind::kTcp:
      return ListenTcp(io, address, std::move(on_accept));
    case Address::Kind::kUnix:
      return ListenUnix(io, address, std::move(on_accept));
    case Address::Kind::kShm:
      return ListenShm(io, address, std::move(on_accept));
    case Address::Kind::kFd:
      break;
  }
  return Unexpected(
      Error(std::errc::address_family_not_supported, "cannot listen on " + address.ToString()));
}

Result<std::shared_ptr<Channel>> OpenFdChannel(asio::io_context& io, int read_fd, int write_fd) {
  using Stream = asio::posix::stream_descriptor;
  // Asio registers each descriptor with epoll once; when R and W are one descriptor the
  // writer gets its own duplicate.
  int rfd = ::dup(read_fd);
  int wfd = ::dup(write_fd);
  if (rfd < 0 || wfd < 0) {
    int err = errno;
    if (rfd >= 0) ::close(rfd);
    if (wfd >= 0) ::close(wfd);
    return Unexpected(Error(std::error_code(err, std::generic_category()), "dup"));
  }
  std::string peer = fmt::format("fd!{}!{}", read_fd, write_fd);
  return std::shared_ptr<Channel>(
      std::make_shared<StreamChannel<Stream>>(Stream(io, rfd), Stream(io, wfd), peer));
}

}  // namespace ninefold::transport
