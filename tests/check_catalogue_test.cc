// thin_check's problem catalogue (lib/thin/check/problems.def): its table is
// well formed, man/thin_check.8's PROBLEMS section lists exactly its problems
// with their severities and repairability, and what it says about
// auto-repair holds on the damage corpus: every damaged image whose problems
// are all marked repairable is repaired to spotless metadata, and every image
// with a problem not so marked is refused.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <fmt/format.h>
#include <cstring>

#include "support/damage_support.h"
#include "persistent-data/errors.h"
#include "thin/check/problems.h"

namespace {

using thin::problem_id;
using thin::severity;
using dmg::block_address;

TEST(check_catalogue, every_problem_has_a_unique_upper_case_name_its_own_slot_and_a_template) {
  std::set<std::string> names;
  std::size_t i = 0;
  for (auto &p : thin::problem_catalogue()) {
    EXPECT_EQ(static_cast<std::size_t>(p.id), i++) << p.name;
    EXPECT_TRUE(std::regex_match(p.name, std::regex("[A-Z][A-Z0-9_]+"))) << p.name;
    EXPECT_TRUE(names.insert(p.name).second) << "duplicate " << p.name;
    EXPECT_GT(std::string(p.text).size(), 3u) << p.name;
    // Only leaks and hints are repaired in place.
    EXPECT_EQ(p.auto_repair, p.sev != severity::fatal) << p.name;
    EXPECT_EQ(&thin::info(p.id), &p);
  }
  EXPECT_GT(names.size(), 50u);
}

TEST(check_catalogue, render_replaces_each_named_value_and_refuses_a_missing_one) {
  thin::problem_args args;
  args("sm", "data")("said", 7)("held", 9);
  EXPECT_EQ(thin::render(problem_id::SM_NR_ALLOCATED_UNDERSTATED, args),
            "data space map root says 7 blocks are allocated, but the bitmaps hold 9");
  EXPECT_EQ(thin::render(problem_id::SB_COMPAT_RO_FLAGS, thin::problem_args()("flags", 0x12)),
            "superblock has read-only-compatible feature flags 0x12 this tool does not know");
  EXPECT_THROW(thin::render(problem_id::SM_NR_ALLOCATED_UNDERSTATED, thin::problem_args()("sm", "data")),
               pdata::internal_error);
}

// The PROBLEMS section of the man page: `.BR NAME " (severity[, repaired by
// --auto-repair])"` for each problem, in catalogue order.
TEST(check_catalogue, the_man_page_lists_every_problem_with_its_severity_and_repairability_in_catalogue_order) {
  std::ifstream in(std::string(THINKIT_FIXTURE_SRC) + "/../../man/thin_check.8");
  ASSERT_TRUE(in) << "man/thin_check.8 not found";
  std::string line;
  bool in_section = false;
  std::vector<std::string> listed;
  const std::regex entry(R"re(^\.BR ([A-Z0-9_]+) " \((fatal|leak|hint)(, repaired by \\-\\-auto\\-repair)?\)"$)re");
  while (std::getline(in, line)) {
    if (line.rfind(".SH ", 0) == 0) in_section = line == ".SH PROBLEMS";
    std::smatch m;
    if (in_section && std::regex_match(line, m, entry))
      listed.push_back(fmt::format("{} {}{}", m[1].str(), m[2].str(), m[3].matched ? " repaired" : ""));
  }
  std::vector<std::string> want;
  for (auto &p : thin::problem_catalogue())
    if (p.id != problem_id::OTHER)  // made by other libraries, never by thin_check
      want.push_back(fmt::format("{} {}{}", p.name, thin::to_string(p.sev), p.auto_repair ? " repaired" : ""));
  EXPECT_EQ(listed, want);
}

// Every damaged variant of the small fixtures whose records are all marked
// repairable is repaired by auto_repair to metadata that checks spotless;
// every variant with a problem not so marked is refused, nothing written.
TEST(check_catalogue, auto_repair_repairs_exactly_the_problems_the_catalogue_marks_repairable) {
  std::set<problem_id> repaired_ids;
  std::size_t repaired = 0, refused = 0;
  for (std::string scenario : {"basic", "snapshots", "discard-metasnap"}) {
    dmg::image img = dmg::load_fixture(scenario);
    dmg::layout L = dmg::analyse(img);
    for (block_address b : L.used) {
      std::vector<dmg::variant> vs = dmg::structural_variants(img, L, b);
      vs.push_back(dmg::zero_variant(img, L, b));
      for (auto &v : vs) {
        std::vector<unsigned char> bytes = img.bytes;
        std::memcpy(bytes.data() + v.block * dmg::bsize, v.contents.data(), dmg::bsize);
        pdata::memory_block_io io(bytes);
        auto before = dmg::run_check(io);
        if (before.exception || before.records.empty()) continue;
        bool fixable = before.result.superblock_ok;
        for (auto &d : before.records) fixable &= thin::info(d.id).auto_repair;
        test::recording_reporter r;
        thin::auto_repair_result ar;
        try {
          ar = thin::auto_repair(io, r);
        } catch (const std::exception &e) {
          ADD_FAILURE() << v.name << ": auto_repair threw " << e.what();
          continue;
        }
        EXPECT_EQ(ar.repaired, fixable) << v.name << ": " << before.describe() << "; refused: " << ar.refused;
        if (ar.repaired) {
          auto after = dmg::run_check(io);
          EXPECT_TRUE(after.records.empty() && after.result.spotless()) << v.name << ": " << after.describe();
          for (auto &d : before.records) repaired_ids.insert(d.id);
          repaired++;
        } else {
          refused++;
        }
      }
    }
  }
  // Leaks and hints of several kinds were exercised, and the refusals too.
  EXPECT_TRUE(repaired_ids.count(problem_id::SM_NR_ALLOCATED_UNDERSTATED));
  EXPECT_TRUE(repaired_ids.count(problem_id::SM_INDEX_NR_FREE_HINT));
  EXPECT_TRUE(repaired_ids.count(problem_id::SM_ENTRIES_BEYOND_END));
  EXPECT_GT(repaired, 10u);
  EXPECT_GT(refused, 100u);
}

}  // namespace
