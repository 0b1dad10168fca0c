// Compact reference counts (see ref_counts.h).
#include "persistent-data/ref_counts.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include <fmt/format.h>

#include "persistent-data/errors.h"

namespace pdata {

ref_counts::ref_counts(block_address nr_blocks) : nr_blocks_(nr_blocks), bits_(nr_blocks) {}

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
  // A byte holds four 2-bit counts; count the non-zero ones a word at a time.
  // Bytes past nr_blocks are always zero (set() refuses blocks beyond it).
  block_address n = 0;
  for (uint64_t p = 0; p < bits_.nr_pages(); p++) {
    const uint8_t *pg = bits_.page(p);
    if (!pg) continue;
    for (std::size_t i = 0; i < count_pages<2>::page_bytes; i += 8) {
      uint64_t w;
      std::memcpy(&w, pg + i, 8);
      n += static_cast<block_address>(std::popcount((w | (w >> 1)) & 0x5555555555555555ull));
    }
  }
  return n;
}

}  // namespace pdata
