// Read-side B-tree traversal (see btree_walk.h).
#include "btree_walk.h"

#include <vector>

#include <fmt/format.h>

#include "errors.h"

namespace pdata {

std::string to_string(const key_range &r) {
  if (r.end) return fmt::format("[{}, {})", r.begin, *r.end);
  return fmt::format("[{}, -)", r.begin);
}

namespace {

class walker {
 public:
  walker(block_cache &c, uint32_t vsize, btree_visitor &v) : cache_(c), vsize_(vsize), v_(v) {}

  void walk(block_address b, const key_range &r, unsigned depth) {
    if (b >= cache_.nr_blocks()) {
      v_.damage({b, r, fmt::format("btree node pointer to block {} is beyond the end of the metadata ({} blocks)",
                                   b, cache_.nr_blocks())});
      return;
    }
    if (depth >= max_btree_depth) {
      v_.damage({b, r, fmt::format("btree deeper than {} levels (a cycle?)", max_btree_depth)});
      return;
    }
    for (block_address p : path_)
      if (p == b) {
        v_.damage({b, r, fmt::format("btree node {} is its own ancestor (cycle)", b)});
        return;
      }

    block_ref blk;
    try {
      blk = cache_.read(b);
    } catch (const io_error &e) {
      v_.damage({b, r, e.what()});
      return;
    }
    if (auto err = validate_btree_node(blk->raw(), b, vsize_)) {
      v_.damage({b, r, *err});
      return;
    }
    btree_node_view n(blk->raw());
    uint32_t nr = n.nr_entries();
    if (nr > 0 && (!r.contains(n.key(0)) || !r.contains(n.key(nr - 1)))) {
      v_.damage({b, r, fmt::format("btree node keys [{}..{}] fall outside the range {} its parent gives",
                                   n.key(0), n.key(nr - 1), to_string(r))});
      return;
    }
    if (!v_.visit_node(b, n, r, depth)) return;
    if (n.is_leaf()) {
      v_.visit_leaf(b, n, r);
      v_.leave_node(b, n);
      return;
    }
    path_.push_back(b);
    for (uint32_t i = 0; i < nr; i++) {
      key_range child{n.key(i), i + 1 < nr ? std::optional<uint64_t>(n.key(i + 1)) : r.end};
      walk(n.value64(i), child, depth + 1);
    }
    path_.pop_back();
    v_.leave_node(b, n);
  }

 private:
  block_cache &cache_;
  uint32_t vsize_;
  btree_visitor &v_;
  std::vector<block_address> path_;
};

}  // namespace

void walk_btree(block_cache &cache, block_address root, uint32_t leaf_value_size, btree_visitor &v) {
  walker w(cache, leaf_value_size, v);
  w.walk(root, key_range{}, 0);
}

}  // namespace pdata
