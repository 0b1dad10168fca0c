// Copy-on-write B-tree updates and the bottom-up builder (see btree.h).
#include "persistent-data/btree.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "persistent-data/endian.h"
#include "persistent-data/errors.h"

namespace pdata {

namespace {

constexpr checksum_salt node_salt = checksum_salt::btree_node;

// A writable view of a node in a block buffer.
class node_mut {
 public:
  explicit node_mut(unsigned char *p) : p_(p) {}
  node_header_disk &h() { return *reinterpret_cast<node_header_disk *>(p_); }
  uint32_t nr() { return h().nr_entries.get(); }
  uint32_t max() { return h().max_entries.get(); }
  uint32_t vsize() { return h().value_size.get(); }
  bool internal() { return h().flags.get() & internal_node; }
  uint64_t key(uint32_t i) { return load_le64(p_ + node_header_size + 8 * std::size_t(i)); }
  void set_key(uint32_t i, uint64_t k) { store_le64(p_ + node_header_size + 8 * std::size_t(i), k); }
  unsigned char *value(uint32_t i) { return p_ + node_header_size + 8 * std::size_t(max()) + std::size_t(vsize()) * i; }
  uint64_t value64(uint32_t i) { return load_le64(value(i)); }
  void set_value64(uint32_t i, uint64_t v) { store_le64(value(i), v); }

  void init(uint32_t flags, uint32_t max_entries, uint32_t value_size) {
    h().flags.set(flags);
    h().nr_entries.set(0);
    h().max_entries.set(max_entries);
    h().value_size.set(value_size);
    h().padding.set(0);
  }
  void insert_at(uint32_t i, uint64_t k, const void *v) {
    uint32_t n = nr();
    std::memmove(p_ + node_header_size + 8 * std::size_t(i + 1), p_ + node_header_size + 8 * std::size_t(i),
                 8 * std::size_t(n - i));
    std::memmove(value(i + 1), value(i), std::size_t(vsize()) * (n - i));
    set_key(i, k);
    std::memcpy(value(i), v, vsize());
    h().nr_entries.set(n + 1);
  }
  void erase_at(uint32_t i) {
    uint32_t n = nr();
    std::memmove(p_ + node_header_size + 8 * std::size_t(i), p_ + node_header_size + 8 * std::size_t(i + 1),
                 8 * std::size_t(n - i - 1));
    std::memmove(value(i), value(i + 1), std::size_t(vsize()) * (n - i - 1));
    h().nr_entries.set(n - 1);
  }
  // Copies entries [from, from+count) of `src` to the end of this node.
  void append_from(node_mut &src, uint32_t from, uint32_t count) {
    uint32_t n = nr();
    std::memcpy(p_ + node_header_size + 8 * std::size_t(n), src.p_ + node_header_size + 8 * std::size_t(from),
                8 * std::size_t(count));
    std::memcpy(value(n), src.value(from), std::size_t(vsize()) * count);
    h().nr_entries.set(n + count);
  }
  // Greatest i with key(i) <= k, or -1.
  int lower_bound(uint64_t k) {
    int lo = -1, hi = static_cast<int>(nr());
    while (hi - lo > 1) {
      int mid = lo + (hi - lo) / 2;
      if (key(static_cast<uint32_t>(mid)) <= k)
        lo = mid;
      else
        hi = mid;
    }
    return lo;
  }
  unsigned char *raw() { return p_; }

