// From the typed faults of the lower layers (persistent-data's B-tree and
// space-map validators, the superblock fields) to catalogue records
// (internal to lib/thin/check: check.cc and fast_check.cc use it).
#pragma once

#include <optional>
#include <string>

#include "persistent-data/btree_walk.h"
#include "persistent-data/space_map_reader.h"
#include "thin/check/damage.h"

namespace thin::detail {

// A B-tree node that could not be used. `where` starts the message ("device
// details tree: block 7: "), `lost` names what the key range holds
// ("devices" -> " (devices [0, -) lost)").
damage btree_record(const pdata::btree_damage &d, damage_kind kind, const std::string &where, const char *lost,
                    std::optional<uint64_t> dev_id = std::nullopt);

// A problem read_space_map() found in a space map's own structure.
damage space_map_record(const pdata::space_map_problem &p);

// What is wrong with a superblock (block 0, or the metadata snapshot's copy at
// `location`), or nothing. `where` starts the message.
std::optional<damage> superblock_record(const void *block, pdata::block_address location, const std::string &where);

// A space-map root whose nr_allocated differs from what its bitmaps hold
// (the caller knows they differ).
damage nr_allocated_record(pdata::space_map_kind sm, uint64_t root_says, uint64_t bitmaps_hold);

}  // namespace thin::detail
