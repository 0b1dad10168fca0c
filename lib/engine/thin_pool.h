// A reference userspace thin pool: dm-thin's I/O semantics over two block
// devices (metadata, data), implementing the commit ordering of kernel commit
// 694cfe7f31 "dm thin: Flush data device before committing metadata".
//
// Semantics (as dm-thin):
//  * a write to an unmapped block provisions a new data block; a partial write
//    with zeroing on first zeroes the whole block;
//  * a write to a shared block (snapshot) copies the whole block to a new one
//    first (a full-block write needs no copy);
//  * the mapping is inserted only after the data I/O that prepared the block
//    completed (here: was issued, since I/O is synchronous);
//  * reads of unmapped blocks return zeroes; discards of whole blocks unmap
//    them (data blocks no longer referenced become free);
//  * commits happen on PREFLUSH/FUA bios (if anything changed), after pool
//    messages (create, snapshot, delete, transaction id, metadata snapshots),
//    and every `commit_every` bios (the kernel's 1 s timer).
//
// Commit ordering:
//  corrected (default):  1. flush data  2. write metadata  3. flush metadata
//                        4. write superblock  5. flush metadata
//  legacy_ordering:      2-5 only; a PREFLUSH bio's flush reaches the data
//                        device after the commit (the pre-fix behaviour that
//                        lets committed mappings point at unflushed data).
//
// I/O is in 512-byte sectors; the data device is a block_io of 4 KiB blocks,
// so sub-4 KiB writes are read-modify-write of 4 KiB blocks.
#pragma once

#include <cstdint>
#include <memory>

#include "persistent-data/block_io.h"
#include "persistent-data/errors.h"
#include "engine/pool_metadata.h"

namespace thin {

struct pool_options {
  uint32_t data_block_size = 128;  // sectors; a multiple of 128
  bool zeroing = true;             // zero newly provisioned blocks on partial writes
  bool legacy_ordering = false;    // reproduce the pre-694cfe7f31 ordering
  uint64_t commit_every = 64;      // bios between periodic commits (0: never)
};

enum bio_flags : unsigned { bio_preflush = 1, bio_fua = 2 };

class out_of_data_space : public pdata::io_error {
 public:
  using pdata::io_error::io_error;
};

struct pool_stats {
  uint64_t commits = 0, provisions = 0, copies = 0, zeroings = 0, data_flushes = 0;
};

class thin_pool {
 public:
  // Formats new metadata; the data device's size gives nr_data_blocks.
  static std::unique_ptr<thin_pool> format(pdata::block_io &meta, pdata::block_io &data, const pool_options &opts);
  // Opens existing metadata (its data block size wins over opts').
  static std::unique_ptr<thin_pool> open(pdata::block_io &meta, pdata::block_io &data, const pool_options &opts);

  // Pool messages (each commits, as dm-thin does).
  void create_thin(uint64_t dev);
  void create_snap(uint64_t dev, uint64_t origin);
  void delete_device(uint64_t dev);
  void set_transaction_id(uint64_t old_id, uint64_t new_id);
  void reserve_metadata_snap();
  void release_metadata_snap();

  // Bios to a thin device. `buf` holds nr_sectors * 512 bytes.
  void write(uint64_t dev, uint64_t sector, const void *buf, uint64_t nr_sectors, unsigned flags = 0);
  void read(uint64_t dev, uint64_t sector, void *buf, uint64_t nr_sectors);
  void discard(uint64_t dev, uint64_t sector, uint64_t nr_sectors);
  // An empty PREFLUSH bio.
  void flush();

  // Commits now (what the timer would do).
  void commit();

  pool_metadata &metadata() { return *md_; }
  const pool_stats &stats() const { return stats_; }
  uint32_t data_block_size() const { return md_->data_block_size(); }

 private:
  thin_pool(pdata::block_io &meta, pdata::block_io &data, const pool_options &opts, std::unique_ptr<pool_metadata> md);
  uint64_t blocks_per_data_block() const { return md_->data_block_size() / 8; }
  uint64_t allocate_data_block();
  void write_piece(uint64_t dev, uint64_t vblock, uint64_t offset_sectors, const unsigned char *buf, uint64_t nr,
                   bool fua);
  void data_write(uint64_t data_block, uint64_t offset_sectors, const unsigned char *buf, uint64_t nr, bool fua);
  void copy_block(uint64_t from, uint64_t to);
  void zero_block(uint64_t block);
  void tick();

  pdata::block_io &data_;
  pool_options opts_;
  std::unique_ptr<pool_metadata> md_;
  uint64_t since_commit_ = 0;
  pool_stats stats_;
};

}  // namespace thin
