// The block I/O seam: memory_block_io, file_block_io (on a temp file) and the
// fault-injecting decorator with its volatile write-back cache model.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "persistent-data/block_io.h"
#include "persistent-data/errors.h"
#include "support/test_support.h"

namespace {

using pdata::block_buffer;
using pdata::block_size;

block_buffer filled(unsigned char v) {
  block_buffer b;
  std::memset(b.raw(), v, block_size);
  return b;
}

// First byte of block b as read through `io` (blocks here are filled with one value).
unsigned char byte_of(pdata::block_io &io, pdata::block_address b) {
  block_buffer buf;
  io.read(b, buf.raw());
  for (std::size_t i = 1; i < block_size; i++)
    if (buf.data[i] != buf.data[0]) ADD_FAILURE() << "block " << b << " is not uniform";
  return buf.data[0];
}

bool all_zero(const block_buffer &b) {
  for (auto c : b.data)
    if (c) return false;
  return true;
}

//------------------------------------------------------------ memory_block_io

TEST(memory_block_io, blocks_never_written_read_as_zeroes) {
  pdata::memory_block_io io(8);
  EXPECT_EQ(io.nr_blocks(), 8u);
  block_buffer b = filled(0x77);
  io.read(7, b.raw());
  EXPECT_TRUE(all_zero(b));
}

TEST(memory_block_io, writes_read_back_and_do_not_touch_neighbours) {
  pdata::memory_block_io io(8);
  block_buffer w;
  for (std::size_t i = 0; i < block_size; i++) w.data[i] = static_cast<unsigned char>(i * 31 + 5);
  io.write(3, w.raw());
  block_buffer r;
  io.read(3, r.raw());
  EXPECT_EQ(std::memcmp(r.raw(), w.raw(), block_size), 0);
  EXPECT_EQ(byte_of(io, 2), 0);
  EXPECT_EQ(byte_of(io, 4), 0);
  // Overwrite.
  block_buffer w2 = filled(0xEE);
  io.write(3, w2.raw());
  EXPECT_EQ(byte_of(io, 3), 0xEE);
}

TEST(memory_block_io, multi_block_reads_and_writes_cover_consecutive_blocks) {
  pdata::memory_block_io io(6);
  std::vector<unsigned char> three(3 * block_size);
  for (std::size_t i = 0; i < three.size(); i++) three[i] = static_cast<unsigned char>(i / block_size + 1);
  io.write(2, three.data(), 3);
  EXPECT_EQ(byte_of(io, 1), 0);
  EXPECT_EQ(byte_of(io, 2), 1);
  EXPECT_EQ(byte_of(io, 3), 2);
  EXPECT_EQ(byte_of(io, 4), 3);
  EXPECT_EQ(byte_of(io, 5), 0);
  std::vector<unsigned char> back(3 * block_size, 0xFF);
  io.read(2, back.data(), 3);
  EXPECT_EQ(back, three);
}

TEST(memory_block_io, access_beyond_the_end_throws_io_error) {
  pdata::memory_block_io io(4);
  block_buffer b{};
  EXPECT_THROW(io.read(4, b.raw()), pdata::io_error);
  EXPECT_THROW(io.write(4, b.raw()), pdata::io_error);
  std::vector<unsigned char> two(2 * block_size);
  EXPECT_THROW(io.read(3, two.data(), 2), pdata::io_error);
  EXPECT_THROW(io.write(3, two.data(), 2), pdata::io_error);
  EXPECT_THROW(io.read(std::numeric_limits<uint64_t>::max(), b.raw()), pdata::io_error);
  // A range that wraps around 2^64 must not pass the check.
  EXPECT_THROW(io.read(2, two.data(), std::numeric_limits<std::size_t>::max()), pdata::io_error);
  EXPECT_NO_THROW(io.read(3, b.raw()));
}

TEST(memory_block_io, an_image_round_trips_and_is_rounded_down_to_whole_blocks) {
  std::vector<unsigned char> img(3 * block_size + 100, 0);
  img[block_size + 5] = 0x42;
  img[3 * block_size + 1] = 0x99;  // in the partial tail: dropped
  pdata::memory_block_io io(img);
  EXPECT_EQ(io.nr_blocks(), 3u);
  block_buffer b;
  io.read(1, b.raw());
  EXPECT_EQ(b.data[5], 0x42);
  auto out = io.image();
  ASSERT_EQ(out.size(), 3 * block_size);
  EXPECT_TRUE(std::equal(out.begin(), out.end(), img.begin()));
}

//-------------------------------------------------------------- file_block_io

class file_block_io_test : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.file("dev.img");
    int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, 5 * block_size + 123), 0);
    ::close(fd);
  }
  // `fd_writable` lets a test hand a read-write descriptor to an instance
  // told it is read-only, so only the instance's own check can refuse.
  std::unique_ptr<pdata::file_block_io> open_io(bool writable, bool fd_writable = false) {
    int fd = ::open(path_.c_str(), (writable || fd_writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    struct stat st;
    ::fstat(fd, &st);
    return std::make_unique<pdata::file_block_io>(fd, static_cast<uint64_t>(st.st_size), writable);
  }
  test::temp_dir dir_;
  std::string path_;
};

TEST_F(file_block_io_test, size_is_whole_blocks_and_unwritten_blocks_read_zero) {
  auto io = open_io(true);
  EXPECT_EQ(io->nr_blocks(), 5u);
  EXPECT_TRUE(io->writable());
  block_buffer b = filled(0x33);
  io->read(4, b.raw());
  EXPECT_TRUE(all_zero(b));
}

TEST_F(file_block_io_test, writes_reach_the_file_at_block_offsets_and_read_back) {
  {
    auto io = open_io(true);
    block_buffer w;
    for (std::size_t i = 0; i < block_size; i++) w.data[i] = static_cast<unsigned char>(i ^ 0x5A);
    io->write(2, w.raw());
    io->flush();
    block_buffer r;
    io->read(2, r.raw());
    EXPECT_EQ(std::memcmp(r.raw(), w.raw(), block_size), 0);
    EXPECT_EQ(byte_of(*io, 1), 0);
    EXPECT_EQ(byte_of(*io, 3), 0);
  }
  auto bytes = test::read_binary(path_);
  ASSERT_EQ(bytes.size(), 5 * block_size + 123);
  for (std::size_t i = 0; i < block_size; i++) ASSERT_EQ(bytes[2 * block_size + i], static_cast<unsigned char>(i ^ 0x5A));
  EXPECT_EQ(bytes[2 * block_size - 1], 0);
  EXPECT_EQ(bytes[3 * block_size], 0);
}

TEST_F(file_block_io_test, access_beyond_the_last_whole_block_throws_io_error) {
  auto io = open_io(true);
  block_buffer b{};
  EXPECT_THROW(io->read(5, b.raw()), pdata::io_error);
  EXPECT_THROW(io->write(5, b.raw()), pdata::io_error);
  std::vector<unsigned char> two(2 * block_size);
  EXPECT_THROW(io->read(4, two.data(), 2), pdata::io_error);
  // Nothing was appended to the file.
  EXPECT_EQ(test::read_binary(path_).size(), 5 * block_size + 123);
}

TEST_F(file_block_io_test, a_read_only_instance_refuses_writes_and_leaves_the_file_alone) {
  auto before = test::read_binary(path_);
  auto io = open_io(false);
  EXPECT_FALSE(io->writable());
  block_buffer b = filled(0x11);
  EXPECT_THROW(io->write(0, b.raw()), pdata::io_error);
  EXPECT_NO_THROW(io->flush());
  io.reset();
  EXPECT_EQ(test::read_binary(path_), before);

  // Even when the descriptor itself would allow writing.
  auto rw_fd = open_io(false, true);
  EXPECT_FALSE(rw_fd->writable());
  EXPECT_THROW(rw_fd->write(1, b.raw()), pdata::io_error);
  std::vector<unsigned char> two(2 * block_size, 0x22);
  EXPECT_THROW(rw_fd->write(0, two.data(), 2), pdata::io_error);
  rw_fd.reset();
  EXPECT_EQ(test::read_binary(path_), before);
}

//--------------------------------------------------- fault_injecting_block_io

TEST(fault_injecting_block_io, passes_reads_and_writes_through_when_no_fault_is_set) {
  pdata::memory_block_io inner(4);
  pdata::fault_injecting_block_io io(inner);
  block_buffer w = filled(9);
  io.write(1, w.raw());
  EXPECT_EQ(byte_of(inner, 1), 9);
  EXPECT_EQ(byte_of(io, 1), 9);
  EXPECT_EQ(io.writes(), 1u);
  EXPECT_EQ(io.reads(), 1u);
}

TEST(fault_injecting_block_io, the_nth_read_fails_once_counting_every_block) {
  pdata::memory_block_io inner(8);
  pdata::fault_injecting_block_io io(inner);
  io.fail_nth_read(5);
  block_buffer b;
  std::vector<unsigned char> two(2 * block_size);
  EXPECT_NO_THROW(io.read(0, b.raw()));        // read 1
  EXPECT_NO_THROW(io.read(1, two.data(), 2));  // reads 2, 3
  EXPECT_THROW(io.read(4, two.data(), 2), pdata::io_error);  // reads 4, 5: the second block fails
  EXPECT_EQ(io.reads(), 5u);
  EXPECT_NO_THROW(io.read(5, b.raw()));        // later reads succeed
  EXPECT_NO_THROW(io.read(6, two.data(), 2));
}

TEST(fault_injecting_block_io, the_nth_write_fails_and_does_not_reach_the_device) {
  pdata::memory_block_io inner(8);
  pdata::fault_injecting_block_io io(inner);
  io.fail_nth_write(2);
  block_buffer a = filled(1), b = filled(2), c = filled(3);
  EXPECT_NO_THROW(io.write(0, a.raw()));
  EXPECT_THROW(io.write(1, b.raw()), pdata::io_error);
  EXPECT_NO_THROW(io.write(2, c.raw()));
  EXPECT_EQ(byte_of(inner, 0), 1);
  EXPECT_EQ(byte_of(inner, 1), 0);
  EXPECT_EQ(byte_of(inner, 2), 3);
}

TEST(fault_injecting_block_io, reads_of_a_chosen_block_always_fail_and_others_succeed) {
  pdata::memory_block_io inner(8);
  pdata::fault_injecting_block_io io(inner);
  io.fail_reads_of(3);
  block_buffer b;
  for (int i = 0; i < 3; i++) EXPECT_THROW(io.read(3, b.raw()), pdata::io_error);
  std::vector<unsigned char> three(3 * block_size);
  EXPECT_THROW(io.read(2, three.data(), 3), pdata::io_error);
  EXPECT_NO_THROW(io.read(2, b.raw()));
  EXPECT_NO_THROW(io.read(4, b.raw()));
  // Writes to it are fine unless asked otherwise.
  EXPECT_NO_THROW(io.write(3, b.raw()));
  io.fail_writes_of(5);
  EXPECT_THROW(io.write(5, b.raw()), pdata::io_error);
}

TEST(fault_injecting_block_io, volatile_cache_holds_writes_until_flush) {
  pdata::memory_block_io inner(8);
  pdata::fault_injecting_block_io io(inner);
  io.volatile_cache(true);
  block_buffer a = filled(0xA1), b = filled(0xB2);
  io.write(1, a.raw());
  io.write(2, b.raw());
  EXPECT_EQ(io.pending_writes(), 2u);
  // Visible through the decorator, not on the device.
  EXPECT_EQ(byte_of(io, 1), 0xA1);
  EXPECT_EQ(byte_of(io, 2), 0xB2);
  EXPECT_EQ(byte_of(inner, 1), 0);
  EXPECT_EQ(byte_of(inner, 2), 0);
  unsigned inner_flushes = inner.flushes();
  io.flush();
  EXPECT_EQ(io.pending_writes(), 0u);
  EXPECT_EQ(byte_of(inner, 1), 0xA1);
  EXPECT_EQ(byte_of(inner, 2), 0xB2);
  EXPECT_EQ(inner.flushes(), inner_flushes + 1);
  EXPECT_EQ(io.flushes(), 1u);
}

TEST(fault_injecting_block_io, the_newest_unflushed_write_of_a_block_is_what_reads_see) {
  pdata::memory_block_io inner(4);
  pdata::fault_injecting_block_io io(inner);
  io.volatile_cache(true);
  block_buffer a = filled(1), b = filled(2);
  io.write(0, a.raw());
  io.write(0, b.raw());
  EXPECT_EQ(byte_of(io, 0), 2);
  io.flush();
  EXPECT_EQ(byte_of(inner, 0), 2);
}

TEST(fault_injecting_block_io, crash_drops_every_unflushed_write) {
  pdata::memory_block_io inner(8);
  pdata::fault_injecting_block_io io(inner);
  io.volatile_cache(true);
  block_buffer a = filled(1), b = filled(2), c = filled(3);
  io.write(0, a.raw());
  io.flush();  // durable
  io.write(0, b.raw());
  io.write(5, c.raw());
  EXPECT_EQ(io.crash(), 2u);
  EXPECT_EQ(io.pending_writes(), 0u);
  EXPECT_EQ(byte_of(inner, 0), 1);
  EXPECT_EQ(byte_of(inner, 5), 0);
  // After the crash the decorator reads what the device holds.
  EXPECT_EQ(byte_of(io, 0), 1);
  EXPECT_EQ(byte_of(io, 5), 0);
}

TEST(fault_injecting_block_io, crash_keeping_everything_applies_writes_in_issue_order) {
  pdata::memory_block_io inner(8);
  pdata::fault_injecting_block_io io(inner);
  io.volatile_cache(true);
  block_buffer a = filled(1), b = filled(2), c = filled(3);
  io.write(4, a.raw());
  io.write(6, c.raw());
  io.write(4, b.raw());
  EXPECT_EQ(io.crash(1.0, 99), 0u);
  EXPECT_EQ(byte_of(inner, 4), 2);
  EXPECT_EQ(byte_of(inner, 6), 3);
}

std::vector<unsigned char> crash_half(uint64_t seed, std::size_t *lost) {
  pdata::memory_block_io inner(64);
  pdata::fault_injecting_block_io io(inner);
  io.volatile_cache(true);
  for (unsigned i = 0; i < 64; i++) {
    block_buffer b = filled(static_cast<unsigned char>(i + 1));
    io.write(i, b.raw());
  }
  *lost = io.crash(0.5, seed);
  return inner.image();
}

TEST(fault_injecting_block_io, crash_with_a_fraction_keeps_a_subset_decided_by_the_seed) {
  std::size_t lost1 = 0, lost2 = 0, lost3 = 0;
  auto img1 = crash_half(42, &lost1);
  auto img2 = crash_half(42, &lost2);
  auto img3 = crash_half(43, &lost3);
  EXPECT_EQ(img1, img2);
  EXPECT_EQ(lost1, lost2);
  EXPECT_NE(img1, img3);
  // A real subset: some kept, some lost, and the count reported matches.
  std::size_t kept = 0;
  for (unsigned i = 0; i < 64; i++) {
    unsigned char v = img1[i * block_size];
    EXPECT_TRUE(v == 0 || v == i + 1) << i;
    if (v) kept++;
  }
  EXPECT_GT(kept, 0u);
  EXPECT_GT(lost1, 0u);
  EXPECT_EQ(kept + lost1, 64u);
}

TEST(fault_injecting_block_io, writes_beyond_the_device_are_refused_even_when_cached) {
  pdata::memory_block_io inner(2);
  pdata::fault_injecting_block_io io(inner);
  io.volatile_cache(true);
  block_buffer b{};
  EXPECT_THROW(io.write(2, b.raw()), pdata::io_error);
  EXPECT_EQ(io.pending_writes(), 0u);
  EXPECT_THROW(io.read(2, b.raw()), pdata::io_error);
}

}  // namespace