 private:
  unsigned char *p_;
};

int lower_bound_view(const btree_node_view &n, uint64_t k) {
  int lo = -1, hi = static_cast<int>(n.nr_entries());
  while (hi - lo > 1) {
    int mid = lo + (hi - lo) / 2;
    if (n.key(static_cast<uint32_t>(mid)) <= k)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

void check_node(const unsigned char *p, block_address b) {
  if (auto err = kernel_node_check(p, b)) throw bad_block_error(fmt::format("block {}: {}", b, *err));
}

// Reads a node, validating it unless it was made in this transaction (those
// are checksummed only when written out).
block_ref read_node(transaction_manager &tm, block_address b) {
  block_ref r = tm.read(b);
  if (!tm.is_fresh(b)) check_node(r->raw(), b);
  return r;
}

// Shadows a node and, when it was shared, increments what it references.
unsigned char *shadow_node(transaction_manager &tm, block_address b, const value_ops &ops, block_address &out) {
  bool shared = false;
  if (!tm.is_fresh(b)) check_node(tm.read(b)->raw(), b);
  unsigned char *p = tm.shadow(b, node_salt, out, shared);
  if (shared) btree_inc_children(tm, p, ops);
  return p;
}

bool full_for(node_mut &n, uint64_t key) {
  if (n.nr() < n.max()) return false;
  if (!n.internal()) {
    int i = n.lower_bound(key);
    if (i >= 0 && n.key(static_cast<uint32_t>(i)) == key) return false;  // overwrite
  }
  return true;
}

// Root split: the root keeps its block and becomes an internal node over two
// new children that copy its header.
void split_beneath(transaction_manager &tm, node_mut &root) {
  uint32_t nr = root.nr(), left_n = nr / 2;
  block_address lb, rb;
  node_mut left(tm.new_block(lb, node_salt)), right(tm.new_block(rb, node_salt));
  uint32_t flags = root.h().flags.get(), max = root.max(), vs = root.vsize();
  left.init(flags, max, vs);
  right.init(flags, max, vs);
  left.append_from(root, 0, left_n);
  right.append_from(root, left_n, nr - left_n);
  root.init(internal_node, btree_max_entries(8), 8);
  uint64_t lv = lb, rv = rb;
  unsigned char v[8];
  store_le64(v, lv);
  root.insert_at(0, left.key(0), v);
  store_le64(v, rv);
  root.insert_at(1, right.key(0), v);
}

// Splits child i of `parent` into two; returns the new right sibling's block.
block_address split_child(transaction_manager &tm, node_mut &parent, uint32_t i, node_mut &child) {
  uint32_t nr = child.nr(), left_n = nr / 2;
  block_address rb;
  node_mut right(tm.new_block(rb, node_salt));
  right.init(child.h().flags.get(), child.max(), child.vsize());
  right.append_from(child, left_n, nr - left_n);
  child.h().nr_entries.set(left_n);
  unsigned char v[8];
  store_le64(v, rb);
  parent.insert_at(i + 1, right.key(0), v);
  return rb;
}

}  // namespace

value_ops block_ref_value_ops(transaction_manager &tm) {
  value_ops ops;
  ops.size = 8;
  ops.inc = [&tm](const unsigned char *v) { tm.inc(load_le64(v)); };
  ops.dec = [&tm](const unsigned char *v) { tm.dec(load_le64(v)); };
  ops.equal = [](const unsigned char *a, const unsigned char *b) { return std::memcmp(a, b, 8) == 0; };
  return ops;
}

value_ops plain_value_ops(uint32_t size) {
  value_ops ops;
  ops.size = size;
  return ops;
}

void btree_inc_children(transaction_manager &tm, const unsigned char *p, const value_ops &ops) {
  btree_node_view n(p);
  if (n.is_internal()) {
    for (uint32_t i = 0; i < n.nr_entries(); i++) tm.inc(n.value64(i));
  } else if (ops.inc) {
    for (uint32_t i = 0; i < n.nr_entries(); i++) ops.inc(n.value_ptr(i));
  }
}

block_address btree_empty(transaction_manager &tm, uint32_t value_size) {
  block_address b;
  node_mut n(tm.new_block(b, node_salt));
  n.init(leaf_node, btree_max_entries(value_size), value_size);
  return b;
}

std::optional<std::vector<unsigned char>> btree_lookup(transaction_manager &tm, block_address root, uint64_t key) {
  block_address b = root;
  for (unsigned depth = 0; depth < max_btree_depth; depth++) {
    block_ref blk = read_node(tm, b);
    btree_node_view n(blk->raw());
    int i = lower_bound_view(n, key);
    if (i < 0) return std::nullopt;
    if (n.is_internal()) {
      b = n.value64(static_cast<uint32_t>(i));
      continue;
    }
    if (n.key(static_cast<uint32_t>(i)) != key) return std::nullopt;
    const unsigned char *v = n.value_ptr(static_cast<uint32_t>(i));
    return std::vector<unsigned char>(v, v + n.value_size());
  }
  throw bad_block_error(fmt::format("btree rooted at {} is deeper than {} levels", root, max_btree_depth));
}

block_address btree_insert(transaction_manager &tm, block_address root, uint64_t key, const void *value,
                           const value_ops &ops, bool *inserted) {
  block_address new_root;
  node_mut r(shadow_node(tm, root, ops, new_root));
  if (full_for(r, key)) split_beneath(tm, r);

  node_mut cur = r;
  for (unsigned depth = 0; cur.internal(); depth++) {
    if (depth >= max_btree_depth) throw bad_block_error("btree too deep during insert");
    int i = cur.lower_bound(key);
    if (i < 0) {
      i = 0;
      cur.set_key(0, key);
    }
    uint32_t ui = static_cast<uint32_t>(i);
    block_address child = cur.value64(ui), nchild;
    node_mut c(shadow_node(tm, child, ops, nchild));
    cur.set_value64(ui, nchild);
    if (full_for(c, key)) {
      block_address rb = split_child(tm, cur, ui, c);
      if (key >= cur.key(ui + 1)) {
        c = node_mut(tm.writable(rb));
      }
    }
    cur = c;
  }
  if (cur.vsize() != ops.size)
    throw bad_block_error(fmt::format("btree leaf value size {} does not match {}", cur.vsize(), ops.size));
  int i = cur.lower_bound(key);
  if (i >= 0 && cur.key(static_cast<uint32_t>(i)) == key) {
    unsigned char *old = cur.value(static_cast<uint32_t>(i));
    bool same = ops.equal && ops.equal(old, static_cast<const unsigned char *>(value));
    if (!same && ops.dec) ops.dec(old);
    std::memcpy(old, value, ops.size);
    if (inserted) *inserted = false;
  } else {
    cur.insert_at(static_cast<uint32_t>(i + 1), key, value);
    if (inserted) *inserted = true;
  }
  return new_root;
}

namespace {

void remove_rec(transaction_manager &tm, node_mut &n, uint64_t key, const value_ops &ops, unsigned depth) {
  if (depth >= max_btree_depth) throw bad_block_error("btree too deep during remove");
  int i = n.lower_bound(key);
  if (i < 0) throw internal_error("btree_remove: key vanished");
  uint32_t ui = static_cast<uint32_t>(i);
  if (!n.internal()) {
    if (n.key(ui) != key) throw internal_error("btree_remove: key vanished");
    if (ops.dec) ops.dec(n.value(ui));
    n.erase_at(ui);
    return;
  }
  block_address child = n.value64(ui), nchild;
  node_mut c(shadow_node(tm, child, ops, nchild));
  n.set_value64(ui, nchild);
  remove_rec(tm, c, key, ops, depth + 1);

  if (c.nr() == 0) {
    n.erase_at(ui);
    tm.dec(nchild);
    return;
  }
  // Keep every non-root node at least a third full, as the kernel does:
  // merge an underfull child into a neighbour, or share entries with it.
  if (c.nr() >= c.max() / 3 || n.nr() < 2) return;
  uint32_t j = ui + 1 < n.nr() ? ui + 1 : ui - 1;
  {
    block_ref sib = tm.read(n.value64(j));
    btree_node_view sv(sib->raw());
    if (sv.max_entries() != c.max() || sv.value_size() != c.vsize() || sv.flags() != c.h().flags.get()) return;
  }
  block_address nsib;
  node_mut s(shadow_node(tm, n.value64(j), ops, nsib));
  n.set_value64(j, nsib);
  uint32_t left_i = std::min(ui, j), right_i = std::max(ui, j);
  node_mut left = left_i == ui ? c : s, right = left_i == ui ? s : c;
  block_address right_b = left_i == ui ? nsib : nchild;
  const uint32_t total = left.nr() + right.nr();
  if (total <= left.max()) {
    left.append_from(right, 0, right.nr());
    right.h().nr_entries.set(0);
    n.erase_at(right_i);
    tm.dec(right_b);
    return;
  }
  const uint32_t want_left = total / 2;
  if (left.nr() < want_left) {
    uint32_t moving = want_left - left.nr();
    left.append_from(right, 0, moving);
    // Shift the rest of the right node down.
    node_mut tmp = right;
    for (uint32_t k = 0; k < moving; k++) tmp.erase_at(0);
  } else {
    uint32_t moving = left.nr() - want_left;
    // Prepend the left node's last entries to the right node.
    for (uint32_t k = 0; k < moving; k++) {
      uint32_t last = left.nr() - 1;
      right.insert_at(0, left.key(last), left.value(last));
      left.h().nr_entries.set(last);
    }
  }
  n.set_key(right_i, right.key(0));
}

}  // namespace

block_address btree_remove(transaction_manager &tm, block_address root, uint64_t key, const value_ops &ops,
                           bool *removed) {
  if (!btree_lookup(tm, root, key)) {
    if (removed) *removed = false;
    return root;
  }
  block_address new_root;
  node_mut r(shadow_node(tm, root, ops, new_root));
  remove_rec(tm, r, key, ops, 0);
  // An internal root with no children becomes an empty leaf; one with a
  // single child takes the child's place.
  while (r.internal()) {
    if (r.nr() == 0) {
      r.init(leaf_node, btree_max_entries(ops.size), ops.size);
      break;
    }
    if (r.nr() > 1) break;
    block_address child = r.value64(0);
    block_ref cb = read_node(tm, child);
    std::memcpy(r.raw() + 4, cb->raw() + 4, block_size - 4);  // keep nothing of the old root but its checksum slot
    if (tm.ref_count(child) > 1) btree_inc_children(tm, r.raw(), ops);
    tm.dec(child);
  }
  if (removed) *removed = true;
  return new_root;
}

void btree_delete(transaction_manager &tm, block_address root, const value_ops &ops) {
  if (tm.ref_count(root) > 1) {
    tm.dec(root);
    return;
  }
  block_ref blk = read_node(tm, root);
  btree_node_view n(blk->raw());
  if (n.is_internal()) {
    for (uint32_t i = 0; i < n.nr_entries(); i++) btree_delete(tm, n.value64(i), ops);
  } else if (ops.dec) {
    for (uint32_t i = 0; i < n.nr_entries(); i++) ops.dec(n.value_ptr(i));
  }
  tm.dec(root);
}

void btree_for_each(transaction_manager &tm, block_address root,
                    const std::function<void(uint64_t, const unsigned char *)> &fn) {
  block_ref blk = read_node(tm, root);
  btree_node_view n(blk->raw());
  for (uint32_t i = 0; i < n.nr_entries(); i++) {
    if (n.is_internal())
      btree_for_each(tm, n.value64(i), fn);
    else
      fn(n.key(i), n.value_ptr(i));
  }
}

//------------------------------------------------------------------ builder

btree_builder::btree_builder(transaction_manager &tm, uint32_t value_size,
                             std::function<void(const unsigned char *)> value_inc)
    : tm_(tm), vsize_(value_size), max_(btree_max_entries(value_size)), value_inc_(std::move(value_inc)) {
  keys_.reserve(2 * std::size_t(max_));
  values_.reserve(2 * std::size_t(max_) * vsize_);
}

void btree_builder::emit_leaf(std::size_t count) {
  block_address b;
  node_mut n(tm_.new_block(b, node_salt));
  n.init(leaf_node, max_, vsize_);
  std::memcpy(n.raw() + node_header_size, keys_.data(), 8 * count);  // host is little-endian (endian.h)
  std::memcpy(n.value(0), values_.data(), std::size_t(vsize_) * count);
  n.h().nr_entries.set(static_cast<uint32_t>(count));
  level0_.push_back({b, keys_[0], keys_[count - 1]});
  shared_.push_back(false);
  tm_.write_now(b);
  keys_.erase(keys_.begin(), keys_.begin() + static_cast<std::ptrdiff_t>(count));
  values_.erase(values_.begin(), values_.begin() + static_cast<std::ptrdiff_t>(count * vsize_));
}

void btree_builder::emit_buffer() {
  std::size_t n = keys_.size();
  if (n > max_) emit_leaf(n / 2);
  if (!keys_.empty()) emit_leaf(keys_.size());
}

void btree_builder::take_back(const leaf_info &leaf, bool shared) {
  block_ref blk = read_node(tm_, leaf.block);
  btree_node_view v(blk->raw());
  std::vector<uint64_t> keys;
  std::vector<unsigned char> values;
  for (uint32_t i = 0; i < v.nr_entries(); i++) {
    keys.push_back(v.key(i));
    values.insert(values.end(), v.value_ptr(i), v.value_ptr(i) + vsize_);
  }
  keys_.insert(keys_.begin(), keys.begin(), keys.end());
  values_.insert(values_.begin(), values.begin(), values.end());
  // Our reference to the leaf goes (a shared one lives on elsewhere; the
  // caller counted the copy's references to its values).
  (void)shared;
  tm_.dec(leaf.block);
}

void btree_builder::add(uint64_t key, const void *value) {
  begin_run(key, 1);
  keys_.push_back(key);
  const std::size_t at = values_.size();
  values_.resize(at + vsize_);
  std::memcpy(values_.data() + at, value, vsize_);
  entries_++;
  if (keys_.size() >= 2 * std::size_t(max_)) emit_leaf(max_);
}

void btree_builder::begin_run(uint64_t first_key, uint64_t n) {
  if (have_last_ && first_key <= last_key_)
    throw bad_input_error(fmt::format("btree_builder: key {} after key {}", first_key, last_key_));
  if (n - 1 > UINT64_MAX - first_key)
    throw bad_input_error(fmt::format("btree_builder: a run of {} keys from {} passes 2^64", n, first_key));
  have_last_ = true;
  last_key_ = first_key + (n - 1);
}

void btree_builder::for_each_entry(const std::function<void(uint64_t, const unsigned char *)> &f) {
  for (const leaf_info &l : level0_) {
    block_ref blk = read_node(tm_, l.block);
    btree_node_view v(blk->raw());
    for (uint32_t i = 0; i < v.nr_entries(); i++) f(v.key(i), v.value_ptr(i));
  }
  for (std::size_t i = 0; i < keys_.size(); i++) f(keys_[i], values_.data() + i * vsize_);
}

void btree_builder::add_leaf(block_address leaf, uint64_t first_key, uint64_t last_key) {
  if (have_last_ && first_key <= last_key_)
    throw bad_input_error(fmt::format("btree_builder: shared leaf starting at {} after key {}", first_key,
                                      last_key_));
  const std::size_t min = max_ / 3;
  block_ref blk = read_node(tm_, leaf);
  btree_node_view v(blk->raw());
  const std::size_t n = v.nr_entries();
  // Share the leaf only if it, and whatever precedes it, are full enough.
  if (n < min || (!keys_.empty() && keys_.size() < min)) {
    for (uint32_t i = 0; i < n; i++) {
      if (value_inc_) value_inc_(v.value_ptr(i));
      add(v.key(i), v.value_ptr(i));
    }
    return;
  }
  emit_buffer();
  tm_.inc(leaf);
  level0_.push_back({leaf, first_key, last_key});
  shared_.push_back(true);
  entries_ += n;
  have_last_ = true;
  last_key_ = last_key;
}

std::vector<btree_builder::leaf_info> btree_builder::finish_leaves() {
  // A short tail joins the leaf before it (copied if that one was shared).
  if (!keys_.empty() && keys_.size() < max_ / 3 && !level0_.empty()) {
    leaf_info prev = level0_.back();
    bool was_shared = shared_.back();
    level0_.pop_back();
    shared_.pop_back();
    if (was_shared) {
      block_ref blk = read_node(tm_, prev.block);
      btree_node_view v(blk->raw());
      for (uint32_t i = 0; i < v.nr_entries(); i++)
        if (value_inc_) value_inc_(v.value_ptr(i));
    }
    take_back(prev, was_shared);
  }
  emit_buffer();
  std::vector<leaf_info> out;
  out.swap(level0_);
  shared_.clear();
  return out;
}

block_address btree_builder::finish() {
  auto leaves = finish_leaves();
  if (leaves.empty()) return btree_empty(tm_, vsize_);
  std::vector<std::pair<uint64_t, block_address>> nodes;
  nodes.reserve(leaves.size());
  for (auto &l : leaves) nodes.emplace_back(l.first_key, l.block);
  return btree_build_internal(tm_, std::move(nodes));
}

block_address btree_build_internal(transaction_manager &tm, std::vector<std::pair<uint64_t, block_address>> nodes) {
  const uint32_t max = btree_max_entries(8);
  while (nodes.size() > 1) {
    std::size_t n = nodes.size(), groups = (n + max - 1) / max;
    std::vector<std::pair<uint64_t, block_address>> up;
    up.reserve(groups);
    std::size_t pos = 0;
    for (std::size_t g = 0; g < groups; g++) {
      std::size_t count = n / groups + (g < n % groups ? 1 : 0);
      block_address b;
      node_mut node(tm.new_block(b, node_salt));
      node.init(internal_node, max, 8);
      unsigned char v[8];
      for (std::size_t k = 0; k < count; k++) {
        store_le64(v, nodes[pos + k].second);
        node.insert_at(static_cast<uint32_t>(k), nodes[pos + k].first, v);
      }
      up.emplace_back(nodes[pos].first, b);
      tm.write_now(b);
      pos += count;
    }
    nodes.swap(up);
  }
  return nodes[0].second;
}

}  // namespace pdata
