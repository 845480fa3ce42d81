#include "ninefold/fs/ramfs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "fmt/format.h"
#include "ninefold/buf/page_pool.h"
#include "ninefold/buf/region.h"
#include "ninefold/wire/codec.h"

namespace ninefold::fs {
namespace {

constexpr uint32_t kAtRemoveDir = 0x200;
constexpr uint64_t kMaxFileSize = INT64_MAX;
constexpr size_t kMaxName = 255;
constexpr size_t kMaxXattrValue = 65536;
constexpr uint32_t kTmpfsMagic = 0x01021994;
constexpr uint64_t kPage = kRamFsPageSize;

struct Time {
  uint64_t sec = 0;
  uint64_t nsec = 0;
};

Time Now() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return {static_cast<uint64_t>(ts.tv_sec), static_cast<uint64_t>(ts.tv_nsec)};
}

static_assert(kRamFsPageSize == buf::kPageSize);

struct alignas(kRamFsPageSize) Page {
  std::byte bytes[kRamFsPageSize];
};

// Bytes and inodes in use, shared by a file system and its inodes: an unlinked inode that
// an open node still holds releases its pages when that node goes, whenever that is.
struct Usage {
  explicit Usage(uint64_t max_bytes) : limit(max_bytes) {}
  const uint64_t limit;  // 0: none
  // Where pages come from: exactly a page of memory each, in shared memory.
  const std::shared_ptr<buf::PagePool> pool = buf::PagePool::Create();
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> inodes{0};

  bool Reserve(uint64_t n) {
    uint64_t cur = bytes.load(std::memory_order_relaxed);
    do {
      if (limit != 0 && (cur > limit || n > limit - cur)) return false;
    } while (!bytes.compare_exchange_weak(cur, cur + n, std::memory_order_relaxed));
    return true;
  }
  void Release(uint64_t n) { bytes.fetch_sub(n, std::memory_order_relaxed); }
};

// Pages of one file in a memfd of its own, so that they can be handed to a client to map
// (Share): the common pool's slabs mix files, and a slab's descriptor would let a client
// read them all. A file's pages past kShareFrom come from here. A page handed out is
// `exposed`: never written again (WritablePage copies it first) and never reused after
// it dies, so what a client mapped cannot change under it; the kernel keeps it for as
// long as a client maps it. The memfd goes when the last of its pages does.
//
// An exposed page stays charged to the file system's size limit until its region goes,
// wherever the page is (in a file, or dead but kept for clients): its memory is held that
// long. A page that is not exposed is charged while a file holds it, as pool pages are.
struct ShareRegion {
  explicit ShareRegion(std::shared_ptr<Usage> u) : usage(std::move(u)) {}
  ShareRegion(const ShareRegion&) = delete;
  ShareRegion& operator=(const ShareRegion&) = delete;
  ~ShareRegion() {
    usage->Release(exposed_count.load(std::memory_order_relaxed) * kPage);
    if (ro_fd >= 0) ::close(ro_fd);
  }
  const std::shared_ptr<Usage> usage;
  std::shared_ptr<buf::Region> region;           // sealed: only its mapping here can write it
  int ro_fd = -1;                                // the memfd again, read-only: what clients get
  std::unique_ptr<std::atomic<bool>[]> exposed;  // by page index
  std::atomic<uint64_t> exposed_count{0};
};

// Files smaller than this never get a region of their own (a memfd each would cost more
// than copying their reads); regions grow by doubling, from kShareRegionMin to Max.
constexpr uint64_t kShareFrom = 1u << 20;
constexpr uint64_t kShareRegionMin = 16u << 20;
constexpr uint64_t kShareRegionMax = 1u << 30;

// Owns a page of a ShareRegion: returns it to the region's allocator unless exposed.
struct SharePageDeleter {
  std::shared_ptr<ShareRegion> share;
  uint32_t index;
  void operator()(void*) const {
    if (!share->exposed[index].load(std::memory_order_relaxed)) {
      share->region->pages().Free({index, 1});
    }
  }
};

// One POSIX lock held by (client_id, proc_id) over [start, end] (end inclusive).
struct LockRange {
  uint8_t type = wire::kLockTypeRead;
  uint64_t start = 0;
  uint64_t end = 0;
  uint32_t proc_id = 0;
  std::string client_id;

  bool SameOwner(uint32_t pid, std::string_view client) const {
    return proc_id == pid && client_id == client;
  }
  bool Overlaps(uint64_t s, uint64_t e) const { return start <= e && s <= end; }
};

struct Inode;
struct DirEntry {
  std::shared_ptr<Inode> inode;
  uint64_t cookie = 0;  // readdir offset of the position after this entry
};
using EntryMap = std::map<std::string, DirEntry, std::less<>>;

struct Inode {
  Inode(uint64_t number, uint32_t mode, std::shared_ptr<Usage> fs_usage)
      : ino(number), type(mode & S_IFMT), perm(mode & 07777), usage(std::move(fs_usage)) {
    usage->inodes.fetch_add(1, std::memory_order_relaxed);
    atime = mtime = ctime = btime = Now();
  }
  ~Inode() {
    usage->Release(ChargedPages() * kPage);
    usage->inodes.fetch_sub(1, std::memory_order_relaxed);
  }

  // Pages whose charge this inode holds: all but the exposed ones (their regions hold
  // theirs; see ShareRegion).
  uint64_t ChargedPages() const;

  bool is_dir() const { return type == S_IFDIR; }
  wire::Qid qid() const {
    uint8_t qt = is_dir() ? wire::kQtDir : type == S_IFLNK ? wire::kQtSymlink : wire::kQtFile;
    return {qt, version.load(std::memory_order_relaxed), ino};
  }
  void BumpVersion() { version.fetch_add(1, std::memory_order_relaxed); }

  const uint64_t ino;
  const uint32_t type;  // S_IFMT bits: fixed for life
  std::atomic<uint32_t> version{0};

