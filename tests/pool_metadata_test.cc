// The write side against a model: random sequences of thin operations
// (create, snapshot, insert, overwrite, remove, delete, metadata snapshots,
// reopen from disk) on pool_metadata, with the model a std::map of what every
// device should map. After every commit the metadata must pass the checker
// (reference counts included) and read back exactly as the model says.
// Seeds are fixed and printed on failure.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "persistent-data/block_cache.h"
#include "persistent-data/block_io.h"
#include "persistent-data/errors.h"
#include "thin/check/check.h"
#include "engine/pool_metadata.h"
#include "thin/format/superblock.h"
#include "thin/format/thin_trees.h"
#include "support/metadata_support.h"

namespace {

using model_t = std::map<uint64_t, std::map<uint64_t, uint64_t>>;  // dev -> vblock -> data block

using test::recording_reporter;

// Reads every device's mappings back from the device, as a reader would.
model_t read_back(pdata::block_io &io) {
  thin::superblock sb = thin::read_superblock(io, 0);
  pdata::block_cache cache(io);
  auto fail = [](const pdata::btree_damage &d) { FAIL() << "damage at block " << d.block << ": " << d.what; };
  model_t out;
  for (auto &[dev, root] : thin::read_mapping_top_level(cache, sb.mapping_root, fail)) {
    auto &m = out[dev];
    thin::walk_device_mappings(
        cache, root, [&](uint64_t vb, uint64_t db, uint32_t) { m[vb] = db; }, fail);
  }
  return out;
}

// Every non-root node at least a third full (thin_check 0.9.0 requires it;
// the kernel's own trees always are).
struct fill_checker : pdata::btree_visitor {
  std::string problems;
  bool visit_node(pdata::block_address b, const pdata::btree_node_view &n, const pdata::key_range &,
                  unsigned depth) override {
    if (depth > 0 && n.nr_entries() < n.max_entries() / 3)
      problems += "block " + std::to_string(b) + " has " + std::to_string(n.nr_entries()) + " entries\n";
    return true;
  }
  void visit_leaf(pdata::block_address, const pdata::btree_node_view &, const pdata::key_range &) override {}
  void damage(const pdata::btree_damage &d) override { problems += d.what + "\n"; }
};

std::string underfull_nodes(pdata::block_io &io) {
  thin::superblock sb = thin::read_superblock(io, 0);
  pdata::block_cache cache(io);
  fill_checker fc;
  pdata::walk_btree(cache, sb.details_root, 24, fc);
  pdata::walk_btree(cache, sb.mapping_root, 8, fc);
  auto ignore = [](const pdata::btree_damage &) {};
  for (auto &[dev, root] : thin::read_mapping_top_level(cache, sb.mapping_root, ignore)) pdata::walk_btree(cache, root, 8, fc);
  return fc.problems;
}

void expect_consistent(pdata::block_io &io, const model_t &model, uint64_t seed, int step) {
  recording_reporter rep;
  thin::check_result r = thin::check_metadata(io, {}, rep);
  ASSERT_TRUE(r.spotless() && r.fully_examined) << "seed " << seed << " step " << step << "\n" << rep.describe();
  ASSERT_EQ(read_back(io), model) << "seed " << seed << " step " << step;
  ASSERT_EQ(underfull_nodes(io), "") << "seed " << seed << " step " << step;
}

void run_random_workload(uint64_t seed, int steps, bool with_metadata_snaps) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  auto pick = [&](uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng); };
  pdata::memory_block_io io(2048);
  auto pool = thin::pool_metadata::format(io, 128, 20000);
  model_t model;
  uint64_t next_dev = 1;
  for (int step = 0; step < steps; step++) {
    uint64_t op = pick(100);
    std::vector<uint64_t> devs;
    for (auto &[d, _] : model) devs.push_back(d);
    if (devs.empty() || op < 4) {
      uint64_t dev = next_dev++;
      pool->create_thin(dev);
      model[dev];
    } else if (op < 8 && devs.size() < 12) {
      uint64_t origin = devs[pick(devs.size())];
      uint64_t dev = next_dev++;
      pool->create_snap(dev, origin);
      model[dev] = model[origin];
    } else if (op < 10 && devs.size() > 2) {
      uint64_t dev = devs[pick(devs.size())];
      pool->delete_device(dev);
      model.erase(dev);
    } else if (op < 75) {
      // Write: a new block, or break sharing of a mapped one (as dm-thin does).
      uint64_t dev = devs[pick(devs.size())];
      uint64_t vb = pick(3000);
      if (pick(3) == 0 && !model[dev].empty()) vb = model[dev].rbegin()->first + 1;  // grow densely too
      auto b = pool->alloc_data_block();
      ASSERT_TRUE(b) << "data space exhausted at step " << step;
      pool->insert(dev, vb, *b);
      model[dev][vb] = *b;
    } else if (op < 92) {
      uint64_t dev = devs[pick(devs.size())];
      auto &m = model[dev];
      uint64_t vb = m.empty() || pick(4) == 0 ? pick(3000) : std::next(m.begin(), static_cast<long>(pick(m.size())))->first;
      bool removed = pool->remove(dev, vb);
      ASSERT_EQ(removed, m.erase(vb) == 1) << "step " << step;
    } else if (op < 95 && with_metadata_snaps) {
      if (pool->held_root())
        pool->release_metadata_snap();
      else
        pool->reserve_metadata_snap();
    } else if (op < 98) {
      pool->commit();
      expect_consistent(io, model, seed, step);
      if (pick(3) == 0) pool = thin::pool_metadata::open(io);
    } else {
      // Lookups agree with the model.
      uint64_t dev = devs[pick(devs.size())];
      for (int k = 0; k < 20; k++) {
        uint64_t vb = pick(3000);
        auto r = pool->lookup(dev, vb);
        auto it = model[dev].find(vb);
        ASSERT_EQ(r.has_value(), it != model[dev].end());
        if (r) {
          ASSERT_EQ(r->data_block, it->second);
        }
      }
    }
    if (::testing::Test::HasFatalFailure()) return;
  }
  pool->commit();
  expect_consistent(io, model, seed, steps);
}

