// Reading a space map into memory (see space_map_reader.h).
#include "persistent-data/space_map_reader.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <unordered_set>

#include <fmt/format.h>

#include "persistent-data/btree_walk.h"
#include "persistent-data/checksum.h"
#include "persistent-data/errors.h"

namespace pdata {

namespace {

const char *kind_name(space_map_kind k) { return k == space_map_kind::data ? "data" : "metadata"; }

// Collects index entries from the data space map's index btree.
class index_tree_visitor : public btree_visitor {
 public:
  index_tree_visitor(std::map<uint64_t, index_entry_disk> &out, std::vector<block_address> &own,
                     space_map_problem_visitor &p)
      : out_(out), own_(own), p_(p) {}
  bool visit_node(block_address b, const btree_node_view &, const key_range &, unsigned) override {
    own_.push_back(b);
    return true;
  }
  void visit_leaf(block_address, const btree_node_view &n, const key_range &) override {
    for (uint32_t i = 0; i < n.nr_entries(); i++) {
      index_entry_disk e;
      std::memcpy(&e, n.value_ptr(i), sizeof(e));
      out_[n.key(i)] = e;
    }
  }
  void damage(const btree_damage &d) override {
    p_.problem({d.block, fmt::format("data space map index btree: {} (bitmaps {} lost)", d.what, to_string(d.keys)),
                true});
  }

 private:
  std::map<uint64_t, index_entry_disk> &out_;
  std::vector<block_address> &own_;
  space_map_problem_visitor &p_;
};

class overflow_tree_visitor : public btree_visitor {
 public:
  overflow_tree_visitor(std::map<block_address, uint32_t> &out, std::vector<block_address> &own,
                        space_map_problem_visitor &p, const char *kind, bool &complete)
      : out_(out), own_(own), p_(p), kind_(kind), complete_(complete) {}
  bool visit_node(block_address b, const btree_node_view &, const key_range &, unsigned) override {
    own_.push_back(b);
    return true;
  }
  void visit_leaf(block_address, const btree_node_view &n, const key_range &) override {
    for (uint32_t i = 0; i < n.nr_entries(); i++) out_[n.key(i)] = n.value32(i);
  }
  void damage(const btree_damage &d) override {
    complete_ = false;
    p_.problem({d.block, fmt::format("{} space map reference count tree: {} (counts for blocks {} lost)", kind_,
                                     d.what, to_string(d.keys)),
                true});
  }