  // Guarded by the tree mutex (FsState::mu).
  uint32_t perm;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t nlink = 0;
  uint64_t rdev = 0;
  std::string symlink_target;
  std::map<std::string, std::string, std::less<>> xattrs;
  std::vector<LockRange> locks;
  // Directories only. `parent` is empty once the directory is removed; the root's is itself.
  EntryMap entries;
  std::map<uint64_t, EntryMap::iterator> by_cookie;
  uint64_t next_cookie = 3;  // 1 is ".", 2 is ".."
  std::weak_ptr<Inode> parent;

  // Guarded by data_mu (acquired after the tree mutex when both are held).
  mutable std::shared_mutex data_mu;
  uint64_t size = 0;
  std::map<uint64_t, std::shared_ptr<Page>> pages;  // page index -> page; holes are absent
  std::shared_ptr<ShareRegion> share;  // where pages past kShareFrom come from (or null)
  Time atime, mtime, ctime, btime;

  const std::shared_ptr<Usage> usage;
};

// State shared by the FileServer and every Node it made: whichever is destroyed last
// frees the tree.
struct FsState {
  explicit FsState(const RamFsOptions& o) : usage(std::make_shared<Usage>(o.max_bytes)) {}
  std::mutex mu;  // the tree mutex: names, links and attributes of every inode
  std::shared_ptr<Usage> usage;
  uint64_t next_ino = 1;  // guarded by mu
  uint64_t fsid = 0;
  std::shared_ptr<Inode> root;

  std::shared_ptr<Inode> NewInode(uint32_t mode, uint32_t uid, uint32_t gid) {
    auto inode = std::make_shared<Inode>(next_ino++, mode, usage);
    inode->uid = uid;
    inode->gid = gid;
    return inode;
  }
};

bool IsDot(std::string_view name) { return name == "." || name == ".."; }

Result<void> CheckName(std::string_view name) {
  if (name.empty() || name.find('/') != std::string_view::npos ||
      name.find('\0') != std::string_view::npos) {
    return Errno(EINVAL, "bad name");
  }
  if (name.size() > kMaxName) return Errno(ENAMETOOLONG, "name too long");
  return {};
}

void SetTimes(Inode& inode, bool mtime, bool ctime) {
  std::unique_lock lock(inode.data_mu);
  Time now = Now();
  if (mtime) inode.mtime = now;
  if (ctime) inode.ctime = now;
  inode.BumpVersion();
}

// --- directory entries (tree mutex held) -------------------------------------------------

void AddEntry(Inode& dir, std::string_view name, std::shared_ptr<Inode> child) {
  uint64_t cookie = dir.next_cookie++;
  auto [it, inserted] = dir.entries.emplace(std::string(name), DirEntry{std::move(child), cookie});
  NINEFOLD_CHECK(inserted);
  dir.by_cookie.emplace(cookie, it);
  SetTimes(dir, true, true);
}

std::shared_ptr<Inode> EraseEntry(Inode& dir, EntryMap::iterator it) {
  std::shared_ptr<Inode> child = std::move(it->second.inode);
  dir.by_cookie.erase(it->second.cookie);
  dir.entries.erase(it);
  SetTimes(dir, true, true);
  return child;
}

// Removes the entry `it` of `dir` (rmdir when want_dir, else unlink), with rmdir/unlink's
// checks. The inode lives on while nodes hold it.
Result<void> Unlink(Inode& dir, EntryMap::iterator it, bool want_dir) {
  Inode& child = *it->second.inode;
  if (child.is_dir()) {
    if (!want_dir) return Errno(EISDIR, "unlink of a directory");
    if (!child.entries.empty()) return Errno(ENOTEMPTY, "rmdir");
  } else if (want_dir) {
    return Errno(ENOTDIR, "rmdir of a non-directory");
  }
  std::shared_ptr<Inode> gone = EraseEntry(dir, it);
  if (gone->is_dir()) {
    gone->nlink = 0;
    gone->parent.reset();
    --dir.nlink;
  } else {
    --gone->nlink;
  }
  SetTimes(*gone, false, true);
  return {};
}

// Moves src_dir's entry `src_it` to dst_dir/new_name with rename(2)'s rules.
Result<void> MoveEntry(Inode& src_dir, EntryMap::iterator src_it,
                       const std::shared_ptr<Inode>& dst_dir, std::string_view new_name) {
  if (!dst_dir->is_dir()) return Errno(ENOTDIR, "rename target directory");
  if (dst_dir->nlink == 0) return Errno(ENOENT, "rename into a removed directory");
  if (IsDot(new_name)) return Errno(EINVAL, "rename to '.' or '..'");
  if (auto ok = CheckName(new_name); !ok) return ok;
  std::shared_ptr<Inode> src = src_it->second.inode;
  auto dst_it = dst_dir->entries.find(new_name);
  if (dst_it != dst_dir->entries.end()) {
    const Inode& dst = *dst_it->second.inode;
    if (&dst == src.get()) return {};  // two names of one file: rename(2) does nothing
    if (src->is_dir() && !dst.is_dir()) return Errno(ENOTDIR, "rename dir over non-dir");
    if (!src->is_dir() && dst.is_dir()) return Errno(EISDIR, "rename non-dir over dir");
    if (dst.is_dir() && !dst.entries.empty()) return Errno(ENOTEMPTY, "rename over dir");
  }
  if (src->is_dir()) {
    // dst_dir must not be src or lie below it.
    for (Inode* p = dst_dir.get();;) {
      if (p == src.get()) return Errno(EINVAL, "rename a directory into itself");
      std::shared_ptr<Inode> up = p->parent.lock();
      if (!up || up.get() == p) break;
      p = up.get();
    }
  }
  if (dst_it != dst_dir->entries.end()) {
    auto replaced = Unlink(*dst_dir, dst_it, dst_it->second.inode->is_dir());
    NINEFOLD_CHECK(replaced.has_value());
  }
  EraseEntry(src_dir, src_it);
  AddEntry(*dst_dir, new_name, src);
  if (src->is_dir() && &src_dir != dst_dir.get()) {
    --src_dir.nlink;
    ++dst_dir->nlink;
    src->parent = dst_dir;
  }
  SetTimes(*src, false, true);
  return {};
}

// --- file data (data_mu held by the caller) ----------------------------------------------

// A page from the file system's pool (null when memory for one cannot be had).
std::shared_ptr<Page> NewPage(Usage& usage, bool zeroed) {
  std::shared_ptr<std::byte> bytes = usage.pool->Allocate(zeroed);
  if (!bytes) return nullptr;
  auto* page = reinterpret_cast<Page*>(bytes.get());
  return std::shared_ptr<Page>(std::move(bytes), page);
}

bool IsExposed(const std::shared_ptr<Page>& page) {
  const auto* d = std::get_deleter<SharePageDeleter>(page);
  return d != nullptr && d->share->exposed[d->index].load(std::memory_order_relaxed);
}

uint64_t Inode::ChargedPages() const {
  uint64_t n = 0;
  for (const auto& [index, page] : pages) n += !IsExposed(page);
  return n;
}

// Drops a page from a file: its charge goes unless it is exposed (its region's then).
void ReleasePage(Inode& inode, const std::shared_ptr<Page>& page) {
  if (!IsExposed(page)) inode.usage->Release(kPage);
}

// `count` contiguous pages of the inode's share region (a new, larger region when the
// current one has no such run), contents undefined; empty when no memfd can be had.
std::vector<std::shared_ptr<Page>> NewSharePages(Inode& inode, uint32_t count) {
  std::shared_ptr<ShareRegion>& share = inode.share;
  Result<buf::PageRun> run = Unexpected(Error(std::errc::not_enough_memory, ""));
  if (share) run = share->region->pages().Allocate(count);
  if (!run) {
    uint64_t want = share ? 2 * share->region->size() : kShareRegionMin;
    want = std::max<uint64_t>(std::min(want, kShareRegionMax), uint64_t{count} * kPage);
    auto fresh = std::make_shared<ShareRegion>(inode.usage);
    Result<std::shared_ptr<buf::Region>> region = buf::Region::Create(
        want, fmt::format("ninefold-ramfs-{}", inode.ino), buf::Region::PeerAccess::kReadOnly);
    if (!region) return {};
    fresh->region = std::move(*region);
    fresh->ro_fd =
        ::open(fmt::format("/proc/self/fd/{}", fresh->region->fd()).c_str(), O_RDONLY | O_CLOEXEC);
    if (fresh->ro_fd < 0) return {};
    fresh->exposed = std::make_unique<std::atomic<bool>[]>(fresh->region->page_count());
    run = fresh->region->pages().Allocate(count);
    if (!run) return {};
    share = std::move(fresh);
  }
  std::vector<std::shared_ptr<Page>> pages;
  pages.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t index = run->first + i;
    auto* page = reinterpret_cast<Page*>(share->region->data() + uint64_t{index} * kPage);
    pages.emplace_back(page, SharePageDeleter{share, index});
  }
  return pages;
}

