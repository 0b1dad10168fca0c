// The value rules of lib/thin/format/invariants.h on both sides: thin_restore
// refuses XML that breaks one (naming the line and the field), what it
// accepts at the edge of each rule passes our thin_check (and Debian 0.9.0's
// where installed), and thin_dump / thin_delta refuse to hand out mappings
// that break one (their XML would not restore).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "persistent-data/block_io.h"
#include "support/test_support.h"
#include "thin/format/superblock.h"

namespace {

using test::make_file;

// Line 1: superblock time 3, 100 data blocks.
std::string sb(const std::string &dbs = "128") {
  return "<superblock uuid=\"\" time=\"3\" transaction=\"1\" flags=\"0\" version=\"2\" data_block_size=\"" + dbs +
         "\" nr_data_blocks=\"100\">\n";
}
const std::string end_dev = "  </device>\n";
const std::string end_sb = "</superblock>\n";

struct violation {
  std::string name;
  std::string xml;
  uint64_t line;
  std::vector<std::string> fragments;  // the field and the values
};

std::vector<violation> violations() {
  return {
      {"data_block_size_not_a_multiple_of_128", sb("192") + end_sb, 1, {"data_block_size 192", "multiple of 128"}},
      {"data_block_beyond_nr_data_blocks", sb() + test::xml_device(1) + test::xml_single(0, 100, 0) + end_dev + end_sb, 3,
       {"data block 100", "nr_data_blocks is 100"}},
      {"range_running_beyond_nr_data_blocks", sb() + test::xml_device(1) + test::xml_range(0, 98, 3, 0) + end_dev + end_sb, 3,
       {"data block 100", "nr_data_blocks is 100"}},
      {"single_mapping_time_after_the_superblock", sb() + test::xml_device(1) + test::xml_single(0, 1, 0) + test::xml_single(1, 2, 4) + end_dev + end_sb,
       4, {"time=\"4\"", "superblock's time (3)"}},
      {"range_mapping_time_after_the_superblock", sb() + test::xml_device(1) + test::xml_range(0, 1, 2, 9) + end_dev + end_sb, 3,
       {"time=\"9\"", "superblock's time (3)"}},
      {"def_mapping_time_after_the_superblock", sb() + "  <def name=\"d\">\n" + test::xml_single(0, 1, 4) + "  </def>\n" + end_sb,
       3, {"time=\"4\"", "def \"d\""}},
      {"dev_id_above_24_bits", sb() + test::xml_device(1ull << 24) + end_dev + end_sb, 2, {"dev_id", "16777216"}},
  };
}

class restore_refuses : public ::testing::TestWithParam<violation> {};

TEST_P(restore_refuses, a_broken_invariant_naming_the_line_and_the_field) {
  const violation &v = GetParam();
  test::temp_dir t;
  std::string in = t.file("in.xml"), out = t.file("m");
  test::write_binary(in, {v.xml.begin(), v.xml.end()});
  make_file(out, 8 << 20);
  auto r = test::run_tool("thin_restore", {"-i", in, "-o", out});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("line " + std::to_string(v.line) + ":"), std::string::npos) << r.err;
  for (auto &f : v.fragments) EXPECT_NE(r.err.find(f), std::string::npos) << f << " not in: " << r.err;
}

INSTANTIATE_TEST_SUITE_P(each_invariant, restore_refuses, ::testing::ValuesIn(violations()),
                         [](const ::testing::TestParamInfo<violation> &p) { return p.param.name; });

