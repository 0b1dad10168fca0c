// thin_rmap: the reverse map's lines byte for byte as Debian's thin_rmap
// 0.9.0 prints them (run as the oracle where installed; its output on the
// kernel fixtures over the whole data device is committed beside them as
// thin_rmap.txt), runs checked against the fixtures' thin_dump XML, and the
// region syntax's errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "persistent-data/errors.h"
#include "support/test_support.h"
#include "thin/rmap/rmap.h"

namespace {

const std::string oracle = test::debian_tool("thin_rmap");

// nr_data_blocks of a thin_dump XML.
uint64_t nr_data_blocks(const std::string &xml) {
  std::smatch m;
  std::regex re("nr_data_blocks=\"([0-9]+)\"");
  if (!std::regex_search(xml, m, re)) throw std::runtime_error("no nr_data_blocks");
  return std::stoull(m[1]);
}

TEST(thin_rmap, prints_the_0_9_0_lines_committed_beside_the_kernel_fixtures) {
  for (auto &scenario : test::kernel_scenarios()) {
    uint64_t nr = nr_data_blocks(test::read_file(test::fixture_file(scenario, "thin_dump.xml")));
    auto r = test::run_tool("thin_rmap", {"--region", "0.." + std::to_string(nr), test::fixture_image(scenario)});
    ASSERT_EQ(r.exit_code, 0) << scenario << ": " << r.err;
    EXPECT_EQ(r.out, test::read_file(test::fixture_file(scenario, "thin_rmap.txt"))) << scenario;
  }
}

// Every range mapping of a device's XML is a run of the reverse map (split
// only where the runs of other devices' blocks interleave in sort order):
// here the first device of `basic` maps blocks 0..16 at 0..16.
TEST(thin_rmap, reports_a_range_mapping_of_the_xml_as_one_line) {
  const std::string xml = test::read_file(test::fixture_file("basic", "thin_dump.xml"));
  ASSERT_NE(xml.find("<range_mapping origin_begin=\"0\" data_begin=\"0\" length=\"16\""), std::string::npos);
  auto r = test::run_tool("thin_rmap", {"--region", "0..16", test::fixture_image("basic")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "data 0..16 -> thin(1) 0..16\n");
  // A region inside the run gives the matching piece.
  r = test::run_tool("thin_rmap", {"--region=3..5", test::fixture_image("basic")});
  EXPECT_EQ(r.out, "data 3..5 -> thin(1) 3..5\n");
}

TEST(thin_rmap, matches_the_0_9_0_oracle_on_fixtures_and_generated_pools) {
  if (!test::have_program(oracle)) GTEST_SKIP() << oracle << " is not installed";
  test::temp_dir d;
  std::vector<std::string> images;
  for (auto &scenario : test::kernel_scenarios()) images.push_back(test::fixture_image(scenario));
  // Generated pools: snapshots sharing blocks (several devices per data
  // block, so runs starting at one block must come out in 0.9.0's order).
  int n = 0;
  for (auto args : std::vector<std::vector<std::string>>{
           {"--seed", "11", "--devices", "2", "--mappings", "5000", "--snapshots", "6"},
           {"--seed", "12", "--devices", "3", "--mappings", "9000", "--snapshots", "9", "--snap-of-snap", "0.5",
            "--frag", "0.8", "--shared-defs"},
       }) {
    const std::string xml = d.file("g" + std::to_string(n) + ".xml"), meta = d.file("g" + std::to_string(n) + ".meta");
    n++;
    ASSERT_NO_FATAL_FAILURE(test::generate_xml(args, xml));
    ASSERT_NO_FATAL_FAILURE(test::restore_with_tool(xml, meta, 64 << 20));
    images.push_back(meta);
  }
  const std::vector<std::vector<std::string>> region_sets = {
      {"--region", "0..100000"},
      {"--region", "0..1"},
      {"--region", "10..20", "--region", "5..12", "--region", "1000..3000"},
      {"--region", "7..8", "--region", "200..260"},
  };
  for (auto &image : images)
    for (auto &regions : region_sets) {
      auto args = regions;
      args.push_back(image);
      auto ours = test::run_tool("thin_rmap", args);
      auto theirs = test::run_program(oracle, args);
      ASSERT_EQ(theirs.exit_code, 0) << theirs.err;
      EXPECT_EQ(ours.exit_code, 0) << ours.err;
      EXPECT_EQ(ours.out, theirs.out) << image << " " << ::testing::PrintToString(regions);
    }
}

TEST(thin_rmap, fails_with_exit_1_on_bad_regions) {
  const std::string image = test::fixture_image("basic");
  for (auto region : {"5..3", "5..5", "x..y", "5..y", "5", "5.6", "", "..7"}) {
    auto r = test::run_tool("thin_rmap", {"--region", region, image});
    EXPECT_EQ(r.exit_code, 1) << region;
    EXPECT_EQ(r.out, "") << region;
    EXPECT_NE(r.err.find("badly formed region"), std::string::npos) << region << ": " << r.err;
    if (test::have_program(oracle)) {
      EXPECT_EQ(test::run_program(oracle, {"--region", region, image}).exit_code, 1);
    }
  }
  // No region at all, no input, a missing --region value.
  for (auto args : std::vector<std::vector<std::string>>{{image}, {"--region", "1..2"}, {"--region"}}) {
    auto r = test::run_tool("thin_rmap", args);
    EXPECT_EQ(r.exit_code, 1) << ::testing::PrintToString(args);
    EXPECT_FALSE(r.err.empty());
    if (test::have_program(oracle)) {
      EXPECT_EQ(test::run_program(oracle, args).exit_code, 1);
    }
  }
}

TEST(thin_rmap, parses_regions_as_0_9_0_does) {
  auto r = thin::parse_data_region("5..45");
  EXPECT_EQ(r.begin, 5u);
  EXPECT_EQ(r.end, 45u);
  EXPECT_TRUE(r.contains(44));
  EXPECT_FALSE(r.contains(45));
  EXPECT_THROW(thin::parse_data_region("45..5"), pdata::bad_input_error);
  EXPECT_THROW(thin::parse_data_region("99999999999999999999..1"), pdata::bad_input_error);
}

TEST(thin_rmap, fails_with_exit_1_on_unusable_input) {
  test::temp_dir d;
  const std::string zeros = d.file("zeros");
  FILE *f = std::fopen(zeros.c_str(), "w");
  std::fclose(f);
  ASSERT_EQ(::truncate(zeros.c_str(), 1 << 20), 0);
  for (auto &input : {zeros, d.file("missing")}) {
    auto r = test::run_tool("thin_rmap", {"--region", "0..10", input});
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find(input), std::string::npos) << r.err;
  }
}

TEST(thin_rmap, prints_its_usage_and_version) {
  auto h = test::run_tool("thin_rmap", {"--help"});
  EXPECT_EQ(h.exit_code, 0);
  EXPECT_NE(h.out.find("{--region <block range>}*"), std::string::npos);
  if (test::have_program(oracle)) {
    EXPECT_EQ(h.out, test::run_program(oracle, {"--help"}).out);
  }
  auto v = test::run_tool("thin_rmap", {"-V"});
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_EQ(v.out, test::run_tool("thin_check", {"-V"}).out);
}

}  // namespace