// A new page for page `index` of the inode: from its share region past kShareFrom, else
// (or when no region can be had) from the pool. Null when memory cannot be had.
std::shared_ptr<Page> NewPageFor(Inode& inode, uint64_t index, bool zeroed) {
  if (index * kPage >= kShareFrom) {
    std::vector<std::shared_ptr<Page>> one = NewSharePages(inode, 1);
    if (!one.empty()) {
      if (zeroed) std::memset(one[0]->bytes, 0, kPage);  // a page may be reused
      return std::move(one[0]);
    }
  }
  return NewPage(*inode.usage, zeroed);
}

// A page the caller may write: allocated (zeroed unless `whole` says it will be fully
// overwritten) when absent, copied when someone outside the file still holds it or a
// client was given it. Null when the size limit refuses a new page or memory for one
// cannot be had.
Page* WritablePage(Inode& inode, uint64_t index, bool whole) {
  auto [it, inserted] = inode.pages.try_emplace(index);
  if (inserted) {
    if (!inode.usage->Reserve(kPage)) {
      inode.pages.erase(it);
      return nullptr;
    }
    it->second = NewPageFor(inode, index, !whole);
    if (!it->second) {
      inode.pages.erase(it);
      inode.usage->Release(kPage);
      return nullptr;
    }
  } else if (bool exposed = IsExposed(it->second); exposed || it->second.use_count() > 1) {
    // The copy of an exposed page is charged anew: the exposed one keeps its memory.
    if (exposed && !inode.usage->Reserve(kPage)) return nullptr;
    std::shared_ptr<Page> copy = NewPageFor(inode, index, false);
    if (!copy) {
      if (exposed) inode.usage->Release(kPage);
      return nullptr;
    }
    std::memcpy(copy->bytes, it->second->bytes, kPage);
    it->second = std::move(copy);
  }
  return it->second.get();
}

