// Reading a space map into memory (see space_map_reader.h). One class, one
// method per step: the size check, the index (the metadata space map's index
// block or the data space map's index btree), the overflow tree, the bitmaps,
// and the overflow entries against the bitmaps.
#include "persistent-data/space_map_reader.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <unordered_set>

#include <fmt/format.h>

#include "persistent-data/btree_walk.h"
#include "persistent-data/checksum.h"
#include "persistent-data/errors.h"

namespace pdata {

const char *to_string(space_map_kind k) { return k == space_map_kind::data ? "data" : "metadata"; }

std::string to_string(const space_map_problem &p) {
  const char *kn = to_string(p.sm);
  const std::string lost = p.tree ? to_string(p.tree->keys) : std::string();
  const std::string tree_what = p.tree ? p.tree->what : std::string();
  switch (p.fault) {
    case sm_fault::too_many_blocks:
      return fmt::format("metadata space map claims {} blocks, more than the maximum {}", p.a, p.b);
    case sm_fault::too_many_bitmaps:
      return fmt::format("data space map claims {} blocks, needing {} bitmaps, more than the metadata device's {} "
                         "blocks",
                         p.a, p.b, p.c);
    case sm_fault::index_beyond_end:
      return fmt::format("metadata space map index block {} is beyond the end of the device", p.block);
    case sm_fault::index_read_error: return fmt::format("metadata space map index block {}: {}", p.block, p.io_text);
    case sm_fault::index_wrong_blocknr:
      return fmt::format("metadata space map index block {} claims to be block {}", p.block, p.a);
    case sm_fault::index_bad_checksum:
      return fmt::format("metadata space map index block {} has a bad checksum", p.block);
    case sm_fault::index_tree_damage:
      return fmt::format("data space map index btree: {} (bitmaps {} lost)", tree_what, lost);
    case sm_fault::overflow_tree_damage:
      return fmt::format("{} space map reference count tree: {} (counts for blocks {} lost)", kn, tree_what, lost);
    case sm_fault::index_entry_missing: return fmt::format("{} space map index has no entry for bitmap {}", kn, p.a);
    case sm_fault::bitmap_beyond_end:
      return fmt::format("{} space map bitmap {} (blocks {}..) points to block {}, beyond the end of the device", kn,
                         p.a, p.b, p.block);
    case sm_fault::bitmap_shared:
      return fmt::format("{} space map bitmap {} (blocks {}..) points to block {}, already used by another bitmap",
                         kn, p.a, p.b, p.block);
    case sm_fault::bitmap_read_error: return fmt::format("{} space map bitmap block {}: {}", kn, p.block, p.io_text);
    case sm_fault::bitmap_wrong_blocknr:
      return fmt::format("{} space map bitmap block {} (bitmap {}) claims to be block {}", kn, p.block, p.a, p.b);
    case sm_fault::bitmap_bad_checksum:
      return fmt::format("{} space map bitmap block {} (bitmap {}) has a bad checksum", kn, p.block, p.a);
    case sm_fault::count_without_overflow:
      return fmt::format("{} space map: block {} has count 3+ in its bitmap but no entry in the reference count tree",
                         kn, p.a);
    case sm_fault::entries_beyond_end:
      return fmt::format("{} space map bitmap {} has {} entries set beyond the end ({} blocks)", kn, p.a, p.b, p.c);
    case sm_fault::index_nr_free_understated:
      return fmt::format("{} space map index entry for bitmap {} says {} free blocks, but the bitmap has {} (free "
                         "space hidden)",
                         kn, p.a, p.b, p.c);
    case sm_fault::index_none_free_before_overstated:
      return fmt::format("{} space map index entry for bitmap {} says nothing is free before entry {}, but entry {} "
                         "is free (free space hidden)",
                         kn, p.a, p.b, p.c);
    case sm_fault::overflow_beyond_end:
      return fmt::format("{} space map reference count tree has an entry for block {} beyond the end", kn, p.a);
    case sm_fault::overflow_count_below_3:
      return fmt::format("{} space map reference count tree holds count {} for block {} (counts below 3 belong in "
                         "the bitmap)",
                         kn, p.a, p.b);
  }
  return "unknown space map fault";
}

namespace {

// Collects the nodes and leaf entries of one of the space map's btrees (the
// data index btree, an overflow tree), reporting damage as `fault`.
template <typename Entry>
class sm_tree_visitor : public btree_visitor {
 public:
  using decode_fn = Entry (*)(const btree_node_view &, uint32_t);
  sm_tree_visitor(std::map<uint64_t, Entry> &out, std::vector<block_address> &own, decode_fn decode,
                  std::function<void(const btree_damage &)> on_damage)
      : out_(out), own_(own), decode_(decode), on_damage_(std::move(on_damage)) {}
  bool visit_node(block_address b, const btree_node_view &, const key_range &, unsigned) override {
    own_.push_back(b);
    return true;
  }
  void visit_leaf(block_address, const btree_node_view &n, const key_range &) override {
    for (uint32_t i = 0; i < n.nr_entries(); i++) out_[n.key(i)] = decode_(n, i);
  }
  void damage(const btree_damage &d) override { on_damage_(d); }

