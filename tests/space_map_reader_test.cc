// read_space_map: the kernel fixtures' metadata and data space maps, and
// small space maps built by hand (index, bitmap with the high-bit-first 2-bit
// encoding, overflow tree for counts of 3 and more).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "persistent-data/block_cache.h"
#include "persistent-data/btree_disk.h"
#include "persistent-data/checksum.h"
#include "persistent-data/endian.h"
#include "persistent-data/space_map_disk.h"
#include "persistent-data/space_map_reader.h"
#include "support/metadata_support.h"
#include "support/test_support.h"
#include "thin/format/superblock.h"

namespace {

using pdata::block_address;

using problem_list = test::space_map_problems;

// The spec's decoding, written out independently of bitmap_get().
uint32_t spec_entry(const unsigned char *data, uint32_t e) {
  unsigned char byte = data[e / 4];
  unsigned sh = 2 * (e % 4);
  return static_cast<uint32_t>((((byte >> sh) & 1) << 1) | ((byte >> (sh + 1)) & 1));
}

std::unique_ptr<pdata::file_block_io> open_fixture(const std::string &scenario) {
  return test::open_read_only(test::fixture_image(scenario));
}

//---------------------------------------------------------- bitmap encoding

TEST(space_map_bitmap, counts_are_stored_high_bit_first_so_count_1_in_entry_0_is_byte_0x02) {
  unsigned char data[4] = {};
  pdata::bitmap_set(data, 0, 1);
  EXPECT_EQ(data[0], 0x02);
  pdata::bitmap_set(data, 0, 2);
  EXPECT_EQ(data[0], 0x01);
  pdata::bitmap_set(data, 0, 3);
  EXPECT_EQ(data[0], 0x03);
  pdata::bitmap_set(data, 0, 0);
  EXPECT_EQ(data[0], 0x00);
  pdata::bitmap_set(data, 3, 1);  // entry 3 uses bits 6 and 7
  EXPECT_EQ(data[0], 0x80);
  pdata::bitmap_set(data, 4, 2);  // entry 4 is in the next byte
  EXPECT_EQ(data[1], 0x01);
  for (uint32_t e = 0; e < 16; e++) pdata::bitmap_set(data, e, 1);
  for (unsigned char c : data) EXPECT_EQ(c, 0xAA);
  for (uint32_t e = 0; e < 16; e++) {
    EXPECT_EQ(pdata::bitmap_get(data, e), 1u);
    EXPECT_EQ(spec_entry(data, e), 1u);
  }
}

TEST(space_map_bitmap, set_and_get_round_trip_every_value_in_every_position) {
  unsigned char data[8] = {};
  for (uint32_t e = 0; e < 32; e++) pdata::bitmap_set(data, e, (e * 7 + 1) % 4);
  for (uint32_t e = 0; e < 32; e++) {
    EXPECT_EQ(pdata::bitmap_get(data, e), (e * 7 + 1) % 4) << e;
    EXPECT_EQ(spec_entry(data, e), (e * 7 + 1) % 4) << e;
  }
}

//------------------------------------------------------- kernel fixtures

class space_map_fixture : public ::testing::TestWithParam<std::string> {};

TEST_P(space_map_fixture, the_metadata_space_map_agrees_with_its_root_and_the_bitmaps) {
  auto io = open_fixture(GetParam());
  thin::superblock sb = thin::read_superblock(*io);
  pdata::disk_sm_root root = sb.metadata_sm_root();
  pdata::block_cache cache(*io);
  problem_list probs;
  auto sm = pdata::read_space_map(cache, root, pdata::space_map_kind::metadata, probs);
  EXPECT_TRUE(probs.all.empty()) << probs.text();
  EXPECT_TRUE(sm.complete);
  EXPECT_EQ(sm.nr_blocks, root.nr_blocks.get());
  EXPECT_EQ(sm.counts.size(), root.nr_blocks.get());
  EXPECT_LE(sm.nr_blocks, io->nr_blocks());
  EXPECT_EQ(sm.nr_allocated_root, root.nr_allocated.get());
  EXPECT_EQ(sm.counts.nr_allocated(), root.nr_allocated.get());
  EXPECT_EQ(sm.counts.get(0), 1u) << "the superblock is counted once";

  // Its own blocks: the index block and one bitmap per 16320 blocks (plus
  // any overflow-tree nodes), each allocated in the map itself.
  const block_address nr_bitmaps = (sm.nr_blocks + pdata::entries_per_bitmap - 1) / pdata::entries_per_bitmap;
  EXPECT_GE(sm.own_blocks.size(), 1 + nr_bitmaps);
  std::set<block_address> own(sm.own_blocks.begin(), sm.own_blocks.end());
  EXPECT_EQ(own.size(), sm.own_blocks.size()) << "own blocks are listed once each";
  EXPECT_TRUE(own.count(root.bitmap_root.get()));
  for (block_address b : own) EXPECT_GE(sm.counts.get(b), 1u) << "space map block " << b;

  // Decode every bitmap with the spec's bit order and compare.
  block_address index_block = root.bitmap_root.get();
  pdata::block_buffer idx_buf;
  io->read(index_block, idx_buf.raw());
  ASSERT_TRUE(pdata::checksum_ok(idx_buf.raw(), pdata::checksum_salt::index_block));
  auto *idx = reinterpret_cast<const pdata::metadata_index_disk *>(idx_buf.raw());
  for (block_address i = 0; i < nr_bitmaps; i++) {
    block_address bb = idx->index[i].blocknr.get();
    pdata::block_buffer bm;
    io->read(bb, bm.raw());
    ASSERT_TRUE(pdata::checksum_ok(bm.raw(), pdata::checksum_salt::bitmap)) << bb;
    const unsigned char *data = bm.raw() + 16;
    if (i == 0) {
      EXPECT_EQ(data[0] & 0x03, 0x02) << "count 1 for block 0 is encoded as 0b10 in the low bits";
    }
    for (uint32_t e = 0; e < pdata::entries_per_bitmap; e++) {
      block_address b = i * pdata::entries_per_bitmap + e;
      if (b >= sm.nr_blocks) break;
      ASSERT_EQ(spec_entry(data, e), std::min<uint32_t>(sm.counts.get(b), 3)) << "block " << b;
    }
  }
}

TEST_P(space_map_fixture, the_data_space_map_agrees_with_its_root) {
  auto io = open_fixture(GetParam());
  thin::superblock sb = thin::read_superblock(*io);
  pdata::disk_sm_root root = sb.data_sm_root();
  pdata::block_cache cache(*io);
  problem_list probs;
  auto sm = pdata::read_space_map(cache, root, pdata::space_map_kind::data, probs);
  EXPECT_FALSE(probs.any_fatal()) << probs.text();
  EXPECT_TRUE(sm.complete);
  EXPECT_EQ(sm.nr_blocks, root.nr_blocks.get());
  EXPECT_EQ(sm.counts.size(), root.nr_blocks.get());
  EXPECT_EQ(sm.counts.nr_allocated(), root.nr_allocated.get());
  EXPECT_GT(sm.counts.nr_allocated(), 0u) << "every fixture has mapped data";

  // Its blocks (index-btree nodes, bitmaps, overflow-tree nodes) are metadata
  // blocks, allocated in the metadata space map.
  problem_list mprobs;
  auto meta = pdata::read_space_map(cache, sb.metadata_sm_root(), pdata::space_map_kind::metadata, mprobs);
  const block_address nr_bitmaps = (sm.nr_blocks + pdata::entries_per_bitmap - 1) / pdata::entries_per_bitmap;
  EXPECT_GE(sm.own_blocks.size(), 1 + nr_bitmaps);
  for (block_address b : sm.own_blocks) {
    EXPECT_LT(b, io->nr_blocks());
    EXPECT_GE(meta.counts.get(b), 1u) << "data space map block " << b;
  }
}

INSTANTIATE_TEST_SUITE_P(kernel, space_map_fixture, ::testing::ValuesIn(test::kernel_scenarios()), test::scenario_name);

//--------------------------------------------------- hand-built space maps

void write_leaf(pdata::memory_block_io &io, block_address loc, uint32_t vsize, const std::vector<uint64_t> &keys,
                const std::vector<std::vector<unsigned char>> &values) {
  pdata::block_buffer b{};
  unsigned char *p = b.raw();
  const uint32_t max = pdata::btree_max_entries(vsize);
  pdata::store_le32(p + 4, pdata::leaf_node);
  pdata::store_le64(p + 8, loc);
  pdata::store_le32(p + 16, static_cast<uint32_t>(keys.size()));
  pdata::store_le32(p + 20, max);
  pdata::store_le32(p + 24, vsize);
  for (std::size_t i = 0; i < keys.size(); i++) {
    pdata::store_le64(p + 32 + 8 * i, keys[i]);
    std::memcpy(p + 32 + 8 * std::size_t(max) + vsize * i, values[i].data(), vsize);
  }
  pdata::stamp_checksum(p, pdata::checksum_salt::btree_node);
  io.write(loc, p);
}

std::vector<unsigned char> le32_value(uint32_t v) {
  std::vector<unsigned char> out(4);
  pdata::store_le32(out.data(), v);
  return out;
}

void write_bitmap(pdata::memory_block_io &io, block_address loc, const std::vector<uint32_t> &entries) {
  pdata::block_buffer b{};
  pdata::store_le64(b.raw() + 8, loc);
  for (uint32_t e = 0; e < entries.size(); e++) pdata::bitmap_set(b.raw() + 16, e, entries[e]);
  pdata::stamp_checksum(b.raw(), pdata::checksum_salt::bitmap);
  io.write(loc, b.raw());
}

// A 20-block metadata space map: index block 1, bitmap 2, overflow leaf 3.
// Counts: blocks 0..3 -> 1, block 5 -> 7 (overflow), block 6 -> 2.
struct small_metadata_sm {
  pdata::memory_block_io io{20};
  pdata::disk_sm_root root{};

