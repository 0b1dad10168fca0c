// The thin trees on top of persistent-data B-trees:
//   device details tree  dev_id -> device_details_disk (24 bytes)
//   mapping tree         dev_id -> root of that device's tree
//                          virtual block -> block_time (data block << 24 | time)
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <vector>

#include "persistent-data/btree_walk.h"
#include "thin/format/superblock_disk.h"

namespace thin {

using pdata::block_address;

struct device_details {
  uint64_t mapped_blocks = 0;
  uint64_t transaction_id = 0;
  uint32_t creation_time = 0;
  uint32_t snapshotted_time = 0;
};

device_details decode_device_details(const unsigned char *p);
void encode_device_details(const device_details &d, unsigned char *p);

using damage_fn = std::function<void(const pdata::btree_damage &)>;

// All device details, by dev_id. Damage goes to `on_damage`.
std::map<uint64_t, device_details> read_details_tree(pdata::block_cache &cache, block_address root,
                                                     const damage_fn &on_damage);

// The top level of the mapping tree: (dev_id, subtree root) in dev_id order.
std::vector<std::pair<uint64_t, block_address>> read_mapping_top_level(pdata::block_cache &cache,
                                                                       block_address root,
                                                                       const damage_fn &on_damage);

// Calls `fn(origin, data_block, time)` for each mapping of one device's
// subtree, in origin order.
using mapping_fn = std::function<void(uint64_t origin, uint64_t data_block, uint32_t time)>;
void walk_device_mappings(pdata::block_cache &cache, block_address subtree_root, const mapping_fn &fn,
                          const damage_fn &on_damage);

}  // namespace thin
