// Read-only and writable views of a B-tree node held in a block buffer, and
// node validation as the kernel's node_check does it, plus the stricter
// structural rules thinkit's checker enforces.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "persistent-data/btree_disk.h"
#include "persistent-data/endian.h"

namespace pdata {

class btree_node_view {
 public:
  explicit btree_node_view(const void *block) : p_(static_cast<const unsigned char *>(block)) {}

  const node_header_disk &header() const { return *reinterpret_cast<const node_header_disk *>(p_); }
  uint32_t flags() const { return header().flags.get(); }
  bool is_internal() const { return flags() & internal_node; }
  bool is_leaf() const { return !is_internal(); }
  block_address blocknr() const { return header().blocknr.get(); }
  uint32_t nr_entries() const { return header().nr_entries.get(); }
  uint32_t max_entries() const { return header().max_entries.get(); }
  uint32_t value_size() const { return header().value_size.get(); }

  uint64_t key(uint32_t i) const { return load_le64(p_ + node_header_size + 8 * std::size_t(i)); }
  const unsigned char *value_ptr(uint32_t i) const {
    return p_ + node_header_size + 8 * std::size_t(max_entries()) + std::size_t(value_size()) * i;
  }
  uint64_t value64(uint32_t i) const { return load_le64(value_ptr(i)); }
  uint32_t value32(uint32_t i) const { return load_le32(value_ptr(i)); }

  const unsigned char *raw() const { return p_; }

 private:
  const unsigned char *p_;
};

// What can be wrong with a B-tree node, or with reaching it during a walk
// (btree_walk.h). Typed, with the numbers involved: the checker words each
// one from its problem catalogue (lib/thin/check/problems.def); to_string()
// gives the same plain wording for the other tools.
enum class btree_fault : uint8_t {
  // The node itself (check_btree_node).
  wrong_blocknr,        // a: the block number the node claims, b: where it lives
  bad_checksum,
  entries_do_not_fit,   // a: max_entries, b: value_size
  too_many_entries,     // a: nr_entries, b: max_entries
  no_type_flag,         // a: flags
  both_type_flags,
  internal_value_size,  // a: the value size (internal nodes have 8)
  internal_empty,
  leaf_value_size,      // a: the value size, b: the tree's
  keys_out_of_order,    // a: index i, b: key i, c: key i - 1
  // Reaching it (walk_btree).
  keys_outside_range,   // a: first key, b: last key (the range is the damage's keys)
  pointer_beyond_end,   // a: the block pointed to, b: the metadata's blocks
  too_deep,             // a: the depth limit
  cycle,                // a: the node that is its own ancestor
  read_error,           // io_text: what the read said
};

struct btree_error {
  btree_fault fault;
  uint64_t a = 0, b = 0, c = 0;
  std::string io_text;  // read_error only

  explicit btree_error(btree_fault f, uint64_t a_ = 0, uint64_t b_ = 0, uint64_t c_ = 0, std::string io = {})
      : fault(f), a(a_), b(b_), c(c_), io_text(std::move(io)) {}
};

// Plain wording of a fault (`range`: the keys the parent gives, for
// keys_outside_range).
std::string to_string(const btree_error &e, const std::string &range = "");

// What the kernel checks (blocknr, checksum, sizes, a known flag), plus the
// header rules for this tree's level: internal nodes have value_size 8; leaves
// have `leaf_value_size`; keys strictly increase. Returns the first problem,
// or nothing when the node is sound.
std::optional<btree_error> check_btree_node(const void *block, block_address location, uint32_t leaf_value_size);
// Just the kernel's node_check (used when scanning for candidate nodes).
std::optional<btree_error> check_kernel_node(const void *block, block_address location);

// The same, worded (for callers that only pass the text on).
std::optional<std::string> validate_btree_node(const void *block, block_address location,
                                               uint32_t leaf_value_size);
std::optional<std::string> kernel_node_check(const void *block, block_address location);

}  // namespace pdata
