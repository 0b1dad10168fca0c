// Writing space maps (see space_map_writer.h).
#include "persistent-data/space_map_writer.h"

#include <cstring>
#include <set>

#include <fmt/format.h>

#include "persistent-data/btree.h"
#include "persistent-data/btree_walk.h"
#include "persistent-data/checksum.h"
#include "persistent-data/endian.h"
#include "persistent-data/errors.h"

namespace pdata {

namespace {

uint64_t nr_bitmaps(block_address nr_blocks) { return (nr_blocks + entries_per_bitmap - 1) / entries_per_bitmap; }

// Encodes bitmap i's entries and computes its index entry. A bitmap with no
// count in memory (no page) is all free: written from zeroes.
index_entry_disk fill_bitmap(const space_map &sm, uint64_t i, unsigned char *block, block_address location) {
  std::memset(block + sizeof(bitmap_header_disk), 0, block_size - sizeof(bitmap_header_disk));
  unsigned char *data = block + sizeof(bitmap_header_disk);
  const block_address first = i * entries_per_bitmap;
  const uint32_t count = static_cast<uint32_t>(std::min<block_address>(entries_per_bitmap, sm.nr_blocks() - first));
  uint32_t nr_free = 0, first_free = count;
  if (const uint8_t *nib = sm.bitmap_nibbles(i)) {
    // Four entries a byte out, two nibbles a byte in; a nibble of 3 or more
    // is the on-disk 3. On-disk entry e: bit 2e is the HIGH bit.
    for (uint32_t e = 0; e < count; e += 4) {
      unsigned out = 0;
      const uint32_t n = std::min<uint32_t>(4, count - e);
      for (uint32_t k = 0; k < n; k++) {
        const uint32_t nb = (nib[(e + k) / 2] >> (((e + k) & 1) * 4)) & 15u;
        const uint32_t v = nb < 3 ? nb : 3;
        if (v) {
          out |= (((v >> 1) & 1u) << (2 * k)) | ((v & 1u) << (2 * k + 1));
        } else {
          nr_free++;
          if (first_free == count) first_free = e + k;
        }
      }
      data[e / 4] = static_cast<unsigned char>(out);
    }
  } else {
    nr_free = count;
    first_free = 0;
  }
  index_entry_disk ie;
  ie.blocknr.set(location);
  ie.nr_free.set(nr_free);
  ie.none_free_before.set(first_free);
  return ie;
}

block_address build_overflow_tree(transaction_manager &tm, const space_map &sm) {
  btree_builder b(tm, 4);
  unsigned char v[4];
  sm.for_each_overflow([&](block_address blk, uint32_t count) {
    store_le32(v, count);
    b.add(blk, v);
  });
  return b.finish();
}

}  // namespace

disk_sm_root write_data_space_map(transaction_manager &tm, space_map &data_sm, space_map_layout &layout) {
  const uint64_t n = nr_bitmaps(data_sm.nr_blocks());
  layout.bitmaps.resize(n, 0);
  const bool index_dirty = data_sm.any_bitmap_dirty() || !layout.index_root;
  std::vector<index_entry_disk> &entries = layout.entries;
  if (index_dirty) {
    const bool entries_known = entries.size() == n;
    entries.resize(n);
    for (uint64_t i = 0; i < n; i++) {
      bool dirty = data_sm.bitmap_dirty(i) || !layout.bitmaps[i];
      if (dirty) {
        block_address b;
        unsigned char *p = tm.new_block(b, checksum_salt::bitmap);
        entries[i] = fill_bitmap(data_sm, i, p, b);
        tm.write_now(b);
        if (layout.bitmaps[i]) tm.dec(layout.bitmaps[i]);
        layout.bitmaps[i] = b;
      } else if (!entries_known) {
        // Unchanged bitmap, entry not known yet: compute it from the counts.
        block_buffer scratch;
        entries[i] = fill_bitmap(data_sm, i, scratch.raw(), layout.bitmaps[i]);
      }
    }
    btree_builder ib(tm, sizeof(index_entry_disk));
    for (uint64_t i = 0; i < n; i++) ib.add(i, &entries[i]);
    block_address new_index = ib.finish();
    if (layout.index_root) btree_delete(tm, layout.index_root, plain_value_ops(sizeof(index_entry_disk)));
    layout.index_root = new_index;
  }
  if (data_sm.overflow_dirty() || !layout.overflow_root) {
    block_address o = build_overflow_tree(tm, data_sm);
    if (layout.overflow_root) btree_delete(tm, layout.overflow_root, plain_value_ops(4));
    layout.overflow_root = o;
  }
  disk_sm_root root;
  root.nr_blocks.set(data_sm.nr_blocks());
  root.nr_allocated.set(data_sm.nr_allocated());
  root.bitmap_root.set(layout.index_root);
  root.ref_count_root.set(layout.overflow_root);
  return root;
}

disk_sm_root write_metadata_space_map(transaction_manager &tm, space_map_layout &layout) {
  space_map &sm = tm.sm();
  const uint64_t n = nr_bitmaps(sm.nr_blocks());
  if (n > max_metadata_bitmaps)
    throw bad_input_error(fmt::format("metadata space map of {} blocks needs {} bitmaps (max {})",
                                      sm.nr_blocks(), n, max_metadata_bitmaps));
  layout.bitmaps.resize(n, 0);

  // 1. Counts of 3+ (their set does not change below: only 0 <-> 1 moves).
  if (sm.overflow_dirty() || !layout.overflow_root) {
    block_address o = build_overflow_tree(tm, sm);
    if (layout.overflow_root) btree_delete(tm, layout.overflow_root, plain_value_ops(4));
    layout.overflow_root = o;
  }
  // 2. A new index block.
  block_address index_b;
  tm.new_block(index_b, checksum_salt::index_block);
  if (layout.index_root) tm.dec(layout.index_root);
  layout.index_root = index_b;
  // 3. Relocate dirty bitmaps until none is left behind.
  std::set<uint64_t> relocated;
  for (;;) {
    std::vector<uint64_t> todo;
    for (uint64_t i : sm.dirty_bitmaps())
      if (i < n && !relocated.count(i)) todo.push_back(i);
    for (uint64_t i = 0; i < n; i++)
      if (!layout.bitmaps[i] && !relocated.count(i)) todo.push_back(i);
    if (todo.empty()) break;
    for (uint64_t i : todo) {
      if (relocated.count(i)) continue;
      block_address b;
      tm.new_block(b, checksum_salt::bitmap);
      if (layout.bitmaps[i]) tm.dec(layout.bitmaps[i]);
      layout.bitmaps[i] = b;
      relocated.insert(i);
    }
  }
  // 4. Counts are final: fill the relocated bitmaps and the index.
  auto *idx = reinterpret_cast<metadata_index_disk *>(tm.writable(index_b));
  for (uint64_t i = 0; i < n; i++) {
    if (relocated.count(i)) {
      idx->index[i] = fill_bitmap(sm, i, tm.writable(layout.bitmaps[i]), layout.bitmaps[i]);
    } else {
      block_buffer scratch;
      idx->index[i] = fill_bitmap(sm, i, scratch.raw(), layout.bitmaps[i]);
    }
  }
  disk_sm_root root;
  root.nr_blocks.set(sm.nr_blocks());
  root.nr_allocated.set(sm.nr_allocated());
  root.bitmap_root.set(index_b);
  root.ref_count_root.set(layout.overflow_root);
  return root;
}

space_map_layout read_space_map_layout(block_cache &cache, const disk_sm_root &root, bool metadata) {
  space_map_layout l;
  l.index_root = root.bitmap_root.get();
  l.overflow_root = root.ref_count_root.get();
  const uint64_t n = root.nr_blocks.get() / entries_per_bitmap + (root.nr_blocks.get() % entries_per_bitmap != 0);
  // Every bitmap is a metadata block: a root claiming more is damaged, and
  // its size must not reach the allocation below.
  if (n > cache.nr_blocks() || (metadata && n > max_metadata_bitmaps))
    throw bad_block_error(fmt::format("{} space map claims {} blocks, needing {} bitmaps, more than the metadata "
                                      "device's {} blocks hold",
                                      metadata ? "metadata" : "data", root.nr_blocks.get(), n, cache.nr_blocks()));
  l.bitmaps.assign(n, 0);
  if (metadata) {
    block_ref b = cache.read(l.index_root);
    auto *idx = reinterpret_cast<const metadata_index_disk *>(b->raw());
    for (uint64_t i = 0; i < n && i < max_metadata_bitmaps; i++) l.bitmaps[i] = idx->index[i].blocknr.get();
  } else {
    struct v : btree_visitor {
      std::vector<block_address> &out;
      explicit v(std::vector<block_address> &o) : out(o) {}
      void visit_leaf(block_address, const btree_node_view &node, const key_range &) override {
        for (uint32_t i = 0; i < node.nr_entries(); i++)
          if (node.key(i) < out.size()) out[node.key(i)] = load_le64(node.value_ptr(i));
      }
      void damage(const btree_damage &d) override {
        throw bad_block_error(fmt::format("data space map index: block {}: {}", d.block, d.what));
      }
    } vis(l.bitmaps);
    walk_btree(cache, l.index_root, sizeof(index_entry_disk), vis);
  }
  return l;
}

}  // namespace pdata
