// NodeTable: inode numbers from qid paths, lookup counting, forget, and the fid an inode
// holds when the same file is walked to again.
#include "src/fuse/node_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace ninefold::fuse::internal {
namespace {

constexpr uint64_t kRootPath = 1000;

TEST(NodeTable, RootIsOneAndNeverForgotten) {
  NodeTable t(/*root_fid=*/7, kRootPath);
  EXPECT_EQ(t.FidOf(kRootIno), std::optional<Fid>(7));
  // Walking to the root again (a lookup of "." or "..") names inode 1 and keeps fid 7.
  NodeTable::Added a = t.Add(kRootPath, 8);
  EXPECT_EQ(a.ino, kRootIno);
  EXPECT_EQ(a.surplus, 8u);
  EXPECT_EQ(t.Forget(kRootIno, 100), std::nullopt);
  EXPECT_EQ(t.FidOf(kRootIno), std::optional<Fid>(7));
}

TEST(NodeTable, InodeIsTheQidPathAndCountsLookups) {
  NodeTable t(7, kRootPath);
  NodeTable::Added a = t.Add(42, 10);
  EXPECT_EQ(a.ino, 42u);
  EXPECT_EQ(a.surplus, wire::kNoFid);
  // The same file again (another name, a repeated lookup): same inode, the newest fid,
  // and the older one to clunk.
  NodeTable::Added b = t.Add(42, 11);
  EXPECT_EQ(b.ino, 42u);
  EXPECT_EQ(b.surplus, 10u);
  EXPECT_EQ(t.FidOf(42), std::optional<Fid>(11));
  EXPECT_EQ(t.Forget(42, 1), std::nullopt);  // one lookup left
  EXPECT_EQ(t.Forget(42, 1), std::optional<Fid>(11));
  EXPECT_EQ(t.FidOf(42), std::nullopt);
  EXPECT_EQ(t.Forget(42, 1), std::nullopt);  // unknown inode: nothing to do
}

TEST(NodeTable, PathsThatCannotBeInodesAreRemapped) {
  NodeTable t(7, kRootPath);
  NodeTable::Added zero = t.Add(0, 10);
  NodeTable::Added one = t.Add(1, 11);
  NodeTable::Added high = t.Add(uint64_t{1} << 63, 12);
  EXPECT_NE(zero.ino, 0u);
  EXPECT_NE(one.ino, kRootIno);
  EXPECT_NE(high.ino, zero.ino);
  EXPECT_NE(high.ino, one.ino);
  EXPECT_EQ(t.Add(1, 13).ino, one.ino);  // stable while known
  EXPECT_EQ(t.FidOf(one.ino), std::optional<Fid>(13));
  EXPECT_EQ(t.FidOf(kRootIno), std::optional<Fid>(7));
}

TEST(NodeTable, ForgetMoreThanKnownDropsTheNode) {
  NodeTable t(7, kRootPath);
  (void)t.Add(5, 10);
  (void)t.Add(5, 11);
  EXPECT_EQ(t.Forget(5, 5), std::optional<Fid>(11));
}

TEST(NodeTable, ClearReturnsEveryFidButTheRoot) {
  NodeTable t(7, kRootPath);
  (void)t.Add(5, 10);
  (void)t.Add(6, 11);
  std::vector<Fid> fids = t.Clear();
  std::sort(fids.begin(), fids.end());
  EXPECT_EQ(fids, (std::vector<Fid>{10, 11}));
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.FidOf(kRootIno), std::optional<Fid>(7));
}

// READDIRPLUS asks the fid an inode already holds for fresh attributes and counts one
// more lookup on it: the fid must stay, and never come back as a surplus to clunk.
TEST(NodeTable, KnownPathKeepsItsFidAndCountsTheLookup) {
  NodeTable t(7, kRootPath);
  EXPECT_EQ(t.FidOfPath(42), std::nullopt);
  (void)t.Add(42, 10);
  EXPECT_EQ(t.FidOfPath(42), std::optional<Fid>(10));
  NodeTable::Added again = t.Add(42, 10);
  EXPECT_EQ(again.ino, 42u);
  EXPECT_EQ(again.surplus, wire::kNoFid);
  EXPECT_EQ(t.Forget(42, 1), std::nullopt);  // two lookups were counted
  EXPECT_EQ(t.Forget(42, 1), std::optional<Fid>(10));
  EXPECT_EQ(t.FidOfPath(42), std::nullopt);
}

TEST(NodeTable, FidOfPathFollowsRemappedPathsButNotTheRoot) {
  NodeTable t(7, kRootPath);
  NodeTable::Added one = t.Add(1, 11);
  EXPECT_EQ(t.FidOfPath(1), std::optional<Fid>(11));
  EXPECT_EQ(t.FidOfPath(one.ino), std::nullopt);  // an inode number is not a qid path
  EXPECT_EQ(t.FidOfPath(kRootPath), std::nullopt);
  (void)t.Forget(one.ino, 1);
  EXPECT_EQ(t.FidOfPath(1), std::nullopt);
}

}  // namespace
}  // namespace ninefold::fuse::internal
