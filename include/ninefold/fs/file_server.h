// The back-end interface: what a file tree must do to be served over 9P.
//
// A FileServer is written once, in 9P2000.L terms, and the framework (ninefold/server/server.h)
// serves it in all three dialects: 9P2000 and 9P2000.u requests are mapped onto these calls (Topen
// -> Open, Tcreate -> Create/Mkdir/Symlink, Tstat -> GetAttr, Twstat -> SetAttr/ Rename, directory
// reads -> ReadDir + GetAttr). A back end implements only what it supports: every operation but
// Walk, Clone and GetAttr has a default that fails with EOPNOTSUPP, so a synthetic file is a few
// lines (see ninefold/fs/synthetic.h).
//
// Model: a fid refers to a Node. Attach yields the root Node; Walk yields a new Node for
// a child; Open and Create make a Node an open file; destroying a Node is the clunk
// (close what it holds). Errors are Results whose code is an errno value
// (std::generic_category()); the framework sends it as Rlerror / Rerror.
//
// Concurrency: methods run on the server's io threads, several at once, including
// several on the same Node (a client may have many reads of one fid in flight), so a
// Node synchronizes its own mutable state. The framework never destroys a Node while a
// call on it runs, and never calls Open/Create on a Node concurrently with other calls
// on that same Node.
#ifndef NINEFOLD_FS_FILE_SERVER_H_
#define NINEFOLD_FS_FILE_SERVER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "ninefold/base/result.h"
#include "ninefold/buf/buffer.h"
#include "ninefold/wire/messages.h"

namespace ninefold::fs {

// Who attached: Tattach's uname and n_uname (kNoUid when the client sent none).
struct Identity {
  std::string uname;
  uint32_t uid = wire::kNoUid;
};

// POSIX lock state for Tgetlock's answer (owns its client id, unlike the wire view).
struct LockInfo {
  uint8_t type = 0;  // 0 read, 1 write, 2 unlocked (P9_LOCK_TYPE_*)
  uint64_t start = 0;
  uint64_t length = 0;
  uint32_t proc_id = 0;
  std::string client_id;
};

// Tlock status values.
enum LockStatus : uint8_t { kLockSuccess = 0, kLockBlocked = 1, kLockError = 2, kLockGrace = 3 };

class Node {
 public:
  virtual ~Node() = default;

  // The file's qid, as Rwalk/Rattach/Rlopen report it.
  virtual wire::Qid qid() const = 0;

  // False when no call on this node can block (in-memory files that never wait): the
  // framework may then answer requests about it on its network thread directly.
  virtual bool may_block() const { return true; }

  // --- navigation --------------------------------------------------------------------
  // One path element: never empty, never contains '/'. ".." is the parent, and at the
  // attach root ".." is the root itself: no walk may leave the tree.
  virtual Result<std::unique_ptr<Node>> Walk(std::string_view name) = 0;
  // A second reference to the same file (Twalk with no names), not open.
  virtual Result<std::unique_ptr<Node>> Clone() const = 0;

  // --- attributes --------------------------------------------------------------------
  // Rgetattr with `valid` saying which fields are filled (P9_GETATTR_* bits).
  virtual Result<wire::Rgetattr> GetAttr(uint64_t request_mask) = 0;
  // Applies the fields named in req.valid (P9_SETATTR_* bits: mode, uid, gid, size,
  // atime, mtime, ctime, *_SET for explicit times).
  virtual Result<void> SetAttr(const wire::Tsetattr& req);

