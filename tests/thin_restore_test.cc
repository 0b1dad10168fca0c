// thin_restore: XML back to metadata. Round trips through the built tools
// (and Debian's 0.9.0 tools where installed), the bad-input contract (exit 1,
// a message naming the line, the output untouched or its superblock zeroed),
// power cuts during a restore, and shared <def> runs.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <sstream>

#include "persistent-data/block_cache.h"
#include "persistent-data/errors.h"
#include "support/metadata_support.h"
#include "support/test_support.h"
#include "thin/check/check.h"
#include "thin/dump/dump.h"
#include "thin/restore/restore.h"
#include "thin/format/superblock.h"
#include "thin/ir/xml_parser.h"

namespace {

using test::make_file;

uint64_t meta_size(const std::string &scenario) { return scenario == "btree" ? 80ull << 20 : 8ull << 20; }

bool oracle_installed() { return test::debian_tools_installed({"thin_check", "thin_dump"}); }

class restore_fixture : public ::testing::TestWithParam<std::string> {};

TEST_P(restore_fixture, restore_then_dump_reproduces_the_kernel_xml_byte_for_byte) {
  test::temp_dir t;
  std::string out = t.file("meta.img"), xml = test::fixture_file(GetParam(), "thin_dump.xml");
  make_file(out, meta_size(GetParam()));
  auto r = test::run_tool("thin_restore", {"-i", xml, "-o", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  auto d = test::run_tool("thin_dump", {out});
  ASSERT_EQ(d.exit_code, 0) << d.err;
  EXPECT_EQ(d.out, test::read_file(xml));
  auto c = test::run_tool("thin_check", {out});
  EXPECT_EQ(c.exit_code, 0) << c.err;
}

TEST_P(restore_fixture, debian_thin_check_accepts_our_output_and_debian_thin_dump_reads_it_back) {
  if (!oracle_installed()) GTEST_SKIP() << "Debian thin-provisioning-tools not installed";
  test::temp_dir t;
  std::string out = t.file("meta.img"), xml = test::fixture_file(GetParam(), "thin_dump.xml");
  make_file(out, meta_size(GetParam()));
  ASSERT_EQ(test::run_tool("thin_restore", {"-i", xml, "-o", out}).exit_code, 0);
  std::string log = t.file("log");
  EXPECT_EQ(std::system((test::debian_tool("thin_check") + " " + out + " >" + log + " 2>&1").c_str()), 0) << test::read_file(log);
  std::string dumped = t.file("dump.xml");
  ASSERT_EQ(std::system((test::debian_tool("thin_dump") + " " + out + " >" + dumped).c_str()), 0);
  EXPECT_EQ(test::read_file(dumped), test::read_file(xml));
}

INSTANTIATE_TEST_SUITE_P(kernel, restore_fixture, ::testing::ValuesIn(test::kernel_scenarios()), test::scenario_name);

TEST(thin_restore, reads_gzip_and_standard_input) {
  test::temp_dir t;
  std::string xml = test::fixture_file("snapshots", "thin_dump.xml"), gz = t.file("in.xml.gz"), out = t.file("m");
  ASSERT_EQ(std::system(("gzip -c " + xml + " > " + gz).c_str()), 0);
  make_file(out, 8 << 20);
  auto r = test::run_tool("thin_restore", {"-i", gz, "-o", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(test::run_tool("thin_dump", {out}).out, test::read_file(xml));
  make_file(out, 8 << 20);
  r = test::run_tool("thin_restore", {"-i", "-", "-o", out}, test::read_file(xml));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(test::run_tool("thin_dump", {out}).out, test::read_file(xml));
}

TEST(thin_restore, overrides_replace_superblock_values) {
  test::temp_dir t;
  std::string out = t.file("m");
  make_file(out, 8 << 20);
  auto r = test::run_tool("thin_restore", {"-i", test::fixture_file("basic", "thin_dump.xml"), "-o", out,
                                           "--transaction-id", "77", "--nr-data-blocks", "5000",
                                           "--data-block-size", "256"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto d = test::run_tool("thin_dump", {out});
  EXPECT_EQ(d.out.substr(0, d.out.find('\n')),
            "<superblock uuid=\"\" time=\"0\" transaction=\"77\" flags=\"0\" version=\"2\" data_block_size=\"256\" "
            "nr_data_blocks=\"5000\">");
}

TEST(thin_restore, lvm2_style_xml_with_one_space_indentation_and_no_flags_restores) {
  test::temp_dir t;
  std::string out = t.file("m"), in = t.file("lvm.xml");
  std::string xml =
      "<?xml version=\"1.0\"?>\n<superblock uuid=\"\" time=\"0\" transaction=\"1\" data_block_size=\"128\" "
      "nr_data_blocks=\"100\">\n <device dev_id=\"3\" mapped_blocks=\"0\" transaction=\"0\" creation_time=\"0\" "
      "snap_time=\"0\">\n  <range_mapping origin_begin=\"0\" data_begin=\"10\" length=\"5\" time=\"0\"/>\n "
      "</device>\n</superblock>";
  test::write_binary(in, {xml.begin(), xml.end()});
  make_file(out, 1 << 20);
  auto r = test::run_tool("thin_restore", {"-i", in, "-o", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto d = test::run_tool("thin_dump", {out});
  // mapped_blocks is recomputed; flags/version default to 0 and 2.
  EXPECT_NE(d.out.find("flags=\"0\" version=\"2\""), std::string::npos) << d.out;
  EXPECT_NE(d.out.find("<device dev_id=\"3\" mapped_blocks=\"5\""), std::string::npos) << d.out;
  EXPECT_EQ(test::run_tool("thin_check", {out}).exit_code, 0);
}

//------------------------------------------------------------- bad input

struct bad_case {
  std::string name;
  std::string xml;
  std::string message;      // a fragment the error must contain
  bool output_touched;      // superblock zeroed (true) or file untouched (false)
};

std::string sb_open(const std::string &extra = "") {
  return "<superblock uuid=\"\" time=\"1\" transaction=\"1\" flags=\"0\" version=\"2\" data_block_size=\"128\" "
         "nr_data_blocks=\"100\"" + extra + ">\n";
}
const std::string dev1 = "  <device dev_id=\"1\" mapped_blocks=\"0\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">\n";

std::vector<bad_case> bad_cases() {
  return {
      {"empty", "", "", false},
      {"malformed", sb_open() + "  <device dev_id=\"1\"\n", "line", true},
      {"malformed_from_the_start", "<superblock uuid=\"\" time=\"1\"<<\n", "line 1", false},
      {"truncated", sb_open() + dev1 + "    <single_mapping origin_block=\"1\" data_block=\"2\" time=\"0\"/>\n", "line", true},
      {"unknown_element", sb_open() + "  <thing/>\n</superblock>\n", "thing", true},
      {"unknown_attribute", sb_open() + dev1 + "    <single_mapping origin_block=\"1\" data_block=\"2\" time=\"0\" colour=\"red\"/>\n  </device>\n</superblock>\n", "colour", true},
      {"missing_attribute", sb_open() + dev1 + "    <single_mapping origin_block=\"1\" time=\"0\"/>\n  </device>\n</superblock>\n", "data_block", true},
      {"non_numeric", sb_open() + dev1 + "    <single_mapping origin_block=\"x1\" data_block=\"2\" time=\"0\"/>\n  </device>\n</superblock>\n", "origin_block", true},
      {"device_before_superblock", dev1 + "  </device>\n", "superblock", false},
      {"duplicate_dev_id", sb_open() + dev1 + "  </device>\n" + dev1 + "  </device>\n</superblock>\n", "1", true},
      {"decreasing_origin", sb_open() + dev1 + "    <single_mapping origin_block=\"5\" data_block=\"2\" time=\"0\"/>\n    <single_mapping origin_block=\"4\" data_block=\"3\" time=\"0\"/>\n  </device>\n</superblock>\n", "line 4", true},
      {"data_block_beyond_nr_data_blocks", sb_open() + dev1 + "    <single_mapping origin_block=\"5\" data_block=\"100\" time=\"0\"/>\n  </device>\n</superblock>\n", "100", true},
      {"bad_data_block_size", "<superblock uuid=\"\" time=\"1\" transaction=\"1\" flags=\"0\" version=\"2\" data_block_size=\"100\" nr_data_blocks=\"100\">\n</superblock>\n", "128", false},
      {"unknown_ref", sb_open() + dev1 + "    <ref name=\"nope\"/>\n  </device>\n</superblock>\n", "nope", true},
  };
}

class restore_bad_input : public ::testing::TestWithParam<bad_case> {};

TEST_P(restore_bad_input, exits_1_naming_the_problem_and_leaves_the_output_safe) {
  const bad_case &bc = GetParam();
  test::temp_dir t;
  std::string in = t.file("in.xml"), out = t.file("m");
  test::write_binary(in, {bc.xml.begin(), bc.xml.end()});
  // The output holds valid metadata beforehand, so "untouched" can be seen.
  make_file(out, 8 << 20);
  ASSERT_EQ(test::run_tool("thin_restore", {"-i", test::fixture_file("basic", "thin_dump.xml"), "-o", out}).exit_code, 0);
  auto before = test::read_binary(out);
  auto r = test::run_tool("thin_restore", {"-i", in, "-o", out});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.signal, 0);
  EXPECT_NE(r.err.find("thin_restore: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(bc.message), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  auto after = test::read_binary(out);
  if (bc.output_touched) {
    EXPECT_TRUE(std::all_of(after.begin(), after.begin() + 4096, [](unsigned char c) { return c == 0; }))
        << "superblock not zeroed";
    EXPECT_EQ(test::run_tool("thin_check", {"-q", out}).exit_code, 1);
  } else {
    EXPECT_TRUE(after == before) << "output changed";
  }
}

INSTANTIATE_TEST_SUITE_P(all, restore_bad_input, ::testing::ValuesIn(bad_cases()),
                         [](const ::testing::TestParamInfo<bad_case> &p) { return p.param.name; });

TEST(thin_restore, an_output_too_small_is_refused_saying_how_large_it_must_be) {
  test::temp_dir t;
  std::string out = t.file("m");
  make_file(out, 64 << 10);
  auto r = test::run_tool("thin_restore", {"-i", test::fixture_file("btree", "thin_dump.xml"), "-o", out});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("too small"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("needs at least"), std::string::npos) << r.err;
  auto after = test::read_binary(out);
  EXPECT_TRUE(std::all_of(after.begin(), after.begin() + 4096, [](unsigned char c) { return c == 0; }));
  // The hint is exact: that many blocks are enough, one fewer is not.
  auto pos = r.err.find("needs at least ");
  ASSERT_NE(pos, std::string::npos);
  uint64_t need = std::stoull(r.err.substr(pos + 15));
  make_file(out, need * 4096);
  auto ok = test::run_tool("thin_restore", {"-i", test::fixture_file("btree", "thin_dump.xml"), "-o", out});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(test::run_tool("thin_check", {"-q", out}).exit_code, 0);
  make_file(out, (need - 1) * 4096);
  EXPECT_EQ(test::run_tool("thin_restore", {"-i", test::fixture_file("btree", "thin_dump.xml"), "-o", out}).exit_code, 1);
}

TEST(thin_restore, refuses_the_same_file_as_input_and_output_and_missing_arguments) {
  test::temp_dir t;
  std::string f = t.file("x.xml");
  std::string xml = test::read_file(test::fixture_file("basic", "thin_dump.xml"));
  test::write_binary(f, {xml.begin(), xml.end()});
  auto r = test::run_tool("thin_restore", {"-i", f, "-o", f});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("same file"), std::string::npos) << r.err;
  EXPECT_EQ(test::read_file(f), xml);
  EXPECT_EQ(test::run_tool("thin_restore", {"-o", f}).exit_code, 1);
  EXPECT_EQ(test::run_tool("thin_restore", {"-i", f}).exit_code, 1);
  EXPECT_EQ(test::run_tool("thin_restore", {"-i", f, "-o", t.file("does-not-exist")}).exit_code, 1);
}

//------------------------------------------------------------- power cuts

std::string dump_of(pdata::block_io &io) { return test::dump_xml(io); }

TEST(thin_restore, a_power_cut_at_any_write_leaves_the_new_metadata_or_a_zeroed_superblock) {
  const std::string old_xml = test::read_file(test::fixture_file("basic", "thin_dump.xml"));
  const std::string new_xml = test::read_file(test::fixture_file("snapshots", "thin_dump.xml"));
  pdata::memory_block_io base(2048);
  {
    thin::restore_emitter r(base);
    std::istringstream in(old_xml);
    thin::parse_xml(in, r);
  }
  const auto base_image = base.image();
  uint64_t total_writes = 0;
  {
    pdata::memory_block_io m(base_image);
    pdata::fault_injecting_block_io f(m);
    thin::restore_emitter r(f);
    std::istringstream in(new_xml);
    thin::parse_xml(in, r);
    total_writes = f.writes();
  }
  ASSERT_GT(total_writes, 10u);
  int saw_new = 0, saw_zero = 0;
  for (uint64_t n = 1; n <= total_writes + 1; n++) {
    for (double keep : {0.0, 0.5, 1.0}) {
      pdata::memory_block_io m(base_image);
      pdata::fault_injecting_block_io f(m);
      f.volatile_cache(true);
      f.fail_nth_write(n);
      thin::restore_emitter r(f);
      std::istringstream in(new_xml);
      try {
        thin::parse_xml(in, r);
      } catch (const thin::xml_error &) {
      } catch (const pdata::io_error &) {
      }
      f.crash(keep, n);  // the power goes: unflushed writes lost (some kept)
      pdata::block_buffer sb;
      m.read(0, sb.raw(), 1);
      if (thin::is_all_zero(sb.raw())) {
        saw_zero++;
        continue;
      }
      test::recording_reporter rep;
      auto res = thin::check_metadata(m, {}, rep);
      std::string dumped = res.spotless() ? dump_of(m) : "";
      // A valid superblock must be the new metadata, whole; or (a cut before
      // the old superblock's wipe was durable) the old metadata, untouched.
      bool is_new = res.spotless() && dumped == new_xml;
      bool is_old = res.spotless() && dumped == old_xml && n <= 2;
      EXPECT_TRUE(is_new || is_old) << "write " << n << " keep " << keep;
      saw_new += is_new;
    }
  }
  EXPECT_GT(saw_new, 0);
  EXPECT_GT(saw_zero, 0);
}

//------------------------------------------------------------- shared defs

TEST(thin_restore, def_and_ref_become_shared_leaves_and_dump_as_plain_mappings) {
  std::ostringstream x;
  x << "<superblock uuid=\"\" time=\"1\" transaction=\"3\" data_block_size=\"128\" nr_data_blocks=\"5000\">\n";
  x << "  <def name=\"shared\">\n";
  x << "    <range_mapping origin_begin=\"1000\" data_begin=\"0\" length=\"1000\" time=\"0\"/>\n";
  x << "  </def>\n";
  for (int dev : {1, 2}) {
    x << "  <device dev_id=\"" << dev << "\" mapped_blocks=\"0\" transaction=\"0\" creation_time=\"0\" snap_time=\"1\">\n";
    x << "    <single_mapping origin_block=\"" << dev << "\" data_block=\"" << 3000 + dev << "\" time=\"1\"/>\n";
    x << "    <ref name=\"shared\"/>\n";
    x << "    <single_mapping origin_block=\"5000\" data_block=\"" << 4000 + dev << "\" time=\"1\"/>\n";
    x << "  </device>\n";
  }
  x << "</superblock>";
  pdata::memory_block_io io(1024);
  thin::restore_emitter r(io);
  std::istringstream in(x.str());
  thin::parse_xml(in, r);
  ASSERT_TRUE(r.committed());
  test::recording_reporter rep;
  EXPECT_TRUE(thin::check_metadata(io, {}, rep).spotless()) << rep.log();
  std::string d = dump_of(io);
  EXPECT_NE(d.find("<device dev_id=\"2\" mapped_blocks=\"1002\""), std::string::npos) << d;
  EXPECT_NE(d.find("<range_mapping origin_begin=\"1000\" data_begin=\"0\" length=\"1000\" time=\"0\"/>"),
            std::string::npos);
  // The shared run occupies leaves referenced by both devices: far fewer
  // metadata blocks than two copies, and its data blocks are counted once.
  EXPECT_LT(r.stats().metadata_blocks_used, 20u);
}

}  // namespace
