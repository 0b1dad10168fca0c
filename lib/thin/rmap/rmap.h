// thin_rmap's library side: the reverse map. For data-block regions it finds
// which thin devices' blocks map them and prints thin_rmap 0.9.0's lines,
// byte for byte: "data B..E -> thin(DEV) T..U", runs of consecutive data
// blocks mapped by consecutive blocks of one device, sorted by first data
// block (ties in the order 0.9.0's sort leaves them). As in 0.9.0, a
// mapping-tree node several devices share is entered once, for the lowest
// device id: its mappings are not reported again for the others.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "persistent-data/block_io.h"
#include "persistent-data/progress.h"
#include "thin/ir/text_sink.h"

namespace thin {

// Data blocks [begin, end).
struct data_region {
  uint64_t begin = 0, end = 0;
  bool contains(uint64_t b) const { return b >= begin && b < end; }
};

// Parses "BEGIN..END" (END one past the last block) as 0.9.0 does. Throws
// pdata::bad_input_error saying what is wrong (no dots, not numbers,
// END <= BEGIN).
data_region parse_data_region(const std::string &text);

struct rmap_run {
  uint64_t data_begin = 0, data_end = 0;
  uint32_t dev = 0;
  uint64_t thin_begin = 0;
};

// The runs for `regions` in the live metadata on `io`, in output order.
// Throws metadata_error on an unusable superblock or damaged mapping tree.
// `p` (when given) is told of the mapping tree nodes read, of the used
// metadata blocks.
std::vector<rmap_run> reverse_map(pdata::block_io &io, const std::vector<data_region> &regions,
                                  pdata::progress *p = nullptr);

// Prints the runs as 0.9.0's lines.
void rmap_metadata(pdata::block_io &io, const std::vector<data_region> &regions, text_sink &out,
                   pdata::progress *p = nullptr);

}  // namespace thin
