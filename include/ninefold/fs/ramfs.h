// ramfs: a complete file system in memory, with the operations of a host directory.
//
//   Result<std::unique_ptr<FileServer>> fs = MakeRamFs({.max_bytes = 64 << 20});
//   if (!fs) return Unexpected(fs.error());
//   Server server(std::move(*fs), ...);  // every attach sees the same tree
//
// What it holds: directories, regular files (sparse: holes read as zeros and take no
// memory), symlinks, hard links, and fifo/socket/device nodes made by Mknod (metadata
// only: opening one fails with ENXIO, as a node without a driver). Every attach (any
// aname) sees the same root; ".." at the root is the root. Nothing checks permissions:
// modes, owners and times are stored and reported as set (the server decides who may
// attach). New files belong to the attaching identity's uid (0 for kNoUid) and the gid
// the request names.
//
// Semantics follow Linux tmpfs where 9P2000.L leaves a choice:
//   * unlink/rename of an open file keeps its data readable and writable through open
//     nodes until the last node referring to it is destroyed;
//   * rename replaces an existing target per rename(2): ENOTDIR/EISDIR for a type
//     mismatch, ENOTEMPTY for a non-empty directory target, EINVAL for moving a
//     directory into its own subtree, a no-op when both names are the same file;
//   * readdir offsets are per-directory entry ids that only grow ("." is 1, ".." is 2,
//     then each name gets the next id when it is created or moved in), so a resumed
//     listing never repeats or skips an entry that stayed put while others came and went;
//   * POSIX byte-range locks belong to (client_id, proc_id); a conflict answers
//     kLockBlocked (the server never blocks); destroying a node releases the locks its
//     owners took on that file through it, as close(2) does;
//   * qid.path is the inode number (never reused); qid.version grows with every change
//     of the file's data, directory entries or attributes;
//   * atime is only changed by SetAttr (noatime): reads never write metadata.
//
// Storage: file data lives in 4 KiB pages held by std::shared_ptr, in a map from page
// index to page, so a file grows sparsely and a later zero-copy layer can hand a page out
// by reference (a writer copies a page that someone else still holds before changing it).
// With options.max_bytes set, allocating a page beyond the limit fails with ENOSPC (a
// write that fits partly writes what fits and returns the short count).
//
// Thread safety: a FileServer and its Nodes may be used from any number of threads, on
// one Node at once too. Names and attributes are guarded by one mutex for the whole tree;
// each file's data by its own reader/writer lock, so reads and writes of file data never
// take the tree mutex and reads of one file run in parallel.
#ifndef NINEFOLD_FS_RAMFS_H_
#define NINEFOLD_FS_RAMFS_H_

#include <cstdint>
#include <memory>

#include "ninefold/base/result.h"
#include "ninefold/fs/file_server.h"

namespace ninefold::fs {

struct RamFsOptions {
  // Bytes of file data the file system may hold (a whole number of 4 KiB pages is
  // counted for each file); 0 means no limit. Directory entries, symlink targets and
  // xattrs are small and not counted.
  uint64_t max_bytes = 0;
  // The root directory's permission bits and owner.
  uint32_t root_mode = 0755;
  uint32_t root_uid = 0;
  uint32_t root_gid = 0;
};

// Size of a data page: the unit of allocation, accounting and (later) sharing.
inline constexpr size_t kRamFsPageSize = 4096;

// An empty file system. EINVAL when root_mode has bits outside 07777.
[[nodiscard]] Result<std::unique_ptr<FileServer>> MakeRamFs(RamFsOptions options = {});

}  // namespace ninefold::fs

#endif  // NINEFOLD_FS_RAMFS_H_
