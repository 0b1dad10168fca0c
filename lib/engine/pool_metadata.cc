// Transactional thin-pool metadata (see pool_metadata.h).
#include "engine/pool_metadata.h"

#include <cstring>

#include <fmt/format.h>

#include "persistent-data/block_cache.h"
#include "persistent-data/btree.h"
#include "persistent-data/endian.h"
#include "persistent-data/errors.h"

namespace thin {

using namespace pdata;

namespace {

// Top-level values when only shadowing or replacing a subtree root: a shared
// leaf copied on the way increments the roots it holds; nothing is dropped.
value_ops l0_shadow_ops(transaction_manager &tm) {
  value_ops ops;
  ops.size = 8;
  ops.inc = [&tm](const unsigned char *v) { tm.inc(load_le64(v)); };
  return ops;
}

}  // namespace

pool_metadata::pool_metadata(std::unique_ptr<metadata_writer> md) : md_(std::move(md)) {}

std::unique_ptr<pool_metadata> pool_metadata::format(block_io &io, uint32_t data_block_size, uint64_t nr_data_blocks) {
  std::unique_ptr<pool_metadata> p(new pool_metadata(metadata_writer::format(io, data_block_size, nr_data_blocks)));
  p->changed_ = true;
  return p;
}

std::unique_ptr<pool_metadata> pool_metadata::open(block_io &io) {
  std::unique_ptr<pool_metadata> p(new pool_metadata(metadata_writer::open(io)));
  block_cache cache(io);
  p->details_ = read_details_tree(cache, p->md_->sb().details_root, [](const btree_damage &d) {
    throw metadata_error(fmt::format("device details tree: block {}: {}", d.block, d.what));
  });
  return p;
}

void pool_metadata::set_transaction_id(uint64_t old_id, uint64_t new_id) {
  if (md_->sb().trans_id != old_id)
    throw pdata::bad_input_error(fmt::format("transaction id is {}, not {}", md_->sb().trans_id, old_id));
  md_->sb().trans_id = new_id;
  changed_ = true;
}

std::vector<uint64_t> pool_metadata::devices() const {
  std::vector<uint64_t> out;
  for (auto &[d, _] : details_) out.push_back(d);
  return out;
}

const device_details &pool_metadata::details(uint64_t dev) const {
  auto it = details_.find(dev);
  if (it == details_.end()) throw pdata::bad_input_error(fmt::format("no thin device {}", dev));
  return it->second;
}

block_address pool_metadata::subtree_root(uint64_t dev) {
  auto v = btree_lookup(md_->tm(), md_->sb().mapping_root, dev);
  if (!v) throw pdata::damaged_metadata_error(fmt::format("thin device {} has no mapping tree", dev));
  return load_le64(v->data());
}

void pool_metadata::create_thin(uint64_t dev) {
  if (dev > max_dev_id) throw pdata::bad_input_error(fmt::format("device id {} is above {}", dev, max_dev_id));
  if (device_exists(dev)) throw pdata::bad_input_error(fmt::format("thin device {} already exists", dev));
  transaction_manager &tm = md_->tm();
  block_address root = btree_empty(tm, 8);
  unsigned char v[8];
  store_le64(v, root);
  md_->sb().mapping_root = btree_insert(tm, md_->sb().mapping_root, dev, v, l0_shadow_ops(tm));
  device_details d;
  d.transaction_id = md_->sb().trans_id;
  d.creation_time = d.snapshotted_time = md_->sb().time;
  details_[dev] = d;
  details_dirty_.insert(dev);
  details_deleted_.erase(dev);
  changed_ = true;
}

void pool_metadata::create_snap(uint64_t dev, uint64_t origin) {
  if (dev > max_dev_id) throw pdata::bad_input_error(fmt::format("device id {} is above {}", dev, max_dev_id));
  if (device_exists(dev)) throw pdata::bad_input_error(fmt::format("thin device {} already exists", dev));
  if (!device_exists(origin)) throw pdata::bad_input_error(fmt::format("origin device {} does not exist", origin));
  transaction_manager &tm = md_->tm();
  block_address root = subtree_root(origin);
  tm.inc(root);
  unsigned char v[8];
  store_le64(v, root);
  md_->sb().mapping_root = btree_insert(tm, md_->sb().mapping_root, dev, v, l0_shadow_ops(tm));
  superblock &sb = md_->sb();
  if (sb.time >= 0xFFFFFF) throw pdata::bad_input_error("snapshot time would exceed 24 bits");
  sb.time++;
  device_details &o = details_[origin];
  o.snapshotted_time = sb.time;
  device_details d;
  d.mapped_blocks = o.mapped_blocks;
  d.transaction_id = sb.trans_id;
  d.creation_time = d.snapshotted_time = sb.time;
  details_[dev] = d;
  details_dirty_.insert(dev);
  details_dirty_.insert(origin);
  details_deleted_.erase(dev);
  changed_ = true;
}

void pool_metadata::delete_device(uint64_t dev) {
  if (!device_exists(dev)) throw pdata::bad_input_error(fmt::format("no thin device {}", dev));
  bool removed = false;
  md_->sb().mapping_root = btree_remove(md_->tm(), md_->sb().mapping_root, dev, md_->mapping_l0_ops(), &removed);
  details_.erase(dev);
  details_dirty_.erase(dev);
  details_deleted_.insert(dev);
  changed_ = true;
}

void pool_metadata::update_subtree(uint64_t dev, const std::function<block_address(block_address)> &fn) {
  transaction_manager &tm = md_->tm();
  block_address root = subtree_root(dev);
  unsigned char v[8];
  store_le64(v, root);
  // Shadow the top-level path first (same value: nothing is dropped).
  md_->sb().mapping_root = btree_insert(tm, md_->sb().mapping_root, dev, v, l0_shadow_ops(tm));
  block_address new_root = fn(root);
  if (new_root != root) {
    store_le64(v, new_root);
    md_->sb().mapping_root = btree_insert(tm, md_->sb().mapping_root, dev, v, l0_shadow_ops(tm));
  }
}

std::optional<lookup_result> pool_metadata::lookup(uint64_t dev, uint64_t vblock) {
  auto it = details_.find(dev);
  if (it == details_.end()) throw pdata::bad_input_error(fmt::format("no thin device {}", dev));
  auto v = btree_lookup(md_->tm(), subtree_root(dev), vblock);
  if (!v) return std::nullopt;
  uint64_t bt = load_le64(v->data());
  lookup_result r;
  r.data_block = unpack_block(bt);
  r.time = unpack_time(bt);
  r.shared = it->second.snapshotted_time > r.time;
  return r;
}

void pool_metadata::insert(uint64_t dev, uint64_t vblock, uint64_t data_block) {
  auto it = details_.find(dev);
  if (it == details_.end()) throw pdata::bad_input_error(fmt::format("no thin device {}", dev));
  if (data_block >= nr_data_blocks())
    throw pdata::bad_input_error(fmt::format("data block {} is beyond the pool ({} blocks)", data_block, nr_data_blocks()));
  unsigned char v[8];
  store_le64(v, pack_block_time(data_block, md_->sb().time));
  bool inserted = false;
  value_ops ops = md_->mapping_l1_ops();
  update_subtree(dev, [&](block_address root) {
    return btree_insert(md_->tm(), root, vblock, v, ops, &inserted);
  });
  // The tree now holds a reference to the data block (the caller's
  // allocation, or its own inc for a block shared with another mapping).
  if (inserted) it->second.mapped_blocks++;
  details_dirty_.insert(dev);
  changed_ = true;
}

bool pool_metadata::remove(uint64_t dev, uint64_t vblock) {
  auto it = details_.find(dev);
  if (it == details_.end()) throw pdata::bad_input_error(fmt::format("no thin device {}", dev));
  if (!lookup(dev, vblock)) return false;
  bool removed = false;
  value_ops ops = md_->mapping_l1_ops();
  update_subtree(dev, [&](block_address root) { return btree_remove(md_->tm(), root, vblock, ops, &removed); });
  if (removed) it->second.mapped_blocks--;
  details_dirty_.insert(dev);
  changed_ = true;
  return removed;
}

std::vector<std::pair<uint64_t, lookup_result>> pool_metadata::mappings(uint64_t dev) {
  const device_details &d = details(dev);
  std::vector<std::pair<uint64_t, lookup_result>> out;
  btree_for_each(md_->tm(), subtree_root(dev), [&](uint64_t k, const unsigned char *v) {
    uint64_t bt = load_le64(v);
    out.push_back({k, {unpack_block(bt), unpack_time(bt), d.snapshotted_time > unpack_time(bt)}});
  });
  return out;
}

void pool_metadata::reserve_metadata_snap() {
  superblock &sb = md_->sb();
  if (sb.held_root) throw pdata::bad_input_error("a metadata snapshot is already held");
  commit();
  transaction_manager &tm = md_->tm();
  block_address h;
  unsigned char *p = tm.new_block(h, checksum_salt::superblock);
  superblock copy = sb;
  copy.blocknr = h;
  copy.held_root = 0;
  copy.data_sm_root_raw.fill(0);
  copy.metadata_sm_root_raw.fill(0);
  encode_superblock(copy, p);
  tm.inc(sb.mapping_root);
  tm.inc(sb.details_root);
  sb.held_root = h;
  changed_ = true;
  commit();
}

void pool_metadata::release_metadata_snap() {
  superblock &sb = md_->sb();
  if (!sb.held_root) throw pdata::bad_input_error("no metadata snapshot is held");
  transaction_manager &tm = md_->tm();
  block_address h = sb.held_root;
  superblock copy = decode_superblock(tm.read(h)->raw());
  sb.held_root = 0;
  btree_delete(tm, copy.mapping_root, md_->mapping_l0_ops());
  btree_delete(tm, copy.details_root, md_->details_ops());
  tm.dec(h);
  changed_ = true;
}

void pool_metadata::commit() {
  transaction_manager &tm = md_->tm();
  superblock &sb = md_->sb();
  for (uint64_t dev : details_deleted_)
    sb.details_root = btree_remove(tm, sb.details_root, dev, md_->details_ops());
  for (uint64_t dev : details_dirty_) {
    device_details_disk dd;
    encode_device_details(details_.at(dev), reinterpret_cast<unsigned char *>(&dd));
    sb.details_root = btree_insert(tm, sb.details_root, dev, &dd, md_->details_ops());
  }
  details_deleted_.clear();
  details_dirty_.clear();
  md_->commit();
  changed_ = false;
}

}  // namespace thin
