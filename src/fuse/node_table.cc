#include "src/fuse/node_table.h"

namespace ninefold::fuse::internal {

NodeTable::NodeTable(Fid root_fid, uint64_t root_path) : root_path_(root_path) {
  // The root is never forgotten: its lookup count stays above zero.
  nodes_[kRootIno] = Node{root_path, root_fid, 1};
}

std::optional<Fid> NodeTable::FidOf(uint64_t ino) const {
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return std::nullopt;
  return it->second.fid;
}

std::optional<Fid> NodeTable::FidOfPath(uint64_t path) const {
  if (path == root_path_) return std::nullopt;
  uint64_t ino = path;
  if (auto it = remapped_.find(path); it != remapped_.end()) ino = it->second;
  auto it = nodes_.find(ino);
  if (it == nodes_.end() || it->second.path != path) return std::nullopt;
  return it->second.fid;
}

uint64_t NodeTable::InoFor(uint64_t path) {
  if (path == root_path_) return kRootIno;
  // Paths that collide with FUSE's reserved numbers, or that already sit in the
  // reserved range, get a number of their own for as long as the table holds them.
  bool odd = path <= kRootIno || path >= (uint64_t{1} << 63);
  if (!odd) {
    auto it = nodes_.find(path);
    if (it == nodes_.end() || it->second.path == path) return path;
  }
  auto it = remapped_.find(path);
  if (it != remapped_.end()) return it->second;
  uint64_t ino = next_reserved_++;
  remapped_[path] = ino;
  return ino;
}

NodeTable::Added NodeTable::Add(uint64_t path, Fid fid) {
  uint64_t ino = InoFor(path);
  auto [it, inserted] = nodes_.try_emplace(ino, Node{path, fid, 0});
  it->second.lookups++;
  if (inserted || ino == kRootIno) return {ino, inserted ? wire::kNoFid : fid};
  if (it->second.fid == fid) return {ino, wire::kNoFid};
  // The newest walk wins: servers whose fids remember a path (diod) leave an older fid
  // naming a path that a rename or unlink has since taken away.
  Fid old = it->second.fid;
  it->second.fid = fid;
  return {ino, old};
}

std::optional<Fid> NodeTable::Forget(uint64_t ino, uint64_t n) {
  if (ino == kRootIno) return std::nullopt;
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return std::nullopt;
  Node& node = it->second;
  node.lookups = n >= node.lookups ? 0 : node.lookups - n;
  if (node.lookups > 0) return std::nullopt;
  Fid fid = node.fid;
  remapped_.erase(node.path);
  nodes_.erase(it);
  return fid;
}

std::vector<Fid> NodeTable::Clear() {
  std::vector<Fid> fids;
  for (const auto& [ino, node] : nodes_) {
    if (ino != kRootIno) fids.push_back(node.fid);
  }
  Node root = nodes_[kRootIno];
  nodes_.clear();
  remapped_.clear();
  nodes_[kRootIno] = root;
  return fids;
}

}  // namespace ninefold::fuse::internal
