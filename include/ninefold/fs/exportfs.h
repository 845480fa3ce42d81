// exportfs: a FileServer that exports a directory of the host, with full 9P2000.L
// semantics, and that can never be walked or tricked out of that directory.
//
//   auto fs = ninefold::fs::MakeExportFs("/srv/share", {.read_only = true});
//   if (!fs) return Unexpected(fs.error());
//   auto root = (*fs)->Attach(who, "");        // aname is ignored: routing is done above
//   auto file = (*root)->Walk("README");
//
// Confinement. Every Node holds a file descriptor for its file (O_PATH until Open or
// Create) and the path of that file relative to the export root, made of names it was
// walked or created through. Nothing is ever resolved from a host path:
//  * Walk(name) opens one component beneath the node's own descriptor with openat2(2)
//    RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS and O_NOFOLLOW: a
//    symlink is never followed, walking onto one yields the symlink itself (the client
//    reads it with ReadLink and resolves it in its own name space).
//  * Walk("..") re-resolves the node's recorded parent path beneath the export root's
//    descriptor, so ".." at the root is the root, and ".." from a directory that the
//    host moved elsewhere (even outside the export) lands on the recorded parent inside
//    the export, never on the directory's new host parent.
//  * Operations on names (Create, Mkdir, Symlink, Mknod, Link, RenameAt, UnlinkAt) use
//    the directory's descriptor with a single name, which must be a plain component.
//  * Rename and Remove of a node re-resolve its parent beneath the root and check that
//    the name there still is this node's file (ESTALE otherwise).
//  * Attribute and xattr calls act on the node's descriptor (AT_EMPTY_PATH, or our own
//    /proc/self/fd/N magic link, which the kernel resolves to exactly that file and, for
//    a symlink node, to the symlink itself — never to its target).
// Without openat2 (Linux < 5.6) the same holds by resolving one O_NOFOLLOW component at a
// time. A node keeps referring to its file if the host later moves that file outside the
// export (as an open descriptor would); only ".." and parent-relative operations are
// re-resolved, and they stay inside.
//
// Errors: errno values with context. A name argument that is empty, ".", "..", or that
// contains '/' or NUL is EINVAL for every operation taking a name, except Walk, which
// accepts "." (the node itself) and ".." (its parent). With read_only, every modifying
// operation (SetAttr, Create, Open for writing or with O_TRUNC, Write, Mkdir, Symlink,
// Mknod, Link, RenameAt, UnlinkAt, Rename, Remove, SetXattr, RemoveXattr) fails with
// EROFS; locks are not modifications and are allowed.
//
// Locks are open-file-description (OFD) locks (fcntl F_OFD_SETLK / F_OFD_GETLK) on the
// fid's open descriptor. The server is one process serving many clients: classic POSIX
// locks belong to the process, so two clients' locks would never conflict and closing any
// descriptor would drop them all; OFD locks belong to the open file, i.e. to the fid, so
// two fids conflict as two processes would and a clunk releases only that fid's locks.
// The kernel does not say who holds an OFD lock, so the export remembers the client_id
// and proc_id of each granted lock to answer GetLock.
//
// All host calls run with the server's credentials; the attaching Identity is not used
// for permission checks (the 9P client checks permissions itself, as with v9fs
// access=client).
//
// Thread safety: nodes may be used from many threads at once (see file_server.h). Nodes
// share the export's state and may outlive the FileServer that made them.
#ifndef NINEFOLD_FS_EXPORTFS_H_
#define NINEFOLD_FS_EXPORTFS_H_

#include <memory>
#include <string>

#include "ninefold/base/result.h"
#include "ninefold/fs/file_server.h"

namespace ninefold::fs {

struct ExportOptions {
  // Every modifying operation fails with EROFS.
  bool read_only = false;
  // Open of a character or block device node fails with EACCES unless set: a client that
  // may Mknod (or finds a device node in the export) would otherwise reach the host's
  // devices, which lie outside any directory.
  bool open_devices = false;
};

// Exports the directory at root_path (resolved once, with the caller's view of the host;
// symlinks in root_path itself are followed). Fails if it is not a directory or if
// /proc/self/fd is not available.
[[nodiscard]] Result<std::unique_ptr<FileServer>> MakeExportFs(const std::string& root_path,
                                                               ExportOptions opts = {});

}  // namespace ninefold::fs

#endif  // NINEFOLD_FS_EXPORTFS_H_
