// walk_btree over small B-trees built by hand in a memory_block_io: leaves in
// key order, and a damage record (block + lost key range) for every node that
// cannot be used, without stopping the walk.
#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "persistent-data/block_cache.h"
#include "persistent-data/btree_disk.h"
#include "persistent-data/btree_node.h"
#include "persistent-data/btree_walk.h"
#include "persistent-data/checksum.h"
#include "persistent-data/endian.h"
#include "support/metadata_support.h"

namespace {

using pdata::block_address;

struct node_opts {
  std::optional<block_address> claimed_blocknr;  // default: the real location
  bool bad_checksum = false;
};

// Writes a node with value size 8 (internal: child pointers; leaf: values).
void write_node(pdata::memory_block_io &io, block_address loc, bool internal, const std::vector<uint64_t> &keys,
                const std::vector<uint64_t> &values, node_opts o = {}) {
  ASSERT_EQ(keys.size(), values.size());
  pdata::block_buffer b{};
  unsigned char *p = b.raw();
  const uint32_t max = pdata::btree_max_entries(8);
  pdata::store_le32(p + 4, internal ? pdata::internal_node : pdata::leaf_node);
  pdata::store_le64(p + 8, o.claimed_blocknr.value_or(loc));
  pdata::store_le32(p + 16, static_cast<uint32_t>(keys.size()));
  pdata::store_le32(p + 20, max);
  pdata::store_le32(p + 24, 8);
  for (std::size_t i = 0; i < keys.size(); i++) {
    pdata::store_le64(p + 32 + 8 * i, keys[i]);
    pdata::store_le64(p + 32 + 8 * std::size_t(max) + 8 * i, values[i]);
  }
  pdata::stamp_checksum(p, pdata::checksum_salt::btree_node);
  if (o.bad_checksum) p[0] ^= 0xFF;
  io.write(loc, p);
}

void leaf(pdata::memory_block_io &io, block_address loc, const std::vector<uint64_t> &keys, node_opts o = {}) {
  std::vector<uint64_t> values;
  for (auto k : keys) values.push_back(k * 10);
  write_node(io, loc, false, keys, values, o);
}

void internal(pdata::memory_block_io &io, block_address loc, const std::vector<uint64_t> &keys,
              const std::vector<uint64_t> &children, node_opts o = {}) {
  write_node(io, loc, true, keys, children, o);
}

struct recorder : pdata::btree_visitor {
  std::vector<uint64_t> keys;            // every leaf key, in visiting order
  std::vector<uint64_t> values;
  std::vector<block_address> leaves;     // leaf blocks, in visiting order
  std::vector<block_address> offered;    // every visit_node call
  std::vector<block_address> left;       // leave_node calls
  std::vector<pdata::btree_damage> damages;
  bool descend_once = false;             // refuse to descend into nodes seen before
  std::vector<block_address> seen;

