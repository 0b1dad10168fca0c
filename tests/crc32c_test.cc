// CRC-32C as persistent-data uses it (spec section 1.1): the raw register
// from seed 0xFFFFFFFF, no final inversion, XOR a per-block-type salt. Also
// spot-checks the on-disk superblock layout (spec section 2) by encoding one
// and reading the bytes back at the spec's offsets.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "persistent-data/block.h"
#include "persistent-data/btree_disk.h"
#include "persistent-data/btree_node.h"
#include "persistent-data/checksum.h"
#include "persistent-data/crc32c.h"
#include "persistent-data/endian.h"
#include "persistent-data/space_map_disk.h"
#include "thin/format/superblock.h"

namespace {

// Bit-at-a-time reference (reflected polynomial 0x82F63B78), independent of
// both implementations under test.
uint32_t crc32c_bitwise(uint32_t crc, const unsigned char *p, std::size_t len) {
  while (len--) {
    crc ^= *p++;
    for (int k = 0; k < 8; k++) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
  }
  return crc;
}

uint64_t le64_at(const unsigned char *p, std::size_t off) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[off + static_cast<std::size_t>(i)];
  return v;
}

uint32_t le32_at(const unsigned char *p, std::size_t off) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--) v = (v << 8) | p[off + static_cast<std::size_t>(i)];
  return v;
}

TEST(crc32c, raw_crc_of_123456789_from_all_ones_is_the_spec_vector) {
  const char *s = "123456789";
  EXPECT_EQ(pdata::crc32c_raw(0xFFFFFFFFu, s, 9), 0x1CF96D7Cu);
  EXPECT_EQ(pdata::crc32c_raw_portable(0xFFFFFFFFu, s, 9), 0x1CF96D7Cu);
  // The standard (pre- and post-inverted) CRC-32C of the same string.
  EXPECT_EQ(pdata::crc32c_raw(0xFFFFFFFFu, s, 9) ^ 0xFFFFFFFFu, 0xE3069283u);
}

TEST(crc32c, raw_crc_of_4092_zero_bytes_is_the_spec_vector) {
  std::vector<unsigned char> zeros(4092, 0);
  EXPECT_EQ(pdata::crc32c_raw(0xFFFFFFFFu, zeros.data(), zeros.size()), 0x58CDA791u);
  EXPECT_EQ(pdata::crc32c_raw_portable(0xFFFFFFFFu, zeros.data(), zeros.size()), 0x58CDA791u);
}

TEST(crc32c, an_all_zero_block_checksums_to_the_spec_values_with_each_salt) {
  pdata::block_buffer b{};
  EXPECT_EQ(pdata::block_checksum(b.raw(), pdata::checksum_salt::superblock), 0x58CFD397u);
  EXPECT_EQ(pdata::block_checksum(b.raw(), pdata::checksum_salt::btree_node), 0x58CC7E82u);
  // The checksum field itself is not covered: garbage there changes nothing.
  b.data[0] = 0xAB;
  b.data[3] = 0xCD;
  EXPECT_EQ(pdata::block_checksum(b.raw(), pdata::checksum_salt::superblock), 0x58CFD397u);
  // But byte 4 and the last byte are.
  b.data[4] = 1;
  EXPECT_NE(pdata::block_checksum(b.raw(), pdata::checksum_salt::superblock), 0x58CFD397u);
  b.data[4] = 0;
  b.data[4095] = 1;
  EXPECT_NE(pdata::block_checksum(b.raw(), pdata::checksum_salt::superblock), 0x58CFD397u);
}

TEST(crc32c, stamp_checksum_stores_it_little_endian_at_byte_0_and_checksum_ok_accepts_it) {
  pdata::block_buffer b{};
  for (std::size_t i = 4; i < pdata::block_size; i++) b.data[i] = static_cast<unsigned char>(i * 7);
  pdata::stamp_checksum(b.raw(), pdata::checksum_salt::bitmap);
  uint32_t want = crc32c_bitwise(0xFFFFFFFFu, b.raw() + 4, pdata::block_size - 4) ^ 240779u;
  EXPECT_EQ(le32_at(b.raw(), 0), want);
  EXPECT_EQ(pdata::stored_checksum(b.raw()), want);
  EXPECT_TRUE(pdata::checksum_ok(b.raw(), pdata::checksum_salt::bitmap));
  EXPECT_FALSE(pdata::checksum_ok(b.raw(), pdata::checksum_salt::btree_node));
  b.data[2000] ^= 0x10;
  EXPECT_FALSE(pdata::checksum_ok(b.raw(), pdata::checksum_salt::bitmap));
}

