// Writable thin-pool metadata: the two space maps, the transaction manager
// and the roots, committed with the ordering that keeps a power cut safe:
//   1. write every changed non-superblock block, 2. flush,
//   3. write the superblock, 4. flush.
// Until step 3 completes the previous superblock (or a zeroed one) stands, and
// nothing it references was overwritten.
#pragma once

#include <memory>

#include "persistent-data/btree.h"
#include "persistent-data/space_map.h"
#include "persistent-data/space_map_writer.h"
#include "persistent-data/transaction_manager.h"
#include "thin/format/superblock.h"

namespace thin {

class metadata_writer {
 public:
  // Formats empty metadata on `io` (nothing is written until commit()).
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
