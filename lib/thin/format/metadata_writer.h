// Writable thin-pool metadata: the two space maps, the transaction manager
// and the roots, committed with the ordering that keeps a power cut safe:
//   1. write every changed non-superblock block, 2. flush,
//   3. write the superblock, 4. flush.
// Until step 3 completes the previous superblock (or a zeroed one) stands, and
// nothing it references was overwritten.
#pragma once

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "persistent-data/btree.h"
#include "persistent-data/space_map.h"
#include "persistent-data/space_map_writer.h"
#include "persistent-data/transaction_manager.h"
#include "thin/format/superblock.h"

namespace thin {

// The largest data space map a mapping can address: block_time values hold a
// 40-bit data block number.
constexpr uint64_t max_nr_data_blocks = uint64_t(1) << 40;

// A size no metadata can hold (nr_data_blocks beyond the format's 2^40, or
// more space map than the largest metadata device holds): the input is wrong,
// not the output too small.
class size_limit_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The metadata device cannot hold what is to be written. blocks_needed() is
// the least device size (in 4 KiB blocks) that could: exact for the space
// maps and empty trees, a lower bound when mappings are still to come.
class metadata_too_small : public pdata::out_of_metadata_space {
 public:
  metadata_too_small(const std::string &what, uint64_t needed)
      : pdata::out_of_metadata_space(what), needed_(needed) {}
  uint64_t blocks_needed() const { return needed_; }

 private:
  uint64_t needed_;
};

// Sizing new metadata from the numbers alone, before anything is allocated.
// Blocks new metadata of nr_data_blocks needs besides the metadata space
// map's bitmaps: the superblock, the data space map (bitmaps, index tree,
// empty overflow tree), the metadata space map's index block and empty
// overflow tree, and empty details and mapping trees.
uint64_t metadata_blocks_besides_bitmaps(uint64_t nr_data_blocks);
// The smallest metadata device that holds `other` blocks plus the bitmaps of
// its own space map.
uint64_t metadata_blocks_with_bitmaps(uint64_t other);
// Throws unless metadata for nr_data_blocks can be formatted on a device of
// device_blocks: size_limit_error when nr_data_blocks is beyond what the
// format can address or any metadata device can hold, metadata_too_small (with the
// size needed) when this device is too small.
void check_metadata_fits(uint64_t nr_data_blocks, uint64_t device_blocks);
// Why no metadata device could hold a data space map of nr_data_blocks (the
// size_limit_error check_metadata_fits would throw), or nothing when one could.
std::optional<std::string> nr_data_blocks_problem(uint64_t nr_data_blocks);

class metadata_writer {
 public:
  // Formats empty metadata on `io` (nothing is written until commit()).
  // Checks the sizes first (check_metadata_fits, data_block_size's range).
  static std::unique_ptr<metadata_writer> format(pdata::block_io &io, uint32_t data_block_size,
                                                 uint64_t nr_data_blocks);

  // Opens existing metadata for writing: superblock, both space maps (their
  // counts and on-disk layout) and the roots. Throws metadata_error when any
  // of it cannot be read.
  static std::unique_ptr<metadata_writer> open(pdata::block_io &io);

  pdata::transaction_manager &tm() { return *tm_; }
  pdata::space_map &data_sm() { return data_sm_; }
  pdata::space_map &metadata_sm() { return meta_sm_; }
  superblock &sb() { return sb_; }

  // Value ops for the mapping tree's levels and the details tree.
  pdata::value_ops mapping_l1_ops();  // block_time values: data block counts
  pdata::value_ops mapping_l0_ops();  // subtree roots: delete a subtree when dropped
  pdata::value_ops details_ops() { return pdata::plain_value_ops(sizeof(device_details_disk)); }

  // Writes everything (space maps, blocks, flush, superblock, flush).
  void commit();

 private:
  metadata_writer(pdata::block_io &io, pdata::block_address nr_meta, uint64_t nr_data);
  metadata_writer(pdata::block_io &io, pdata::space_map meta, pdata::space_map data);
  pdata::block_io &io_;
  pdata::space_map meta_sm_;
  pdata::space_map data_sm_;
  std::unique_ptr<pdata::transaction_manager> tm_;
  pdata::space_map_layout meta_layout_, data_layout_;
  superblock sb_;
};

}  // namespace thin