 private:
  std::map<uint64_t, Entry> &out_;
  std::vector<block_address> &own_;
  decode_fn decode_;
  std::function<void(const btree_damage &)> on_damage_;
};

index_entry_disk decode_index_entry(const btree_node_view &n, uint32_t i) {
  index_entry_disk e;
  std::memcpy(&e, n.value_ptr(i), sizeof(e));
  return e;
}
uint32_t decode_count(const btree_node_view &n, uint32_t i) { return n.value32(i); }

class reader {
 public:
  reader(block_cache &cache, const disk_sm_root &root, space_map_kind kind, space_map_problem_visitor &problems)
      : cache_(cache), root_(root), kind_(kind), problems_(problems) {
    sm_.nr_blocks = root.nr_blocks.get();
    sm_.nr_allocated_root = root.nr_allocated.get();
    nr_bitmaps_ = sm_.nr_blocks / entries_per_bitmap + (sm_.nr_blocks % entries_per_bitmap != 0);
  }

  space_map_contents read() {
    if (!size_ok()) {
      sm_.complete = false;
      sm_.counts = ref_counts(0);
      return std::move(sm_);
    }
    sm_.counts = ref_counts(sm_.nr_blocks);
    if (kind_ == space_map_kind::metadata) {
      if (!read_index_block()) {
        sm_.complete = false;
        return std::move(sm_);
      }
    } else {
      read_index_tree();
    }
    read_overflow_tree();
    std::unordered_set<block_address> seen;
    for (uint64_t i = 0; i < nr_bitmaps_; i++) read_bitmap(i, seen);
    check_overflow_entries();
    return std::move(sm_);
  }

 private:
  void problem(space_map_problem p) {
    p.sm = kind_;
    p.what = to_string(p);
    problems_.problem(p);
  }
  void fatal(sm_fault f, block_address block, uint64_t a = 0, uint64_t b = 0, uint64_t c = 0) {
    problem({kind_, f, block, a, b, c, std::nullopt, {}, true, false, {}});
  }
  void fatal_io(sm_fault f, block_address block, const io_error &e) {
    problem({kind_, f, block, 0, 0, 0, std::nullopt, e.what(), true, false, {}});
  }
  void non_fatal(sm_fault f, block_address block, uint64_t a, uint64_t b, uint64_t c, bool hint) {
    problem({kind_, f, block, a, b, c, std::nullopt, {}, false, hint, {}});
  }
  void tree_damage(sm_fault f, const btree_damage &d) {
    problem({kind_, f, d.block, 0, 0, 0, d, {}, true, false, {}});
  }

  // Guards against absurd sizes from a damaged root before allocating.
  bool size_ok() {
    if (kind_ == space_map_kind::metadata && sm_.nr_blocks > max_metadata_blocks) {
      fatal(sm_fault::too_many_blocks, 0, sm_.nr_blocks, max_metadata_blocks);
      return false;
    }
    if (kind_ == space_map_kind::data && nr_bitmaps_ > cache_.nr_blocks()) {
      fatal(sm_fault::too_many_bitmaps, 0, sm_.nr_blocks, nr_bitmaps_, cache_.nr_blocks());
      return false;
    }
    return true;
  }

  // The metadata space map's index block: which block holds bitmap i.
  bool read_index_block() {
    const block_address b = root_.bitmap_root.get();
    if (b >= cache_.nr_blocks()) {
      fatal(sm_fault::index_beyond_end, b);
      return false;
    }
    block_ref blk;
    try {
      blk = cache_.read(b);
    } catch (const io_error &e) {
      fatal_io(sm_fault::index_read_error, b, e);
      return false;
    }
    auto *idx = reinterpret_cast<const metadata_index_disk *>(blk->raw());
    if (idx->blocknr.get() != b) {
      fatal(sm_fault::index_wrong_blocknr, b, idx->blocknr.get());
      return false;
    }
    if (!checksum_ok(blk->raw(), checksum_salt::index_block)) {
      fatal(sm_fault::index_bad_checksum, b);
      return false;
    }
    sm_.own_blocks.push_back(b);
    for (uint64_t i = 0; i < nr_bitmaps_; i++) index_[i] = idx->index[i];
    return true;
  }

  // The data space map's index btree.
  void read_index_tree() {
    sm_tree_visitor<index_entry_disk> v(index_, sm_.own_blocks, decode_index_entry,
                                        [&](const btree_damage &d) { tree_damage(sm_fault::index_tree_damage, d); });
    walk_btree(cache_, root_.bitmap_root.get(), sizeof(index_entry_disk), v);
  }

