// Client-side channels: connect a socket, then carry it like an inherited descriptor
// (the stream code is the same), under the peer's own name.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "asio/ip/tcp.hpp"
#include "fmt/format.h"
#include "ninefold/transport/channel.h"
#include "shm.h"

namespace ninefold::transport {
namespace {

Error Errno(int err, const Address& address, std::string_view what) {
  return Error(std::error_code(err, std::generic_category()),
               fmt::format("{} {}", what, address.ToString()));
}

// Connects `fd` to `sa`, waiting at most `timeout`.
Result<void> ConnectWithTimeout(int fd, const sockaddr* sa, socklen_t len, const Address& address,
                                std::chrono::milliseconds timeout) {
  int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  if (::connect(fd, sa, len) != 0) {
    if (errno != EINPROGRESS) return Unexpected(Errno(errno, address, "connect"));
    pollfd p{.fd = fd, .events = POLLOUT, .revents = 0};
    int n;
    do {
      n = ::poll(&p, 1, static_cast<int>(timeout.count()));
    } while (n < 0 && errno == EINTR);
    if (n == 0) return Unexpected(Errno(ETIMEDOUT, address, "connect"));
    int err = 0;
    socklen_t elen = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
    if (err != 0) return Unexpected(Errno(err, address, "connect"));
  }
  ::fcntl(fd, F_SETFL, flags);
  return {};
}

// Presents a channel under another name (the address dialed, not "fd!N!N").
class NamedChannel final : public Channel {
 public:
  NamedChannel(std::shared_ptr<Channel> inner, std::string peer)
      : inner_(std::move(inner)), peer_(std::move(peer)) {}
  void Start(FrameHandler on_frame, CloseHandler on_close) override {
    inner_->Start(std::move(on_frame), std::move(on_close));
  }
  void SetMaxFrame(uint32_t max_frame) override { inner_->SetMaxFrame(max_frame); }
  void PauseReading() override { inner_->PauseReading(); }
  void ResumeReading() override { inner_->ResumeReading(); }
  void Send(OutFrame frame) override { inner_->Send(std::move(frame)); }
  void Close() override { inner_->Close(); }
  const std::string& peer() const override { return peer_; }
  size_t queued_bytes() const override { return inner_->queued_bytes(); }

 private:
  std::shared_ptr<Channel> inner_;
  std::string peer_;
};

Result<int> ConnectSocket(const Address& address, std::chrono::milliseconds timeout) {
  if (address.kind == Address::Kind::kUnix) {
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    if (address.path.size() >= sizeof sun.sun_path) {
      return Unexpected(Errno(ENAMETOOLONG, address, "connect"));
    }
    std::memcpy(sun.sun_path, address.path.data(), address.path.size());
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return Unexpected(Errno(errno, address, "socket for"));
    Result<void> ok =
        ConnectWithTimeout(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun, address, timeout);
    if (!ok) {
      ::close(fd);
      return Unexpected(ok.error());
    }
    return fd;
  }
  // tcp: resolve (numeric or a name), try each address in turn.
  asio::io_context resolver_io;
  asio::ip::tcp::resolver resolver(resolver_io);
  std::error_code ec;
  auto endpoints = resolver.resolve(address.host, std::to_string(address.port), ec);
  if (ec) {
    return Unexpected(Error(std::errc::host_unreachable,
                            fmt::format("resolve {}: {}", address.host, ec.message())));
  }
  Error last(std::errc::host_unreachable, "no address for " + address.ToString());
  for (const auto& entry : endpoints) {
    const auto& ep = entry.endpoint();
    int fd = ::socket(ep.protocol().family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return Unexpected(Errno(errno, address, "socket for"));
    Result<void> ok =
        ConnectWithTimeout(fd, ep.data(), static_cast<socklen_t>(ep.size()), address, timeout);
    if (ok) {
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      return fd;
    }
    ::close(fd);
    last = ok.error();
  }
  return Unexpected(last);
}

}  // namespace

Result<std::shared_ptr<Channel>> Dial(asio::io_context& io, const Address& address,
                                      std::chrono::milliseconds timeout) {
  if (address.kind == Address::Kind::kFd) {
    return OpenFdChannel(io, address.read_fd, address.write_fd);
  }
  if (address.kind == Address::Kind::kShm) {
    Address socket_address{.kind = Address::Kind::kUnix, .path = address.path};
    Result<int> fd = ConnectSocket(socket_address, timeout);
    if (!fd) return Unexpected(Error(fd.error().code(), "connect " + address.ToString()));
    return OpenShmClient(io, *fd, address, timeout);
  }
  Result<int> fd = ConnectSocket(address, timeout);
  if (!fd) return Unexpected(fd.error());
  // OpenFdChannel duplicates the descriptor for each direction.
  Result<std::shared_ptr<Channel>> ch = OpenFdChannel(io, *fd, *fd);
  ::close(*fd);
  if (!ch) return ch;
  return std::shared_ptr<Channel>(std::make_shared<NamedChannel>(*ch, address.ToString()));
}

}  // namespace ninefold::transport
