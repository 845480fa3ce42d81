#include "ninefold/fs/file_server.h"

#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace ninefold::fs {

Unexpected<Error> Errno(int err, std::string context) {
  return Unexpected(Error(std::error_code(err, std::generic_category()), std::move(context)));
}

namespace {
Unexpected<Error> NotSupported(const char* op) { return Errno(EOPNOTSUPP, op); }
}  // namespace

Result<void> Node::SetAttr(const wire::Tsetattr&) { return NotSupported("setattr"); }
Result<uint32_t> Node::Open(uint32_t) { return NotSupported("open"); }
Result<std::unique_ptr<Node>> Node::Create(std::string_view, uint32_t, uint32_t, uint32_t) {
  return NotSupported("create");
}
Result<size_t> Node::Read(uint64_t, std::span<std::byte>) { return NotSupported("read"); }
Result<size_t> Node::Write(uint64_t, std::span<const std::byte>) { return NotSupported("write"); }
Result<void> ReadPipe(int pipe_fd, std::span<std::byte> out) {
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = ::read(pipe_fd, out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno(errno, "write: reading the data's pipe");
    if (n == 0) return Errno(EIO, "write: the data's pipe holds less than announced");
    got += static_cast<size_t>(n);
  }
  return {};
}

Result<size_t> Node::WriteFromPipe(uint64_t offset, int pipe_fd, size_t count) {
  // Uninitialized: the pipe fills all of it or the write fails.
  std::unique_ptr<std::byte[]> buf(new std::byte[count]);
  if (auto ok = ReadPipe(pipe_fd, std::span<std::byte>(buf.get(), count)); !ok) {
    return Unexpected(ok.error());
  }
  return Write(offset, std::span<const std::byte>(buf.get(), count));
}
Result<size_t> Node::ReadDir(uint64_t, std::span<std::byte>) { return Errno(ENOTDIR, "readdir"); }
Result<wire::Qid> Node::Mkdir(std::string_view, uint32_t, uint32_t) {
  return NotSupported("mkdir");
}
Result<wire::Qid> Node::Symlink(std::string_view, std::string_view, uint32_t) {
  return NotSupported("symlink");
}
Result<wire::Qid> Node::Mknod(std::string_view, uint32_t, uint32_t, uint32_t, uint32_t) {
  return NotSupported("mknod");
}
Result<void> Node::Link(std::string_view, Node&) { return NotSupported("link"); }
Result<void> Node::RenameAt(std::string_view, Node&, std::string_view) {
  return NotSupported("renameat");
}
Result<void> Node::UnlinkAt(std::string_view, uint32_t) { return NotSupported("unlinkat"); }
Result<void> Node::Rename(Node&, std::string_view) { return NotSupported("rename"); }
Result<void> Node::Remove() { return NotSupported("remove"); }
Result<std::string> Node::ReadLink() { return Errno(EINVAL, "readlink"); }
Result<wire::Rstatfs> Node::StatFs() { return NotSupported("statfs"); }
Result<void> Node::Fsync(bool) { return {}; }
Result<uint8_t> Node::Lock(const wire::Tlock&) { return NotSupported("lock"); }
Result<LockInfo> Node::GetLock(const wire::Tgetlock&) { return NotSupported("getlock"); }
Result<std::string> Node::GetXattr(std::string_view) { return NotSupported("getxattr"); }
Result<void> Node::SetXattr(std::string_view, std::string_view, uint32_t) {
  return NotSupported("setxattr");
}
Result<void> Node::RemoveXattr(std::string_view) { return NotSupported("removexattr"); }

}  // namespace ninefold::fs