TEST(restore_invariants, what_restore_accepts_at_the_edge_of_each_rule_passes_thin_check) {
  // Times equal to the superblock's, the last data block, the largest dev_id,
  // a data block shared by two devices.
  std::string xml = sb() + test::xml_device(1) + test::xml_single(0, 99, 3) + test::xml_range(1, 10, 5, 3) + end_dev + test::xml_device((1ull << 24) - 1) +
                    test::xml_single(0, 99, 3) + end_dev + "  <def name=\"d\">\n" + test::xml_single(7, 50, 3) + "  </def>\n" + test::xml_device(2) +
                    "    <ref name=\"d\"/>\n" + end_dev + end_sb;
  test::temp_dir t;
  std::string in = t.file("in.xml"), out = t.file("m");
  test::write_binary(in, {xml.begin(), xml.end()});
  make_file(out, 8 << 20);
  auto r = test::run_tool("thin_restore", {"-i", in, "-o", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto c = test::run_tool("thin_check", {out});
  EXPECT_EQ(c.exit_code, 0) << c.err;
  if (test::debian_tools_installed({"thin_check"})) {
    EXPECT_EQ(std::system((test::debian_tool("thin_check") + " -q " + out).c_str()), 0);
  }
}

TEST(restore_invariants, the_fuzzed_future_mapping_time_is_refused_instead_of_written) {
  const std::string finding = test::finding("restore-future-mapping-time.xml");
  test::temp_dir t;
  std::string out = t.file("m");
  make_file(out, 8 << 20);
  auto r = test::run_tool("thin_restore", {"-i", finding, "-o", out});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("line 3:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("time=\"1\""), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("superblock's time (0)"), std::string::npos) << r.err;
}

// Metadata whose device 1 maps origin block 1 to data block 20 while the data
// device has 16 blocks: restored with 32 data blocks, then the superblock's
// data space map shrunk to 16 (checksum restamped), as a bad resize would.
std::string metadata_with_a_mapping_beyond_the_data_device(const test::temp_dir &t) {
  std::string xml = "<superblock uuid=\"\" time=\"0\" transaction=\"1\" flags=\"0\" version=\"2\" "
                    "data_block_size=\"128\" nr_data_blocks=\"32\">\n" +
                    test::xml_device(1) + test::xml_single(0, 0, 0) + test::xml_single(1, 20, 0) + end_dev + test::xml_device(2) + test::xml_single(0, 0, 0) + end_dev +
                    end_sb;
  std::string in = t.file("in.xml"), out = t.file("beyond.meta");
  test::write_binary(in, {xml.begin(), xml.end()});
  make_file(out, 8 << 20);
  auto r = test::run_tool("thin_restore", {"-i", in, "-o", out});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  auto bytes = test::read_binary(out);
  thin::superblock s = thin::decode_superblock(bytes.data());
  pdata::disk_sm_root root = s.data_sm_root();
  root.nr_blocks.set(16);
  s.set_data_sm_root(root);
  thin::encode_superblock(s, bytes.data());
  test::write_binary(out, bytes);
  return out;
}

TEST(restore_invariants, thin_dump_refuses_a_mapping_beyond_the_data_device_instead_of_dumping_it) {
  test::temp_dir t;
  std::string meta = metadata_with_a_mapping_beyond_the_data_device(t);
  // Our checker fails it; thin_dump must not print XML thin_restore refuses.
  EXPECT_EQ(test::run_tool("thin_check", {"-q", meta}).exit_code, 1);
  auto d = test::run_tool("thin_dump", {meta});
  EXPECT_EQ(d.exit_code, 1) << d.out;
  EXPECT_NE(d.err.find("thin device 1: origin block 1 maps to data block 20, beyond the end of the data device (16 "
                       "blocks)"),
            std::string::npos)
      << d.err;
  // --repair drops the mapping and gives XML that restores.
  auto rep = test::run_tool("thin_dump", {"--repair", meta});
  EXPECT_EQ(rep.exit_code, 0) << rep.err;
  std::string xml = t.file("rep.xml"), out = t.file("rep.meta");
  test::write_binary(xml, {rep.out.begin(), rep.out.end()});
  make_file(out, 8 << 20);
  EXPECT_EQ(test::run_tool("thin_restore", {"-i", xml, "-o", out}).exit_code, 0);
}

TEST(restore_invariants, thin_delta_refuses_a_mapping_beyond_the_data_device) {
  test::temp_dir t;
  std::string meta = metadata_with_a_mapping_beyond_the_data_device(t);
  auto d = test::run_tool("thin_delta", {"--snap1", "2", "--snap2", "1", meta});
  EXPECT_EQ(d.exit_code, 1) << d.out;
  EXPECT_NE(d.err.find("thin device 1: origin block 1 maps to data block 20, beyond the end of the data device"),
            std::string::npos)
      << d.err;
  // Devices whose mappings are all on the data device still diff.
  EXPECT_EQ(test::run_tool("thin_delta", {"--snap1", "2", "--snap2", "2", meta}).exit_code, 0);
}

}  // namespace
