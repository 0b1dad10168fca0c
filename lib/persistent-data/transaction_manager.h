// The transaction manager: copy-on-write ("shadowing") of metadata blocks.
//
// Rule: nothing reachable from the last committed superblock is overwritten.
// A block is modified in place only if it was allocated or shadowed in this
// transaction and nothing else references it; otherwise shadow() copies it to
// a newly allocated block. Modified blocks stay in memory (or are written at
// once with write_now() by bulk builders, since no committed state refers to
// them) until commit writes them all and flushes; the caller then writes the
// superblock and flushes again (see thin/metadata_writer).
//
// Reference counts live in the metadata space map (a pdata::space_map); the
// on-disk form of both space maps is written by space_map_writer at commit.
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "persistent-data/block_cache.h"
#include "persistent-data/block_io.h"
#include "persistent-data/checksum.h"
#include "persistent-data/errors.h"
#include "persistent-data/space_map.h"

namespace pdata {

// The metadata device has no free block left.
class out_of_metadata_space : public io_error {
 public:
  using io_error::io_error;
};

class transaction_manager {
 public:
  transaction_manager(block_io &io, space_map &metadata_sm);

  block_io &io() { return io_; }
  space_map &sm() { return sm_; }

  // A block's current contents: the in-memory copy if modified in this
  // transaction, else from disk.
  block_ref read(block_address b);

  // A new zeroed block (count 1), writable in place; `salt` says how to
  // checksum it at write-out.
  unsigned char *new_block(block_address &b, checksum_salt salt);

  // Makes `b` writable: returns the block to modify, which is `b` itself when
  // that is allowed, or a copy at a new location. `shared` tells the caller
  // that `b` was referenced elsewhere, so the caller must increment the
  // counts of everything the copy references.
  unsigned char *shadow(block_address b, checksum_salt salt, block_address &out, bool &shared);

  // Writable access to a block already created or shadowed in this transaction.
  unsigned char *writable(block_address b);
  bool is_fresh(block_address b) const { return fresh_.count(b) != 0; }

  // Writes a fresh block and drops it from memory; it must not change again
  // in this transaction (bulk builders). Consecutive blocks are gathered and
  // written together (up to 4 MiB a request); reads see them meanwhile, and
  // flush_blocks() writes what is still gathered.
  void write_now(block_address b);

  void inc(block_address b) { sm_.inc(b); }
  void dec(block_address b);
  uint32_t ref_count(block_address b) const { return sm_.get(b); }

  // Writes every modified block (checksum and blocknr stamped) and flushes.
  // The superblock is the caller's: write it after this, then flush.
  void flush_blocks();
  // Ends the transaction (after the superblock is durable).
  void end_transaction();

  // Forget cached reads (after a failed transaction is abandoned).
  void clear_cache() { cache_.clear(); }

 private:
  block_address allocate();
  std::unique_ptr<block_buffer> take_buffer();
  void write_gathered();

  struct dirty {
    std::unique_ptr<block_buffer> buf;
    checksum_salt salt;
  };
  block_io &io_;
  space_map &sm_;
  block_cache cache_;
  std::unordered_map<block_address, dirty> dirty_;
  std::unordered_set<block_address> fresh_;  // allocated or shadowed in this transaction
  std::vector<std::unique_ptr<block_buffer>> spare_;  // buffers of written blocks, for reuse
  // Blocks handed to write_now, not yet written: [gather_start_, +gather_len_).
  std::unique_ptr<block_buffer[]> gather_;
  block_address gather_start_ = 0, gather_len_ = 0;
};

}  // namespace pdata