TEST(crc32c, salts_have_the_spec_values) {
  EXPECT_EQ(static_cast<uint32_t>(pdata::checksum_salt::superblock), 160774u);
  EXPECT_EQ(static_cast<uint32_t>(pdata::checksum_salt::btree_node), 121107u);
  EXPECT_EQ(static_cast<uint32_t>(pdata::checksum_salt::bitmap), 240779u);
  EXPECT_EQ(static_cast<uint32_t>(pdata::checksum_salt::index_block), 160478u);
  EXPECT_EQ(static_cast<uint32_t>(pdata::checksum_salt::array_block), 595846735u);
}

TEST(crc32c, hardware_and_portable_paths_agree_on_every_length_and_alignment) {
  std::mt19937 rng(12345);
  std::vector<unsigned char> storage(300 + 16);
  for (auto &c : storage) c = static_cast<unsigned char>(rng());
  const uint32_t seeds[] = {0xFFFFFFFFu, 0u, 0x12345678u};
  for (std::size_t align = 0; align < 8; align++) {
    for (std::size_t len = 0; len <= 300; len++) {
      const unsigned char *p = storage.data() + align;
      for (uint32_t seed : seeds) {
        uint32_t ref = crc32c_bitwise(seed, p, len);
        ASSERT_EQ(pdata::crc32c_raw(seed, p, len), ref) << "len " << len << " align " << align;
        ASSERT_EQ(pdata::crc32c_raw_portable(seed, p, len), ref) << "len " << len << " align " << align;
      }
    }
  }
}

TEST(crc32c, crc_can_be_computed_in_pieces) {
  std::mt19937 rng(7);
  std::vector<unsigned char> buf(4096);
  for (auto &c : buf) c = static_cast<unsigned char>(rng());
  uint32_t whole = pdata::crc32c_raw(0xFFFFFFFFu, buf.data(), buf.size());
  for (std::size_t cut : {std::size_t(1), std::size_t(7), std::size_t(8), std::size_t(1001), std::size_t(4095)}) {
    uint32_t a = pdata::crc32c_raw(0xFFFFFFFFu, buf.data(), cut);
    EXPECT_EQ(pdata::crc32c_raw(a, buf.data() + cut, buf.size() - cut), whole) << cut;
    uint32_t pa = pdata::crc32c_raw_portable(0xFFFFFFFFu, buf.data(), cut);
    EXPECT_EQ(pdata::crc32c_raw_portable(pa, buf.data() + cut, buf.size() - cut), whole) << cut;
  }
}

//------------------------------------------------------------------ layouts

