// thin_check's fast path for sound metadata (see fast_check.h).
#include "thin/check/fast_check.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <unordered_map>
#include <vector>

#include "persistent-data/batch_read.h"
#include "persistent-data/block_cache.h"
#include "persistent-data/btree_walk.h"
#include "persistent-data/checksum.h"
#include "persistent-data/count_down.h"
#include "persistent-data/errors.h"
#include "persistent-data/run_reader.h"
#include "persistent-data/space_map_reader.h"
#include "thin/check/typed_faults.h"
#include "thin/check/shared_vblocks.h"
#include "thin/format/invariants.h"
#include "thin/format/thin_trees.h"

namespace thin::detail {

using namespace pdata;

namespace {

// Thrown to give up; check.cc then runs the exact checker.
struct give_up {};

[[noreturn]] void abandon() { throw give_up{}; }

// What a metadata block was first reached as. A block reached as two
// different things is given up on (the exact checker words it).
enum block_kind : uint8_t {
  unseen = 0,
  details_node,
  top_level_node,
  mapping_internal,
  mapping_leaf,
  data_index_node,
  data_overflow_internal,
  data_overflow_leaf,
  snapshot_superblock,
};

// A reference to a leaf not yet read.
struct leaf_ref {
  uint64_t begin, end;  // the key range the parent gives; end 0: none (a real end is above a key)
  uint32_t block;
  uint32_t slot;  // the parent's slot (mapping trees) for per-device totals
};
static_assert(sizeof(leaf_ref) == 24);

constexpr block_address max_run_blocks = 256;  // 1 MiB reads
constexpr block_address max_gap = 4;          // unused blocks read rather than split a run

bool in_range(const leaf_ref &r, uint64_t k) { return k >= r.begin && (r.end == 0 || k < r.end); }

class fast_checker {
 public:
  fast_checker(block_io &io, const superblock &live, const superblock &sb, check_reporter &r, pdata::progress &p,
               unsigned &stages, uint64_t max_merged_threes)
      : io_(io), live_(live), sb_(sb), r_(r), progress_(p), stages_(stages), max_merged_threes_(max_merged_threes),
        nr_meta_(io.nr_blocks()),
        nr_data_(live.data_sm_root().nr_blocks.get()), cache_(io, 256), kind_(nr_meta_, unseen),
        meta_(nr_meta_, 0) {}

  bool run();

  // Stale space-map hints seen (damage::hint records, in the exact checker's
  // order); valid when run() returns true.
  std::vector<damage> hints() const;

 private:
  struct device_walk {
    uint64_t dev;
    uint32_t slot;
  };

  void stage(const char *name) {
    r_.stage(name);
    stages_++;
  }

  void count_meta(block_address b) {
    uint8_t &c = meta_[b];
    if (c == 255)
      big_meta_[b]++;
    else
      c++;
  }
  uint64_t meta_count(block_address b) const {
    if (meta_[b] < 255) return meta_[b];
    auto it = big_meta_.find(b);
    return 255 + (it == big_meta_.end() ? 0 : it->second);
  }
  void mark(block_address b, block_kind k) {
    if (kind_[b] != unseen && kind_[b] != k) abandon();
    kind_[b] = k;
  }

  std::map<uint64_t, device_details> details(block_address root);
  std::vector<std::pair<uint64_t, block_address>> top_level(block_address root);
  void match_devices(const std::map<uint64_t, device_details> &dets,
                     const std::vector<std::pair<uint64_t, block_address>> &tops);
  void walk_devices(const std::vector<std::pair<uint64_t, block_address>> &tops,
                    std::vector<device_walk> &walks);
  void big_tree_ref(block_address b, uint64_t begin, std::optional<uint64_t> end, unsigned depth, uint32_t slot,
                    bool known_leaf);
  void load_data_space_map(const disk_sm_root &root);
  template <typename F>
  void process_leaves(std::vector<leaf_ref> &refs, F &&on_leaf);
  void read_block(block_address b, unsigned char *buf);
  unsigned tree_height(block_address root);
  void prefetch_children(const btree_node_view &n);
  void check_device_totals(const std::map<uint64_t, device_details> &dets, const std::vector<device_walk> &walks);

