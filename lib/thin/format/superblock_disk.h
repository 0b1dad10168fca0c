// On-disk layout of the thin-pool superblock (metadata block 0).
//
// | off | size | field                   | notes                                         |
// |-----|------|-------------------------|-----------------------------------------------|
// | 0   | 4    | csum                    | crc32c over [4,4096), salt 160774             |
// | 4   | 4    | flags                   | bit 0 = NEEDS_CHECK; other bits preserved     |
// | 8   | 8    | blocknr                 | 0 (live) or the metadata-snapshot copy's block|
// | 16  | 16   | uuid                    | zero; never read by the kernel                |
// | 32  | 8    | magic                   | 27022010                                      |
// | 40  | 4    | version                 | 1 or 2; never checked by the kernel           |
// | 44  | 4    | time                    | snapshot time counter                         |
// | 48  | 8    | trans_id                | userspace transaction id                      |
// | 56  | 8    | held_root               | metadata snapshot block, or 0                 |
// | 64  | 128  | data_space_map_root     | disk_sm_root in [64,96); rest unspecified     |
// | 192 | 128  | metadata_space_map_root | disk_sm_root in [192,224); rest unspecified   |
// | 320 | 8    | data_mapping_root       | two-level mapping tree                        |
// | 328 | 8    | device_details_root     | device details tree                           |
// | 336 | 4    | data_block_size         | sectors (128..2097152, multiple of 128)       |
// | 340 | 4    | metadata_block_size     | 8 sectors                                     |
// | 344 | 8    | metadata_nr_blocks      | written at format only; stale after resize    |
// | 352 | 4    | compat_flags            |                                               |
// | 356 | 4    | compat_ro_flags         |                                               |
// | 360 | 4    | incompat_flags          |                                               |
// | 364 | 3732 | (zero at format, covered by the checksum)                               |
#pragma once

#include <cstddef>
#include <cstdint>

#include "persistent-data/endian.h"
#include "persistent-data/space_map_disk.h"

namespace thin {

using pdata::le32;
using pdata::le64;

constexpr uint64_t superblock_magic = 27022010;
constexpr uint32_t needs_check_flag = 1u << 0;
constexpr uint32_t superblock_version = 2;
constexpr std::size_t space_map_root_size = 128;

struct __attribute__((packed)) superblock_disk {
  le32 csum;
  le32 flags;
  le64 blocknr;
  unsigned char uuid[16];
  le64 magic;
  le32 version;
  le32 time;
  le64 trans_id;
  le64 held_root;
  unsigned char data_space_map_root[space_map_root_size];
  unsigned char metadata_space_map_root[space_map_root_size];
  le64 data_mapping_root;
  le64 device_details_root;
  le32 data_block_size;
  le32 metadata_block_size;
  le64 metadata_nr_blocks;
  le32 compat_flags;
  le32 compat_ro_flags;
  le32 incompat_flags;
};
static_assert(sizeof(superblock_disk) == 364);
static_assert(offsetof(superblock_disk, flags) == 4);
static_assert(offsetof(superblock_disk, blocknr) == 8);
static_assert(offsetof(superblock_disk, uuid) == 16);
static_assert(offsetof(superblock_disk, magic) == 32);
static_assert(offsetof(superblock_disk, version) == 40);
static_assert(offsetof(superblock_disk, time) == 44);
static_assert(offsetof(superblock_disk, trans_id) == 48);
static_assert(offsetof(superblock_disk, held_root) == 56);
static_assert(offsetof(superblock_disk, data_space_map_root) == 64);
static_assert(offsetof(superblock_disk, metadata_space_map_root) == 192);
static_assert(offsetof(superblock_disk, data_mapping_root) == 320);
static_assert(offsetof(superblock_disk, device_details_root) == 328);
static_assert(offsetof(superblock_disk, data_block_size) == 336);
static_assert(offsetof(superblock_disk, metadata_block_size) == 340);
static_assert(offsetof(superblock_disk, metadata_nr_blocks) == 344);
static_assert(offsetof(superblock_disk, compat_flags) == 352);
static_assert(offsetof(superblock_disk, compat_ro_flags) == 356);
static_assert(offsetof(superblock_disk, incompat_flags) == 360);

// Device details tree leaf value (24 bytes).
// | off | size | field            |
// |-----|------|------------------|
// | 0   | 8    | mapped_blocks    |
// | 8   | 8    | transaction_id   |
// | 16  | 4    | creation_time    |
// | 20  | 4    | snapshotted_time |
struct __attribute__((packed)) device_details_disk {
  le64 mapped_blocks;
  le64 transaction_id;
  le32 creation_time;
  le32 snapshotted_time;
};
static_assert(sizeof(device_details_disk) == 24);
static_assert(offsetof(device_details_disk, transaction_id) == 8);
static_assert(offsetof(device_details_disk, creation_time) == 16);
static_assert(offsetof(device_details_disk, snapshotted_time) == 20);

// Mapping tree (level 1) leaf value: block_time = (data_block << 24) | time.
constexpr uint64_t pack_block_time(uint64_t block, uint32_t time) { return (block << 24) | (time & 0xFFFFFFu); }
constexpr uint64_t unpack_block(uint64_t bt) { return bt >> 24; }
constexpr uint32_t unpack_time(uint64_t bt) { return static_cast<uint32_t>(bt & 0xFFFFFFu); }

constexpr uint32_t min_data_block_size = 128;
constexpr uint32_t max_data_block_size = 2097152;
constexpr uint64_t max_dev_id = (1ull << 24) - 1;

}  // namespace thin
