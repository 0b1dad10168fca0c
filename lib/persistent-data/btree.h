// Copy-on-write B-tree updates: lookup, insert, remove, delete, and a
// bottom-up builder for large sorted inputs.
//
// Trees are named by their root block; every update returns the (possibly
// new) root. Node shapes follow the kernel's rules (spec section 3.2): a new
// tree is one leaf with max_entries(value_size); internal nodes always have
// value_size 8 and max_entries 252; nodes made by a split copy the header of
// the node they split. Values are opaque bytes; a value_ops tells the tree how
// to count the references a value holds when nodes are shared or values die.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "persistent-data/btree_node.h"
#include "persistent-data/btree_walk.h"
#include "persistent-data/transaction_manager.h"

namespace pdata {

struct value_ops {
  uint32_t size = 8;
  // Called for each value of a leaf copied out of a shared node (the copy now
  // references it too), and for a value that is dropped or overwritten.
  std::function<void(const unsigned char *)> inc;
  std::function<void(const unsigned char *)> dec;
  // Overwrites of equal values do not dec the old one.
  std::function<bool(const unsigned char *, const unsigned char *)> equal;
};

// Values that are other metadata blocks (the thin mapping tree's top level):
// sharing or dropping them adjusts those blocks' counts.
value_ops block_ref_value_ops(transaction_manager &tm);
// Plain values (no references held).
value_ops plain_value_ops(uint32_t size);

block_address btree_empty(transaction_manager &tm, uint32_t value_size);

// The value stored under `key`, or nothing.
std::optional<std::vector<unsigned char>> btree_lookup(transaction_manager &tm, block_address root, uint64_t key);

// Inserts or overwrites. `inserted` (optional) says whether the key is new.
block_address btree_insert(transaction_manager &tm, block_address root, uint64_t key, const void *value,
                           const value_ops &ops, bool *inserted = nullptr);

// Removes `key` if present (its value is dec'd). `removed` says whether it was.
block_address btree_remove(transaction_manager &tm, block_address root, uint64_t key, const value_ops &ops,
                           bool *removed = nullptr);

// Drops one reference to the tree: nodes still shared elsewhere are only
// decremented; the rest are freed recursively, their values dec'd.
void btree_delete(transaction_manager &tm, block_address root, const value_ops &ops);

// Increments everything a node references (its children, or its values).
void btree_inc_children(transaction_manager &tm, const unsigned char *node, const value_ops &ops);

// Calls fn(key, value) for every entry in key order.
void btree_for_each(transaction_manager &tm, block_address root,
                    const std::function<void(uint64_t, const unsigned char *)> &fn);

// Builds a tree bottom-up from entries given in strictly increasing key order.
// Leaves are written as soon as they are full (write_now), so memory stays
// small. Whole existing leaves may be appended (shared subtrees): their
// reference count is incremented. Every non-root node holds at least a third
// of max_entries, as the kernel's trees do (thin_check 0.9.0 rejects less):
// a shared leaf that would leave a smaller neighbour is copied instead.
class btree_builder {
 public:
  // `value_inc` counts a reference to a value copied out of a shared leaf.
  btree_builder(transaction_manager &tm, uint32_t value_size,
                std::function<void(const unsigned char *)> value_inc = {});
  void add(uint64_t key, const void *value);
  // add(first_key + i, v_i) for i in [0, n), where fill(i, out) writes v_i
  // to out: a run of consecutive keys at a fraction of the per-entry cost.
  template <typename F>
  void add_run(uint64_t first_key, uint64_t n, F &&fill);
  // Appends an existing leaf whose keys all follow the entries added so far.
  void add_leaf(block_address leaf, uint64_t first_key, uint64_t last_key);
  struct leaf_info {
    block_address block;
    uint64_t first_key, last_key;
  };
  // Finishes the tree and returns its root (an empty leaf when nothing was added).
  block_address finish();
  // Finishes the leaf level only and hands the leaves over (each with the one
  // reference the builder gave it), for runs that several trees will share.
  std::vector<leaf_info> finish_leaves();
  uint64_t entries() const { return entries_; }
  // Calls f(key, value) for every entry added so far, in key order (finished
  // leaves are read back): for error reports, not for bulk use.
  void for_each_entry(const std::function<void(uint64_t, const unsigned char *)> &f);

 private:
  void emit_leaf(std::size_t count);
  void begin_run(uint64_t first_key, uint64_t n);  // checks the keys follow, notes the last
  void emit_buffer();  // all buffered entries, balanced over one or two leaves
  // Moves a leaf's entries into the buffer (dropping our reference to it).
  void take_back(const leaf_info &leaf, bool shared);
  transaction_manager &tm_;
  uint32_t vsize_;
  uint32_t max_;
  std::function<void(const unsigned char *)> value_inc_;
  std::vector<uint64_t> keys_;
  std::vector<unsigned char> values_;
  std::vector<leaf_info> level0_;  // finished leaves
  std::vector<bool> shared_;        // per finished leaf: appended with add_leaf
  uint64_t entries_ = 0;
  bool have_last_ = false;
  uint64_t last_key_ = 0;
};

template <typename F>
void btree_builder::add_run(uint64_t first_key, uint64_t n, F &&fill) {
  if (!n) return;
  begin_run(first_key, n);
  const std::size_t full = 2 * std::size_t(max_);
  for (uint64_t i = 0; i < n;) {
    if (keys_.size() >= full) {
      emit_leaf(max_);
      continue;
    }
    const std::size_t k = static_cast<std::size_t>(std::min<uint64_t>(full - keys_.size(), n - i));
    std::size_t at = values_.size();
    values_.resize(at + k * vsize_);
    for (std::size_t j = 0; j < k; j++, at += vsize_) {
      keys_.push_back(first_key + i + j);
      fill(i + j, values_.data() + at);
    }
    i += k;
    entries_ += k;
    if (keys_.size() >= full) emit_leaf(max_);
  }
}

// Builds the internal levels above a sequence of nodes (in key order) and
// returns the root. Used by btree_builder and by restore for shared leaves.
block_address btree_build_internal(transaction_manager &tm, std::vector<std::pair<uint64_t, block_address>> nodes);

}  // namespace pdata
