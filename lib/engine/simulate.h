// A built-in power-cut scenario for the reference engine (thinkit simulate,
// and the README's demo): a pool with snapshots and copy-on-write, both
// devices behind volatile write caches, every write and flush recorded as a
// dm-log-writes log (metadata region, then data region), and a power cut
// with writes still in the caches. The surviving metadata and data images and
// the log are left on the given devices for thin_audit, thin_check and
// thin_dump to examine.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "persistent-data/block_io.h"
#include "log-writes/byte_io.h"

namespace thin {

struct simulation_options {
  bool legacy_ordering = false;
  uint32_t data_block_size = 128;  // sectors
  uint64_t seed = 1;
};

struct simulation_result {
  uint64_t commits = 0, copies = 0, zeroings = 0;
  uint64_t lost_metadata_writes = 0, lost_data_writes = 0;
  uint64_t mapped_blocks = 0;   // after the crash, over all devices
  uint64_t garbage_blocks = 0;  // mapped blocks holding data nobody wrote there
  uint64_t log_entries = 0;
};

// `meta` and `data` are the pool's devices (their final contents are the
// state after the power cut); the log goes to `log`. Data blocks are first
// filled with a "STALE" pattern, as on a disk used before. `say` gets one
// line per step.
simulation_result simulate_power_cut(pdata::block_io &meta, pdata::block_io &data, pdata::byte_sink &log,
                                     const simulation_options &opts, const std::function<void(const std::string &)> &say);

}  // namespace thin
