#include "peers.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "fmt/format.h"
#include "ninefold/wire/codec.h"

namespace ninefold::client_test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Servers stop by themselves after this long, whatever happens to the test.
constexpr unsigned kServerSeconds = 300;
constexpr const char* kDiod = "/usr/sbin/diod";
constexpr const char* kGanesha = "/usr/bin/ganesha.nfsd";
constexpr const char* kNsRelay = "/work/shared/peers/nsrelay.pl";

Error Errno(std::string what) {
  return Error(std::error_code(errno, std::generic_category()), std::move(what));
}

// A port nobody listens on now (bound, read, released).
Result<uint16_t> FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Unexpected(Errno("socket"));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
    Error e = Errno("bind");
    ::close(fd);
    return Unexpected(e);
  }
  ::close(fd);
  return ntohs(sa.sin_port);
}

// Runs argv as a child with the time limit; stdout and stderr go to `log`.
Result<pid_t> Spawn(const std::vector<std::string>& args, const std::string& log) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return Unexpected(Errno("open " + log));
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log_fd);
    return Unexpected(Errno("fork"));
  }
  if (pid == 0) {
    // Only async-signal-safe calls from here to execv.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);
    ::alarm(kServerSeconds);
    int null = ::open("/dev/null", O_RDONLY);
    ::dup2(null, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(log_fd);
  return pid;
}

// One Tversion exchange on a fresh connection: does the server answer 9P?
bool Answers(const std::string& address) {
  int fd = -1;
  if (address.starts_with("tcp!")) {
    uint16_t port = static_cast<uint16_t>(std::stoi(address.substr(address.rfind('!') + 1)));
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      ::close(fd);
      return false;
    }
  } else {
    std::string path = address.substr(address.find('!') + 1);
    fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      ::close(fd);
      return false;
    }
    // shm!: the socket only hands over the rings; accepting is answering.
    if (address.starts_with("shm!")) {
      ::close(fd);
      return true;
    }
  }
  auto frame =
      wire::Encode(wire::Frame{wire::kNoTag, wire::Tversion{.msize = 8192, .version = "9P2000.L"}},
                   wire::Dialect::k9P2000L, 8192);
  bool ok = frame && ::send(fd, frame->data(), frame->size(), MSG_NOSIGNAL) ==
                         static_cast<ssize_t>(frame->size());
  if (ok) {
    pollfd p{fd, POLLIN, 0};
    std::byte head[7];
    ok = ::poll(&p, 1, 2000) == 1 && ::recv(fd, head, sizeof head, MSG_WAITALL) == 7 &&
         std::to_integer<int>(head[4]) == wire::Rversion::kType;
  }
  ::close(fd);
  return ok;
}

std::string GaneshaConfig(const std::string& export_dir, const std::string& work_dir,
                          uint16_t port) {
  return fmt::format(
      R"(NFS_CORE_PARAM {{ Protocols = 9P; Enable_NLM = false; Enable_RQUOTA = false; }}
NFS_KRB5 {{ Active_krb5 = false; }}
NFSv4 {{ RecoveryBackend = fs; RecoveryRoot = "{1}/recovery"; Graceless = true; }}
_9P {{ _9P_TCP_Port = {2}; _9P_TCP_Msize = 65536; Nb_Worker = 8; }}
EXPORT {{
  Export_Id = 1; Path = "{0}"; Pseudo = "{0}"; Protocols = 9P; Access_Type = RW;
  Squash = No_Root_Squash; FSAL {{ Name = VFS; }}
}}
LOG {{ Default_Log_Level = EVENT; }}
)",
      export_dir, work_dir, port);
}

}  // namespace

std::string TargetName(const Target& t) {
  std::string s = t.server == ServerKind::kNinefold ? "ninefold"
                  : t.server == ServerKind::kDiod   ? "diod"
                                                    : "ganesha";
  return s + (t.net == Net::kTcp ? "_tcp" : t.net == Net::kUnix ? "_unix" : "_shm");
}

