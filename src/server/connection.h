// One client connection: its negotiated dialect and msize, its fids and the requests in
// flight. Private to the server library.
//
// Threads: the io thread reads frames, keeps the tag table, answers Tversion and Tflush,
// and sends replies. Everything else runs on a worker: it looks fids up (fids_mu_),
// calls the FileServer, updates fids, encodes the reply and posts it back to the io thread.
#ifndef NINEFOLD_SRC_SERVER_CONNECTION_H_
#define NINEFOLD_SRC_SERVER_CONNECTION_H_

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "asio/io_context.hpp"
#include "asio/steady_timer.hpp"
#include "asio/thread_pool.hpp"
#include "ninefold/server/server.h"
#include "ninefold/transport/channel.h"
#include "ninefold/wire/codec.h"

namespace ninefold::server {

// What a fid refers to. Shared so that a request in flight keeps it alive after a clunk.
struct Fid {
  std::shared_ptr<fs::Node> node;
  std::shared_ptr<fs::Node> root;  // the attach root (9P2000 renames re-walk from it)
  fs::Identity who;
  std::vector<std::string> path;  // names walked from the root, for stat names and logs
  bool open = false;
  bool remove_on_clunk = false;  // 9P2000 ORCLOSE
  bool is_dir = false;

  // Extended attribute fids (Txattrwalk / Txattrcreate).
  enum class Xattr { kNone, kRead, kWrite } xattr = Xattr::kNone;
  std::string xattr_name;
  std::string xattr_value;  // kRead: the value; kWrite: bytes written so far
  uint64_t xattr_size = 0;  // kWrite: announced size
  uint32_t xattr_flags = 0;

  // 9P2000/.u directory reads: the byte offset the next Tread must ask for, and the
  // ReadDir position that continues it.
  std::mutex dir_mu;
  uint64_t dir_next_offset = 0;
  uint64_t dir_cookie = 0;
};

// A reply ready to encode: a message whose views point into `keep`.
struct Reply {
  wire::Message msg;
  std::shared_ptr<const void> keep;
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(asio::io_context& io, asio::thread_pool& pool, fs::FileServer& root,
             const ServerOptions& options, ServerStats& stats,
             std::shared_ptr<transport::Channel> channel);

  void Start(std::function<void()> on_closed);
  // Stops reading; the connection closes once the requests in flight are answered.
  void Drain();

  // --- used by request handlers on worker threads -------------------------------------
  wire::Dialect dialect() const { return dialect_.load(std::memory_order_relaxed); }
  uint32_t msize() const { return msize_.load(std::memory_order_relaxed); }
  uint32_t iounit() const { return msize() - static_cast<uint32_t>(wire::kIoHeaderSize); }
  fs::FileServer& root() { return root_; }
  // The fid, or EBADF.
  Result<std::shared_ptr<Fid>> GetFid(uint32_t fid);
  // Adds a fid; EBADF if the number is in use, EMFILE over the limit.
  Result<void> AddFid(uint32_t fid, std::shared_ptr<Fid> state);
  // Replaces what an existing fid refers to (Twalk with newfid == fid).
  void ReplaceFid(uint32_t fid, std::shared_ptr<Fid> state);
  std::shared_ptr<Fid> RemoveFid(uint32_t fid);

 private:
  struct InFlight {
    std::vector<uint16_t> flushes;  // Tflush tags waiting for this request's reply
    bool is_flush = false;
  };

  void OnFrame(std::span<const std::byte> bytes);
  void OnClosed(const Error& why);
  void HandleVersion(uint16_t tag, const wire::Tversion& tv);
  void HandleFlush(uint16_t tag, const wire::Tflush& tf);
  // Performs the request and encodes its reply (on a worker, or inline on the io thread).
  transport::OutFrame Run(uint16_t tag, std::shared_ptr<std::vector<std::byte>> bytes,
                          const wire::Frame& frame);
  bool RunsInline(const wire::Frame& frame);
  // Runs on a worker: performs the request and posts the reply to the io thread.
  void Execute(uint16_t tag, std::shared_ptr<std::vector<std::byte>> bytes, wire::Frame frame,
               uint64_t generation);
  void Complete(uint16_t tag, transport::OutFrame out, uint64_t generation);
  void SendNow(uint16_t tag, const Reply& reply);
  transport::OutFrame Encode(uint16_t tag, const Reply& reply) const;
  Reply ErrorReply(const Error& error) const;
  void MaybeFinishDrain();
  void MaybeFinishDrainLater();

  asio::io_context& io_;
  asio::thread_pool& pool_;
  fs::FileServer& root_;
  const ServerOptions& options_;
  ServerStats& stats_;
  std::shared_ptr<transport::Channel> channel_;
  std::function<void()> on_closed_;
  bool trace_;

  // io thread only.
  std::unordered_map<uint16_t, InFlight> in_flight_;
  bool versioned_ = false;
  bool draining_ = false;
  bool closed_ = false;
  bool paused_ = false;
  // Bumped by Tversion: replies of requests from before it are dropped.
  uint64_t generation_ = 0;
  // Written on the io thread by Tversion, read by workers (atomic: a Tversion may
  // arrive while requests of the previous session still run).
  std::atomic<wire::Dialect> dialect_{wire::Dialect::k9P2000L};
  std::atomic<uint32_t> msize_{8192};

  std::mutex fids_mu_;
  std::unordered_map<uint32_t, std::shared_ptr<Fid>> fids_;  // guarded by fids_mu_
};

// The request handlers (ops.cc): run on a worker, return the reply or an error.
Result<Reply> HandleRequest(Connection& conn, const wire::Frame& frame);

}  // namespace ninefold::server

#endif  // NINEFOLD_SRC_SERVER_CONNECTION_H_
