// Damage records: every problem the checker finds, as a typed record
// (metadata damage is data, not exceptions). Each names its problem in the
// catalogue (problems.h), which gives its severity and wording.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "persistent-data/btree_walk.h"
#include "thin/check/problems.h"

namespace thin {

enum class damage_kind {
  superblock,            // block 0 (or the metadata snapshot copy) unusable
  superblock_field,      // a superblock field out of range
  details_tree,          // a node of the device details tree
  mapping_top_level,     // a node of the mapping tree's top level
  mapping_tree,          // a node of one device's mapping tree
  device_missing,        // mappings without details, or details without mappings
  mapped_blocks,         // details.mapped_blocks differs from the mappings counted
  mapping_value,         // a mapping's data block or time is impossible
  metadata_space_map,    // the metadata space map's own structure
  data_space_map,        // the data space map's own structure
  metadata_ref_count,    // a metadata block's count differs from the references found
  data_ref_count,        // a data block's count differs from the mappings found
};

const char *to_string(damage_kind k);

struct damage {
  damage_kind kind;
  bool fatal = true;                 // false: a leak or a hint; the metadata still means the same
  std::optional<uint64_t> block;     // metadata block concerned
  std::optional<uint64_t> dev_id;    // thin device concerned
  std::optional<pdata::key_range> keys;  // keys (dev ids or origin blocks) lost or affected
  std::string what;                  // one line for humans
  // A stale space-map hint that only hides free space (an index entry's
  // nr_free or none_free_before understated, a root's nr_allocated
  // overstated). Never fatal; it does not count as a problem in
  // check_result (0.9.0 and 1.x do not report it, thin_restore 0.9.0 leaves
  // such hints, and the kernel tolerates them), and thin_check does not print it.
  bool hint = false;
  problem_id id = problem_id::OTHER;  // the catalogue entry (fatal and hint follow from its severity)

  severity sev() const { return fatal ? severity::fatal : hint ? severity::hint : severity::leak; }
};

// A record of catalogue problem `id`, worded from `args`.
damage make_damage(problem_id id, damage_kind kind, const problem_args &args,
                   std::optional<uint64_t> block = std::nullopt, std::optional<uint64_t> dev_id = std::nullopt,
                   std::optional<pdata::key_range> keys = std::nullopt);

class damage_visitor {
 public:
  virtual ~damage_visitor() = default;
  virtual void visit(const damage &d) = 0;
};

}  // namespace thin
