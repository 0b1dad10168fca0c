// batch_read and read_plan_io (lib/persistent-data/batch_read.h): blocks
// arrive with the right bytes in block order, in few requests, several in
// flight on a file; failed reads are left to the reader; a plan reads ahead
// in windows and serves pinned blocks without touching the device.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <vector>

#include "persistent-data/batch_read.h"
#include "persistent-data/block_io.h"
#include "persistent-data/errors.h"
#include "support/metadata_support.h"
#include "support/test_support.h"

namespace {

using pdata::block_address;

// Every block holds its own number in its first 8 bytes.
void stamp(pdata::block_io &io, block_address n) {
  pdata::block_buffer b;
  for (block_address i = 0; i < n; i++) {
    std::memset(b.raw(), 0, pdata::block_size);
    std::memcpy(b.raw(), &i, sizeof i);
    b.raw()[pdata::block_size - 1] = static_cast<unsigned char>(i * 7);
    io.write(i, b.raw(), 1);
  }
}

block_address number_in(const unsigned char *data) {
  block_address v;
  std::memcpy(&v, data, sizeof v);
  EXPECT_EQ(data[pdata::block_size - 1], static_cast<unsigned char>(v * 7));
  return v;
}

std::vector<block_address> collect(pdata::block_io &io, std::vector<block_address> want) {
  std::vector<block_address> got;
  pdata::batch_read(io, want, [&](block_address b, const unsigned char *d) {
    EXPECT_EQ(number_in(d), b);
    got.push_back(b);
  });
  return got;
}

TEST(batch_read, hands_over_each_block_once_in_block_order_with_its_bytes) {
  pdata::memory_block_io mem(64);
  stamp(mem, 64);
  test::counting_block_io io(mem);
  auto got = collect(io, {40, 3, 4, 5, 40, 63, 100, 6, 20});
  EXPECT_EQ(got, (std::vector<block_address>{3, 4, 5, 6, 20, 40, 63}));  // 100: beyond the device
  EXPECT_EQ(io.blocks_read, 7u);
  for (auto &[b, n] : io.reads) EXPECT_EQ(n, 1u) << b;
}

TEST(batch_read, a_failed_request_is_retried_block_by_block_and_the_bad_block_left_out) {
  pdata::memory_block_io mem(32);
  stamp(mem, 32);
  pdata::fault_injecting_block_io io(mem);
  io.fail_reads_of(11);
  auto got = collect(io, {9, 10, 11, 12, 13, 30});
  EXPECT_EQ(got, (std::vector<block_address>{9, 10, 12, 13, 30}));
}

TEST(batch_read, reads_a_file_with_several_requests_in_flight) {
  test::temp_dir tmp;
  const std::string path = tmp.file("blocks.img");
  {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    pdata::file_block_io f(fd, 4096 * pdata::block_size, true);
    stamp(f, 4096);
    f.flush();
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  pdata::file_block_io f(fd, 4096 * pdata::block_size, false);
  ASSERT_TRUE(f.concurrent_reads());
  std::vector<block_address> want;
  for (block_address b = 0; b < 4096; b += (b % 5) + 1) want.push_back(b);  // runs and gaps
  auto got = collect(f, want);
  EXPECT_EQ(got, want);
}

TEST(read_plan_io, serves_pinned_blocks_from_memory_and_reads_the_plan_ahead_in_windows) {
  pdata::memory_block_io mem(256);
  stamp(mem, 256);
  test::counting_block_io counted(mem);
  std::unordered_map<block_address, std::unique_ptr<pdata::block_buffer>> pinned;
  pinned[7] = std::make_unique<pdata::block_buffer>();
  mem.read(7, pinned[7]->raw(), 1);
  std::vector<block_address> plan{50, 10, 200, 11, 90, 91, 92, 3};
  pdata::read_plan_io io(counted, std::move(pinned), plan, 4);
  pdata::block_buffer buf;

  io.read(7, buf.raw(), 1);  // pinned
  EXPECT_EQ(number_in(buf.raw()), 7u);
  EXPECT_EQ(counted.blocks_read, 0u);

  io.read(50, buf.raw(), 1);  // a miss on the plan: the first window (50, 10, 200, 11) in one batch
  EXPECT_EQ(number_in(buf.raw()), 50u);
  EXPECT_EQ(counted.blocks_read, 4u);
  for (block_address b : {10, 200, 11}) {
    io.read(b, buf.raw(), 1);
    EXPECT_EQ(number_in(buf.raw()), b);
  }
  EXPECT_EQ(counted.blocks_read, 4u);

  io.read(90, buf.raw(), 1);  // the next window
  EXPECT_EQ(counted.blocks_read, 8u);
  EXPECT_EQ(io.batched_blocks(), 8u);

  io.read(150, buf.raw(), 1);  // not in the plan: straight to the device
  EXPECT_EQ(number_in(buf.raw()), 150u);
  io.read(50, buf.raw(), 1);  // served once from the window already: read again
  EXPECT_EQ(number_in(buf.raw()), 50u);
  EXPECT_EQ(counted.blocks_read, 10u);
  EXPECT_THROW(io.write(1, buf.raw(), 1), pdata::io_error);
}

}  // namespace
