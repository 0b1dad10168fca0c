// The thin-pool superblock in memory: decoding, validation, encoding.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "persistent-data/block_io.h"
#include "persistent-data/errors.h"
#include "persistent-data/space_map_disk.h"
#include "thin/format/superblock_disk.h"

namespace thin {

using pdata::block_address;

// Metadata that cannot be used at all (the dump path's error channel; the
// checker reports damage as records instead).
class metadata_error : public pdata::damaged_metadata_error {
 public:
  using pdata::damaged_metadata_error::damaged_metadata_error;
};

struct superblock {
  uint32_t flags = 0;
  block_address blocknr = 0;
  std::array<unsigned char, 16> uuid{};
  uint64_t magic = superblock_magic;
  uint32_t version = superblock_version;
  uint32_t time = 0;
  uint64_t trans_id = 0;
  block_address held_root = 0;
  // Both 128-byte areas, raw: only the first 32 bytes (a disk_sm_root) mean
  // anything, but the rest is preserved when the superblock is rewritten.
  std::array<unsigned char, space_map_root_size> data_sm_root_raw{};
  std::array<unsigned char, space_map_root_size> metadata_sm_root_raw{};
  block_address mapping_root = 0;
  block_address details_root = 0;
  uint32_t data_block_size = 0;
  uint32_t metadata_block_size = 8;
  uint64_t metadata_nr_blocks = 0;
  uint32_t compat_flags = 0;
  uint32_t compat_ro_flags = 0;
  uint32_t incompat_flags = 0;

  bool needs_check() const { return flags & needs_check_flag; }
  pdata::disk_sm_root data_sm_root() const;
  pdata::disk_sm_root metadata_sm_root() const;
  void set_data_sm_root(const pdata::disk_sm_root &r);
  void set_metadata_sm_root(const pdata::disk_sm_root &r);
};

// Checks magic, block number and checksum of a superblock-typed block read
// from `location`, then the fields thin tools depend on. Returns the first
// problem, or nothing.
std::optional<std::string> validate_superblock(const void *block, block_address location);

superblock decode_superblock(const void *block);

// Encodes into a whole 4 KiB block. Bytes of `block` past the struct are
// kept (callers pass the block they read, or zeroes), and the checksum is
// stamped.
void encode_superblock(const superblock &sb, void *block);

// Reads and validates the superblock at `location`; throws metadata_error
// with a description when it is unusable.
superblock read_superblock(pdata::block_io &io, block_address location = 0);

bool is_all_zero(const void *block);

// The superblock a read-only tool works from: the live one, or (with
// use_metadata_snap) the metadata snapshot's copy, whose location must match
// `snap_location` when given. A snapshot records no space maps, so its
// nr_data_blocks is 0 (as thin_dump/thin_delta 0.9.0 print).
struct selected_superblock {
  superblock sb;
  uint64_t nr_data_blocks = 0;
};
selected_superblock select_superblock(pdata::block_io &io, bool use_metadata_snap,
                                      std::optional<uint64_t> snap_location);

}  // namespace thin
