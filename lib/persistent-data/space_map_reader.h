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

#include "block_cache.h"
#include "ref_counts.h"
#include "space_map_disk.h"

namespace pdata {

enum class space_map_kind { data, metadata };

struct space_map_problem {
  block_address block;  // the space-map block concerned (0 when none)
  std::string what;
  bool fatal;
};

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