// The pages of [offset, offset + count) as one run of a share region, exposed from now
// on: pages elsewhere (the pool, other runs) are first copied into a fresh run, once.
// nullopt for a file smaller than kShareFrom, a misaligned offset, a range at or past
// the end or with holes, or when no region can be had: the caller reads instead.
std::optional<buf::SharedBytes> ShareData(Inode& inode, uint64_t offset, size_t count) {
  std::unique_lock lock(inode.data_mu);
  if (inode.size < kShareFrom || offset % kPage != 0 || offset >= inode.size || count == 0) {
    return std::nullopt;
  }
  const size_t n = static_cast<size_t>(std::min<uint64_t>(count, inode.size - offset));
  const uint64_t first = offset / kPage;
  const auto pages = static_cast<uint32_t>((n + kPage - 1) / kPage);
  auto it = inode.pages.lower_bound(first);
  const SharePageDeleter* start = nullptr;
  bool one_run = true;
  for (uint32_t i = 0; i < pages; ++i, ++it) {
    if (it == inode.pages.end() || it->first != first + i) return std::nullopt;  // a hole
    const auto* d = std::get_deleter<SharePageDeleter>(it->second);
    if (i == 0) start = d;
    if (d == nullptr || start == nullptr || d->share != start->share ||
        d->index != start->index + i) {
      one_run = false;
    }
  }
  if (!one_run) {
    // Exposed pages replaced here keep their memory (and charge): their copies are new.
    uint64_t exposed = 0;
    it = inode.pages.lower_bound(first);
    for (uint32_t i = 0; i < pages; ++i, ++it) exposed += IsExposed(it->second);
    if (!inode.usage->Reserve(exposed * kPage)) return std::nullopt;
    std::vector<std::shared_ptr<Page>> fresh = NewSharePages(inode, pages);
    if (fresh.empty()) {
      inode.usage->Release(exposed * kPage);
      return std::nullopt;
    }
    it = inode.pages.lower_bound(first);
    for (uint32_t i = 0; i < pages; ++i, ++it) {
      std::memcpy(fresh[i]->bytes, it->second->bytes, kPage);
      it->second = std::move(fresh[i]);
    }
    start = std::get_deleter<SharePageDeleter>(inode.pages.find(first)->second);
  }
  const std::shared_ptr<ShareRegion>& share = start->share;
  uint64_t newly = 0;
  for (uint32_t i = 0; i < pages; ++i) {
    newly += !share->exposed[start->index + i].exchange(true, std::memory_order_relaxed);
  }
  share->exposed_count.fetch_add(newly, std::memory_order_relaxed);
  const uint64_t at = uint64_t{start->index} * kPage;
  return buf::SharedBytes{.bytes = {share->region->data() + at, n},
                          .file = {.fd = share->ro_fd, .offset = at, .length = n},
                          .owner = share};
}

// Sets the size; bytes past the end of file are kept zero so that growing reads zeros.
// ENOSPC (and nothing changed) when the last page must be copied first (a client holds
// it) and there is no room for the copy.
Result<void> Truncate(Inode& inode, uint64_t new_size) {
  if (new_size < inode.size) {
    if (uint64_t tail = new_size % kPage; tail != 0 && inode.pages.contains(new_size / kPage)) {
      Page* page = WritablePage(inode, new_size / kPage, false);
      if (page == nullptr) {
        return Errno(ENOSPC, "no room to copy the file's last page, which a client was given");
      }
      std::memset(page->bytes + tail, 0, kPage - tail);
    }
    uint64_t first_dead = (new_size + kPage - 1) / kPage;
    for (auto it = inode.pages.lower_bound(first_dead); it != inode.pages.end();) {
      ReleasePage(inode, it->second);
      it = inode.pages.erase(it);
    }
  }
  inode.size = new_size;
  return {};
}

size_t ReadData(const Inode& inode, uint64_t offset, std::span<std::byte> out) {
  std::shared_lock lock(inode.data_mu);
  if (offset >= inode.size) return 0;
  size_t n = static_cast<size_t>(std::min<uint64_t>(out.size(), inode.size - offset));
  // One lookup, then the map in order (consecutive pages are neighbours): a 1 MiB read
  // is 256 pages, and a lookup each cost more than their copies.
  auto it = inode.pages.lower_bound(offset / kPage);
  for (size_t done = 0; done < n;) {
    uint64_t pos = offset + done;
    size_t in_page = pos % kPage;
    size_t chunk = std::min<size_t>(kPage - in_page, n - done);
    if (it == inode.pages.end() || it->first != pos / kPage) {
      std::memset(out.data() + done, 0, chunk);  // a hole
    } else {
      std::memcpy(out.data() + done, it->second->bytes + in_page, chunk);
      ++it;
    }
    done += chunk;
  }
  return n;
}

Result<size_t> WriteData(Inode& inode, uint64_t offset, std::span<const std::byte> data,
                         bool append) {
  std::unique_lock lock(inode.data_mu);
  if (append) offset = inode.size;
  if (offset > kMaxFileSize || data.size() > kMaxFileSize - offset) {
    return Errno(EFBIG, "write past the largest file size");
  }
  size_t done = 0;
  while (done < data.size()) {
    uint64_t pos = offset + done;
    size_t in_page = pos % kPage;
    size_t chunk = std::min<size_t>(kPage - in_page, data.size() - done);
    Page* page = WritablePage(inode, pos / kPage, chunk == kPage);
    if (page == nullptr) break;
    std::memcpy(page->bytes + in_page, data.data() + done, chunk);
    done += chunk;
  }
  if (done == 0 && !data.empty()) {
    return Errno(ENOSPC, "no room: the ramfs size limit, or no memory for another page");
  }
  if (done > 0) {
    inode.size = std::max<uint64_t>(inode.size, offset + done);
    inode.mtime = inode.ctime = Now();
    inode.BumpVersion();
  }
  return done;
}

// Range [start, end] of a lock request; EINVAL when start + length overflows.
Result<std::pair<uint64_t, uint64_t>> LockSpan(uint64_t start, uint64_t length) {
  if (length == 0) return std::pair{start, UINT64_MAX};
  if (length - 1 > UINT64_MAX - start) return Errno(EINVAL, "lock range overflows");
  return std::pair{start, start + length - 1};
}

uint64_t LockLength(const LockRange& l) { return l.end == UINT64_MAX ? 0 : l.end - l.start + 1; }

// --- the node ----------------------------------------------------------------------------

class RamNode final : public Node {
 public:
  RamNode(std::shared_ptr<FsState> fs, std::shared_ptr<Inode> inode, std::weak_ptr<Inode> parent,
          std::string name, uint32_t uid)
      : fs_(std::move(fs)),
        inode_(std::move(inode)),
        uid_(uid),
        parent_hint_(std::move(parent)),
        name_hint_(std::move(name)) {}

