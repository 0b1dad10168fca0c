// Metadata written by the real Linux 6.1 dm-thin target: thin_dump must print
// exactly what Debian's thin_dump 0.9.0 printed for it, and thin_check must
// find it clean. These run the built tools as a user would.
#include <gtest/gtest.h>

#include "support/test_support.h"

namespace {

class kernel_fixture : public ::testing::TestWithParam<std::string> {};

TEST_P(kernel_fixture, thin_dump_prints_the_reference_xml_byte_for_byte) {
  auto r = test::run_tool("thin_dump", {test::fixture_image(GetParam())});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, test::read_file(test::fixture_file(GetParam(), "thin_dump.xml")));
  EXPECT_EQ(r.err, "");
}

TEST_P(kernel_fixture, thin_dump_human_readable_matches_debian_0_9_0) {
  auto r = test::run_tool("thin_dump", {"-f", "human_readable", test::fixture_image(GetParam())});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, test::read_file(test::fixture_file(GetParam(), "thin_dump.human_readable.txt")));
}

TEST_P(kernel_fixture, thin_dump_of_the_metadata_snapshot_matches_where_one_is_held) {
  std::string ref = test::fixture_file(GetParam(), "thin_dump.metasnap.xml");
  auto r = test::run_tool("thin_dump", {"-m", test::fixture_image(GetParam())});
  if (!test::file_exists(ref)) {
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("no current metadata snapshot"), std::string::npos) << r.err;
    return;
  }
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, test::read_file(ref));
}

TEST_P(kernel_fixture, thin_check_passes_and_prints_what_0_9_0_printed) {
  auto r = test::run_tool("thin_check", {test::fixture_image(GetParam())});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // thin_check.txt holds 0.9.0's stderr and stdout interleaved; compare the
  // two streams separately.
  std::string ref = test::read_file(test::fixture_file(GetParam(), "thin_check.txt"));
  std::string ref_out, ref_err;
  std::size_t pos = 0;
  while (pos < ref.size()) {
    std::size_t nl = ref.find('\n', pos);
    std::string line = ref.substr(pos, nl - pos + 1);
    (line.rfind("TRANSACTION_ID=", 0) == 0 || line.rfind("METADATA_FREE_BLOCKS=", 0) == 0 ? ref_out : ref_err) +=
        line;
    pos = nl + 1;
  }
  EXPECT_EQ(r.out, ref_out);
  EXPECT_EQ(r.err, ref_err);
}

TEST_P(kernel_fixture, thin_check_quiet_prints_nothing_and_passes) {
  auto r = test::run_tool("thin_check", {"-q", test::fixture_image(GetParam())});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "");
}

INSTANTIATE_TEST_SUITE_P(all, kernel_fixture, ::testing::ValuesIn(test::kernel_scenarios()), test::scenario_name);

}  // namespace
