// thin_dump's library entry point: walk the metadata and feed an emitter.
#pragma once

#include <cstdint>
#include <optional>
#include <set>

#include "thin/ir/emitter.h"
#include "persistent-data/block_io.h"
#include "persistent-data/progress.h"

namespace thin {

struct dump_options {
  // Dump the metadata snapshot (held root) instead of the live metadata. An
  // explicit location must match the one the superblock records.
  bool use_metadata_snap = false;
  std::optional<uint64_t> metadata_snap_location;
  // Only these devices (all when empty).
  std::set<uint64_t> dev_ids;
  bool skip_mappings = false;
  // Told of the mappings emitted, of those the devices' details record;
  // nullptr: nobody.
  pdata::progress *progress = nullptr;
};

// Dumps the metadata on `io`. Throws metadata_error (naming the block and what
// is wrong) when the metadata cannot be read; output already emitted stays.
void dump_metadata(pdata::block_io &io, const dump_options &opts, emitter &e);

}  // namespace thin
