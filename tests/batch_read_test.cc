// batch_read and read_plan_io (lib/persistent-data/batch_read.h): blocks
// arrive with the right bytes in block order, in few requests, several in
// flight on a file; failed reads are left to the reader; a plan reads ahead
// in windows and serves pinned blocks without touching the device.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
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

// Claims concurrent reads (as a file does), counts each block's reads, and
// can hold the reads of chosen blocks until released, so a test can see a
// read issued before the reader asked for the block.
class gated_block_io : public pdata::block_io {
 public:
  explicit gated_block_io(pdata::block_io &inner) : inner_(inner) {}
  block_address nr_blocks() const override { return inner_.nr_blocks(); }
  void read(block_address b, void *buf, std::size_t count) override {
    std::unique_lock<std::mutex> lock(m_);
    bool gated = false;
    for (std::size_t i = 0; i < count; i++) {
      reads_[b + i]++;
      gated = gated || held_.count(b + i);
    }
    if (gated) {
      waiting_++;
      cv_.notify_all();
      cv_.wait(lock, [&] { return released_; });
    }
    inner_.read(b, buf, count);  // under the lock: memory_block_io is not for threads
  }
  void write(block_address, const void *, std::size_t) override { throw pdata::io_error("read-only"); }
  void flush() override {}
  bool writable() const override { return false; }
  bool concurrent_reads() const override { return true; }

  void hold(std::vector<block_address> blocks) { held_.insert(blocks.begin(), blocks.end()); }
  // Whether a held read arrived (false after a minute: the test fails).
  bool a_held_read_arrives() {
    std::unique_lock<std::mutex> lock(m_);
    return cv_.wait_for(lock, std::chrono::minutes(1), [&] { return waiting_ > 0; });
  }
  void release() {
    std::lock_guard<std::mutex> lock(m_);
    released_ = true;
    cv_.notify_all();
  }
  unsigned reads(block_address b) {
    std::lock_guard<std::mutex> lock(m_);
    return reads_[b];
  }

 private:
  pdata::block_io &inner_;
  std::mutex m_;
  std::condition_variable cv_;
  std::set<block_address> held_;
  std::map<block_address, unsigned> reads_;
  unsigned waiting_ = 0;
  bool released_ = false;
};

TEST(read_plan_io, reads_the_next_window_ahead_while_the_reader_works_on_this_one) {
  pdata::memory_block_io mem(256);
  stamp(mem, 256);
  gated_block_io gated(mem);
  std::vector<block_address> plan;
  for (block_address b = 0; b < 40; b++) plan.push_back((b * 37) % 200 + 20);  // 40 distinct blocks, scattered
  gated.hold({plan.begin() + 8, plan.begin() + 16});                           // the second window
  pdata::read_plan_io io(gated, {}, plan, 8);
  struct release_at_exit {  // so that a failed assertion does not leave the read ahead waiting
    gated_block_io &g;
    ~release_at_exit() { g.release(); }
  } guard{gated};
  pdata::block_buffer buf;
  io.read(plan[0], buf.raw(), 1);  // the first window, read on demand
  EXPECT_EQ(number_in(buf.raw()), plan[0]);
  ASSERT_TRUE(gated.a_held_read_arrives()) << "the second window was not read ahead";
  for (std::size_t i = 1; i < 8; i++) {  // meanwhile, the first window is served from memory
    io.read(plan[i], buf.raw(), 1);
    EXPECT_EQ(number_in(buf.raw()), plan[i]);
  }
  gated.release();
  for (std::size_t i = 8; i < plan.size(); i++) {
    io.read(plan[i], buf.raw(), 1);
    EXPECT_EQ(number_in(buf.raw()), plan[i]);
  }
  io.read(5, buf.raw(), 1);  // not in the plan: straight to the device
  EXPECT_EQ(number_in(buf.raw()), 5u);
  EXPECT_EQ(io.batched_blocks(), 40u);
  for (block_address b : plan) EXPECT_EQ(gated.reads(b), 1u) << "block " << b;
}

TEST(read_plan_io, a_reader_that_leaves_the_plan_is_served_right_and_every_read_ahead_ends_with_the_object) {
  pdata::memory_block_io mem(256);
  stamp(mem, 256);
  gated_block_io noted(mem);
  noted.release();
  std::vector<block_address> plan;
  for (block_address b = 0; b < 64; b++) plan.push_back(255 - b * 3);
  for (int stop_after : {0, 1, 9, 17, 40}) {
    pdata::read_plan_io io(noted, {}, plan, 8);
    pdata::block_buffer buf;
    // Every other plan entry, then blocks out of order: what is served is
    // always the block asked for.
    for (int i = 0; i < stop_after && i * 2 < 64; i++) {
      io.read(plan[i * 2], buf.raw(), 1);
      EXPECT_EQ(number_in(buf.raw()), plan[i * 2]);
    }
    for (block_address b : {plan[63], plan[0], block_address(1), plan[30]}) {
      io.read(b, buf.raw(), 1);
      EXPECT_EQ(number_in(buf.raw()), b);
    }
  }  // the destructor waits for the read in flight (TSan and ASan watch this)
}

}  // namespace
