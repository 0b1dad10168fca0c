// The block I/O seam: every byte thinkit reads or writes goes through here.
//
// block_io is an abstract device of 4 KiB blocks. Implementations:
//   file_block_io            a file or block device (pread/pwrite, optional O_DIRECT)
//   memory_block_io          an in-memory device for tests and scratch work
//   fault_injecting_block_io a decorator that fails chosen reads/writes and can
//                            model a volatile write-back cache that loses
//                            unflushed writes on crash()
// Library code takes a block_io&; only tools/ turns paths into file_block_io.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <vector>

#include "persistent-data/block.h"

namespace pdata {

class block_io {
 public:
  virtual ~block_io() = default;

  // Number of whole 4 KiB blocks on the device.
  virtual block_address nr_blocks() const = 0;

  // Read/write `count` consecutive blocks starting at `b`. `buf` holds
  // count * block_size bytes. Throws io_error on failure or out of range.
  virtual void read(block_address b, void *buf, std::size_t count = 1) = 0;
  virtual void write(block_address b, const void *buf, std::size_t count = 1) = 0;

  // Make every completed write durable (fsync / cache flush).
  virtual void flush() = 0;

  // A write that is durable when it returns (Force Unit Access), without
  // making other pending writes durable. The default is write + flush.
  virtual void write_fua(block_address b, const void *buf, std::size_t count = 1) {
    write(b, buf, count);
    flush();
  }

  virtual bool writable() const = 0;

  // Whether read() may be called from several threads at once (batch_read.h
  // then keeps several requests in flight).
  virtual bool concurrent_reads() const { return false; }
};

// A file or block device, given as an already-open descriptor (tools open
// paths). Takes ownership of the descriptor. With `direct`, the descriptor
// must have been opened O_DIRECT; buffers are then bounced through an aligned
// buffer when the caller's are not aligned.
class file_block_io : public block_io {
 public:
  file_block_io(int fd, uint64_t size_bytes, bool writable, bool direct = false);
  ~file_block_io() override;
  file_block_io(const file_block_io &) = delete;
  file_block_io &operator=(const file_block_io &) = delete;

  block_address nr_blocks() const override { return nr_blocks_; }
  void read(block_address b, void *buf, std::size_t count = 1) override;
  void write(block_address b, const void *buf, std::size_t count = 1) override;
  void flush() override;
  bool writable() const override { return writable_; }
  bool concurrent_reads() const override { return true; }  // pread, no shared state

 private:
  int fd_;
  block_address nr_blocks_;
  bool writable_;
  bool direct_;
};

// A device held in memory. Blocks never written read as zeroes.
class memory_block_io : public block_io {
 public:
  explicit memory_block_io(block_address nr_blocks);
  // Takes a copy of an image; its size is rounded down to whole blocks.
  explicit memory_block_io(const std::vector<unsigned char> &image);

  block_address nr_blocks() const override { return nr_blocks_; }
  void read(block_address b, void *buf, std::size_t count = 1) override;
  void write(block_address b, const void *buf, std::size_t count = 1) override;
  void flush() override { flushes_++; }
  bool writable() const override { return true; }

  // The whole device as bytes (for tests and image dumps).
  std::vector<unsigned char> image() const;
  unsigned flushes() const { return flushes_; }

 private:
  block_address nr_blocks_;
  std::map<block_address, std::unique_ptr<block_buffer>> blocks_;
  unsigned flushes_ = 0;
};

// A decorator over another block_io that injects faults, all set by code:
//   - fail the N-th read or write (1-based, counted across all blocks),
//   - fail every read or write of chosen blocks,
//   - model a volatile write-back cache: with volatile_cache(true), writes are
//     held in the decorator until flush(); crash() then drops them (or keeps a
//     seeded random subset) and the inner device holds what survived.
class fault_injecting_block_io : public block_io {
 public:
  explicit fault_injecting_block_io(block_io &inner) : inner_(inner) {}

  void fail_nth_read(uint64_t n) { fail_read_n_ = n; }
  void fail_nth_write(uint64_t n) { fail_write_n_ = n; }
  void fail_reads_of(block_address b) { bad_reads_.insert(b); }
  void fail_writes_of(block_address b) { bad_writes_.insert(b); }
  void volatile_cache(bool on) { volatile_ = on; }

  // Power loss: unflushed writes are lost, except that each survives with
  // probability `keep_fraction` (decided by `seed`). Returns how many were lost.
  std::size_t crash(double keep_fraction = 0.0, uint64_t seed = 0);

  // The same power loss, applied to `target` (a copy of the inner device)
  // instead: this device and its cache carry on untouched. Lets a test
  // examine many crash points of one run.
  std::size_t crash_into(block_io &target, double keep_fraction = 0.0, uint64_t seed = 0) const;

  uint64_t reads() const { return reads_; }
  uint64_t writes() const { return writes_; }
  uint64_t flushes() const { return flushes_; }
  std::size_t pending_writes() const { return pending_.size(); }

  block_address nr_blocks() const override { return inner_.nr_blocks(); }
  void read(block_address b, void *buf, std::size_t count = 1) override;
  void write(block_address b, const void *buf, std::size_t count = 1) override;
  void flush() override;
  // FUA bypasses the volatile cache: durable at once, others stay pending.
  void write_fua(block_address b, const void *buf, std::size_t count = 1) override;
  bool writable() const override { return inner_.writable(); }

 private:
  block_io &inner_;
  uint64_t fail_read_n_ = 0, fail_write_n_ = 0;
  std::set<block_address> bad_reads_, bad_writes_;
  bool volatile_ = false;
  uint64_t reads_ = 0, writes_ = 0, flushes_ = 0;
  // Unflushed writes in issue order (block, contents).
  std::vector<std::pair<block_address, std::unique_ptr<block_buffer>>> pending_;
};

}  // namespace pdata
