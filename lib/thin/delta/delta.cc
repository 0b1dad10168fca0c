// thin_delta: a simultaneous walk of two mapping subtrees (see delta.h).
#include "thin/delta/delta.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>

#include "persistent-data/batch_read.h"
#include "persistent-data/errors.h"
#include "thin/format/invariants.h"
#include "thin/format/superblock.h"

namespace thin {

using namespace pdata;

namespace {

// A position in one mapping subtree, read lazily. The current item is either
// a node not read yet (a child pointer of a node read before, or the root),
// which can be read (descend) or passed over unread (skip), or one mapping of
// a leaf, or the end. Every node is validated when it is read.
class tree_cursor {
 public:
  enum class item { node, entry, end };

  tree_cursor(block_cache &cache, std::string what, block_address root, const key_range &keys, unsigned depth,
              std::vector<block_address> ancestors)
      : cache_(cache), what_(std::move(what)), ancestors_(std::move(ancestors)) {
    set_pending(root, keys, depth);
  }

  item current() const {
    if (has_pending_) return item::node;
    return stack_.empty() ? item::end : item::entry;
  }

  // Node items.
  block_address node_block() const { return pending_.block; }
  const key_range &node_keys() const { return pending_.keys; }
  unsigned node_depth() const { return pending_.depth; }
  // Levels below the node, when known: B-tree leaves all lie at one depth,
  // learnt when the first leaf is read.
  std::optional<unsigned> node_height() const {
    if (leaf_depth_ && *leaf_depth_ >= pending_.depth) return *leaf_depth_ - pending_.depth;
    return std::nullopt;
  }

  // Entry items.
  uint64_t entry_key() const { return top().view.key(top().index); }
  uint64_t entry_data() const { return unpack_block(top().view.value64(top().index)); }
  // The leaf holding the current mapping, the mapping's index in it, and a
  // move past the leaf's mappings before index i (at most its nr_entries).
  const btree_node_view &leaf() const { return top().view; }
  uint32_t leaf_index() const { return top().index; }
  void skip_to(uint32_t i) {
    stack_.back().index = i;
    settle();
  }

  // Where the current item starts: a mapping's origin block, or the lowest
  // origin block a node may hold.
  uint64_t position() const { return has_pending_ ? pending_.keys.begin : entry_key(); }

  // Reads the current node and moves to its first child or mapping.
  void descend() {
    pending p = std::move(pending_);
    has_pending_ = false;
    if (p.block >= cache_.nr_blocks())
      damage(p, fmt::format("btree node pointer to block {} is beyond the end of the metadata ({} blocks)", p.block,
                            cache_.nr_blocks()));
    if (p.depth >= max_btree_depth) damage(p, fmt::format("btree deeper than {} levels (a cycle?)", max_btree_depth));
    bool cycle = std::find(ancestors_.begin(), ancestors_.end(), p.block) != ancestors_.end();
    for (auto &f : stack_) cycle = cycle || f.block == p.block;
    if (cycle) damage(p, fmt::format("btree node {} is its own ancestor (cycle)", p.block));
    block_ref buf = std::move(p.peeked);
    if (!buf) {
      try {
        buf = cache_.read(p.block);
      } catch (const io_error &e) {
        damage(p, e.what());
      }
    }
    if (auto err = validate_btree_node(buf->raw(), p.block, 8)) damage(p, *err);
    btree_node_view n(buf->raw());
    uint32_t nr = n.nr_entries();
    if (nr > 0 && (!p.keys.contains(n.key(0)) || !p.keys.contains(n.key(nr - 1))))
      damage(p, fmt::format("btree node keys [{}..{}] fall outside the range {} its parent gives", n.key(0),
                            n.key(nr - 1), to_string(p.keys)));
    if (n.is_leaf() && !leaf_depth_) leaf_depth_ = p.depth;
    stack_.push_back(frame{p.block, std::move(buf), n, p.keys, p.depth, 0});
    settle();
  }

  // Passes over the current item: a node unread, or one mapping.
  void skip() {
    if (has_pending_)
      clear_pending();
    else
      stack_.back().index++;
    settle();
  }