  ~RamNode() override {
    // Closing a file releases the POSIX locks its owners hold on it (fcntl semantics).
    // No call runs on a node being destroyed, so lock_owners_ can be read unlocked, and
    // a node that never locked does not take the tree mutex.
    if (lock_owners_.empty()) return;
    std::lock_guard lock(fs_->mu);
    std::erase_if(inode_->locks, [&](const LockRange& l) {
      return lock_owners_.contains({l.client_id, l.proc_id});
    });
  }

  wire::Qid qid() const override { return inode_->qid(); }
  // Memory only: nothing here waits (its locks are held only for memory operations).
  bool may_block() const override { return false; }

  Result<std::unique_ptr<Node>> Walk(std::string_view name) override {
    std::lock_guard lock(fs_->mu);
    if (!inode_->is_dir()) return Errno(ENOTDIR, "walk from a non-directory");
    if (inode_->nlink == 0) return Errno(ENOENT, "walk in a removed directory");
    if (name == ".") return NewNode(inode_, parent_hint_, name_hint_);
    if (name == "..") {
      std::shared_ptr<Inode> up = inode_->parent.lock();
      NINEFOLD_CHECK(up != nullptr);
      return NewNode(up, up->parent, "");
    }
    if (auto ok = CheckName(name); !ok) return Unexpected(ok.error());
    auto it = inode_->entries.find(name);
    if (it == inode_->entries.end()) return Errno(ENOENT, "walk '" + std::string(name) + "'");
    return NewNode(it->second.inode, inode_, std::string(name));
  }

  Result<std::unique_ptr<Node>> Clone() const override {
    std::lock_guard lock(fs_->mu);
    return NewNode(inode_, parent_hint_, name_hint_);
  }

  Result<wire::Rgetattr> GetAttr(uint64_t) override {
    std::lock_guard lock(fs_->mu);
    const Inode& in = *inode_;
    wire::Rgetattr r;
    r.valid = wire::kGetattrAll;
    r.qid = in.qid();
    r.mode = in.type | in.perm;
    r.uid = in.uid;
    r.gid = in.gid;
    r.nlink = in.nlink;
    r.rdev = in.rdev;
    r.blksize = kPage;
    std::shared_lock data(in.data_mu);
    r.size = in.type == S_IFLNK ? in.symlink_target.size() : in.size;
    r.blocks = in.pages.size() * (kPage / 512);
    r.atime_sec = in.atime.sec;
    r.atime_nsec = in.atime.nsec;
    r.mtime_sec = in.mtime.sec;
    r.mtime_nsec = in.mtime.nsec;
    r.ctime_sec = in.ctime.sec;
    r.ctime_nsec = in.ctime.nsec;
    r.btime_sec = in.btime.sec;
    r.btime_nsec = in.btime.nsec;
    r.data_version = in.version.load(std::memory_order_relaxed);
    return r;
  }

  Result<void> SetAttr(const wire::Tsetattr& req) override {
    std::lock_guard lock(fs_->mu);
    Inode& in = *inode_;
    if (req.valid & wire::kSetattrSize) {
      if (in.is_dir()) return Errno(EISDIR, "truncate a directory");
      if (in.type != S_IFREG) return Errno(EINVAL, "truncate a special file");
      if (req.size > kMaxFileSize) return Errno(EFBIG, "truncate");
    }
    std::unique_lock data(in.data_mu);
    // The size first: the only change that can fail, and then none is made.
    if (req.valid & wire::kSetattrSize) {
      if (Result<void> ok = Truncate(in, req.size); !ok) return ok;
    }
    if (req.valid & wire::kSetattrMode) in.perm = req.mode & 07777;
    if (req.valid & wire::kSetattrUid) in.uid = req.uid;
    if (req.valid & wire::kSetattrGid) in.gid = req.gid;
    Time now = Now();
    if (req.valid & wire::kSetattrSize) in.mtime = now;
    if (req.valid & wire::kSetattrAtime) {
      in.atime = (req.valid & wire::kSetattrAtimeSet) ? Time{req.atime_sec, req.atime_nsec} : now;
    }
    if (req.valid & wire::kSetattrMtime) {
      in.mtime = (req.valid & wire::kSetattrMtimeSet) ? Time{req.mtime_sec, req.mtime_nsec} : now;
    }
    in.ctime = now;  // every attribute change, P9_SETATTR_CTIME or not
    in.BumpVersion();
    return {};
  }

  Result<uint32_t> Open(uint32_t flags) override {
    uint32_t access = flags & O_ACCMODE;
    bool writes = access == O_WRONLY || access == O_RDWR;
    switch (inode_->type) {
      case S_IFDIR:
        if (writes || (flags & O_TRUNC)) return Errno(EISDIR, "open a directory for writing");
        break;
      case S_IFREG:
        if (flags & O_DIRECTORY) return Errno(ENOTDIR, "O_DIRECTORY on a file");
        if (writes && (flags & O_TRUNC)) {
          std::unique_lock data(inode_->data_mu);
          if (inode_->size != 0) {
            (void)Truncate(*inode_, 0);  // to 0: no last page to copy, it cannot fail
            inode_->mtime = inode_->ctime = Now();
            inode_->BumpVersion();
          }
        }
        break;
      case S_IFLNK:
        return Errno((flags & O_DIRECTORY) ? ENOTDIR : ELOOP, "open a symlink");
      default:
        if (flags & O_DIRECTORY) return Errno(ENOTDIR, "O_DIRECTORY on a special file");
        return Errno(ENXIO, "open a special file");
    }
    open_ = true;
    open_flags_ = flags;
    return 0u;
  }

