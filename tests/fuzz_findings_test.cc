// Regression tests for what the fuzz harnesses (fuzz/) found: each input the
// fuzzer saved (tests/fixtures/findings/fuzz-*) runs through the same library
// calls as the harness that found it, in the normal suite, and must now meet
// the harness's invariant. Metadata inputs are in the harnesses' sparse image
// format (fuzz/metadata_image.h, decoded here); XML and logs are raw.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <sstream>

#include "persistent-data/block_io.h"
#include "support/metadata_support.h"
#include "support/test_support.h"
#include "thin/check/check.h"
#include "thin/dump/dump.h"
#include "thin/ir/emitter.h"
#include "thin/ir/text_sink.h"
#include "thin/ir/xml_parser.h"
#include "thin/restore/restore.h"

namespace {

using test::finding;

// fuzz/metadata_image.h's format: header (le32 nr_blocks, flags, arg1, arg2),
// then records (le32 block, le16 len, len bytes), trailing zeroes trimmed.
struct sparse_image {
  uint32_t nr_blocks = 0, flags = 0, arg1 = 0, arg2 = 0;
  std::map<uint32_t, std::vector<unsigned char>> blocks;
};

uint32_t get32(const unsigned char *p) {
  return static_cast<uint32_t>(p[0] | p[1] << 8 | p[2] << 16) | static_cast<uint32_t>(p[3]) << 24;
}

sparse_image load_sparse(const std::string &name) {
  std::vector<unsigned char> d = test::read_binary(finding(name));
  sparse_image img;
  if (d.size() < 16) return img;
  img.nr_blocks = std::clamp<uint32_t>(get32(d.data()), 1, 16384);
  img.flags = get32(d.data() + 4);
  img.arg1 = get32(d.data() + 8);
  img.arg2 = get32(d.data() + 12);
  std::size_t pos = 16;
  while (pos + 6 <= d.size()) {
    uint32_t b = get32(d.data() + pos);
    std::size_t len = std::min<std::size_t>(static_cast<std::size_t>(d[pos + 4] | d[pos + 5] << 8), pdata::block_size);
    pos += 6;
    if (len > d.size() - pos) break;
    if (b < img.nr_blocks) {
      std::vector<unsigned char> blk(pdata::block_size, 0);
      std::memcpy(blk.data(), d.data() + pos, len);
      img.blocks[b] = std::move(blk);
    }
    pos += len;
  }
  return img;
}

std::unique_ptr<pdata::memory_block_io> device_of(const sparse_image &img) {
  auto io = std::make_unique<pdata::memory_block_io>(img.nr_blocks);
  for (auto &[b, blk] : img.blocks) io->write(b, blk.data(), 1);
  return io;
}

// What the restore harness checks: the XML is refused, or what restore wrote
// is spotless to our checker.
std::string restore_verdict(const std::string &xml) {
  pdata::memory_block_io out(1024);
  try {
    thin::restore_emitter r(out);
    std::istringstream in(xml);
    thin::parse_xml(in, r);
    if (!r.committed()) return "refused";
  } catch (const std::exception &) {
    return "refused";
  }
  test::recording_reporter rep;
  thin::check_result c = thin::check_metadata(out, {}, rep);
  return c.spotless() ? "spotless" : "restored metadata fails the check: " + (rep.records.empty() ? "" : rep.records[0].what);
}

// fuzz_restore: a mapping whose time is after the superblock's time. thin_restore
// writes it; our thin_check then calls the metadata damaged (fatal). Either
// restore must refuse the XML or check accept it.
TEST(fuzz_findings, restore_refuses_a_mapping_time_after_the_superblock_time_or_check_accepts_it) {
  std::string v = restore_verdict(test::read_file(finding("fuzz-restore-time-after-superblock.xml")));
  EXPECT_TRUE(v == "refused" || v == "spotless") << v;
}

// fuzz_roundtrip: clean metadata (to our check, 0.9.0's and 1.3.3's) whose
// superblock time, 167772160, needs more than 24 bits. thin_dump printed it;
// thin_restore refused the dump (it held the superblock's time to a mapping's
// 24 bits), where 0.9.0 and 1.3.3 restore it. The harness's invariant: the
// dump restores, and the restored pool dumps the same.
TEST(fuzz_findings, a_clean_pool_whose_superblock_time_needs_more_than_24_bits_dumps_restores_and_dumps_the_same) {
  sparse_image img = load_sparse("fuzz-roundtrip-superblock-time-past-24-bits.sparse");
  ASSERT_GT(img.nr_blocks, 0u);
  auto io = device_of(img);
  auto dump = [](pdata::block_io &dev) {
    thin::string_sink s;
    auto e = thin::make_xml_emitter(s);
    thin::dump_metadata(dev, {}, *e);
    return s.str();
  };
  const std::string first = dump(*io);
  ASSERT_NE(first.find("time=\"167772160\""), std::string::npos) << first.substr(0, 200);
  test::recording_reporter rep;
  thin::check_result c = thin::check_metadata(*io, {}, rep);
  ASSERT_TRUE(c.clean() && c.fully_examined);

  pdata::memory_block_io out(4096);
  {
    thin::restore_emitter r(out);
    std::istringstream in(first);
    ASSERT_NO_THROW(thin::parse_xml(in, r));
    ASSERT_TRUE(r.committed());
  }
  EXPECT_EQ(dump(out), first);
  test::recording_reporter rep2;
  EXPECT_TRUE(thin::check_metadata(out, {}, rep2).spotless());
}

}  // namespace