  block_io &io_;
  const superblock &live_, &sb_;
  check_reporter &r_;
  pdata::progress &progress_;
  unsigned &stages_;
  const uint64_t max_merged_threes_;
  const block_address nr_meta_;
  const uint64_t nr_data_;
  block_cache cache_;  // small trees only
  std::vector<uint8_t> kind_;
  std::vector<uint8_t> meta_;  // references found; 255 = see big_meta_
  std::unordered_map<block_address, uint64_t> big_meta_;

  // The tree being walked by big_tree_ref.
  uint32_t vsize_ = 8;
  block_kind internal_kind_ = mapping_internal, leaf_kind_ = mapping_leaf;
  bool allow_shared_ = true;
  std::vector<leaf_ref> *leaves_ = nullptr;
  std::vector<block_address> path_;
  std::vector<std::unique_ptr<block_buffer>> bufs_;  // one per depth
  unsigned height_ = 0;                              // of the tree being walked
  std::unordered_map<block_address, uint8_t> heights_;  // nodes on leftmost paths
  // Children of the node being descended into, read in one batch ahead of
  // the walk; each is served once by read_block.
  std::unordered_map<block_address, std::unique_ptr<block_buffer>> prefetched_;

  // Per-device totals: a slot per device and per internal mapping node.
  std::vector<uint64_t> totals_;
  std::vector<uint32_t> postorder_;                     // slots, children before parents
  std::vector<std::pair<uint32_t, uint32_t>> edges_;    // (parent slot, internal child slot)
  std::unordered_map<block_address, uint32_t> slot_of_;  // internal mapping nodes

  std::vector<leaf_ref> mapping_leaves_, overflow_leaves_;
  uint32_t overflow_slot_ = UINT32_MAX;  // the slot of the data overflow tree's leaf references
  std::unique_ptr<count_down> data_;
  uint64_t data_allocated_ = 0;
  std::vector<damage> meta_hints_, data_hints_, alloc_hints_;
};

// The small trees, as the exact checker walks them: every reference counted,
// a node seen before not descended into, any damage gives up.
class small_tree_visitor : public btree_visitor {
 public:
  small_tree_visitor(std::function<void(block_address)> on_node, std::function<bool(block_address)> fresh,
                     std::function<void(const btree_node_view &)> on_leaf)
      : on_node_(std::move(on_node)), fresh_(std::move(fresh)), on_leaf_(std::move(on_leaf)) {}
  bool visit_node(block_address b, const btree_node_view &, const key_range &, unsigned) override {
    on_node_(b);
    return fresh_(b);
  }
  void visit_leaf(block_address, const btree_node_view &n, const key_range &) override { on_leaf_(n); }
  void damage(const btree_damage &) override { abandon(); }

