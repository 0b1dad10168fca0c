// Unit tests of the space-map writer (lib/persistent-data/space_map_writer.cc):
// what it writes reads back through the space-map reader
// (space_map_reader.h) with the same count for every block and no problem,
// for the data and the metadata space map, at bitmap boundaries (one bitmap
// exactly full, one entry into the next), with counts of 3 and more in the
// overflow (ref-count) tree, and again after a second commit that changes
// some counts.
#include "persistent-data/space_map_writer.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "persistent-data/block_cache.h"
#include "persistent-data/block_io.h"
#include "persistent-data/space_map.h"
#include "persistent-data/space_map_disk.h"
#include "persistent-data/space_map_reader.h"
#include "persistent-data/transaction_manager.h"
#include "support/metadata_support.h"

namespace {

using pdata::block_address;
using pdata::entries_per_bitmap;

// A metadata device in memory, its space map and a data space map, written
// the way a commit writes them: data space map, metadata space map, blocks.
struct pool {
  pool(block_address nr_meta, block_address nr_data) : io(nr_meta), meta_sm(nr_meta), data_sm(nr_data), tm(io, meta_sm) {
    meta_sm.set(0, 1);  // the superblock
  }
  void commit() {
    data_root = pdata::write_data_space_map(tm, data_sm, data_layout);
    meta_root = pdata::write_metadata_space_map(tm, meta_layout);
    tm.flush_blocks();
    tm.end_transaction();
    data_sm.commit();
  }
  pdata::memory_block_io io;
  pdata::space_map meta_sm, data_sm;
  pdata::transaction_manager tm;
  pdata::space_map_layout data_layout, meta_layout;
  pdata::disk_sm_root data_root{}, meta_root{};
};

// What the reader finds, and the blocks whose count differs from `want`.
struct read_back {
  pdata::space_map_contents contents;
  test::space_map_problems problems;
  std::string differences;
};

read_back read_and_compare(pdata::block_io &io, const pdata::disk_sm_root &root, pdata::space_map_kind kind,
                           const pdata::space_map &want) {
  read_back r;
  pdata::block_cache cache(io);
  r.contents = pdata::read_space_map(cache, root, kind, r.problems);
  unsigned shown = 0;
  for (block_address b = 0; b < want.nr_blocks(); b++)
    if (r.contents.counts.get(b) != want.get(b) && shown++ < 5)
      r.differences += "block " + std::to_string(b) + ": read " + std::to_string(r.contents.counts.get(b)) +
                       ", written " + std::to_string(want.get(b)) + "\n";
  return r;
}

void expect_data_reads_back(pool &p) {
  auto r = read_and_compare(p.io, p.data_root, pdata::space_map_kind::data, p.data_sm);
  EXPECT_EQ(r.problems.text(), "");
  EXPECT_TRUE(r.contents.complete);
  EXPECT_EQ(r.contents.nr_blocks, p.data_sm.nr_blocks());
  EXPECT_EQ(r.contents.nr_allocated_root, p.data_sm.nr_allocated());
  EXPECT_EQ(r.contents.counts.nr_allocated(), p.data_sm.nr_allocated());
  EXPECT_EQ(r.differences, "");
}

void expect_metadata_reads_back(pool &p) {
  auto r = read_and_compare(p.io, p.meta_root, pdata::space_map_kind::metadata, p.meta_sm);
  EXPECT_EQ(r.problems.text(), "");
  EXPECT_TRUE(r.contents.complete);
  EXPECT_EQ(r.contents.nr_blocks, p.meta_sm.nr_blocks());
  EXPECT_EQ(r.contents.nr_allocated_root, p.meta_sm.nr_allocated());
  EXPECT_EQ(r.differences, "") << "the metadata space map must count its own blocks too";
}

TEST(space_map_writer, data_counts_of_every_size_read_back_the_same) {
  pool p(256, 3 * entries_per_bitmap + 100);
  const std::map<block_address, uint32_t> counts = {
      {0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 1000}, {5, 1u << 20}, {entries_per_bitmap - 1, 2}, {entries_per_bitmap, 7},
      {2 * entries_per_bitmap + 5, 1}, {3 * entries_per_bitmap + 99, 3}};
  for (auto &[b, c] : counts) p.data_sm.set(b, c);
  p.commit();
  expect_data_reads_back(p);
  expect_metadata_reads_back(p);
  EXPECT_NE(p.data_root.ref_count_root.get(), 0u) << "counts of 3 and more live in the overflow tree";
}

TEST(space_map_writer, exactly_one_full_bitmap_reads_back_with_every_block_used) {
  pool p(64, entries_per_bitmap);
  for (block_address b = 0; b < entries_per_bitmap; b++) p.data_sm.set(b, 1 + b % 2);
  p.commit();
  EXPECT_EQ(p.data_layout.bitmaps.size(), 1u);
  expect_data_reads_back(p);
  expect_metadata_reads_back(p);
}

TEST(space_map_writer, one_block_past_a_full_bitmap_gets_a_second_bitmap) {
  pool p(64, entries_per_bitmap + 1);
  for (block_address b = 0; b <= entries_per_bitmap; b++) p.data_sm.set(b, 1);
  p.data_sm.set(entries_per_bitmap, 5);
  p.commit();
  EXPECT_EQ(p.data_layout.bitmaps.size(), 2u);
  expect_data_reads_back(p);
}

TEST(space_map_writer, a_metadata_space_map_of_several_bitmaps_counts_its_own_blocks) {
  pool p(2 * entries_per_bitmap + 10, 100);
  // Metadata blocks in use in every bitmap, some shared (counts 2 and 3+).
  for (block_address b : std::vector<block_address>{5, entries_per_bitmap + 1, 2 * entries_per_bitmap + 9})
    p.meta_sm.set(b, 1);
  p.meta_sm.set(7, 2);
  p.meta_sm.set(entries_per_bitmap + 2, 9);
  p.data_sm.set(50, 1);
  p.commit();
  EXPECT_EQ(p.meta_layout.bitmaps.size(), 3u);
  expect_metadata_reads_back(p);
  expect_data_reads_back(p);
  for (block_address b : p.meta_layout.bitmaps) EXPECT_EQ(p.meta_sm.get(b), 1u) << "bitmap " << b;
  EXPECT_EQ(p.meta_sm.get(p.meta_layout.index_root), 1u);
}

TEST(space_map_writer, a_second_commit_rewrites_changed_bitmaps_elsewhere_and_keeps_the_others) {
  pool p(512, 3 * entries_per_bitmap);
  for (block_address b = 0; b < 3 * entries_per_bitmap; b += 7) p.data_sm.set(b, 1 + b % 4);
  p.commit();
  expect_data_reads_back(p);
  const auto first = p.data_layout.bitmaps;
  ASSERT_EQ(first.size(), 3u);

  // Change counts in bitmap 1 only: 0 -> 1, 1 -> 3 (into the overflow tree),
  // 3+ -> 0.
  p.data_sm.set(entries_per_bitmap + 1, 1);
  p.data_sm.set(entries_per_bitmap + 7 * 300, 3);
  for (block_address b = entries_per_bitmap; b < 2 * entries_per_bitmap; b++)
    if (p.data_sm.get(b) >= 3 && b != entries_per_bitmap + 7 * 300) {
      p.data_sm.set(b, 0);
      break;
    }
  p.commit();
  expect_data_reads_back(p);
  expect_metadata_reads_back(p);
  EXPECT_EQ(p.data_layout.bitmaps[0], first[0]);
  EXPECT_NE(p.data_layout.bitmaps[1], first[1]) << "a changed bitmap goes to a new block (copy-on-write)";
  EXPECT_EQ(p.data_layout.bitmaps[2], first[2]);
  EXPECT_EQ(p.meta_sm.get(first[1]), 0u) << "and the old one is freed";
}

TEST(space_map_writer, an_all_free_space_map_reads_back_empty) {
  pool p(64, 1000);
  p.commit();
  auto r = read_and_compare(p.io, p.data_root, pdata::space_map_kind::data, p.data_sm);
  EXPECT_EQ(r.problems.text(), "");
  EXPECT_EQ(r.contents.counts.nr_allocated(), 0u);
  EXPECT_EQ(p.data_root.nr_allocated.get(), 0u);
  expect_metadata_reads_back(p);
}

}  // namespace
