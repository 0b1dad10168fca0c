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

// What the kernel checks (blocknr, checksum, sizes, a known flag), plus the
// header rules for this tree's level: internal nodes have value_size 8; leaves
// have `leaf_value_size`; keys strictly increase. Returns a description of the
// first problem, or nothing when the node is sound.
std::optional<std::string> validate_btree_node(const void *block, block_address location,
                                               uint32_t leaf_value_size);

// Just the kernel's node_check (used when scanning for candidate nodes).
std::optional<std::string> kernel_node_check(const void *block, block_address location);

}  // namespace pdata
