// plan_runs and read_runs (lib/persistent-data/run_reader.h): a sorted list
// becomes few large requests that read through small gaps; every listed
// block reaches the consumer with its bytes, in order, on the reader thread
// path and the single-threaded one; the first unreadable or refused run
// stops the read and is named; an exception from the consumer comes back.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "persistent-data/block_io.h"
#include "persistent-data/errors.h"
#include "persistent-data/run_reader.h"

namespace {

using pdata::block_address;
using pdata::block_buffer;
using pdata::block_run;

// Every block holds its own number in its first 8 bytes.
void stamp(pdata::block_io &io) {
  block_buffer b;
  for (block_address i = 0; i < io.nr_blocks(); i++) {
    std::memset(b.raw(), 0, pdata::block_size);
    std::memcpy(b.raw(), &i, sizeof i);
    io.write(i, b.raw(), 1);
  }
}

block_address number_in(const block_buffer &b) {
  block_address v;
  std::memcpy(&v, b.raw(), sizeof v);
  return v;
}

std::vector<block_run> plan(const std::vector<block_address> &list, pdata::run_options opts = {}) {
  return pdata::plan_runs(list.size(), [&](std::size_t i) { return list[i]; }, opts);
}

// The blocks the consumer saw, in the order it saw them (one per list entry).
std::vector<block_address> consume_all(pdata::block_io &io, const std::vector<block_address> &list,
                                       const std::vector<block_run> &runs, std::size_t &stopped) {
  std::vector<block_address> seen;
  stopped = pdata::read_runs(
      io, runs, [](const block_run &, const block_buffer *) { return true; },
      [&](const block_run &r, const block_buffer *data) {
        for (std::size_t x = r.first; x < r.last; x++) {
          EXPECT_EQ(number_in(data[list[x] - r.start]), list[x]);
          seen.push_back(list[x]);
        }
      });
  return seen;
}

TEST(run_reader, plans_runs_that_read_through_small_gaps_and_stop_at_large_ones_or_at_the_run_limit) {
  // 10..17 with gaps of at most 4 (read through), then 40 (a gap of 23: a
  // new run), 40 again (a duplicate stays in its run), then 600 in a row.
  std::vector<block_address> list = {10, 11, 13, 17, 40, 40};
  for (block_address b = 1000; b < 1600; b++) list.push_back(b);
  auto runs = plan(list);
  ASSERT_EQ(runs.size(), 5u);
  EXPECT_EQ(runs[0].start, 10u);
  EXPECT_EQ(runs[0].count, 8u);
  EXPECT_EQ(runs[0].first, 0u);
  EXPECT_EQ(runs[0].last, 4u);
  EXPECT_EQ(runs[1].start, 40u);
  EXPECT_EQ(runs[1].count, 1u);
  EXPECT_EQ(runs[1].last - runs[1].first, 2u);
  EXPECT_EQ(runs[2].count, 256u);  // the default 1 MiB limit
  EXPECT_EQ(runs[3].count, 256u);
  EXPECT_EQ(runs[4].count, 88u);
  EXPECT_EQ(runs[4].last, list.size());
}

TEST(run_reader, hands_every_listed_block_to_the_consumer_in_order_with_its_bytes) {
  pdata::memory_block_io io(5000);
  stamp(io);
  for (std::size_t n : {3u, 40u, 2000u}) {  // no thread, and the reader thread
    std::vector<block_address> list;
    for (std::size_t i = 0; i < n; i++) list.push_back((i * 7) % 4999 + (i % 3 == 0));
    std::sort(list.begin(), list.end());
    auto runs = plan(list, {16, 2, 3});
    std::size_t stopped = 0;
    auto seen = consume_all(io, list, runs, stopped);
    EXPECT_EQ(stopped, runs.size());
    EXPECT_EQ(seen, list) << n << " blocks";
  }
}

TEST(run_reader, stops_before_the_first_run_that_cannot_be_read_or_that_the_check_refuses) {
  pdata::memory_block_io mem(4000);
  stamp(mem);
  std::vector<block_address> list;
  for (block_address b = 0; b < 4000; b += 2) list.push_back(b);
  auto runs = plan(list, {32, 4, 4});
  ASSERT_GT(runs.size(), 20u);

  // An I/O error in the middle: the runs before it are consumed, no more.
  pdata::fault_injecting_block_io io(mem);
  io.fail_reads_of(runs[17].start + 3);
  std::size_t stopped = 0;
  auto seen = consume_all(io, list, runs, stopped);
  EXPECT_EQ(stopped, 17u);
  EXPECT_EQ(seen, std::vector<block_address>(list.begin(), list.begin() + static_cast<long>(runs[17].first)));

  // The check refuses run 9 (on the reader thread): the same.
  std::size_t consumed = 0;
  stopped = pdata::read_runs(
      mem, runs, [&](const block_run &r, const block_buffer *) { return r.start != runs[9].start; },
      [&](const block_run &, const block_buffer *) { consumed++; });
  EXPECT_EQ(stopped, 9u);
  EXPECT_EQ(consumed, 9u);
}

TEST(run_reader, passes_an_exception_from_the_consumer_back_to_the_caller_after_stopping_the_reader) {
  pdata::memory_block_io io(3000);
  stamp(io);
  std::vector<block_address> list;
  for (block_address b = 0; b < 3000; b++) list.push_back(b);
  auto runs = plan(list, {8, 4, 4});
  std::size_t consumed = 0;
  EXPECT_THROW(pdata::read_runs(
                   io, runs, [](const block_run &, const block_buffer *) { return true; },
                   [&](const block_run &, const block_buffer *) {
                     if (++consumed == 50) throw std::runtime_error("stop");
                   }),
               std::runtime_error);
  EXPECT_EQ(consumed, 50u);
}

}  // namespace
