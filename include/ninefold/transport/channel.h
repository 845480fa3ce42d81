// Channels: connections that carry whole 9P frames, and listeners that accept them.
//
// A Channel reads a byte stream (tcp, unix, or a pair of inherited descriptors) and hands
// out one complete frame at a time; it sends frames as a head plus an optional payload
// that is written straight from its owner's memory (scatter/gather, no copy). The bytes
// on the wire are standard 9P that any peer reads.
//
// Threading: a Channel belongs to the io_context it was made on; its callbacks run on
// threads running that io_context, the FrameHandler one call at a time (see ReadAhead).
// Send, Close, SetMaxFrame, PauseReading, ResumeReading and queued_bytes may be called
// from any thread (each channel has its own lock; a client that runs one io thread and
// calls them there needs nothing more). Channels are shared_ptrs so pending operations
// keep them alive after Close.
#ifndef NINEFOLD_TRANSPORT_CHANNEL_H_
#define NINEFOLD_TRANSPORT_CHANNEL_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "asio/io_context.hpp"
#include "ninefold/base/result.h"
#include "ninefold/buf/buffer.h"
#include "ninefold/transport/address.h"
#include "ninefold/transport/splice.h"

namespace ninefold::transport {

// A frame ready to send: `head` then `payload`; `owner` keeps the payload's memory alive
// until it is written. With an empty payload, `head` may also hold several whole frames
// back to back (a client's batch), sent in order.
//
// On a channel with a shared arena (shm), a payload that lies in the arena is sent as a
// reference to it, not copied; `placement` (a range of the arena, one request only)
// tells the peer where it may write this request's reply payload itself (a Tread's
// destination). Byte streams ignore `placement` and send payloads inline.
//
// On a channel that can_splice(), `spliced` (when set) holds the first spliced->pending
// bytes of the payload in a pipe (splice.h): they go out between `head` and `payload`,
// moved from the pipe by the kernel. Other channels never get one.
//
// `pages`, when its fd is set, says the payload is also pages of a read-only file that
// never changes them (buf::SharedBytes; `owner` keeps the descriptor open): a channel
// that can_share_pages() may hand the peer the descriptor to map them instead of copying
// the payload; any other channel (or one that cannot hand it over now) sends the payload.
//
// `accepts_pipe` (a client's Tread on a channel that can_share_pages()): the reply's data
// may stay in a pipe handed over with it (FramePipe), for a caller that moves it on
// without reading it. A server sends such a reply as an Rread with `spliced` bytes and
// no payload; the channel hands the pipe over, or sends its bytes when it cannot.
// Where a request's reply data may go instead of inside the reply (shm): `placement`, a
// range of the arena the server may write it into (OutFrame::placement,
// Channel::FramePlacement); `pipe`, a pipe the server may hand over
// (OutFrame::accepts_pipe, Channel::FrameAcceptsPipe). What a client asks for and a
// server is asked.
struct ReplyTo {
  std::span<std::byte> placement;
  bool pipe = false;
};

struct OutFrame {
  std::vector<std::byte> head;
  std::span<const std::byte> payload;
  std::shared_ptr<const void> owner;
  std::span<std::byte> placement;
  std::shared_ptr<SplicePipe> spliced;
  buf::FileRef pages;
  bool accepts_pipe = false;
};

// A frame's head is encoded into a buffer from TakeFrameBuffer (empty, perhaps with room
// already) and a channel that has copied it out (shm: into the ring) hands it back with
// RecycleFrameBuffer: a thread keeps a few, so a request or reply costs no malloc and
// free for its head.
std::vector<std::byte> TakeFrameBuffer();
void RecycleFrameBuffer(std::vector<std::byte>&& buffer);

class Channel {
 public:
  // Called for each complete frame, one call at a time (unless the handler calls
  // ReadAhead); the span is valid only during the call (unless it calls RetainFrame).
  using FrameHandler = std::function<void(std::span<const std::byte> frame)>;
  // Called once when the channel stops: an empty Error's code for a clean EOF. It runs
  // inside Close() when Close() stops the channel, else from the io_context; never inside
  // Send() (a failed write stops the channel from the io_context).
  using CloseHandler = std::function<void(const Error& why)>;

