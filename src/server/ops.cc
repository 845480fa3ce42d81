// Handlers for the messages every dialect shares and for 9P2000.L. Each runs on an io
// thread (connection.h), calls the FileServer, and returns the reply (or an error the
// connection turns into Rlerror/Rerror).
#include "ops.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "fmt/format.h"

namespace ninefold::server {
namespace {

using fs::Errno;

// Reads smaller than this are copied: below it two splices cost about what a copy does.
constexpr uint32_t kSpliceMin = 16 * 1024;
// Reads smaller than this are not offered as pages: handing over and mapping a
// descriptor costs about what copying this much twice does.
constexpr uint32_t kShareMin = 64 * 1024;

// Holds a reply's strings and buffers alive while its views are encoded and sent.
template <class T>
std::shared_ptr<T> Keep(T value) {
  return std::make_shared<T>(std::move(value));
}

Result<void> CheckName(std::string_view name) {
  if (name.empty() || name.find('/') != std::string_view::npos) {
    return Errno(EINVAL, fmt::format("bad name '{}'", name));
  }
  return {};
}

class Ops {
 public:
  Ops(Connection& c, ReplyTo to, transport::SplicePipe* data) : c_(c), to_(to), data_(data) {}

  // --- session -------------------------------------------------------------------------
  Result<Reply> operator()(const wire::Tauth&) {
    // No authentication yet: clients that always try Tauth (diod's do) expect ENOENT and
    // then attach with afid NOFID.
    return Errno(ENOENT, "authentication not required");
  }

  Result<Reply> operator()(const wire::Tattach& m) {
    if (m.afid != wire::kNoFid) return Errno(EINVAL, "authentication not required");
    fs::Identity who{.uname = std::string(m.uname), .uid = m.n_uname};
    Result<std::unique_ptr<fs::Node>> root = c_.root().Attach(who, m.aname);
    if (!root) return Unexpected(root.error());
    auto fid = std::make_shared<Fid>();
    fid->node = std::move(*root);
    fid->root = fid->node;
    fid->who = std::move(who);
    fid->is_dir = true;
    wire::Qid qid = fid->node->qid();
    if (auto ok = c_.AddFid(m.fid, std::move(fid)); !ok) return Unexpected(ok.error());
    return Reply{wire::Rattach{.qid = qid}, nullptr};
  }

  Result<Reply> operator()(const wire::Twalk& m) {
    auto from = c_.GetFid(m.fid);
    if (!from) return Unexpected(from.error());
    const Fid& src = **from;
    auto fid = std::make_shared<Fid>();
    fid->root = src.root;
    fid->who = src.who;
    fid->path = src.path;
    fid->is_dir = src.is_dir;
    wire::Rwalk rwalk;
    if (m.wnames.empty()) {
      auto clone = src.node->Clone();
      if (!clone) return Unexpected(clone.error());
      fid->node = std::move(*clone);
    } else {
      std::shared_ptr<fs::Node> node = src.node;
      for (size_t i = 0; i < m.wnames.size(); ++i) {
        std::string_view name = m.wnames[i];
        Result<std::unique_ptr<fs::Node>> next =
            CheckName(name).has_value() ? node->Walk(name) : Errno(EINVAL, "bad name");
        if (!next) {
          if (i == 0) return Unexpected(next.error());
          return Reply{rwalk, nullptr};  // partial walk: newfid is not created
        }
        node = std::move(*next);
        wire::Qid q = node->qid();
        (void)rwalk.wqids.push_back(q);
        fid->is_dir = (q.type & wire::kQtDir) != 0;
        if (name == "..") {
          if (!fid->path.empty()) fid->path.pop_back();
        } else if (name != ".") {
          fid->path.emplace_back(name);
        }
      }
      fid->node = std::move(node);
    }
    if (m.newfid == m.fid) {
      c_.ReplaceFid(m.fid, std::move(fid));
    } else if (auto ok = c_.AddFid(m.newfid, std::move(fid)); !ok) {
      return Unexpected(ok.error());
    }
    return Reply{rwalk, nullptr};
  }

