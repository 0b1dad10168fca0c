// Read-side B-tree traversal (see btree_walk.h).
#include "persistent-data/btree_walk.h"

#include <algorithm>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "persistent-data/errors.h"

namespace pdata {

std::string to_string(const key_range &r) {
  if (r.end) return fmt::format("[{}, {})", r.begin, *r.end);
  return fmt::format("[{}, -)", r.begin);
}

namespace {

// Internal nodes hold at most (4096 - 32) / 16 entries.
constexpr std::size_t max_children = (block_size - node_header_size) / 16;
// Children a few blocks apart are read in one request, the blocks between
// them with it (on a device read with O_DIRECT a request costs more than a
// few blocks): up to max_gap unwanted blocks at a time, gap_budget per node.
constexpr block_address max_gap = 4;
constexpr std::size_t gap_budget = 256;

class walker {
 public:
  walker(block_cache &c, uint32_t vsize, btree_visitor &v) : cache_(c), vsize_(vsize), v_(v) {
    // One level per possible depth, allocated up front: children being
    // visited at one depth never move while deeper levels are used.
    levels_.resize(max_btree_depth + 1);
  }

  void walk_root(block_address b) {
    const key_range r{};
    if (auto err = precheck(b, r, 0)) {
      report(b, r, *err);
      return;
    }
    block_ref blk;
    try {
      blk = cache_.read(b);
    } catch (const io_error &e) {
      report(b, r, btree_error(btree_fault::read_error, 0, 0, 0, e.what()));
      return;
    }
    visit(b, blk->raw(), r, 0);
  }

 private:
  // What makes a node unusable before it is read: beyond the device, too
  // deep, or its own ancestor.
  std::optional<btree_error> precheck(block_address b, const key_range &, unsigned depth) const {
    if (b >= cache_.nr_blocks()) return btree_error{btree_fault::pointer_beyond_end, b, cache_.nr_blocks()};
    if (depth >= max_btree_depth) return btree_error{btree_fault::too_deep, max_btree_depth};
    for (block_address p : path_)
      if (p == b) return btree_error{btree_fault::cycle, b};
    return std::nullopt;
  }

  void report(block_address b, const key_range &r, btree_error e) {
    std::string what = to_string(e, to_string(r));
    v_.damage({b, r, std::move(e), std::move(what)});
  }

  void visit(block_address b, const unsigned char *raw, const key_range &r, unsigned depth) {
    if (auto err = check_btree_node(raw, b, vsize_)) {
      report(b, r, *err);
      return;
    }
    btree_node_view n(raw);
    uint32_t nr = n.nr_entries();
    if (nr > 0 && (!r.contains(n.key(0)) || !r.contains(n.key(nr - 1)))) {
      report(b, r, btree_error(btree_fault::keys_outside_range, n.key(0), n.key(nr - 1)));
      return;
    }
    if (!v_.visit_node(b, n, r, depth)) return;
    if (n.is_leaf()) {
      v_.visit_leaf(b, n, r);
      v_.leave_node(b, n);
      return;
    }
    path_.push_back(b);
    visit_children(n, r, depth + 1);
    path_.pop_back();
    v_.leave_node(b, n);
  }

  struct child {
    block_address b;
    key_range r;
    std::optional<btree_error> error;  // unusable before or while reading
    const unsigned char *raw = nullptr;
    block_ref cached;
  };

  // Reads all children of a node at once (those not cached, sorted by
  // address, blocks at most max_gap apart in one request), then visits them
  // in key order.
  void visit_children(const btree_node_view &n, const key_range &r, unsigned depth) {
    const uint32_t nr = n.nr_entries();
    level &lv = levels_[depth];
    if (!lv.buffers) lv.buffers.reset(new block_buffer[max_children + gap_budget]);
    lv.children.clear();
    lv.to_read.clear();
    for (uint32_t i = 0; i < nr; i++) {
      child c;
      c.b = n.value64(i);
      c.r = key_range{n.key(i), i + 1 < nr ? std::optional<uint64_t>(n.key(i + 1)) : r.end};
      c.error = precheck(c.b, c.r, depth);
      if (!c.error) {
        c.cached = cache_.peek(c.b);
        if (c.cached)
          c.raw = c.cached->raw();
        else
          lv.to_read.emplace_back(c.b, i);
      }
      lv.children.push_back(std::move(c));
    }
    read_children(lv);
    for (uint32_t i = 0; i < nr; i++) {
      child &c = lv.children[i];
      if (c.error) {
        report(c.b, c.r, *c.error);
        continue;
      }
      visit(c.b, c.raw, c.r, depth);
    }
  }

  struct level {
    std::unique_ptr<block_buffer[]> buffers;  // max_children + gap_budget blocks
    std::vector<child> children;
    std::vector<std::pair<block_address, uint32_t>> to_read;  // (block, child index)
  };

  void read_children(level &lv) {
    auto &want = lv.to_read;
    std::sort(want.begin(), want.end());
    std::size_t slot = 0, i = 0, gaps = 0;
    while (i < want.size()) {
      // A run of consecutive (or repeated) blocks, through small gaps.
      std::size_t j = i + 1;
      block_address last = want[i].first;
      while (j < want.size()) {
        const block_address next = want[j].first;
        if (next > last + 1) {
          const block_address gap = next - last - 1;
          if (gap > max_gap || gaps + gap > gap_budget) break;
          gaps += static_cast<std::size_t>(gap);
        }
        last = want[j++].first;
      }
      const block_address first = want[i].first;
      const std::size_t count = static_cast<std::size_t>(last - first + 1);
      unsigned char *dst = lv.buffers[slot].raw();
      bool ok = true;
      try {
        cache_.io().read(first, dst, count);
      } catch (const io_error &) {
        ok = false;
      }
      if (!ok) {
        // Find out which blocks fail, one at a time.
        for (std::size_t k = 0; k < count; k++) {
          try {
            cache_.io().read(first + k, dst + k * block_size, 1);
          } catch (const io_error &e) {
            for (std::size_t m = i; m < j; m++)
              if (want[m].first == first + k)
                lv.children[want[m].second].error = btree_error{btree_fault::read_error, 0, 0, 0, e.what()};
          }
        }
      }
      for (std::size_t m = i; m < j; m++) {
        child &c = lv.children[want[m].second];
        if (!c.error) c.raw = dst + (want[m].first - first) * block_size;
      }
      slot += count;
      i = j;
    }
  }

  block_cache &cache_;
  uint32_t vsize_;
  btree_visitor &v_;
  std::vector<block_address> path_;
  std::vector<level> levels_;
};

}  // namespace

void walk_btree(block_cache &cache, block_address root, uint32_t leaf_value_size, btree_visitor &v) {
  walker w(cache, leaf_value_size, v);
  w.walk_root(root);
}

}  // namespace pdata
