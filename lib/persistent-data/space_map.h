// An in-memory space map with the kernel's allocation rules, for writers.
//
// Holds every reference count (2 bits a block plus overflow, see ref_counts)
// and tracks what changed since the last commit so the on-disk form can be
// rewritten incrementally (see space_map_writer.h). Allocation follows the
// kernel: search from a cursor, wrap once, and never hand out a block that was
// in use in the last committed state, even if it was freed since, so the
// committed metadata stays intact until the next superblock is written.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <unordered_set>

#include "block.h"
#include "ref_counts.h"
#include "space_map_disk.h"

namespace pdata {

class space_map {
 public:
  explicit space_map(block_address nr_blocks = 0);
  // Takes counts read from disk; they form the committed state.
  explicit space_map(ref_counts counts);

  block_address nr_blocks() const { return counts_.size(); }
  // Grows the space map (new blocks are free). Shrinking is not supported.
  void extend(block_address new_nr_blocks);

  uint32_t get(block_address b) const { return counts_.get(b); }
  void set(block_address b, uint32_t count);
  void inc(block_address b, uint32_t by = 1);
  void dec(block_address b);

  // Allocates a free block (count becomes 1), or nothing when none is free.
  std::optional<block_address> allocate();

  block_address nr_allocated() const { return nr_allocated_; }
  block_address nr_free() const { return nr_blocks() - nr_allocated_; }

  // Ends the transaction: blocks freed in it become allocatable, change
  // tracking restarts.
  void commit();

  // Bitmaps (index i covers blocks [i*16320, (i+1)*16320)) changed since the
  // last commit, and whether any count of 3 or more changed.
  const std::set<uint64_t> &dirty_bitmaps() const { return dirty_bitmaps_; }
  bool overflow_dirty() const { return overflow_dirty_; }
  void mark_all_dirty();

  const ref_counts &counts() const { return counts_; }

 private:
  void changed(block_address b, uint32_t old_count, uint32_t new_count);

  ref_counts counts_;
  block_address nr_allocated_ = 0;
  block_address cursor_ = 0;
  // Blocks in use at the last commit that have been freed since: not reusable
  // until the next commit.
  std::unordered_set<block_address> freed_;
  // Blocks allocated in this transaction (free again -> reusable at once).
  std::unordered_set<block_address> fresh_;
  std::set<uint64_t> dirty_bitmaps_;
  bool overflow_dirty_ = false;
};

}  // namespace pdata
