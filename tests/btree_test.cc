// Unit tests of the copy-on-write B-tree writer (lib/persistent-data/btree.cc)
// through its public API: inserts that split leaves and internal nodes,
// removes that rebalance and merge, values of other sizes, lookups after
// random inserts and removes against a std::map, and copy-on-write of a tree
// shared with a committed state.
#include "persistent-data/btree.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "persistent-data/block_io.h"
#include "persistent-data/btree_disk.h"
#include "persistent-data/endian.h"
#include "persistent-data/space_map.h"
#include "persistent-data/transaction_manager.h"

namespace {

using pdata::block_address;

// A metadata device in memory, its space map (block 0 taken, as the
// superblock's) and a transaction manager over both.
struct pool {
  explicit pool(block_address nr_blocks) : io(nr_blocks), sm(nr_blocks), tm(io, sm) { sm.set(0, 1); }
  // Writes the transaction's blocks and ends it, as a commit does.
  void commit() {
    tm.flush_blocks();
    tm.end_transaction();
  }
  pdata::memory_block_io io;
  pdata::space_map sm;
  pdata::transaction_manager tm;
};

std::vector<unsigned char> value64(uint64_t v) {
  std::vector<unsigned char> out(8);
  pdata::store_le64(out.data(), v);
  return out;
}

uint64_t lookup64(pdata::transaction_manager &tm, block_address root, uint64_t key) {
  auto v = pdata::btree_lookup(tm, root, key);
  return v ? pdata::load_le64(v->data()) : ~0ull;
}

block_address insert64(pdata::transaction_manager &tm, block_address root, uint64_t key, uint64_t value,
                       bool *inserted = nullptr) {
  return pdata::btree_insert(tm, root, key, value64(value).data(), pdata::plain_value_ops(8), inserted);
}

// The shape of a tree: its depth (1 = a lone leaf), every node's entry count
// and whether it is the root, and the keys in leaf order.
struct shape {
  unsigned depth = 0;
  std::vector<uint64_t> keys;
  std::vector<std::string> underfull;  // non-root nodes below a third of max_entries
  std::vector<block_address> nodes;
};

void walk(pdata::transaction_manager &tm, block_address b, unsigned depth, bool root, shape &s) {
  auto blk = tm.read(b);
  pdata::btree_node_view n(blk->raw());
  s.nodes.push_back(b);
  s.depth = std::max(s.depth, depth);
  if (!root && n.nr_entries() < n.max_entries() / 3)
    s.underfull.push_back("block " + std::to_string(b) + ": " + std::to_string(n.nr_entries()) + " of " +
                          std::to_string(n.max_entries()));
  for (uint32_t i = 0; i < n.nr_entries(); i++) {
    if (n.is_internal()) walk(tm, n.value64(i), depth + 1, false, s);
    else s.keys.push_back(n.key(i));
  }
}

shape shape_of(pdata::transaction_manager &tm, block_address root) {
  shape s;
  walk(tm, root, 1, true, s);
  return s;
}

std::vector<uint64_t> keys_in_order(pdata::transaction_manager &tm, block_address root) {
  std::vector<uint64_t> keys;
  pdata::btree_for_each(tm, root, [&](uint64_t k, const unsigned char *) { keys.push_back(k); });
  return keys;
}

TEST(btree, a_new_tree_is_one_empty_leaf_sized_for_its_values) {
  pool p(16);
  block_address root = pdata::btree_empty(p.tm, 8);
  auto blk = p.tm.read(root);
  pdata::btree_node_view n(blk->raw());
  EXPECT_FALSE(n.is_internal());
  EXPECT_EQ(n.nr_entries(), 0u);
  EXPECT_EQ(n.max_entries(), pdata::btree_max_entries(8));
  EXPECT_EQ(n.value_size(), 8u);
  EXPECT_FALSE(pdata::btree_lookup(p.tm, root, 0));
}

TEST(btree, a_leaf_split_keeps_every_key_reachable) {
  pool p(64);
  block_address root = pdata::btree_empty(p.tm, 8);
  const uint32_t max = pdata::btree_max_entries(8);
  for (uint64_t k = 0; k <= max; k++) root = insert64(p.tm, root, k * 3, k + 1000);
  shape s = shape_of(p.tm, root);
  EXPECT_EQ(s.depth, 2u) << "one more key than a leaf holds splits the root leaf";
  EXPECT_EQ(s.nodes.size(), 3u);
  EXPECT_TRUE(s.underfull.empty()) << s.underfull.front();
  ASSERT_EQ(s.keys.size(), max + 1u);
  for (uint64_t k = 0; k <= max; k++) {
    EXPECT_EQ(s.keys[k], k * 3);
    EXPECT_EQ(lookup64(p.tm, root, k * 3), k + 1000);
    EXPECT_FALSE(pdata::btree_lookup(p.tm, root, k * 3 + 1));
  }
}

TEST(btree, an_internal_node_split_adds_a_level_and_keeps_every_key_reachable) {
  pool p(2048);
  block_address root = pdata::btree_empty(p.tm, 8);
  // Ascending inserts leave half-full leaves: 252 of them fill the root.
  const uint64_t n = 300 * 127;
  for (uint64_t k = 0; k < n; k++) root = insert64(p.tm, root, k, k * 7);
  p.commit();
  shape s = shape_of(p.tm, root);
  EXPECT_EQ(s.depth, 3u);
  EXPECT_TRUE(s.underfull.empty()) << s.underfull.front();
  std::vector<uint64_t> want(n);
  for (uint64_t k = 0; k < n; k++) want[k] = k;
  EXPECT_EQ(s.keys, want);
  EXPECT_EQ(keys_in_order(p.tm, root), want);
  for (uint64_t k = 0; k < n; k += 97) EXPECT_EQ(lookup64(p.tm, root, k), k * 7) << k;
  EXPECT_EQ(lookup64(p.tm, root, n - 1), (n - 1) * 7);
  EXPECT_FALSE(pdata::btree_lookup(p.tm, root, n));
}

TEST(btree, inserting_an_existing_key_overwrites_its_value_and_says_it_was_not_new) {
  pool p(16);
  block_address root = pdata::btree_empty(p.tm, 8);
  bool inserted = false;
  root = insert64(p.tm, root, 42, 1, &inserted);
  EXPECT_TRUE(inserted);
  root = insert64(p.tm, root, 42, 2, &inserted);
  EXPECT_FALSE(inserted);
  EXPECT_EQ(lookup64(p.tm, root, 42), 2u);
  EXPECT_EQ(keys_in_order(p.tm, root), std::vector<uint64_t>{42});
}

TEST(btree, values_of_other_sizes_are_stored_whole_in_leaves_sized_for_them) {
  for (uint32_t vsize : {4u, 16u, 24u}) {
    pool p(256);
    block_address root = pdata::btree_empty(p.tm, vsize);
    const pdata::value_ops ops = pdata::plain_value_ops(vsize);
    auto value_of = [&](uint64_t k) {
      std::vector<unsigned char> v(vsize);
      for (uint32_t i = 0; i < vsize; i++) v[i] = static_cast<unsigned char>(k * 31 + i);
      return v;
    };
    const uint64_t n = 3 * pdata::btree_max_entries(vsize);
    for (uint64_t k = 0; k < n; k++) root = pdata::btree_insert(p.tm, root, n - k, value_of(n - k).data(), ops);
    for (uint64_t k = 1; k <= n; k++) {
      auto v = pdata::btree_lookup(p.tm, root, k);
      ASSERT_TRUE(v) << vsize << " " << k;
      EXPECT_EQ(*v, value_of(k)) << vsize << " " << k;
    }
    shape s = shape_of(p.tm, root);
    EXPECT_EQ(s.depth, 2u) << vsize;
    auto leaf = p.tm.read(s.nodes.back());
    EXPECT_EQ(pdata::btree_node_view(leaf->raw()).max_entries(), pdata::btree_max_entries(vsize)) << vsize;
    EXPECT_EQ(pdata::btree_node_view(leaf->raw()).value_size(), vsize);
  }
}

TEST(btree, removes_rebalance_and_merge_so_every_node_but_the_root_stays_a_third_full) {
  pool p(1024);
  block_address root = pdata::btree_empty(p.tm, 8);
  const uint64_t n = 20000;
  for (uint64_t k = 0; k < n; k++) root = insert64(p.tm, root, k, k);
  const std::size_t nodes_before = shape_of(p.tm, root).nodes.size();
  // Remove most keys from the front and a run in the middle: leaves empty,
  // underfull ones borrow from or merge into their neighbours.
  for (uint64_t k = 0; k < n; k++) {
    if (k % 10 == 0 && (k < 8000 || k > 12000)) continue;
    bool removed = false;
    root = pdata::btree_remove(p.tm, root, k, pdata::plain_value_ops(8), &removed);
    ASSERT_TRUE(removed) << k;
    if (k % 1000 == 999) {
      shape s = shape_of(p.tm, root);
      ASSERT_TRUE(s.underfull.empty()) << "after removing " << k << ": " << s.underfull.front();
    }
  }
  shape s = shape_of(p.tm, root);
  EXPECT_TRUE(s.underfull.empty()) << s.underfull.front();
  std::vector<uint64_t> want;
  for (uint64_t k = 0; k < n; k += 10)
    if (k < 8000 || k > 12000) want.push_back(k);
  EXPECT_EQ(s.keys, want);
  EXPECT_LT(s.nodes.size(), nodes_before / 5) << "merged leaves are freed";
  EXPECT_EQ(p.sm.nr_allocated(), 1 + s.nodes.size()) << "every freed node's count is back to 0";
}

TEST(btree, removing_every_key_leaves_an_empty_leaf_root) {
  pool p(512);
  block_address root = pdata::btree_empty(p.tm, 8);
  for (uint64_t k = 0; k < 5000; k++) root = insert64(p.tm, root, k * 11 % 5000, k);
  for (uint64_t k = 0; k < 5000; k++) root = pdata::btree_remove(p.tm, root, k, pdata::plain_value_ops(8));
  shape s = shape_of(p.tm, root);
  EXPECT_EQ(s.depth, 1u);
  EXPECT_TRUE(s.keys.empty());
  EXPECT_EQ(p.sm.nr_allocated(), 2u) << "the superblock and the root leaf";
  bool removed = true;
  EXPECT_EQ(pdata::btree_remove(p.tm, root, 3, pdata::plain_value_ops(8), &removed), root);
  EXPECT_FALSE(removed);
}

TEST(btree, random_inserts_and_removes_agree_with_a_std_map) {
  pool p(2048);
  block_address root = pdata::btree_empty(p.tm, 8);
  std::map<uint64_t, uint64_t> model;
  std::mt19937_64 rng(20261205);
  for (int step = 0; step < 40000; step++) {
    const uint64_t key = rng() % 6000;
    if (rng() % 3) {
      const uint64_t v = rng();
      bool inserted = false;
      root = insert64(p.tm, root, key, v, &inserted);
      EXPECT_EQ(inserted, !model.count(key)) << step;
      model[key] = v;
    } else {
      bool removed = false;
      root = pdata::btree_remove(p.tm, root, key, pdata::plain_value_ops(8), &removed);
      EXPECT_EQ(removed, model.erase(key) == 1) << step;
    }
    if (step % 5000 == 4999) {
      p.commit();  // later writes copy what this transaction wrote
      shape s = shape_of(p.tm, root);
      ASSERT_TRUE(s.underfull.empty()) << step << ": " << s.underfull.front();
      EXPECT_EQ(p.sm.nr_allocated(), 1 + s.nodes.size()) << "no node leaked at step " << step;
    }
  }
  std::vector<uint64_t> want;
  for (auto &[k, v] : model) want.push_back(k);
  EXPECT_EQ(keys_in_order(p.tm, root), want);
  for (uint64_t k = 0; k < 6000; k++) {
    auto it = model.find(k);
    if (it == model.end()) EXPECT_FALSE(pdata::btree_lookup(p.tm, root, k)) << k;
    else EXPECT_EQ(lookup64(p.tm, root, k), it->second) << k;
  }
}

TEST(btree, a_tree_shared_with_another_root_is_copied_on_write_and_both_keep_their_keys) {
  pool p(256);
  block_address a = pdata::btree_empty(p.tm, 8);
  for (uint64_t k = 0; k < 1000; k++) a = insert64(p.tm, a, k, k);
  p.commit();
  // A second reference to the same root, as a snapshot of a device holds.
  p.tm.inc(a);
  block_address b = insert64(p.tm, a, 5000, 1);
  b = pdata::btree_remove(p.tm, b, 10, pdata::plain_value_ops(8));
  EXPECT_NE(b, a);
  EXPECT_EQ(p.sm.get(a), 1u) << "the copy dropped its reference to the shared root";
  EXPECT_EQ(lookup64(p.tm, a, 10), 10u);
  EXPECT_FALSE(pdata::btree_lookup(p.tm, a, 5000));
  EXPECT_FALSE(pdata::btree_lookup(p.tm, b, 10));
  EXPECT_EQ(lookup64(p.tm, b, 5000), 1u);
  EXPECT_EQ(keys_in_order(p.tm, a).size(), 1000u);
  EXPECT_EQ(keys_in_order(p.tm, b).size(), 1000u);
  // Leaves the copy did not touch are shared: counted twice.
  shape sa = shape_of(p.tm, a), sb = shape_of(p.tm, b);
  unsigned shared = 0;
  for (block_address n : sb.nodes)
    if (std::find(sa.nodes.begin(), sa.nodes.end(), n) != sa.nodes.end()) {
      shared++;
      EXPECT_EQ(p.sm.get(n), 2u) << n;
    }
  EXPECT_GT(shared, 0u);
}

TEST(btree, deleting_a_tree_frees_every_node_and_decrements_what_its_values_reference) {
  pool p(512);
  // Values are other blocks (as the mapping tree's top level holds subtree
  // roots): deleting the tree drops one reference to each.
  std::vector<block_address> targets;
  for (int i = 0; i < 300; i++) targets.push_back(pdata::btree_empty(p.tm, 8));
  const pdata::value_ops ops = pdata::block_ref_value_ops(p.tm);
  block_address root = pdata::btree_empty(p.tm, 8);
  for (std::size_t i = 0; i < targets.size(); i++) {
    p.tm.inc(targets[i]);  // the tree's reference
    root = pdata::btree_insert(p.tm, root, i, value64(targets[i]).data(), ops);
  }
  for (block_address t : targets) EXPECT_EQ(p.sm.get(t), 2u);
  const shape s = shape_of(p.tm, root);
  EXPECT_EQ(s.depth, 2u);
  pdata::btree_delete(p.tm, root, ops);
  for (block_address n : s.nodes) EXPECT_EQ(p.sm.get(n), 0u) << n;
  for (block_address t : targets) EXPECT_EQ(p.sm.get(t), 1u) << t;
}

// A run of consecutive keys added at once builds the same tree, block for
// block, as the same entries added one by one: with runs that end inside a
// leaf, span several leaves, and follow single entries and a shared leaf.
TEST(btree, a_builder_run_of_keys_builds_the_tree_the_same_entries_added_one_by_one_build) {
  struct run {
    uint64_t first, n;
  };
  const std::vector<run> runs = {{0, 1}, {5, 3}, {10, 250}, {400, 1}, {401, 1000}, {5000, 126}, {6000, 2}};
  auto value_of = [](uint64_t k) { return value64(k * 7 + 3); };
  auto build = [&](bool as_runs, pool &p) {
    pdata::btree_builder b(p.tm, 8);
    for (const run &r : runs) {
      if (as_runs) {
        b.add_run(r.first, r.n, [&](uint64_t i, unsigned char *out) { std::memcpy(out, value_of(r.first + i).data(), 8); });
      } else {
        for (uint64_t i = 0; i < r.n; i++) b.add(r.first + i, value_of(r.first + i).data());
      }
    }
    EXPECT_EQ(b.entries(), 1383u);
    return b.finish();
  };
  pool one(512), many(512);
  const block_address a = build(false, one), b = build(true, many);
  ASSERT_EQ(a, b);
  std::vector<uint64_t> want;
  for (const run &r : runs)
    for (uint64_t i = 0; i < r.n; i++) want.push_back(r.first + i);
  EXPECT_EQ(keys_in_order(many.tm, b), want);
  const shape sa = shape_of(one.tm, a), sb = shape_of(many.tm, b);
  EXPECT_EQ(sa.nodes, sb.nodes);
  EXPECT_TRUE(sb.underfull.empty());
  for (block_address n : sb.nodes) {
    auto x = one.tm.read(n), y = many.tm.read(n);
    EXPECT_EQ(std::memcmp(x->raw(), y->raw(), pdata::block_size), 0) << "block " << n;
  }
  for (uint64_t k : want) EXPECT_EQ(lookup64(many.tm, b, k), k * 7 + 3);
}

TEST(btree, a_builder_run_that_does_not_follow_the_last_key_or_passes_2_to_the_64_is_refused) {
  pool p(64);
  pdata::btree_builder b(p.tm, 8);
  auto fill = [](uint64_t, unsigned char *out) { std::memset(out, 0, 8); };
  b.add_run(10, 5, fill);  // 10..14
  EXPECT_THROW(b.add_run(14, 2, fill), std::exception);
  EXPECT_THROW(b.add_run(UINT64_MAX - 1, 3, fill), std::exception);
  b.add_run(UINT64_MAX - 1, 2, fill);  // ends at the last key there is
  EXPECT_EQ(b.entries(), 7u);
}

}  // namespace
