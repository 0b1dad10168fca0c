// thin_trim: discard the parts of a pool's data device that the metadata does
// not use, so thin storage underneath (an SSD, a thin LUN, a sparse image
// file) can reclaim them.
//
// The metadata is checked first (thin_check's checker); when anything fatal is
// found, or the data space map cannot be read whole, nothing is discarded.
// Otherwise every run of data blocks whose count in the data space map is zero
// (no thin device, snapshot or metadata snapshot maps it) is discarded, one
// request per run. A leaked block (counted, unmapped) is kept. The data device
// must hold at least the pool's data blocks; anything beyond them is not the
// pool's and is left alone.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "persistent-data/block_io.h"
#include "persistent-data/progress.h"

namespace thin {

// The data device, discard side.
class discard_target {
 public:
  virtual ~discard_target() = default;
  virtual uint64_t size() const = 0;
  // Discards [off, off + len); throws std::runtime_error on failure.
  virtual void discard(uint64_t off, uint64_t len) = 0;
};

// A descriptor (not owned), opened for writing: BLKDISCARD on a block device,
// fallocate(PUNCH_HOLE | KEEP_SIZE) on a regular file.
class fd_discard_target : public discard_target {
 public:
  fd_discard_target(int fd, uint64_t size, bool block_device) : fd_(fd), size_(size), blockdev_(block_device) {}
  uint64_t size() const override { return size_; }
  void discard(uint64_t off, uint64_t len) override;

 private:
  int fd_;
  uint64_t size_;
  bool blockdev_;
};

struct trim_result {
  bool refused = false;                // nothing was discarded
  std::vector<std::string> problems;   // why (the first problems the check found, or a size mismatch)
  uint32_t data_block_size = 0;        // sectors
  uint64_t nr_data_blocks = 0;
  uint64_t discarded_ranges = 0, discarded_blocks = 0;
};

// Checks `metadata`, then discards every unused data block range on `data`.
// Throws std::runtime_error when a discard fails (earlier ones stay done:
// they only dropped unused blocks). `p` (when given) is told of the check
// (metadata blocks), then of the data blocks gone over for discarding.
trim_result trim_data_device(pdata::block_io &metadata, discard_target &data, pdata::progress *p = nullptr);

}  // namespace thin
