// The 9P server framework: listeners, connections, version negotiation, the fid and tag
// tables, Tflush, limits, and running file-system calls off the network thread. A
// FileServer (fs/file_server.h) supplies the files; the framework serves it in 9P2000,
// 9P2000.u and 9P2000.L.
//
//   auto exports = std::make_unique<ExportTable>();  // aname -> FileServer
//   Server server(*exports, {.msize = 1 << 20});
//   if (auto ok = server.Listen(*ParseAddress("tcp!127.0.0.1!5640")); !ok) ...;
//   server.Run();   // until Shutdown() (or SIGINT/SIGTERM with HandleSignals())
//
// Threads: normally one thread (the caller of Run) reads requests, runs the FileServer
// calls and writes the replies, with no hand-off between threads. Calls on nodes that
// may block run so that, when they do block for more than ~2 ms, spare threads (up to
// `worker_threads` in all) take over the other requests and connections until they
// return: a blocked read never holds up a getattr on another fid for longer than that.
// Large reads and writes that keep a thread busy get a second thread (one per core) so
// that their copies overlap. Shutdown() may be called from any thread.
#ifndef NINEFOLD_SERVER_SERVER_H_
#define NINEFOLD_SERVER_SERVER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ninefold/base/result.h"
#include "ninefold/fs/file_server.h"
#include "ninefold/transport/address.h"

namespace ninefold::server {

struct ServerOptions {
  // Largest msize offered; a client's smaller Tversion msize wins.
  uint32_t msize = 1u << 20;
  // Per connection: fids in use (more: Rlerror EMFILE), requests in flight (more: the
  // connection stops reading until some complete).
  uint32_t max_fids = 65536;
  uint32_t max_outstanding = 256;
  // Most threads serving at once: one normally, more only while calls block.
  unsigned worker_threads = 8;
  // After its last request, the io thread keeps polling for this long before it sleeps
  // in epoll: a request arriving meanwhile costs no wake-up (at one request in flight,
  // most of a small request's round trip). Zero: sleep at once.
  std::chrono::microseconds spin{50};
  // Reads of exported host files over tcp and unix move the data from the file to the
  // socket inside the kernel (splice(2) through a pipe; see transport/splice.h), and
  // Twrites of 16 KiB or more from the socket into the file (Channel::SpliceWrites): at
  // most this many pipes at once, shared by all connections (more reads or writes in
  // flight than that are copied). Zero: never splice.
  unsigned splice_pipes = 16;
  // shm! connections: queue pairs each (transport::ListenOptions::shm_queues; 0: the
  // NINEFOLD_SHM_QUEUES environment variable, else 1).
  uint32_t shm_queues = 0;
  // Print every message (also enabled by NINEFOLD_TRACE=1 in the environment).
  bool trace = false;
};

// Counters, readable at any time from any thread.
struct ServerStats {
  std::atomic<uint64_t> connections_accepted{0};
  std::atomic<uint64_t> connections_open{0};
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> errors_sent{0};
  std::atomic<uint64_t> malformed_frames{0};
  // Tread data of files: moved from file to socket by splice (never in user memory) /
  // read by Node::Read (into the server's memory or, over shm, the client's arena).
  std::atomic<uint64_t> bytes_spliced{0};
  std::atomic<uint64_t> bytes_read{0};
  // Tread data offered to a client on this host as pages to map (Node::Share, over shm).
  std::atomic<uint64_t> bytes_shared{0};
  // Tread data spliced into a pipe offered to a client on this host that asked for one
  // (over shm; the channel sends the bytes inline if it cannot hand the pipe over).
  std::atomic<uint64_t> bytes_piped{0};
  // Twrite data of files that the channel moved from the socket into a pipe (over tcp and
  // unix, with splice_pipes > 0) rather than into memory; Node::WriteFromPipe takes it
  // from there (exportfs splices it on into the file: no copy but the file system's own).
  std::atomic<uint64_t> bytes_written_from_pipes{0};
};

class Server {
 public:
  // `root` answers Tattach for every connection (see ExportTable for aname routing);
  // it must outlive the Server.
  Server(fs::FileServer& root, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Starts listening (tcp or unix) or, for fd!R!W, serves that one connection. Returns
  // the bound address (a tcp port 0 becomes the real port).
  [[nodiscard]] Result<transport::Address> Listen(const transport::Address& address);
  // SIGINT and SIGTERM call Shutdown().
  void HandleSignals();
  // Runs the io loop until Shutdown() and until every connection has drained.
  void Run();
  // Stops accepting, lets requests in flight finish and their replies go out, closes
  // every connection. Thread-safe; idempotent.
  void Shutdown();
  // When set, Run() also returns once the last connection closes (fd!R!W serving).
  void ExitWhenIdle();

  const ServerStats& stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Routes Tattach's aname to one of several FileServers: an exact name, else the first
// one added when the aname is empty.
class ExportTable final : public fs::FileServer {
 public:
  void Add(std::string name, std::unique_ptr<fs::FileServer> server);
  bool empty() const { return exports_.empty(); }
  std::vector<std::string> names() const;
  Result<std::unique_ptr<fs::Node>> Attach(const fs::Identity& who,
                                           std::string_view aname) override;

 private:
  std::vector<std::pair<std::string, std::unique_ptr<fs::FileServer>>> exports_;
};

}  // namespace ninefold::server

#endif  // NINEFOLD_SERVER_SERVER_H_