  virtual ~Channel() = default;
  virtual void Start(FrameHandler on_frame, CloseHandler on_close) = 0;
  // Frames larger than this close the channel (Errc::kFrameTooLarge); before Tversion
  // the limit is the server's own msize.
  virtual void SetMaxFrame(uint32_t max_frame) = 0;
  // Backpressure: stop delivering frames until resumed.
  virtual void PauseReading() = 0;
  virtual void ResumeReading() = 0;
  // Sends a frame: written at once from the caller's thread when nothing is queued ahead
  // of it (the common case: no trip through the io_context), else queued; frames go out
  // in the order Send was called.
  virtual void Send(OutFrame frame) = 0;
  // Stops reading and writing and closes the descriptors; the CloseHandler runs.
  virtual void Close() = 0;
  // "tcp!127.0.0.1!40212", "unix!/tmp/s.sock", "fd!0!1": for logs.
  virtual const std::string& peer() const = 0;
  // Bytes waiting to be written (for memory limits and tests).
  virtual size_t queued_bytes() const = 0;
  // Only from inside the FrameHandler: keeps the current frame's bytes valid and
  // unchanged for as long as the returned reference is held, without copying them (the
  // channel reads later frames into other memory meanwhile). Null when this channel
  // cannot: the caller copies the frame instead.
  virtual std::shared_ptr<const void> RetainFrame() { return nullptr; }
  // Only from inside the FrameHandler, after RetainFrame: when no other complete frame
  // is buffered, starts the next read now rather than when the handler returns, so that
  // the frames that follow are delivered meanwhile (on another thread running the
  // io_context, concurrently with this call) if the handler takes long. False, and
  // nothing changed, when frames are still buffered, reading is paused or closed, or
  // the channel cannot.
  virtual bool ReadAhead() { return false; }
  // Before Start, by an owner whose FrameHandler reads each field of a frame once and
  // copies what it keeps (it never calls RetainFrame): a channel over memory the peer
  // shares may then hand out frames where the peer wrote them, without a private copy.
  // The peer can still change those bytes during the call, so this is for owners that
  // make no security decision on a frame's contents (a client; never a server, which
  // checks names and then uses them). Other channels ignore it.
  virtual void DeliverInPlace() {}

