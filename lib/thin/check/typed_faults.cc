// Typed faults to catalogue records (see typed_faults.h).
#include "thin/check/typed_faults.h"

#include <fmt/format.h>

#include "persistent-data/checksum.h"
#include "thin/format/superblock.h"
#include "thin/format/superblock_disk.h"

namespace thin::detail {

using namespace pdata;

namespace {

problem_id id_of(btree_fault f) {
  switch (f) {
    case btree_fault::wrong_blocknr: return problem_id::BTREE_NODE_WRONG_BLOCKNR;
    case btree_fault::bad_checksum: return problem_id::BTREE_NODE_BAD_CHECKSUM;
    case btree_fault::entries_do_not_fit: return problem_id::BTREE_NODE_ENTRIES_DO_NOT_FIT;
    case btree_fault::too_many_entries: return problem_id::BTREE_NODE_TOO_MANY_ENTRIES;
    case btree_fault::no_type_flag: return problem_id::BTREE_NODE_NO_TYPE_FLAG;
    case btree_fault::both_type_flags: return problem_id::BTREE_NODE_BOTH_TYPE_FLAGS;
    case btree_fault::internal_value_size: return problem_id::BTREE_INTERNAL_VALUE_SIZE;
    case btree_fault::internal_empty: return problem_id::BTREE_INTERNAL_EMPTY;
    case btree_fault::leaf_value_size: return problem_id::BTREE_LEAF_VALUE_SIZE;
    case btree_fault::keys_out_of_order: return problem_id::BTREE_KEYS_OUT_OF_ORDER;
    case btree_fault::keys_outside_range: return problem_id::BTREE_KEYS_OUTSIDE_RANGE;
    case btree_fault::pointer_beyond_end: return problem_id::BTREE_POINTER_BEYOND_END;
    case btree_fault::too_deep: return problem_id::BTREE_TOO_DEEP;
    case btree_fault::cycle: return problem_id::BTREE_CYCLE;
    case btree_fault::read_error: return problem_id::BTREE_READ_ERROR;
  }
  return problem_id::OTHER;
}

// The values each B-tree fault's template names.
void add_btree_values(problem_args &args, const btree_damage &d) {
  const btree_error &e = d.error;
  args("block", d.block);
  switch (e.fault) {
    case btree_fault::wrong_blocknr: args("claimed", e.a); break;
    case btree_fault::entries_do_not_fit: args("max_entries", e.a)("value_size", e.b); break;
    case btree_fault::too_many_entries: args("nr_entries", e.a)("max_entries", e.b); break;
    case btree_fault::no_type_flag: args("flags", e.a); break;
    case btree_fault::internal_value_size: args("value_size", e.a); break;
    case btree_fault::leaf_value_size: args("value_size", e.a)("expected", e.b); break;
    case btree_fault::keys_out_of_order: args("index", e.a)("key", e.b)("prev_index", e.a - 1)("prev_key", e.c); break;
    case btree_fault::keys_outside_range:
      args("first_key", e.a)("last_key", e.b)("range", to_string(d.keys));
      break;
    case btree_fault::pointer_beyond_end: args("device_blocks", e.b); break;
    case btree_fault::too_deep: args("max_depth", e.a); break;
    case btree_fault::read_error: args("io", e.io_text); break;
    case btree_fault::bad_checksum:
    case btree_fault::both_type_flags:
    case btree_fault::internal_empty:
    case btree_fault::cycle: break;
  }
}

problem_id id_of(sm_fault f) {
  switch (f) {
    case sm_fault::too_many_blocks: return problem_id::SM_TOO_MANY_BLOCKS;
    case sm_fault::too_many_bitmaps: return problem_id::SM_TOO_MANY_BITMAPS;
    case sm_fault::index_beyond_end: return problem_id::SM_INDEX_BEYOND_END;
    case sm_fault::index_read_error: return problem_id::SM_INDEX_READ_ERROR;
    case sm_fault::index_wrong_blocknr: return problem_id::SM_INDEX_WRONG_BLOCKNR;
    case sm_fault::index_bad_checksum: return problem_id::SM_INDEX_BAD_CHECKSUM;
    case sm_fault::index_entry_missing: return problem_id::SM_INDEX_ENTRY_MISSING;
    case sm_fault::bitmap_beyond_end: return problem_id::SM_BITMAP_BEYOND_END;
    case sm_fault::bitmap_shared: return problem_id::SM_BITMAP_SHARED;
    case sm_fault::bitmap_read_error: return problem_id::SM_BITMAP_READ_ERROR;
    case sm_fault::bitmap_wrong_blocknr: return problem_id::SM_BITMAP_WRONG_BLOCKNR;
    case sm_fault::bitmap_bad_checksum: return problem_id::SM_BITMAP_BAD_CHECKSUM;
    case sm_fault::count_without_overflow: return problem_id::SM_COUNT_WITHOUT_OVERFLOW_ENTRY;
    case sm_fault::entries_beyond_end: return problem_id::SM_ENTRIES_BEYOND_END;
    case sm_fault::index_nr_free_understated: return problem_id::SM_INDEX_NR_FREE_HINT;
    case sm_fault::index_none_free_before_overstated: return problem_id::SM_INDEX_NONE_FREE_BEFORE_HINT;
    case sm_fault::overflow_beyond_end: return problem_id::SM_OVERFLOW_BEYOND_END;
    case sm_fault::overflow_count_below_3: return problem_id::SM_OVERFLOW_COUNT_BELOW_3;
    case sm_fault::index_tree_damage:
    case sm_fault::overflow_tree_damage: break;  // B-tree faults
  }
  return problem_id::OTHER;
}

// The values each space-map fault's template names.
void add_sm_values(problem_args &args, const space_map_problem &p) {
  args("sm", to_string(p.sm))("block", p.block);
  switch (p.fault) {
    case sm_fault::too_many_blocks: args("nr_blocks", p.a)("max_blocks", p.b); break;
    case sm_fault::too_many_bitmaps: args("nr_blocks", p.a)("bitmaps", p.b)("device_blocks", p.c); break;
    case sm_fault::index_read_error:
    case sm_fault::bitmap_read_error: args("io", p.io_text); break;
    case sm_fault::index_wrong_blocknr: args("claimed", p.a); break;
    case sm_fault::index_entry_missing:
    case sm_fault::bitmap_bad_checksum: args("bitmap", p.a); break;
    case sm_fault::bitmap_beyond_end:
    case sm_fault::bitmap_shared: args("bitmap", p.a)("first", p.b); break;
    case sm_fault::bitmap_wrong_blocknr: args("bitmap", p.a)("claimed", p.b); break;
    case sm_fault::count_without_overflow:
    case sm_fault::overflow_beyond_end: args("counted_block", p.a); break;
    case sm_fault::entries_beyond_end: args("bitmap", p.a)("entries", p.b)("nr_blocks", p.c); break;
    case sm_fault::index_nr_free_understated: args("bitmap", p.a)("said", p.b)("free", p.c); break;
    case sm_fault::index_none_free_before_overstated: args("bitmap", p.a)("said", p.b)("first_free", p.c); break;
    case sm_fault::overflow_count_below_3: args("count", p.a)("counted_block", p.b); break;
    case sm_fault::index_beyond_end:
    case sm_fault::index_bad_checksum:
    case sm_fault::index_tree_damage:
    case sm_fault::overflow_tree_damage: break;
  }
}

}  // namespace

damage btree_record(const btree_damage &d, damage_kind kind, const std::string &where, const char *lost,
                    std::optional<uint64_t> dev_id) {
  problem_args args;
  args("where", where)("lost", fmt::format(" ({} {} lost)", lost, to_string(d.keys)));
  add_btree_values(args, d);
  return make_damage(id_of(d.error.fault), kind, args, d.block, dev_id, d.keys);
}

damage space_map_record(const space_map_problem &p) {
  const damage_kind kind =
      p.sm == space_map_kind::metadata ? damage_kind::metadata_space_map : damage_kind::data_space_map;
  damage d;
  if (p.tree) {
    const bool index = p.fault == sm_fault::index_tree_damage;
    d = btree_record(*p.tree, kind,
                     index ? std::string("data space map index btree: ")
                           : fmt::format("{} space map reference count tree: ", to_string(p.sm)),
                     index ? "bitmaps" : "counts for blocks");
    d.keys.reset();
  } else {
    problem_args args;
    add_sm_values(args, p);
    d = make_damage(id_of(p.fault), kind, args);
  }
  d.block.reset();
  if (p.block) d.block = p.block;
  return d;
}

std::optional<damage> superblock_record(const void *block, block_address location, const std::string &where) {
  auto *d = static_cast<const superblock_disk *>(block);
  problem_args args;
  args("where", where)("block", location);
  auto record = [&](problem_id id) { return make_damage(id, damage_kind::superblock, args, location); };
  if (is_all_zero(block)) return record(problem_id::SB_ALL_ZERO);
  if (d->magic.get() != superblock_magic) {
    args("magic", d->magic.get())("expected", superblock_magic);
    return record(problem_id::SB_BAD_MAGIC);
  }
  if (d->blocknr.get() != location) {
    args("claimed", d->blocknr.get());
    return record(problem_id::SB_WRONG_BLOCKNR);
  }
  if (!checksum_ok(block, checksum_salt::superblock)) return record(problem_id::SB_BAD_CHECKSUM);
  const uint32_t dbs = d->data_block_size.get();
  if (dbs < min_data_block_size || dbs > max_data_block_size || dbs % min_data_block_size) {
    args("size", dbs);
    return record(problem_id::SB_BAD_DATA_BLOCK_SIZE);
  }
  if (d->incompat_flags.get()) {
    args("flags", d->incompat_flags.get());
    return record(problem_id::SB_INCOMPAT_FLAGS);
  }
  return std::nullopt;
}

damage nr_allocated_record(space_map_kind sm, uint64_t root_says, uint64_t bitmaps_hold) {
  problem_args args;
  args("sm", to_string(sm))("said", root_says)("held", bitmaps_hold);
  return make_damage(
      bitmaps_hold > root_says ? problem_id::SM_NR_ALLOCATED_UNDERSTATED : problem_id::SM_NR_ALLOCATED_OVERSTATED,
      sm == space_map_kind::metadata ? damage_kind::metadata_space_map : damage_kind::data_space_map, args);
}

}  // namespace thin::detail
