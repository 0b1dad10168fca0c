// A read cache over a block_io, handing out shared, immutable block buffers.
//
// Readers of metadata (walkers, checkers, dumpers) read through this so a
// block visited from several places (shared B-tree nodes) is read once while
// it stays cached. Eviction is least-recently-used; a buffer handed out stays
// valid for as long as the caller holds it. Buffers of evicted blocks that no
// caller still holds are reused, so a long walk does not allocate per block.
#pragma once

#include <cstddef>
#include <list>
#include <memory>
#include <unordered_map>

#include "persistent-data/block.h"
#include "persistent-data/block_io.h"

namespace pdata {

using block_ref = std::shared_ptr<const block_buffer>;

class block_cache {
 public:
  explicit block_cache(block_io &io, std::size_t capacity = 8192) : io_(io), capacity_(capacity) {}

  // Reads block b (throws io_error when it cannot be read).
  block_ref read(block_address b);

  // Block b if it is cached (no I/O), else null.
  block_ref peek(block_address b) const {
    auto it = map_.find(b);
    return it == map_.end() ? block_ref() : it->second.buf;
  }

  block_address nr_blocks() const { return io_.nr_blocks(); }
  block_io &io() { return io_; }

  // Forget one block (it was just written).
  void forget(block_address b);

  // Forget everything cached (after the device was written behind our back).
  void clear();

 private:
  struct entry {
    block_ref buf;
    std::list<block_address>::iterator lru_pos;
  };
  block_io &io_;
  std::size_t capacity_;
  std::list<block_address> lru_;  // front = most recent
  std::unordered_map<block_address, entry> map_;
};

}  // namespace pdata
