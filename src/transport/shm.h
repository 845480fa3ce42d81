// The shm!/PATH transport, private to the transport library: Listen() and Dial() reach
// it for Address::Kind::kShm.
//
// The server listens on a Unix socket at PATH. For each connection it makes one sealed
// memfd holding one or more queue pairs (two rings each: client->server,
// server->client; see ring.h) and a data area, two eventfds (one per side: "wake me")
// and, per queue pair, a socket pair for handing over page descriptors, and sends them
// with an ShmHello over the socket (SCM_RIGHTS). The socket then only tells each side
// that the other is gone (EOF).
//
// Each side's io thread polls its receive rings for frames and delivers them straight
// from them (copied out first: the peer could change bytes under a parser); after
// `spin` without traffic it announces that it sleeps and waits for its eventfd in the
// event loop (plus a nap timer, so a peer that never rings costs latency, not a hang).
// Sending copies the frame into a transmit ring from the caller's thread and rings the
// peer's eventfd only when the peer sleeps.
//
// Queue pairs let a client's threads send at once without sharing a ring or its lock,
// and a server's threads answer at once. A client sends on its thread's queue (so one
// thread's frames keep their order), a Tflush on the queue of the request it flushes; a
// server answers on the queue a request came in on, so an Rflush follows the reply it
// flushes on one ring. Each queue has its own pages socket: a descriptor and the record
// that names it travel in one order.
#ifndef NINEFOLD_SRC_TRANSPORT_SHM_H_
#define NINEFOLD_SRC_TRANSPORT_SHM_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>

#include "asio/local/stream_protocol.hpp"
#include "ninefold/transport/channel.h"

namespace ninefold::transport {

// Sent by the server right after accept, with 3 + queues descriptors: memfd, server
// eventfd, client eventfd, then the client's end of each queue's pages socket
// (SOCK_SEQPACKET). Queue i's rings lie at c2s_offset and s2c_offset plus
// i * 2 * ring_bytes. Every field is checked by the client before use.
struct ShmHello {
  uint32_t magic = 0;
  uint32_t version = 0;
  uint64_t region_bytes = 0;
  uint32_t ring_bytes = 0;   // footprint of each ring (header + capacity), page multiple
  uint32_t c2s_offset = 0;   // queue 0's client -> server ring
  uint32_t s2c_offset = 0;   // queue 0's server -> client ring
  uint32_t queues = 0;       // queue pairs: 1 to kMaxShmQueues
  uint64_t data_offset = 0;  // the data area (the arena): page multiples, after the rings
  uint64_t data_bytes = 0;
};
constexpr uint32_t kShmMagic = 0x5339464e;  // "NF9S"
constexpr uint32_t kShmVersion = 7;  // 7: records on cache lines; 6: marked by position (ring.h)
constexpr uint32_t kMaxShmQueues = 4;

// A ring record is a 9P frame, optionally followed by this trailer (the record is then
// 24 bytes longer than the frame's head). Offsets are from the start of the data area.
//  kPlacement: the record is a whole request; the reply's payload may be written at
//              [offset, offset + length) (a Tread's destination).
//  kPayload:   the record is a frame's head (up to its count field); its payload is the
//              `length` bytes at `offset` (the head's size field counts them).
//  kPages:     (server to client only) the record is an Rread's head; its payload is the
//              `length` bytes at `offset` (a page multiple) of a read-only memfd whose
//              descriptor the server sent just before, on the pages socket, with a
//              ShmPagesNote repeating offset and length. The client checks the note, the
//              file (regular, sealed against shrinking, long enough) and maps it.
//  kPipe:      (server to client only) the record is an Rread's head with count 0; its data
//              is `length` bytes waiting in a pipe whose read end the server sent just
//              before on the pages socket, with a ShmPagesNote {0, length}. The client
//              checks the note and that the descriptor is a pipe holding that much.
// A client's Tread whose reply may come as kPipe carries kAcceptsPipe in its trailer's
// kind: alone (offset and length 0), or with kPlacement.
// All are checked (against the data area, the file or the pipe) on every use.
struct ShmTrailer {
  uint32_t magic = 0;
  uint32_t kind = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
};
static_assert(sizeof(ShmTrailer) == 24);
constexpr uint32_t kTrailerMagic = 0x5254464e;  // "NFTR"
constexpr uint32_t kTrailerPlacement = 1;
constexpr uint32_t kTrailerPayload = 2;
constexpr uint32_t kTrailerPages = 3;
constexpr uint32_t kTrailerPipe = 4;
constexpr uint32_t kTrailerAcceptsPipe = 0x100;  // a flag, client to server

// The body of a pages socket message (one descriptor rides with it).
struct ShmPagesNote {
  uint64_t offset = 0;
  uint64_t length = 0;
};

// Sends `body` with `fds` (1 to 3 + kMaxShmQueues descriptors) as one SCM_RIGHTS message
// on `socket`: the hello, a pages note. The bytes sent, or -1 with errno set (EINTR
// retried).
ssize_t SendWithFds(int socket, const void* body, size_t size, std::span<const int> fds, int flags);

// The hello as a client receives it, with its descriptors (memfd, server eventfd,
// client eventfd, a pages socket per queue; -1 past 3 + hello.queues), now owned by
// the caller.
struct ReceivedShmHello {
  ShmHello hello;
  int fds[3 + kMaxShmQueues] = {-1, -1, -1, -1, -1, -1, -1};
};

// Receives the hello on the connected socket `fd` (blocking: the caller waits until it
// is readable): exactly one ShmHello with our magic and version, 1 to kMaxShmQueues
// queues, and 3 + queues descriptors.
// The layout it describes is not checked here. On error, descriptors received are closed
// and the error says why ("bad shm hello: ..." or recvmsg's errno).
[[nodiscard]] Result<ReceivedShmHello> ReceiveShmHello(int fd);

// Bytes of data area per connection (NINEFOLD_SHM_DATA_MB overrides; default 64 MiB).
// Pages cost memory only once written.
uint64_t ShmDataBytes();

// Queue pairs per connection for a listener asked for `requested` (ListenOptions): that,
// or when 0, NINEFOLD_SHM_QUEUES, or 1; always within 1 to kMaxShmQueues.
uint32_t ShmQueues(uint32_t requested);

// How long an idle receiver polls before it sleeps (NINEFOLD_SHM_SPIN_US overrides).
std::chrono::microseconds ShmSpin();

// A listening Unix-domain acceptor at address.path (unix! and shm! both listen on one).
// A leftover socket file from a dead server is replaced; a live server's is not
// (address_in_use). Defined in stream_channel.cc.
[[nodiscard]] Result<asio::local::stream_protocol::acceptor> ListenOnUnixPath(
    asio::io_context& io, const Address& address);

[[nodiscard]] Result<std::unique_ptr<Listener>> ListenShm(asio::io_context& io,
                                                          const Address& address,
                                                          Listener::AcceptHandler on_accept,
                                                          uint32_t queues);
// The client side: `fd` is a Unix socket connected to the server's PATH; this waits (at
// most `timeout`) for the hello, checks every field and maps the region. Takes `fd` over.
[[nodiscard]] Result<std::shared_ptr<Channel>> OpenShmClient(asio::io_context& io, int fd,
                                                             const Address& address,
                                                             std::chrono::milliseconds timeout);

}  // namespace ninefold::transport

#endif  // NINEFOLD_SRC_TRANSPORT_SHM_H_