  Result<Reply> operator()(const wire::Tclunk& m) {
    std::shared_ptr<Fid> fid = c_.RemoveFid(m.fid);
    if (!fid) return Errno(EBADF, fmt::format("unknown fid {}", m.fid));
    if (fid->xattr == Fid::Xattr::kWrite) {
      if (auto ok = CommitXattr(*fid); !ok) return Unexpected(ok.error());
    }
    if (fid->remove_on_clunk) {
      if (auto ok = fid->node->Remove(); !ok) return Unexpected(ok.error());
    }
    return Reply{wire::Rclunk{}, nullptr};
  }

  Result<Reply> operator()(const wire::Tremove& m) {
    // The fid is clunked whatever the outcome.
    std::shared_ptr<Fid> fid = c_.RemoveFid(m.fid);
    if (!fid) return Errno(EBADF, fmt::format("unknown fid {}", m.fid));
    if (auto ok = fid->node->Remove(); !ok) return Unexpected(ok.error());
    return Reply{wire::Rremove{}, nullptr};
  }

  // --- I/O -------------------------------------------------------------------------------
  Result<Reply> operator()(const wire::Tread& m) {
    auto fid = c_.GetFid(m.fid);
    if (!fid) return Unexpected(fid.error());
    Fid& f = **fid;
    uint32_t count = std::min(m.count, c_.iounit());
    if (f.xattr == Fid::Xattr::kRead) {
      std::string_view v = f.xattr_value;
      std::string_view part = m.offset < v.size() ? v.substr(m.offset, count) : "";
      return Reply{wire::Rread{.data = wire::Data(part)}, *fid};
    }
    if (f.is_dir && c_.dialect() != wire::Dialect::k9P2000L) return HandleDirRead(c_, f, m);
    if (!f.open) return Errno(EBADF, "read on a fid that is not open");
    const bool spliceable = count >= kSpliceMin && c_.pipes() != nullptr && f.node->data_fd() >= 0;
    if (spliceable && to_.pipe) {
      // A pipe for the client to move on (a FUSE daemon splices it into /dev/fuse): the
      // data never enters our memory or the client's.
      if (auto reply = SplicedRead(f, m.offset, count, /*whole=*/true)) return std::move(*reply);
    }
    if (to_.placement.size() >= count) {
      // Straight into the client's shared memory; the reply refers to it.
      Result<size_t> n = f.node->Read(m.offset, to_.placement.first(count));
      if (!n) return Unexpected(n.error());
      c_.stats().bytes_read += *n;
      return Reply{
          wire::Rread{.data = wire::Data(std::span<const std::byte>(to_.placement.first(*n)))},
          nullptr};
    }
    if (count >= kShareMin && c_.shares_pages() && m.offset % buf::kPageSize == 0) {
      // Pages the client can map (strategy c): no copy here, none by the client either
      // when its destination is page-aligned.
      if (std::optional<buf::SharedBytes> shared = f.node->Share(m.offset, count)) {
        c_.stats().bytes_shared += shared->bytes.size();
        return Reply{wire::Rread{.data = wire::Data(shared->bytes)}, std::move(shared->owner),
                     nullptr, shared->file};
      }
    }
    if (spliceable && c_.splices() && count <= c_.splice_read_max()) {
      if (auto reply = SplicedRead(f, m.offset, count, /*whole=*/false)) return std::move(*reply);
    }
    return PlainRead(f, m.offset, count);
  }

  // Read into a buffer of our own; the reply sends it.
  Result<Reply> PlainRead(Fid& f, uint64_t offset, uint32_t count) {
    // Uninitialized: Read fills what it returns, and only that is sent.
    std::shared_ptr<std::byte[]> buf(new std::byte[count]);
    Result<size_t> n = f.node->Read(offset, std::span<std::byte>(buf.get(), count));
    if (!n) return Unexpected(n.error());
    c_.stats().bytes_read += *n;
    return Reply{wire::Rread{.data = wire::Data(std::span<const std::byte>(buf.get(), *n))}, buf};
  }