TempDir::TempDir() {
  char tmpl[] = "/tmp/ninefold-client.XXXXXX";
  NINEFOLD_CHECK(::mkdtemp(tmpl) != nullptr);
  ::chmod(tmpl, 0755);  // servers may look at it as another user
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string GaneshaUnavailableReason() {
  if (::access(kGanesha, X_OK) != 0) return "nfs-ganesha is not installed";
  if (::access(kNsRelay, R_OK) != 0) return fmt::format("{} is missing", kNsRelay);
  if (::geteuid() != 0) return "nfs-ganesha needs root (it runs in its own network namespace)";
  return "";
}

Result<std::unique_ptr<ServerProcess>> ServerProcess::Start(ServerKind kind, Net net,
                                                            const std::string& export_dir,
                                                            const std::string& work_dir) {
  std::unique_ptr<ServerProcess> p(new ServerProcess);
  p->kind_ = kind;
  p->log_path_ = work_dir + "/server.log";
  std::string listen;
  uint16_t port = 0;
  if (net == Net::kTcp) {
    Result<uint16_t> free_port = FreePort();
    if (!free_port) return Unexpected(free_port.error());
    port = *free_port;
    p->address_ = fmt::format("tcp!127.0.0.1!{}", port);
    listen = fmt::format("127.0.0.1:{}", port);
  } else {
    if (net == Net::kShm && kind != ServerKind::kNinefold) {
      return Unexpected(Error(std::errc::not_supported, "only ninefold serve speaks shm!"));
    }
    std::string sock = work_dir + "/server.sock";
    p->address_ = (net == Net::kShm ? "shm!" : "unix!") + sock;
    listen = sock;
  }
  std::vector<std::string> args;
  switch (kind) {
    case ServerKind::kNinefold:
      args = {NINEFOLD_BINARY, "serve", "--listen", p->address_, "--export",
              export_dir,      "--ctl", "--ramfs",  "ram"};
      // Over shm, two queue pairs: the suite's threads then send on both.
      if (net == Net::kShm) args.insert(args.end(), {"--shm-queues", "2"});
      break;
    case ServerKind::kDiod:
      args = {kDiod, "-f", "-n", "-c", "/dev/null", "-l", listen, "-e", export_dir};
      break;
    case ServerKind::kGanesha: {
      if (net != Net::kTcp) {
        return Unexpected(Error(std::errc::not_supported, "nfs-ganesha serves 9P on TCP only"));
      }
      std::filesystem::create_directories(work_dir + "/recovery");
      std::ofstream(work_dir + "/ganesha.conf") << GaneshaConfig(export_dir, work_dir, port);
      // ganesha binds every interface: it gets a network namespace of its own with only
      // lo, and nsrelay.pl forwards 127.0.0.1:port into it.
      args = {"/usr/bin/unshare", "--net", "/bin/sh", "-c",
              fmt::format("busybox ip link set lo up && exec {} -F -L {}/ganesha.log -f "
                          "{}/ganesha.conf -p {}/ganesha.pid",
                          kGanesha, work_dir, work_dir, work_dir)};
      break;
    }
  }
  Result<pid_t> pid = Spawn(args, p->log_path_);
  if (!pid) return Unexpected(pid.error());
  p->pid_ = *pid;
  pid_t relay = -1;
  auto deadline = Clock::now() + 10s;
  while (Clock::now() < deadline) {
    int status;
    if (::waitpid(p->pid_, &status, WNOHANG) == p->pid_) {
      p->pid_ = -1;
      return Unexpected(
          Error(std::errc::no_child_process, fmt::format("{} exited: {}", args[0], p->Log())));
    }
    if (relay > 0 && ::waitpid(relay, nullptr, WNOHANG) == relay) relay = p->relay_pid_ = -1;
    if (kind == ServerKind::kGanesha && relay < 0) {
      std::this_thread::sleep_for(200ms);  // its namespace must exist before the relay
      Result<pid_t> r = Spawn({"/usr/bin/perl", kNsRelay, std::to_string(port),
                               fmt::format("/proc/{}/ns/net", p->pid_), std::to_string(port)},
                              work_dir + "/relay.log");
      if (!r) return Unexpected(r.error());
      relay = *r;
      p->relay_pid_ = relay;
    }
    if (Answers(p->address_)) return p;
    std::this_thread::sleep_for(50ms);
  }
  return Unexpected(Error(std::errc::timed_out, fmt::format("{} does not answer on {}: {}", args[0],
                                                            p->address_, p->Log())));
}

ServerProcess::~ServerProcess() { Kill(); }

void ServerProcess::Kill() {
  if (relay_pid_ > 0) {
    ::kill(relay_pid_, SIGKILL);
    ::waitpid(relay_pid_, nullptr, 0);
    relay_pid_ = -1;
  }
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

std::string ServerProcess::Log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// --- FakeServer -----------------------------------------------------------------------

FakeServer::FakeServer(Policy policy) : policy_(std::move(policy)) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  NINEFOLD_CHECK(listen_fd_ >= 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  NINEFOLD_CHECK(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  NINEFOLD_CHECK(::listen(listen_fd_, 4) == 0);
  NINEFOLD_CHECK(::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&sa), &len) == 0);
  port_ = ntohs(sa.sin_port);
  NINEFOLD_CHECK(::pipe2(stop_pipe_, O_CLOEXEC) == 0);
  thread_ = std::thread([this] { Run(); });
}

FakeServer::~FakeServer() { Stop(); }

std::string FakeServer::address() const { return fmt::format("tcp!127.0.0.1!{}", port_); }

void FakeServer::Stop() {
  if (!thread_.joinable()) return;
  char c = 0;
  (void)!::write(stop_pipe_[1], &c, 1);
  thread_.join();
  ::close(listen_fd_);
  ::close(stop_pipe_[0]);
  ::close(stop_pipe_[1]);
}

void FakeServer::Run() {
  for (;;) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    if (::poll(p, 2, -1) < 0 && errno != EINTR) return;
    if (p[1].revents) return;
    if (!(p[0].revents & POLLIN)) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    bool stopped = !Serve(fd);
    ::close(fd);
    if (stopped) return;
  }
}

