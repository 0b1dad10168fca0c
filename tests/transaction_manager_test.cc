// Unit tests of the transaction manager (lib/persistent-data/
// transaction_manager.cc): shadowing copies a block committed in an earlier
// transaction on its first write and writes in place afterwards, a shared
// block is copied and the caller told, reference counts follow, and commit
// (flush_blocks) writes every modified block checksummed and stamped with its
// own number, nothing before it.
#include "persistent-data/transaction_manager.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "persistent-data/block_io.h"
#include "persistent-data/checksum.h"
#include "persistent-data/endian.h"
#include "persistent-data/errors.h"
#include "persistent-data/space_map.h"
#include "support/metadata_support.h"

namespace {

using pdata::block_address;
constexpr auto salt = pdata::checksum_salt::btree_node;

// A metadata device in memory with its space map (block 0 taken, as the
// superblock's) and a transaction manager over both.
struct pool {
  explicit pool(block_address nr_blocks) : mem(nr_blocks), io(mem), sm(nr_blocks), tm(io, sm) { sm.set(0, 1); }
  void commit() {
    tm.flush_blocks();
    tm.end_transaction();
  }
  // The block as the device holds it.
  std::vector<unsigned char> on_disk(block_address b) {
    std::vector<unsigned char> buf(pdata::block_size);
    mem.read(b, buf.data(), 1);
    return buf;
  }
  pdata::memory_block_io mem;
  test::counting_block_io io;
  pdata::space_map sm;
  pdata::transaction_manager tm;
};

// A new block holding `fill` in bytes 100..199.
block_address new_filled(pdata::transaction_manager &tm, unsigned char fill) {
  block_address b;
  unsigned char *p = tm.new_block(b, salt);
  std::memset(p + 100, fill, 100);
  return b;
}

TEST(transaction_manager, a_new_block_is_zeroed_counted_once_and_writable_in_place) {
  pool p(16);
  block_address b;
  unsigned char *data = p.tm.new_block(b, salt);
  EXPECT_NE(b, 0u) << "block 0 is taken";
  EXPECT_EQ(p.tm.ref_count(b), 1u);
  EXPECT_TRUE(p.tm.is_fresh(b));
  for (std::size_t i = 0; i < pdata::block_size; i++) ASSERT_EQ(data[i], 0) << i;
  block_address out = 0;
  bool shared = true;
  unsigned char *again = p.tm.shadow(b, salt, out, shared);
  EXPECT_EQ(out, b) << "made in this transaction: shadowing it copies nothing";
  EXPECT_EQ(again, data);
  EXPECT_FALSE(shared);
  EXPECT_EQ(p.sm.nr_allocated(), 2u);
}

TEST(transaction_manager, a_block_written_in_the_previous_transaction_is_copied_on_its_first_write_only) {
  pool p(16);
  const block_address b = new_filled(p.tm, 0xab);
  p.commit();
  EXPECT_FALSE(p.tm.is_fresh(b));

  block_address copy = 0;
  bool shared = true;
  unsigned char *data = p.tm.shadow(b, salt, copy, shared);
  EXPECT_NE(copy, b) << "the committed block is never overwritten";
  EXPECT_FALSE(shared);
  EXPECT_EQ(data[100], 0xab) << "the copy starts as the original";
  EXPECT_EQ(data[199], 0xab);
  EXPECT_EQ(p.tm.ref_count(copy), 1u);
  EXPECT_EQ(p.tm.ref_count(b), 0u) << "the copy took over the original's only reference";
  data[150] = 0xcd;

  // Again in the same transaction: the copy itself, changed in place.
  const block_address allocated = p.sm.nr_allocated();
  block_address again = 0;
  unsigned char *data2 = p.tm.shadow(copy, salt, again, shared);
  EXPECT_EQ(again, copy);
  EXPECT_EQ(data2[150], 0xcd);
  EXPECT_EQ(p.sm.nr_allocated(), allocated);

  // The original is free but stays intact until the next commit: no new
  // block of this transaction lands on it.
  for (int i = 0; i < 10; i++) EXPECT_NE(new_filled(p.tm, 1), b);
  EXPECT_EQ(p.on_disk(b)[100], 0xab);
  p.commit();
  EXPECT_EQ(p.on_disk(copy)[150], 0xcd);
  EXPECT_EQ(p.on_disk(copy)[100], 0xab);
}

TEST(transaction_manager, a_shared_block_is_copied_even_when_fresh_and_the_caller_is_told) {
  pool p(16);
  const block_address b = new_filled(p.tm, 0x11);
  p.tm.inc(b);  // a second reference (a snapshot's)
  EXPECT_EQ(p.tm.ref_count(b), 2u);
  block_address copy = 0;
  bool shared = false;
  unsigned char *data = p.tm.shadow(b, salt, copy, shared);
  EXPECT_TRUE(shared) << "the caller must count what the copy references";
  EXPECT_NE(copy, b);
  EXPECT_EQ(data[120], 0x11);
  EXPECT_EQ(p.tm.ref_count(b), 1u);
  EXPECT_EQ(p.tm.ref_count(copy), 1u);
}

TEST(transaction_manager, reads_see_this_transactions_changes_and_the_device_sees_them_only_at_commit) {
  pool p(16);
  const block_address b = new_filled(p.tm, 0x5a);
  EXPECT_EQ(p.tm.read(b)->raw()[150], 0x5a);
  EXPECT_EQ(p.on_disk(b)[150], 0) << "nothing is written before the commit";
  EXPECT_EQ(p.io.write_requests, 0u);
  p.tm.flush_blocks();
  const auto disk = p.on_disk(b);
  EXPECT_EQ(disk[150], 0x5a);
  EXPECT_EQ(pdata::load_le64(disk.data() + 8), b) << "stamped with its own block number";
  EXPECT_TRUE(pdata::checksum_ok(disk.data(), salt));
  EXPECT_FALSE(pdata::checksum_ok(disk.data(), pdata::checksum_salt::bitmap)) << "with the salt it was made with";
}

TEST(transaction_manager, a_block_whose_last_reference_goes_in_its_own_transaction_is_never_written) {
  pool p(16);
  const block_address kept = new_filled(p.tm, 0x22), dropped = new_filled(p.tm, 0x33);
  p.tm.dec(dropped);
  EXPECT_EQ(p.tm.ref_count(dropped), 0u);
  p.commit();
  EXPECT_EQ(p.on_disk(kept)[100], 0x22);
  EXPECT_EQ(p.on_disk(dropped), std::vector<unsigned char>(pdata::block_size, 0));
  EXPECT_EQ(p.sm.nr_allocated(), 2u);
}

TEST(transaction_manager, commit_writes_consecutive_blocks_in_one_request) {
  pool p(64);
  std::vector<block_address> blocks;
  for (int i = 0; i < 8; i++) blocks.push_back(new_filled(p.tm, static_cast<unsigned char>(i + 1)));
  for (std::size_t i = 1; i < blocks.size(); i++) ASSERT_EQ(blocks[i], blocks[i - 1] + 1);
  p.commit();
  EXPECT_EQ(p.io.write_requests, 1u);
  for (std::size_t i = 0; i < blocks.size(); i++) EXPECT_EQ(p.on_disk(blocks[i])[100], i + 1);
}

TEST(transaction_manager, only_blocks_of_this_transaction_are_writable) {
  pool p(16);
  const block_address b = new_filled(p.tm, 1);
  EXPECT_NO_THROW(p.tm.writable(b));
  p.commit();
  EXPECT_THROW(p.tm.writable(b), pdata::internal_error);
  block_address out;
  bool shared;
  p.tm.shadow(b, salt, out, shared);
  EXPECT_NO_THROW(p.tm.writable(out));
  block_address unreferenced = 9;
  EXPECT_THROW(p.tm.shadow(unreferenced, salt, out, shared), pdata::internal_error);
}

TEST(transaction_manager, running_out_of_blocks_is_an_out_of_metadata_space_error) {
  pool p(4);
  for (int i = 0; i < 3; i++) new_filled(p.tm, 1);
  block_address b;
  EXPECT_THROW(p.tm.new_block(b, salt), pdata::out_of_metadata_space);
}

}  // namespace
