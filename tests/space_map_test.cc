// The writers' in-memory space map (4-bit counts with an overflow map for
// 15 and more) and the transaction manager's gathering of write_now blocks.
#include "persistent-data/space_map.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "persistent-data/block_io.h"
#include "persistent-data/checksum.h"
#include "persistent-data/transaction_manager.h"
#include "support/metadata_support.h"

namespace {

using pdata::block_address;

TEST(space_map, counts_round_trip_below_at_and_above_the_nibble_limit) {
  pdata::space_map sm(100);
  for (uint32_t c = 0; c < 40; c++) {
    sm.set(7, c);
    EXPECT_EQ(sm.get(7), c);
    EXPECT_EQ(sm.value2(7), c < 3 ? c : 3u);
  }
  for (uint32_t c = 39; c > 0; c--) {
    sm.dec(7);
    EXPECT_EQ(sm.get(7), c - 1);
  }
  EXPECT_EQ(sm.get(7), 0u);
  for (uint32_t c = 0; c < 20; c++) sm.inc(8);
  EXPECT_EQ(sm.get(8), 20u);
  sm.inc(8, 5);
  EXPECT_EQ(sm.get(8), 25u);
  // Neighbours sharing the byte are untouched.
  EXPECT_EQ(sm.get(9), 0u);
  EXPECT_EQ(sm.get(6), 0u);
  EXPECT_EQ(sm.nr_allocated(), 1u);
}

TEST(space_map, overflow_entries_lists_every_count_of_three_or_more_in_block_order) {
  pdata::space_map sm(70000);
  const std::vector<std::pair<block_address, uint32_t>> want = {{0, 3}, {1, 16}, {15, 4}, {16, 3}, {17, 200},
                                                                {20001, 15}, {69999, 14}};
  for (auto &[b, c] : want) sm.set(b, c);
  sm.set(2, 2);
  sm.set(30000, 1);
  EXPECT_EQ(sm.overflow_entries(), want);
  std::vector<std::pair<block_address, uint32_t>> seen;
  sm.for_each_overflow([&](block_address b, uint32_t c) { seen.emplace_back(b, c); });
  EXPECT_EQ(seen, want);
  EXPECT_EQ(sm.nr_allocated(), want.size() + 2);
}

TEST(space_map, changes_mark_their_bitmap_dirty_until_commit) {
  pdata::space_map sm(3 * pdata::entries_per_bitmap);
  EXPECT_TRUE(sm.any_bitmap_dirty());  // new: everything is to be written
  sm.commit();
  EXPECT_FALSE(sm.any_bitmap_dirty());
  sm.inc(pdata::entries_per_bitmap + 5);
  EXPECT_EQ(sm.dirty_bitmaps(), std::vector<uint64_t>{1});
  EXPECT_FALSE(sm.overflow_dirty());
  sm.inc(pdata::entries_per_bitmap + 5, 2);
  EXPECT_TRUE(sm.overflow_dirty());
  sm.commit();
  EXPECT_FALSE(sm.bitmap_dirty(1));
}

TEST(space_map, inc_range_counts_as_inc_block_by_block_does_across_bitmaps_and_into_overflow) {
  const block_address e = pdata::entries_per_bitmap;
  pdata::space_map a(3 * e), b(3 * e);
  // Counts before: blocks at 1, 2, 13, 14 and 20 (the nibble's limit is 15)
  // in two bitmaps, in the 16-count words the run covers whole and in its
  // partial ends; bitmap 2 untouched.
  const std::vector<std::pair<block_address, uint32_t>> before = {
      {e - 40, 13}, {e - 30, 13}, {e - 20, 14}, {e - 10, 2}, {e - 6, 1}, {e - 1, 14},
      {e + 3, 20},  {e + 5, 13},  {e + 20, 1},  {e + 33, 2}, {e + 39, 14}};
  for (auto &[x, c] : before) a.set(x, c), b.set(x, c);
  a.commit(), b.commit();
  for (int round = 0; round < 3; round++) {
    a.inc_range(e - 40, 80);
    for (block_address x = e - 40; x < e + 40; x++) b.inc(x);
  }
  for (block_address x = 0; x < 3 * e; x++) ASSERT_EQ(a.get(x), b.get(x)) << x;
  EXPECT_EQ(a.get(e - 20), 17u);
  EXPECT_EQ(a.get(e + 3), 23u);
  EXPECT_EQ(a.overflow_entries(), b.overflow_entries());
  EXPECT_EQ(a.nr_allocated(), b.nr_allocated());
  EXPECT_EQ(a.dirty_bitmaps(), (std::vector<uint64_t>{0, 1}));
  EXPECT_TRUE(a.overflow_dirty());

  // A run of blocks from 0 to 1 marks its bitmap dirty but not the overflow.
  a.commit();
  a.inc_range(2 * e + 10, 100);
  EXPECT_EQ(a.dirty_bitmaps(), std::vector<uint64_t>{2});
  EXPECT_FALSE(a.overflow_dirty());
  EXPECT_EQ(a.nr_allocated(), b.nr_allocated() + 100);
  // One whole word of counts going from 1 to 2, then from 2 to 3.
  a.commit();
  a.inc_range(2 * e + 16, 16);
  EXPECT_FALSE(a.overflow_dirty());
  a.commit();
  a.inc_range(2 * e + 16, 16);
  EXPECT_TRUE(a.overflow_dirty());
  EXPECT_EQ(a.overflow_entries().size(), b.overflow_entries().size() + 16);
  EXPECT_THROW(a.inc_range(3 * e - 1, 2), std::exception);
  EXPECT_THROW(a.inc_range(1, ~0ull), std::exception);
}

TEST(space_map, a_block_freed_since_the_commit_is_not_reallocated_before_the_next) {
  pdata::space_map sm(4);
  sm.commit();
  auto a = sm.allocate(), b = sm.allocate();
  ASSERT_TRUE(a && b);
  sm.commit();
  sm.dec(*a);  // was committed: stays reserved
  auto c = sm.allocate(), d = sm.allocate();
  ASSERT_TRUE(c && d);
  EXPECT_NE(*c, *a);
  EXPECT_NE(*d, *a);
  EXPECT_FALSE(sm.allocate());
  sm.commit();
  EXPECT_EQ(sm.allocate(), a);
}

TEST(transaction_manager, write_now_blocks_are_gathered_readable_meanwhile_and_written_by_flush_blocks) {
  pdata::memory_block_io mem(64);
  test::counting_block_io io(mem);
  pdata::space_map sm(64);
  sm.set(0, 1);
  pdata::transaction_manager tm(io, sm);
  std::vector<block_address> blocks;
  for (int i = 0; i < 10; i++) {
    block_address b;
    unsigned char *p = tm.new_block(b, pdata::checksum_salt::btree_node);
    std::memset(p + 64, 0x40 + i, 100);
    tm.write_now(b);
    blocks.push_back(b);
  }
  for (int i = 0; i < 10; i++) {
    auto r = tm.read(blocks[static_cast<std::size_t>(i)]);
    EXPECT_EQ(r->raw()[64], 0x40 + i);
    EXPECT_EQ(r->raw()[163], 0x40 + i);
  }
  EXPECT_EQ(io.write_requests, 0u);
  tm.flush_blocks();
  EXPECT_EQ(io.write_requests, 1u);  // ten consecutive blocks, one request
  for (int i = 0; i < 10; i++) {
    pdata::block_buffer buf;
    mem.read(blocks[static_cast<std::size_t>(i)], buf.raw(), 1);
    EXPECT_EQ(buf.raw()[64], 0x40 + i);
    EXPECT_TRUE(pdata::checksum_ok(buf.raw(), pdata::checksum_salt::btree_node));
  }
}

}  // namespace
