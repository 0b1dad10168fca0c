// Recording I/O as a dm-log-writes log: a decorator per region of one logged
// device, all appending to one log in one global order.
//
// Semantics as dm-log-writes, with one difference that matters for auditing
// commit ordering: each region keeps its own list of unflushed writes, and a
// flush of a region logs only that region's writes, followed by a FLUSH entry
// carrying the region's start sector. So the log models two devices with
// independent volatile caches (the kernel's shared log cannot; spec 7.4).
// FUA writes are logged at once. Any prefix of the log is a crash state.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "persistent-data/block_io.h"
#include "log-writes/log_writes.h"

namespace pdata {

class log_recorder {
 public:
  explicit log_recorder(byte_sink &log, uint32_t sectorsize = 512);

  // A block_io that passes everything to `inner` and records it as the
  // region starting at `start_sector` (512-byte sectors) of the logged device.
  std::unique_ptr<block_io> region(block_io &inner, uint64_t start_sector);

  void mark(const std::string &text);
  // Rewrites the log superblock's entry count (call at the end; the count
  // lags otherwise, as in a crashed kernel log).
  void finish() { writer_.finish(); }
  uint64_t nr_entries() const { return writer_.nr_entries(); }

 private:
  friend class recorded_region;
  log_writer writer_;
};

}  // namespace pdata
