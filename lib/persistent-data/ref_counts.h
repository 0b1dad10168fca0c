// Compact in-memory reference counts: 2 bits per block plus an overflow map
// for counts of 3 and more, mirroring the on-disk space-map encoding. Used for
// counts read from a space map and for counts a checker computes from trees.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "persistent-data/block.h"

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

 private:
  uint32_t small(block_address b) const { return (bits_[b >> 2] >> ((b & 3) * 2)) & 3u; }
  void set_small(block_address b, uint32_t v);

  block_address nr_blocks_;
  std::vector<uint8_t> bits_;
  std::unordered_map<block_address, uint32_t> overflow_;
};

}  // namespace pdata
