// Private to exportfs: descriptors and confined path resolution.
#ifndef NINEFOLD_SRC_FS_EXPORTFS_PATH_H_
#define NINEFOLD_SRC_FS_EXPORTFS_PATH_H_

#include <string>
#include <string_view>
#include <utility>

#include "ninefold/base/result.h"

namespace ninefold::fs::exportfs_internal {

// Owns one file descriptor; closes it on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// True when the kernel implements openat2(2) (Linux 5.6+). Probed once.
bool HaveOpenat2();

// Opens `rel_path` (names separated by '/', none of them "." or ".."; "" is dirfd
// itself) beneath dirfd without following any symlink or magic link, with `flags`
// (O_PATH | O_NOFOLLOW for a node; O_CLOEXEC is added). With openat2 this is one call
// with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS; without it, one
// O_NOFOLLOW openat per component. Either way a symlink met before the last component
// (or as the last with O_DIRECTORY) is ELOOP.
// `mode` is used only with O_CREAT.
[[nodiscard]] Result<UniqueFd> OpenBeneath(int dirfd, const std::string& rel_path, int flags,
                                           unsigned mode = 0);

// EINVAL unless `name` is one plain path component: not empty, not "." or "..", no '/'
// and no NUL. `op` names the operation for the error's context.
[[nodiscard]] Result<void> CheckName(std::string_view name, std::string_view op);

// "a/b" + "c" -> "a/b/c"; "" + "c" -> "c".
std::string JoinPath(const std::string& dir, std::string_view name);
// "a/b/c" -> {"a/b", "c"}; "c" -> {"", "c"}.
std::pair<std::string, std::string> SplitPath(const std::string& path);

}  // namespace ninefold::fs::exportfs_internal

#endif  // NINEFOLD_SRC_FS_EXPORTFS_PATH_H_
