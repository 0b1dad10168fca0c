// Writing space maps in the kernel's on-disk format at commit time.
//
// Both space maps are rewritten incrementally and copy-on-write: a changed
// bitmap goes to a newly allocated block (the old one is freed, reusable
// after the commit); the index (data: a btree of index entries; metadata: one
// index block) and the overflow tree of counts >= 3 are rebuilt when they
// change. The metadata space map counts its own blocks, so writing it
// allocates blocks that change the counts it holds: the writer relocates
// bitmaps until no bitmap is left dirty and un-relocated (a fixpoint reached
// after a few rounds, since each bitmap moves at most once per commit).
#pragma once

#include <vector>

#include "persistent-data/space_map.h"
#include "persistent-data/space_map_disk.h"
#include "persistent-data/transaction_manager.h"

namespace pdata {

// Where a space map's structures live on disk now (empty for a new one).
struct space_map_layout {
  std::vector<block_address> bitmaps;  // location of bitmap i (0 = none yet)
  block_address index_root = 0;        // data: index btree root; metadata: index block
  block_address overflow_root = 0;     // overflow btree root (0 = none yet)
  std::vector<index_entry_disk> entries;  // data: index entries as last written
};

// Writes the data space map's changes; returns its new root. Call before
// write_metadata_space_map (it allocates metadata blocks).
disk_sm_root write_data_space_map(transaction_manager &tm, space_map &data_sm, space_map_layout &layout);

// Writes the metadata space map (tm.sm()); returns its new root. Call last,
// after every other metadata block of the transaction was allocated.
disk_sm_root write_metadata_space_map(transaction_manager &tm, space_map_layout &layout);

// The layout of a space map read from disk.
space_map_layout read_space_map_layout(block_cache &cache, const disk_sm_root &root, bool metadata);

}  // namespace pdata
