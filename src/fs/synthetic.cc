#include "ninefold/fs/synthetic.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <optional>

#include "ninefold/wire/codec.h"

namespace ninefold::fs {
namespace {

constexpr uint32_t kV9fsMagic = 0x01021997;

uint64_t NextPath() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

int64_t NowSec() { return static_cast<int64_t>(std::time(nullptr)); }

bool Readable(const SyntheticFile& f) { return f.read || f.contents; }
bool Writable(const SyntheticFile& f) { return static_cast<bool>(f.write); }

uint32_t FileMode(const SyntheticFile& f) {
  return S_IFREG | (Readable(f) ? 0444 : 0) | (Writable(f) ? 0222 : 0);
}

class SyntheticNode final : public Node {
 public:
  // A node for the directory path.back() (file == null) or for `file` inside it.
  SyntheticNode(std::vector<std::shared_ptr<SyntheticDir>> path,
                std::shared_ptr<const SyntheticDir::Entry> file)
      : path_(std::move(path)), file_(std::move(file)) {}

  wire::Qid qid() const override {
    if (file_) return {wire::kQtFile, 0, file_->path};
    return {wire::kQtDir, 0, path_.back()->path()};
  }

  Result<std::unique_ptr<Node>> Walk(std::string_view name) override {
    if (file_) return Errno(ENOTDIR, "walk from a file");
    std::vector<std::shared_ptr<SyntheticDir>> path = path_;
    if (name == "..") {
      if (path.size() > 1) path.pop_back();
      return Make(std::move(path), nullptr);
    }
    if (name == ".") return Make(std::move(path), nullptr);
    std::shared_ptr<const SyntheticDir::Entry> entry = path.back()->Find(name);
    if (!entry) return Errno(ENOENT, "walk '" + std::string(name) + "'");
    if (entry->dir) {
      path.push_back(entry->dir);
      return Make(std::move(path), nullptr);
    }
    return Make(std::move(path), std::move(entry));
  }

  Result<std::unique_ptr<Node>> Clone() const override { return Make(path_, file_); }

  bool may_block() const override { return file_ && file_->file.may_block; }

  Result<wire::Rgetattr> GetAttr(uint64_t) override {
    wire::Rgetattr r;
    r.valid = wire::kGetattrBasic;
    r.qid = qid();
    r.uid = geteuid();
    r.gid = getegid();
    r.blksize = 4096;
    int64_t mtime;
    if (file_) {
      r.mode = FileMode(file_->file);
      r.nlink = 1;
      r.size = ContentsSize();
      mtime = file_->mtime_sec;
    } else {
      r.mode = S_IFDIR | 0555;
      r.nlink = 2;
      mtime = path_.back()->mtime_sec();
    }
    r.atime_sec = r.mtime_sec = r.ctime_sec = static_cast<uint64_t>(mtime);
    return r;
  }

  Result<void> SetAttr(const wire::Tsetattr&) override {
    if (file_ && Writable(file_->file)) return {};
    return Errno(EPERM, "setattr of a synthetic file");
  }

  Result<uint32_t> Open(uint32_t flags) override {
    uint32_t access = flags & O_ACCMODE;
    bool reads = access == O_RDONLY || access == O_RDWR;
    bool writes = access == O_WRONLY || access == O_RDWR;
    if (!file_) {
      if (writes || (flags & O_TRUNC)) return Errno(EISDIR, "open a directory for writing");
    } else {
      if (flags & O_DIRECTORY) return Errno(ENOTDIR, "O_DIRECTORY on a file");
      if (reads && !Readable(file_->file)) return Errno(EACCES, "file is write-only");
      if (writes && !Writable(file_->file)) return Errno(EACCES, "file is read-only");
    }
    open_ = true;
    flags_ = flags;
    return 0u;
  }

