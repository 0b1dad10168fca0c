// Checking a space map's counts by counting down, in a few bits per block.
//
// The checker loads the on-disk bitmaps as they are (2 bits an entry, the
// on-disk layout, 16320 entries = 510 words a bitmap), then takes one count
// off for every reference it finds. A space map that agrees with the
// references ends with every 1 and 2 used up. Entries of 3 ("look in the
// overflow tree") are not changed: the references to those blocks are counted
// in a byte each, found through a rank index over the 3s (one 64-bit prefix
// per 256 entries and a byte per 32), and compared with the overflow tree afterwards.
//
// Memory: 2 bits a block + 0.5 bits a block (rank index) + 1 byte per block
// with an entry of 3 (counts of 255 and more spill into a small map).
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "persistent-data/block.h"

namespace pdata {

class count_down {
 public:
  // What a bitmap held (its hints are checked against this).
  struct bitmap_stats {
    uint32_t nr_free = 0;        // free entries below the end of the space map
    uint32_t first_free;         // first free entry (entries_per_bitmap when none)
    uint32_t beyond_end = 0;     // non-zero entries at or beyond the end
    uint64_t nr_allocated = 0;   // non-zero entries below the end
  };

  explicit count_down(block_address nr_blocks);

  block_address size() const { return nr_blocks_; }

  // Loads bitmap i from its data area (the block past its 16-byte header).
  bitmap_stats load_bitmap(uint64_t i, const unsigned char *data);
  // Builds the rank index; call once after every bitmap is loaded.
  void finish_loading();

  // One reference to block b (b < size()). False when the bitmap has no count
  // left for it (more references than the space map holds).
  bool take(block_address b) {
    uint64_t &w = words_[b >> 5];
    const unsigned sh = static_cast<unsigned>((b & 31) * 2);
    const uint64_t v = (w >> sh) & 3u;  // bit 0: the HIGH bit, bit 1: the LOW bit
    if (v == 3) {
      // Mappings come in runs of consecutive data blocks: the next block of
      // 3 after the last one has the next rank.
      if (b == last_three_ + 1 && found_[last_rank_ + 1] < 255) {
        last_three_ = b;
        found_[++last_rank_]++;
      } else {
        found_three(b);
      }
      return true;
    }
    if (v == 0) return false;
    // 2 (high only) -> 1 (low only); 1 (low only) -> 0.
    w ^= (v == 1 ? 3ull : 2ull) << sh;
    return true;
  }

  // The count left for block b: 0, 1, 2, or 3 for an entry of 3 (never changed).
  uint32_t remaining(block_address b) const {
    static constexpr uint32_t natural[4] = {0, 2, 1, 3};  // the encoding take() describes
    return natural[(words_[b >> 5] >> ((b & 31) * 2)) & 3u];
  }

  // True when every entry of 1 or 2 was used up by references.
  bool small_counts_used_up() const;

  // Blocks whose entry is 3, and the references found to one of them.
  bool is_three(block_address b) const { return ((words_[b >> 5] >> ((b & 31) * 2)) & 3u) == 3; }
  uint64_t nr_threes() const { return nr_threes_; }
  uint64_t found(block_address b) const;

 private:
  static uint64_t three_bits(uint64_t w) { return w & (w >> 1) & 0x5555555555555555ull; }
  uint64_t rank_of_three(block_address b) const;
  void found_three(block_address b);
  static unsigned popcount(uint64_t x);

  block_address nr_blocks_;
  std::vector<uint64_t> words_;
  std::vector<uint64_t> rank_;      // 3s before each group of 8 words
  std::vector<uint8_t> sub_rank_;   // 3s before each word within its group (at most 7 * 32)
  block_address last_three_ = ~0ull - 1;  // the last block of 3 found (none: b + 1 matches no block), its rank:
  uint64_t last_rank_ = 0;            // runs of blocks cost no rank lookups
  std::vector<uint8_t> found_;      // by rank; 255 = see spill_
  std::unordered_map<block_address, uint64_t> spill_;  // references beyond 255
  uint64_t nr_threes_ = 0;
};

}  // namespace pdata
