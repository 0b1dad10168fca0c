// On-disk layouts of persistent-data space maps (reference counts of data
// blocks or metadata blocks).
//
// disk_sm_root (32 bytes, stored in the first 32 of a 128-byte superblock area)
// | off | size | field          | meaning                                      |
// |-----|------|----------------|----------------------------------------------|
// | 0   | 8    | nr_blocks      | blocks managed                               |
// | 8   | 8    | nr_allocated   | blocks with a count > 0                      |
// | 16  | 8    | bitmap_root    | data SM: index btree root; metadata SM: index block |
// | 24  | 8    | ref_count_root | overflow btree (key block, value le32 count) |
//
// index_entry_disk (16 bytes)
// | 0   | 8    | blocknr          | location of bitmap i                       |
// | 8   | 4    | nr_free          | free entries in that bitmap (a hint)       |
// | 12  | 4    | none_free_before | lowest entry that may be free (a hint)     |
//
// bitmap block: bitmap_header_disk, then 4080 bytes of 2-bit entries (16320
// per bitmap). Entry e uses little-endian bits 2e (the HIGH bit of the value)
// and 2e+1 (the LOW bit). 0 free, 1 and 2 counts, 3 = look the count up in
// the overflow tree.
// | off | size | field            |                                            |
// |-----|------|------------------|--------------------------------------------|
// | 0   | 4    | csum             | crc32c over [4,4096), salt 240779          |
// | 4   | 4    | not_used         |                                            |
// | 8   | 8    | blocknr          | the bitmap's own location                  |
// | 16  | 4080 | entries          | 16320 2-bit counts                         |
//
// metadata index block (metadata_index_disk, one whole block):
// | off | size | field            |                                            |
// |-----|------|------------------|--------------------------------------------|
// | 0   | 4    | csum             | crc32c over [4,4096), salt 160478          |
// | 4   | 4    | padding          |                                            |
// | 8   | 8    | blocknr          | the index block's own location             |
// | 16  | 4080 | index[255]       | index_entry_disk per metadata bitmap       |
#pragma once

#include <cstddef>
#include <cstdint>

#include "persistent-data/block.h"
#include "persistent-data/endian.h"

namespace pdata {

struct __attribute__((packed)) disk_sm_root {
  le64 nr_blocks;
  le64 nr_allocated;
  le64 bitmap_root;
  le64 ref_count_root;
};
static_assert(sizeof(disk_sm_root) == 32);
static_assert(offsetof(disk_sm_root, bitmap_root) == 16);
static_assert(offsetof(disk_sm_root, ref_count_root) == 24);

struct __attribute__((packed)) index_entry_disk {
  le64 blocknr;
  le32 nr_free;
  le32 none_free_before;
};
static_assert(sizeof(index_entry_disk) == 16);
static_assert(offsetof(index_entry_disk, nr_free) == 8);

struct __attribute__((packed)) bitmap_header_disk {
  le32 csum;
  le32 not_used;
  le64 blocknr;
};
static_assert(sizeof(bitmap_header_disk) == 16);

constexpr uint32_t max_metadata_bitmaps = 255;

struct __attribute__((packed)) metadata_index_disk {
  le32 csum;
  le32 padding;
  le64 blocknr;
  index_entry_disk index[max_metadata_bitmaps];
};
static_assert(sizeof(metadata_index_disk) == block_size);
static_assert(offsetof(metadata_index_disk, index) == 16);

constexpr uint32_t entries_per_bitmap = (block_size - sizeof(bitmap_header_disk)) * 4;
static_assert(entries_per_bitmap == 16320);
constexpr block_address max_metadata_blocks = block_address(max_metadata_bitmaps) * entries_per_bitmap;
static_assert(max_metadata_blocks == 4161600);

// Decode / encode the 2-bit entry e of a bitmap's data area.
inline uint32_t bitmap_get(const unsigned char *data, uint32_t e) {
  unsigned char byte = data[e / 4];
  unsigned sh = 2 * (e % 4);
  return (((byte >> sh) & 1u) << 1) | ((byte >> (sh + 1)) & 1u);
}
inline void bitmap_set(unsigned char *data, uint32_t e, uint32_t v) {
  unsigned sh = 2 * (e % 4);
  unsigned char &byte = data[e / 4];
  byte = static_cast<unsigned char>(byte & ~(3u << sh));
  byte = static_cast<unsigned char>(byte | (((v >> 1) & 1u) << sh) | ((v & 1u) << (sh + 1)));
}

}  // namespace pdata
