// thin_check's library entry point: examine metadata and report damage.
//
// Passes, in order (each announced to the reporter, as thin_check prints them):
//   1. examining superblock       magic, blocknr, checksum, fields
//   2. examining devices tree     every node of the details tree
//   3. examining mapping tree     every node of both levels, details vs top
//                                 level, each device's mapped_blocks, mapping
//                                 values (data block < nr_data_blocks, time)
//   4. checking space map counts  metadata counts (all trees, shared nodes, the
//                                 space maps' own blocks) and data counts
//                                 against the two space maps
// Leaks (a count on disk higher than the references found) and space-map hints
// are non-fatal; everything else is fatal.
//
// Passes 2-4 first run as a fast path (fast_check.h) that proves sound metadata
// clean in one read of each used block and a few bits a block; on any doubt the
// exact checker runs them instead and reports, with the same stages.
// check_options::exact_only skips the fast path (same verdict and records).
#pragma once

#include <cstdint>
#include <optional>

#include "thin/check/damage.h"
#include "persistent-data/block_io.h"
#include "persistent-data/progress.h"

namespace thin {

struct check_options {
  bool use_metadata_snap = false;
  bool superblock_only = false;
  bool skip_mappings = false;  // top level of the mapping tree only; no counts
  std::optional<uint64_t> override_mapping_root;
  // Skip the fast path (fast_check.h) and run the exact checker only: same
  // verdict and records, more time and memory. For tests and comparisons.
  bool exact_only = false;
  // Told of the metadata blocks read (of the used ones the metadata space
  // map counts) while the trees are examined; nullptr: nobody.
  pdata::progress *progress = nullptr;
};

// What --auto-repair did.
struct auto_repair_result {
  bool repaired = false;       // leaks fixed and NEEDS_CHECK cleared (or nothing needed)
  std::string refused;         // why nothing was written (empty when repaired)
  uint64_t metadata_leaks_fixed = 0, data_leaks_fixed = 0;
};

class check_reporter : public damage_visitor {
 public:
  // A pass begins ("examining superblock", ...).
  virtual void stage(const char *name) = 0;
  // The superblock was readable: its transaction id and the metadata free
  // block count thin_check prints.
  virtual void info(uint64_t transaction_id, uint64_t metadata_free_blocks) = 0;
};

struct check_result {
  bool fatal = false;
  bool non_fatal = false;
  bool fully_examined = false;  // every pass ran over the whole metadata
  bool superblock_ok = false;
  bool needs_check = false;     // NEEDS_CHECK flag was set
  uint64_t transaction_id = 0;

  bool hints = false;            // stale space-map hints only (damage::hint); not a problem

  bool clean() const { return !fatal && !non_fatal; }
  // Clean, and not even a stale hint (what thinkit's own writers must produce).
  bool spotless() const { return clean() && !hints; }
};

check_result check_metadata(pdata::block_io &io, const check_options &opts, check_reporter &r);

// Rewrites only the superblock with NEEDS_CHECK cleared (checksum recomputed,
// every other byte kept), then flushes. Returns false when the flag was not set
// (nothing written).
bool clear_needs_check_flag(pdata::block_io &io);

// thin_check --auto-repair: after a full check whose only problems are leaks
// (space-map counts above the references found) and space-map hints,
// rewrites the space maps with the true counts (copy-on-write, superblock
// last) and clears NEEDS_CHECK. Under-counts and tree damage are refused
// and nothing is written: those need thin_repair.
auto_repair_result auto_repair(pdata::block_io &io, check_reporter &r);

}  // namespace thin
