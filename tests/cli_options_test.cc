// The shared command line (tools/cli.h) as every tool shows it: --help pinned
// to golden files (0.9.0's usage style), one validator for every numeric
// option (a bad value is a usage error naming the option and the value, exit
// 1, never a crash), thin_check's 1.x-compatible --clear-needs-check-flag
// combinations, thin_audit's default command, and the error kinds.
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "cli.h"
#include "persistent-data/block_io.h"
#include "persistent-data/checksum.h"
#include "persistent-data/endian.h"
#include "persistent-data/errors.h"
#include "persistent-data/transaction_manager.h"
#include "support/metadata_support.h"
#include "support/test_support.h"
#include "thin/format/superblock.h"
#include "thin/ir/xml_parser.h"
#include "thin/restore/restore.h"

namespace {

using bytes = std::vector<unsigned char>;

using test::contains;

using test::kernel_log;

std::string golden(const std::string &name) {
  return test::read_file(std::string(THINKIT_FIXTURE_SRC) + "/../golden/help/" + name + ".txt");
}

using test::set_needs_check;

//----------------------------------------------------------------- --help

TEST(cli_help, every_tool_prints_exactly_its_golden_usage_on_stdout) {
  struct tool_help {
    std::string tool;
    std::vector<std::string> args;
    std::string golden;
  };
  std::vector<tool_help> tools = {
      {"thin_check", {"--help"}, "thin_check"},     {"thin_dump", {"--help"}, "thin_dump"},
      {"thin_restore", {"--help"}, "thin_restore"}, {"thin_repair", {"--help"}, "thin_repair"},
      {"thin_delta", {"--help"}, "thin_delta"},     {"thin_audit", {"--help"}, "thin_audit"},
      {"thinkit", {"simulate", "--help"}, "simulate"}, {"thinkit", {"--help"}, "thinkit"},
  };
  for (std::string t : {"thin_ls", "thin_rmap", "thin_metadata_size", "thin_extract", "thin_trim", "thin_metadata_pack",
                        "thin_metadata_unpack", "thin_shrink"})
    tools.push_back({t, {"--help"}, t});
  for (auto &t : tools) {
    SCOPED_TRACE(t.golden);
    auto r = test::run_tool(t.tool, t.args);
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_EQ(r.err, "");
    EXPECT_EQ(r.out, golden(t.golden));
    auto h = test::run_tool(t.tool, t.args.size() == 2 ? std::vector<std::string>{t.args[0], "-h"}
                                                         : std::vector<std::string>{"-h"});
    EXPECT_EQ(h.out, r.out);
  }
}

TEST(cli_help, a_command_line_mistake_prints_the_tool_name_the_message_and_the_same_usage_on_stderr) {
  // thin_metadata_size leaves it to getopt, as 0.9.0's does (its own test).
  for (std::string tool : {"thin_check", "thin_dump", "thin_restore", "thin_repair", "thin_delta", "thin_audit",
                           "thin_ls", "thin_rmap", "thin_extract", "thin_trim", "thin_metadata_pack",
                           "thin_metadata_unpack", "thin_shrink"}) {
    SCOPED_TRACE(tool);
    auto r = test::run_tool(tool, {"--no-such-option"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err.rfind(tool + ": ", 0), 0u) << r.err;
    EXPECT_TRUE(contains(r.err, "--no-such-option")) << r.err;
    auto nl = r.err.find('\n');
    ASSERT_NE(nl, std::string::npos);
    EXPECT_EQ(r.err.substr(nl + 1), golden(tool));
  }
}

//------------------------------------------------------- numeric options

struct numeric_option {
  std::string tool;
  std::vector<std::string> before;  // arguments before the option
  std::string option;
  std::vector<std::string> after;   // arguments after its value
};

std::vector<numeric_option> numeric_options() {
  const std::string img = test::fixture_image("basic");
  const std::string xml = test::fixture_file("basic", "thin_dump.xml");
  std::vector<numeric_option> v = {
      {"thin_check", {}, "--override-mapping-root", {img}},
      {"thin_dump", {}, "--dev-id", {img}},
      {"thin_delta", {"--snap2", "1"}, "--snap1", {img}},
      {"thin_delta", {"--thin1", "1"}, "--snap2", {img}},
      {"thin_audit", {"list"}, "--meta-sectors", {img}},
      {"thin_audit", {"list"}, "--data-sectors", {img}},
      {"thin_audit", {"replay"}, "--until-entry", {img}},
      {"thin_audit", {"check"}, "--every", {img}},
      {"thinkit", {"simulate", "--out", "/nonexistent/x"}, "--meta-size", {}},
      {"thinkit", {"simulate", "--out", "/nonexistent/x"}, "--data-size", {}},
      {"thin_extract", {"--data-dev", img, "-o", "/nonexistent/x"}, "--dev-id", {img}},
      {"thin_extract", {"--data-dev", img, "-o", "/nonexistent/x", "--dev-id", "1"}, "--size", {img}},
      {"thin_shrink", {"-i", xml, "-o", "/nonexistent/out", "--data", img}, "--nr-blocks", {}},
  };
  for (std::string o : {"--transaction-id", "--data-block-size", "--nr-data-blocks"}) {
    v.push_back({"thin_dump", {}, o, {img}});
    v.push_back({"thin_restore", {"-i", xml, "-o", "/nonexistent/out"}, o, {}});
    v.push_back({"thin_repair", {"-i", img, "-o", "/nonexistent/out"}, o, {}});
  }
  return v;
}

TEST(cli_numbers, a_bad_value_for_any_numeric_option_is_a_usage_error_naming_the_option_and_the_value) {
  for (auto &o : numeric_options())
    for (std::string bad : {"abc", "-1", "99999999999999999999", "", "0x10", "12abc", " 5", "+3"}) {
      SCOPED_TRACE(o.tool + " " + o.option + " '" + bad + "'");
      std::vector<std::string> args = o.before;
      args.push_back(o.option);
      args.push_back(bad);
      args.insert(args.end(), o.after.begin(), o.after.end());
      auto r = test::run_tool(o.tool, args);
      EXPECT_EQ(r.signal, 0);
      EXPECT_EQ(r.exit_code, 1);
      EXPECT_EQ(r.out, "");
      const std::string first = r.err.substr(0, r.err.find('\n'));
      const std::string name = o.tool == "thinkit" ? "thinkit simulate" : o.tool;
      EXPECT_EQ(first.rfind(name + ": " + o.option + ": ", 0), 0u) << r.err;
      EXPECT_TRUE(contains(first, "'" + bad + "'")) << r.err;
      EXPECT_TRUE(contains(r.err, "Usage:")) << r.err;
    }
}

TEST(cli_numbers, the_override_mapping_root_crash_values_are_usage_errors_even_with_quiet) {
  // Each of these aborted thin_check with an uncaught exception (exit 134),
  // and '' was silently ignored.
  for (std::string bad : {"abc", "-1", "99999999999999999999", ""}) {
    SCOPED_TRACE(bad);
    auto r = test::run_tool("thin_check", {"-q", "--override-mapping-root", bad, test::fixture_image("basic")});
    EXPECT_EQ(r.signal, 0);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_TRUE(contains(r.err, "--override-mapping-root")) << r.err;
  }
}

TEST(cli_numbers, values_at_the_edges_of_their_range_are_accepted_or_refused_exactly) {
  EXPECT_EQ(tools::cli::parse_number("--x", "0"), 0u);
  EXPECT_EQ(tools::cli::parse_number("--x", "007"), 7u);
  EXPECT_EQ(tools::cli::parse_number("--x", "18446744073709551615"), 18446744073709551615u);
  EXPECT_THROW(tools::cli::parse_number("--x", "18446744073709551616"), tools::usage_error);
  EXPECT_EQ(tools::cli::parse_number("--x", "4294967295", 0, 4294967295u), 4294967295u);
  EXPECT_THROW(tools::cli::parse_number("--x", "4294967296", 0, 4294967295u), tools::usage_error);
  EXPECT_THROW(tools::cli::parse_number("--x", "0", 1), tools::usage_error);
  EXPECT_EQ(tools::cli::parse_number("--x", "1", 1), 1u);
  try {
    tools::cli::parse_number("--data-block-size", "4294967296", 0, 4294967295u);
    ADD_FAILURE() << "no exception";
  } catch (const tools::usage_error &e) {
    EXPECT_EQ(std::string(e.what()), "--data-block-size: '4294967296' is too large (at most 4294967295)");
  }
  // A good value still works through a tool: --dev-id selects that device.
  auto r = test::run_tool("thin_dump", {"--dev-id", "1", "--skip-mappings", test::fixture_image("snapshots")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "dev_id=\"1\"")) << r.out;
}

//------------------------------------- thin_check --clear-needs-check-flag

class clear_with_partial_check : public ::testing::TestWithParam<std::string> {};

TEST_P(clear_with_partial_check, lvm2_1x_recipes_check_what_was_asked_then_clear_only_the_flag) {
  for (std::vector<std::string> recipe : {std::vector<std::string>{"-q", "--clear-needs-check-flag", "--skip-mappings"},
                                          std::vector<std::string>{"--clear-needs-check-flag", "--super-block-only"},
                                          std::vector<std::string>{"--clear-needs-check-flag", "--skip-mappings"}}) {
    SCOPED_TRACE(recipe.back());
    test::temp_dir d;
    std::string p = test::copy_fixture(d, GetParam(), "m.img");
    set_needs_check(p);
    bytes before = test::read_binary(p);
    recipe.push_back(p);
    auto r = test::run_tool("thin_check", recipe);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    if (recipe[0] == "-q") {
      EXPECT_EQ(r.err, "");
      EXPECT_EQ(r.out, "");
    } else {
      EXPECT_TRUE(contains(r.err, "cleared needs_check flag")) << r.err;
    }
    bytes after = test::read_binary(p);
    bytes expected = before;
    expected[4] &= static_cast<unsigned char>(~1u);
    pdata::stamp_checksum(expected.data(), pdata::checksum_salt::superblock);
    EXPECT_TRUE(after == expected) << "more than the flag and the checksum changed";
    EXPECT_EQ(test::run_tool("thin_check", {"-q", p}).exit_code, 0);
  }
}

INSTANTIATE_TEST_SUITE_P(kernel, clear_with_partial_check, ::testing::ValuesIn(test::kernel_scenarios()),
                         [](const ::testing::TestParamInfo<std::string> &p) {
                           std::string n = p.param;
                           for (auto &c : n)
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

TEST(thin_check_clear, a_fatal_problem_in_what_was_checked_keeps_the_flag_and_the_file) {
  test::temp_dir d;
  std::string p = test::copy_fixture(d, "snapshots", "m.img");
  set_needs_check(p);
  bytes img = test::read_binary(p);
  const uint64_t details_root = pdata::load_le64(img.data() + 328);
  img[details_root * pdata::block_size + 40] ^= 0xFF;  // the devices tree, which --skip-mappings checks
  test::write_binary(p, img);
  for (auto extra : {"--skip-mappings", "--clear-needs-check-flag"}) {
    auto r = test::run_tool("thin_check", {"-q", "--clear-needs-check-flag", extra, p});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_TRUE(test::read_binary(p) == img);
  }
}

TEST(thin_check_clear, refuses_with_a_metadata_snapshot_or_an_overridden_root_and_auto_repair_ignoring_errors) {
  test::temp_dir d;
  std::string p = test::copy_fixture(d, "discard-metasnap", "m.img");
  set_needs_check(p);
  bytes before = test::read_binary(p);
  for (auto args : std::vector<std::vector<std::string>>{
           {"--clear-needs-check-flag", "-m", p},
           {"--clear-needs-check-flag", "--override-mapping-root", "5", p},
           {"--auto-repair", "--ignore-non-fatal-errors", p},
           {"--ignore-non-fatal-errors", "--auto-repair", "-q", p}}) {
    SCOPED_TRACE(args[0] + " " + args[1]);
    auto r = test::run_tool("thin_check", args);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.signal, 0);
    EXPECT_TRUE(test::read_binary(p) == before);
  }
  auto r = test::run_tool("thin_check", {"--auto-repair", "--ignore-non-fatal-errors", p});
  EXPECT_TRUE(contains(r.err, "--auto-repair") && contains(r.err, "--ignore-non-fatal-errors")) << r.err;
}

//------------------------------------------------------------- thin_audit

TEST(thin_audit_default, a_log_without_a_command_is_audited) {
  const std::string log = kernel_log();
  for (std::vector<std::string> opts : {std::vector<std::string>{}, std::vector<std::string>{"--json"}}) {
    std::vector<std::string> plain = opts, with_verb = {"audit"};
    plain.push_back(log);
    with_verb.insert(with_verb.end(), opts.begin(), opts.end());
    with_verb.push_back(log);
    auto a = test::run_tool("thin_audit", plain), b = test::run_tool("thin_audit", with_verb);
    EXPECT_EQ(a.exit_code, b.exit_code);
    EXPECT_EQ(a.out, b.out);
    EXPECT_EQ(a.err, b.err);
    EXPECT_FALSE(contains(a.err, "unknown command")) << a.err;
    EXPECT_FALSE(a.out.empty());
  }
}

TEST(thin_audit_default, an_unknown_command_is_refused_listing_the_commands) {
  auto r = test::run_tool("thin_audit", {"lst", kernel_log()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(contains(r.err, "unknown command 'lst'")) << r.err;
  for (auto verb : {"list", "replay", "audit", "check"}) EXPECT_TRUE(contains(r.err, verb)) << r.err;
}

//------------------------------------------------------------- error kinds

TEST(error_kinds, each_failure_is_a_pdata_error_of_its_kind) {
  auto kind_of = [](const std::function<void()> &f) {
    try {
      f();
    } catch (const pdata::error &e) {
      return e.kind();
    }
    throw std::runtime_error("no pdata::error thrown");
  };
  pdata::memory_block_io small(4);
  bytes block(pdata::block_size);
  EXPECT_EQ(kind_of([&] { small.read(9, block.data()); }), pdata::error_kind::io);
  EXPECT_EQ(kind_of([&] { thin::read_superblock(small); }), pdata::error_kind::damaged_metadata);
  EXPECT_EQ(kind_of([&] {
              std::istringstream in("<superblock");
              thin::restore_emitter r(small);
              thin::parse_xml(in, r);
            }),
            pdata::error_kind::bad_input);
  EXPECT_EQ(kind_of([] { throw pdata::out_of_metadata_space("full"); }), pdata::error_kind::io);
  EXPECT_EQ(kind_of([] { tools::cli::parse_number("--x", "y"); }), pdata::error_kind::bad_input);
}

//------------------------------------------------ restore sizing and guard

TEST(restore_sizing, the_size_found_in_memory_is_exactly_the_smallest_output_that_works) {
  const std::string xml = test::read_file(test::fixture_file("btree", "thin_dump.xml"));
  std::istringstream in(xml);
  auto need = thin::metadata_blocks_needed(in, {});
  ASSERT_TRUE(need);
  auto restore_into = [&](uint64_t blocks) {
    pdata::memory_block_io io(blocks);
    thin::restore_emitter r(io);
    std::istringstream again(xml);
    try {
      thin::parse_xml(again, r);
    } catch (const thin::xml_error &) {
      return false;
    }
    return r.committed();
  };
  EXPECT_TRUE(restore_into(*need));
  EXPECT_FALSE(restore_into(*need - 1));
  std::istringstream tight(xml);
  EXPECT_FALSE(thin::metadata_blocks_needed(tight, {}, 4)) << "over its memory limit it gives no answer";
}

TEST(restore_guard, after_a_commit_it_leaves_the_new_superblock_in_place) {
  pdata::memory_block_io io(2048);
  {
    thin::restore_emitter r(io);
    thin::abandon_unless_committed guard(r);
    std::istringstream in(test::read_file(test::fixture_file("basic", "thin_dump.xml")));
    thin::parse_xml(in, r);
  }
  EXPECT_NO_THROW(thin::read_superblock(io));
}

TEST(restore_guard, when_the_write_failed_it_zeroes_the_superblock_and_reports_a_failure_to_do_so) {
  pdata::memory_block_io base(2048);
  pdata::fault_injecting_block_io io(base);
  io.fail_writes_of(0);
  std::vector<std::string> warnings;
  try {
    thin::restore_emitter r(io);
    thin::abandon_unless_committed guard(r, [&](const std::string &why) { warnings.push_back(why); });
    std::istringstream in(test::read_file(test::fixture_file("basic", "thin_dump.xml")));
    thin::parse_xml(in, r);
    ADD_FAILURE() << "restored onto a device whose block 0 cannot be written";
  } catch (const thin::xml_error &) {
  }
  // It tried to zero block 0 again (and said that failed) rather than
  // leave the output as the failure left it.
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_TRUE(contains(warnings[0], "block 0")) << warnings[0];
}

}  // namespace
