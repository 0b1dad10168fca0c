// thin_check's fast path for sound metadata (internal to lib/thin; check.cc
// is its only user).
//
// It proves metadata clean in one pass over the used blocks and a few bits a
// block, or gives up as soon as anything is out of the ordinary. It reports no
// damage itself: when it gives up, check.cc runs the exact checker, which
// finds and words every problem. So a clean verdict here must imply a clean
// verdict from the exact checker, and any doubt means giving up.
//
// Data flow (after check.cc has examined the superblock):
//   1. devices tree, mapping tree top level: walk_btree (small trees).
//   2. each device's subtree, live then metadata snapshot: depth first over
//      the internal nodes only; leaves are not read but listed as (block, key
//      range, parent) references. Whether the children of a node are leaves
//      is seen from the tree's height (its leftmost path, read first); a
//      node's internal children are read together in one batch.
//   3. the data space map's bitmaps are loaded into a count_down (2 bits a
//      data block); its overflow tree's leaves are listed like mapping leaves.
//   4. mapping leaves and overflow leaves, sorted by block and read in one
//      pass in runs of up to 1 MiB (persistent-data/run_reader.h): each
//      physical leaf is validated once, each reference's key range checked;
//      every mapping takes one count off its data block; the overflow tree's
//      counts are kept per data block of 3+ (4 bytes each; past a limit they
//      are read in a pass of their own after the mappings). A reader thread
//      reads and checksums runs ahead of the thread that decodes them.
//   5. mappings per device from per-node totals (shared subtrees count for
//      every device that reaches them); data counts of 3+ against the overflow
//      tree's counts; metadata counts against the metadata space map.
//
// Memory: per metadata block, 1 byte (what the block was reached as) and 1
// byte (references found); per data block, 2.25 bits plus 1 byte per block
// with a count of 3 or more, and 4 more while the overflow counts are kept;
// per leaf reference, 24 bytes; 4 MiB of read buffers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "persistent-data/progress.h"
#include "thin/check/check.h"
#include "thin/format/superblock.h"

namespace thin::detail {

// Runs passes 2-4 over sound metadata. Returns true when the metadata is
// clean (every stage was announced to `r`). Returns false when the exact
// checker must decide; `stages_announced` says how many stages were announced.
// On success `hints` receives the stale space-map hints found (damage::hint
// records of the same catalogue problems, in the exact checker's order).
// `p` (when given) is advanced by the metadata blocks read (internal nodes as they are
// read, leaves per run as this thread decodes them, the data bitmaps); the
// caller begins and ends it.
//
// The data overflow tree's leaves are read in the mapping leaves' pass when
// the counts they hold (4 bytes per data block with a count of 3 or more)
// number at most `max_merged_threes`, else in a pass of their own.
constexpr uint64_t default_max_merged_threes = uint64_t(16) << 20;  // 64 MiB
bool fast_check(pdata::block_io &io, const superblock &live, const superblock &sb, check_reporter &r,
                unsigned &stages_announced, std::vector<damage> &hints, pdata::progress *p = nullptr,
                uint64_t max_merged_threes = default_max_merged_threes);

}  // namespace thin::detail
