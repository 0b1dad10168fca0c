// count_down: a space map's bitmaps loaded as they are, references taken off
// one by one, counts of 3+ counted per block through the rank index.
#include <gtest/gtest.h>

#include <vector>

#include "persistent-data/count_down.h"
#include "persistent-data/space_map_disk.h"

namespace {

using pdata::block_address;
using pdata::count_down;
using pdata::entries_per_bitmap;

std::vector<unsigned char> bitmap_data() { return std::vector<unsigned char>(pdata::block_size - 16, 0); }

TEST(count_down, ones_and_twos_are_used_up_by_exactly_that_many_references) {
  auto d = bitmap_data();
  pdata::bitmap_set(d.data(), 0, 1);
  pdata::bitmap_set(d.data(), 1, 2);
  pdata::bitmap_set(d.data(), 33, 2);
  count_down cd(100);
  auto st = cd.load_bitmap(0, d.data());
  cd.finish_loading();
  EXPECT_EQ(st.nr_allocated, 3u);
  EXPECT_EQ(st.nr_free, 97u);
  EXPECT_EQ(st.first_free, 2u);
  EXPECT_EQ(st.beyond_end, 0u);
  EXPECT_FALSE(cd.small_counts_used_up());
  EXPECT_TRUE(cd.take(0));
  EXPECT_FALSE(cd.take(0));  // a second reference: more than the bitmap holds
  EXPECT_TRUE(cd.take(1));
  EXPECT_FALSE(cd.small_counts_used_up());
  EXPECT_TRUE(cd.take(1));
  EXPECT_TRUE(cd.take(33));
  EXPECT_FALSE(cd.small_counts_used_up());  // block 33 has one left (a leak)
  EXPECT_TRUE(cd.take(33));
  EXPECT_TRUE(cd.small_counts_used_up());
  EXPECT_FALSE(cd.take(2));  // free
}

TEST(count_down, take_left_says_what_was_left_before_each_reference_as_remaining_does) {
  auto d = bitmap_data();
  pdata::bitmap_set(d.data(), 0, 1);
  pdata::bitmap_set(d.data(), 1, 2);
  pdata::bitmap_set(d.data(), 40, 3);
  count_down cd(entries_per_bitmap + 10);  // bitmap 1 all free: no page
  cd.load_bitmap(0, d.data());
  cd.load_bitmap(1, bitmap_data().data());
  cd.finish_loading();
  for (block_address b : {0, 1, 40}) {
    const uint32_t before = cd.remaining(b);
    EXPECT_EQ(cd.take_left(b), before) << b;
  }
  EXPECT_EQ(cd.remaining(1), 1u);
  EXPECT_EQ(cd.take_left(1), 1u);
  EXPECT_EQ(cd.take_left(1), 0u);  // used up
  EXPECT_EQ(cd.take_left(0), 0u);
  EXPECT_EQ(cd.take_left(40), 3u);  // a 3 stays a 3: its references are counted
  EXPECT_EQ(cd.found(40), 2u);
  EXPECT_EQ(cd.take_left(2), 0u);                       // free
  EXPECT_EQ(cd.take_left(entries_per_bitmap + 3), 0u);  // in an all-free bitmap
  EXPECT_TRUE(cd.small_counts_used_up());
}

TEST(count_down, threes_are_counted_per_block_through_the_rank_index_past_255) {
  const block_address n = 2 * entries_per_bitmap + 100;
  std::vector<std::vector<unsigned char>> maps(3, bitmap_data());
  std::vector<block_address> threes = {5, 31, 32, 255, 256, 257, entries_per_bitmap + 7, 2 * entries_per_bitmap + 99};
  for (block_address b : threes) pdata::bitmap_set(maps[b / entries_per_bitmap].data(), static_cast<uint32_t>(b % entries_per_bitmap), 3);
  count_down cd(n);
  for (uint64_t i = 0; i < 3; i++) cd.load_bitmap(i, maps[i].data());
  cd.finish_loading();
  EXPECT_EQ(cd.nr_threes(), threes.size());
  for (std::size_t i = 0; i < threes.size(); i++) {
    EXPECT_TRUE(cd.is_three(threes[i]));
    for (std::size_t k = 0; k < 3 + i; k++) EXPECT_TRUE(cd.take(threes[i]));
  }
  for (int k = 0; k < 1000; k++) cd.take(256);
  EXPECT_FALSE(cd.is_three(4));
  for (std::size_t i = 0; i < threes.size(); i++)
    EXPECT_EQ(cd.found(threes[i]), threes[i] == 256 ? 1000 + 3 + i : 3 + i) << threes[i];
  EXPECT_TRUE(cd.small_counts_used_up());
}

TEST(count_down, the_last_bitmap_reports_entries_beyond_the_end_and_counts_free_only_below_it) {
  auto d = bitmap_data();
  pdata::bitmap_set(d.data(), 0, 1);
  pdata::bitmap_set(d.data(), 1, 1);
  pdata::bitmap_set(d.data(), 40, 2);  // beyond an end of 40
  count_down cd(40);
  auto st = cd.load_bitmap(0, d.data());
  EXPECT_EQ(st.nr_allocated, 2u);
  EXPECT_EQ(st.beyond_end, 1u);
  EXPECT_EQ(st.nr_free, 38u);
  EXPECT_EQ(st.first_free, 2u);
  auto full = bitmap_data();
  for (uint32_t e = 0; e < 40; e++) pdata::bitmap_set(full.data(), e, 1);
  count_down cd2(40);
  auto st2 = cd2.load_bitmap(0, full.data());
  EXPECT_EQ(st2.nr_free, 0u);
  EXPECT_EQ(st2.first_free, entries_per_bitmap);
}

}  // namespace