  Result<std::unique_ptr<Node>> Create(std::string_view name, uint32_t flags, uint32_t mode,
                                       uint32_t gid) override {
    std::unique_ptr<RamNode> node;
    {
      std::lock_guard lock(fs_->mu);
      if (auto ok = CheckDirForNewName(name); !ok) return Unexpected(ok.error());
      auto it = inode_->entries.find(name);
      if (it != inode_->entries.end()) {
        if (flags & O_EXCL) return Errno(EEXIST, "create '" + std::string(name) + "'");
        if (it->second.inode->is_dir()) return Errno(EISDIR, "create over a directory");
        node = NewNode(it->second.inode, inode_, std::string(name));
      } else {
        auto file = fs_->NewInode(S_IFREG | (mode & 07777), uid_, gid);
        file->nlink = 1;
        AddEntry(*inode_, name, file);
        node = NewNode(std::move(file), inode_, std::string(name));
      }
    }
    if (auto opened = node->Open(flags & ~uint32_t{O_CREAT | O_EXCL}); !opened) {
      return Unexpected(opened.error());
    }
    return std::unique_ptr<Node>(std::move(node));
  }

  Result<size_t> Read(uint64_t offset, std::span<std::byte> out) override {
    if (inode_->is_dir()) return Errno(EISDIR, "read a directory");
    if (!open_ || (open_flags_ & O_ACCMODE) == O_WRONLY) return Errno(EBADF, "not open for read");
    return ReadData(*inode_, offset, out);
  }

  std::optional<buf::SharedBytes> Share(uint64_t offset, size_t count) override {
    if (inode_->is_dir() || !open_ || (open_flags_ & O_ACCMODE) == O_WRONLY) return std::nullopt;
    return ShareData(*inode_, offset, count);
  }

  Result<size_t> Write(uint64_t offset, std::span<const std::byte> data) override {
    if (inode_->is_dir()) return Errno(EISDIR, "write a directory");
    if (!open_ || (open_flags_ & O_ACCMODE) == O_RDONLY) {
      return Errno(EBADF, "not open for write");
    }
    return WriteData(*inode_, offset, data, open_flags_ & O_APPEND);
  }

  Result<size_t> ReadDir(uint64_t offset, std::span<std::byte> out) override {
    if (!inode_->is_dir()) return Errno(ENOTDIR, "readdir");
    if (!open_) return Errno(EBADF, "readdir of a directory not open");
    std::lock_guard lock(fs_->mu);
    size_t used = 0;
    bool wanted = false;  // something was left to list
    auto emit = [&](const Inode& in, uint64_t next, std::string_view name) {
      wanted = true;
      uint8_t dt = static_cast<uint8_t>(in.type >> 12);  // DT_* is S_IFMT >> 12
      return wire::AppendDirent(out, &used, {in.qid(), next, dt, name});
    };
    bool fits = true;
    if (offset < 1) fits = emit(*inode_, 1, ".");
    if (fits && offset < 2) {
      std::shared_ptr<Inode> up = inode_->parent.lock();
      fits = emit(up ? *up : *inode_, 2, "..");
    }
    for (auto it = inode_->by_cookie.upper_bound(std::max<uint64_t>(offset, 2));
         fits && it != inode_->by_cookie.end(); ++it) {
      fits = emit(*it->second->second.inode, it->first, it->second->first);
    }
    if (used == 0 && wanted) return Errno(EINVAL, "readdir buffer too small for an entry");
    return used;
  }

  Result<wire::Qid> Mkdir(std::string_view name, uint32_t mode, uint32_t gid) override {
    std::lock_guard lock(fs_->mu);
    if (auto ok = CheckDirForNewName(name); !ok) return Unexpected(ok.error());
    if (inode_->entries.contains(name)) return Errno(EEXIST, "mkdir '" + std::string(name) + "'");
    auto dir = fs_->NewInode(S_IFDIR | (mode & 07777), uid_, gid);
    dir->nlink = 2;
    dir->parent = inode_;
    ++inode_->nlink;
    AddEntry(*inode_, name, dir);
    return dir->qid();
  }

  Result<wire::Qid> Symlink(std::string_view name, std::string_view target, uint32_t gid) override {
    std::lock_guard lock(fs_->mu);
    if (auto ok = CheckDirForNewName(name); !ok) return Unexpected(ok.error());
    if (target.empty()) return Errno(ENOENT, "empty symlink target");
    if (inode_->entries.contains(name)) return Errno(EEXIST, "symlink '" + std::string(name) + "'");
    auto link = fs_->NewInode(S_IFLNK | 0777, uid_, gid);
    link->nlink = 1;
    link->symlink_target = std::string(target);
    AddEntry(*inode_, name, link);
    return link->qid();
  }

  Result<wire::Qid> Mknod(std::string_view name, uint32_t mode, uint32_t major, uint32_t minor,
                          uint32_t gid) override {
    std::lock_guard lock(fs_->mu);
    if (auto ok = CheckDirForNewName(name); !ok) return Unexpected(ok.error());
    uint32_t type = (mode & S_IFMT) == 0 ? S_IFREG : mode & S_IFMT;
    if (type != S_IFREG && type != S_IFCHR && type != S_IFBLK && type != S_IFIFO &&
        type != S_IFSOCK) {
      return Errno(EINVAL, "mknod of that file type");
    }
    if (inode_->entries.contains(name)) return Errno(EEXIST, "mknod '" + std::string(name) + "'");
    auto node = fs_->NewInode(type | (mode & 07777), uid_, gid);
    node->nlink = 1;
    if (type == S_IFCHR || type == S_IFBLK) node->rdev = makedev(major, minor);
    AddEntry(*inode_, name, node);
    return node->qid();
  }

  Result<void> Link(std::string_view name, Node& target) override {
    auto* other = dynamic_cast<RamNode*>(&target);
    if (other == nullptr || other->fs_ != fs_) return Errno(EXDEV, "link across file systems");
    std::lock_guard lock(fs_->mu);
    if (auto ok = CheckDirForNewName(name); !ok) return ok;
    const std::shared_ptr<Inode>& file = other->inode_;
    if (file->is_dir()) return Errno(EPERM, "hard link to a directory");
    if (file->nlink == 0) return Errno(ENOENT, "link to a removed file");
    if (inode_->entries.contains(name)) return Errno(EEXIST, "link '" + std::string(name) + "'");
    ++file->nlink;
    AddEntry(*inode_, name, file);
    SetTimes(*file, false, true);
    return {};
  }

