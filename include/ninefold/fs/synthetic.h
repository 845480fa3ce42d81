// Synthetic files: a file tree whose files are callbacks, served like any other back end.
//
//   auto dir = SyntheticDir::Make();
//   dir->AddFile("version", ReadOnly([] { return std::string("ninefold 0.1.0\n"); }));
//   dir->AddFile("zero", {.read = [](uint64_t, std::span<std::byte> out) -> Result<size_t> {
//                           std::ranges::fill(out, std::byte{0});
//                           return out.size();
//                         }});
//   dir->AddFile("null", {.write = [](uint64_t, std::span<const std::byte> d) -> Result<size_t> {
//                           return d.size();
//                         }});
//   dir->AddFile("ctl", WriteOnly([&](std::string_view cmd) -> Result<void> { ... }));
//   auto stats = dir->AddDir("stats");          // directories nest
//   std::unique_ptr<FileServer> server = MakeSyntheticServer(dir);
//
// A file is a SyntheticFile: an optional `read` and `write` callback, each called once per
// Tread/Twrite with the request's offset, or a `contents` function whose result is taken
// once per open (on the first read) and served from that snapshot, so a reader that needs
// several reads sees one consistent text (diod's ctl files behave the same way).
//
// What clients see: mode 0444, 0222 or 0666 by which callbacks exist (`contents` counts as
// read), directories 0555, owned by the server process's euid/egid; qid paths unique in
// the process and never reused; sizes 0 except for `contents` files, whose size is the
// length of their text (of the snapshot for an open node); readdir lists "." and "..",
// then entries in the order they were added. Opening for reading a file without `read`
// or `contents`, or for writing a file without `write`, fails with EACCES; SetAttr on a
// writable file succeeds and changes nothing (so `echo x > file` truncation works), else
// EPERM. Nothing else modifies the tree through 9P.
//
// Thread safety: callbacks run on the server's io threads, several at once (even for
// one file): they synchronize whatever they share. AddFile/AddDir/Remove may be called
// while the tree is being served; a node already walked to a removed entry keeps working.
#ifndef NINEFOLD_FS_SYNTHETIC_H_
#define NINEFOLD_FS_SYNTHETIC_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ninefold/base/result.h"
#include "ninefold/fs/file_server.h"

namespace ninefold::fs {

struct SyntheticFile {
  // Fills up to out.size() bytes read at `offset`; returns the count (0: end of file).
  std::function<Result<size_t>(uint64_t offset, std::span<std::byte> out)> read;
  // Consumes `data` written at `offset`; returns the count taken.
  std::function<Result<size_t>(uint64_t offset, std::span<const std::byte> data)> write;
  // The whole text of the file, taken once per open; used instead of `read` when set.
  std::function<Result<std::string>()> contents;
  // Set to false when the callbacks return at once (no sleeping, no I/O): the server
  // may then answer in its read loop, without counting the call as one that may block.
  bool may_block = true;
};

// A file whose text is `contents()` (see SyntheticFile::contents).
SyntheticFile ReadOnly(std::function<Result<std::string>()> contents);
// A file where each Twrite's data is one command: `command(data)`; the write then counts
// as complete. The offset is ignored.
SyntheticFile WriteOnly(std::function<Result<void>(std::string_view data)> command);
// Both of the above in one file.
SyntheticFile ReadWrite(std::function<Result<std::string>()> contents,
                        std::function<Result<void>(std::string_view data)> command);

class SyntheticDir : public std::enable_shared_from_this<SyntheticDir> {
 public:
  // One entry: a file or a subdirectory, with its qid path. Immutable once made.
  struct Entry {
    uint64_t path = 0;
    std::string name;
    SyntheticFile file;                 // when dir is null
    std::shared_ptr<SyntheticDir> dir;  // a subdirectory
    int64_t mtime_sec = 0;              // when it was added
  };

  static std::shared_ptr<SyntheticDir> Make();

  // Adds a file; replaces an existing entry of that name.
  void AddFile(std::string_view name, SyntheticFile file);
  // Adds and returns an empty subdirectory (or returns `name` if it is a directory).
  std::shared_ptr<SyntheticDir> AddDir(std::string_view name);
  // Removes `name`; false when there was none.
  bool Remove(std::string_view name);

  // The entry called `name`, or null.
  std::shared_ptr<const Entry> Find(std::string_view name) const;
  // Entries in the order they were added, with their readdir ids (1 and 2 are "." and
  // ".."): those with an id greater than `after`.
  std::vector<std::pair<uint64_t, std::shared_ptr<const Entry>>> ListAfter(uint64_t after) const;

  uint64_t path() const { return path_; }
  // When an entry was last added or removed.
  int64_t mtime_sec() const;

 private:
  struct PassKey {};

 public:
  explicit SyntheticDir(PassKey);  // for Make() only

 private:
  void Add(std::shared_ptr<Entry> entry);

  const uint64_t path_;
  mutable std::mutex mu_;  // guards the maps: the tree may change while it is served
  std::map<uint64_t, std::shared_ptr<const Entry>> by_id_;  // readdir id -> entry
  std::map<std::string, uint64_t, std::less<>> ids_;        // name -> readdir id
  uint64_t next_id_ = 3;
  int64_t mtime_sec_ = 0;
};

// Serves `root` (every aname attaches to it).
std::unique_ptr<FileServer> MakeSyntheticServer(std::shared_ptr<SyntheticDir> root);

}  // namespace ninefold::fs

#endif  // NINEFOLD_FS_SYNTHETIC_H_
