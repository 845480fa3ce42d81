// ninefold ls, cat, put, stat, mkdir, rm, mv: file commands on a 9P server, through the
// blocking client API. Errors and exit statuses follow coreutils: each failed path is
// reported as "ninefold CMD: PATH: reason" on stderr and the others still run; the exit
// status is 1 if any path failed, 2 for a usage error.
//
// cat and put stream in chunks of kChunk bytes with two buffers, so one chunk moves on the
// network (split by the session into concurrent requests) while the other is written to
// stdout or read from stdin; a file is never held in memory whole.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <future>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "asio/use_future.hpp"
#include "fmt/format.h"
#include "tools/ninefold/client_options.h"
#include "tools/ninefold/commands.h"

namespace ninefold::tools {
namespace {

constexpr size_t kChunk = 4u << 20;

struct FileCommand {
  std::string name;  // "ls", "cat", ...
  ConnectOptions connect;
  std::vector<std::string> paths;
  bool long_format = false;  // ls -l
  bool parents = false;      // mkdir -p
  bool force = false;        // rm -f
  std::string mode = "755";  // mkdir -m
};

// Reports a failure about `what` (a path or the address); returns the exit status 1.
int Complain(const FileCommand& cmd, std::string_view what, const std::string& why) {
  std::fflush(stdout);
  fmt::print(stderr, "ninefold {}: {}: {}\n", cmd.name, what, why);
  return 1;
}

std::string JoinPath(std::string_view dir, std::string_view name) {
  if (dir.empty() || dir == "/" || dir == ".") return std::string(name);
  std::string out(dir);
  if (out.back() != '/') out += '/';
  return out + std::string(name);
}

std::string BaseName(std::string_view path) {
  std::vector<std::string> names = SplitPath(path);
  return names.empty() ? "/" : names.back();
}

// "-rw-r--r--", "drwxr-xr-x", with setuid/setgid/sticky as ls shows them.
std::string ModeString(uint32_t mode) {
  char type = '-';
  switch (mode & S_IFMT) {
    case S_IFDIR:
      type = 'd';
      break;
    case S_IFLNK:
      type = 'l';
      break;
    case S_IFCHR:
      type = 'c';
      break;
    case S_IFBLK:
      type = 'b';
      break;
    case S_IFIFO:
      type = 'p';
      break;
    case S_IFSOCK:
      type = 's';
      break;
    default:
      break;
  }
  std::string s(1, type);
  static constexpr char kRwx[] = "rwx";
  for (int i = 8; i >= 0; --i) s += (mode & (1u << i)) ? kRwx[(8 - i) % 3] : '-';
  auto special = [&](uint32_t bit, size_t at, char set, char set_noexec) {
    if (mode & bit) s[at] = s[at] == 'x' ? set : set_noexec;
  };
  special(S_ISUID, 3, 's', 'S');
  special(S_ISGID, 6, 's', 'S');
  special(S_ISVTX, 9, 't', 'T');
  return s;
}

std::string TypeName(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFDIR:
      return "directory";
    case S_IFLNK:
      return "symbolic link";
    case S_IFCHR:
      return "character special file";
    case S_IFBLK:
      return "block special file";
    case S_IFIFO:
      return "fifo";
    case S_IFSOCK:
      return "socket";
    default:
      return "regular file";
  }
}

std::string LocalTime(int64_t sec, const char* format) {
  time_t t = static_cast<time_t>(sec);
  struct tm tm {};
  localtime_r(&t, &tm);
  char buf[64];
  size_t n = std::strftime(buf, sizeof buf, format, &tm);
  return std::string(buf, n);
}

std::string Owner(uint32_t id, const std::string& name) {
  if (!name.empty()) return name;
  return id == wire::kNoUid ? "-" : std::to_string(id);
}

// One line of ls -l.
std::string LongLine(const Stat& st, std::string_view name) {
  return fmt::format("{} {:>3} {:<8} {:<8} {:>10} {} {}", ModeString(st.mode), st.nlink,
                     Owner(st.uid, st.uid_name), Owner(st.gid, st.gid_name), st.size,
                     LocalTime(st.mtime_sec, "%Y-%m-%d %H:%M"), name);
}

// --- ls ---------------------------------------------------------------------------------

int ListDirectory(const FileCommand& cmd, const Fs& fs, const std::string& path) {
  Result<std::vector<client::DirEntry>> entries = fs.readdir(path);
  if (!entries) return Complain(cmd, path, Describe(entries.error()));
  std::sort(entries->begin(), entries->end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  int rc = 0;
  for (const client::DirEntry& e : *entries) {
    if (!cmd.long_format) {
      fmt::print("{}\n", e.name);
      continue;
    }
    std::string child = JoinPath(path, e.name);
    Result<Stat> st = fs.stat(child);
    if (!st) {
      rc = Complain(cmd, child, Describe(st.error()));
      continue;
    }
    fmt::print("{}\n", LongLine(*st, e.name));
  }
  return rc;
}

// As ls(1): files named first, then each directory's entries (under a "PATH:" header when
// more than one argument was given).
int Ls(const FileCommand& cmd, const Fs& fs) {
  std::vector<std::string> paths = cmd.paths;
  if (paths.empty()) paths.push_back("/");
  int rc = 0;
  std::vector<std::string> dirs;
  for (const std::string& path : paths) {
    Result<Stat> st = fs.stat(path);
    if (!st) {
      rc = Complain(cmd, path, Describe(st.error()));
    } else if (st->is_dir()) {
      dirs.push_back(path);
    } else {
      fmt::print("{}\n", cmd.long_format ? LongLine(*st, path) : path);
    }
  }
  bool any_printed = dirs.size() < paths.size();
  for (const std::string& dir : dirs) {
    if (paths.size() > 1) fmt::print("{}{}:\n", any_printed ? "\n" : "", dir);
    any_printed = true;
    rc |= ListDirectory(cmd, fs, dir);
  }
  return rc;
}

// --- cat --------------------------------------------------------------------------------

// Writes all of `data` to `fd`; false with errno set on failure.
bool WriteAll(int fd, std::span<const std::byte> data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    data = data.subspan(static_cast<size_t>(n));
  }
  return true;
}

// Reads until `buf` is full or end of input; -1 with errno set on failure.
ssize_t ReadFull(int fd, std::span<std::byte> buf) {
  size_t got = 0;
  while (got < buf.size()) {
    ssize_t n = ::read(fd, buf.data() + got, buf.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(got);
}

// Streams one file to stdout: the read of the next chunk is on the wire while this one is
// written out. Reads until the server returns 0 bytes (synthetic files may return short
// reads before their end).
int CatOne(const FileCommand& cmd, const Fs& fs, const std::string& path) {
  Result<File> file = fs.open(path, OREAD);
  if (!file) return Complain(cmd, path, Describe(file.error()));
  // 9P2000/.u servers read a directory as its stat entries; cat(1) refuses it.
  Result<Stat> st = file->stat();
  if (!st) return Complain(cmd, path, Describe(st.error()));
  if (st->is_dir()) return Complain(cmd, path, std::strerror(EISDIR));
  client::Session& session = *fs.session();
  std::vector<std::byte> bufs[2] = {std::vector<std::byte>(kChunk), std::vector<std::byte>(kChunk)};
  int cur = 0;
  uint64_t offset = 0;
  std::future<Result<size_t>> pending =
      session.AsyncRead(file->fid(), offset, bufs[cur], asio::use_future);
  for (;;) {
    Result<size_t> n = pending.get();
    if (!n) return Complain(cmd, path, Describe(n.error()));
    if (*n == 0) return 0;
    offset += *n;
    pending = session.AsyncRead(file->fid(), offset, bufs[1 - cur], asio::use_future);
    if (!WriteAll(STDOUT_FILENO, std::span(bufs[cur]).first(*n))) {
      int err = errno;
      pending.wait();  // its buffer must outlive the read
      return Complain(cmd, "write error", std::strerror(err));
    }
    cur = 1 - cur;
  }
}

int Cat(const FileCommand& cmd, const Fs& fs) {
  int rc = 0;
  for (const std::string& path : cmd.paths) rc |= CatOne(cmd, fs, path);
  return rc;
}

// --- put --------------------------------------------------------------------------------

// stdin into a file, created (0644) or truncated: stdin fills one buffer while the other
// is being written.
int Put(const FileCommand& cmd, const Fs& fs) {
  const std::string& path = cmd.paths.front();
  Result<File> file = fs.open(path, OWRITE | OTRUNC);
  if (!file && file.error().code() == std::errc::no_such_file_or_directory) {
    file = fs.create(path, OWRITE, 0644);
  }
  if (!file) return Complain(cmd, path, Describe(file.error()));
  client::Session& session = *fs.session();
  std::vector<std::byte> bufs[2] = {std::vector<std::byte>(kChunk), std::vector<std::byte>(kChunk)};
  int cur = 0;
  uint64_t offset = 0;
  std::future<Result<size_t>> pending;
  size_t pending_size = 0;
  auto finish_pending = [&]() -> int {
    if (!pending.valid()) return 0;
    Result<size_t> n = pending.get();
    if (!n) return Complain(cmd, path, Describe(n.error()));
    if (*n != pending_size) {
      return Complain(cmd, path, fmt::format("short write: {} of {} bytes", *n, pending_size));
    }
    return 0;
  };
  for (;;) {
    ssize_t n = ReadFull(STDIN_FILENO, bufs[cur]);
    if (n < 0) {
      int err = errno;
      (void)finish_pending();
      return Complain(cmd, "standard input", std::strerror(err));
    }
    if (finish_pending() != 0) return 1;
    if (n == 0) break;
    pending_size = static_cast<size_t>(n);
    pending = session.AsyncWrite(file->fid(), offset, std::span(bufs[cur]).first(pending_size),
                                 asio::use_future);
    offset += pending_size;
    cur = 1 - cur;
  }
  Result<void> closed = file->close();
  if (!closed) return Complain(cmd, path, Describe(closed.error()));
  return 0;
}

// --- stat -------------------------------------------------------------------------------

int StatCmd(const FileCommand& cmd, const Fs& fs) {
  int rc = 0;
  for (const std::string& path : cmd.paths) {
    Result<Stat> st = fs.stat(path);
    if (!st) {
      rc = Complain(cmd, path, Describe(st.error()));
      continue;
    }
    auto time = [](int64_t sec, uint32_t nsec) {
      return fmt::format("{}.{:09d}", LocalTime(sec, "%Y-%m-%d %H:%M:%S"), nsec);
    };
    fmt::print(
        "  File: {}\n"
        "  Type: {}\n"
        "  Size: {}\n"
        "Blocks: {}\n"
        "  Mode: {:04o} ({})\n"
        "   Uid: {}\n"
        "   Gid: {}\n"
        " Links: {}\n"
        "   Qid: type 0x{:02x} version {} path 0x{:x}\n"
        "Access: {}\n"
        "Modify: {}\n"
        "Change: {}\n",
        path.empty() ? "/" : path, TypeName(st->mode), st->size, st->blocks, st->mode & 07777,
        ModeString(st->mode), Owner(st->uid, st->uid_name), Owner(st->gid, st->gid_name), st->nlink,
        st->qid.type, st->qid.version, st->qid.path, time(st->atime_sec, st->atime_nsec),
        time(st->mtime_sec, st->mtime_nsec), time(st->ctime_sec, st->ctime_nsec));
  }
  return rc;
}

// --- mkdir, rm, mv ----------------------------------------------------------------------

int Mkdir(const FileCommand& cmd, const Fs& fs) {
  uint32_t perm = static_cast<uint32_t>(std::stoul(cmd.mode, nullptr, 8));
  int rc = 0;
  for (const std::string& path : cmd.paths) {
    std::vector<std::string> names = SplitPath(path);
    std::string prefix;
    Result<void> made;
    for (size_t i = 0; i < names.size(); ++i) {
      prefix = JoinPath(prefix, names[i]);
      bool last = i + 1 == names.size();
      if (!last && !cmd.parents) continue;
      made = fs.mkdir(prefix, perm);
      if (!made && cmd.parents && made.error().code() == std::errc::file_exists)
        made = Result<void>();
      if (!made) break;
    }
    if (names.empty()) made = Unexpected(Error(std::errc::file_exists, "mkdir /"));
    if (!made) rc = Complain(cmd, path, Describe(made.error()));
  }
  return rc;
}

int Rm(const FileCommand& cmd, const Fs& fs) {
  int rc = 0;
  for (const std::string& path : cmd.paths) {
    Result<void> removed = fs.remove(path);
    if (removed) continue;
    if (cmd.force && removed.error().code() == std::errc::no_such_file_or_directory) continue;
    rc = Complain(cmd, path, Describe(removed.error()));
  }
  return rc;
}

// 9P2000.L Trename (fid, new directory fid, new name): the older request, for servers
// that answer Trenameat with EOPNOTSUPP (diod does).
Result<void> RenameByFid(const Fs& fs, std::string_view from, std::string_view to) {
  client::Session& session = *fs.session();
  std::vector<std::string> dir = SplitPath(to);
  std::string name = dir.back();
  dir.pop_back();
  auto walk = [&](std::vector<std::string> names) -> Result<client::Session::Fid> {
    client::Session::Fid fid = session.AllocFid();
    Result<std::vector<wire::Qid>> w =
        session.AsyncWalk(fs.root_fid(), fid, std::move(names), asio::use_future).get();
    if (!w) {
      session.ReleaseFid(fid);
      return Unexpected(w.error());
    }
    return fid;
  };
  Result<client::Session::Fid> fid = walk(SplitPath(from));
  if (!fid) return Unexpected(fid.error());
  Result<client::Session::Fid> dfid = walk(dir);
  Result<wire::Rrename> r = Unexpected(Error());
  if (dfid) {
    r = session
            .AsyncRequest<wire::Rrename>(wire::Trename{.fid = *fid, .dfid = *dfid, .name = name},
                                         asio::use_future)
            .get();
    (void)session.AsyncClunk(*dfid, asio::use_future).get();
  }
  (void)session.AsyncClunk(*fid, asio::use_future).get();
  if (!dfid) return Unexpected(dfid.error());
  if (!r) return Unexpected(r.error());
  return {};
}

// mv SRC DST; into DST/basename(SRC) when DST is a directory, as mv(1) does.
int Mv(const FileCommand& cmd, const Fs& fs) {
  const std::string& from = cmd.paths[0];
  std::string to = cmd.paths[1];
  if (Result<Stat> st = fs.stat(to); st && st->is_dir()) to = JoinPath(to, BaseName(from));
  Result<void> moved = fs.rename(from, to);
  if (!moved && moved.error().code() == std::errc::operation_not_supported &&
      fs.session()->dialect() == wire::Dialect::k9P2000L && !SplitPath(to).empty()) {
    moved = RenameByFid(fs, from, to);
  }
  if (!moved) {
    return Complain(cmd, fmt::format("cannot move '{}' to '{}'", from, to),
                    Describe(moved.error()));
  }
  return 0;
}

int Run(const FileCommand& cmd, int (*body)(const FileCommand&, const Fs&)) {
  Result<Mounted> m = Mount(cmd.connect);
  if (!m) {
    std::fflush(stdout);
    fmt::print(stderr, "ninefold {}: {}\n", cmd.name, DescribeMountError(cmd.connect, m.error()));
    return 1;
  }
  int rc = body(cmd, m->fs);
  std::fflush(stdout);
  return rc;
}

// Registers one file command. `min_paths`/`max_paths` bound PATH... (max 0: unbounded).
FileCommand* AddFileCommand(CLI::App& app, int* exit_code, std::string name,
                            std::string description, int min_paths, int max_paths,
                            std::string paths_help, int (*body)(const FileCommand&, const Fs&),
                            CLI::App** out) {
  auto cmd = std::make_shared<FileCommand>();
  cmd->name = name;
  CLI::App* sub = app.add_subcommand(name, description);
  AddConnectOptions(sub, &cmd->connect);
  CLI::Option* paths = sub->add_option("PATH", cmd->paths, paths_help);
  if (max_paths > 0) {
    paths->expected(min_paths, max_paths);
  } else {
    paths->expected(min_paths, CLI::detail::expected_max_vector_size);
  }
  if (min_paths > 0) paths->required();
  sub->callback([cmd, exit_code, body] { *exit_code = Run(*cmd, body); });
  *out = sub;
  return cmd.get();  // owned by the callback
}

}  // namespace

void AddClientCommands(CLI::App& app, int* exit_code) {
  static constexpr char kCommon[] =
      "\nPATH is '/'-separated and relative to the attached tree. Exit status: 0 if all went "
      "well, 1 if any PATH failed (each is reported on stderr and the others still run), 2 "
      "for a usage error.";
  CLI::App* sub = nullptr;
  FileCommand* ls = AddFileCommand(
      app, exit_code, "ls",
      std::string("List directories (names sorted, one per line) or name files.") + kCommon, 0, 0,
      "files or directories (default: the root)", Ls, &sub);
  sub->add_flag("-l,--long", ls->long_format,
                "long format: mode, links, owner, group, size, mtime, name");

  AddFileCommand(app, exit_code, "cat",
                 std::string("Copy files to standard output, streaming.") + kCommon, 1, 0,
                 "files to read", Cat, &sub);
  AddFileCommand(app, exit_code, "put",
                 std::string("Write standard input to a file, creating it (mode 0644) or "
                             "truncating it, streaming.") +
                     kCommon,
                 1, 1, "the file to write", Put, &sub);
  AddFileCommand(
      app, exit_code, "stat",
      std::string("Print files' attributes (type, size, mode, owner, qid, times).") + kCommon, 1, 0,
      "files or directories", StatCmd, &sub);
  FileCommand* mkdir =
      AddFileCommand(app, exit_code, "mkdir", std::string("Make directories.") + kCommon, 1, 0,
                     "directories to make", Mkdir, &sub);
  sub->add_flag("-p,--parents", mkdir->parents,
                "make parent directories as needed; no error if one exists");
  sub->add_option("-m,--mode", mkdir->mode, "permission bits in octal (default 755)")
      ->check([](const std::string& s) -> std::string {
        bool ok =
            !s.empty() && s.size() <= 4 && s.find_first_not_of("01234567") == std::string::npos;
        return ok ? "" : "MODE must be octal, at most 7777";
      });
  FileCommand* rm = AddFileCommand(app, exit_code, "rm",
                                   std::string("Remove files and empty directories.") + kCommon, 1,
                                   0, "files or empty directories to remove", Rm, &sub);
  sub->add_flag("-f,--force", rm->force, "ignore paths that do not exist");
  AddFileCommand(app, exit_code, "mv",
                 std::string("Rename SRC to DST (into DST if it is a directory). 9P2000 and "
                             "9P2000.u rename only within one directory.") +
                     kCommon,
                 2, 2, "SRC DST", Mv, &sub);
}

}  // namespace ninefold::tools