  Result<void> RenameAt(std::string_view old_name, Node& new_dir,
                        std::string_view new_name) override {
    auto* dst = dynamic_cast<RamNode*>(&new_dir);
    if (dst == nullptr || dst->fs_ != fs_) return Errno(EXDEV, "rename across file systems");
    std::lock_guard lock(fs_->mu);
    if (!inode_->is_dir()) return Errno(ENOTDIR, "renameat from a non-directory");
    if (IsDot(old_name)) return Errno(EINVAL, "rename '.' or '..'");
    if (auto ok = CheckName(old_name); !ok) return ok;
    auto it = inode_->entries.find(old_name);
    if (it == inode_->entries.end()) return Errno(ENOENT, "rename '" + std::string(old_name) + "'");
    return MoveEntry(*inode_, it, dst->inode_, new_name);
  }

  Result<void> UnlinkAt(std::string_view name, uint32_t flags) override {
    if (flags & ~kAtRemoveDir) return Errno(EINVAL, "unlinkat flags");
    bool want_dir = flags & kAtRemoveDir;
    std::lock_guard lock(fs_->mu);
    if (!inode_->is_dir()) return Errno(ENOTDIR, "unlinkat in a non-directory");
    if (name == ".") return Errno(want_dir ? EINVAL : EISDIR, "unlink '.'");
    if (name == "..") return Errno(want_dir ? ENOTEMPTY : EISDIR, "unlink '..'");
    if (auto ok = CheckName(name); !ok) return ok;
    auto it = inode_->entries.find(name);
    if (it == inode_->entries.end()) return Errno(ENOENT, "unlink '" + std::string(name) + "'");
    return Unlink(*inode_, it, want_dir);
  }

  Result<void> Rename(Node& new_dir, std::string_view new_name) override {
    auto* dst = dynamic_cast<RamNode*>(&new_dir);
    if (dst == nullptr || dst->fs_ != fs_) return Errno(EXDEV, "rename across file systems");
    std::lock_guard lock(fs_->mu);
    auto where = Locate();
    if (!where) return Unexpected(where.error());
    auto [parent, it] = *where;
    if (auto moved = MoveEntry(*parent, it, dst->inode_, new_name); !moved) return moved;
    parent_hint_ = dst->inode_;
    name_hint_ = std::string(new_name);
    return {};
  }

  Result<void> Remove() override {
    std::lock_guard lock(fs_->mu);
    auto where = Locate();
    if (!where) return Unexpected(where.error());
    auto [parent, it] = *where;
    return Unlink(*parent, it, inode_->is_dir());
  }

  Result<std::string> ReadLink() override {
    std::lock_guard lock(fs_->mu);
    if (inode_->type != S_IFLNK) return Errno(EINVAL, "readlink of a non-symlink");
    return inode_->symlink_target;
  }

  Result<wire::Rstatfs> StatFs() override {
    const Usage& usage = *fs_->usage;
    uint64_t blocks = usage.limit != 0
                          ? usage.limit / kPage
                          : static_cast<uint64_t>(std::max<long>(sysconf(_SC_PHYS_PAGES), 0)) *
                                std::max<long>(sysconf(_SC_PAGESIZE), 0) / kPage;
    uint64_t used = usage.bytes.load(std::memory_order_relaxed) / kPage;
    uint64_t inodes = usage.inodes.load(std::memory_order_relaxed);
    wire::Rstatfs r;
    r.type = kTmpfsMagic;
    r.bsize = kPage;
    r.blocks = blocks;
    r.bfree = r.bavail = blocks > used ? blocks - used : 0;
    r.ffree = UINT32_MAX;
    r.files = inodes + r.ffree;
    r.fsid = fs_->fsid;
    r.namelen = kMaxName;
    return r;
  }

  Result<void> Fsync(bool) override { return {}; }

  Result<uint8_t> Lock(const wire::Tlock& req) override {
    if (req.type > wire::kLockTypeUnlock) return Errno(EINVAL, "lock type");
    auto span = LockSpan(req.start, req.length);
    if (!span) return Unexpected(span.error());
    auto [start, end] = *span;
    std::lock_guard lock(fs_->mu);
    std::vector<LockRange>& locks = inode_->locks;
    if (req.type != wire::kLockTypeUnlock) {
      for (const LockRange& l : locks) {
        if (!l.SameOwner(req.proc_id, req.client_id) && l.Overlaps(start, end) &&
            (l.type == wire::kLockTypeWrite || req.type == wire::kLockTypeWrite)) {
          return static_cast<uint8_t>(kLockBlocked);
        }
      }
    }
    // The owner's locks over [start, end] are replaced (cut where they stick out).
    std::vector<LockRange> kept;
    for (LockRange& l : locks) {
      if (!l.SameOwner(req.proc_id, req.client_id) || !l.Overlaps(start, end)) {
        kept.push_back(std::move(l));
        continue;
      }
      if (l.start < start) kept.push_back({l.type, l.start, start - 1, l.proc_id, l.client_id});
      if (l.end > end) kept.push_back({l.type, end + 1, l.end, l.proc_id, l.client_id});
    }
    if (req.type != wire::kLockTypeUnlock) {
      kept.push_back({req.type, start, end, req.proc_id, std::string(req.client_id)});
      lock_owners_.emplace(std::string(req.client_id), req.proc_id);
    }
    locks = std::move(kept);
    return static_cast<uint8_t>(kLockSuccess);
  }

