// Reading a sorted list of blocks front to back in large requests, with a
// reader thread ahead of the consumer.
//
// Walkers that have listed the leaves they need (the fast check, thin_ls's
// shared-block count) read them in block order: plan_runs() groups the list
// into runs (one request each, up to max_run blocks, reading through gaps of
// at most max_gap unwanted blocks), and read_runs() reads the runs on a
// reader thread up to `ahead` runs before the calling thread consumes them.
// The reader thread is the only one doing I/O on the device meanwhile: the
// consumer must not read the same block_io (it may read others).
//
// Memory: ahead * max_run blocks (4 MiB with the defaults), whatever the
// list's length.
#pragma once

#include <cstddef>
#include <functional>
#include <vector>

#include "persistent-data/block.h"
#include "persistent-data/block_io.h"

namespace pdata {

struct block_run {
  block_address start = 0, count = 0;  // blocks [start, start + count), one request
  std::size_t first = 0, last = 0;     // the list's entries [first, last) lie in it
};

struct run_options {
  block_address max_run = 256;  // blocks in one request (1 MiB)
  block_address max_gap = 4;    // unwanted blocks read rather than split a run
  std::size_t ahead = 4;        // runs read ahead of the consumer
};

// Runs covering entries [0, n) of a list sorted by block (duplicates
// allowed); block_at(i) is entry i's block. Every entry lies in one run.
template <typename BlockAt>
std::vector<block_run> plan_runs(std::size_t n, BlockAt &&block_at, const run_options &opts = {}) {
  std::vector<block_run> runs;
  for (std::size_t i = 0; i < n;) {
    const block_address start = block_at(i);
    block_address last = start;
    std::size_t j = i;
    while (j < n) {
      const block_address b = block_at(j);
      if (b > last + opts.max_gap || b >= start + opts.max_run) break;
      last = b;
      j++;
    }
    runs.push_back({start, last - start + 1, i, j});
    i = j;
  }
  return runs;
}

// Reads `runs` in order. check(run, data) runs on the reader thread as soon
// as a run is read (data[k] holds block run.start + k) and says whether the
// run is usable; consume(run, data) then runs on the calling thread, in
// order. Stops before the first run that could not be read (an io_error) or
// that check refused, and returns its index; returns runs.size() when every
// run was consumed. An exception from consume stops the reader and is
// rethrown.
using run_fn = std::function<void(const block_run &, const block_buffer *)>;
using run_check_fn = std::function<bool(const block_run &, const block_buffer *)>;
std::size_t read_runs(block_io &io, const std::vector<block_run> &runs, const run_check_fn &check,
                      const run_fn &consume, const run_options &opts = {});

}  // namespace pdata
