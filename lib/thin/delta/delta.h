// thin_delta's library side: the differences between the mappings of two thin
// devices (typically a snapshot and its origin).
//
// diff_mapping_trees() walks both mapping subtrees at once, in origin order,
// with one cursor per tree. When both cursors reach the same node block (a
// subtree the devices still share, as a snapshot shares most of its origin's
// leaves), that subtree is handled once for both sides: its mappings are
// reported as the same on both without reading it a second time, or, if the
// visitor says so, skipped without reading below that node at all.
//
// delta_metadata() prints the result as thin_delta 0.9.0 does, byte for byte:
// a <superblock> line, <diff left= right=>, then <same>, <left_only>,
// <right_only> and <different> ranges (with `verbose`, grouped and with their
// data blocks). 0.9.0's ranges need every mapped block, so this output reads
// each shared leaf once; a visitor that only wants the changes can skip them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <fmt/format.h>

#include "persistent-data/block_cache.h"
#include "persistent-data/block_io.h"
#include "persistent-data/btree_walk.h"
#include "thin/ir/text_sink.h"

namespace thin {

using pdata::block_address;

// Receives the diff of two mapping subtrees in increasing origin order.
class delta_visitor {
 public:
  virtual ~delta_visitor() = default;

  // `len` consecutive origin blocks from `origin`, mapped on the left to
  // consecutive data blocks from `left` (nothing: unmapped on the left), and
  // likewise on the right. Never called for blocks neither side maps.
  virtual void blocks(uint64_t origin, std::optional<uint64_t> left, std::optional<uint64_t> right, uint64_t len) = 0;

  // Both trees reference node `node` here, for origin blocks in `keys`: every
  // mapping below it is the same on both sides. Return true to have those
  // mappings reported through blocks() (the subtree is read once, for both
  // sides), false to skip the subtree without reading anything below `node`.
  virtual bool shared_subtree(block_address /*node*/, const pdata::key_range & /*keys*/) { return true; }
};

// One device's mapping subtree (its dev_id names it in error messages).
struct mapping_subtree {
  uint64_t dev_id = 0;
  block_address root = 0;
};

// The root of device `dev`'s mapping subtree, found in the top level of the
// mapping tree at `mapping_root` by reading only the path to it; nothing when
// the device has none. Damage on the way throws metadata_error.
std::optional<block_address> find_mapping_subtree(pdata::block_cache &cache, block_address mapping_root, uint64_t dev);

// Walks both subtrees simultaneously (see the top of this file). Every node
// read is validated; damage throws metadata_error naming the device, the
// block and the origin blocks lost. Mappings already reported stay reported.
void diff_mapping_trees(pdata::block_cache &cache, const mapping_subtree &left, const mapping_subtree &right,
                        delta_visitor &v);

struct delta_options {
  uint64_t left_dev = 0;   // --snap1 / --thin1
  uint64_t right_dev = 0;  // --snap2 / --thin2
  // Compare in the metadata snapshot (held root) instead of the live
  // metadata. An explicit location must match the one the superblock records.
  bool use_metadata_snap = false;
  std::optional<uint64_t> metadata_snap_location;
  bool verbose = false;
};

// Prints the diff of two devices of the metadata on `io` to `out` as
// thin_delta 0.9.0 does. Throws metadata_error before printing anything when
// the superblock is unusable or a device has no mapping tree ("unable to find
// mapping tree for snap1 (7)"); on damage met during the walk, after what
// was printed so far.
void delta_metadata(pdata::block_io &io, const delta_options &opts, text_sink &out);

// The writer delta_metadata uses: turns blocks() into 0.9.0's ranges and
// prints them (between <diff> and </diff>). Call finish() at the end.
// 0.9.0 splits the two devices' mappings into runs (consecutive origin blocks
// mapped to consecutive data blocks, times ignored) and cuts the origin space
// at every run boundary of either side; each piece is one range. Plain output
// merges adjacent ranges of one kind; verbose output prints every piece,
// grouping consecutive pieces of one kind in one element.
class delta_range_writer : public delta_visitor {
 public:
  delta_range_writer(text_sink &out, bool verbose, unsigned indent);
  ~delta_range_writer() override;
  void blocks(uint64_t origin, std::optional<uint64_t> left, std::optional<uint64_t> right, uint64_t len) override;
  void finish();

 private:
  enum class kind { left_only, right_only, different, same };
  void end_piece();
  void put_piece(kind k, uint64_t begin, std::optional<uint64_t> left, std::optional<uint64_t> right, uint64_t len);
  void close_group();
  template <typename... Args>
  void put(fmt::format_string<Args...> f, Args &&...args);  // formatted into the buffer

  text_sink &out_;
  bool verbose_;
  std::string indent_;
  // The piece being built.
  uint64_t begin_ = 0, len_ = 0;
  std::optional<uint64_t> left_, right_;
  // Plain output: the range being merged. Verbose: the open group.
  std::optional<kind> kind_;
  uint64_t range_begin_ = 0, range_end_ = 0;
  fmt::memory_buffer buf_;
};

}  // namespace thin