  Result<LockInfo> GetLock(const wire::Tgetlock& req) override {
    if (req.type != wire::kLockTypeRead && req.type != wire::kLockTypeWrite)
      return Errno(EINVAL, "getlock type");
    auto span = LockSpan(req.start, req.length);
    if (!span) return Unexpected(span.error());
    auto [start, end] = *span;
    std::lock_guard lock(fs_->mu);
    for (const LockRange& l : inode_->locks) {
      if (!l.SameOwner(req.proc_id, req.client_id) && l.Overlaps(start, end) &&
          (l.type == wire::kLockTypeWrite || req.type == wire::kLockTypeWrite)) {
        return LockInfo{l.type, l.start, LockLength(l), l.proc_id, l.client_id};
      }
    }
    return LockInfo{wire::kLockTypeUnlock, req.start, req.length, req.proc_id,
                    std::string(req.client_id)};
  }

  Result<std::string> GetXattr(std::string_view name) override {
    std::lock_guard lock(fs_->mu);
    const auto& xattrs = inode_->xattrs;
    if (name.empty()) {
      std::string list;
      for (const auto& [key, value] : xattrs) {
        list += key;
        list += '\0';
      }
      return list;
    }
    auto it = xattrs.find(name);
    if (it == xattrs.end()) return Errno(ENODATA, "xattr '" + std::string(name) + "'");
    return it->second;
  }

  Result<void> SetXattr(std::string_view name, std::string_view value, uint32_t flags) override {
    if (flags & ~(wire::kXattrCreate | wire::kXattrReplace)) return Errno(EINVAL, "setxattr flags");
    if (name.empty() || name.size() > kMaxName) return Errno(ERANGE, "xattr name length");
    if (value.size() > kMaxXattrValue) return Errno(E2BIG, "xattr value too large");
    std::lock_guard lock(fs_->mu);
    auto& xattrs = inode_->xattrs;
    auto it = xattrs.find(name);
    if (it != xattrs.end() && (flags & wire::kXattrCreate)) {
      return Errno(EEXIST, "xattr '" + std::string(name) + "' exists");
    }
    if (it == xattrs.end() && (flags & wire::kXattrReplace)) {
      return Errno(ENODATA, "xattr '" + std::string(name) + "'");
    }
    if (it == xattrs.end()) {
      xattrs.emplace(std::string(name), std::string(value));
    } else {
      it->second = std::string(value);
    }
    SetTimes(*inode_, false, true);
    return {};
  }

  Result<void> RemoveXattr(std::string_view name) override {
    std::lock_guard lock(fs_->mu);
    auto it = inode_->xattrs.find(name);
    if (it == inode_->xattrs.end()) return Errno(ENODATA, "xattr '" + std::string(name) + "'");
    inode_->xattrs.erase(it);
    SetTimes(*inode_, false, true);
    return {};
  }

 private:
  std::unique_ptr<RamNode> NewNode(std::shared_ptr<Inode> inode, std::weak_ptr<Inode> parent,
                                   std::string name) const {
    return std::make_unique<RamNode>(fs_, std::move(inode), std::move(parent), std::move(name),
                                     uid_);
  }

  // Checks that this node is a live directory and `name` could be added to it.
  Result<void> CheckDirForNewName(std::string_view name) const {
    if (!inode_->is_dir()) return Errno(ENOTDIR, "create in a non-directory");
    if (inode_->nlink == 0) return Errno(ENOENT, "create in a removed directory");
    if (IsDot(name)) return Errno(EEXIST, "create '.' or '..'");
    return CheckName(name);
  }

  // The directory entry naming this node's file (tree mutex held): for a directory its
  // one name; for a file the name it was reached by, or another of its names in that
  // directory if that one went.
  Result<std::pair<Inode*, EntryMap::iterator>> Locate() {
    if (inode_ == fs_->root) return Errno(EBUSY, "the root");
    std::shared_ptr<Inode> parent = inode_->is_dir() ? inode_->parent.lock() : parent_hint_.lock();
    if (!parent || inode_->nlink == 0) return Errno(ENOENT, "file was removed");
    auto it = parent->entries.find(name_hint_);
    if (it == parent->entries.end() || it->second.inode != inode_) {
      it = std::find_if(parent->entries.begin(), parent->entries.end(),
                        [&](const auto& e) { return e.second.inode == inode_; });
      if (it == parent->entries.end()) return Errno(ENOENT, "file was moved");
    }
    return std::pair{parent.get(), it};
  }

  // Destroyed after inode_, so the tree outlives every inode it holds.
  const std::shared_ptr<FsState> fs_;
  const std::shared_ptr<Inode> inode_;
  const uint32_t uid_;  // owner of files this node creates: the attaching identity

  // Guarded by fs_->mu: where this node was reached (Rename/Remove of a file) and the
  // lock owners that locked through it.
  std::weak_ptr<Inode> parent_hint_;
  std::string name_hint_;
  std::set<std::pair<std::string, uint32_t>> lock_owners_;

  // Set by Open/Create, which never run concurrently with other calls on this node.
  bool open_ = false;
  uint32_t open_flags_ = 0;
};

class RamFs final : public FileServer {
 public:
  explicit RamFs(std::shared_ptr<FsState> state) : state_(std::move(state)) {}

  Result<std::unique_ptr<Node>> Attach(const Identity& who, std::string_view) override {
    uint32_t uid = who.uid == wire::kNoUid ? 0 : who.uid;
    return std::unique_ptr<Node>(
        std::make_unique<RamNode>(state_, state_->root, std::weak_ptr<Inode>(), "", uid));
  }

 private:
  std::shared_ptr<FsState> state_;
};

}  // namespace

Result<std::unique_ptr<FileServer>> MakeRamFs(RamFsOptions options) {
  if (options.root_mode & ~07777u) return Errno(EINVAL, "ramfs root_mode");
  auto state = std::make_shared<FsState>(options);
  static std::atomic<uint64_t> instances{0};
  state->fsid = (static_cast<uint64_t>(getpid()) << 32) | instances.fetch_add(1);
  state->root = state->NewInode(S_IFDIR | options.root_mode, options.root_uid, options.root_gid);
  state->root->nlink = 2;
  state->root->parent = state->root;
  return std::unique_ptr<FileServer>(std::make_unique<RamFs>(std::move(state)));
}

}  // namespace ninefold::fs
