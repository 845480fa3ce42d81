// tcp_splice_raw: how fast a file's bytes go into a loopback TCP socket, copied or spliced,
// with no 9P around them: the kernel's own answer to "should a Tread's data be spliced
// into the socket?" (docs/performance.md, "Over tcp, only up to 64 KiB").
//
//   tcp_splice_raw FILE MODE [REPLY_BYTES] [CHUNK_BYTES]
//     MODE copy:    pread REPLY_BYTES into memory, write them to the socket
//          splice:  splice REPLY_BYTES from the file into a pipe (sized to hold them), then
//                   from the pipe into the socket
//          chunked: the same CHUNK_BYTES at a time through a pipe of that size
//   REPLY_BYTES default 1 MiB, CHUNK_BYTES default 64 KiB.
//   Prints: mode=... reply=... chunk=... mb_s=...
//
// A receiving thread reads each reply's worth at a time from the other end (as a client
// reads replies); 4 GiB are sent, from consecutive offsets of FILE wrapping at its end
// (keep FILE in the page cache, or on tmpfs). Exit status 1 on any system call failing.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <thread>
#include <vector>

namespace {

int Fail(const char* what) {
  std::fprintf(stderr, "tcp_splice_raw: %s: %s\n", what, std::strerror(errno));
  return 1;
}

bool WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Moves `count` bytes at `offset` of `file` through `pipe` into `socket`.
bool SpliceThrough(int file, off_t offset, size_t count, const int pipe[2], int socket) {
  loff_t at = offset;
  ssize_t in = ::splice(file, &at, pipe[1], nullptr, count, SPLICE_F_MOVE);
  if (in <= 0 || static_cast<size_t>(in) != count) return false;
  while (in > 0) {
    ssize_t out = ::splice(pipe[0], nullptr, socket, nullptr, static_cast<size_t>(in),
                           SPLICE_F_MOVE | SPLICE_F_MORE);
    if (out < 0 && errno == EINTR) continue;
    if (out <= 0) return false;
    in -= out;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: tcp_splice_raw FILE copy|splice|chunked [REPLY_BYTES] "
                 "[CHUNK_BYTES]\n");
    return 2;
  }
  const std::string_view mode = argv[2];
  const size_t reply = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : size_t{1} << 20;
  const size_t chunk = argc > 4 ? std::strtoul(argv[4], nullptr, 10) : size_t{64} << 10;
  if ((mode != "copy" && mode != "splice" && mode != "chunked") || reply < 4096 ||
      reply > (size_t{16} << 20) || chunk < 4096 || chunk > reply || reply % chunk != 0) {
    std::fprintf(stderr,
                 "tcp_splice_raw: bad mode or sizes (4K <= CHUNK <= REPLY <= 16M, "
                 "REPLY a multiple of CHUNK)\n");
    return 2;
  }
  const size_t total = size_t{4} << 30;
  int file = ::open(argv[1], O_RDONLY | O_CLOEXEC);
  if (file < 0) return Fail(argv[1]);
  const off_t file_size = ::lseek(file, 0, SEEK_END);
  if (file_size < static_cast<off_t>(reply)) {
    std::fprintf(stderr, "tcp_splice_raw: %s is shorter than one reply\n", argv[1]);
    return 2;
  }
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener, 1) != 0 ||
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return Fail("listen on 127.0.0.1");
  }
  std::thread receiver([&] {
    int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (::connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      std::exit(Fail("connect"));
    std::vector<char> buf(reply);
    for (size_t got = 0; got < total;) {
      ssize_t n = ::read(c, buf.data(), buf.size());
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    ::close(c);
  });
  int socket = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  if (socket < 0) return Fail("accept");
  int pipe[2];
  if (::pipe2(pipe, O_CLOEXEC) != 0) return Fail("pipe");
  const size_t pipe_bytes = mode == "chunked" ? chunk : reply;
  if (mode != "copy" && ::fcntl(pipe[1], F_SETPIPE_SZ, static_cast<int>(pipe_bytes)) < 0) {
    return Fail("F_SETPIPE_SZ");
  }
  std::vector<char> buf(reply);
  const auto start = std::chrono::steady_clock::now();
  off_t offset = 0;
  for (size_t sent = 0; sent < total; sent += reply, offset += static_cast<off_t>(reply)) {
    if (offset + static_cast<off_t>(reply) > file_size) offset = 0;
    if (mode == "copy") {
      if (::pread(file, buf.data(), reply, offset) != static_cast<ssize_t>(reply)) {
        return Fail("pread");
      }
      if (!WriteAll(socket, buf.data(), reply)) return Fail("write");
      continue;
    }
    const size_t step = mode == "chunked" ? chunk : reply;
    for (size_t done = 0; done < reply; done += step) {
      if (!SpliceThrough(file, offset + static_cast<off_t>(done), step, pipe, socket)) {
        return Fail("splice");
      }
    }
  }
  ::close(socket);
  receiver.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("mode=%.*s reply=%zu chunk=%zu mb_s=%.0f\n", static_cast<int>(mode.size()),
              mode.data(), reply, mode == "chunked" ? chunk : reply,
              static_cast<double>(total) / seconds / 1e6);
  return 0;
}
