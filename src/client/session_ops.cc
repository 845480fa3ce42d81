// Operations that are more than one request: walks longer than 16 names, reads and
// writes larger than the iounit, and directory reads in each dialect. All run on the
// session's io thread.
#include <dirent.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include "fmt/format.h"
#include "ninefold/client/session.h"
#include "ninefold/wire/codec.h"

namespace ninefold::client {
namespace {

// Joins the results of a split read or write, chunk by chunk, in order: the total up to
// and including the first short chunk; an error only if it comes before any byte.
class Pieces {
 public:
  Pieces(size_t count, std::function<void(Result<size_t>)> done)
      : results_(count, Result<size_t>(size_t{0})),
        wanted_(count, 0),
        left_(count),
        done_(std::move(done)) {}

  void Want(size_t i, size_t bytes) { wanted_[i] = bytes; }
  void Finish(size_t i, Result<size_t> r) {
    results_[i] = std::move(r);
    if (--left_ > 0) return;
    size_t total = 0;
    for (size_t k = 0; k < results_.size(); ++k) {
      if (!results_[k]) {
        if (total == 0) return done_(Unexpected(results_[k].error()));
        break;
      }
      total += *results_[k];
      if (*results_[k] < wanted_[k]) break;
    }
    done_(total);
  }

 private:
  std::vector<Result<size_t>> results_;
  std::vector<size_t> wanted_;
  size_t left_;
  std::function<void(Result<size_t>)> done_;
};

}  // namespace

// A walk of any length: steps of up to 16 names, each from where the previous one ended
// (newfid after the first). The request in flight owns the walk.
struct Session::Walk : std::enable_shared_from_this<Walk> {
  Fid fid, newfid;
  std::vector<std::string> names;
  std::vector<wire::Qid> qids;
  Done<std::vector<wire::Qid>> done;

  void Step(Session* s) {
    size_t from = qids.size();
    size_t n = std::min(names.size() - from, wire::kMaxWalkElements);
    wire::Twalk t{.fid = from == 0 ? fid : newfid, .newfid = newfid};
    for (size_t i = 0; i < n; ++i) (void)t.wnames.push_back(names[from + i]);
    s->Send(
        t,
        RawDone{done.op, [s, self = shared_from_this(), from, n](Result<const wire::Message*> r) {
                  if (!r) return self->Fail(s, from, r.error());
                  const auto* rw = std::get_if<wire::Rwalk>(*r);
                  if (rw == nullptr) return self->Fail(s, from, WrongReply("Rwalk", **r));
                  if (rw->wqids.size() > n || (n > 0 && rw->wqids.empty())) {
                    return self->Fail(
                        s, from,
                        Error(std::errc::protocol_error,
                              fmt::format("Rwalk with {} qids for {} names", rw->wqids.size(), n)));
                  }
                  for (const wire::Qid& q : rw->wqids) self->qids.push_back(q);
                  if (rw->wqids.size() < n) {
                    return self->Fail(
                        s, from,
                        Error(std::errc::no_such_file_or_directory,
                              fmt::format("walk: '{}'", self->names[self->qids.size()])));
                  }
                  if (self->qids.size() == self->names.size())
                    return self->done(std::move(self->qids));
                  self->Step(s);
                }});
  }