TEST(on_disk_layout, an_encoded_superblock_has_every_field_at_the_spec_offset) {
  thin::superblock sb;
  sb.flags = 0x80000001u;
  sb.blocknr = 0;
  for (unsigned i = 0; i < 16; i++) sb.uuid[i] = static_cast<unsigned char>(0xA0 + i);
  sb.version = 2;
  sb.time = 0x01020304u;
  sb.trans_id = 0x1112131415161718ull;
  sb.held_root = 0x2122232425262728ull;
  pdata::disk_sm_root data{}, meta{};
  data.nr_blocks.set(1000);
  data.nr_allocated.set(17);
  data.bitmap_root.set(5);
  data.ref_count_root.set(6);
  meta.nr_blocks.set(2048);
  meta.nr_allocated.set(33);
  meta.bitmap_root.set(7);
  meta.ref_count_root.set(8);
  sb.set_data_sm_root(data);
  sb.set_metadata_sm_root(meta);
  sb.mapping_root = 0x3132333435363738ull;
  sb.details_root = 0x4142434445464748ull;
  sb.data_block_size = 256;
  sb.metadata_block_size = 8;
  sb.metadata_nr_blocks = 0x5152535455565758ull;
  sb.compat_flags = 0x61626364u;
  sb.compat_ro_flags = 0x71727374u;
  sb.incompat_flags = 0x81828384u;

  pdata::block_buffer b{};
  std::memset(b.raw() + 364, 0x5A, pdata::block_size - 364);  // bytes past the struct are kept
  thin::encode_superblock(sb, b.raw());
  const unsigned char *p = b.raw();

  EXPECT_EQ(le32_at(p, 4), 0x80000001u);
  EXPECT_EQ(le64_at(p, 8), 0u);
  for (unsigned i = 0; i < 16; i++) EXPECT_EQ(p[16 + i], 0xA0 + i);
  EXPECT_EQ(le64_at(p, 32), 27022010u);
  EXPECT_EQ(le32_at(p, 40), 2u);
  EXPECT_EQ(le32_at(p, 44), 0x01020304u);
  EXPECT_EQ(le64_at(p, 48), 0x1112131415161718ull);
  EXPECT_EQ(le64_at(p, 56), 0x2122232425262728ull);
  EXPECT_EQ(le64_at(p, 64), 1000u);
  EXPECT_EQ(le64_at(p, 72), 17u);
  EXPECT_EQ(le64_at(p, 80), 5u);
  EXPECT_EQ(le64_at(p, 88), 6u);
  EXPECT_EQ(le64_at(p, 192), 2048u);
  EXPECT_EQ(le64_at(p, 200), 33u);
  EXPECT_EQ(le64_at(p, 208), 7u);
  EXPECT_EQ(le64_at(p, 216), 8u);
  EXPECT_EQ(le64_at(p, 320), 0x3132333435363738ull);
  EXPECT_EQ(le64_at(p, 328), 0x4142434445464748ull);
  EXPECT_EQ(le32_at(p, 336), 256u);
  EXPECT_EQ(le32_at(p, 340), 8u);
  EXPECT_EQ(le64_at(p, 344), 0x5152535455565758ull);
  EXPECT_EQ(le32_at(p, 352), 0x61626364u);
  EXPECT_EQ(le32_at(p, 356), 0x71727374u);
  EXPECT_EQ(le32_at(p, 360), 0x81828384u);
  for (std::size_t i = 364; i < pdata::block_size; i++) ASSERT_EQ(p[i], 0x5A) << i;

  // The checksum (salt 160774) covers [4, 4096), stored LE at 0.
  EXPECT_EQ(le32_at(p, 0), crc32c_bitwise(0xFFFFFFFFu, p + 4, pdata::block_size - 4) ^ 160774u);

  // And decoding gives the fields back.
  thin::superblock d = thin::decode_superblock(p);
  EXPECT_EQ(d.flags, sb.flags);
  EXPECT_EQ(d.time, sb.time);
  EXPECT_EQ(d.trans_id, sb.trans_id);
  EXPECT_EQ(d.held_root, sb.held_root);
  EXPECT_EQ(d.mapping_root, sb.mapping_root);
  EXPECT_EQ(d.details_root, sb.details_root);
  EXPECT_EQ(d.data_block_size, sb.data_block_size);
  EXPECT_EQ(d.metadata_nr_blocks, sb.metadata_nr_blocks);
  EXPECT_EQ(d.incompat_flags, sb.incompat_flags);
  EXPECT_EQ(d.data_sm_root().nr_blocks.get(), 1000u);
  EXPECT_EQ(d.metadata_sm_root().ref_count_root.get(), 8u);
  EXPECT_TRUE(d.needs_check());
}

TEST(on_disk_layout, btree_node_values_start_after_max_entries_key_slots) {
  pdata::block_buffer b{};
  unsigned char *p = b.raw();
  pdata::store_le32(p + 4, pdata::leaf_node);
  pdata::store_le64(p + 8, 9);
  pdata::store_le32(p + 16, 2);    // nr_entries
  pdata::store_le32(p + 20, 126);  // max_entries for value size 24
  pdata::store_le32(p + 24, 24);
  pdata::store_le64(p + 32, 100);
  pdata::store_le64(p + 40, 200);
  pdata::store_le64(p + 32 + 8 * 126, 0xAAAA);        // value 0
  pdata::store_le64(p + 32 + 8 * 126 + 24, 0xBBBB);   // value 1
  pdata::btree_node_view n(p);
  EXPECT_TRUE(n.is_leaf());
  EXPECT_EQ(n.blocknr(), 9u);
  EXPECT_EQ(n.nr_entries(), 2u);
  EXPECT_EQ(n.max_entries(), 126u);
  EXPECT_EQ(n.value_size(), 24u);
  EXPECT_EQ(n.key(1), 200u);
  EXPECT_EQ(n.value64(0), 0xAAAAu);
  EXPECT_EQ(n.value64(1), 0xBBBBu);
  EXPECT_EQ(n.value_ptr(1) - p, 32 + 8 * 126 + 24);
}

TEST(on_disk_layout, space_map_index_entries_and_roots_have_the_spec_offsets) {
  pdata::index_entry_disk e{};
  e.blocknr.set(0x0102030405060708ull);
  e.nr_free.set(0x11121314u);
  e.none_free_before.set(0x21222324u);
  auto *p = reinterpret_cast<const unsigned char *>(&e);
  EXPECT_EQ(le64_at(p, 0), 0x0102030405060708ull);
  EXPECT_EQ(le32_at(p, 8), 0x11121314u);
  EXPECT_EQ(le32_at(p, 12), 0x21222324u);

  pdata::metadata_index_disk idx{};
  idx.blocknr.set(77);
  idx.index[3].blocknr.set(55);
  auto *q = reinterpret_cast<const unsigned char *>(&idx);
  EXPECT_EQ(le64_at(q, 8), 77u);
  EXPECT_EQ(le64_at(q, 16 + 3 * 16), 55u);
}

}  // namespace
