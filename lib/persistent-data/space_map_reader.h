// Reading a space map from disk into memory.
//
// read_space_map() loads every reference count a data or metadata space map
// holds (bitmaps plus the overflow tree), checks the space map's own blocks
// (index block or index btree, bitmaps, overflow tree) and its hints, and
// lists the metadata blocks the space map itself occupies so a checker can
// count them. Problems are reported to a visitor, never thrown.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "persistent-data/block_cache.h"
#include "persistent-data/ref_counts.h"
#include "persistent-data/space_map_disk.h"

namespace pdata {

enum class space_map_kind { data, metadata };

struct space_map_problem {
  block_address block;  // the space-map block concerned (0 when none)
  std::string what;
  bool fatal;
  // A stale allocator hint that only hides free space (an index entry's
  // nr_free or none_free_before). The kernel tolerates it, thin_restore 0.9.0
  // leaves such hints behind, and neither 0.9.0 nor 1.x thin_check reports it.
  bool hint = false;
};

// The texts of the hint problems (shared with thin_check's fast path, which
// must word them exactly as read_space_map does).
std::string index_nr_free_hint(space_map_kind kind, uint64_t bitmap, uint32_t said, uint32_t has);
std::string index_none_free_before_hint(space_map_kind kind, uint64_t bitmap, uint32_t said, uint32_t first_free);

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
