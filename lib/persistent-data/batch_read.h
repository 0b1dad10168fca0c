// Reads shaped for devices: many blocks in few, large, ordered requests,
// several in flight, instead of one 4 KiB synchronous read at a time (which
// on an O_DIRECT block device costs a device round trip per block).
//
//   batch_read   reads a set of blocks: sorted, runs of consecutive blocks
//                joined into one request (up to max_request blocks), and up
//                to `threads` requests in flight when the device allows
//                concurrent reads (block_io::concurrent_reads()).
//   read_plan_io a read-only decorator for walkers that know ahead what they
//                will read: blocks handed over up front ("pinned") are served
//                from memory, and a miss on a block of the plan reads the
//                next `window` blocks of the plan in one batch. Anything else
//                goes to the device as asked. Each block read once is served
//                once from the window and then forgotten (a block_cache above
//                keeps what is read again). When the device takes reads from
//                several threads, the window after the one being served is
//                read meanwhile, on a thread of its own.
//
// Neither changes what a reader sees, only how the bytes arrive: a block the
// batch could not read is simply not served, and the reader's own read then
// fails (or succeeds) exactly as it would have without the plan.
#pragma once

#include <cstddef>
#include <functional>
#include <future>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

#include "persistent-data/block.h"
#include "persistent-data/block_io.h"

namespace pdata {

struct batch_read_options {
  std::size_t max_request = 256;  // blocks in one request (1 MiB)
  unsigned threads = 4;           // requests in flight
};

// Calls fn(b, data) on this thread, in block order, for every block of
// `blocks` (any order, duplicates and blocks beyond the device ignored) that
// could be read; blocks in a failed request are retried one by one, and a
// block that still fails is left out.
void batch_read(block_io &io, std::vector<block_address> blocks,
                const std::function<void(block_address, const unsigned char *)> &fn,
                const batch_read_options &opts = {});
// The same, reading into `arena`, which the caller keeps for its next batch:
// grown to the largest batch once, its pages are reused instead of faulted
// in afresh for every batch.
void batch_read(block_io &io, std::vector<block_address> blocks,
                const std::function<void(block_address, const unsigned char *)> &fn, const batch_read_options &opts,
                std::vector<block_buffer> &arena);

class read_plan_io : public block_io {
 public:
  // `plan`: blocks in the order they are expected to be read.
  read_plan_io(block_io &inner, std::unordered_map<block_address, std::unique_ptr<block_buffer>> pinned,
               std::vector<block_address> plan, std::size_t window = 1024, batch_read_options opts = {});

  block_address nr_blocks() const override { return inner_.nr_blocks(); }
  ~read_plan_io() override;
  read_plan_io(const read_plan_io &) = delete;
  read_plan_io &operator=(const read_plan_io &) = delete;

  void read(block_address b, void *buf, std::size_t count = 1) override;
  void write(block_address, const void *, std::size_t) override;
  void flush() override {}
  bool writable() const override { return false; }

  // Blocks read from the device through a batch (for tests).
  uint64_t batched_blocks() const { return batched_; }

  using batched = std::pair<block_address, std::unique_ptr<block_buffer>>;

 private:
  void fill_from(std::size_t pos);
  void start_ahead();
  void take(std::vector<batched> got);

  block_io &inner_;
  std::unordered_map<block_address, std::unique_ptr<block_buffer>> pinned_;
  std::vector<block_address> plan_;
  std::unordered_map<block_address, std::size_t> plan_pos_;  // first position of each block
  std::size_t window_;
  batch_read_options opts_;
  std::size_t next_ = 0;  // plan entries before this were batched already
  std::unordered_map<block_address, std::unique_ptr<block_buffer>> ready_;
  std::vector<std::unique_ptr<block_buffer>> spare_;  // served, for the next batch
  std::vector<block_buffer> arena_, ahead_arena_;      // batch_read's request buffers
  std::future<std::vector<batched>> ahead_;           // plan entries [ahead_begin_, next_)
  std::size_t ahead_begin_ = 0;
  uint64_t batched_ = 0;
};

}  // namespace pdata