  // Whether the current node is a leaf, by looking at it (nothing when it
  // cannot be read; descend() then reports why).
  std::optional<bool> peek_is_leaf() {
    pending &p = pending_;
    if (!p.peeked) {
      if (p.block >= cache_.nr_blocks()) return std::nullopt;
      try {
        p.peeked = cache_.read(p.block);  // kept for descend()
      } catch (const io_error &) {
        return std::nullopt;
      }
    }
    return btree_node_view(p.peeked->raw()).is_leaf();
  }

  // The nodes read on the way to the current item.
  std::vector<block_address> path() const {
    std::vector<block_address> p = ancestors_;
    for (auto &f : stack_) p.push_back(f.block);
    return p;
  }

 private:
  struct pending {
    block_address block = 0;
    key_range keys;
    unsigned depth = 0;
    block_ref peeked;  // read by peek_is_leaf(), not validated yet
  };
  struct frame {
    block_address block;
    block_ref buf;  // keeps the view's bytes alive
    btree_node_view view;
    key_range keys;
    unsigned depth;
    uint32_t index;
  };

  const frame &top() const { return stack_.back(); }

  void set_pending(block_address b, const key_range &keys, unsigned depth) {
    pending_.block = b;
    pending_.keys = keys;
    pending_.depth = depth;
    pending_.peeked.reset();
    has_pending_ = true;
  }
  void clear_pending() {
    pending_.peeked.reset();
    has_pending_ = false;
  }

  [[noreturn]] void damage(const pending &p, const std::string &why) const {
    throw metadata_error(
        fmt::format("mapping tree of {}: block {}: {} (origin blocks {})", what_, p.block, why, to_string(p.keys)));
  }

  // Moves to the next item: the next child pointer of an internal node, the
  // next mapping of a leaf, or up when a node is done.
  void settle() {
    while (!has_pending_ && !stack_.empty()) {
      frame &f = stack_.back();
      uint32_t nr = f.view.nr_entries();
      if (f.index >= nr) {
        stack_.pop_back();
        continue;
      }
      if (f.view.is_leaf()) return;
      uint32_t i = f.index++;
      key_range child{f.view.key(i), i + 1 < nr ? std::optional<uint64_t>(f.view.key(i + 1)) : f.keys.end};
      set_pending(f.view.value64(i), child, f.depth + 1);
    }
  }

  block_cache &cache_;
  std::string what_;
  std::vector<block_address> ancestors_;
  std::vector<frame> stack_;
  pending pending_;  // the current item when has_pending_
  bool has_pending_ = false;
  std::optional<unsigned> leaf_depth_;
};

class tree_differ {
 public:
  tree_differ(block_cache &cache, const mapping_subtree &l, const mapping_subtree &r, delta_visitor &v)
      : cache_(cache),
        both_(fmt::format("devices {} and {}", l.dev_id, r.dev_id)),
        left_(cache, fmt::format("device {}", l.dev_id), l.root, key_range{}, 0, {}),
        right_(cache, fmt::format("device {}", r.dev_id), r.root, key_range{}, 0, {}),
        v_(v) {}

  // Mappings go out in runs (consecutive origin blocks, each side mapped or
  // not throughout, and mapped to consecutive data blocks), so the visitor
  // sees one call a run, not one a mapping. A run pending when damage is
  // found goes out before the error does.
  void run() {
    try {
      walk();
    } catch (...) {
      flush();
      throw;
    }
    flush();
  }

 private:
  static constexpr uint64_t none = UINT64_MAX;  // unmapped on one side

  void walk() {
    using item = tree_cursor::item;
    for (;;) {
      item li = left_.current(), ri = right_.current();
      if (li == item::end && ri == item::end) return;
      if (ri == item::end) return drain(left_, true);
      if (li == item::end) return drain(right_, false);
      if (li == item::node && ri == item::node && left_.node_block() == right_.node_block()) {
        shared();
        continue;
      }
      uint64_t pl = left_.position(), pr = right_.position();
      if (pl != pr) {
        // The side that is behind: a mapping the other side cannot have, or a
        // node that may hold such mappings.
        tree_cursor &c = pl < pr ? left_ : right_;
        if (c.current() == item::node)
          c.descend();
        else
          only(c, pl < pr);
        continue;
      }
      if (li == item::entry && ri == item::entry) {
        merge_leaves();
      } else if (li == item::node && ri == item::entry) {
        left_.descend();
      } else if (li == item::entry) {
        right_.descend();
      } else {
        descend_unshared_nodes();
      }
    }
  }

