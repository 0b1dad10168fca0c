// The rules on metadata values that thin_check enforces and that XML can
// carry, each defined once. thin_restore (the XML parser and the restore
// emitter) refuses input that breaks one, and the checker (exact and fast
// path) reports metadata that breaks one, through these same functions: so
// nothing restore accepts is rejected by the checker.
//
//   mapping_block_ok   a mapping's data block lies on the data device
//                      (below the data space map's nr_blocks)
//   mapping_time_ok    a mapping's time is not after the superblock's: the
//                      kernel decides whether a block is shared with a
//                      snapshot by comparing that time with the device's
//                      snapshot time, so a time from the future makes a
//                      shared block look unshared (writes go in place)
//   data_block_size_ok a multiple of 128 sectors, 128..2097152
//   dev_id_ok          a device id fits in the 24 bits the kernel allows
//
// One more rule is about a device as a whole, and is checked where a
// device's data blocks are seen together: no data block is mapped twice
// within one thin device (dm-thin decides sharing by time, not by count, so
// a write through one of the mappings would silently change the other).
// Sharing across devices (snapshots) is normal. restore and repair keep a
// device's blocks in a data_block_set (data_block_set.h).
//
// No rule covers a device's creation_time or snap_time: thin_check 0.9.0 and
// 1.3.3 accept times after the superblock's, and the kernel only takes more
// blocks for shared (more copies, never a write into a shared block).
// mapped_blocks needs none either: restore recomputes it from the mappings.
#pragma once

#include <cstdint>

#include "thin/format/superblock_disk.h"

namespace thin::invariants {

constexpr bool mapping_block_ok(uint64_t data_block, uint64_t nr_data_blocks) { return data_block < nr_data_blocks; }

constexpr bool mapping_time_ok(uint64_t mapping_time, uint64_t superblock_time) {
  return mapping_time <= superblock_time;
}

constexpr bool data_block_size_ok(uint64_t sectors) {
  return sectors >= min_data_block_size && sectors <= max_data_block_size && sectors % min_data_block_size == 0;
}

constexpr bool dev_id_ok(uint64_t dev_id) { return dev_id <= max_dev_id; }

}  // namespace thin::invariants