 private:
  std::map<block_address, uint32_t> &out_;
  std::vector<block_address> &own_;
  space_map_problem_visitor &p_;
  const char *kind_;
  bool &complete_;
};

}  // namespace

std::string index_nr_free_hint(space_map_kind kind, uint64_t bitmap, uint32_t said, uint32_t has) {
  return fmt::format("{} space map index entry for bitmap {} says {} free blocks, but the bitmap has {} (free space "
                     "hidden)",
                     kind_name(kind), bitmap, said, has);
}

std::string index_none_free_before_hint(space_map_kind kind, uint64_t bitmap, uint32_t said, uint32_t first_free) {
  return fmt::format("{} space map index entry for bitmap {} says nothing is free before entry {}, but entry {} is "
                     "free (free space hidden)",
                     kind_name(kind), bitmap, said, first_free);
}

space_map_contents read_space_map(block_cache &cache, const disk_sm_root &root, space_map_kind kind,
                                  space_map_problem_visitor &problems) {
  const char *kn = kind_name(kind);
  space_map_contents sm;
  sm.nr_blocks = root.nr_blocks.get();
  sm.nr_allocated_root = root.nr_allocated.get();

  if (kind == space_map_kind::metadata && sm.nr_blocks > max_metadata_blocks) {
    problems.problem({0,
                      fmt::format("metadata space map claims {} blocks, more than the maximum {}", sm.nr_blocks,
                                  max_metadata_blocks),
                      true});
    sm.complete = false;
    sm.counts = ref_counts(0);
    return sm;
  }
  // Guard against absurd sizes from a damaged root before allocating.
  // (Rounded up without overflowing for sizes near 2^64.)
  const block_address nr_bitmaps = sm.nr_blocks / entries_per_bitmap + (sm.nr_blocks % entries_per_bitmap != 0);
  if (kind == space_map_kind::data && nr_bitmaps > cache.nr_blocks()) {
    problems.problem({0,
                      fmt::format("data space map claims {} blocks, needing {} bitmaps, more than the metadata "
                                  "device's {} blocks",
                                  sm.nr_blocks, nr_bitmaps, cache.nr_blocks()),
                      true});
    sm.complete = false;
    sm.counts = ref_counts(0);
    return sm;
  }
  sm.counts = ref_counts(sm.nr_blocks);

  // 1. The index: which block holds bitmap i.
  std::map<uint64_t, index_entry_disk> index;
  const block_address index_root = root.bitmap_root.get();
  if (kind == space_map_kind::metadata) {
    if (index_root >= cache.nr_blocks()) {
      problems.problem({index_root, fmt::format("metadata space map index block {} is beyond the end of the device", index_root), true});
      sm.complete = false;
      return sm;
    }
    block_ref blk;
    try {
      blk = cache.read(index_root);
    } catch (const io_error &e) {
      problems.problem({index_root, fmt::format("metadata space map index block {}: {}", index_root, e.what()), true});
      sm.complete = false;
      return sm;
    }
    auto *idx = reinterpret_cast<const metadata_index_disk *>(blk->raw());
    if (idx->blocknr.get() != index_root) {
      problems.problem({index_root,
                        fmt::format("metadata space map index block {} claims to be block {}", index_root,
                                    idx->blocknr.get()),
                        true});
      sm.complete = false;
      return sm;
    }
    if (!checksum_ok(blk->raw(), checksum_salt::index_block)) {
      problems.problem({index_root, fmt::format("metadata space map index block {} has a bad checksum", index_root), true});
      sm.complete = false;
      return sm;
    }
    sm.own_blocks.push_back(index_root);
    for (uint64_t i = 0; i < nr_bitmaps; i++) index[i] = idx->index[i];
  } else {
    index_tree_visitor v(index, sm.own_blocks, problems);
    walk_btree(cache, index_root, sizeof(index_entry_disk), v);
  }

  // 2. The overflow tree (counts >= 3).
  std::map<block_address, uint32_t> overflow;
  {
    overflow_tree_visitor v(overflow, sm.own_blocks, problems, kn, sm.complete);
    walk_btree(cache, root.ref_count_root.get(), 4, v);
  }

  // 3. The bitmaps.
  std::unordered_set<block_address> seen_bitmaps;
  for (uint64_t i = 0; i < nr_bitmaps; i++) {
    auto it = index.find(i);
    if (it == index.end()) {
      problems.problem({0, fmt::format("{} space map index has no entry for bitmap {}", kn, i), true});
      sm.complete = false;
      continue;
    }
    const index_entry_disk &ie = it->second;
    block_address bb = ie.blocknr.get();
    const block_address first = i * entries_per_bitmap;
    if (bb >= cache.nr_blocks() || !seen_bitmaps.insert(bb).second) {
      problems.problem({bb,
                        fmt::format("{} space map bitmap {} (blocks {}..) points to block {}, {}", kn, i, first, bb,
                                    bb >= cache.nr_blocks() ? "beyond the end of the device"
                                                            : "already used by another bitmap"),
                        true});
      sm.complete = false;
      continue;
    }
    block_ref blk;
    try {
      blk = cache.read(bb);
    } catch (const io_error &e) {
      problems.problem({bb, fmt::format("{} space map bitmap block {}: {}", kn, bb, e.what()), true});
      sm.complete = false;
      continue;
    }
    auto *hdr = reinterpret_cast<const bitmap_header_disk *>(blk->raw());
    if (hdr->blocknr.get() != bb || !checksum_ok(blk->raw(), checksum_salt::bitmap)) {
      problems.problem({bb,
                        fmt::format("{} space map bitmap block {} (bitmap {}) {}", kn, bb, i,
                                    hdr->blocknr.get() != bb ? fmt::format("claims to be block {}", hdr->blocknr.get())
                                                             : std::string("has a bad checksum")),
                        true});
      sm.complete = false;
      continue;
    }
    sm.own_blocks.push_back(bb);
    const unsigned char *data = blk->raw() + sizeof(bitmap_header_disk);
    uint32_t nr_free = 0, first_free = entries_per_bitmap, beyond_end = 0;
    // An all-free bitmap (most of a big, sparsely used pool) sets no count.
    const bool all_free = std::all_of(data, data + (block_size - sizeof(bitmap_header_disk)),
                                      [](unsigned char c) { return c == 0; });
    if (all_free) {
      nr_free = static_cast<uint32_t>(std::min<block_address>(entries_per_bitmap, sm.nr_blocks - first));
      first_free = 0;
    }
    for (uint32_t e = 0; e < entries_per_bitmap && !all_free; e++) {
      uint32_t v = bitmap_get(data, e);
      block_address b = first + e;
      if (b >= sm.nr_blocks) {
        if (v) beyond_end++;
        continue;
      }
      if (v == 0) {
        nr_free++;
        if (first_free == entries_per_bitmap) first_free = e;
        continue;
      }
      if (v == 3) {
        auto o = overflow.find(b);
        if (o == overflow.end()) {
          problems.problem({bb,
                            fmt::format("{} space map: block {} has count 3+ in its bitmap but no entry in the "
                                        "reference count tree",
                                        kn, b),
                            true});
          sm.complete = false;
          sm.counts.set(b, 3);
        } else {
          sm.counts.set(b, o->second);
        }
      } else {
        sm.counts.set(b, v);
      }
    }
    if (beyond_end)
      problems.problem({bb,
                        fmt::format("{} space map bitmap {} has {} entries set beyond the end ({} blocks)", kn, i,
                                    beyond_end, sm.nr_blocks),
                        false});
    if (ie.nr_free.get() < nr_free)
      problems.problem({bb, index_nr_free_hint(kind, i, ie.nr_free.get(), nr_free), false, true});
    if (first_free < ie.none_free_before.get())
      problems.problem({bb, index_none_free_before_hint(kind, i, ie.none_free_before.get(), first_free), false, true});
  }

  // 4. Overflow entries must match a bitmap value of 3.
  for (auto &[b, c] : overflow) {
    if (b >= sm.nr_blocks) {
      problems.problem({0, fmt::format("{} space map reference count tree has an entry for block {} beyond the end", kn, b), false});
      continue;
    }
    if (c < 3)
      problems.problem({0,
                        fmt::format("{} space map reference count tree holds count {} for block {} (counts below 3 "
                                    "belong in the bitmap)",
                                    kn, c, b),
                        false});
  }
  return sm;
}

}  // namespace pdata