// Serves one connection; false when told to stop.
bool FakeServer::Serve(int fd) {
  std::vector<std::byte> buf;
  auto read_full = [&](std::byte* out, size_t n) -> int {  // 1 ok, 0 eof, -1 stop
    size_t got = 0;
    while (got < n) {
      pollfd p[2] = {{fd, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
      if (::poll(p, 2, -1) < 0) continue;
      if (p[1].revents) return -1;
      ssize_t r = ::recv(fd, out + got, n - got, 0);
      if (r <= 0) return 0;
      got += static_cast<size_t>(r);
    }
    return 1;
  };
  for (;;) {
    std::byte head[4];
    int r = read_full(head, 4);
    if (r == 1) {
      uint32_t size;
      std::memcpy(&size, head, 4);
      if (size < 7 || size > (1u << 24)) r = 0;
      if (r == 1) {
        buf.assign(head, head + 4);
        buf.resize(size);
        r = read_full(buf.data() + 4, size - 4);
      }
    }
    if (r <= 0) {
      std::lock_guard lock(mu_);
      client_closed_ = true;
      cv_.notify_all();
      return r == 0;
    }
    Result<wire::Frame> frame = wire::Decode(buf, wire::Dialect::k9P2000L);
    if (!frame) continue;
    {
      // Recorded before it is answered: a test that has seen the answer sees the request.
      std::lock_guard lock(mu_);
      Request req{wire::TypeOf(frame->msg), frame->tag, 0};
      if (const auto* f = std::get_if<wire::Tflush>(&frame->msg)) req.oldtag = f->oldtag;
      requests_.push_back(req);
      cv_.notify_all();
    }
    std::vector<wire::Frame> replies = policy_(*frame);
    for (const auto& reply : replies) {
      auto bytes = wire::Encode(reply, wire::Dialect::k9P2000L, 1 << 20);
      NINEFOLD_CHECK(bytes.has_value());
      (void)!::send(fd, bytes->data(), bytes->size(), MSG_NOSIGNAL);
    }
  }
}

bool FakeServer::WaitFor(const std::function<bool(const std::vector<Request>&)>& pred,
                         std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return pred(requests_); });
}

bool FakeServer::WaitForClientClose(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return client_closed_; });
}

std::vector<FakeServer::Request> FakeServer::requests() {
  std::lock_guard lock(mu_);
  return requests_;
}

wire::Frame FakeServer::VersionReply(const wire::Frame& request) {
  const auto& tv = std::get<wire::Tversion>(request.msg);
  return wire::Frame{request.tag, wire::Rversion{.msize = std::min<uint32_t>(tv.msize, 65536),
                                                 .version = "9P2000.L"}};
}

}  // namespace ninefold::client_test