  // The data moves from the file into a pipe and from there into the socket, never through
  // our memory (transport/splice.h). Whatever the pipe could not take (data that starts
  // mid-page needs a slot more than its size) is read the ordinary way and sent after it;
  // with `whole` (a pipe handed to the client, which takes nothing after it) the pipe must
  // hold the whole reply, up to the end of the file.
  // Nothing (use PlainRead) when no pipe is free or the file cannot be spliced.
  std::optional<Result<Reply>> SplicedRead(Fid& f, uint64_t offset, uint32_t count, bool whole) {
    std::shared_ptr<transport::SplicePipe> pipe = c_.pipes()->Take();
    if (!pipe) return std::nullopt;
    Result<size_t> moved = transport::FillPipe(*pipe, f.node->data_fd(), offset, count);
    if (!moved || *moved == 0) return std::nullopt;  // errors and EOF: Read says what
    if (whole && *moved < count) {
      struct stat st {};
      if (::fstat(f.node->data_fd(), &st) != 0 ||
          offset + *moved < static_cast<uint64_t>(st.st_size)) {
        return std::nullopt;  // the pipe was full, not the file ended (the pipe is dropped)
      }
    }
    (whole ? c_.stats().bytes_piped : c_.stats().bytes_spliced) += *moved;
    if (*moved == count || whole) {
      return Reply{wire::Rread{.data = wire::Data(std::span<const std::byte>())}, nullptr,
                   std::move(pipe)};
    }
    const uint32_t rest = count - static_cast<uint32_t>(*moved);
    std::shared_ptr<std::byte[]> buf(new std::byte[rest]);
    Result<size_t> n = f.node->Read(offset + *moved, std::span<std::byte>(buf.get(), rest));
    // The spliced part alone is a valid (short) read if the rest fails.
    size_t got = n ? *n : 0;
    c_.stats().bytes_read += got;
    return Reply{wire::Rread{.data = wire::Data(std::span<const std::byte>(buf.get(), got))}, buf,
                 std::move(pipe)};
  }

  Result<Reply> operator()(const wire::Twrite& m) {
    auto fid = c_.GetFid(m.fid);
    if (!fid) return Unexpected(fid.error());
    Fid& f = **fid;
    if (f.xattr == Fid::Xattr::kWrite) {
      std::string value;
      if (data_ != nullptr) {
        Result<std::string> piped = PipedBytes();
        if (!piped) return Unexpected(piped.error());
        value = std::move(*piped);
      }
      value.append(m.data.AsString());
      if (m.offset != f.xattr_value.size() || f.xattr_value.size() + value.size() > f.xattr_size) {
        return Errno(EINVAL, "xattr write out of order or beyond its size");
      }
      f.xattr_value.append(value);
      return Reply{wire::Rwrite{.count = static_cast<uint32_t>(value.size())}, nullptr};
    }
    if (!f.open) return Errno(EBADF, "write on a fid that is not open");
    // The data may begin in a pipe (the channel spliced it from the socket). When the
    // frame holds the rest (the pipe filled up first), both go to the node as one Write,
    // as the client sent one: a synthetic file may take each write as a whole.
    if (data_ != nullptr && m.data.bytes.empty()) {
      Result<size_t> n = WritePiped(*f.node, m.offset);
      if (!n) return Unexpected(n.error());
      return Reply{wire::Rwrite{.count = static_cast<uint32_t>(*n)}, nullptr};
    }
    std::string joined;
    std::span<const std::byte> bytes = m.data.bytes;
    if (data_ != nullptr) {
      Result<std::string> piped = PipedBytes(bytes);
      if (!piped) return Unexpected(piped.error());
      joined = std::move(*piped);
      bytes = std::as_bytes(std::span(joined));
    }
    Result<size_t> n = f.node->Write(m.offset, bytes);
    if (!n) return Unexpected(n.error());
    return Reply{wire::Rwrite{.count = static_cast<uint32_t>(*n)}, nullptr};
  }

  // --- 9P2000.L --------------------------------------------------------------------------
  Result<Reply> operator()(const wire::Tlopen& m) {
    auto fid = c_.GetFid(m.fid);
    if (!fid) return Unexpected(fid.error());
    Fid& f = **fid;
    if (f.open) return Errno(EBADF, "fid already open");
    Result<uint32_t> iounit = f.node->Open(m.flags);
    if (!iounit) return Unexpected(iounit.error());
    f.open = true;
    return Reply{wire::Rlopen{.qid = f.node->qid(), .iounit = IoUnit(*iounit)}, nullptr};
  }

