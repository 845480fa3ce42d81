#include "ninefold/fs/readonly.h"

#include <fcntl.h>

#include <cerrno>

namespace ninefold::fs {
namespace {

Unexpected<Error> ReadOnlyFs(const char* op) { return Errno(EROFS, op); }

class ReadOnlyNode final : public Node {
 public:
  explicit ReadOnlyNode(std::unique_ptr<Node> inner) : inner_(std::move(inner)) {}

  wire::Qid qid() const override { return inner_->qid(); }
  bool may_block() const override { return inner_->may_block(); }

  Result<std::unique_ptr<Node>> Walk(std::string_view name) override {
    return Wrap(inner_->Walk(name));
  }
  Result<std::unique_ptr<Node>> Clone() const override { return Wrap(inner_->Clone()); }

  Result<wire::Rgetattr> GetAttr(uint64_t request_mask) override {
    return inner_->GetAttr(request_mask);
  }
  Result<uint32_t> Open(uint32_t flags) override {
    if ((flags & O_ACCMODE) != O_RDONLY || (flags & (O_TRUNC | O_APPEND))) {
      return ReadOnlyFs("open for writing");
    }
    return inner_->Open(flags);
  }
  Result<size_t> Read(uint64_t offset, std::span<std::byte> out) override {
    return inner_->Read(offset, out);
  }
  int data_fd() const override { return inner_->data_fd(); }
  std::optional<buf::SharedBytes> Share(uint64_t offset, size_t count) override {
    return inner_->Share(offset, count);
  }
  Result<size_t> ReadDir(uint64_t offset, std::span<std::byte> out) override {
    return inner_->ReadDir(offset, out);
  }
  Result<std::string> ReadLink() override { return inner_->ReadLink(); }
  Result<wire::Rstatfs> StatFs() override { return inner_->StatFs(); }
  Result<void> Fsync(bool datasync) override { return inner_->Fsync(datasync); }
  Result<uint8_t> Lock(const wire::Tlock& req) override { return inner_->Lock(req); }
  Result<LockInfo> GetLock(const wire::Tgetlock& req) override { return inner_->GetLock(req); }
  Result<std::string> GetXattr(std::string_view name) override { return inner_->GetXattr(name); }

  // Everything that modifies: refused here, never delegated, so the node arguments of
  // Link/RenameAt/Rename (wrapped nodes) never need unwrapping.
  Result<void> SetAttr(const wire::Tsetattr&) override { return ReadOnlyFs("setattr"); }
  Result<std::unique_ptr<Node>> Create(std::string_view, uint32_t, uint32_t, uint32_t) override {
    return ReadOnlyFs("create");
  }
  Result<size_t> Write(uint64_t, std::span<const std::byte>) override {
    return ReadOnlyFs("write");
  }
  Result<wire::Qid> Mkdir(std::string_view, uint32_t, uint32_t) override {
    return ReadOnlyFs("mkdir");
  }
  Result<wire::Qid> Symlink(std::string_view, std::string_view, uint32_t) override {
    return ReadOnlyFs("symlink");
  }
  Result<wire::Qid> Mknod(std::string_view, uint32_t, uint32_t, uint32_t, uint32_t) override {
    return ReadOnlyFs("mknod");
  }
  Result<void> Link(std::string_view, Node&) override { return ReadOnlyFs("link"); }
  Result<void> RenameAt(std::string_view, Node&, std::string_view) override {
    return ReadOnlyFs("renameat");
  }
  Result<void> UnlinkAt(std::string_view, uint32_t) override { return ReadOnlyFs("unlinkat"); }
  Result<void> Rename(Node&, std::string_view) override { return ReadOnlyFs("rename"); }
  Result<void> Remove() override { return ReadOnlyFs("remove"); }
  Result<void> SetXattr(std::string_view, std::string_view, uint32_t) override {
    return ReadOnlyFs("setxattr");
  }
  Result<void> RemoveXattr(std::string_view) override { return ReadOnlyFs("removexattr"); }

 private:
  static Result<std::unique_ptr<Node>> Wrap(Result<std::unique_ptr<Node>> node) {
    if (!node) return Unexpected(std::move(node).error());
    return std::unique_ptr<Node>(std::make_unique<ReadOnlyNode>(std::move(*node)));
  }

  const std::unique_ptr<Node> inner_;
};

class ReadOnlyServer final : public FileServer {
 public:
  explicit ReadOnlyServer(std::unique_ptr<FileServer> inner) : inner_(std::move(inner)) {}
  Result<std::unique_ptr<Node>> Attach(const Identity& who, std::string_view aname) override {
    auto root = inner_->Attach(who, aname);
    if (!root) return Unexpected(std::move(root).error());
    return std::unique_ptr<Node>(std::make_unique<ReadOnlyNode>(std::move(*root)));
  }

 private:
  const std::unique_ptr<FileServer> inner_;
};

}  // namespace

std::unique_ptr<FileServer> MakeReadOnly(std::unique_ptr<FileServer> inner) {
  return std::make_unique<ReadOnlyServer>(std::move(inner));
}

}  // namespace ninefold::fs
