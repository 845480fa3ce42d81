// The blocking facade: each call is one or a few Session operations waited on with a
// future, mapped onto the dialect the session speaks.
#include "ninefold/client/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <future>
#include <thread>

#include "asio/executor_work_guard.hpp"
#include "asio/post.hpp"
#include "asio/use_future.hpp"
#include "fmt/format.h"
#include "ninefold/transport/channel.h"

namespace ninefold {

using client::Session;
using Fid = Session::Fid;

namespace {

using wire::kDmDevice;
using wire::kDmDir;
using wire::kDmNamedPipe;
using wire::kDmSocket;
using wire::kDmSymlink;

// O_* access flags for a Plan 9 open mode (OEXEC reads), plus O_TRUNC for OTRUNC.
uint32_t OpenFlags(uint32_t mode) {
  static constexpr uint32_t kAccess[] = {O_RDONLY, O_WRONLY, O_RDWR, O_RDONLY};
  return kAccess[mode & 3] | ((mode & OTRUNC) ? O_TRUNC : 0);
}

bool IsDotL(const Session& s) { return s.dialect() == wire::Dialect::k9P2000L; }

// Adds what was being done to an error: "open a/b: walk: 'b'".
Error With(const Error& e, std::string_view what, std::string_view path) {
  std::string context = fmt::format("{} {}", what, path.empty() ? "/" : path);
  if (!e.context().empty()) context += ": " + e.context();
  return Error(e.code(), std::move(context));
}

template <class T>
Result<T> Wait(std::future<Result<T>> f) {
  return f.get();
}

// st_mode from a 9P2000 stat mode.
uint32_t PosixMode(uint32_t dm) {
  uint32_t type = S_IFREG;
  if (dm & kDmDir)
    type = S_IFDIR;
  else if (dm & kDmSymlink)
    type = S_IFLNK;
  else if (dm & kDmDevice)
    type = S_IFCHR;
  else if (dm & kDmNamedPipe)
    type = S_IFIFO;
  else if (dm & kDmSocket)
    type = S_IFSOCK;
  return type | (dm & 07777);
}

Stat FromGetattr(const wire::Rgetattr& a, std::string name) {
  Stat s;
  s.name = std::move(name);
  s.qid = a.qid;
  s.mode = a.mode;
  s.uid = a.uid;
  s.gid = a.gid;
  s.nlink = a.nlink;
  s.size = a.size;
  s.blocks = a.blocks;
  s.atime_sec = static_cast<int64_t>(a.atime_sec);
  s.atime_nsec = static_cast<uint32_t>(a.atime_nsec);
  s.mtime_sec = static_cast<int64_t>(a.mtime_sec);
  s.mtime_nsec = static_cast<uint32_t>(a.mtime_nsec);
  s.ctime_sec = static_cast<int64_t>(a.ctime_sec);
  s.ctime_nsec = static_cast<uint32_t>(a.ctime_nsec);
  return s;
}

Stat FromStat(const client::OwnedStat& o) {
  Stat s;
  s.name = o.name;
  s.qid = o.qid;
  s.mode = PosixMode(o.mode);
  s.uid = o.n_uid;
  s.gid = o.n_gid;
  s.uid_name = o.uid;
  s.gid_name = o.gid;
  s.nlink = 1;
  s.size = o.length;
  s.atime_sec = o.atime;
  s.mtime_sec = o.mtime;
  s.ctime_sec = o.mtime;
  return s;
}

// A 9P2000 Twstat stat that changes nothing ("don't touch" in every field).
wire::Stat KeepAll() {
  wire::Stat s;
  s.type = 0xffff;
  s.dev = 0xffffffff;
  s.qid = {0xff, 0xffffffff, ~uint64_t{0}};
  s.mode = s.atime = s.mtime = 0xffffffff;
  s.length = ~uint64_t{0};
  s.n_uid = s.n_gid = s.n_muid = wire::kNoUid;
  return s;
}

std::string BaseName(const std::vector<std::string>& names) {
  return names.empty() ? "/" : names.back();
}

}  // namespace

// --- Link ---------------------------------------------------------------------------------

struct Link::State {
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::shared_ptr<transport::Channel> channel;
  std::string peer;
  std::thread thread;
  std::mutex mu;
  std::shared_ptr<Session> session;  // guarded by mu: the first fsmount's
  wire::Dialect dialect{};           // guarded by mu