  bool visit_node(block_address b, const pdata::btree_node_view &, const pdata::key_range &, unsigned) override {
    offered.push_back(b);
    if (descend_once) {
      for (auto s : seen)
        if (s == b) return false;
      seen.push_back(b);
    }
    return true;
  }
  void visit_leaf(block_address b, const pdata::btree_node_view &n, const pdata::key_range &) override {
    leaves.push_back(b);
    for (uint32_t i = 0; i < n.nr_entries(); i++) {
      keys.push_back(n.key(i));
      values.push_back(n.value64(i));
    }
  }
  void leave_node(block_address b, const pdata::btree_node_view &) override { left.push_back(b); }
  void damage(const pdata::btree_damage &d) override { damages.push_back(d); }
};

std::vector<uint64_t> range(uint64_t a, uint64_t b) {
  std::vector<uint64_t> v;
  for (uint64_t k = a; k < b; k++) v.push_back(k);
  return v;
}

std::string damage_list(const recorder &r) {
  std::string s;
  for (auto &d : r.damages) s += std::to_string(d.block) + " " + pdata::to_string(d.keys) + ": " + d.what + "\n";
  return s;
}

TEST(btree_walk, a_single_leaf_is_visited_with_all_its_entries) {
  pdata::memory_block_io io(8);
  leaf(io, 3, {1, 5, 9});
  pdata::block_cache cache(io);
  recorder r;
  pdata::walk_btree(cache, 3, 8, r);
  EXPECT_TRUE(r.damages.empty()) << damage_list(r);
  EXPECT_EQ(r.keys, (std::vector<uint64_t>{1, 5, 9}));
  EXPECT_EQ(r.values, (std::vector<uint64_t>{10, 50, 90}));
  EXPECT_EQ(r.leaves, std::vector<block_address>{3});
  EXPECT_EQ(r.offered, std::vector<block_address>{3});
  EXPECT_EQ(r.left, std::vector<block_address>{3});
}

TEST(btree_walk, an_empty_leaf_root_is_a_valid_empty_tree) {
  pdata::memory_block_io io(4);
  leaf(io, 1, {});
  pdata::block_cache cache(io);
  recorder r;
  pdata::walk_btree(cache, 1, 8, r);
  EXPECT_TRUE(r.damages.empty()) << damage_list(r);
  EXPECT_TRUE(r.keys.empty());
  EXPECT_EQ(r.leaves, std::vector<block_address>{1});
}

TEST(btree_walk, a_two_level_tree_visits_leaves_in_key_order) {
  pdata::memory_block_io io(16);
  // Children are deliberately placed at descending block numbers.
  leaf(io, 9, range(0, 10));
  leaf(io, 7, range(10, 20));
  leaf(io, 5, range(25, 30));
  internal(io, 2, {0, 10, 20}, {9, 7, 5});
  pdata::block_cache cache(io);
  recorder r;
  pdata::walk_btree(cache, 2, 8, r);
  EXPECT_TRUE(r.damages.empty()) << damage_list(r);
  std::vector<uint64_t> want = range(0, 20);
  for (auto k : range(25, 30)) want.push_back(k);
  EXPECT_EQ(r.keys, want);
  EXPECT_EQ(r.leaves, (std::vector<block_address>{9, 7, 5}));
  EXPECT_EQ(r.offered, (std::vector<block_address>{2, 9, 7, 5}));
  // leave_node comes after the children: the root last.
  EXPECT_EQ(r.left, (std::vector<block_address>{9, 7, 5, 2}));
}

TEST(btree_walk, a_three_level_tree_visits_leaves_in_key_order) {
  pdata::memory_block_io io(32);
  leaf(io, 10, {1, 2});
  leaf(io, 11, {5, 6});
  leaf(io, 12, {100, 101});
  leaf(io, 13, {200});
  internal(io, 20, {0, 5}, {10, 11});
  internal(io, 21, {100, 200}, {12, 13});
  internal(io, 30, {0, 100}, {20, 21});
  pdata::block_cache cache(io);
  recorder r;
  pdata::walk_btree(cache, 30, 8, r);
  EXPECT_TRUE(r.damages.empty()) << damage_list(r);
  EXPECT_EQ(r.keys, (std::vector<uint64_t>{1, 2, 5, 6, 100, 101, 200}));
}

TEST(btree_walk, a_node_with_a_bad_checksum_is_reported_with_its_key_range_and_siblings_are_still_walked) {
  pdata::memory_block_io io(16);
  leaf(io, 4, range(0, 5));
  leaf(io, 5, range(10, 15), {.claimed_blocknr = std::nullopt, .bad_checksum = true});
  leaf(io, 6, range(20, 25));
  internal(io, 1, {0, 10, 20}, {4, 5, 6});
  pdata::block_cache cache(io);
  recorder r;
  pdata::walk_btree(cache, 1, 8, r);
  ASSERT_EQ(r.damages.size(), 1u) << damage_list(r);
  EXPECT_EQ(r.damages[0].block, 5u);
  EXPECT_EQ(r.damages[0].keys.begin, 10u);
  ASSERT_TRUE(r.damages[0].keys.end.has_value());
  EXPECT_EQ(*r.damages[0].keys.end, 20u);
  EXPECT_NE(r.damages[0].what.find("checksum"), std::string::npos) << r.damages[0].what;
  std::vector<uint64_t> want = range(0, 5);
  for (auto k : range(20, 25)) want.push_back(k);
  EXPECT_EQ(r.keys, want);
  // The damaged node is never offered to the visitor.
  EXPECT_EQ(r.offered, (std::vector<block_address>{1, 4, 6}));
}

TEST(btree_walk, a_bad_root_is_reported_as_losing_every_key) {
  pdata::memory_block_io io(4);
  leaf(io, 2, {1, 2, 3}, {.claimed_blocknr = std::nullopt, .bad_checksum = true});
  pdata::block_cache cache(io);
  recorder r;
  pdata::walk_btree(cache, 2, 8, r);
  ASSERT_EQ(r.damages.size(), 1u);
  EXPECT_EQ(r.damages[0].block, 2u);
  EXPECT_EQ(r.damages[0].keys.begin, 0u);
  EXPECT_FALSE(r.damages[0].keys.end.has_value());
  EXPECT_TRUE(r.keys.empty());
}

TEST(btree_walk, a_node_claiming_another_block_number_is_reported) {
  pdata::memory_block_io io(16);
  leaf(io, 4, range(0, 5));
  leaf(io, 5, range(10, 15), {.claimed_blocknr = 7, .bad_checksum = false});
  internal(io, 1, {0, 10}, {4, 5});
  pdata::block_cache cache(io);
  recorder r;
  pdata::walk_btree(cache, 1, 8, r);
  ASSERT_EQ(r.damages.size(), 1u) << damage_list(r);
  EXPECT_EQ(r.damages[0].block, 5u);
  EXPECT_EQ(r.damages[0].keys.begin, 10u);
  EXPECT_FALSE(r.damages[0].keys.end.has_value());
  EXPECT_NE(r.damages[0].what.find("7"), std::string::npos) << r.damages[0].what;
  EXPECT_EQ(r.keys, range(0, 5));
}

TEST(btree_walk, keys_out_of_order_in_a_leaf_are_reported) {
  pdata::memory_block_io io(8);
  leaf(io, 3, {1, 7, 4});
  pdata::block_cache cache(io);
  recorder r;
  pdata::walk_btree(cache, 3, 8, r);
  ASSERT_EQ(r.damages.size(), 1u) << damage_list(r);
  EXPECT_EQ(r.damages[0].block, 3u);
  EXPECT_NE(r.damages[0].what.find("order"), std::string::npos) << r.damages[0].what;
  EXPECT_TRUE(r.keys.empty());
}

TEST(btree_walk, duplicate_keys_in_an_internal_node_are_reported) {
  pdata::memory_block_io io(8);
  leaf(io, 4, {1});
  leaf(io, 5, {6});
  internal(io, 2, {0, 0}, {4, 5});
  pdata::block_cache cache(io);
  recorder r;
  pdata::walk_btree(cache, 2, 8, r);
  ASSERT_EQ(r.damages.size(), 1u) << damage_list(r);
  EXPECT_EQ(r.damages[0].block, 2u);
  EXPECT_TRUE(r.keys.empty());
}

TEST(btree_walk, child_keys_outside_the_parent_range_are_reported_with_the_lost_range) {
  pdata::memory_block_io io(16);
  leaf(io, 4, {0, 3, 15});  // 15 belongs to the next child's range [10, 20)
  leaf(io, 5, {10, 12});
  leaf(io, 6, {20, 30});
  internal(io, 1, {0, 10, 20}, {4, 5, 6});
  pdata::block_cache cache(io);
  recorder r;
  pdata::walk_btree(cache, 1, 8, r);
  ASSERT_EQ(r.damages.size(), 1u) << damage_list(r);
  EXPECT_EQ(r.damages[0].block, 4u);
  EXPECT_EQ(r.damages[0].keys.begin, 0u);
  ASSERT_TRUE(r.damages[0].keys.end.has_value());
  EXPECT_EQ(*r.damages[0].keys.end, 10u);
  EXPECT_EQ(r.keys, (std::vector<uint64_t>{10, 12, 20, 30}));
}

TEST(btree_walk, a_child_key_below_the_parent_key_is_reported) {
  pdata::memory_block_io io(16);
  leaf(io, 4, {0, 3});
  leaf(io, 5, {8, 12});  // parent promises [10, -)
  internal(io, 1, {0, 10}, {4, 5});
  pdata::block_cache cache(io);
  recorder r;
  pdata::walk_btree(cache, 1, 8, r);
  ASSERT_EQ(r.damages.size(), 1u) << damage_list(r);
  EXPECT_EQ(r.damages[0].block, 5u);
  EXPECT_EQ(r.damages[0].keys.begin, 10u);
  EXPECT_FALSE(r.damages[0].keys.end.has_value());
  EXPECT_EQ(r.keys, (std::vector<uint64_t>{0, 3}));
}

TEST(btree_walk, a_child_pointer_beyond_the_device_is_reported_without_reading_it) {
  pdata::memory_block_io io(8);
  leaf(io, 4, {1, 2});
  internal(io, 1, {0, 50}, {4, 1000});
  pdata::block_cache cache(io);
  recorder r;
  pdata::walk_btree(cache, 1, 8, r);
  ASSERT_EQ(r.damages.size(), 1u) << damage_list(r);
  EXPECT_EQ(r.damages[0].block, 1000u);
  EXPECT_EQ(r.damages[0].keys.begin, 50u);
  EXPECT_FALSE(r.damages[0].keys.end.has_value());
  EXPECT_EQ(r.keys, (std::vector<uint64_t>{1, 2}));
}

TEST(btree_walk, a_root_beyond_the_device_is_reported) {
  pdata::memory_block_io io(4);
  pdata::block_cache cache(io);
  recorder r;
  pdata::walk_btree(cache, 4, 8, r);
  ASSERT_EQ(r.damages.size(), 1u);
  EXPECT_EQ(r.damages[0].block, 4u);
}

TEST(btree_walk, an_unwritten_block_is_not_a_node) {
  pdata::memory_block_io io(8);
  leaf(io, 4, {1});
  internal(io, 1, {0, 10}, {4, 6});  // block 6 is all zeroes
  pdata::block_cache cache(io);
  recorder r;
  pdata::walk_btree(cache, 1, 8, r);
  ASSERT_EQ(r.damages.size(), 1u) << damage_list(r);
  EXPECT_EQ(r.damages[0].block, 6u);
  EXPECT_EQ(r.keys, std::vector<uint64_t>{1});
}

TEST(btree_walk, a_leaf_with_the_wrong_value_size_is_reported) {
  pdata::memory_block_io io(8);
  leaf(io, 3, {1, 2});
  pdata::block_cache cache(io);
  recorder r;
  pdata::walk_btree(cache, 3, 24, r);  // the caller expects 24-byte values
  ASSERT_EQ(r.damages.size(), 1u) << damage_list(r);
  EXPECT_EQ(r.damages[0].block, 3u);
  EXPECT_TRUE(r.keys.empty());
}

TEST(btree_walk, a_read_error_becomes_a_damage_record) {
  pdata::memory_block_io inner(8);
  leaf(inner, 4, {1});
  leaf(inner, 5, {20});
  internal(inner, 1, {0, 10}, {4, 5});
  pdata::fault_injecting_block_io io(inner);
  io.fail_reads_of(4);
  pdata::block_cache cache(io);
  recorder r;
  pdata::walk_btree(cache, 1, 8, r);
  ASSERT_EQ(r.damages.size(), 1u) << damage_list(r);
  EXPECT_EQ(r.damages[0].block, 4u);
  EXPECT_EQ(r.damages[0].keys.begin, 0u);
  EXPECT_EQ(r.damages[0].keys.end.value_or(0), 10u);
  EXPECT_EQ(r.keys, std::vector<uint64_t>{20});
}

TEST(btree_walk, a_child_pointing_to_its_ancestor_is_reported_as_a_cycle_and_the_walk_ends) {
  pdata::memory_block_io io(8);
  leaf(io, 4, {1});
  internal(io, 3, {10}, {1});      // points back at the root
  internal(io, 1, {0, 10}, {4, 3});
  pdata::block_cache cache(io);
  recorder r;
  pdata::walk_btree(cache, 1, 8, r);
  ASSERT_EQ(r.damages.size(), 1u) << damage_list(r);
  EXPECT_EQ(r.damages[0].block, 1u);
  EXPECT_NE(r.damages[0].what.find("cycle"), std::string::npos) << r.damages[0].what;
  EXPECT_EQ(r.keys, std::vector<uint64_t>{1});
}

TEST(btree_walk, a_node_pointing_to_itself_is_reported_as_a_cycle) {
  pdata::memory_block_io io(4);
  internal(io, 2, {0}, {2});
  pdata::block_cache cache(io);
  recorder r;
  pdata::walk_btree(cache, 2, 8, r);
  ASSERT_EQ(r.damages.size(), 1u) << damage_list(r);
  EXPECT_EQ(r.damages[0].block, 2u);
}

TEST(btree_walk, a_chain_deeper_than_the_limit_is_reported_and_the_walk_ends) {
  const block_address n = pdata::max_btree_depth + 4;
  pdata::memory_block_io io(n + 2);
  for (block_address b = 1; b <= n; b++) internal(io, b, {0}, {b + 1});
  leaf(io, n + 1, {5});
  pdata::block_cache cache(io);
  recorder r;
  pdata::walk_btree(cache, 1, 8, r);
  ASSERT_EQ(r.damages.size(), 1u) << damage_list(r);
  EXPECT_TRUE(r.keys.empty());
  EXPECT_LE(r.offered.size(), pdata::max_btree_depth);
}

TEST(btree_walk, a_subtree_shared_by_two_parents_is_offered_to_visit_node_each_time) {
  pdata::memory_block_io io(16);
  // Two roots (as a thin snapshot shares its origin's subtree) sharing internal
  // node 5 and, through it, leaves 6 and 7.
  leaf(io, 6, {1, 2});
  leaf(io, 7, {10, 11});
  internal(io, 5, {0, 10}, {6, 7});
  leaf(io, 8, {100});
  internal(io, 1, {0, 100}, {5, 8});
  internal(io, 2, {0}, {5});
  pdata::block_cache cache(io);

  recorder all;
  pdata::walk_btree(cache, 1, 8, all);
  pdata::walk_btree(cache, 2, 8, all);
  EXPECT_TRUE(all.damages.empty()) << damage_list(all);
  EXPECT_EQ(std::count(all.offered.begin(), all.offered.end(), 5), 2);
  EXPECT_EQ(all.keys, (std::vector<uint64_t>{1, 2, 10, 11, 100, 1, 2, 10, 11}));

  // A visitor that declines the second visit does not see the leaves again
  // and gets no leave_node for the declined node.
  recorder once;
  once.descend_once = true;
  pdata::walk_btree(cache, 1, 8, once);
  pdata::walk_btree(cache, 2, 8, once);
  EXPECT_EQ(std::count(once.offered.begin(), once.offered.end(), 5), 2);
  EXPECT_EQ(once.keys, (std::vector<uint64_t>{1, 2, 10, 11, 100}));
  EXPECT_EQ(std::count(once.left.begin(), once.left.end(), 5), 1);
  EXPECT_EQ(once.offered, (std::vector<block_address>{1, 5, 6, 7, 8, 2, 5}));
}

TEST(btree_walk, validate_btree_node_accepts_a_well_formed_node_and_names_each_header_problem) {
  pdata::memory_block_io io(4);
  leaf(io, 1, {1, 2, 3});
  pdata::block_buffer b;
  io.read(1, b.raw());
  EXPECT_FALSE(pdata::validate_btree_node(b.raw(), 1, 8).has_value());
  EXPECT_TRUE(pdata::validate_btree_node(b.raw(), 2, 8).has_value());  // wrong location

  auto restamp = [](pdata::block_buffer &x) { pdata::stamp_checksum(x.raw(), pdata::checksum_salt::btree_node); };
  pdata::block_buffer c = b;
  pdata::store_le32(c.raw() + 16, 253);  // nr_entries > max_entries
  restamp(c);
  EXPECT_TRUE(pdata::kernel_node_check(c.raw(), 1).has_value());

  c = b;
  pdata::store_le32(c.raw() + 20, 400);  // 32 + 16 * 400 > 4096
  restamp(c);
  EXPECT_TRUE(pdata::kernel_node_check(c.raw(), 1).has_value());

  c = b;
  pdata::store_le32(c.raw() + 4, 0);  // neither flag
  restamp(c);
  EXPECT_TRUE(pdata::kernel_node_check(c.raw(), 1).has_value());

  c = b;
  pdata::store_le32(c.raw() + 4, 3);  // both flags: the kernel accepts it, thinkit does not
  restamp(c);
  EXPECT_FALSE(pdata::kernel_node_check(c.raw(), 1).has_value());
  EXPECT_TRUE(pdata::validate_btree_node(c.raw(), 1, 8).has_value());
}

TEST(btree_walk, an_internal_node_without_entries_is_reported) {
  pdata::memory_block_io io(4);
  internal(io, 1, {}, {});
  pdata::block_cache cache(io);
  recorder r;
  pdata::walk_btree(cache, 1, 8, r);
  ASSERT_EQ(r.damages.size(), 1u) << damage_list(r);
  EXPECT_EQ(r.damages[0].block, 1u);
}

}  // namespace

