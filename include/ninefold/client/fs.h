// The blocking client API: dial a server, mount its tree, open files and read them.
//
//   Result<ninefold::Link> link = ninefold::dial("tcp!127.0.0.1!5640");  // unix!/p, fd!R!W
//   if (!link) return Fail(link.error());
//   Result<ninefold::Fs> root = ninefold::fsmount(*link, {.aname = "ctl"});
//   Result<ninefold::File> file = root->open("zero", ninefold::OREAD);
//   Result<size_t> n = file->read(buf);
//
// Every call returns a value or an Error (errno codes as the server sent them, with the
// path as context); nothing throws. Paths are relative to the mounted root, '/'-separated;
// "." and empty components are skipped and ".." is sent to the server as a name (9P
// servers resolve it, never above their root). Each call works in all three dialects:
// 9P2000.L requests (Tlopen, Tlcreate, Tmkdir, Tgetattr, Trenameat, Treaddir) or their
// 9P2000/.u counterparts (Topen, Tcreate, Tstat, Twstat, directory Treads).
//
// Threading: Link, Fs and File may be used from any thread, concurrently (every call is a
// request on the asynchronous Session underneath, whose thread is the Link's); a File's
// own offset (read/write without an offset) is guarded for concurrent callers. Blocking
// calls must not be made from a completion handler running on the Link's io thread.
// Objects are movable, not copyable; destroying a File clunks its fid, destroying the
// last Fs of a Link closes the session, destroying the Link (after them) stops its thread.
#ifndef NINEFOLD_CLIENT_FS_H_
#define NINEFOLD_CLIENT_FS_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ninefold/base/result.h"
#include "ninefold/client/session.h"
#include "ninefold/transport/address.h"

namespace ninefold {

// Plan 9 open modes (Topen); mapped to O_* flags for 9P2000.L.
enum OpenMode : uint32_t {
  OREAD = 0,
  OWRITE = 1,
  ORDWR = 2,
  OEXEC = 3,
  OTRUNC = 0x10,
  ORCLOSE = 0x40,
};

// A file's attributes in POSIX terms, whichever dialect carried them.
struct Stat {
  std::string name;  // last path element (9P2000/.u: the server's name)
  wire::Qid qid;
  uint32_t mode = 0;  // st_mode: S_IFMT type bits | permissions
  uint32_t uid = wire::kNoUid, gid = wire::kNoUid;
  std::string uid_name, gid_name;  // 9P2000/.u only
  uint64_t nlink = 0;
  uint64_t size = 0;
  uint64_t blocks = 0;
  int64_t atime_sec = 0, mtime_sec = 0, ctime_sec = 0;
  uint32_t atime_nsec = 0, mtime_nsec = 0, ctime_nsec = 0;
  bool is_dir() const { return (mode & 0170000) == 0040000; }
};

struct DialOptions {
  std::chrono::milliseconds timeout = std::chrono::seconds(10);  // tcp connect
};

// A connected channel and the io thread that serves it.
class Link {
 public:
  struct State;
  explicit Link(std::shared_ptr<State> state) : state_(std::move(state)) {}
  const std::string& peer() const;
  const std::shared_ptr<State>& state() const { return state_; }

 private:
  std::shared_ptr<State> state_;
};

[[nodiscard]] Result<Link> dial(std::string_view address, DialOptions options = {});

struct MountOptions {
  std::string aname;
  std::string uname;                // empty: $USER, else "nobody"
  uint32_t n_uname = wire::kNoUid;  // kNoUid: the caller's uid
  uint32_t msize = 512 * 1024;
  wire::Dialect dialect = wire::Dialect::k9P2000L;
  uint32_t max_outstanding = 64;
  std::chrono::milliseconds deadline{0};  // per request; zero: none
};

class File;

// A mounted tree: the attach fid of one Session.
class Fs {
 public:
  Fs(Fs&&) noexcept = default;
  Fs& operator=(Fs&&) noexcept = default;
  ~Fs();