  ~State() {
    asio::post(io, [ch = channel, s = session] {
      if (s) s->Close();
      ch->Close();
    });
    session.reset();
    work.reset();
    if (thread.get_id() == std::this_thread::get_id()) {
      thread.detach();  // the last reference went away in a completion handler
    } else if (thread.joinable()) {
      thread.join();
    }
  }
  bool OnIoThread() { return io.get_executor().running_in_this_thread(); }
};

const std::string& Link::peer() const { return state_->peer; }

Result<Link> dial(std::string_view address, DialOptions options) {
  Result<transport::Address> addr = transport::ParseAddress(address);
  if (!addr) return Unexpected(addr.error());
  auto state = std::make_shared<Link::State>();
  Result<std::shared_ptr<transport::Channel>> ch =
      transport::Dial(state->io, *addr, options.timeout);
  if (!ch) return Unexpected(ch.error());
  state->channel = std::move(*ch);
  state->peer = addr->ToString();
  state->thread = std::thread([s = state.get()] { s->io.run(); });
  return Link(std::move(state));
}

// --- Fs ---------------------------------------------------------------------------------

Result<Fs> fsmount(const Link& link, MountOptions options) {
  const auto& state = link.state();
  if (!state) return Unexpected(Error(std::errc::invalid_argument, "fsmount: no link"));
  if (options.uname.empty()) {
    const char* user = std::getenv("USER");
    options.uname = user && *user ? user : "nobody";
  }
  if (options.n_uname == wire::kNoUid) options.n_uname = ::getuid();
  std::shared_ptr<Session> session;
  {
    std::lock_guard lock(state->mu);
    session = state->session;
    if (session && state->dialect != options.dialect) {
      return Unexpected(Error(std::errc::invalid_argument,
                              fmt::format("fsmount: {} already speaks {}", state->peer,
                                          wire::DialectName(state->dialect))));
    }
  }
  if (!session) {
    client::SessionOptions so{.msize = options.msize,
                              .dialect = options.dialect,
                              .max_outstanding = options.max_outstanding,
                              .deadline = options.deadline};
    Result<std::shared_ptr<Session>> s =
        Wait(Session::AsyncConnect(state->channel, so, state->io.get_executor(), asio::use_future));
    if (!s) return Unexpected(s.error());
    session = *s;
    std::lock_guard lock(state->mu);
    state->session = session;
    state->dialect = options.dialect;
  }
  Fid root = session->AllocFid();
  Result<wire::Qid> qid = Wait(
      session->AsyncAttach(root, options.uname, options.aname, asio::use_future, options.n_uname));
  if (!qid) {
    session->ReleaseFid(root);
    return Unexpected(With(qid.error(), "attach", "'" + options.aname + "'"));
  }
  return Fs(state, session, root);
}

Fs::~Fs() {
  if (!session_ || root_ == wire::kNoFid) return;
  if (link_->OnIoThread()) {
    session_->AsyncClunk(root_, [](Result<void>) {});
  } else {
    (void)Wait(session_->AsyncClunk(root_, asio::use_future));
  }
}

Result<Fid> Fs::Walk(const std::vector<std::string>& names, Fid from) const {
  Fid fid = session_->AllocFid();
  Result<std::vector<wire::Qid>> qids =
      Wait(session_->AsyncWalk(from == wire::kNoFid ? root_ : from, fid, names, asio::use_future));
  if (!qids) {
    session_->ReleaseFid(fid);
    return Unexpected(qids.error());
  }
  return fid;
}

Result<File> Fs::OpenFid(Fid fid, std::string path, uint32_t mode) const {
  Result<void> opened;
  if (IsDotL(*session_)) {
    uint32_t flags = OpenFlags(mode);
    auto r = Wait(session_->AsyncRequest<wire::Rlopen>(wire::Tlopen{.fid = fid, .flags = flags},
                                                       asio::use_future));
    if (!r) opened = Unexpected(r.error());
  } else {
    auto r = Wait(session_->AsyncRequest<wire::Ropen>(
        wire::Topen{.fid = fid, .mode = static_cast<uint8_t>(mode)}, asio::use_future));
    if (!r) opened = Unexpected(r.error());
  }
  if (!opened) {
    (void)Wait(session_->AsyncClunk(fid, asio::use_future));
    return Unexpected(With(opened.error(), "open", path));
  }
  return File(link_, session_, fid, std::move(path));
}

Result<File> Fs::open(std::string_view path, uint32_t mode) const {
  Result<Fid> fid = Walk(SplitPath(path));
  if (!fid) return Unexpected(With(fid.error(), "open", path));
  return OpenFid(*fid, std::string(path), mode);
}

Result<File> Fs::create(std::string_view path, uint32_t mode, uint32_t perm) const {
  std::vector<std::string> names = SplitPath(path);
  if (names.empty()) return Unexpected(Error(std::errc::is_a_directory, "create /"));
  std::string name = names.back();
  names.pop_back();
  Result<Fid> dir = Walk(names);
  if (!dir) return Unexpected(With(dir.error(), "create", path));
  Result<void> made;
  if (IsDotL(*session_)) {
    uint32_t flags = OpenFlags(mode) | O_CREAT | O_EXCL;
    auto r = Wait(session_->AsyncRequest<wire::Rlcreate>(
        wire::Tlcreate{
            .fid = *dir, .name = name, .flags = flags, .mode = perm & 07777, .gid = ::getgid()},
        asio::use_future));
    if (!r) made = Unexpected(r.error());
  } else {
    auto r = Wait(session_->AsyncRequest<wire::Rcreate>(
        wire::Tcreate{
            .fid = *dir, .name = name, .perm = perm & 0777, .mode = static_cast<uint8_t>(mode)},
        asio::use_future));
    if (!r) made = Unexpected(r.error());
  }
  if (!made) {
    (void)Wait(session_->AsyncClunk(*dir, asio::use_future));
    return Unexpected(With(made.error(), "create", path));
  }
  return File(link_, session_, *dir, std::string(path));
}

Result<void> Fs::mkdir(std::string_view path, uint32_t perm) const {
  std::vector<std::string> names = SplitPath(path);
  if (names.empty()) return Unexpected(Error(std::errc::file_exists, "mkdir /"));
  std::string name = names.back();
  names.pop_back();
  Result<Fid> dir = Walk(names);
  if (!dir) return Unexpected(With(dir.error(), "mkdir", path));
  Result<void> made;
  if (IsDotL(*session_)) {
    auto r = Wait(session_->AsyncRequest<wire::Rmkdir>(
        wire::Tmkdir{.dfid = *dir, .name = name, .mode = perm & 07777, .gid = ::getgid()},
        asio::use_future));
    if (!r) made = Unexpected(r.error());
  } else {
    // Tcreate of a directory opens it (OREAD); the clunk below closes it.
    auto r = Wait(session_->AsyncRequest<wire::Rcreate>(
        wire::Tcreate{.fid = *dir, .name = name, .perm = kDmDir | (perm & 0777), .mode = OREAD},
        asio::use_future));
    if (!r) made = Unexpected(r.error());
  }
  (void)Wait(session_->AsyncClunk(*dir, asio::use_future));
  if (!made) return Unexpected(With(made.error(), "mkdir", path));
  return {};
}

Result<void> Fs::remove(std::string_view path) const {
  Result<Fid> fid = Walk(SplitPath(path));
  if (!fid) return Unexpected(With(fid.error(), "remove", path));
  Result<void> r = Wait(session_->AsyncRemove(*fid, asio::use_future));
  if (!r) return Unexpected(With(r.error(), "remove", path));
  return {};
}

Result<void> Fs::rename(std::string_view from, std::string_view to) const {
  std::vector<std::string> src = SplitPath(from), dst = SplitPath(to);
  if (src.empty() || dst.empty()) {
    return Unexpected(Error(std::errc::invalid_argument, fmt::format("rename {} {}", from, to)));
  }
  std::string what = fmt::format("rename {} to", from);
  if (IsDotL(*session_)) {
    std::string oldname = src.back(), newname = dst.back();
    src.pop_back();
    dst.pop_back();
    Result<Fid> olddir = Walk(src);
    if (!olddir) return Unexpected(With(olddir.error(), what, to));
    Result<Fid> newdir = Walk(dst);
    if (!newdir) {
      (void)Wait(session_->AsyncClunk(*olddir, asio::use_future));
      return Unexpected(With(newdir.error(), what, to));
    }
    auto r = Wait(session_->AsyncRequest<wire::Rrenameat>(
        wire::Trenameat{
            .olddirfid = *olddir, .oldname = oldname, .newdirfid = *newdir, .newname = newname},
        asio::use_future));
    if (!r && r.error().code() == std::errc::operation_not_supported) {
      // Servers without Trenameat (diod) take the older Trename of a walked fid.
      Result<Fid> fid = Walk({oldname}, *olddir);
      if (fid) {
        auto old_style = Wait(session_->AsyncRequest<wire::Rrename>(
            wire::Trename{.fid = *fid, .dfid = *newdir, .name = newname}, asio::use_future));
        (void)Wait(session_->AsyncClunk(*fid, asio::use_future));
        r = old_style ? Result<wire::Rrenameat>(wire::Rrenameat{}) : Unexpected(old_style.error());
      } else {
        r = Unexpected(fid.error());
      }
    }
    (void)Wait(session_->AsyncClunk(*olddir, asio::use_future));
    (void)Wait(session_->AsyncClunk(*newdir, asio::use_future));
    if (!r) return Unexpected(With(r.error(), what, to));
    return {};
  }
  // 9P2000/.u: Twstat renames within the file's directory only.
  if (!std::equal(src.begin(), src.end() - 1, dst.begin(), dst.end() - 1)) {
    return Unexpected(Error(std::errc::cross_device_link,
                            fmt::format("{} {}: {} renames only within a directory", what, to,
                                        wire::DialectName(session_->dialect()))));
  }
  Result<Fid> fid = Walk(src);
  if (!fid) return Unexpected(With(fid.error(), what, to));
  wire::Stat st = KeepAll();
  st.name = dst.back();
  auto r = Wait(session_->AsyncRequest<wire::Rwstat>(wire::Twstat{.fid = *fid, .stat = st},
                                                     asio::use_future));
  (void)Wait(session_->AsyncClunk(*fid, asio::use_future));
  if (!r) return Unexpected(With(r.error(), what, to));
  return {};
}

Result<Stat> Fs::stat(std::string_view path) const {
  std::vector<std::string> names = SplitPath(path);
  Result<Fid> fid = Walk(names);
  if (!fid) return Unexpected(With(fid.error(), "stat", path));
  Result<Stat> out = Unexpected(Error());
  if (IsDotL(*session_)) {
    auto r = Wait(session_->AsyncGetattr(*fid, client::kGetattrBasic, asio::use_future));
    out = r ? Result<Stat>(FromGetattr(*r, BaseName(names))) : Unexpected(r.error());
  } else {
    auto r = Wait(session_->AsyncStat(*fid, asio::use_future));
    out = r ? Result<Stat>(FromStat(*r)) : Unexpected(r.error());
  }
  (void)Wait(session_->AsyncClunk(*fid, asio::use_future));
  if (!out) return Unexpected(With(out.error(), "stat", path));
  return out;
}

Result<std::vector<client::DirEntry>> Fs::readdir(std::string_view path) const {
  Result<File> dir = open(path, OREAD);
  if (!dir) return Unexpected(dir.error());
  return dir->readdir();
}

// --- File -------------------------------------------------------------------------------

File::File(File&& other) noexcept
    : link_(std::move(other.link_)),
      session_(std::move(other.session_)),
      fid_(std::exchange(other.fid_, wire::kNoFid)),
      path_(std::move(other.path_)),
      offset_mu_(std::move(other.offset_mu_)),
      offset_(other.offset_) {}

File& File::operator=(File&& other) noexcept {
  if (this != &other) {
    (void)close();
    link_ = std::move(other.link_);
    session_ = std::move(other.session_);
    fid_ = std::exchange(other.fid_, wire::kNoFid);
    path_ = std::move(other.path_);
    offset_mu_ = std::move(other.offset_mu_);
    offset_ = other.offset_;
  }
  return *this;
}

File::~File() { (void)close(); }

Result<void> File::close() {
  if (!session_ || fid_ == wire::kNoFid) return {};
  Fid fid = std::exchange(fid_, wire::kNoFid);
  if (link_->OnIoThread()) {
    session_->AsyncClunk(fid, [](Result<void>) {});
    return {};
  }
  Result<void> r = Wait(session_->AsyncClunk(fid, asio::use_future));
  if (!r) return Unexpected(With(r.error(), "close", path_));
  return {};
}

Result<size_t> File::pread(std::span<std::byte> buf, uint64_t offset) const {
  Result<size_t> n = Wait(session_->AsyncRead(fid_, offset, buf, asio::use_future));
  if (!n) return Unexpected(With(n.error(), "read", path_));
  return n;
}

Result<size_t> File::pwrite(std::span<const std::byte> buf, uint64_t offset) const {
  Result<size_t> n = Wait(session_->AsyncWrite(fid_, offset, buf, asio::use_future));
  if (!n) return Unexpected(With(n.error(), "write", path_));
  return n;
}

Result<size_t> File::read(std::span<std::byte> buf) {
  std::lock_guard lock(*offset_mu_);
  Result<size_t> n = pread(buf, offset_);
  if (n) offset_ += *n;
  return n;
}

Result<size_t> File::write(std::span<const std::byte> buf) {
  std::lock_guard lock(*offset_mu_);
  Result<size_t> n = pwrite(buf, offset_);
  if (n) offset_ += *n;
  return n;
}

Result<Stat> File::stat() const {
  std::vector<std::string> names = SplitPath(path_);
  if (IsDotL(*session_)) {
    auto r = Wait(session_->AsyncGetattr(fid_, client::kGetattrBasic, asio::use_future));
    if (!r) return Unexpected(With(r.error(), "stat", path_));
    return FromGetattr(*r, BaseName(names));
  }
  auto r = Wait(session_->AsyncStat(fid_, asio::use_future));
  if (!r) return Unexpected(With(r.error(), "stat", path_));
  return FromStat(*r);
}

Result<std::vector<client::DirEntry>> File::readdir() const {
  std::vector<client::DirEntry> all;
  uint64_t offset = 0;
  for (;;) {
    auto batch = Wait(session_->AsyncReaddir(fid_, offset, asio::use_future));
    if (!batch) return Unexpected(With(batch.error(), "readdir", path_));
    if (batch->empty()) return all;
    offset = batch->back().offset;
    for (auto& e : *batch) {
      if (e.name != "." && e.name != "..") all.push_back(std::move(e));
    }
  }
}

std::vector<std::string> SplitPath(std::string_view path) {
  std::vector<std::string> names;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view name = path.substr(i, j - i);
    if (!name.empty() && name != ".") names.emplace_back(name);
    i = j + 1;
  }
  return names;
}

}  // namespace ninefold