// Children a few blocks apart come in one request with the blocks between
// them (a request costs more than a few blocks on an O_DIRECT device); a
// gap of more than four blocks starts a new request; an unreadable block in
// a gap costs nothing but a retry of the wanted blocks one by one.
TEST(btree_walk, children_a_few_blocks_apart_are_read_in_one_request_with_the_gaps) {
  pdata::memory_block_io inner(200);
  // Leaves at 10, 12, 15, 19 (gaps 1, 2, 3), then 30 (a gap of 10), 31.
  const std::vector<block_address> at = {10, 12, 15, 19, 30, 31};
  std::vector<uint64_t> keys;
  for (std::size_t i = 0; i < at.size(); i++) {
    leaf(inner, at[i], {i * 10, i * 10 + 1});
    keys.push_back(i * 10);
  }
  internal(inner, 1, keys, std::vector<uint64_t>(at.begin(), at.end()));

  test::counting_block_io counted(inner);
  {
    pdata::block_cache cache(counted);
    recorder r;
    pdata::walk_btree(cache, 1, 8, r);
    EXPECT_TRUE(r.damages.empty()) << damage_list(r);
    EXPECT_EQ(r.leaves, at);
  }
  // The root, then 10..19 and 30..31.
  EXPECT_EQ(counted.read_requests,
            (std::vector<std::pair<block_address, std::size_t>>{{1, 1}, {10, 10}, {30, 2}}));

  // Block 11 (in a gap) cannot be read: the wanted blocks still are.
  pdata::fault_injecting_block_io faulty(inner);
  faulty.fail_reads_of(11);
  pdata::block_cache cache(faulty);
  recorder r;
  pdata::walk_btree(cache, 1, 8, r);
  EXPECT_TRUE(r.damages.empty()) << damage_list(r);
  EXPECT_EQ(r.leaves, at);
}