  Result<size_t> Read(uint64_t offset, std::span<std::byte> out) override {
    if (!file_) return Errno(EISDIR, "read a directory");
    if (!open_ || (flags_ & O_ACCMODE) == O_WRONLY) return Errno(EBADF, "not open for read");
    const SyntheticFile& f = file_->file;
    if (!f.contents) return f.read(offset, out);
    std::lock_guard lock(mu_);
    if (!snapshot_) {
      Result<std::string> text = f.contents();
      if (!text) return Unexpected(text.error());
      snapshot_ = std::move(*text);
    }
    if (offset >= snapshot_->size()) return size_t{0};
    size_t n = std::min<size_t>(out.size(), snapshot_->size() - offset);
    std::memcpy(out.data(), snapshot_->data() + offset, n);
    return n;
  }

  Result<size_t> Write(uint64_t offset, std::span<const std::byte> data) override {
    if (!file_) return Errno(EISDIR, "write a directory");
    if (!open_ || (flags_ & O_ACCMODE) == O_RDONLY) return Errno(EBADF, "not open for write");
    return file_->file.write(offset, data);
  }

  Result<size_t> ReadDir(uint64_t offset, std::span<std::byte> out) override {
    if (file_) return Errno(ENOTDIR, "readdir of a file");
    if (!open_) return Errno(EBADF, "readdir of a directory not open");
    size_t used = 0;
    bool wanted = false;
    auto emit = [&](wire::Qid q, uint64_t next, uint8_t dt, std::string_view name) {
      wanted = true;
      return wire::AppendDirent(out, &used, {q, next, dt, name});
    };
    const SyntheticDir& dir = *path_.back();
    const SyntheticDir& parent = *path_[path_.size() > 1 ? path_.size() - 2 : 0];
    constexpr uint8_t kDtDir = 4, kDtReg = 8;
    bool fits = true;
    if (offset < 1) fits = emit({wire::kQtDir, 0, dir.path()}, 1, kDtDir, ".");
    if (fits && offset < 2) fits = emit({wire::kQtDir, 0, parent.path()}, 2, kDtDir, "..");
    if (fits) {
      for (const auto& [id, entry] : dir.ListAfter(std::max<uint64_t>(offset, 2))) {
        wire::Qid q{entry->dir ? wire::kQtDir : wire::kQtFile, 0, entry->path};
        if (!emit(q, id, entry->dir ? kDtDir : kDtReg, entry->name)) break;
      }
    }
    if (used == 0 && wanted) return Errno(EINVAL, "readdir buffer too small for an entry");
    return used;
  }

  Result<wire::Rstatfs> StatFs() override {
    wire::Rstatfs r;
    r.type = kV9fsMagic;
    r.bsize = 4096;
    r.namelen = 255;
    return r;
  }

 private:
  static std::unique_ptr<Node> Make(std::vector<std::shared_ptr<SyntheticDir>> path,
                                    std::shared_ptr<const SyntheticDir::Entry> file) {
    return std::make_unique<SyntheticNode>(std::move(path), std::move(file));
  }

  // The length of a contents file's text: the snapshot's once this node has one.
  uint64_t ContentsSize() {
    const SyntheticFile& f = file_->file;
    if (!f.contents) return 0;
    std::lock_guard lock(mu_);
    if (snapshot_) return snapshot_->size();
    Result<std::string> text = f.contents();
    return text ? text->size() : 0;
  }

  const std::vector<std::shared_ptr<SyntheticDir>> path_;  // root .. this directory
  const std::shared_ptr<const SyntheticDir::Entry> file_;

  // Set by Open, which never runs concurrently with other calls on this node.
  bool open_ = false;
  uint32_t flags_ = 0;

  std::mutex mu_;                        // several reads of one node may run at once
  std::optional<std::string> snapshot_;  // guarded by mu_: the contents of this open
};

class SyntheticServer final : public FileServer {
 public:
  explicit SyntheticServer(std::shared_ptr<SyntheticDir> root) : root_(std::move(root)) {}
  Result<std::unique_ptr<Node>> Attach(const Identity&, std::string_view) override {
    return std::unique_ptr<Node>(std::make_unique<SyntheticNode>(
        std::vector<std::shared_ptr<SyntheticDir>>{root_}, nullptr));
  }

