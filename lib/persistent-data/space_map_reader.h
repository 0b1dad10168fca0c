// Reading a space map from disk into memory.
//
// read_space_map() loads every reference count a data or metadata space map
// holds (bitmaps plus the overflow tree), checks the space map's own blocks
// (index block or index btree, bitmaps, overflow tree) and its hints, and
// lists the metadata blocks the space map itself occupies so a checker can
// count them. Problems are reported to a visitor, never thrown.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "persistent-data/block_cache.h"
#include "persistent-data/btree_walk.h"
#include "persistent-data/ref_counts.h"
#include "persistent-data/space_map_disk.h"

namespace pdata {

enum class space_map_kind { data, metadata };

// What can be wrong with a space map's own structure (typed, with the numbers
// involved; the checker words each from its problem catalogue, to_string()
// gives the same plain wording for the other tools).
enum class sm_fault : uint8_t {
  too_many_blocks,          // metadata: a: nr_blocks, b: the maximum
  too_many_bitmaps,         // data: a: nr_blocks, b: bitmaps needed, c: metadata blocks
  index_beyond_end,         // metadata index block `block` is past the device
  index_read_error,         // io_text
  index_wrong_blocknr,      // a: the block number it claims
  index_bad_checksum,
  index_tree_damage,        // data: `tree` (keys: bitmap numbers lost)
  overflow_tree_damage,     // `tree` (keys: blocks whose counts are lost)
  index_entry_missing,      // a: bitmap number
  bitmap_beyond_end,        // a: bitmap number, b: its first block; `block` the pointer
  bitmap_shared,            // the same, a block another bitmap already uses
  bitmap_read_error,        // io_text
  bitmap_wrong_blocknr,     // a: bitmap number, b: the block number it claims
  bitmap_bad_checksum,      // a: bitmap number
  count_without_overflow,   // a: the block whose bitmap entry is 3 with no tree entry
  entries_beyond_end,       // non-fatal: a: bitmap number, b: entries set, c: nr_blocks
  index_nr_free_understated,         // hint: a: bitmap, b: nr_free said, c: free entries
  index_none_free_before_overstated, // hint: a: bitmap, b: none_free_before said, c: first free
  overflow_beyond_end,      // non-fatal: a: the block
  overflow_count_below_3,   // non-fatal: a: the count, b: the block
};

struct space_map_problem {
  space_map_kind sm = space_map_kind::metadata;
  sm_fault fault = sm_fault::too_many_blocks;
  block_address block = 0;  // the space-map block concerned (0 when none)
  uint64_t a = 0, b = 0, c = 0;
  std::optional<btree_damage> tree;  // index_tree_damage, overflow_tree_damage
  std::string io_text;               // *_read_error
  bool fatal = true;
  // A stale allocator hint that only hides free space (an index entry's
  // nr_free or none_free_before). The kernel tolerates it, thin_restore 0.9.0
  // leaves such hints behind, and neither 0.9.0 nor 1.x thin_check reports it.
  bool hint = false;
  std::string what;  // plain words (to_string)
};

std::string to_string(const space_map_problem &p);
const char *to_string(space_map_kind k);

class space_map_problem_visitor {
 public:
  virtual ~space_map_problem_visitor() = default;
  virtual void problem(const space_map_problem &p) = 0;
};

struct space_map_contents {
  block_address nr_blocks = 0;
  block_address nr_allocated_root = 0;  // as the root claims
  ref_counts counts;
  // Every metadata block the space map occupies (index block or index-btree
  // nodes, bitmaps, overflow-tree nodes), each once.
  std::vector<block_address> own_blocks;
  // True when every bitmap and the overflow tree could be read.
  bool complete = true;
};

space_map_contents read_space_map(block_cache &cache, const disk_sm_root &root, space_map_kind kind,
                                  space_map_problem_visitor &problems);

}  // namespace pdata
