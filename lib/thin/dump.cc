// thin_dump: walk -> emitter (see dump.h).
#include "dump.h"

#include <fmt/format.h>

#include "persistent-data/block_cache.h"
#include "persistent-data/space_map_disk.h"
#include "superblock.h"
#include "thin_trees.h"

namespace thin {

using namespace pdata;

namespace {

[[noreturn]] void throw_damage(const char *tree, const btree_damage &d) {
  throw metadata_error(fmt::format("{}: block {}: {}", tree, d.block, d.what));
}

}  // namespace

void dump_metadata(block_io &io, const dump_options &opts, emitter &e) {
  auto [sb, nr_data_blocks] = select_superblock(io, opts.use_metadata_snap, opts.metadata_snap_location);

  block_cache cache(io);
  auto details = read_details_tree(cache, sb.details_root,
                                   [](const btree_damage &d) { throw_damage("device details tree", d); });

  superblock_info si;
  si.time = sb.time;
  si.trans_id = sb.trans_id;
  si.flags = sb.flags;
  si.version = sb.version;
  si.data_block_size = sb.data_block_size;
  si.nr_data_blocks = nr_data_blocks;
  e.begin_superblock(si);

  auto devices = read_mapping_top_level(cache, sb.mapping_root,
                                        [](const btree_damage &d) { throw_damage("mapping tree (top level)", d); });
  for (auto &[dev_id, root] : devices) {
    if (!opts.dev_ids.empty() && !opts.dev_ids.count(dev_id)) continue;
    auto it = details.find(dev_id);
    if (it == details.end())
      throw metadata_error(
          fmt::format("mappings present for device {}, but it isn't present in the device details tree", dev_id));
    const device_details &d = it->second;
    e.begin_device({dev_id, d.mapped_blocks, d.transaction_id, d.creation_time, d.snapshotted_time});
    if (!opts.skip_mappings) {
      mapping_run_builder runs(e);
      walk_device_mappings(
          cache, root, [&](uint64_t origin, uint64_t data, uint32_t time) { runs.add(origin, data, time); },
          [dev_id](const btree_damage &bd) {
            throw metadata_error(fmt::format("mapping tree of device {}: block {}: {} (origin blocks {})", dev_id,
                                             bd.block, bd.what, to_string(bd.keys)));
          });
      runs.finish();
    }
    e.end_device();
  }
  e.end_superblock();
}

}  // namespace thin
