// thin_ls's library side: one row per thin device (mapped, exclusive and
// shared blocks in several units, transaction id, times), laid out as
// thin_ls 0.9.0 prints it, byte for byte.
//
// Exclusive blocks (mapped by this device only) need every data block's
// reference count across all devices. count_exclusive_blocks() treats the
// mapping trees as one DAG (snapshots share subtrees) and reads each
// internal node once to find it; each tree's height (from its leftmost path)
// says which children are leaves, so leaves are listed, not read, while the
// DAG is found. The number of device paths reaching each node is then
// propagated in topological order, with the device of the nodes one path
// reaches. The leaves are read in disk order in large requests on a reader
// thread (persistent-data/run_reader.h), once: each data block met notes the
// device whose one path maps it, or that two paths map it (2 bytes a block);
// a device's exclusive blocks are those it alone maps. When those notes
// outgrow their budget (a pool of over 32M data blocks in use, by default;
// thin_ls then counts in two passes from the start, as the data space map
// tells it), they become 2-bit counts (saturating at "2 or more") and the pass goes on
// counting every block once per path reaching its leaf; then the leaves one
// path reaches are read again to count their blocks referenced exactly once,
// totals summed bottom-up, once per node. A pool
// with 1,000 snapshots of one origin costs about what the origin alone does.
// Trees whose leaves lie at different depths (no kernel writes them) are
// counted by a second pass that reads every node to find the leaves.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "persistent-data/block_cache.h"
#include "persistent-data/block_io.h"
#include "persistent-data/progress.h"
#include "thin/ir/text_sink.h"

namespace thin {

// The columns, in 0.9.0's order (its usage lists them so).
enum class ls_field {
  dev,
  mapped_blocks,
  exclusive_blocks,
  shared_blocks,
  mapped_sectors,
  exclusive_sectors,
  shared_sectors,
  mapped_bytes,
  exclusive_bytes,
  shared_bytes,
  mapped,
  exclusive,
  shared,
  transaction,
  create_time,
  snap_time,
};

// Every field with its name, in order.
const std::vector<std::pair<ls_field, const char *>> &ls_field_names();

// Parses a comma-separated list ("DEV,MAPPED"). Throws pdata::bad_input_error
// naming the first unknown field.
std::vector<ls_field> parse_ls_fields(const std::string &list);

struct ls_options {
  std::vector<ls_field> fields{ls_field::dev, ls_field::mapped, ls_field::create_time, ls_field::snap_time};
  bool headers = true;
  // List the devices of the metadata snapshot instead of the live metadata.
  // An explicit location must match the one the superblock records.
  bool use_metadata_snap = false;
  std::optional<uint64_t> metadata_snap_location;
  // Told of the mapping tree nodes read (for the exclusive counts), of the
  // used metadata blocks; nullptr: nobody.
  pdata::progress *progress = nullptr;
};

// A size in sectors as 0.9.0 prints it: "0", "1023KiB", "64MiB", ... (whole
// numbers; the value is shifted down by 1024 while above 1 MiB of units, then
// rounded to the next unit when above 8192).
std::string format_sectors(uint64_t sectors);

// Blocks mapped by exactly one device (counting every device path to a leaf),
// for each of `roots` (dev_id -> mapping subtree root). Throws metadata_error
// on damage (an unreadable or invalid node, a cycle), naming the node.
// `p` (when given) is advanced by each node read. The leaves are read once
// while the owner of each data block met fits in `owners_budget` bytes (2
// bytes a block, with at most 65,534 devices); past it, the pass goes on with
// 2-bit counts and the leaves one path reaches are read a second time.
constexpr std::size_t default_owners_budget = std::size_t(64) << 20;
std::map<uint64_t, uint64_t> count_exclusive_blocks(pdata::block_cache &cache,
                                                    const std::map<uint64_t, pdata::block_address> &roots,
                                                    pdata::progress *p = nullptr,
                                                    std::size_t owners_budget = default_owners_budget);

// Prints the table for the metadata on `io`. Throws metadata_error (nothing
// printed) when the metadata cannot be read.
void ls_metadata(pdata::block_io &io, const ls_options &opts, text_sink &out);

}  // namespace thin