 private:
  const std::shared_ptr<SyntheticDir> root_;
};

Result<size_t> RunCommand(const std::function<Result<void>(std::string_view)>& command,
                          std::span<const std::byte> data) {
  auto done = command({reinterpret_cast<const char*>(data.data()), data.size()});
  if (!done) return Unexpected(done.error());
  return data.size();
}

}  // namespace

SyntheticFile ReadOnly(std::function<Result<std::string>()> contents) {
  return {.contents = std::move(contents)};
}

SyntheticFile WriteOnly(std::function<Result<void>(std::string_view data)> command) {
  return {.write = [command = std::move(command)](uint64_t, std::span<const std::byte> data) {
    return RunCommand(command, data);
  }};
}

SyntheticFile ReadWrite(std::function<Result<std::string>()> contents,
                        std::function<Result<void>(std::string_view data)> command) {
  SyntheticFile f = WriteOnly(std::move(command));
  f.contents = std::move(contents);
  return f;
}

SyntheticDir::SyntheticDir(PassKey) : path_(NextPath()), mtime_sec_(NowSec()) {}

std::shared_ptr<SyntheticDir> SyntheticDir::Make() {
  return std::make_shared<SyntheticDir>(PassKey{});
}

void SyntheticDir::Add(std::shared_ptr<Entry> entry) {
  std::lock_guard lock(mu_);
  if (auto old = ids_.find(entry->name); old != ids_.end()) {
    by_id_.erase(old->second);
    ids_.erase(old);
  }
  uint64_t id = next_id_++;
  ids_.emplace(entry->name, id);
  by_id_.emplace(id, std::move(entry));
  mtime_sec_ = NowSec();
}

void SyntheticDir::AddFile(std::string_view name, SyntheticFile file) {
  auto entry = std::make_shared<Entry>();
  entry->path = NextPath();
  entry->name = std::string(name);
  entry->file = std::move(file);
  entry->mtime_sec = NowSec();
  Add(std::move(entry));
}

std::shared_ptr<SyntheticDir> SyntheticDir::AddDir(std::string_view name) {
  if (auto existing = Find(name); existing && existing->dir) return existing->dir;
  auto entry = std::make_shared<Entry>();
  entry->dir = Make();
  entry->path = entry->dir->path();
  entry->name = std::string(name);
  entry->mtime_sec = NowSec();
  std::shared_ptr<SyntheticDir> dir = entry->dir;
  Add(std::move(entry));
  return dir;
}

bool SyntheticDir::Remove(std::string_view name) {
  std::lock_guard lock(mu_);
  auto it = ids_.find(name);
  if (it == ids_.end()) return false;
  by_id_.erase(it->second);
  ids_.erase(it);
  mtime_sec_ = NowSec();
  return true;
}

std::shared_ptr<const SyntheticDir::Entry> SyntheticDir::Find(std::string_view name) const {
  std::lock_guard lock(mu_);
  auto it = ids_.find(name);
  return it == ids_.end() ? nullptr : by_id_.find(it->second)->second;
}

std::vector<std::pair<uint64_t, std::shared_ptr<const SyntheticDir::Entry>>>
SyntheticDir::ListAfter(uint64_t after) const {
  std::lock_guard lock(mu_);
  return {by_id_.upper_bound(after), by_id_.end()};
}

int64_t SyntheticDir::mtime_sec() const {
  std::lock_guard lock(mu_);
  return mtime_sec_;
}

std::unique_ptr<FileServer> MakeSyntheticServer(std::shared_ptr<SyntheticDir> root) {
  return std::make_unique<SyntheticServer>(std::move(root));
}

}  // namespace ninefold::fs