  // Both sides are within a leaf: their mappings merged by origin block
  // until either leaf ends (the rest is the walk's: the next item on that
  // side may be a node).
  void merge_leaves() {
    const btree_node_view &a = left_.leaf(), &b = right_.leaf();
    const uint32_t na = a.nr_entries(), nb = b.nr_entries();
    uint32_t i = left_.leaf_index(), j = right_.leaf_index();
    while (i < na && j < nb) {
      const uint64_t ka = a.key(i), kb = b.key(j);
      if (ka == kb) {
        emit(ka, unpack_block(a.value64(i)), unpack_block(b.value64(j)));
        i++;
        j++;
      } else if (ka < kb) {
        emit(ka, unpack_block(a.value64(i)), none);
        i++;
      } else {
        emit(kb, none, unpack_block(b.value64(j)));
        j++;
      }
    }
    left_.skip_to(i);
    right_.skip_to(j);
  }

  void emit(uint64_t origin, uint64_t l, uint64_t r) {
    if (len_ && origin == origin_ + len_ && (l == none) == (left_data_ == none) &&
        (r == none) == (right_data_ == none) && (l == none || l == left_data_ + len_) &&
        (r == none || r == right_data_ + len_)) {
      len_++;
      return;
    }
    flush();
    origin_ = origin;
    left_data_ = l;
    right_data_ = r;
    len_ = 1;
  }

  void flush() {
    if (!len_) return;
    const uint64_t len = len_;
    len_ = 0;
    v_.blocks(origin_, left_data_ == none ? std::nullopt : std::optional<uint64_t>(left_data_),
              right_data_ == none ? std::nullopt : std::optional<uint64_t>(right_data_), len);
  }

  // Both sides are at different nodes starting at the same key. A subtree
  // the two trees share sits at the same height in both, so read the higher
  // node first: its children may be the lower one's block. Heights are known
  // once a leaf has been read on each side; until then a look at the nodes
  // tells leaves from internal nodes.
  void descend_unshared_nodes() {
    auto height = [](tree_cursor &c) -> std::optional<unsigned> {
      if (auto h = c.node_height()) return h;
      if (c.peek_is_leaf().value_or(false)) return 0u;
      return std::nullopt;  // internal, height not known yet
    };
    std::optional<unsigned> hl = height(left_), hr = height(right_);
    if (hl && hr && *hl != *hr) {
      (*hl > *hr ? left_ : right_).descend();
    } else if (hl && *hl == 0 && !hr) {
      right_.descend();
    } else if (hr && *hr == 0 && !hl) {
      left_.descend();
    } else {
      left_.descend();
      right_.descend();
    }
  }

  void shared() {
    const key_range &a = left_.node_keys(), &b = right_.node_keys();
    key_range keys{std::max(a.begin, b.begin), a.end && b.end ? std::min(*a.end, *b.end) : (a.end ? a.end : b.end)};
    flush();  // the visitor hears of the subtree after the mappings before it
    if (v_.shared_subtree(left_.node_block(), keys)) {
      std::vector<block_address> ancestors = left_.path(), rp = right_.path();
      ancestors.insert(ancestors.end(), rp.begin(), rp.end());
      tree_cursor c(cache_, both_, left_.node_block(), keys, std::max(left_.node_depth(), right_.node_depth()),
                    std::move(ancestors));
      emit_rest(c, true, true);
    }
    left_.skip();
    right_.skip();
  }

  void only(tree_cursor &c, bool left) {
    const uint64_t d = c.entry_data();
    emit(c.entry_key(), left ? d : none, left ? none : d);
    c.skip();
  }

  void drain(tree_cursor &c, bool left) { emit_rest(c, left, !left); }

  // Every mapping from c's position to its end goes to emit(), its data
  // block given on the sides named (unmapped on the other).
  void emit_rest(tree_cursor &c, bool on_left, bool on_right) {
    while (c.current() != tree_cursor::item::end) {
      if (c.current() == tree_cursor::item::node) {
        c.descend();
        continue;
      }
      const btree_node_view &n = c.leaf();
      const uint32_t nr = n.nr_entries();
      for (uint32_t i = c.leaf_index(); i < nr; i++) {
        const uint64_t d = unpack_block(n.value64(i));
        emit(n.key(i), on_left ? d : none, on_right ? d : none);
      }
      c.skip_to(nr);
    }
  }

