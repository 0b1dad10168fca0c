// An in-memory space map with the kernel's allocation rules, for writers.
//
// Holds every reference count and tracks what changed since the last commit
// so the on-disk form can be rewritten incrementally (see space_map_writer.h).
// Counts are kept in 4 bits a block (0..14; 15 means "look in the overflow
// map", which holds the rare counts of 15 and more), so counting the data
// blocks of a restore is a nibble update, not a hash-map insert, and memory is
// half a byte per block however many blocks are shared. The nibbles live in
// pages of one bitmap's blocks (space_map_pages.h), allocated when a non-zero
// count lands in one: a space map of 2^32 blocks with few in use costs a few
// MiB, not 2 GiB. Allocation follows the
// kernel: search from a cursor, wrap once, and never hand out a block that was
// in use in the last committed state, even if it was freed since, so the
// committed metadata stays intact until the next superblock is written.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "persistent-data/block.h"
#include "persistent-data/ref_counts.h"
#include "persistent-data/space_map_disk.h"
#include "persistent-data/space_map_pages.h"

namespace pdata {

class space_map {
 public:
  explicit space_map(block_address nr_blocks = 0);
  // Takes counts read from disk; they form the committed state.
  explicit space_map(const ref_counts &counts);

  block_address nr_blocks() const { return nr_blocks_; }
  // Grows the space map (new blocks are free). Shrinking is not supported.
  void extend(block_address new_nr_blocks);

  uint32_t get(block_address b) const {
    if (b >= nr_blocks_) return 0;
    uint32_t n = nibble(b);
    return n < overflow_nibble ? n : overflow_.at(b);
  }
  void set(block_address b, uint32_t count);
  void inc(block_address b, uint32_t by = 1);
  // inc(b) for every b in [first, first + len): one page lookup and one dirty
  // mark per bitmap, for the runs of blocks a restore maps.
  void inc_range(block_address first, block_address len);
  void dec(block_address b);

  // The on-disk 2-bit value of a block's count (3 = "3 or more").
  uint32_t value2(block_address b) const {
    uint32_t n = nibble(b);
    return n < 3 ? n : 3;
  }
  // Blocks with a count of 3 or more, in increasing order, with their counts.
  std::vector<std::pair<block_address, uint32_t>> overflow_entries() const;
  // The same, one at a time (no list: there may be millions).
  template <typename F>
  void for_each_overflow(F &&fn) const {
    // Pages present only; in them eight nibbles at a time: skip words where
    // no nibble is 3 or more (bits 3 or 2 set, or bits 1 and 0 both set).
    for (uint64_t p = 0; p < nibbles_.nr_pages(); p++) {
      const uint8_t *pg = nibbles_.page(p);
      if (!pg) continue;
      const block_address base = p * nibble_pages::page_blocks;
      for (std::size_t i = 0; i < nibble_pages::page_bytes; i += 8) {
        uint64_t w = 0;
        for (std::size_t k = 0; k < 8; k++) w |= uint64_t(pg[i + k]) << (8 * k);
        if (!(w & 0xCCCCCCCCCCCCCCCCull) && !(w & (w >> 1) & 0x1111111111111111ull)) continue;
        const block_address last = std::min<block_address>(base + 2 * (i + 8), nr_blocks_);
        for (block_address b = base + 2 * i; b < last; b++)
          if (nibble(b) >= 3) fn(b, get(b));
      }
    }
  }
  // Bitmap i's nibbles (entry e: byte e / 2, bits 4 * (e % 2)), or nullptr
  // when every count in it is zero.
  const uint8_t *bitmap_nibbles(uint64_t i) const { return nibbles_.page(i); }

  // Allocates a free block (count becomes 1), or nothing when none is free.
  std::optional<block_address> allocate();

  block_address nr_allocated() const { return nr_allocated_; }
  block_address nr_free() const { return nr_blocks() - nr_allocated_; }

  // Ends the transaction: blocks freed in it become allocatable, change
  // tracking restarts.
  void commit();

  // Bitmaps (index i covers blocks [i*16320, (i+1)*16320)) changed since the
  // last commit, and whether any count of 3 or more changed.
  bool bitmap_dirty(uint64_t i) const { return i < dirty_.size() && dirty_[i]; }
  std::vector<uint64_t> dirty_bitmaps() const;
  bool any_bitmap_dirty() const { return nr_dirty_ != 0; }
  bool overflow_dirty() const { return overflow_dirty_; }
  void mark_all_dirty();

 private:
  static constexpr uint32_t overflow_nibble = 15;
  using nibble_pages = count_pages<4>;
  uint32_t nibble(block_address b) const { return nibbles_.get(b); }
  void set_nibble(block_address b, uint32_t v) { nibbles_.set(b, v); }
  void store(block_address b, uint32_t old_count, uint32_t count);
  void changed(block_address b, uint32_t old_count, uint32_t new_count) {
    uint64_t i = b / entries_per_bitmap;
    if (!dirty_[i]) {
      dirty_[i] = 1;
      nr_dirty_++;
    }
    if (old_count >= 3 || new_count >= 3) overflow_dirty_ = true;
    if (!old_count && new_count) nr_allocated_++;
    if (old_count && !new_count) freed(b);
  }
  void freed(block_address b);

  block_address nr_blocks_ = 0;
  nibble_pages nibbles_;                                  // 4 bits a block
  std::unordered_map<block_address, uint32_t> overflow_;  // counts >= 15
  block_address nr_allocated_ = 0;
  block_address cursor_ = 0;
  // Blocks in use at the last commit that have been freed since: not reusable
  // until the next commit.
  std::unordered_set<block_address> freed_;
  // Blocks allocated in this transaction (free again -> reusable at once).
  std::unordered_set<block_address> fresh_;
  std::vector<uint8_t> dirty_;  // per bitmap
  uint64_t nr_dirty_ = 0;
  bool overflow_dirty_ = false;
};

}  // namespace pdata
