// Compact reference counts (see ref_counts.h).
#include "persistent-data/ref_counts.h"

#include <algorithm>

#include <fmt/format.h>

#include "persistent-data/errors.h"

namespace pdata {

ref_counts::ref_counts(block_address nr_blocks) : nr_blocks_(nr_blocks), bits_((nr_blocks + 3) / 4, 0) {}

void ref_counts::set_small(block_address b, uint32_t v) {
  uint8_t &byte = bits_[b >> 2];
  unsigned sh = static_cast<unsigned>((b & 3) * 2);
  byte = static_cast<uint8_t>((byte & ~(3u << sh)) | (v << sh));
}

uint32_t ref_counts::get(block_address b) const {
  if (b >= nr_blocks_) return 0;
  uint32_t s = small(b);
  if (s < 3) return s;
  return overflow_.at(b);
}

void ref_counts::set(block_address b, uint32_t count) {
  if (b >= nr_blocks_) throw internal_error(fmt::format("ref count for block {} out of range", b));
  if (count >= 3) {
    set_small(b, 3);
    overflow_[b] = count;
  } else {
    if (small(b) == 3) overflow_.erase(b);
    set_small(b, count);
  }
}

void ref_counts::inc(block_address b) {
  if (b >= nr_blocks_) throw internal_error(fmt::format("ref count for block {} out of range", b));
  uint32_t s = small(b);
  if (s < 2)
    set_small(b, s + 1);
  else if (s == 2) {
    set_small(b, 3);
    overflow_[b] = 3;
  } else
    overflow_[b]++;
}

std::vector<std::pair<block_address, uint32_t>> ref_counts::overflow_entries() const {
  std::vector<std::pair<block_address, uint32_t>> out(overflow_.begin(), overflow_.end());
  std::sort(out.begin(), out.end());
  return out;
}

block_address ref_counts::nr_allocated() const {
  block_address n = 0;
  for (block_address b = 0; b < nr_blocks_; b++)
    if (small(b)) n++;
  return n;
}

}  // namespace pdata