  Result<Reply> operator()(const wire::Tlcreate& m) {
    auto fid = c_.GetFid(m.fid);
    if (!fid) return Unexpected(fid.error());
    if (auto ok = CheckName(m.name); !ok) return Unexpected(ok.error());
    Fid& dir = **fid;
    Result<std::unique_ptr<fs::Node>> node = dir.node->Create(m.name, m.flags, m.mode, m.gid);
    if (!node) return Unexpected(node.error());
    // The fid now refers to the new, open file.
    auto f = std::make_shared<Fid>();
    f->node = std::move(*node);
    f->root = dir.root;
    f->who = dir.who;
    f->path = dir.path;
    f->path.emplace_back(m.name);
    f->open = true;
    wire::Qid qid = f->node->qid();
    c_.ReplaceFid(m.fid, std::move(f));
    return Reply{wire::Rlcreate{.qid = qid, .iounit = IoUnit(0)}, nullptr};
  }

  Result<Reply> operator()(const wire::Tgetattr& m) {
    return WithNode(m.fid, [&](fs::Node& n) -> Result<Reply> {
      Result<wire::Rgetattr> attr = n.GetAttr(m.request_mask);
      if (!attr) return Unexpected(attr.error());
      return Reply{*attr, nullptr};
    });
  }

  Result<Reply> operator()(const wire::Tsetattr& m) {
    return WithNode(m.fid, [&](fs::Node& n) { return Done(n.SetAttr(m), wire::Rsetattr{}); });
  }

  Result<Reply> operator()(const wire::Treaddir& m) {
    auto fid = c_.GetFid(m.fid);
    if (!fid) return Unexpected(fid.error());
    if (!(*fid)->open) return Errno(EBADF, "readdir on a fid that is not open");
    uint32_t count = std::min(m.count, c_.iounit());
    std::shared_ptr<std::byte[]> buf(new std::byte[count]);
    Result<size_t> n = (*fid)->node->ReadDir(m.offset, std::span<std::byte>(buf.get(), count));
    if (!n) return Unexpected(n.error());
    return Reply{wire::Rreaddir{.data = wire::Data(std::span<const std::byte>(buf.get(), *n))},
                 buf};
  }

  Result<Reply> operator()(const wire::Tmkdir& m) {
    if (auto ok = CheckName(m.name); !ok) return Unexpected(ok.error());
    return WithNode(m.dfid, [&](fs::Node& n) -> Result<Reply> {
      Result<wire::Qid> q = n.Mkdir(m.name, m.mode, m.gid);
      if (!q) return Unexpected(q.error());
      return Reply{wire::Rmkdir{.qid = *q}, nullptr};
    });
  }

  Result<Reply> operator()(const wire::Tsymlink& m) {
    if (auto ok = CheckName(m.name); !ok) return Unexpected(ok.error());
    return WithNode(m.fid, [&](fs::Node& n) -> Result<Reply> {
      Result<wire::Qid> q = n.Symlink(m.name, m.symtgt, m.gid);
      if (!q) return Unexpected(q.error());
      return Reply{wire::Rsymlink{.qid = *q}, nullptr};
    });
  }

  Result<Reply> operator()(const wire::Tmknod& m) {
    if (auto ok = CheckName(m.name); !ok) return Unexpected(ok.error());
    return WithNode(m.dfid, [&](fs::Node& n) -> Result<Reply> {
      Result<wire::Qid> q = n.Mknod(m.name, m.mode, m.major, m.minor, m.gid);
      if (!q) return Unexpected(q.error());
      return Reply{wire::Rmknod{.qid = *q}, nullptr};
    });
  }

  Result<Reply> operator()(const wire::Tlink& m) {
    if (auto ok = CheckName(m.name); !ok) return Unexpected(ok.error());
    auto target = c_.GetFid(m.fid);
    if (!target) return Unexpected(target.error());
    return WithNode(m.dfid, [&](fs::Node& dir) {
      return Done(dir.Link(m.name, *(*target)->node), wire::Rlink{});
    });
  }

  Result<Reply> operator()(const wire::Trename& m) {
    if (auto ok = CheckName(m.name); !ok) return Unexpected(ok.error());
    auto dir = c_.GetFid(m.dfid);
    if (!dir) return Unexpected(dir.error());
    return WithNode(
        m.fid, [&](fs::Node& n) { return Done(n.Rename(*(*dir)->node, m.name), wire::Rrename{}); });
  }