  // Memory both ends have mapped (shm), from which the owner allocates buffers the peer
  // may write into or read from without a copy; null for byte streams.
  virtual std::shared_ptr<buf::Arena> arena() const { return nullptr; }
  // Only from inside the FrameHandler. When the peer sent the current frame's trailing
  // payload (Twrite, Rread, Rreaddir data) by reference into the arena, `frame` is only
  // its head and this is the payload (wire::Decode(head, payload) joins them); else empty.
  virtual std::span<const std::byte> FramePayload() const { return {}; }
  // Only from inside the FrameHandler: the range of the arena where the peer asked the
  // reply's payload to be written (its OutFrame::placement), checked to lie inside the
  // arena; empty when none. Valid while the channel lives.
  virtual std::span<std::byte> FramePlacement() const { return {}; }
  // Only from inside the FrameHandler: when the peer sent the current frame's payload as
  // pages of a read-only file (OutFrame::pages), that file's descriptor and range; the
  // payload (FramePayload) is then a read-only mapping of it. The handler may map the
  // whole pages itself (MAP_PRIVATE: a copy-on-write alias) instead of copying them; the
  // descriptor is closed after the call. Null otherwise.
  virtual const buf::FileRef* FramePages() const { return nullptr; }
  // Only from inside the FrameHandler, on a server: the peer sent this request with
  // OutFrame::accepts_pipe (its reply's data may go as a pipe: OutFrame::spliced).
  virtual bool FrameAcceptsPipe() const { return false; }
  // Only from inside the FrameHandler, on a client: when the current frame is an Rread
  // whose data waits in a pipe the peer handed over, its length (the frame itself then
  // carries no data: count 0); else 0. TakeFramePipe gives the pipe's read end to the
  // caller (then the caller's to close; -1 when there is none), else it is closed after
  // the call. The pipe was checked to hold at least that many bytes; it stays the
  // peer's to write too, so it is read without blocking.
  virtual size_t FramePipeBytes() const { return 0; }
  // Only from inside the FrameHandler: the queue pair the current frame came on, on a
  // channel with several (shm: see queues()); else 0.
  virtual uint32_t FrameQueue() const { return 0; }
  // Queue pairs the channel sends and receives on: more than one only on shm, where a
  // client's threads each send on their own and a server answers on the request's.
  virtual uint32_t queues() const { return 1; }
  virtual int TakeFramePipe() { return -1; }
  // Before Start, on a server channel that can_splice(): the data of a Twrite of at least
  // `min_bytes` may be moved from the socket into a pipe taken from `pool` (splice(2):
  // the kernel hands the pipe the socket's own buffers, nothing is copied), for a
  // handler that moves it on into a file the same way. While a client keeps sending
  // such writes, the channel reads no further than the next frame's Twrite head, so
  // that its data is still in the socket; a few other frames in a row end that. No pipe
  // free in the pool: the data is read the ordinary way. Other channels ignore it.
  virtual void SpliceWrites(PipePool* /*pool*/, size_t /*min_bytes*/) {}
  // Only from inside the FrameHandler, on a channel set up with SpliceWrites: when the
  // current frame is a Twrite whose data begins with bytes waiting in a pipe, that pipe
  // (its `pending` bytes come first, at the Twrite's offset); the frame's own size and
  // count then cover only the data after them (none, unless the pipe filled up first).
  // Null otherwise. The pipe is the caller's to keep; when it is released with bytes
  // still in it, the pool closes it.
  virtual std::shared_ptr<SplicePipe> FrameDataPipe() const { return nullptr; }
  // Only from inside the FrameHandler: the handler queued work on the io_context (a
  // request that may block, posted to run off the read loop) that should run before the
  // channel looks for more frames. A channel that polls (shm) would otherwise keep the io
  // thread a little longer; others ignore it.
  virtual void YieldAfterFrame() {}
  // True when OutFrame::spliced may be used: the channel writes to a socket that
  // splice(2) can feed.
  virtual bool can_splice() const { return false; }
  // The largest spliced read payload worth sending: a larger one is sent faster copied.
  virtual size_t splice_read_max() const { return SIZE_MAX; }
  // True when OutFrame::pages may be used: the peer is on this host and can map a file
  // we hand it (shm).
  virtual bool can_share_pages() const { return false; }
  // True when OutFrame::accepts_pipe means something: the peer may hand this side pipes
  // (a shm client).
  virtual bool takes_pipes() const { return false; }
};

class Listener {
 public:
  using AcceptHandler = std::function<void(std::shared_ptr<Channel>)>;
  virtual ~Listener() = default;
  // The address actually bound (a tcp port 0 becomes the chosen port).
  virtual const Address& address() const = 0;
  // Stops accepting; a unix listener removes its socket file.
  virtual void Close() = 0;
};

// What a listener gives the connections it accepts.
struct ListenOptions {
  // shm!: queue pairs per connection, 1 to 4 (Channel::queues(): a client's threads each
  // send on their own). 0: NINEFOLD_SHM_QUEUES if set, else 1. Other transports ignore it.
  uint32_t shm_queues = 0;
};

// Listens on a tcp, unix or shm address and calls on_accept for every connection. A unix
// socket path that exists is replaced only if it is a socket nobody listens on.
[[nodiscard]] Result<std::unique_ptr<Listener>> Listen(asio::io_context& io, const Address& address,
                                                       Listener::AcceptHandler on_accept,
                                                       ListenOptions options = {});

// A channel over inherited descriptors (fd!R!W); R and W may be the same descriptor.
[[nodiscard]] Result<std::shared_ptr<Channel>> OpenFdChannel(asio::io_context& io, int read_fd,
                                                             int write_fd);

// Connects to a tcp or unix address, or wraps fd!R!W, for a client. Connecting blocks the
// calling thread (a tcp connect gives up after `timeout`); the channel then belongs to
// `io` like any other. ECONNREFUSED, ENOENT (no such socket), ETIMEDOUT... carry the
// address as context. shm!/PATH is not a byte stream: EAFNOSUPPORT here.
[[nodiscard]] Result<std::shared_ptr<Channel>> Dial(
    asio::io_context& io, const Address& address,
    std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace ninefold::transport

#endif  // NINEFOLD_TRANSPORT_CHANNEL_H_
