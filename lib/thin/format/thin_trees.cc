// Reading the thin trees (see thin_trees.h).
#include "thin/format/thin_trees.h"

namespace thin {

using namespace pdata;

device_details decode_device_details(const unsigned char *p) {
  auto *d = reinterpret_cast<const device_details_disk *>(p);
  return {d->mapped_blocks.get(), d->transaction_id.get(), d->creation_time.get(), d->snapshotted_time.get()};
}

void encode_device_details(const device_details &d, unsigned char *p) {
  auto *o = reinterpret_cast<device_details_disk *>(p);
  o->mapped_blocks.set(d.mapped_blocks);
  o->transaction_id.set(d.transaction_id);
  o->creation_time.set(d.creation_time);
  o->snapshotted_time.set(d.snapshotted_time);
}

namespace {

class leaf_fn_visitor : public btree_visitor {
 public:
  using leaf_fn = std::function<void(const btree_node_view &)>;
  leaf_fn_visitor(leaf_fn f, const damage_fn &d) : f_(std::move(f)), d_(d) {}
  void visit_leaf(block_address, const btree_node_view &n, const key_range &) override { f_(n); }
  void damage(const btree_damage &d) override { d_(d); }

 private:
  leaf_fn f_;
  const damage_fn &d_;
};

}  // namespace

std::map<uint64_t, device_details> read_details_tree(block_cache &cache, block_address root,
                                                     const damage_fn &on_damage) {
  std::map<uint64_t, device_details> out;
  leaf_fn_visitor v(
      [&](const btree_node_view &n) {
        for (uint32_t i = 0; i < n.nr_entries(); i++) out[n.key(i)] = decode_device_details(n.value_ptr(i));
      },
      on_damage);
  walk_btree(cache, root, sizeof(device_details_disk), v);
  return out;
}

std::vector<std::pair<uint64_t, block_address>> read_mapping_top_level(block_cache &cache, block_address root,
                                                                       const damage_fn &on_damage) {
  std::vector<std::pair<uint64_t, block_address>> out;
  leaf_fn_visitor v(
      [&](const btree_node_view &n) {
        for (uint32_t i = 0; i < n.nr_entries(); i++) out.emplace_back(n.key(i), n.value64(i));
      },
      on_damage);
  walk_btree(cache, root, 8, v);
  return out;
}

void walk_device_mappings(block_cache &cache, block_address subtree_root, const mapping_fn &fn,
                          const damage_fn &on_damage) {
  leaf_fn_visitor v(
      [&](const btree_node_view &n) {
        for (uint32_t i = 0; i < n.nr_entries(); i++) {
          uint64_t bt = n.value64(i);
          fn(n.key(i), unpack_block(bt), unpack_time(bt));
        }
      },
      on_damage);
  walk_btree(cache, subtree_root, 8, v);
}

}  // namespace thin
