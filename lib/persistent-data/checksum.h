// Block checksums: crc32c_raw(0xFFFFFFFF, block[4..4096)) ^ salt, stored as a
// little-endian u32 at byte 0. Each block type has its own salt.
//
// | block type                         | salt      | blocknr field |
// |------------------------------------|-----------|---------------|
// | thin superblock                    | 160774    | u64 @ 8       |
// | btree node (every btree)           | 121107    | u64 @ 8       |
// | space-map bitmap (data + metadata) | 240779    | u64 @ 8       |
// | metadata space-map index block     | 160478    | u64 @ 8       |
// | dm-array block (cache/era only)    | 595846735 | u64 @ 16      |
#pragma once

#include <cstdint>

#include "persistent-data/block.h"

namespace pdata {

enum class checksum_salt : uint32_t {
  superblock = 160774,
  btree_node = 121107,
  bitmap = 240779,
  index_block = 160478,
  array_block = 595846735,
};

// The checksum the block should carry (over bytes [4, 4096)).
uint32_t block_checksum(const void *block, checksum_salt salt);

// The checksum stored in bytes [0, 4).
uint32_t stored_checksum(const void *block);

bool checksum_ok(const void *block, checksum_salt salt);

// Recompute and store the checksum (the last step before writing a block).
void stamp_checksum(void *block, checksum_salt salt);

}  // namespace pdata
