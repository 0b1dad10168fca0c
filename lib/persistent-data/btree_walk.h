// Read-side B-tree traversal with damage reporting.
//
// walk_btree() descends a one-level persistent-data B-tree from its root,
// validating every node as it is read (checksum, blocknr, header, key order)
// and checking that every key lies inside the range its parent promises.
// Leaves are handed to a visitor in key order. A node that cannot be used is
// not fatal to the walk: the visitor gets a btree_damage record naming the
// node and the key range lost with it, and the walk goes on with the siblings.
// Multi-level trees (the thin mapping tree) are walked one level at a time by
// the caller. All children of an internal node are read before any is
// visited (one request per run of consecutive blocks), so a walk reads in
// large requests in roughly disk order.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "persistent-data/block_cache.h"
#include "persistent-data/btree_node.h"

namespace pdata {

// Keys [begin, end); an absent end means "up to the largest key".
struct key_range {
  uint64_t begin = 0;
  std::optional<uint64_t> end;

  bool contains(uint64_t k) const { return k >= begin && (!end || k < *end); }
};

std::string to_string(const key_range &r);

struct btree_damage {
  block_address block;  // the node that could not be used
  key_range keys;       // the keys that live (or should live) below it
  btree_error error;    // what is wrong (typed)
  std::string what;     // the same in plain words (to_string(error))
};

class btree_visitor {
 public:
  virtual ~btree_visitor() = default;

  // Called for each node that validated, before its children or entries are
  // visited. Return false to not descend (e.g. a shared node seen before).
  virtual bool visit_node(block_address, const btree_node_view &, const key_range &, unsigned /*depth*/) {
    return true;
  }
  // A validated leaf, in key order.
  virtual void visit_leaf(block_address b, const btree_node_view &n, const key_range &r) = 0;
  // After a node's children (or a leaf's entries) were visited; only for nodes
  // whose visit_node returned true. Lets visitors compute per-subtree results.
  virtual void leave_node(block_address, const btree_node_view &) {}
  virtual void damage(const btree_damage &d) = 0;
};

void walk_btree(block_cache &cache, block_address root, uint32_t leaf_value_size, btree_visitor &v);

// Maximum depth accepted before a tree is declared damaged (cycles, garbage).
constexpr unsigned max_btree_depth = 32;

}  // namespace pdata
