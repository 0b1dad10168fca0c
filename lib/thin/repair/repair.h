// Repair: recover what damaged metadata still holds.
//
// repair_dump() is the tolerant walk: it descends every tree, skips nodes that
// cannot be used, and reports what was lost as key ranges per device, never
// stopping at the first error. When the superblock or its tree roots are
// unusable it scans the metadata for valid B-tree nodes and space-map index
// blocks, rebuilds candidate device-details and mapping trees, pairs them
// (same devices and mapped counts, all nodes allocated in the live space map)
// and uses the newest pair; devices a damaged top-level node lost are
// re-attached to scanned subtrees that fit, lost details recovered from
// scanned leaves (repair.cc says how). The recovered metadata goes to an
// emitter: XML for thin_dump --repair, the restore emitter for thin_repair.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "thin/ir/emitter.h"
#include "persistent-data/block_io.h"
#include "persistent-data/btree_walk.h"
#include "persistent-data/progress.h"

namespace thin {

struct repair_options {
  // Needed when the superblock is unreadable (data_block_size at least).
  superblock_overrides overrides;
  // Told of the mappings recovered, of those the devices' details record;
  // nullptr: nobody.
  pdata::progress *progress = nullptr;
};

struct lost_range {
  std::optional<uint64_t> dev;             // nothing: a range of device ids
  std::optional<pdata::key_range> keys;    // virtual blocks (or device ids); nothing: all
  pdata::block_address block = 0;          // the node that could not be used
  std::string why;
};

// A superblock value that could not be read and was guessed (the superblock
// was unusable and no option gave it).
struct guessed_value {
  std::string field;   // "transaction_id", "nr_data_blocks", "time"
  uint64_t value = 0;
  std::string from;    // what the guess was made from
  std::string option;  // the option that gives the real value ("" when none)
};

struct repair_report {
  bool superblock_ok = false;
  bool roots_found_by_scan = false;
  uint64_t transaction_id = 0;
  uint64_t devices = 0;
  uint64_t mappings = 0;
  uint64_t dropped_mappings = 0;  // impossible values (data block beyond the pool)
  std::vector<lost_range> lost;
  std::vector<std::string> notes;
  std::vector<guessed_value> guessed;

  std::string text() const;  // human summary, several lines
  std::string json() const;
};

// Throws metadata_error when nothing at all can be recovered (no superblock
// and no candidate trees, or values needed on the command line are missing).
void repair_dump(pdata::block_io &io, const repair_options &opts, emitter &e, repair_report &report);

}  // namespace thin
