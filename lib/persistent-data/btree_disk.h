// On-disk layout of a persistent-data B-tree node (one 4 KiB block).
//
// | off            | size           | field                                   |
// |----------------|----------------|-----------------------------------------|
// | 0              | 4              | csum: crc32c over [4,4096), salt 121107 |
// | 4              | 4              | flags: INTERNAL = 1 or LEAF = 2         |
// | 8              | 8              | blocknr: the node's own location        |
// | 16             | 4              | nr_entries                              |
// | 20             | 4              | max_entries                             |
// | 24             | 4              | value_size (bytes)                      |
// | 28             | 4              | padding (0; not checked)                |
// | 32             | 8*max_entries  | keys[] (u64); [0, nr_entries) meaningful|
// | 32+8*max       | vsize*max      | values[]; value i at 32+8*max+i*vsize   |
//
// Values start after max_entries key slots, not nr_entries. Internal nodes
// always have value_size 8 (child block numbers) and max_entries 252; leaves
// have max_entries(value_size) = 3 * floor(floor(4064 / (8 + vsize)) / 3).
#pragma once

#include <cstddef>
#include <cstdint>

#include "persistent-data/block.h"
#include "persistent-data/endian.h"

namespace pdata {

enum btree_node_flags : uint32_t { internal_node = 1, leaf_node = 2 };

struct __attribute__((packed)) node_header_disk {
  le32 csum;
  le32 flags;
  le64 blocknr;
  le32 nr_entries;
  le32 max_entries;
  le32 value_size;
  le32 padding;
};
static_assert(sizeof(node_header_disk) == 32);
static_assert(offsetof(node_header_disk, flags) == 4);
static_assert(offsetof(node_header_disk, blocknr) == 8);
static_assert(offsetof(node_header_disk, nr_entries) == 16);
static_assert(offsetof(node_header_disk, max_entries) == 20);
static_assert(offsetof(node_header_disk, value_size) == 24);

constexpr std::size_t node_header_size = sizeof(node_header_disk);

// The kernel's calc_max_entries for a 4 KiB block.
constexpr uint32_t btree_max_entries(uint32_t value_size) {
  return static_cast<uint32_t>(3 * (((block_size - node_header_size) / (8 + value_size)) / 3));
}
static_assert(btree_max_entries(8) == 252);
static_assert(btree_max_entries(4) == 336);
static_assert(btree_max_entries(16) == 168);
static_assert(btree_max_entries(24) == 126);

}  // namespace pdata