  block_cache &cache_;
  std::string both_;
  tree_cursor left_, right_;
  delta_visitor &v_;
  // The run not yet handed to the visitor (len_ 0: none).
  uint64_t origin_ = 0, left_data_ = none, right_data_ = none, len_ = 0;
};

// The reads of a diff, planned: every internal node of both subtrees is read
// level by level in batches (and pinned: the walk comes back to them), and
// their leaves are listed in the order the walk meets them, by the lowest
// origin block each may hold, for read_plan_io to read ahead in batches.
// Leaves are told from internal nodes by height, learnt on the first path
// down each side, so no leaf is read here. Damage ends the planning of a
// subtree, never the diff: the walk meets it and reports it as before.
struct read_plan {
  std::unordered_map<block_address, std::unique_ptr<block_buffer>> pinned;
  std::vector<block_address> leaves;
};

// Levels below `root` (0: a leaf), following first children; the nodes read
// on the way are pinned.
std::optional<unsigned> tree_height(block_io &io, block_address root, read_plan &p) {
  block_address b = root;
  for (unsigned h = 0; h < max_btree_depth; h++) {
    if (b >= io.nr_blocks()) return std::nullopt;
    if (!p.pinned.count(b)) {
      auto buf = std::make_unique<block_buffer>();
      try {
        io.read(b, buf->raw(), 1);
      } catch (const io_error &) {
        return std::nullopt;
      }
      if (validate_btree_node(buf->raw(), b, 8)) return std::nullopt;
      p.pinned.emplace(b, std::move(buf));
    }
    btree_node_view n(p.pinned.at(b)->raw());
    if (n.is_leaf()) return h;
    if (n.nr_entries() == 0) return std::nullopt;
    b = n.value64(0);
  }
  return std::nullopt;
}

read_plan plan_reads(block_io &io, block_address left, block_address right) {
  constexpr std::size_t max_pinned = 16384;  // 64 MiB of internal nodes at most
  read_plan p;
  struct node {
    block_address block;
    uint64_t low;     // the lowest origin block it may hold
    unsigned height;  // levels below it
  };
  std::vector<node> level;
  for (block_address root : {left, right})
    if (auto h = tree_height(io, root, p)) level.push_back({root, 0, *h});
  std::vector<std::pair<uint64_t, block_address>> leaves;
  std::unordered_set<block_address> seen;
  while (!level.empty() && p.pinned.size() < max_pinned) {
    std::vector<block_address> unread;
    std::unordered_map<block_address, node> todo;
    for (const node &n : level) {
      if (!seen.insert(n.block).second) continue;
      if (n.height == 0) {
        leaves.emplace_back(n.low, n.block);
        continue;
      }
      todo.emplace(n.block, n);
      if (!p.pinned.count(n.block)) unread.push_back(n.block);
    }
    if (p.pinned.size() + unread.size() > max_pinned) break;  // the walk reads the rest itself
    batch_read(io, unread, [&](block_address b, const unsigned char *data) {
      if (validate_btree_node(data, b, 8)) return;
      auto buf = std::make_unique<block_buffer>();
      std::memcpy(buf->raw(), data, block_size);
      p.pinned.emplace(b, std::move(buf));
    });
    std::vector<node> next;
    for (auto &[b, n] : todo) {
      auto it = p.pinned.find(b);
      if (it == p.pinned.end()) continue;
      btree_node_view v(it->second->raw());
      if (v.is_leaf()) continue;  // heights disagree: damage the walk reports
      for (uint32_t i = 0; i < v.nr_entries(); i++) next.push_back({v.value64(i), v.key(i), n.height - 1});
    }
    level = std::move(next);
  }
  std::stable_sort(leaves.begin(), leaves.end(), [](auto &a, auto &b) { return a.first < b.first; });
  for (auto &l : leaves) p.leaves.push_back(l.second);
  return p;
}

[[noreturn]] void top_level_damage(block_address b, const std::string &why) {
  throw metadata_error(fmt::format("mapping tree (top level): block {}: {}", b, why));
}

}  // namespace

std::optional<block_address> find_mapping_subtree(block_cache &cache, block_address root, uint64_t dev) {
  block_address b = root;
  for (unsigned depth = 0;; depth++) {
    if (depth >= max_btree_depth)
      top_level_damage(b, fmt::format("btree deeper than {} levels (a cycle?)", max_btree_depth));
    if (b >= cache.nr_blocks())
      top_level_damage(b, fmt::format("btree node pointer to block {} is beyond the end of the metadata ({} blocks)", b,
                                      cache.nr_blocks()));
    block_ref buf;
    try {
      buf = cache.read(b);
    } catch (const io_error &e) {
      top_level_damage(b, e.what());
    }
    if (auto err = validate_btree_node(buf->raw(), b, 8)) top_level_damage(b, *err);
    btree_node_view n(buf->raw());
    // The last entry whose key is not above dev.
    uint32_t lo = 0, hi = n.nr_entries();
    while (lo < hi) {
      uint32_t mid = lo + (hi - lo) / 2;
      if (n.key(mid) <= dev)
        lo = mid + 1;
      else
        hi = mid;
    }
    if (lo == 0) return std::nullopt;
    if (n.is_leaf()) {
      if (n.key(lo - 1) != dev) return std::nullopt;
      return n.value64(lo - 1);
    }
    b = n.value64(lo - 1);
  }
}

void diff_mapping_trees(block_cache &cache, const mapping_subtree &left, const mapping_subtree &right,
                        delta_visitor &v) {
  tree_differ(cache, left, right, v).run();
}

//------------------------------------------------------------------ output

delta_range_writer::delta_range_writer(text_sink &out, bool verbose, unsigned indent)
    : out_(out), verbose_(verbose), indent_(indent, ' ') {}

delta_range_writer::~delta_range_writer() {
  // Best effort: what was built before an error stays printed.
  try {
    if (buf_.size()) out_.write(buf_.data(), buf_.size());
  } catch (...) {
  }
}

template <typename... Args>
void delta_range_writer::put(fmt::format_string<Args...> f, Args &&...args) {
  fmt::format_to(fmt::appender(buf_), f, std::forward<Args>(args)...);
  if (buf_.size() >= (1u << 16)) {
    out_.write(buf_.data(), buf_.size());
    buf_.clear();
  }
}

void delta_range_writer::blocks(uint64_t origin, std::optional<uint64_t> left, std::optional<uint64_t> right,
                                uint64_t len) {
  // A piece goes on while neither side's run ends or starts: the origin
  // follows on, each side maps it or not as before, and where it does, to
  // the next data block.
  if (len_ && origin == begin_ + len_ && left.has_value() == left_.has_value() &&
      right.has_value() == right_.has_value() && (!left || *left == *left_ + len_) &&
      (!right || *right == *right_ + len_)) {
    len_ += len;
    return;
  }
  end_piece();
  begin_ = origin;
  left_ = left;
  right_ = right;
  len_ = len;
}

void delta_range_writer::end_piece() {
  if (!len_) return;
  kind k = !right_ ? kind::left_only : !left_ ? kind::right_only : *left_ == *right_ ? kind::same : kind::different;
  put_piece(k, begin_, left_, right_, len_);
  len_ = 0;
}

namespace {
const char *tag(int k) {
  static const char *names[] = {"left_only", "right_only", "different", "same"};
  return names[k];
}
}  // namespace

void delta_range_writer::put_piece(kind k, uint64_t begin, std::optional<uint64_t> left, std::optional<uint64_t> right,
                                   uint64_t len) {
  if (!verbose_) {
    if (kind_ && *kind_ == k && begin == range_end_) {
      range_end_ += len;
      return;
    }
    close_group();
    kind_ = k;
    range_begin_ = begin;
    range_end_ = begin + len;
    return;
  }
  if (!kind_ || *kind_ != k) {
    close_group();
    kind_ = k;
    put("{}<{}>\n", indent_, tag(static_cast<int>(k)));
  }
  if (k == kind::different)
    put("{}  <range begin=\"{}\" left_data_begin=\"{}\" right_data_begin=\"{}\" length=\"{}\"/>\n", indent_,
        begin, *left, *right, len);
  else
    put("{}  <range begin=\"{}\" data_begin=\"{}\" length=\"{}\"/>\n", indent_, begin,
        k == kind::right_only ? *right : *left, len);
}

void delta_range_writer::close_group() {
  if (!kind_) return;
  if (verbose_)
    put("{}</{}>\n", indent_, tag(static_cast<int>(*kind_)));
  else
    put("{}<{} begin=\"{}\" length=\"{}\"/>\n", indent_, tag(static_cast<int>(*kind_)), range_begin_,
        range_end_ - range_begin_);
  kind_.reset();
}

void delta_range_writer::finish() {
  end_piece();
  close_group();
  if (buf_.size()) out_.write(buf_.data(), buf_.size());
  buf_.clear();
}

//------------------------------------------------------------------ entry point

namespace {
// Refuses mappings to data blocks beyond the data device (invariants.h)
// before they reach the writer: such a diff describes blocks that do not
// exist, and thin_check fails the metadata.
class data_block_guard : public delta_visitor {
 public:
  data_block_guard(delta_visitor &inner, uint64_t nr_data_blocks, uint64_t left_dev, uint64_t right_dev)
      : inner_(inner), nr_(nr_data_blocks), left_dev_(left_dev), right_dev_(right_dev) {}
  void blocks(uint64_t origin, std::optional<uint64_t> left, std::optional<uint64_t> right, uint64_t len) override {
    check(left_dev_, origin, left, len);
    check(right_dev_, origin, right, len);
    inner_.blocks(origin, left, right, len);
  }
  bool shared_subtree(block_address node, const key_range &keys) override {
    return inner_.shared_subtree(node, keys);
  }

