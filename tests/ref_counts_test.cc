// ref_counts: 2 bits a block plus an overflow map for counts of 3 and more.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <stdexcept>

#include "persistent-data/errors.h"
#include "persistent-data/ref_counts.h"

namespace {

TEST(ref_counts, a_new_table_is_all_zero) {
  pdata::ref_counts rc(10);
  EXPECT_EQ(rc.size(), 10u);
  for (pdata::block_address b = 0; b < 10; b++) EXPECT_EQ(rc.get(b), 0u);
  EXPECT_EQ(rc.nr_allocated(), 0u);
}

TEST(ref_counts, inc_counts_up_through_the_small_values_into_the_overflow) {
  pdata::ref_counts rc(9);
  for (uint32_t want = 1; want <= 10; want++) {
    rc.inc(4);
    ASSERT_EQ(rc.get(4), want);
  }
  // Neighbours sharing the same byte of the bitmap are untouched.
  EXPECT_EQ(rc.get(3), 0u);
  EXPECT_EQ(rc.get(5), 0u);
  EXPECT_EQ(rc.nr_allocated(), 1u);
}

TEST(ref_counts, set_stores_each_value_and_moves_between_small_and_overflow) {
  pdata::ref_counts rc(4);
  const uint32_t values[] = {0, 1, 2, 3, 2, 3, 4, 1, 0, 3, 0, 1000, 2};
  for (uint32_t v : values) {
    rc.set(2, v);
    ASSERT_EQ(rc.get(2), v);
    ASSERT_EQ(rc.nr_allocated(), v ? 1u : 0u);
    ASSERT_EQ(rc.get(1), 0u);
    ASSERT_EQ(rc.get(3), 0u);
  }
}

TEST(ref_counts, a_count_lowered_below_3_and_raised_again_does_not_keep_the_old_overflow) {
  pdata::ref_counts rc(4);
  rc.set(1, 50);
  rc.set(1, 2);
  EXPECT_EQ(rc.get(1), 2u);
  rc.inc(1);
  EXPECT_EQ(rc.get(1), 3u);  // not 51
  rc.inc(1);
  EXPECT_EQ(rc.get(1), 4u);
}

TEST(ref_counts, large_counts_survive_and_keep_counting) {
  pdata::ref_counts rc(100);
  rc.set(99, 1'000'000);
  rc.inc(99);
  EXPECT_EQ(rc.get(99), 1'000'001u);
  rc.set(0, std::numeric_limits<uint32_t>::max());
  EXPECT_EQ(rc.get(0), std::numeric_limits<uint32_t>::max());
  EXPECT_EQ(rc.get(98), 0u);
  EXPECT_EQ(rc.get(1), 0u);
  EXPECT_EQ(rc.nr_allocated(), 2u);
}

TEST(ref_counts, every_block_of_every_byte_position_is_independent) {
  // 13 blocks: the last byte of the 2-bit table is partly used.
  pdata::ref_counts rc(13);
  for (pdata::block_address b = 0; b < 13; b++) rc.set(b, static_cast<uint32_t>(b % 5));
  for (pdata::block_address b = 0; b < 13; b++) EXPECT_EQ(rc.get(b), b % 5) << b;
  // b % 5 is zero for 0, 5, 10.
  EXPECT_EQ(rc.nr_allocated(), 10u);
  rc.set(12, 0);
  EXPECT_EQ(rc.get(11), 1u);
  EXPECT_EQ(rc.nr_allocated(), 9u);
}

TEST(ref_counts, nr_allocated_counts_blocks_not_references) {
  pdata::ref_counts rc(20);
  rc.inc(0);
  rc.inc(0);
  rc.inc(0);
  rc.inc(0);
  rc.inc(7);
  rc.set(19, 2);
  EXPECT_EQ(rc.nr_allocated(), 3u);
  rc.set(0, 0);
  EXPECT_EQ(rc.nr_allocated(), 2u);
}

TEST(ref_counts, blocks_outside_the_table_read_zero_and_cannot_be_set) {
  pdata::ref_counts rc(5);
  EXPECT_EQ(rc.get(5), 0u);
  EXPECT_EQ(rc.get(1'000'000), 0u);
  EXPECT_THROW(rc.set(5, 1), pdata::internal_error);
  EXPECT_THROW(rc.inc(5), pdata::internal_error);
  EXPECT_EQ(rc.nr_allocated(), 0u);

  pdata::ref_counts empty;
  EXPECT_EQ(empty.size(), 0u);
  EXPECT_EQ(empty.get(0), 0u);
  EXPECT_THROW(empty.inc(0), pdata::internal_error);
  EXPECT_EQ(empty.nr_allocated(), 0u);
}

TEST(ref_counts, a_table_of_a_million_blocks_tracks_sparse_counts) {
  const pdata::block_address n = 1'000'003;
  pdata::ref_counts rc(n);
  rc.inc(n - 1);
  rc.set(500'000, 7);
  rc.inc(500'000);
  EXPECT_EQ(rc.get(n - 1), 1u);
  EXPECT_EQ(rc.get(500'000), 8u);
  EXPECT_EQ(rc.get(n - 2), 0u);
  EXPECT_EQ(rc.nr_allocated(), 2u);
}

}  // namespace
