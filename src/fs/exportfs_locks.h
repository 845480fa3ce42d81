// Private to exportfs: who holds which OFD lock, so GetLock can name the holder.
//
// The kernel enforces the locks (fcntl F_OFD_SETLK on each fid's open descriptor); it
// reports a conflicting OFD lock's range and type but not its owner (l_pid is -1). This
// table mirrors the granted ranges per holder (a Node) with the client_id and proc_id
// Tlock carried. Ranges are [start, end) with end = UINT64_MAX meaning "to end of file".
//
// Thread safety: all methods lock an internal mutex.
#ifndef NINEFOLD_SRC_FS_EXPORTFS_LOCKS_H_
#define NINEFOLD_SRC_FS_EXPORTFS_LOCKS_H_

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ninefold::fs::exportfs_internal {

// A file: (st_dev, st_ino).
using FileKey = std::pair<uint64_t, uint64_t>;

struct LockOwner {
  uint32_t proc_id = 0;
  std::string client_id;
};

class LockOwners {
 public:
  // `holder` now holds [start, end) (replacing what it held there before).
  void Granted(FileKey file, const void* holder, uint64_t start, uint64_t end,
               const LockOwner& owner);
  // `holder` no longer holds anything in [start, end).
  void Released(FileKey file, const void* holder, uint64_t start, uint64_t end);
  // `holder` holds nothing on `file` any more (its descriptor was closed).
  void ReleasedAll(FileKey file, const void* holder);
  // The owner of a range held by someone other than `asker` overlapping [start, end).
  std::optional<LockOwner> Find(FileKey file, const void* asker, uint64_t start,
                                uint64_t end) const;

 private:
  struct Range {
    const void* holder;
    uint64_t start;
    uint64_t end;
    LockOwner owner;
  };
  void ReleasedLocked(FileKey file, const void* holder, uint64_t start, uint64_t end);

  mutable std::mutex mu_;
  std::map<FileKey, std::vector<Range>> files_;  // guarded by mu_
};

}  // namespace ninefold::fs::exportfs_internal

#endif  // NINEFOLD_SRC_FS_EXPORTFS_LOCKS_H_
