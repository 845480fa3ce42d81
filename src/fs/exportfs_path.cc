#include "exportfs_path.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "ninefold/fs/file_server.h"

namespace ninefold::fs::exportfs_internal {

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

namespace {

constexpr uint64_t kResolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

long Openat2(int dirfd, const char* path, int flags, unsigned mode) {
  open_how how{};
  how.flags = static_cast<uint64_t>(flags);
  how.mode = (flags & O_CREAT) ? mode : 0;
  how.resolve = kResolve;
  long fd;
  // With RESOLVE_BENEATH the kernel may ask for a retry (EAGAIN) when a concurrent rename
  // could have let ".." race; we never pass "..", but honour the contract.
  int tries = 0;
  do {
    fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
  } while (fd < 0 && (errno == EINTR || (errno == EAGAIN && ++tries < 16)));
  return fd;
}

}  // namespace

bool HaveOpenat2() {
  static const bool have = [] {
    long fd = Openat2(AT_FDCWD, "/", O_PATH | O_CLOEXEC, 0);
    if (fd >= 0) {
      ::close(static_cast<int>(fd));
      return true;
    }
    // EXDEV ("/" is not beneath the cwd) also proves the call exists.
    return errno != ENOSYS;
  }();
  return have;
}

Result<UniqueFd> OpenBeneath(int dirfd, const std::string& rel_path, int flags, unsigned mode) {
  flags |= O_CLOEXEC;
  if (HaveOpenat2()) {
    long fd = Openat2(dirfd, rel_path.empty() ? "." : rel_path.c_str(), flags, mode);
    if (fd < 0) return Errno(errno, "openat2 '" + rel_path + "'");
    return UniqueFd(static_cast<int>(fd));
  }
  // Fallback: one component at a time, never following a symlink.
  UniqueFd cur(::openat(dirfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!cur.valid()) return Errno(errno, "openat '.'");
  size_t pos = 0;
  while (pos < rel_path.size()) {
    size_t slash = rel_path.find('/', pos);
    bool last = slash == std::string::npos;
    std::string name = rel_path.substr(pos, last ? std::string::npos : slash - pos);
    if (auto ok = CheckName(name, "resolve"); !ok) return Unexpected(ok.error());
    int f = last ? (flags | O_NOFOLLOW) : (O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int fd;
    do {
      fd = ::openat(cur.get(), name.c_str(), f, mode);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
      int err = errno;
      // Report a symlink in the way as openat2's RESOLVE_NO_SYMLINKS does: ELOOP.
      struct stat st;
      if (err == ENOTDIR && ::fstatat(cur.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISLNK(st.st_mode)) {
        err = ELOOP;
      }
      return Errno(err, "openat '" + name + "'");
    }
    cur = UniqueFd(fd);
    if (last) return cur;
    pos = slash + 1;
  }
  // Empty path: the directory itself, opened with the requested flags.
  int fd = ::openat(cur.get(), ".", flags & ~O_NOFOLLOW);
  if (fd < 0) return Errno(errno, "openat '.'");
  return UniqueFd(fd);
}

Result<void> CheckName(std::string_view name, std::string_view op) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string_view::npos ||
      name.find('\0') != std::string_view::npos) {
    std::string shown;
    for (char c : name) shown += c == '\0' ? std::string("\\0") : std::string(1, c);
    return Errno(EINVAL, std::string(op) + " '" + shown + "': not a plain file name");
  }
  return {};
}

std::string JoinPath(const std::string& dir, std::string_view name) {
  if (dir.empty()) return std::string(name);
  std::string out = dir;
  out += '/';
  out += name;
  return out;
}

std::pair<std::string, std::string> SplitPath(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {std::string(), path};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

}  // namespace ninefold::fs::exportfs_internal
