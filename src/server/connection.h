// One client connection: its negotiated dialect and msize, its fids and the requests in
// flight. Private to the server library.
//
// Threads (see io_threads.h): the channel's read loop calls OnFrame on a thread running
// the io_context. A request about a node that never blocks is answered right there. Any
// other runs inside an IoThreads::BlockingScope: in OnFrame itself when it is the last
// frame read so far (after Channel::ReadAhead has let the read loop go on without it),
// else posted to the io_context. Every request sends its own reply from the thread
// that ran it. The tag table and session state are guarded by mu_, the fid table by
// fids_mu_.
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
#include "io_threads.h"
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
  // An Rread's first spliced->pending bytes, ahead of msg's data (transport/splice.h).
  std::shared_ptr<transport::SplicePipe> spliced = nullptr;
  // An Rread's data as pages a client on this host may map (OutFrame::pages; `keep` owns
  // the descriptor); the data is msg's as well, for channels that send it.
  buf::FileRef pages = {};
};

using transport::ReplyTo;

// The tags of the requests (and Tflushes) in flight on one connection. Up to kListed are
// kept in a list: a search of a few 16-bit tags costs less than a hash map's node per
// request. Past that (a client keeping many requests in flight), a bit per tag: 8 KiB,
// only for a connection that had that many, until Clear.
class TagSet {
 public:
  bool Contains(uint16_t tag) const;
  void Insert(uint16_t tag);  // a tag not in the set
  bool Erase(uint16_t tag);   // false when it was not there
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  void Clear();

 private:
  static constexpr size_t kListed = 32;
  std::vector<uint16_t> listed_;
  std::unique_ptr<uint64_t[]> bits_;  // 65536 bits, once more than kListed were in flight
  size_t size_ = 0;
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(asio::io_context& io, IoThreads& threads, fs::FileServer& root,
             const ServerOptions& options, ServerStats& stats,
             std::shared_ptr<transport::Channel> channel, transport::PipePool* pipes);

  void Start(std::function<void()> on_closed);
  // Stops reading; the connection closes once the requests in flight are answered.
  void Drain();

  // --- used by request handlers, on any io thread --------------------------------------
  wire::Dialect dialect() const { return dialect_.load(std::memory_order_relaxed); }
  uint32_t msize() const { return msize_.load(std::memory_order_relaxed); }
  uint32_t iounit() const { return msize() - static_cast<uint32_t>(wire::kIoHeaderSize); }
  fs::FileServer& root() { return root_; }
  ServerStats& stats() { return stats_; }
  // Pipes for spliced reads (transport/splice.h); null when this connection cannot
  // send them: into its socket (splices()), or handed over to a client that accepts
  // them (shm: ReplyTo::pipe).
  transport::PipePool* pipes() { return pipes_; }
  bool splices() const { return splices_; }
  // The largest read worth splicing into the socket (Channel::splice_read_max).
  size_t splice_read_max() const { return splice_read_max_; }
  // True when replies may carry pages for the client to map (Reply::pages).
  bool shares_pages() const { return shares_pages_; }
  // The fid, or EBADF.
  Result<std::shared_ptr<Fid>> GetFid(uint32_t fid);
  // Adds a fid; EBADF if the number is in use, EMFILE over the limit.
  Result<void> AddFid(uint32_t fid, std::shared_ptr<Fid> state);
  // Replaces what an existing fid refers to (Twalk with newfid == fid).
  void ReplaceFid(uint32_t fid, std::shared_ptr<Fid> state);
  std::shared_ptr<Fid> RemoveFid(uint32_t fid);

 private:
  void OnFrame(std::span<const std::byte> bytes);
  void OnClosed(const Error& why);
  void HandleVersion(uint16_t tag, const wire::Tversion& tv);
  void HandleFlushLocked(uint16_t tag, const wire::Tflush& tf);
  // Performs the request and encodes its reply; `keep` holds the request's bytes;
  // `to` is where the client asked a read's data to go.
  // `data` holds a Twrite's first bytes when they wait in a pipe (Channel::FrameDataPipe).
  transport::OutFrame Run(uint16_t tag, std::shared_ptr<const void> keep, const wire::Frame& frame,
                          ReplyTo to, std::shared_ptr<transport::SplicePipe> data);
  bool RunsInline(const wire::Frame& frame);
  // Sends a request's reply (and the Rflush of any Tflush waiting for it).
  void Complete(uint16_t tag, transport::OutFrame out, uint64_t generation);
  void SendLocked(uint16_t tag, const Reply& reply);
  transport::OutFrame Encode(uint16_t tag, const Reply& reply) const;
  Reply ErrorReply(const Error& error) const;
  void MaybeFinishDrainLocked();
  void ForgetInFlightLocked();
  // Whether `tag` is a Tflush waiting for the reply it flushes.
  bool IsWaitingFlushLocked(uint16_t tag) const;
  void FinishDrain();

  asio::io_context& io_;
  IoThreads& threads_;
  fs::FileServer& root_;
  const ServerOptions& options_;
  ServerStats& stats_;
  const std::shared_ptr<transport::Channel> channel_;
  transport::PipePool* const pipes_;
  const bool splices_;
  const size_t splice_read_max_;
  const bool shares_pages_;
  std::function<void()> on_closed_;  // set by Start, taken by OnClosed (under mu_)
  const bool trace_;

  // Written by Tversion in OnFrame, read by OnFrame (which runs concurrently with itself
  // only after ReadAhead, past its last use of this).
  std::atomic<bool> versioned_{false};

  // Lock order: mu_, then fids_mu_ or the channel's own lock. Nothing calls into this
  // connection while holding the channel's lock.
  std::mutex mu_;
  TagSet in_flight_;  // the requests' (and Tflushes') tags in flight; guarded by mu_
  // Rare: the Tflush tags waiting for a request's reply, by the request's tag. Guarded by
  // mu_.
  std::unordered_map<uint16_t, std::vector<uint16_t>> flushes_;
  bool draining_ = false;            // guarded by mu_
  bool drain_check_posted_ = false;  // guarded by mu_
  bool closed_ = false;              // guarded by mu_
  bool paused_ = false;              // guarded by mu_
  // Bumped by Tversion: replies of requests from before it are dropped. Guarded by mu_.
  uint64_t generation_ = 0;
  // Written by Tversion, read by request handlers (atomic: a Tversion may arrive while
  // requests of the previous session still run).
  std::atomic<wire::Dialect> dialect_{wire::Dialect::k9P2000L};
  std::atomic<uint32_t> msize_{8192};

  std::mutex fids_mu_;
  std::unordered_map<uint32_t, std::shared_ptr<Fid>> fids_;  // guarded by fids_mu_
};

// The request handlers (ops.cc): run on an io thread, return the reply or an error.
// `to.placement`: shared memory the client asked a Tread's data to be written to (shm),
// or empty. A read that fits there is made there and its Rread's data points at it, which
// the channel then sends as a reference: the one copy is the file server's own.
// `to.pipe`: the client takes a Tread's data in a pipe (shm): a file that can be spliced
// is, and the pipe handed over; nothing is copied here.
// `data`: a Twrite's data begins with the bytes waiting in this pipe (the frame's own
// data follows them); they go to Node::WriteFromPipe.
Result<Reply> HandleRequest(Connection& conn, const wire::Frame& frame, ReplyTo to = {},
                            transport::SplicePipe* data = nullptr);

}  // namespace ninefold::server

#endif  // NINEFOLD_SRC_SERVER_CONNECTION_H_
