// A read-only view of any back end.
//
//   std::unique_ptr<FileServer> ro = MakeReadOnly(*MakeRamFs());
//
// Every operation that would change the tree fails with EROFS before reaching the inner
// back end, whatever its arguments: SetAttr, Create, Open for writing (O_WRONLY, O_RDWR,
// O_TRUNC or O_APPEND), Write, Mkdir, Symlink, Mknod, Link, RenameAt, UnlinkAt, Rename,
// Remove, SetXattr and RemoveXattr. Everything else (Walk, Clone, GetAttr, Open for
// reading, Read, ReadDir, ReadLink, StatFs, Fsync, Lock, GetLock, GetXattr) is passed
// through; Walk and Clone return read-only nodes, so no path leads around the wrapper.
//
// Thread safety: as the inner back end's; the wrapper adds no state.
#ifndef NINEFOLD_FS_READONLY_H_
#define NINEFOLD_FS_READONLY_H_

#include <memory>

#include "ninefold/fs/file_server.h"

namespace ninefold::fs {

std::unique_ptr<FileServer> MakeReadOnly(std::unique_ptr<FileServer> inner);

}  // namespace ninefold::fs

#endif  // NINEFOLD_FS_READONLY_H_
