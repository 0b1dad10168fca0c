// Exception types for the I/O error channel.
//
// thinkit has two error channels: I/O and usage failures are exceptions
// (these), caught in each tool's main; metadata damage is data, passed as
// typed records to a visitor (see btree_walk.h and lib/thin/damage.h).
#pragma once

#include <stdexcept>
#include <string>

namespace pdata {

// A read, write or flush failed, or a block lies outside the device.
class io_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A block failed validation (checksum, block number, type invariants) where
// the caller asked for an exception rather than a damage record.
class bad_block_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace pdata