  // The overflow tree (counts >= 3).
  void read_overflow_tree() {
    sm_tree_visitor<uint32_t> v(overflow_, sm_.own_blocks, decode_count, [&](const btree_damage &d) {
      sm_.complete = false;
      tree_damage(sm_fault::overflow_tree_damage, d);
    });
    walk_btree(cache_, root_.ref_count_root.get(), 4, v);
  }

  // Bitmap i: its place, its block, then its entries and its index hints.
  void read_bitmap(uint64_t i, std::unordered_set<block_address> &seen) {
    auto it = index_.find(i);
    if (it == index_.end()) {
      fatal(sm_fault::index_entry_missing, 0, i);
      sm_.complete = false;
      return;
    }
    const index_entry_disk &ie = it->second;
    const block_address bb = ie.blocknr.get();
    const block_address first = i * entries_per_bitmap;
    if (bb >= cache_.nr_blocks() || !seen.insert(bb).second) {
      fatal(bb >= cache_.nr_blocks() ? sm_fault::bitmap_beyond_end : sm_fault::bitmap_shared, bb, i, first);
      sm_.complete = false;
      return;
    }
    block_ref blk;
    try {
      blk = cache_.read(bb);
    } catch (const io_error &e) {
      fatal_io(sm_fault::bitmap_read_error, bb, e);
      sm_.complete = false;
      return;
    }
    auto *hdr = reinterpret_cast<const bitmap_header_disk *>(blk->raw());
    if (hdr->blocknr.get() != bb || !checksum_ok(blk->raw(), checksum_salt::bitmap)) {
      if (hdr->blocknr.get() != bb)
        fatal(sm_fault::bitmap_wrong_blocknr, bb, i, hdr->blocknr.get());
      else
        fatal(sm_fault::bitmap_bad_checksum, bb, i);
      sm_.complete = false;
      return;
    }
    sm_.own_blocks.push_back(bb);
    read_entries(i, bb, blk->raw() + sizeof(bitmap_header_disk), ie);
  }

  void read_entries(uint64_t i, block_address bb, const unsigned char *data, const index_entry_disk &ie) {
    const block_address first = i * entries_per_bitmap;
    uint32_t nr_free = 0, first_free = entries_per_bitmap, beyond_end = 0;
    // An all-free bitmap (most of a big, sparsely used pool) sets no count.
    const bool all_free = std::all_of(data, data + (block_size - sizeof(bitmap_header_disk)),
                                      [](unsigned char c) { return c == 0; });
    if (all_free) {
      nr_free = static_cast<uint32_t>(std::min<block_address>(entries_per_bitmap, sm_.nr_blocks - first));
      first_free = 0;
    }
    for (uint32_t e = 0; e < entries_per_bitmap && !all_free; e++) {
      const uint32_t v = bitmap_get(data, e);
      const block_address b = first + e;
      if (b >= sm_.nr_blocks) {
        if (v) beyond_end++;
        continue;
      }
      if (v == 0) {
        nr_free++;
        if (first_free == entries_per_bitmap) first_free = e;
      } else if (v == 3) {
        auto o = overflow_.find(b);
        if (o == overflow_.end()) {
          fatal(sm_fault::count_without_overflow, bb, b);
          sm_.complete = false;
          sm_.counts.set(b, 3);
        } else {
          sm_.counts.set(b, o->second);
        }
      } else {
        sm_.counts.set(b, v);
      }
    }
    if (beyond_end) non_fatal(sm_fault::entries_beyond_end, bb, i, beyond_end, sm_.nr_blocks, false);
    if (ie.nr_free.get() < nr_free)
      non_fatal(sm_fault::index_nr_free_understated, bb, i, ie.nr_free.get(), nr_free, true);
    if (first_free < ie.none_free_before.get())
      non_fatal(sm_fault::index_none_free_before_overstated, bb, i, ie.none_free_before.get(), first_free, true);
  }

  // Overflow entries must match a bitmap value of 3.
  void check_overflow_entries() {
    for (auto &[b, c] : overflow_) {
      if (b >= sm_.nr_blocks)
        non_fatal(sm_fault::overflow_beyond_end, 0, b, 0, 0, false);
      else if (c < 3)
        non_fatal(sm_fault::overflow_count_below_3, 0, c, b, 0, false);
    }
  }

  block_cache &cache_;
  const disk_sm_root &root_;
  space_map_kind kind_;
  space_map_problem_visitor &problems_;
  space_map_contents sm_;
  block_address nr_bitmaps_ = 0;
  std::map<uint64_t, index_entry_disk> index_;
  std::map<block_address, uint32_t> overflow_;
};

}  // namespace

space_map_contents read_space_map(block_cache &cache, const disk_sm_root &root, space_map_kind kind,
                                  space_map_problem_visitor &problems) {
  return reader(cache, root, kind, problems).read();
}

}  // namespace pdata