  void Fail(Session* s, size_t from, Error e) {
    // A fid made by an earlier step is the caller's no more. The failure is reported only
    // once the server has answered the Tclunk: the server may run requests in any order, so
    // a caller reusing newfid at once could otherwise overtake the clunk and find it in use.
    if (from > 0 && newfid != fid) {
      s->Send(wire::Tclunk{.fid = newfid},
              RawDone{nullptr, [self = shared_from_this(),
                                e = std::move(e)](Result<const wire::Message*>) mutable {
                        self->done(Unexpected(std::move(e)));
                      }});
      return;
    }
    done(Unexpected(std::move(e)));
  }
};

void Session::StartWalk(Fid fid, Fid newfid, std::vector<std::string> names,
                        Done<std::vector<wire::Qid>> done) {
  auto walk = std::make_shared<Walk>();
  walk->fid = fid;
  walk->newfid = newfid;
  walk->names = std::move(names);
  walk->done = std::move(done);
  walk->Step(this);
}

size_t Session::AliasPages(const wire::Rread& reply, std::span<std::byte> dest) {
  const buf::FileRef* pages = channel_->FramePages();
  const size_t whole = reply.data.size() / buf::kPageSize * buf::kPageSize;
  if (pages == nullptr || whole == 0 ||
      reply.data.bytes.data() != channel_->FramePayload().data() ||
      reinterpret_cast<uintptr_t>(dest.data()) % buf::kPageSize != 0) {
    return 0;
  }
  // Only over memory mapped for a Buffer alone: remapping anything else (the arena, which
  // the server must keep seeing; a caller's shared or file mapping, where the data is
  // meant to land; its heap) would change more than this buffer's contents.
  if (!buf::InPrivateBuffer(dest.data(), whole)) return 0;
  // Mapped lazily: a page faults in (with its neighbours: the kernel's fault-around) when
  // first touched. MAP_POPULATE was measured slower, and on a writable private mapping it
  // copies every page.
  void* p = ::mmap(dest.data(), whole, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, pages->fd,
                   static_cast<off_t>(pages->offset));
  return p == dest.data() ? whole : 0;
}

void Session::StartRead(Fid fid, uint64_t offset, std::span<std::byte> dest, Done<size_t> done) {
  // Pieces of whole pages (msize - 24 is not), so that a read that starts on a page has
  // every piece start on one: what page sharing and the server's own reads want.
  size_t chunk =
      iounit() > 2 * buf::kPageSize ? iounit() / buf::kPageSize * buf::kPageSize : iounit();
  size_t count = (dest.size() + chunk - 1) / chunk;
  if (count == 0) return done(size_t{0});
  auto pieces = std::make_shared<Pieces>(count, done.fn);
  // The Mover: a destination in the shared arena is offered to the server as the place
  // for the data (strategy b). Any other is copied into from the reply (a), unless the
  // reply came as pages of a file that never changes (shm, from a back end that offers
  // them: ramfs) and the destination is page-aligned private memory of a buf::Buffer:
  // then its whole pages are mapped onto the file's, copy-on-write (c: MAP_PRIVATE, so a
  // later write by either side is invisible to the other).
  std::shared_ptr<buf::Arena> arena = channel_->arena();
  bool placed = arena && arena->Contains(dest.data(), dest.size());
  for (size_t i = 0; i < count; ++i) {
    std::span<std::byte> part = dest.subspan(i * chunk, std::min(chunk, dest.size() - i * chunk));
    pieces->Want(i, part.size());
    Result<std::vector<std::byte>> frame = EncodeRequest(wire::Tread{
        .fid = fid, .offset = offset + i * chunk, .count = static_cast<uint32_t>(part.size())});
    if (!frame) {
      pieces->Finish(i, Unexpected(frame.error()));
      continue;
    }
    SendEncoded(std::move(*frame), {},
                RawDone{done.op,
                        [this, pieces, i, part](Result<const wire::Message*> r) {
                          if (!r) return pieces->Finish(i, Unexpected(r.error()));
                          pieces->Finish(i, Deliver(**r, part));
                        }},
                ReplyTo{.placement = placed ? part : std::span<std::byte>()});
  }
}

Result<size_t> Session::Deliver(const wire::Message& reply, std::span<std::byte> dest) {
  const auto* rr = std::get_if<wire::Rread>(&reply);
  if (rr == nullptr) return Unexpected(WrongReply("Rread", reply));
  if (rr->data.size() > dest.size()) {
    return Unexpected(
        Error(std::errc::protocol_error,
              fmt::format("Rread of {} bytes for a Tread of {}", rr->data.size(), dest.size())));
  }
  if (rr->data.bytes.data() == dest.data()) {
    CountRead(rr->data.size(), Moved::kPlaced);  // the server wrote it there
  } else if (size_t shared = AliasPages(*rr, dest); shared > 0) {
    std::memcpy(dest.data() + shared, rr->data.bytes.data() + shared,
                rr->data.size() - shared);  // a part page at the end
    CountRead(shared, Moved::kShared);
    CountRead(rr->data.size() - shared, Moved::kCopied);
  } else {
    // memmove: a misbehaving server could refer to bytes overlapping dest.
    std::memmove(dest.data(), rr->data.bytes.data(), rr->data.size());
    CountRead(rr->data.size(), Moved::kCopied);
  }
  return rr->data.size();
}

void Session::StartReadPiped(Fid fid, uint64_t offset, std::span<std::byte> dest,
                             Done<PipedRead> done) {
  if (!takes_pipes() || dest.empty() || dest.size() > iounit()) {
    return StartRead(fid, offset, dest, Done<size_t>{done.op, [fn = done.fn](Result<size_t> n) {
                                                       if (!n) return fn(Unexpected(n.error()));
                                                       fn(PipedRead{.bytes = *n});
                                                     }});
  }
  // One Tread that offers both: the server puts the data in a pipe when it can fill one
  // from its file, else where StartRead's would go (placed in dest, if it lies in the
  // arena).
  std::shared_ptr<buf::Arena> arena = channel_->arena();
  bool placed = arena && arena->Contains(dest.data(), dest.size());
  Result<std::vector<std::byte>> frame = EncodeRequest(
      wire::Tread{.fid = fid, .offset = offset, .count = static_cast<uint32_t>(dest.size())});
  if (!frame) return done(Unexpected(frame.error()));
  SendEncoded(
      std::move(*frame), {},
      RawDone{done.op,
              [this, done, dest](Result<const wire::Message*> r) {
                if (!r) return done(Unexpected(r.error()));
                if (size_t piped = channel_->FramePipeBytes(); piped > 0) {
                  // An Rread (OnFrame checked) of no bytes in itself.
                  if (piped > dest.size()) {
                    return done(Unexpected(Error(
                        std::errc::protocol_error,
                        fmt::format("a pipe of {} bytes for a Tread of {}", piped, dest.size()))));
                  }
                  auto pipe = std::make_shared<const PipeEnd>(channel_->TakeFramePipe());
                  CountRead(piped, Moved::kPiped);
                  return done(PipedRead{.bytes = piped, .pipe = std::move(pipe)});
                }
                Result<size_t> n = Deliver(**r, dest);
                if (!n) return done(Unexpected(n.error()));
                done(PipedRead{.bytes = *n});
              }},
      ReplyTo{.placement = placed ? dest : std::span<std::byte>(), .pipe = true});
}

void Session::StartWrite(Fid fid, uint64_t offset, std::span<const std::byte> src,
                         Done<size_t> done) {
  size_t chunk = iounit();
  size_t count = (src.size() + chunk - 1) / chunk;
  if (count == 0) count = 1;  // a zero-byte write is still a request (it may extend nothing)
  auto pieces = std::make_shared<Pieces>(count, done.fn);
  // Over shm, a source in the shared arena is sent by reference (the server's write is
  // the only copy); any other is copied into the request.
  std::shared_ptr<buf::Arena> arena = channel_->arena();
  Moved how = arena && arena->Contains(src.data(), src.size()) ? Moved::kPlaced : Moved::kCopied;
  for (size_t i = 0; i < count; ++i) {
    std::span<const std::byte> part =
        src.subspan(std::min(i * chunk, src.size()),
                    std::min(chunk, src.size() - std::min(i * chunk, src.size())));
    pieces->Want(i, part.size());
    wire::Frame f{
        .tag = 0,
        .msg = wire::Twrite{.fid = fid, .offset = offset + i * chunk, .data = wire::Data(part)}};
    std::vector<std::byte> head(wire::kIoHeaderSize - 1);  // size tag type fid offset count
    Result<wire::EncodedHead> h = wire::EncodeHead(f, options_.dialect, head, msize_);
    if (!h) {
      pieces->Finish(i, Unexpected(h.error()));
      continue;
    }
    head.resize(h->head_size);
    SendEncoded(std::move(head), part,
                RawDone{done.op, [this, pieces, i, part, how](Result<const wire::Message*> r) {
                          if (!r) return pieces->Finish(i, Unexpected(r.error()));
                          const auto* rw = std::get_if<wire::Rwrite>(*r);
                          if (rw == nullptr) {
                            return pieces->Finish(i, Unexpected(WrongReply("Rwrite", **r)));
                          }
                          if (rw->count > part.size()) {
                            return pieces->Finish(
                                i, Unexpected(Error(std::errc::protocol_error,
                                                    fmt::format("Rwrite of {} for {} bytes",
                                                                rw->count, part.size()))));
                          }
                          CountWritten(rw->count, how);
                          pieces->Finish(i, size_t{rw->count});
                        }});
  }
}

void Session::StartReaddir(Fid fid, uint64_t offset, Done<std::vector<DirEntry>> done) {
  bool dot_l = options_.dialect == wire::Dialect::k9P2000L;
  wire::Message request =
      dot_l ? wire::Message(wire::Treaddir{.fid = fid, .offset = offset, .count = iounit()})
            : wire::Message(wire::Tread{.fid = fid, .offset = offset, .count = iounit()});
  Send(request, RawDone{done.op, [this, dot_l, offset, done](Result<const wire::Message*> r) {
                          if (!r) return done(Unexpected(r.error()));
                          std::vector<DirEntry> entries;
                          std::span<const std::byte> data;
                          if (const auto* rd = std::get_if<wire::Rreaddir>(*r); rd && dot_l) {
                            data = rd->data.bytes;
                          } else if (const auto* rr = std::get_if<wire::Rread>(*r); rr && !dot_l) {
                            data = rr->data.bytes;
                          } else {
                            return done(Unexpected(WrongReply(dot_l ? "Rreaddir" : "Rread", **r)));
                          }
                          size_t total = data.size();
                          while (!data.empty()) {
                            if (dot_l) {
                              Result<wire::Dirent> d = wire::DecodeDirent(data);
                              if (!d) return done(Unexpected(d.error()));
                              entries.push_back({d->qid, d->offset, d->type, std::string(d->name)});
                            } else {
                              Result<wire::Stat> s = wire::DecodeDirStat(data, options_.dialect);
                              if (!s) return done(Unexpected(s.error()));
                              uint64_t next = offset + (total - data.size());
                              uint8_t type = (s->qid.type & wire::kQtDir)       ? DT_DIR
                                             : (s->qid.type & wire::kQtSymlink) ? DT_LNK
                                                                                : DT_REG;
                              entries.push_back({s->qid, next, type, std::string(s->name)});
                            }
                          }
                          done(std::move(entries));
                        }});
}

}  // namespace ninefold::client