  Result<Reply> operator()(const wire::Trenameat& m) {
    if (auto ok = CheckName(m.oldname); !ok) return Unexpected(ok.error());
    if (auto ok = CheckName(m.newname); !ok) return Unexpected(ok.error());
    auto newdir = c_.GetFid(m.newdirfid);
    if (!newdir) return Unexpected(newdir.error());
    return WithNode(m.olddirfid, [&](fs::Node& n) {
      return Done(n.RenameAt(m.oldname, *(*newdir)->node, m.newname), wire::Rrenameat{});
    });
  }

  Result<Reply> operator()(const wire::Tunlinkat& m) {
    if (auto ok = CheckName(m.name); !ok) return Unexpected(ok.error());
    return WithNode(m.dirfid, [&](fs::Node& n) {
      return Done(n.UnlinkAt(m.name, m.flags), wire::Runlinkat{});
    });
  }

  Result<Reply> operator()(const wire::Treadlink& m) {
    return WithNode(m.fid, [&](fs::Node& n) -> Result<Reply> {
      Result<std::string> target = n.ReadLink();
      if (!target) return Unexpected(target.error());
      auto keep = Keep(std::move(*target));
      return Reply{wire::Rreadlink{.target = *keep}, keep};
    });
  }

  Result<Reply> operator()(const wire::Tstatfs& m) {
    return WithNode(m.fid, [&](fs::Node& n) -> Result<Reply> {
      Result<wire::Rstatfs> st = n.StatFs();
      if (!st) return Unexpected(st.error());
      return Reply{*st, nullptr};
    });
  }

  Result<Reply> operator()(const wire::Tfsync& m) {
    return WithNode(m.fid, [&](fs::Node& n) {
      return Done(n.Fsync(m.datasync.value_or(0) != 0), wire::Rfsync{});
    });
  }

  Result<Reply> operator()(const wire::Tlock& m) {
    return WithNode(m.fid, [&](fs::Node& n) -> Result<Reply> {
      Result<uint8_t> status = n.Lock(m);
      if (!status) return Unexpected(status.error());
      return Reply{wire::Rlock{.status = *status}, nullptr};
    });
  }

  Result<Reply> operator()(const wire::Tgetlock& m) {
    return WithNode(m.fid, [&](fs::Node& n) -> Result<Reply> {
      Result<fs::LockInfo> info = n.GetLock(m);
      if (!info) return Unexpected(info.error());
      auto keep = Keep(std::move(*info));
      return Reply{wire::Rgetlock{.type = keep->type,
                                  .start = keep->start,
                                  .length = keep->length,
                                  .proc_id = keep->proc_id,
                                  .client_id = keep->client_id},
                   keep};
    });
  }

  Result<Reply> operator()(const wire::Txattrwalk& m) {
    auto from = c_.GetFid(m.fid);
    if (!from) return Unexpected(from.error());
    Result<std::string> value = (*from)->node->GetXattr(m.name);
    if (!value) return Unexpected(value.error());
    auto fid = std::make_shared<Fid>();
    fid->node = (*from)->node;
    fid->root = (*from)->root;
    fid->who = (*from)->who;
    fid->path = (*from)->path;
    fid->xattr = Fid::Xattr::kRead;
    fid->xattr_name = m.name;
    fid->xattr_value = std::move(*value);
    uint64_t size = fid->xattr_value.size();
    if (m.newfid == m.fid) {
      c_.ReplaceFid(m.fid, std::move(fid));
    } else if (auto ok = c_.AddFid(m.newfid, std::move(fid)); !ok) {
      return Unexpected(ok.error());
    }
    return Reply{wire::Rxattrwalk{.size = size}, nullptr};
  }

  Result<Reply> operator()(const wire::Txattrcreate& m) {
    auto fid = c_.GetFid(m.fid);
    if (!fid) return Unexpected(fid.error());
    if (m.attr_size > 65536) return Errno(E2BIG, "xattr larger than 64 KiB");
    Fid& f = **fid;
    f.xattr = Fid::Xattr::kWrite;
    f.xattr_name = m.name;
    f.xattr_value.clear();
    f.xattr_size = m.attr_size;
    f.xattr_flags = m.flags;
    return Reply{wire::Rxattrcreate{}, nullptr};
  }

