// B-tree node validation (see btree_node.h).
#include "persistent-data/btree_node.h"

#include <fmt/format.h>

#include "persistent-data/checksum.h"

namespace pdata {

std::optional<std::string> kernel_node_check(const void *block, block_address location) {
  btree_node_view n(block);
  if (n.blocknr() != location)
    return fmt::format("btree node claims to be block {} but lives at block {}", n.blocknr(), location);
  if (!checksum_ok(block, checksum_salt::btree_node)) return std::string("btree node has a bad checksum");
  uint64_t need = node_header_size + (8ull + n.value_size()) * n.max_entries();
  if (need > block_size)
    return fmt::format("btree node max_entries {} with value size {} does not fit in a block",
                       n.max_entries(), n.value_size());
  if (n.nr_entries() > n.max_entries())
    return fmt::format("btree node has nr_entries {} > max_entries {}", n.nr_entries(), n.max_entries());
  if (!(n.flags() & (internal_node | leaf_node)))
    return fmt::format("btree node has neither the internal nor the leaf flag (flags {})", n.flags());
  return std::nullopt;
}

std::optional<std::string> validate_btree_node(const void *block, block_address location,
                                               uint32_t leaf_value_size) {
  if (auto e = kernel_node_check(block, location)) return e;
  btree_node_view n(block);
  if ((n.flags() & internal_node) && (n.flags() & leaf_node))
    return std::string("btree node has both the internal and the leaf flag");
  if (n.is_internal()) {
    if (n.value_size() != 8)
      return fmt::format("internal btree node has value size {}, expected 8", n.value_size());
    if (n.nr_entries() == 0) return std::string("internal btree node has no entries");
  } else if (n.value_size() != leaf_value_size) {
    return fmt::format("btree leaf has value size {}, expected {}", n.value_size(), leaf_value_size);
  }
  for (uint32_t i = 1; i < n.nr_entries(); i++)
    if (n.key(i) <= n.key(i - 1))
      return fmt::format("btree node keys out of order: key {} ({}) after key {} ({})", i, n.key(i), i - 1,
                         n.key(i - 1));
  return std::nullopt;
}

}  // namespace pdata
