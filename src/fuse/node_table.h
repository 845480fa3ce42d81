// Private to the fuse layer: which inode the kernel knows stands for which fid.
//
// Every inode the kernel holds (it counts lookups and sends forget) owns one walked,
// unopened fid. Inode numbers are the qids' paths, so two names for one file (hard
// links) and repeated lookups give the same inode; the root is FUSE_ROOT_ID (1). A qid
// path that cannot be an inode number (0, 1, or the root's own, which 1 stands for)
// gets one from a reserved range instead.
//
// Threading: none; the table lives on the session's io thread (filesystem.h).
#ifndef NINEFOLD_SRC_FUSE_NODE_TABLE_H_
#define NINEFOLD_SRC_FUSE_NODE_TABLE_H_

#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "ninefold/client/session.h"

namespace ninefold::fuse::internal {

using Fid = client::Session::Fid;
constexpr uint64_t kRootIno = 1;  // FUSE_ROOT_ID

class NodeTable {
 public:
  NodeTable(Fid root_fid, uint64_t root_path);

  // The fid standing for `ino`; nullopt for an inode the table does not hold.
  std::optional<Fid> FidOf(uint64_t ino) const;

  // The fid of the inode the table holds for the file `path` names; nullopt if none, and
  // for the root.
  std::optional<Fid> FidOfPath(uint64_t path) const;

  struct Added {
    uint64_t ino;
    Fid surplus;  // a fid the caller must clunk, or kNoFid
  };
  // The kernel learns (once more) of the file `path` names, just walked to `fid`. An
  // inode already known takes the new fid (the one just walked is surely valid) and its
  // old one is returned as the surplus; the root keeps its fid. Adding the fid the
  // inode already holds only counts the lookup.
  Added Add(uint64_t path, Fid fid);

  // The kernel forgets `n` lookups of `ino`; returns the fid to clunk when none remain.
  std::optional<Fid> Forget(uint64_t ino, uint64_t n);

  // Empties the table; returns every fid it held except the root's.
  std::vector<Fid> Clear();

  size_t size() const { return nodes_.size(); }

 private:
  struct Node {
    uint64_t path;
    Fid fid;
    uint64_t lookups;
  };
  uint64_t InoFor(uint64_t path);

  const uint64_t root_path_;
  std::unordered_map<uint64_t, Node> nodes_;         // by inode number
  std::unordered_map<uint64_t, uint64_t> remapped_;  // qid path -> inode, for odd paths
  uint64_t next_reserved_ = uint64_t{1} << 63;
};

}  // namespace ninefold::fuse::internal

#endif  // NINEFOLD_SRC_FUSE_NODE_TABLE_H_
