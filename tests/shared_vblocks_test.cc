// shared_vblocks (lib/thin/check/shared_vblocks.h): the fast check's record of
// the virtual block each shared data block is mapped at, which sends a pool
// to the exact checker when a shared block turns up at a second place.
#include <gtest/gtest.h>

#include <cstdint>

#include "thin/check/shared_vblocks.h"

TEST(shared_vblocks, references_at_one_virtual_block_agree_to_the_last) {
  thin::shared_vblocks v(100000);
  EXPECT_TRUE(v.note(70000, 12));
  EXPECT_TRUE(v.note(70000, 12));
  EXPECT_TRUE(v.last(70000, 12));
}

TEST(shared_vblocks, a_second_virtual_block_is_a_conflict_on_a_middle_or_the_last_reference) {
  thin::shared_vblocks v(100000);
  EXPECT_TRUE(v.note(5, 0));
  EXPECT_FALSE(v.note(5, 1));
  EXPECT_FALSE(v.last(5, 7));
  EXPECT_TRUE(v.last(5, 0));
}

TEST(shared_vblocks, a_block_never_noted_has_nothing_to_disagree_with) {
  thin::shared_vblocks v(1u << 20);
  EXPECT_TRUE(v.last(3, 99));
  EXPECT_TRUE(v.note(16384 * 3 + 1, 4));  // another page
  EXPECT_TRUE(v.last(16384 * 3, 99));     // same page, other block
  EXPECT_TRUE(v.last((1u << 20) - 1, 0));
}

TEST(shared_vblocks, virtual_block_zero_is_told_apart_from_no_reference) {
  thin::shared_vblocks v(10);
  EXPECT_TRUE(v.note(9, 0));
  EXPECT_FALSE(v.last(9, 1));
}

TEST(shared_vblocks, a_virtual_block_too_large_for_a_slot_counts_as_a_conflict) {
  thin::shared_vblocks v(10);
  EXPECT_FALSE(v.note(1, UINT32_MAX));
  EXPECT_TRUE(v.note(2, UINT32_MAX - 1));
  EXPECT_FALSE(v.last(2, UINT64_MAX));
}