  // --- open files --------------------------------------------------------------------
  // Opens this node with Linux open(2) flags (O_ACCMODE, O_TRUNC, O_APPEND, O_DIRECTORY,
  // ...). Returns the iounit (0: let the framework use msize - 24).
  virtual Result<uint32_t> Open(uint32_t flags);
  // In this directory: creates `name` and opens it with `flags`; returns the new, open
  // node (the fid moves to it). mode: permission bits; gid: group for the new file.
  virtual Result<std::unique_ptr<Node>> Create(std::string_view name, uint32_t flags, uint32_t mode,
                                               uint32_t gid);
  // Read up to out.size() bytes at offset; 0 at end of file.
  virtual Result<size_t> Read(uint64_t offset, std::span<std::byte> out);
  // When this open file's bytes are those of a regular host file, at the same offsets:
  // that file's descriptor (open for reading), owned by the node. The framework may then
  // move a read's data in the kernel (splice(2)) instead of calling Read; Read stays the
  // reference (it is used whenever splicing cannot be). -1 (the default): always Read.
  virtual int data_fd() const { return -1; }
  // The bytes at [offset, offset + count) (fewer at the end of the file; offset a page
  // multiple) as pages the node promises never to change again (it writes elsewhere from
  // now on): the framework may hand them to a client on this host to map instead of
  // copying (buf::SharedBytes). nullopt (the default) when it cannot: Read then serves.
  virtual std::optional<buf::SharedBytes> Share(uint64_t /*offset*/, size_t /*count*/) {
    return std::nullopt;
  }
  // Write data at offset (an O_APPEND open appends); returns bytes written.
  virtual Result<size_t> Write(uint64_t offset, std::span<const std::byte> data);
  // The same for `count` bytes waiting in a pipe (`pipe_fd`, its read end, non-blocking;
  // they are there already): the framework's Twrite data when it came from a socket by
  // splice(2). Returns bytes written; bytes not written may stay in the pipe. The
  // default reads them into memory and calls Write; a node over a host file moves them
  // into it in the kernel instead (exportfs).
  virtual Result<size_t> WriteFromPipe(uint64_t offset, int pipe_fd, size_t count);
  // Directory entries from the position `offset` (0: the start; otherwise the offset
  // field of an entry returned earlier), appended to `out` with wire::AppendDirent until
  // the next one does not fit. Each entry's offset is the position *after* it. Returns
  // the bytes used; 0 means the end. Includes "." and ".." as the kernel expects.
  virtual Result<size_t> ReadDir(uint64_t offset, std::span<std::byte> out);

  // --- directory operations (this node is the directory) -----------------------------
  virtual Result<wire::Qid> Mkdir(std::string_view name, uint32_t mode, uint32_t gid);
  virtual Result<wire::Qid> Symlink(std::string_view name, std::string_view target, uint32_t gid);
  // mode includes the file type bits (S_IFIFO, S_IFCHR, ...).
  virtual Result<wire::Qid> Mknod(std::string_view name, uint32_t mode, uint32_t major,
                                  uint32_t minor, uint32_t gid);
  // Creates `name` here as a hard link to `target`.
  virtual Result<void> Link(std::string_view name, Node& target);
  virtual Result<void> RenameAt(std::string_view old_name, Node& new_dir,
                                std::string_view new_name);
  // flags: 0 or AT_REMOVEDIR (0x200).
  virtual Result<void> UnlinkAt(std::string_view name, uint32_t flags);

  // --- this file ---------------------------------------------------------------------
  // Trename: move this file into new_dir as new_name.
  virtual Result<void> Rename(Node& new_dir, std::string_view new_name);
  // Tremove: unlink this file (the framework clunks the fid whatever the result).
  virtual Result<void> Remove();
  virtual Result<std::string> ReadLink();
  virtual Result<wire::Rstatfs> StatFs();
  virtual Result<void> Fsync(bool datasync);
  // POSIX byte-range locks (fcntl semantics, per client_id/proc_id); never blocks:
  // a conflicting lock returns kLockBlocked and the client retries.
  virtual Result<uint8_t> Lock(const wire::Tlock& req);
  virtual Result<LockInfo> GetLock(const wire::Tgetlock& req);

  // --- extended attributes -----------------------------------------------------------
  // The value of `name`; with an empty name, the list of names, each NUL-terminated.
  virtual Result<std::string> GetXattr(std::string_view name);
  // flags: 0, XATTR_CREATE (1) or XATTR_REPLACE (2).
  virtual Result<void> SetXattr(std::string_view name, std::string_view value, uint32_t flags);
  virtual Result<void> RemoveXattr(std::string_view name);
};

class FileServer {
 public:
  virtual ~FileServer() = default;
  // The root of the tree for `aname`, as seen by `who`. Called once per Tattach.
  virtual Result<std::unique_ptr<Node>> Attach(const Identity& who, std::string_view aname) = 0;
};

// Shorthand for an errno failure with context: return Errno(ENOENT, "walk 'x'").
Unexpected<Error> Errno(int err, std::string context = {});

// Reads exactly out.size() bytes that are waiting in a pipe (`pipe_fd`, its read end):
// EIO when it holds fewer. Node::WriteFromPipe's default, and the framework's for data it
// keeps in memory (xattr values).
[[nodiscard]] Result<void> ReadPipe(int pipe_fd, std::span<std::byte> out);

}  // namespace ninefold::fs

#endif  // NINEFOLD_FS_FILE_SERVER_H_
