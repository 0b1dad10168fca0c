// Checking a space map's counts by counting down, in a few bits per block.
//
// The checker loads the on-disk bitmaps as they are (2 bits an entry, the
// on-disk layout, 16320 entries = 510 words a bitmap), then takes one count
// off for every reference it finds. A space map that agrees with the
// references ends with every 1 and 2 used up. Entries of 3 ("look in the
// overflow tree") are not changed: the references to those blocks are counted
// in a byte each, found through a rank index over the 3s (one 64-bit prefix
// per page and 16 bits per 32 entries, in pages that hold a 3), and compared
// with the overflow tree afterwards.
//
// Memory follows the blocks in use, not the space map's size: a bitmap is
// kept (one page, 4 KiB) only if it has a non-zero entry; an all-free bitmap
// costs its page-table slot (8 bytes). Per page: 2 bits a block, plus 0.5
// bits a block of rank index if it holds a 3; 1 byte per block with an entry
// of 3 (counts of 255 and more spill into a small map).
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "persistent-data/block.h"
#include "persistent-data/space_map_disk.h"

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
  bool take(block_address b) { return take_left(b) != 0; }

  // take(b), saying what was left for b before it: 0 (nothing: the take
  // failed), 1, 2, or 3 for an entry of 3 (remaining() before the take).
  uint32_t take_left(block_address b) {
    // References come in runs: the page of the last one usually serves.
    block_address e64 = b - cur_first_;
    if (e64 >= entries_per_bitmap) {
      const uint64_t i = b / entries_per_bitmap;
      cur_first_ = i * entries_per_bitmap;
      cur_ = pages_[i].get();
      e64 = b - cur_first_;
    }
    page *p = cur_;
    if (!p) return 0;  // an all-free bitmap
    const uint32_t e = static_cast<uint32_t>(e64);
    uint64_t &w = p->words[e >> 5];
    const unsigned sh = (e & 31) * 2;
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
      return 3;
    }
    if (v == 0) return 0;
    // 2 (high only) -> 1 (low only); 1 (low only) -> 0.
    w ^= (v == 1 ? 3ull : 2ull) << sh;
    return v == 1 ? 2 : 1;
  }

  // The count left for block b: 0, 1, 2, or 3 for an entry of 3 (never changed).
  uint32_t remaining(block_address b) const {
    static constexpr uint32_t natural[4] = {0, 2, 1, 3};  // the encoding take() describes
    const page *p = pages_[b / entries_per_bitmap].get();
    if (!p) return 0;  // an all-free bitmap
    const uint32_t e = static_cast<uint32_t>(b % entries_per_bitmap);
    return natural[(p->words[e >> 5] >> ((e & 31) * 2)) & 3u];
  }

  // True when every entry of 1 or 2 was used up by references.
  bool small_counts_used_up() const;

  // Blocks whose entry is 3, and the references found to one of them.
  bool is_three(block_address b) const {
    const page *p = pages_[b / entries_per_bitmap].get();
    const uint32_t e = static_cast<uint32_t>(b % entries_per_bitmap);
    return p && ((p->words[e >> 5] >> ((e & 31) * 2)) & 3u) == 3;
  }
  uint64_t nr_threes() const { return nr_threes_; }
  uint64_t found(block_address b) const;
  // The 3s in block order: block b's place among them (b's entry must be 3),
  // and the references found to the 3 at a place.
  uint64_t rank_of_three(block_address b) const;
  uint64_t found_at_rank(uint64_t r) const;

 private:
  static uint64_t three_bits(uint64_t w) { return w & (w >> 1) & 0x5555555555555555ull; }
  void found_three(block_address b);
  static unsigned popcount(uint64_t x);

  static constexpr uint32_t words_per_bitmap = entries_per_bitmap / 32;
  static_assert(words_per_bitmap * 32 == entries_per_bitmap);
  // One bitmap's entries as loaded (a 64-bit word per 32 entries).
  struct page {
    uint64_t words[words_per_bitmap];
    uint64_t base = 0;                // 3s in the pages before this one
    std::unique_ptr<uint16_t[]> rank;  // 3s in this page before each word (pages with a 3 only)
  };

  block_address nr_blocks_;
  std::vector<std::unique_ptr<page>> pages_;  // per bitmap; null: all free
  block_address cur_first_ = 0;  // the page take() used last: its first block, the page
  page *cur_ = nullptr;           // (set by finish_loading)
  block_address last_three_ = ~0ull - 1;  // the last block of 3 found (none: b + 1 matches no block), its rank:
  uint64_t last_rank_ = 0;            // runs of blocks cost no rank lookups
  std::vector<uint8_t> found_;      // by rank; 255 = see spill_
  std::unordered_map<uint64_t, uint64_t> spill_;  // by rank: references beyond 255
  uint64_t nr_threes_ = 0;
};

}  // namespace pdata
