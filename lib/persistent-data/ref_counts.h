// Compact in-memory reference counts: 2 bits per block plus an overflow map
// for counts of 3 and more, mirroring the on-disk space-map encoding. Used for
// counts read from a space map and for counts a checker computes from trees.
// The 2-bit counts live in pages of one bitmap's blocks (space_map_pages.h)
// that exist only where a count is non-zero, so memory follows the blocks in
// use, not nr_blocks.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "persistent-data/block.h"
#include "persistent-data/space_map_pages.h"

namespace pdata {

class ref_counts {
 public:
  explicit ref_counts(block_address nr_blocks = 0);

  block_address size() const { return nr_blocks_; }
  uint32_t get(block_address b) const;
  void set(block_address b, uint32_t count);
  void inc(block_address b);

  // Number of blocks with a non-zero count.
  block_address nr_allocated() const;

  // The on-disk 2-bit value (3 = "3 or more").
  uint32_t value2(block_address b) const { return small(b); }
  // Blocks with a count of 3 or more, in increasing order, with their counts.
  std::vector<std::pair<block_address, uint32_t>> overflow_entries() const;

  // Blocks are held in pages of page_blocks; a page that is not present has
  // only zero counts (callers may skip it).
  static constexpr block_address page_blocks = count_pages<2>::page_blocks;
  uint64_t nr_pages() const { return bits_.nr_pages(); }
  bool page_present(uint64_t p) const { return bits_.page(p) != nullptr; }

 private:
  uint32_t small(block_address b) const { return b < nr_blocks_ ? bits_.get(b) : 0; }
  void set_small(block_address b, uint32_t v) { bits_.set(b, v); }

  block_address nr_blocks_;
  count_pages<2> bits_;
  std::unordered_map<block_address, uint32_t> overflow_;
};

}  // namespace pdata