 private:
  void check(uint64_t dev, uint64_t origin, std::optional<uint64_t> data, uint64_t len) const {
    if (!data) return;
    if (invariants::mapping_block_ok(*data + (len - 1), nr_)) return;
    const uint64_t bad = std::max(*data, nr_);  // the run's first block beyond the end
    throw metadata_error(fmt::format("thin device {}: origin block {} maps to data block {}, beyond the end of the "
                                     "data device ({} blocks)",
                                     dev, origin + (bad - *data), bad, nr_));
  }
  delta_visitor &inner_;
  uint64_t nr_, left_dev_, right_dev_;
};
}  // namespace

void delta_metadata(block_io &io, const delta_options &opts, text_sink &out) {
  auto [sb, nr_data_blocks] = select_superblock(io, opts.use_metadata_snap, opts.metadata_snap_location);

  block_cache top(io, 64);
  auto left = find_mapping_subtree(top, sb.mapping_root, opts.left_dev);
  if (!left) throw metadata_error(fmt::format("unable to find mapping tree for snap1 ({})", opts.left_dev));
  auto right = find_mapping_subtree(top, sb.mapping_root, opts.right_dev);
  if (!right) throw metadata_error(fmt::format("unable to find mapping tree for snap2 ({})", opts.right_dev));

  // The walk reads each node once (a shared subtree is passed over unread)
  // and the cursors hold the nodes on their paths themselves, so a small
  // cache is enough; the reads themselves come in planned batches.
  read_plan plan = plan_reads(io, *left, *right);
  read_plan_io planned(io, std::move(plan.pinned), std::move(plan.leaves));
  block_cache cache(planned, 256);

  // 0.9.0 prints no uuid, flags or version, and metadata_snap when the
  // superblock it reads (the snapshot's own, with -m) records one.
  std::string head =
      fmt::format("<superblock uuid=\"\" time=\"{}\" transaction=\"{}\" data_block_size=\"{}\" nr_data_blocks=\"{}",
                  sb.time, sb.trans_id, sb.data_block_size, nr_data_blocks);
  if (sb.held_root) head += fmt::format("\" metadata_snap=\"{}", sb.held_root);
  head += fmt::format("\">\n  <diff left=\"{}\" right=\"{}\">\n", opts.left_dev, opts.right_dev);
  out.write(head.data(), head.size());

  {
    delta_range_writer w(out, opts.verbose, 4);
    const uint64_t data_device_blocks =
        opts.use_metadata_snap ? read_superblock(io, 0).data_sm_root().nr_blocks.get() : nr_data_blocks;
    data_block_guard guard(w, data_device_blocks, opts.left_dev, opts.right_dev);
    diff_mapping_trees(cache, {opts.left_dev, *left}, {opts.right_dev, *right}, guard);
    w.finish();
  }
  static const char tail[] = "  </diff>\n</superblock>\n";
  out.write(tail, sizeof tail - 1);
  out.flush();
}

}  // namespace thin