  // --- 9P2000 / 9P2000.u (ops_classic.cc) ------------------------------------------------
  Result<Reply> operator()(const wire::Topen& m) { return HandleOpen(c_, m); }
  Result<Reply> operator()(const wire::Tcreate& m) { return HandleCreate(c_, m); }
  Result<Reply> operator()(const wire::Tstat& m) { return HandleStat(c_, m); }
  Result<Reply> operator()(const wire::Twstat& m) { return HandleWstat(c_, m); }

  // Tversion and Tflush are answered on the io thread; R-messages never get here.
  template <class M>
  Result<Reply> operator()(const M&) {
    return Errno(EPROTO, fmt::format("unexpected {}", M::kName));
  }

 private:
  uint32_t IoUnit(uint32_t from_node) const {
    return from_node != 0 ? std::min(from_node, c_.iounit()) : c_.iounit();
  }

  template <class Fn>
  Result<Reply> WithNode(uint32_t fid, Fn&& fn) {
    auto f = c_.GetFid(fid);
    if (!f) return Unexpected(f.error());
    return fn(*(*f)->node);
  }

  template <class R>
  static Result<Reply> Done(const Result<void>& ok, R reply) {
    if (!ok) return Unexpected(ok.error());
    return Reply{reply, nullptr};
  }

  Result<void> CommitXattr(Fid& f) {
    if (f.xattr_value.size() != f.xattr_size) {
      return Errno(EINVAL, fmt::format("xattr '{}': {} of {} bytes written", f.xattr_name,
                                       f.xattr_value.size(), f.xattr_size));
    }
    // Linux's removexattr arrives as an empty create with XATTR_REPLACE.
    if (f.xattr_size == 0 && f.xattr_flags == wire::kXattrReplace) {
      return f.node->RemoveXattr(f.xattr_name);
    }
    return f.node->SetXattr(f.xattr_name, f.xattr_value, f.xattr_flags);
  }

  // A Twrite's first bytes, waiting in a pipe (its read end is non-blocking and holds
  // them): into the node with WriteFromPipe; what it does not take stays (pending says
  // how much, so the pool closes a pipe that was not emptied).
  Result<size_t> WritePiped(fs::Node& node, uint64_t offset) {
    const size_t count = data_->pending;
    Result<size_t> n = node.WriteFromPipe(offset, data_->read_fd, count);
    int left = 0;
    if (n && *n == count) {
      data_->pending = 0;
    } else {  // what the node left in the pipe (1 when unknown: the pool closes it)
      data_->pending =
          ::ioctl(data_->read_fd, FIONREAD, &left) == 0 ? static_cast<size_t>(left) : 1;
    }
    if (n) c_.stats().bytes_written_from_pipes += count - data_->pending;
    return n;
  }

  // The pipe's bytes as a string, followed by `then` (xattr values are kept in memory; a
  // Twrite's frame may hold the rest of its data).
  Result<std::string> PipedBytes(std::span<const std::byte> then = {}) {
    const size_t piped = data_->pending;
    std::string bytes(piped + then.size(), '\0');
    std::span<std::byte> out = std::as_writable_bytes(std::span(bytes));
    auto ok = fs::ReadPipe(data_->read_fd, out.first(piped));
    if (!ok) return Unexpected(ok.error());
    data_->pending = 0;
    if (!then.empty()) std::memcpy(out.data() + piped, then.data(), then.size());
    return bytes;
  }

  Connection& c_;
  ReplyTo to_;                   // where the client wants a Tread's data
  transport::SplicePipe* data_;  // where a Twrite's data begins, or null
};

}  // namespace

Result<Reply> HandleRequest(Connection& conn, const wire::Frame& frame, ReplyTo to,
                            transport::SplicePipe* data) {
  // The channel hands over pipes only with Twrites, and only pipes that hold bytes.
  NINEFOLD_CHECK(data == nullptr ||
                 (data->pending > 0 && std::holds_alternative<wire::Twrite>(frame.msg)));
  return std::visit(Ops(conn, to, data), frame.msg);
}

}  // namespace ninefold::server