  // mode: OREAD/OWRITE/ORDWR/OEXEC | OTRUNC.
  [[nodiscard]] Result<File> open(std::string_view path, uint32_t mode) const;
  // Creates (exclusively) and opens a file; perm: permission bits.
  [[nodiscard]] Result<File> create(std::string_view path, uint32_t mode, uint32_t perm) const;
  [[nodiscard]] Result<void> mkdir(std::string_view path, uint32_t perm) const;
  // Removes a file or an empty directory.
  [[nodiscard]] Result<void> remove(std::string_view path) const;
  // 9P2000.L: anywhere on the tree; 9P2000/.u: only within one directory (EXDEV else).
  [[nodiscard]] Result<void> rename(std::string_view from, std::string_view to) const;
  [[nodiscard]] Result<Stat> stat(std::string_view path) const;
  // Every entry of a directory, "." and ".." left out.
  [[nodiscard]] Result<std::vector<client::DirEntry>> readdir(std::string_view path) const;

  const std::shared_ptr<client::Session>& session() const { return session_; }
  client::Session::Fid root_fid() const { return root_; }

 private:
  friend Result<Fs> fsmount(const Link& link, MountOptions options);
  friend class File;
  Fs(std::shared_ptr<Link::State> link, std::shared_ptr<client::Session> session,
     client::Session::Fid root)
      : link_(std::move(link)), session_(std::move(session)), root_(root) {}
  // A new fid for `names` walked from `from` (default: the root); the caller owns it.
  [[nodiscard]] Result<client::Session::Fid> Walk(const std::vector<std::string>& names,
                                                  client::Session::Fid from = wire::kNoFid) const;
  [[nodiscard]] Result<File> OpenFid(client::Session::Fid fid, std::string path,
                                     uint32_t mode) const;

  std::shared_ptr<Link::State> link_;
  std::shared_ptr<client::Session> session_;
  client::Session::Fid root_ = wire::kNoFid;
};

// Version + attach: the root of the tree named by options.aname.
[[nodiscard]] Result<Fs> fsmount(const Link& link, MountOptions options);

// An open file or directory.
class File {
 public:
  File(File&& other) noexcept;
  File& operator=(File&& other) noexcept;
  ~File();

  // At the file's own offset, which they advance.
  [[nodiscard]] Result<size_t> read(std::span<std::byte> buf);
  [[nodiscard]] Result<size_t> write(std::span<const std::byte> buf);
  [[nodiscard]] Result<size_t> pread(std::span<std::byte> buf, uint64_t offset) const;
  [[nodiscard]] Result<size_t> pwrite(std::span<const std::byte> buf, uint64_t offset) const;
  [[nodiscard]] Result<Stat> stat() const;
  // All entries of an open directory ("." and ".." left out).
  [[nodiscard]] Result<std::vector<client::DirEntry>> readdir() const;
  // Clunks the fid (the destructor does too, ignoring errors).
  [[nodiscard]] Result<void> close();

  client::Session::Fid fid() const { return fid_; }
  const std::string& path() const { return path_; }

 private:
  friend class Fs;
  File(std::shared_ptr<Link::State> link, std::shared_ptr<client::Session> session,
       client::Session::Fid fid, std::string path)
      : link_(std::move(link)), session_(std::move(session)), fid_(fid), path_(std::move(path)) {}

  std::shared_ptr<Link::State> link_;
  std::shared_ptr<client::Session> session_;
  client::Session::Fid fid_ = wire::kNoFid;
  std::string path_;
  std::unique_ptr<std::mutex> offset_mu_ = std::make_unique<std::mutex>();
  uint64_t offset_ = 0;  // guarded by *offset_mu_
};

// "a/b/../c" -> {"a", "b", "..", "c"}: the names a walk sends.
std::vector<std::string> SplitPath(std::string_view path);

}  // namespace ninefold

#endif  // NINEFOLD_CLIENT_FS_H_
