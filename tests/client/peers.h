// Servers for the client tests: real ones started as child processes on loopback
// (`ninefold serve`, diod, nfs-ganesha), and a scripted one written here (FakeServer)
// for behaviour no real server shows on demand (silence, a held request).
//
// Every child runs with a time limit (alarm(2), kept across execve) and dies with the
// test process (PR_SET_PDEATHSIG), so nothing outlives a crashed test; a test stops it
// by its PID.
#ifndef NINEFOLD_TESTS_CLIENT_PEERS_H_
#define NINEFOLD_TESTS_CLIENT_PEERS_H_

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "ninefold/base/result.h"
#include "ninefold/wire/messages.h"

namespace ninefold::client_test {

enum class ServerKind { kNinefold, kDiod, kGanesha };
enum class Net { kTcp, kUnix, kShm };  // kShm: ninefold serve only

struct Target {
  ServerKind server;
  Net net;
};
std::string TargetName(const Target& t);  // "ninefold_tcp", "diod_unix", ...
inline void PrintTo(const Target& t, std::ostream* os) { *os << TargetName(t); }

// A fresh directory under /tmp, removed with everything in it.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A server child process exporting one host directory (aname: its absolute path);
// ninefold serve also serves ctl and a ramfs (aname "ram").
class ServerProcess {
 public:
  // Starts the server and waits (up to 10 s) until it answers a Tversion. `work_dir`
  // holds its log and unix socket.
  static Result<std::unique_ptr<ServerProcess>> Start(ServerKind kind, Net net,
                                                      const std::string& export_dir,
                                                      const std::string& work_dir);
  ~ServerProcess();  // Kill()

  const std::string& address() const { return address_; }  // a dial string
  pid_t pid() const { return pid_; }
  // SIGKILL to the server's PID, then reaps it. Idempotent.
  void Kill();
  // The server's log so far (for failure messages).
  std::string Log() const;

 private:
  ServerProcess() = default;
  ServerKind kind_{};
  pid_t pid_ = -1;
  std::string address_;
  std::string log_path_;
  pid_t relay_pid_ = -1;  // ganesha: nsrelay.pl, forwarding 127.0.0.1 into its netns
};

// Why nfs-ganesha cannot run here (empty: it can).
std::string GaneshaUnavailableReason();

// A 9P server on 127.0.0.1 that answers as a test says. One connection at a time; the
// policy sees every decoded 9P2000.L request (on the server's thread) and returns the
// replies to send (none: the request stays unanswered).
class FakeServer {
 public:
  using Policy = std::function<std::vector<wire::Frame>(const wire::Frame& request)>;
  // What the server keeps of each request it received.
  struct Request {
    uint8_t type = 0;
    uint16_t tag = 0;
    uint16_t oldtag = 0;  // Tflush
  };
  explicit FakeServer(Policy policy);
  ~FakeServer();  // Stop()

  std::string address() const;  // tcp!127.0.0.1!PORT
  // Closes the listener and any connection; joins the thread.
  void Stop();
  // Waits up to `timeout` until `pred(requests so far)` holds.
  bool WaitFor(const std::function<bool(const std::vector<Request>&)>& pred,
               std::chrono::milliseconds timeout);
  // Waits up to `timeout` until the client has closed its connection.
  bool WaitForClientClose(std::chrono::milliseconds timeout);
  std::vector<Request> requests();

  // Replies a policy may use.
  static wire::Frame VersionReply(const wire::Frame& request);

 private:
  void Run();
  bool Serve(int fd);

  Policy policy_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  int stop_pipe_[2] = {-1, -1};
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Request> requests_;  // guarded by mu_
  bool client_closed_ = false;     // guarded by mu_
};

}  // namespace ninefold::client_test

#endif  // NINEFOLD_TESTS_CLIENT_PEERS_H_
