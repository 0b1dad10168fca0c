// B-tree node validation (see btree_node.h).
#include "persistent-data/btree_node.h"

#include <fmt/format.h>

#include "persistent-data/checksum.h"

namespace pdata {

std::string to_string(const btree_error &e, const std::string &range) {
  switch (e.fault) {
    case btree_fault::wrong_blocknr: return fmt::format("btree node claims to be block {} but lives at block {}", e.a, e.b);
    case btree_fault::bad_checksum: return "btree node has a bad checksum";
    case btree_fault::entries_do_not_fit:
      return fmt::format("btree node max_entries {} with value size {} does not fit in a block", e.a, e.b);
    case btree_fault::too_many_entries: return fmt::format("btree node has nr_entries {} > max_entries {}", e.a, e.b);
    case btree_fault::no_type_flag:
      return fmt::format("btree node has neither the internal nor the leaf flag (flags {})", e.a);
    case btree_fault::both_type_flags: return "btree node has both the internal and the leaf flag";
    case btree_fault::internal_value_size: return fmt::format("internal btree node has value size {}, expected 8", e.a);
    case btree_fault::internal_empty: return "internal btree node has no entries";
    case btree_fault::leaf_value_size: return fmt::format("btree leaf has value size {}, expected {}", e.a, e.b);
    case btree_fault::keys_out_of_order:
      return fmt::format("btree node keys out of order: key {} ({}) after key {} ({})", e.a, e.b, e.a - 1, e.c);
    case btree_fault::keys_outside_range:
      return fmt::format("btree node keys [{}..{}] fall outside the range {} its parent gives", e.a, e.b, range);
    case btree_fault::pointer_beyond_end:
      return fmt::format("btree node pointer to block {} is beyond the end of the metadata ({} blocks)", e.a, e.b);
    case btree_fault::too_deep: return fmt::format("btree deeper than {} levels (a cycle?)", e.a);
    case btree_fault::cycle: return fmt::format("btree node {} is its own ancestor (cycle)", e.a);
    case btree_fault::read_error: return e.io_text;
  }
  return "unknown btree fault";
}

std::optional<btree_error> check_kernel_node(const void *block, block_address location) {
  btree_node_view n(block);
  if (n.blocknr() != location) return btree_error{btree_fault::wrong_blocknr, n.blocknr(), location};
  if (!checksum_ok(block, checksum_salt::btree_node)) return btree_error{btree_fault::bad_checksum};
  uint64_t need = node_header_size + (8ull + n.value_size()) * n.max_entries();
  if (need > block_size) return btree_error{btree_fault::entries_do_not_fit, n.max_entries(), n.value_size()};
  if (n.nr_entries() > n.max_entries())
    return btree_error{btree_fault::too_many_entries, n.nr_entries(), n.max_entries()};
  if (!(n.flags() & (internal_node | leaf_node))) return btree_error{btree_fault::no_type_flag, n.flags()};
  return std::nullopt;
}

std::optional<btree_error> check_btree_node(const void *block, block_address location, uint32_t leaf_value_size) {
  if (auto e = check_kernel_node(block, location)) return e;
  btree_node_view n(block);
  if ((n.flags() & internal_node) && (n.flags() & leaf_node)) return btree_error{btree_fault::both_type_flags};
  if (n.is_internal()) {
    if (n.value_size() != 8) return btree_error{btree_fault::internal_value_size, n.value_size()};
    if (n.nr_entries() == 0) return btree_error{btree_fault::internal_empty};
  } else if (n.value_size() != leaf_value_size) {
    return btree_error{btree_fault::leaf_value_size, n.value_size(), leaf_value_size};
  }
  for (uint32_t i = 1; i < n.nr_entries(); i++)
    if (n.key(i) <= n.key(i - 1)) return btree_error{btree_fault::keys_out_of_order, i, n.key(i), n.key(i - 1)};
  return std::nullopt;
}

std::optional<std::string> validate_btree_node(const void *block, block_address location,
                                               uint32_t leaf_value_size) {
  if (auto e = check_btree_node(block, location, leaf_value_size)) return to_string(*e);
  return std::nullopt;
}

std::optional<std::string> kernel_node_check(const void *block, block_address location) {
  if (auto e = check_kernel_node(block, location)) return to_string(*e);
  return std::nullopt;
}

}  // namespace pdata
