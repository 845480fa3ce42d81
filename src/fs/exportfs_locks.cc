#include "exportfs_locks.h"

namespace ninefold::fs::exportfs_internal {

void LockOwners::Granted(FileKey file, const void* holder, uint64_t start, uint64_t end,
                         const LockOwner& owner) {
  std::lock_guard lock(mu_);
  ReleasedLocked(file, holder, start, end);
  files_[file].push_back(Range{holder, start, end, owner});
}

void LockOwners::Released(FileKey file, const void* holder, uint64_t start, uint64_t end) {
  std::lock_guard lock(mu_);
  ReleasedLocked(file, holder, start, end);
}

void LockOwners::ReleasedLocked(FileKey file, const void* holder, uint64_t start, uint64_t end) {
  auto it = files_.find(file);
  if (it == files_.end()) return;
  std::vector<Range> kept;
  for (Range& r : it->second) {
    if (r.holder != holder || r.end <= start || end <= r.start) {
      kept.push_back(std::move(r));
      continue;
    }
    // Keep what lies outside [start, end): possibly a piece on each side.
    if (r.start < start) kept.push_back(Range{r.holder, r.start, start, r.owner});
    if (end < r.end) kept.push_back(Range{r.holder, end, r.end, r.owner});
  }
  if (kept.empty()) {
    files_.erase(it);
  } else {
    it->second = std::move(kept);
  }
}

void LockOwners::ReleasedAll(FileKey file, const void* holder) {
  std::lock_guard lock(mu_);
  ReleasedLocked(file, holder, 0, UINT64_MAX);
}

std::optional<LockOwner> LockOwners::Find(FileKey file, const void* asker, uint64_t start,
                                          uint64_t end) const {
  std::lock_guard lock(mu_);
  auto it = files_.find(file);
  if (it == files_.end()) return std::nullopt;
  for (const Range& r : it->second) {
    if (r.holder != asker && r.start < end && start < r.end) return r.owner;
  }
  return std::nullopt;
}

}  // namespace ninefold::fs::exportfs_internal
