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

[[maybe_unused]] sparse_image load_sparse(const std::string &name) {
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

[[maybe_unused]] std::unique_ptr<pdata::memory_block_io> device_of(const sparse_image &img) {
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

}  // namespace
