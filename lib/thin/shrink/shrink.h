// thin_shrink: shrink a pool's data device offline, as thin-provisioning-tools
// 1.x's thin_shrink does. Mappings to data blocks at or above the new size
// move into blocks below it that no mapping uses; the data blocks are copied
// on the data device; then new metadata is written with every mapping
// pointing at the new places and nr_data_blocks set to the new size.
//
// Order (what keeps a power cut harmless):
//   1. read the input metadata and plan every move (refusing when the mapped
//      blocks do not fit below the new size) -- nothing is written yet;
//   2. copy the data blocks, then flush the data device;
//   3. write the output metadata: its superblock is zeroed first and the new
//      one written last, after a flush (restore_emitter's commit).
// The input metadata is never written, and a copy only ever lands in a block
// that the input's mappings do not use, so until step 3's superblock write
// the old pool (input metadata + data device) reads exactly as before; after
// it, the new one does.
#pragma once

#include <cstdint>
#include <functional>
#include <istream>
#include <map>
#include <memory>
#include <stdexcept>
#include <vector>

#include "persistent-data/block_io.h"
#include "persistent-data/progress.h"
#include "thin/ir/emitter.h"
#include "thin/ir/text_sink.h"

namespace thin {

// The shrink cannot be done (the mapped blocks do not fit, bad size, ...).
class shrink_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct shrink_options {
  uint64_t nr_blocks = 0;  // the new size, in data blocks
  bool copy_data = true;   // false (--no-copy): only rewrite the metadata
  // Told of the data blocks copied, of those the moves cover; nullptr: nobody.
  pdata::progress *progress = nullptr;
};

struct shrink_stats {
  uint64_t old_nr_blocks = 0;
  uint64_t mapped_ranges_moved = 0;
  uint64_t data_blocks_moved = 0;
};

// Data blocks [begin, end) move to [to, to + end - begin).
struct block_move {
  uint64_t begin, end, to;
  bool operator==(const block_move &) const = default;
};

// Half-open ranges of data blocks, merged when they overlap or touch.
class range_set {
 public:
  void insert(uint64_t begin, uint64_t end);
  const std::map<uint64_t, uint64_t> &ranges() const { return r_; }  // begin -> end

 private:
  std::map<uint64_t, uint64_t> r_;
};

// The moves that put every range of `above` into the gaps of `below` inside
// [0, nr_blocks), filling the gaps from the lowest up and splitting ranges
// where a gap ends. Throws shrink_error when they do not fit.
std::vector<block_move> plan_moves(const range_set &above, const range_set &below, uint64_t nr_blocks);

// Binary metadata in, binary metadata out (1.x's --binary): `in` is only
// read, `out` is written as thin_restore writes. `data` (may be null when
// !copy_data) is the pool's data device.
shrink_stats shrink_metadata(pdata::block_io &in, pdata::block_io *data, pdata::block_io &out,
                             const shrink_options &opts);

// XML in, XML out (1.x's default). The input is read twice: `open_input`
// gives a fresh stream each time.
shrink_stats shrink_xml(const std::function<std::unique_ptr<std::istream>()> &open_input, pdata::block_io *data,
                        text_sink &out, const shrink_options &opts);

}  // namespace thin