 private:
  std::function<void(block_address)> on_node_;
  std::function<bool(block_address)> fresh_;
  std::function<void(const btree_node_view &)> on_leaf_;
};

std::map<uint64_t, device_details> fast_checker::details(block_address root) {
  std::map<uint64_t, device_details> out;
  small_tree_visitor v([&](block_address b) { count_meta(b); },
                       [&](block_address b) {
                         bool fresh = kind_[b] == unseen;
                         mark(b, details_node);
                         return fresh;
                       },
                       [&](const btree_node_view &n) {
                         for (uint32_t i = 0; i < n.nr_entries(); i++)
                           out[n.key(i)] = decode_device_details(n.value_ptr(i));
                       });
  walk_btree(cache_, root, sizeof(device_details_disk), v);
  return out;
}

std::vector<std::pair<uint64_t, block_address>> fast_checker::top_level(block_address root) {
  std::vector<std::pair<uint64_t, block_address>> out;
  small_tree_visitor v([&](block_address b) { count_meta(b); },
                       [&](block_address b) {
                         bool fresh = kind_[b] == unseen;
                         mark(b, top_level_node);
                         return fresh;
                       },
                       [&](const btree_node_view &n) {
                         for (uint32_t i = 0; i < n.nr_entries(); i++) out.emplace_back(n.key(i), n.value64(i));
                       });
  walk_btree(cache_, root, 8, v);
  return out;
}

void fast_checker::match_devices(const std::map<uint64_t, device_details> &dets,
                                 const std::vector<std::pair<uint64_t, block_address>> &tops) {
  std::map<uint64_t, block_address> top_map(tops.begin(), tops.end());
  for (auto &[dev, root] : top_map)
    if (!dets.count(dev)) abandon();
  for (auto &[dev, d] : dets)
    if (!top_map.count(dev)) abandon();
}

void fast_checker::read_block(block_address b, unsigned char *buf) {
  if (!prefetched_.empty()) {
    if (auto it = prefetched_.find(b); it != prefetched_.end()) {
      std::memcpy(buf, it->second->raw(), block_size);
      prefetched_.erase(it);
      return;
    }
  }
  io_.read(b, buf, 1);
}

// The height of the big tree under `root` (1: a leaf), from its leftmost
// path; remembered for the nodes on that path, so that trees sharing their
// left edge (snapshots) descend it once. A node that cannot be used gives up.
unsigned fast_checker::tree_height(block_address root) {
  std::vector<block_address> path;
  block_buffer buf;
  unsigned below = 0;  // height of the node where the descent stopped, less one
  for (block_address b = root;;) {
    if (auto it = heights_.find(b); it != heights_.end()) {
      below = it->second;
      break;
    }
    if (b >= nr_meta_ || path.size() >= max_btree_depth) abandon();
    path.push_back(b);
    io_.read(b, buf.raw(), 1);
    if (validate_btree_node(buf.raw(), b, vsize_)) abandon();
    btree_node_view n(buf.raw());
    if (n.is_leaf()) break;
    if (n.nr_entries() == 0) abandon();
    b = n.value64(0);
  }
  for (std::size_t i = 0; i < path.size(); i++) heights_[path[i]] = static_cast<uint8_t>(below + path.size() - i);
  return heights_.at(root);
}

// Reads the children of internal node `n` that the walk will read (internal
// nodes not read before, and shared ones it revisits), in one batch: sorted,
// joined into large requests, several in flight on a device that allows it.
void fast_checker::prefetch_children(const btree_node_view &n) {
  std::vector<block_address> want;
  for (uint32_t i = 0; i < n.nr_entries(); i++) {
    const block_address c = n.value64(i);
    if (c < nr_meta_ && (kind_[c] == unseen || kind_[c] == internal_kind_) && !prefetched_.count(c))
      want.push_back(c);
  }
  if (want.size() < 2) return;
  batch_read(io_, std::move(want), [&](block_address b, const unsigned char *data) {
    auto copy = std::make_unique<block_buffer>();
    std::memcpy(copy->raw(), data, block_size);
    prefetched_.emplace(b, std::move(copy));
  });
}

// One reference to a node of a big tree (mapping subtrees, the data overflow
// tree): internal nodes are read and descended into; leaves are listed.
void fast_checker::big_tree_ref(block_address b, uint64_t begin, std::optional<uint64_t> end, unsigned depth,
                                uint32_t slot, bool known_leaf) {
  if (b >= nr_meta_ || depth >= max_btree_depth) abandon();
  auto list_leaf = [&] {
    mark(b, leaf_kind_);
    count_meta(b);
    leaves_->push_back({begin, end.value_or(0), static_cast<uint32_t>(b), slot});
  };
  const uint8_t k = kind_[b];
  if (k != unseen && !allow_shared_) abandon();
  if (k == leaf_kind_ || (k == unseen && known_leaf)) return list_leaf();
  if (k != unseen && k != internal_kind_) abandon();
  for (block_address p : path_)
    if (p == b) abandon();  // a cycle

  if (bufs_.size() <= depth) bufs_.push_back(std::make_unique<block_buffer>());
  unsigned char *buf = bufs_[depth]->raw();
  read_block(b, buf);
  progress_.advance(1);
  if (validate_btree_node(buf, b, vsize_)) abandon();
  btree_node_view n(buf);
  const uint32_t nr = n.nr_entries();
  key_range r{begin, end};
  if (nr > 0 && (!r.contains(n.key(0)) || !r.contains(n.key(nr - 1)))) abandon();
  if (n.is_leaf()) return list_leaf();

  count_meta(b);
  if (k == internal_kind_) {  // shared, finished before (not on the path)
    edges_.emplace_back(slot, slot_of_.at(b));
    return;
  }
  mark(b, internal_kind_);
  const uint32_t me = static_cast<uint32_t>(totals_.size());
  if (me == UINT32_MAX) abandon();
  totals_.push_back(0);
  slot_of_[b] = me;
  edges_.emplace_back(slot, me);

  // Are the children leaves? The tree's height says (each leaf is validated
  // when it is read: an internal node listed as a leaf, in a tree whose
  // leaves lie at different depths, gives up). Internal children are read
  // now, in one batch.
  const bool leaves = depth + 2 == height_;
  if (!leaves) prefetch_children(n);
  path_.push_back(b);
  for (uint32_t i = 0; i < nr; i++) {
    btree_node_view cur(bufs_[depth]->raw());  // bufs_ may have grown
    std::optional<uint64_t> cend = i + 1 < nr ? std::optional<uint64_t>(cur.key(i + 1)) : end;
    big_tree_ref(cur.value64(i), cur.key(i), cend, depth + 1, me, leaves);
  }
  path_.pop_back();
  postorder_.push_back(me);
}

void fast_checker::walk_devices(const std::vector<std::pair<uint64_t, block_address>> &tops,
                                std::vector<device_walk> &walks) {
  vsize_ = 8;
  internal_kind_ = mapping_internal;
  leaf_kind_ = mapping_leaf;
  allow_shared_ = true;
  leaves_ = &mapping_leaves_;
  for (auto &[dev, root] : tops) {
    const uint32_t slot = static_cast<uint32_t>(totals_.size());
    totals_.push_back(0);
    path_.clear();
    height_ = tree_height(root);
    big_tree_ref(root, 0, std::nullopt, 0, slot, false);
    prefetched_.clear();  // children the walk did not come back for
    postorder_.push_back(slot);
    walks.push_back({dev, slot});
  }
}

// Reads the leaves listed in `refs` in block order, in runs of up to 1 MiB
// on a reader thread (persistent-data/run_reader.h), validating each
// physical leaf once (checksum, header, key order) there and every
// reference's key range here; on_leaf(node, first, last) gets each leaf with
// its references [first, last).
template <typename F>
void fast_checker::process_leaves(std::vector<leaf_ref> &refs, F &&on_leaf) {
  std::sort(refs.begin(), refs.end(), [](const leaf_ref &a, const leaf_ref &b) { return a.block < b.block; });
  const run_options opts{max_run_blocks, max_gap, 4};
  auto runs = plan_runs(refs.size(), [&](std::size_t i) { return block_address(refs[i].block); }, opts);
  // Validates a run's leaves; false when any is unusable.
  auto check_run = [&](const block_run &r, const block_buffer *buf) {
    block_address prev = ~0ull;
    for (std::size_t x = r.first; x < r.last; x++) {
      const block_address b = refs[x].block;
      if (b == prev) continue;
      prev = b;
      const unsigned char *p = buf[b - r.start].raw();
      const uint32_t vsize = refs[x].slot == overflow_slot_ ? 4 : 8;
      if (validate_btree_node(p, b, vsize) || !btree_node_view(p).is_leaf()) return false;
    }
    return true;
  };
  auto decode_run = [&](const block_run &r, const block_buffer *buf) {
    uint64_t leaves = 0;
    for (std::size_t x = r.first; x < r.last; leaves++) {
      const block_address b = refs[x].block;
      std::size_t y = x + 1;
      while (y < r.last && refs[y].block == b) y++;
      btree_node_view n(buf[b - r.start].raw());
      const uint32_t nr = n.nr_entries();
      if (nr > 0) {
        const uint64_t k0 = n.key(0), k1 = n.key(nr - 1);
        for (std::size_t z = x; z < y; z++)
          if (!in_range(refs[z], k0) || !in_range(refs[z], k1)) abandon();
      }
      on_leaf(n, refs.data() + x, refs.data() + y);
      x = y;
    }
    progress_.advance(leaves);
  };
  // An unreadable or invalid leaf: the exact checker reports it.
  if (read_runs(io_, runs, check_run, decode_run, opts) != runs.size()) abandon();
}

void fast_checker::load_data_space_map(const disk_sm_root &root) {
  const uint64_t nr_blocks = root.nr_blocks.get();
  const uint64_t nr_bitmaps = nr_blocks / entries_per_bitmap + (nr_blocks % entries_per_bitmap != 0);
  if (nr_bitmaps > nr_meta_) abandon();

  // The index btree.
  std::map<uint64_t, index_entry_disk> index;
  {
    small_tree_visitor v(
        [&](block_address b) {
          count_meta(b);
        },
        [&](block_address b) {
          if (kind_[b] != unseen) abandon();
          mark(b, data_index_node);
          return true;
        },
        [&](const btree_node_view &n) {
          for (uint32_t i = 0; i < n.nr_entries(); i++) {
            index_entry_disk e;
            std::memcpy(&e, n.value_ptr(i), sizeof(e));
            index[n.key(i)] = e;
          }
        });
    walk_btree(cache_, root.bitmap_root.get(), sizeof(index_entry_disk), v);
  }

  // The bitmaps, in index order.
  data_ = std::make_unique<count_down>(nr_blocks);
  block_buffer buf;
  for (uint64_t i = 0; i < nr_bitmaps; i++) {
    auto it = index.find(i);
    if (it == index.end()) abandon();
    const index_entry_disk &ie = it->second;
    const block_address bb = ie.blocknr.get();
    if (bb >= nr_meta_ || kind_[bb] != unseen) abandon();  // also: two bitmaps in one block
    read_block(bb, buf.raw());
    progress_.advance(1);
    auto *hdr = reinterpret_cast<const bitmap_header_disk *>(buf.raw());
    if (hdr->blocknr.get() != bb || !checksum_ok(buf.raw(), checksum_salt::bitmap)) abandon();
    mark(bb, data_index_node);
    count_meta(bb);
    auto st = data_->load_bitmap(i, buf.raw() + sizeof(bitmap_header_disk));
    if (st.beyond_end) abandon();
    auto hint = [&](sm_fault f, uint64_t said, uint64_t found) {
      space_map_problem p;
      p.sm = space_map_kind::data;
      p.fault = f;
      p.block = bb;
      p.a = i;
      p.b = said;
      p.c = found;
      p.fatal = false;
      p.hint = true;
      data_hints_.push_back(space_map_record(p));
    };
    if (ie.nr_free.get() < st.nr_free) hint(sm_fault::index_nr_free_understated, ie.nr_free.get(), st.nr_free);
    if (st.first_free < ie.none_free_before.get())
      hint(sm_fault::index_none_free_before_overstated, ie.none_free_before.get(), st.first_free);
    data_allocated_ += st.nr_allocated;
  }
  data_->finish_loading();

  // The overflow tree: leaves listed, compared after the mappings are counted.
  vsize_ = 4;
  internal_kind_ = data_overflow_internal;
  leaf_kind_ = data_overflow_leaf;
  allow_shared_ = false;
  leaves_ = &overflow_leaves_;
  path_.clear();
  const uint32_t slot = static_cast<uint32_t>(totals_.size());  // totals unused
  totals_.push_back(0);
  overflow_slot_ = slot;
  heights_.clear();
  height_ = tree_height(root.ref_count_root.get());
  big_tree_ref(root.ref_count_root.get(), 0, std::nullopt, 0, slot, false);
  prefetched_.clear();
  postorder_.push_back(slot);
  for (auto &r : overflow_leaves_) r.slot = slot;  // marks them as the overflow tree's (no totals)
}

void fast_checker::check_device_totals(const std::map<uint64_t, device_details> &dets,
                                       const std::vector<device_walk> &walks) {
  for (auto &w : walks) {
    auto it = dets.find(w.dev);
    if (it != dets.end() && it->second.mapped_blocks != totals_[w.slot]) abandon();
  }
}

bool fast_checker::run() {
  if (nr_meta_ > UINT32_MAX) abandon();
  count_meta(0);  // the superblock
  // 2. Device details.
  stage("examining devices tree");
  auto dets = details(sb_.details_root);

  // 3. Mapping tree: internal nodes now, leaves listed.
  stage("examining mapping tree");
  auto tops = top_level(sb_.mapping_root);
  match_devices(dets, tops);
  std::vector<device_walk> walks, snap_walks;
  walk_devices(tops, walks);

  std::map<uint64_t, device_details> snap_dets;
  const block_address held = live_.held_root;
  if (held) {
    if (held >= nr_meta_) abandon();
    count_meta(held);
    mark(held, snapshot_superblock);
    block_buffer snap;
    read_block(held, snap.raw());
    if (validate_superblock(snap.raw(), held)) abandon();
    superblock ssb = decode_superblock(snap.raw());
    snap_dets = details(ssb.details_root);
    auto snap_tops = top_level(ssb.mapping_root);
    match_devices(snap_dets, snap_tops);
    walk_devices(snap_tops, snap_walks);
  }

  // The data space map must be loaded before the mappings count it down.
  load_data_space_map(live_.data_sm_root());

  // Mapping leaves: every physical leaf once; totals per reference.
  const uint32_t sb_time = sb_.time;
  count_down &data = *data_;
  const uint64_t nr_data = nr_data_;
  // A data block mapped twice within one device (invariants.h) has two
  // references or more, and snapshots keep a shared block at one virtual
  // block: a shared block met at a second virtual block hands the pool over
  // to the exact checker, which looks at each device (shared_vblocks.h).
  shared_vblocks vblocks(data.size());
  // The data overflow tree's leaves (counts of 3 and more) are read in the
  // same pass when the counts they give fit in max_merged_threes_ * 4 bytes:
  // kept by rank until the mappings are all counted. Else they are read in a
  // pass of their own afterwards.
  const bool merged = data.nr_threes() <= max_merged_threes_;
  std::vector<uint32_t> expected;  // merged: the overflow tree's count of each 3, by rank
  uint64_t matched = 0;
  auto overflow_leaf = [&](const btree_node_view &n) {
    for (uint32_t i = 0; i < n.nr_entries(); i++) {
      const uint64_t b = n.key(i);
      const uint32_t c = n.value32(i);
      if (b >= nr_data || c < 3) abandon();
      if (!data.is_three(b)) continue;  // the bitmap's count stands (as the exact checker reads it)
      if (merged) {
        uint32_t &e = expected[data.rank_of_three(b)];
        if (e != 0) abandon();
        e = c;
      } else if (data.found(b) != c) {
        abandon();
      }
      matched++;
    }
  };
  if (merged) {
    expected.assign(data.nr_threes(), 0);
    mapping_leaves_.insert(mapping_leaves_.end(), overflow_leaves_.begin(), overflow_leaves_.end());
    std::vector<leaf_ref>().swap(overflow_leaves_);
  }
  process_leaves(mapping_leaves_, [&](const btree_node_view &n, const leaf_ref *first, const leaf_ref *last) {
    if (first->slot == overflow_slot_) return overflow_leaf(n);
    const uint32_t nr = n.nr_entries();
    const unsigned char *values = n.value_ptr(0);
    for (uint32_t i = 0; i < nr; i++) {
      const uint64_t bt = load_le64(values + 8 * std::size_t(i));
      const uint64_t db = unpack_block(bt);
      if (!invariants::mapping_block_ok(db, nr_data) || !invariants::mapping_time_ok(unpack_time(bt), sb_time))
        abandon();
      const uint32_t left = data.take_left(db);  // 0: no count left for it
      if (left == 0 || (left >= 2 ? !vblocks.note(db, n.key(i)) : !vblocks.last(db, n.key(i)))) abandon();
    }
    for (const leaf_ref *r = first; r != last; r++) totals_[r->slot] += nr;
  });
  std::vector<leaf_ref>().swap(mapping_leaves_);

  // Per-device totals: children before parents.
  {
    std::vector<uint32_t> pos(totals_.size(), UINT32_MAX);
    for (std::size_t i = 0; i < postorder_.size(); i++) pos[postorder_[i]] = static_cast<uint32_t>(i);
    for (auto &e : edges_)
      if (pos[e.second] == UINT32_MAX) abandon();
    std::sort(edges_.begin(), edges_.end(), [&](auto &a, auto &b) { return pos[a.second] < pos[b.second]; });
    for (auto &[parent, child] : edges_) totals_[parent] += totals_[child];
  }
  check_device_totals(dets, walks);
  check_device_totals(snap_dets, snap_walks);

  // 4. Space maps.
  stage("checking space map counts");
  if (merged) {
    for (uint64_t r = 0; r < expected.size(); r++)
      if (data.found_at_rank(r) != expected[r]) abandon();  // 0: a 3 the overflow tree lacks
  } else {
    process_leaves(overflow_leaves_, [&](const btree_node_view &n, const leaf_ref *, const leaf_ref *) { overflow_leaf(n); });
  }
  if (matched != data.nr_threes() || !data.small_counts_used_up()) abandon();
  // The roots' nr_allocated: the bitmaps holding more than the root says is
  // damage (the exact checker words it); holding fewer is a stale hint.
  std::optional<damage> data_alloc_hint;
  {
    const uint64_t root = live_.data_sm_root().nr_allocated.get();
    if (data_allocated_ > root) abandon();
    if (data_allocated_ < root) data_alloc_hint = nr_allocated_record(space_map_kind::data, root, data_allocated_);
  }

  struct hints_only : space_map_problem_visitor {
    std::vector<damage> &out;
    explicit hints_only(std::vector<damage> &o) : out(o) {}
    void problem(const space_map_problem &p) override {
      if (!p.hint) abandon();
      out.push_back(space_map_record(p));
    }
  } probs(meta_hints_);
  auto meta_sm = read_space_map(cache_, live_.metadata_sm_root(), space_map_kind::metadata, probs);
  if (!meta_sm.complete) abandon();
  for (block_address b : meta_sm.own_blocks) count_meta(b);
  for (block_address b = 0; b < nr_meta_; b++)
    if (meta_sm.counts.get(b) != meta_count(b)) abandon();
  if (meta_sm.counts.nr_allocated() > meta_sm.nr_allocated_root) abandon();
  if (meta_sm.counts.nr_allocated() < meta_sm.nr_allocated_root)
    alloc_hints_.push_back(
        nr_allocated_record(space_map_kind::metadata, meta_sm.nr_allocated_root, meta_sm.counts.nr_allocated()));
  if (data_alloc_hint) alloc_hints_.push_back(std::move(*data_alloc_hint));
  return true;
}

std::vector<damage> fast_checker::hints() const {
  std::vector<damage> out = meta_hints_;
  out.insert(out.end(), data_hints_.begin(), data_hints_.end());
  out.insert(out.end(), alloc_hints_.begin(), alloc_hints_.end());
  return out;
}

}  // namespace

bool fast_check(block_io &io, const superblock &live, const superblock &sb, check_reporter &r,
                unsigned &stages_announced, std::vector<damage> &hints, pdata::progress *p,
                uint64_t max_merged_threes) {
  stages_announced = 0;
  try {
    fast_checker fc(io, live, sb, r, pdata::or_null(p), stages_announced, max_merged_threes);
    if (!fc.run()) return false;
    hints = fc.hints();
    return true;
  } catch (const give_up &) {
    return false;
  } catch (const io_error &) {
    return false;
  }
}

}  // namespace thin::detail