  explicit small_metadata_sm(bool overflow_entry = true, std::vector<uint32_t> extra = {}) {
    std::vector<uint32_t> entries = {1, 1, 1, 1, 0, 3, 2};
    for (auto v : extra) entries.push_back(v);
    write_bitmap(io, 2, entries);
    if (overflow_entry)
      write_leaf(io, 3, 4, {5}, {le32_value(7)});
    else
      write_leaf(io, 3, 4, {}, {});
    pdata::block_buffer idx{};
    auto *d = reinterpret_cast<pdata::metadata_index_disk *>(idx.raw());
    d->blocknr.set(1);
    d->index[0].blocknr.set(2);
    d->index[0].nr_free.set(14);
    d->index[0].none_free_before.set(4);
    pdata::stamp_checksum(idx.raw(), pdata::checksum_salt::index_block);
    io.write(1, idx.raw());
    root.nr_blocks.set(20);
    root.nr_allocated.set(6);
    root.bitmap_root.set(1);
    root.ref_count_root.set(3);
  }
};

TEST(space_map_reader, a_hand_built_metadata_space_map_reads_back_every_count) {
  small_metadata_sm s;
  pdata::block_cache cache(s.io);
  problem_list probs;
  auto sm = pdata::read_space_map(cache, s.root, pdata::space_map_kind::metadata, probs);
  EXPECT_TRUE(probs.all.empty()) << probs.text();
  EXPECT_TRUE(sm.complete);
  EXPECT_EQ(sm.nr_blocks, 20u);
  EXPECT_EQ(sm.nr_allocated_root, 6u);
  const uint32_t want[20] = {1, 1, 1, 1, 0, 7, 2};
  for (block_address b = 0; b < 20; b++) EXPECT_EQ(sm.counts.get(b), want[b]) << b;
  EXPECT_EQ(sm.counts.nr_allocated(), 6u);
  std::set<block_address> own(sm.own_blocks.begin(), sm.own_blocks.end());
  EXPECT_EQ(own, (std::set<block_address>{1, 2, 3}));
}

TEST(space_map_reader, a_bitmap_value_of_3_without_an_overflow_entry_is_fatal) {
  small_metadata_sm s(false);
  pdata::block_cache cache(s.io);
  problem_list probs;
  auto sm = pdata::read_space_map(cache, s.root, pdata::space_map_kind::metadata, probs);
  EXPECT_TRUE(probs.any_fatal()) << probs.text();
  EXPECT_FALSE(sm.complete);
  EXPECT_NE(probs.text().find("block 5"), std::string::npos) << probs.text();
}

TEST(space_map_reader, entries_set_past_the_end_of_the_space_map_are_reported) {
  // 20 blocks, but entry 25 of the bitmap is in use.
  std::vector<uint32_t> extra(19, 0);
  extra[18] = 1;  // entry 7 + 18 = 25
  small_metadata_sm s(true, extra);
  pdata::block_cache cache(s.io);
  problem_list probs;
  auto sm = pdata::read_space_map(cache, s.root, pdata::space_map_kind::metadata, probs);
  ASSERT_EQ(probs.all.size(), 1u) << probs.text();
  EXPECT_FALSE(probs.all[0].fatal);
  EXPECT_EQ(sm.counts.nr_allocated(), 6u);
}

TEST(space_map_reader, a_bitmap_with_a_bad_checksum_is_fatal_and_names_the_block) {
  small_metadata_sm s;
  pdata::block_buffer b;
  s.io.read(2, b.raw());
  b.data[100] ^= 0x04;
  s.io.write(2, b.raw());
  pdata::block_cache cache(s.io);
  problem_list probs;
  auto sm = pdata::read_space_map(cache, s.root, pdata::space_map_kind::metadata, probs);
  ASSERT_TRUE(probs.any_fatal()) << probs.text();
  EXPECT_FALSE(sm.complete);
  EXPECT_EQ(probs.all[0].block, 2u);
}

TEST(space_map_reader, an_index_block_with_a_bad_checksum_is_fatal) {
  small_metadata_sm s;
  pdata::block_buffer b;
  s.io.read(1, b.raw());
  b.data[40] ^= 0x01;
  s.io.write(1, b.raw());
  pdata::block_cache cache(s.io);
  problem_list probs;
  auto sm = pdata::read_space_map(cache, s.root, pdata::space_map_kind::metadata, probs);
  ASSERT_TRUE(probs.any_fatal()) << probs.text();
  EXPECT_FALSE(sm.complete);
  EXPECT_EQ(probs.all[0].block, 1u);
}

TEST(space_map_reader, an_understated_free_count_is_a_non_fatal_hint_problem) {
  small_metadata_sm s;
  pdata::block_buffer b;
  s.io.read(1, b.raw());
  auto *d = reinterpret_cast<pdata::metadata_index_disk *>(b.raw());
  d->index[0].nr_free.set(3);  // 14 are free
  pdata::stamp_checksum(b.raw(), pdata::checksum_salt::index_block);
  s.io.write(1, b.raw());
  pdata::block_cache cache(s.io);
  problem_list probs;
  auto sm = pdata::read_space_map(cache, s.root, pdata::space_map_kind::metadata, probs);
  ASSERT_EQ(probs.all.size(), 1u) << probs.text();
  EXPECT_FALSE(probs.all[0].fatal);
  EXPECT_TRUE(sm.complete);
  EXPECT_EQ(sm.counts.get(5), 7u);
}

TEST(space_map_reader, a_hand_built_data_space_map_uses_an_index_btree) {
  // 30000 data blocks: two bitmaps (blocks 5 and 6), index leaf 4, empty
  // overflow leaf 7.
  pdata::memory_block_io io(10);
  std::vector<uint32_t> first(3, 0);
  first[0] = 1;
  first[2] = 2;
  write_bitmap(io, 5, first);
  std::vector<uint32_t> second(11, 0);
  second[10] = 1;  // data block 16320 + 10
  write_bitmap(io, 6, second);
  auto entry = [](block_address bitmap, uint32_t nr_free) {
    std::vector<unsigned char> v(16);
    pdata::store_le64(v.data(), bitmap);
    pdata::store_le32(v.data() + 8, nr_free);
    pdata::store_le32(v.data() + 12, 0);
    return v;
  };
  write_leaf(io, 4, 16, {0, 1}, {entry(5, 16318), entry(6, 30000 - 16320 - 1)});
  write_leaf(io, 7, 4, {}, {});
  pdata::disk_sm_root root{};
  root.nr_blocks.set(30000);
  root.nr_allocated.set(3);
  root.bitmap_root.set(4);
  root.ref_count_root.set(7);

  pdata::block_cache cache(io);
  problem_list probs;
  auto sm = pdata::read_space_map(cache, root, pdata::space_map_kind::data, probs);
  EXPECT_TRUE(probs.all.empty()) << probs.text();
  EXPECT_TRUE(sm.complete);
  EXPECT_EQ(sm.counts.get(0), 1u);
  EXPECT_EQ(sm.counts.get(1), 0u);
  EXPECT_EQ(sm.counts.get(2), 2u);
  EXPECT_EQ(sm.counts.get(16330), 1u);
  EXPECT_EQ(sm.counts.nr_allocated(), 3u);
  std::set<block_address> own(sm.own_blocks.begin(), sm.own_blocks.end());
  EXPECT_EQ(own, (std::set<block_address>{4, 5, 6, 7}));
}

TEST(space_map_reader, a_missing_bitmap_in_the_data_index_is_fatal) {
  pdata::memory_block_io io(10);
  write_bitmap(io, 5, {1});
  std::vector<unsigned char> e(16, 0);
  pdata::store_le64(e.data(), 5);
  pdata::store_le32(e.data() + 8, 16319);
  write_leaf(io, 4, 16, {0}, {e});  // bitmap 1 has no entry
  write_leaf(io, 7, 4, {}, {});
  pdata::disk_sm_root root{};
  root.nr_blocks.set(20000);
  root.nr_allocated.set(1);
  root.bitmap_root.set(4);
  root.ref_count_root.set(7);
  pdata::block_cache cache(io);
  problem_list probs;
  auto sm = pdata::read_space_map(cache, root, pdata::space_map_kind::data, probs);
  EXPECT_TRUE(probs.any_fatal()) << probs.text();
  EXPECT_FALSE(sm.complete);
}

}  // namespace
