// Directory reads: READDIR from the entries of a Treaddir, and READDIRPLUS, which adds
// each entry's inode and attributes (the lookups `ls -l` would make, all in one round
// trip).
#include <cerrno>
#include <cstring>

#include "src/fuse/filesystem.h"

namespace ninefold::fuse::internal {

namespace {
bool IsDots(const std::string& name) { return name == "." || name == ".."; }
}  // namespace

void Filesystem::Readdir(fuse_req_t req, Handle* h, size_t size, off_t off, bool plus) {
  uint64_t want = static_cast<uint64_t>(off);
  // Continue from the buffered entries when the kernel asks for the next one there.
  for (size_t i = 0; i < h->entries.size(); ++i) {
    uint64_t at = i == 0 ? h->first_offset : h->entries[i - 1].offset;
    if (at == want) return ReplyDir(req, h, i, size, plus);
  }
  ReadMore(req, h, size, want, plus);
}

void Filesystem::ReadMore(fuse_req_t req, Handle* h, size_t size, uint64_t off, bool plus) {
  CallPtr call = Begin(req);
  session_->AsyncReaddir(
      h->fid, off,
      Bind(call, [this, req, call, h, size, off, plus](Result<std::vector<client::DirEntry>> r) {
        if (!r) return Fail(req, r.error());
        h->entries = std::move(*r);
        h->first_offset = off;
        ReplyDir(req, h, 0, size, plus);
      }));
}

void Filesystem::ReplyDir(fuse_req_t req, Handle* h, size_t index, size_t size, bool plus) {
  if (plus) return ReplyDirPlus(req, h, index, size);
  std::vector<char> buf(size);
  size_t used = 0;
  for (size_t i = index; i < h->entries.size(); ++i) {
    const client::DirEntry& d = h->entries[i];
    struct stat st = {};
    st.st_ino = d.qid.path;
    st.st_mode = static_cast<mode_t>(d.type) << 12;
    size_t need = fuse_add_direntry(req, buf.data() + used, size - used, d.name.c_str(), &st,
                                    static_cast<off_t>(d.offset));
    if (need > size - used) break;
    used += need;
  }
  fuse_reply_buf(req, buf.data(), used);
}

// The kernel counts one lookup for every entry it receives with a nonzero inode, except
// "." and ".." (fuse_lowlevel.h): exactly those are registered in the node table. So only
// the entries that fit in this reply are looked up (the first one that does not fit
// comes again in the next READDIRPLUS), "." and ".." go without an inode, and if the
// reply does not reach the kernel (an interrupted request) the lookups are undone.
// An inode the table holds already is asked for its attributes through its own fid (one
// Tgetattr); others, and those whose fid no longer names them (a path-based server after
// a rename), are walked to (Probe). All of them at once.
void Filesystem::ReplyDirPlus(fuse_req_t req, Handle* h, size_t index, size_t size) {
  struct Item {
    client::DirEntry entry;
    std::optional<Result<Probed>> found;  // nullopt: not looked up
    bool borrowed = false;                // found.fid is the one the table holds
  };
  struct Batch {
    std::vector<Item> items;
    size_t pending = 1;  // one for the loop below, so nothing finishes before it ends
  };
  auto b = std::make_shared<Batch>();
  size_t fits = 0;
  for (size_t i = index; i < h->entries.size(); ++i) {
    const client::DirEntry& d = h->entries[i];
    size_t need = fuse_add_direntry_plus(req, nullptr, 0, d.name.c_str(), nullptr, 0);
    if (need > size - fits) break;
    fits += need;
    b->items.push_back(Item{.entry = d});
  }
  CallPtr call = Begin(req);
  auto joined = [this, call, b, size] {
    if (--b->pending > 0) return;
    fuse_req_t r = call->req;
    auto usable = [this](const Item& item) {
      if (!item.found || !*item.found) return false;
      // A borrowed fid counts only while the table still holds it (no FORGET since).
      return !item.borrowed || nodes_.FidOfPath(item.entry.qid.path) == (*item.found)->fid;
    };
    // An interrupt or a lost server fails the whole reply. An entry that cannot be
    // looked up (removed since the Treaddir, not searchable) is listed without an inode:
    // the kernel looks it up itself when asked.
    for (const Item& item : b->items) {
      if (!item.found || *item.found) continue;
      int err = Errno(item.found->error());
      if (err != EINTR && err != EIO) continue;
      for (const Item& other : b->items) {
        if (other.found && *other.found && !other.borrowed) Clunk((*other.found)->fid);
      }
      return (void)fuse_reply_err(r, err);
    }
    std::vector<char> buf(size);
    std::vector<fuse_ino_t> counted;
    size_t used = 0;
    for (const Item& item : b->items) {
      const client::DirEntry& d = item.entry;
      fuse_entry_param e = {};
      if (usable(item)) {
        e = Register(**item.found);
        counted.push_back(e.ino);
      } else {
        if (item.found && *item.found && !item.borrowed) Clunk((*item.found)->fid);
        e.attr.st_ino = d.qid.path;
        e.attr.st_mode = static_cast<mode_t>(d.type) << 12;
      }
      used += fuse_add_direntry_plus(r, buf.data() + used, size - used, d.name.c_str(), &e,
                                     static_cast<off_t>(d.offset));
    }
    if (fuse_reply_buf(r, buf.data(), used) != 0) {
      for (fuse_ino_t ino : counted) Forget(ino, 1);
    }
  };
  // The walks start from the directory's own fid (its open fid cannot be walked).
  std::optional<Fid> dir = nodes_.FidOf(h->ino);
  for (size_t i = 0; dir && i < b->items.size(); ++i) {
    Item& item = b->items[i];
    if (IsDots(item.entry.name)) continue;
    b->pending++;
    auto probe = [this, call, b, i, dir = *dir, joined] {
      Probe(call, dir, b->items[i].entry.name, [b, i, joined](Result<Probed> p) {
        b->items[i].found = std::move(p);
        b->items[i].borrowed = false;
        joined();
      });
    };
    std::optional<Fid> known = nodes_.FidOfPath(item.entry.qid.path);
    if (!known) {
      probe();
      continue;
    }
    session_->AsyncGetattr(
        *known, client::kGetattrBasic,
        BindEach(call, [this, b, i, fid = *known, joined, probe](Result<wire::Rgetattr> a) {
          Item& it = b->items[i];
          if (a && a->qid.path == it.entry.qid.path && nodes_.FidOfPath(a->qid.path) == fid) {
            it.found = Probed{fid, *a};
            it.borrowed = true;
            return joined();
          }
          if (!a && Errno(a.error()) == EINTR) {
            it.found = Unexpected(a.error());
            return joined();
          }
          probe();  // gone, renamed, or forgotten meanwhile: walk to the name
        }));
  }
  joined();
}

}  // namespace ninefold::fuse::internal
