// Transactional thin-pool metadata: the operations dm-thin performs on its
// metadata (dm-thin-metadata.c), on top of the copy-on-write B-trees.
//
// create_thin, create_snap (sharing the origin's mapping subtree, bumping the
// snapshot time), delete, set_transaction_id, mapping lookup / insert / remove,
// data block allocation, metadata snapshots, and commit. Nothing reachable
// from the last committed superblock is overwritten; commit() writes all
// changed blocks, flushes, writes the superblock, flushes.
//
// Updates to a device's mapping subtree first shadow the path through the
// top-level tree (as the kernel's multi-level insert does), so a top-level
// node shared with a metadata snapshot bumps the subtree root's count before
// the subtree itself is copied.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include "thin/format/metadata_writer.h"
#include "thin/format/thin_trees.h"

namespace thin {

struct lookup_result {
  uint64_t data_block = 0;
  uint32_t time = 0;
  bool shared = false;  // the device was snapshotted after this mapping was made
};

class pool_metadata {
 public:
  static std::unique_ptr<pool_metadata> format(pdata::block_io &io, uint32_t data_block_size,
                                               uint64_t nr_data_blocks);
  static std::unique_ptr<pool_metadata> open(pdata::block_io &io);

  uint32_t data_block_size() const { return md_->sb().data_block_size; }
  uint64_t nr_data_blocks() const { return md_->data_sm().nr_blocks(); }
  uint64_t transaction_id() const { return md_->sb().trans_id; }
  uint32_t time() const { return md_->sb().time; }
  // Compare-and-swap, as the kernel's set_transaction_id message.
  void set_transaction_id(uint64_t old_id, uint64_t new_id);

  void create_thin(uint64_t dev);
  void create_snap(uint64_t dev, uint64_t origin);
  void delete_device(uint64_t dev);
  bool device_exists(uint64_t dev) const { return details_.count(dev) != 0; }
  std::vector<uint64_t> devices() const;
  const device_details &details(uint64_t dev) const;

  std::optional<lookup_result> lookup(uint64_t dev, uint64_t vblock);
  // Maps vblock -> data_block at the current time (overwrites drop the old
  // data block's reference).
  void insert(uint64_t dev, uint64_t vblock, uint64_t data_block);
  bool remove(uint64_t dev, uint64_t vblock);
  // Every mapping of a device, in vblock order.
  std::vector<std::pair<uint64_t, lookup_result>> mappings(uint64_t dev);

  std::optional<uint64_t> alloc_data_block() { return md_->data_sm().allocate(); }
  uint32_t data_ref_count(uint64_t b) const { return md_->data_sm().get(b); }
  uint64_t nr_free_data_blocks() const { return md_->data_sm().nr_free(); }
  uint64_t nr_free_metadata_blocks() const { return md_->metadata_sm().nr_free(); }

  void reserve_metadata_snap();
  void release_metadata_snap();
  pdata::block_address held_root() const { return md_->sb().held_root; }

  bool changed() const { return changed_; }
  void commit();

  metadata_writer &writer() { return *md_; }

 private:
  explicit pool_metadata(std::unique_ptr<metadata_writer> md);
  pdata::block_address subtree_root(uint64_t dev);
  // Shadows the top-level path to `dev`, lets `fn` update its subtree, and
  // stores the new subtree root.
  void update_subtree(uint64_t dev, const std::function<pdata::block_address(pdata::block_address)> &fn);

  std::unique_ptr<metadata_writer> md_;
  std::map<uint64_t, device_details> details_;
  std::set<uint64_t> details_dirty_, details_deleted_;
  bool changed_ = false;
};

}  // namespace thin
