// How the fast check reads a pool (lib/thin/check/fast_check.cc): on an
// O_DIRECT block device every request is a device round trip, so internal
// mapping nodes are read in batches (a node's internal children together,
// each tree's height saying which children are leaves) rather than one
// 4 KiB request each, and leaves in runs of up to 1 MiB. Verdicts are covered
// elsewhere (check_fast_path_test.cc); this is about the requests.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "persistent-data/block_cache.h"
#include "persistent-data/btree_walk.h"
#include "support/metadata_support.h"
#include "support/test_support.h"
#include "thin/check/fast_check.h"
#include "thin/format/superblock.h"
#include "thin/format/thin_trees.h"

namespace {

using pdata::block_address;

// Internal nodes and leaves of every device's mapping tree (distinct).
struct tree_nodes : pdata::btree_visitor {
  std::set<block_address> internal, leaves;
  bool visit_node(block_address b, const pdata::btree_node_view &n, const pdata::key_range &, unsigned) override {
    if (n.is_leaf()) return leaves.insert(b).second;
    return internal.insert(b).second;
  }
  void visit_leaf(block_address, const pdata::btree_node_view &, const pdata::key_range &) override {}
  void damage(const pdata::btree_damage &) override { ADD_FAILURE() << "damaged mapping tree"; }
};

TEST(check_reads, internal_nodes_come_in_batches_and_leaves_in_large_runs_not_one_request_each) {
  test::temp_dir d;
  const std::string xml = d.file("pool.xml"), meta = d.file("pool.meta");
  // Three trees of three levels (some subtrees shared): 27 internal nodes
  // and 5,955 leaves in all.
  test::generate_xml({"--seed", "11", "--devices", "2", "--mappings", "1000000", "--snapshots", "1"}, xml);
  test::restore_with_tool(xml, meta, 256ull << 20);

  auto file = test::open_read_only(meta);
  test::counting_block_io io(*file);
  auto sb = thin::read_superblock(io);
  tree_nodes nodes;
  {
    pdata::block_cache cache(io);
    auto top = thin::read_mapping_top_level(cache, sb.mapping_root,
                                            [](const pdata::btree_damage &) { ADD_FAILURE() << "damaged top level"; });
    ASSERT_EQ(top.size(), 3u);
    for (auto &[dev, root] : top) pdata::walk_btree(cache, root, 8, nodes);
  }
  ASSERT_GE(nodes.internal.size(), 20u);
  ASSERT_GE(nodes.leaves.size(), 4000u);

  io.read_requests.clear();
  test::recording_reporter r;
  unsigned stages = 0;
  std::vector<thin::damage> hints;
  ASSERT_TRUE(thin::detail::fast_check(io, sb, sb, r, stages, hints));

  // Single-block requests for internal nodes: the height's leftmost descent
  // and the root of each tree, not one per node (before: every internal
  // node, and one more for its first child's header).
  std::size_t single_internal = 0, leaf_requests = 0;
  for (auto &[b, count] : io.read_requests) {
    if (count == 1 && nodes.internal.count(b)) single_internal++;
    if (nodes.leaves.count(b)) leaf_requests++;
  }
  EXPECT_LE(single_internal, 3u * 3u) << "of " << nodes.internal.size() << " internal nodes";
  EXPECT_LE(leaf_requests, nodes.leaves.size() / 64) << "requests starting at a leaf, of " << nodes.leaves.size();
  // Every internal node was read (once, or again where shared).
  for (block_address b : nodes.internal) EXPECT_GE(io.reads[b], 1u) << "internal node " << b << " never read";
}

}  // namespace