TEST(pool_metadata, random_operations_match_the_model_and_pass_the_checker_after_every_commit) {
  for (uint64_t seed = 1; seed <= 6; seed++) {
    run_random_workload(seed, 3000, false);
    if (HasFatalFailure()) return;
  }
}

TEST(pool_metadata, random_operations_with_metadata_snapshots_keep_every_count_right) {
  for (uint64_t seed = 100; seed <= 105; seed++) {
    run_random_workload(seed, 3000, true);
    if (HasFatalFailure()) return;
  }
}

TEST(pool_metadata, a_snapshot_shares_the_origin_subtree_until_either_side_writes) {
  pdata::memory_block_io io(256);
  auto pool = thin::pool_metadata::format(io, 128, 1000);
  pool->create_thin(1);
  for (uint64_t vb = 0; vb < 600; vb++) pool->insert(1, vb, *pool->alloc_data_block());
  pool->create_snap(2, 1);
  pool->commit();
  EXPECT_EQ(pool->details(2).mapped_blocks, 600u);
  EXPECT_EQ(pool->time(), 1u);
  auto r = pool->lookup(1, 5);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->shared);
  // The origin's write breaks sharing for that block only.
  uint64_t nb = *pool->alloc_data_block();
  pool->insert(1, 5, nb);
  pool->commit();
  EXPECT_EQ(pool->lookup(1, 5)->data_block, nb);
  EXPECT_FALSE(pool->lookup(1, 5)->shared);
  EXPECT_EQ(pool->lookup(2, 5)->data_block, r->data_block);
  EXPECT_EQ(pool->data_ref_count(r->data_block), 1u);
  // A data block in a leaf both devices still share is counted once; in a
  // leaf that was copied, twice.
  recording_reporter rep;
  EXPECT_TRUE(thin::check_metadata(io, {}, rep).spotless()) << rep.describe();
}

TEST(pool_metadata, set_transaction_id_is_a_compare_and_swap) {
  pdata::memory_block_io io(64);
  auto pool = thin::pool_metadata::format(io, 128, 100);
  pool->set_transaction_id(0, 5);
  EXPECT_THROW(pool->set_transaction_id(4, 6), std::runtime_error);
  pool->commit();
  EXPECT_EQ(thin::read_superblock(io, 0).trans_id, 5u);
}

TEST(pool_metadata, commit_writes_the_superblock_only_after_flushing_every_other_block) {
  pdata::memory_block_io mem(256);
  pdata::fault_injecting_block_io io(mem);
  io.volatile_cache(true);
  auto pool = thin::pool_metadata::format(io, 128, 1000);
  pool->create_thin(1);
  for (uint64_t vb = 0; vb < 300; vb++) pool->insert(1, vb, *pool->alloc_data_block());
  pool->commit();
  EXPECT_EQ(io.pending_writes(), 0u);
  // Crash during the next commit at every possible write: the surviving
  // state is the old or the new metadata, never a mix.
  for (uint64_t fail_at = 1;; fail_at++) {
    pdata::memory_block_io copy(mem.image());
    pdata::fault_injecting_block_io fio(copy);
    fio.volatile_cache(true);
    auto p = thin::pool_metadata::open(fio);
    for (uint64_t vb = 300; vb < 700; vb++) p->insert(1, vb, *p->alloc_data_block());
    fio.fail_nth_write(fio.writes() + fail_at);
    bool crashed = false;
    try {
      p->commit();
    } catch (const pdata::io_error &) {
      crashed = true;
    }
    fio.crash(0.5, fail_at);
    recording_reporter rep;
    ASSERT_TRUE(thin::check_metadata(copy, {}, rep).spotless()) << "fail_at " << fail_at << "\n" << rep.describe();
    auto back = read_back(copy);
    size_t n = back[1].size();
    EXPECT_TRUE(n == 300 || (n == 700 && !crashed)) << "fail_at " << fail_at << " mapped " << n;
    if (!crashed) break;
  }
}

}  // namespace
