// thin_check's fast path (lib/thin/fast_check.*) against the exact checker:
// for the kernel fixtures and every damaged variant of every used block (zeroed,
// bit flips, structural damage behind a valid checksum), a default check and
// an exact-only check must announce the same stages, report the same records
// (catalogue id, kind, fatal, block, device, keys, text, in order) and return the same
// result. The fast path either proves metadata clean or hands over.
#include <gtest/gtest.h>
#include <fmt/format.h>

#include "support/damage_support.h"
#include "thin/check/fast_check.h"
#include "thin/format/superblock.h"
#include "thin/format/superblock_disk.h"
#include "persistent-data/endian.h"
#include "persistent-data/space_map_disk.h"

namespace {

using dmg::block_address;

struct full_outcome {
  std::optional<std::string> exception;
  thin::check_result result;
  std::vector<std::string> stages;
  std::vector<thin::damage> records;
};

full_outcome run(pdata::block_io &io, bool exact) {
  full_outcome o;
  test::recording_reporter r;
  thin::check_options opts;
  opts.exact_only = exact;
  try {
    o.result = thin::check_metadata(io, opts, r);
  } catch (const std::exception &e) {
    o.exception = e.what();
  }
  o.stages = r.stages;
  o.records = r.records;
  return o;
}

std::string describe(const thin::damage &d) {
  return fmt::format("{} {} {} block={} dev={} keys={} {}", thin::to_string(d.id), thin::to_string(d.kind),
                     d.fatal ? "fatal" : d.hint ? "hint" : "non-fatal",
                     d.block ? std::to_string(*d.block) : "-", d.dev_id ? std::to_string(*d.dev_id) : "-",
                     d.keys ? pdata::to_string(*d.keys) : "-", d.what);
}

// Empty when both runs agree; else what differs.
std::string differences(const full_outcome &fast, const full_outcome &exact) {
  if (fast.exception != exact.exception)
    return fmt::format("exception: {} vs {}", fast.exception.value_or("none"), exact.exception.value_or("none"));
  if (fast.stages != exact.stages)
    return fmt::format("stages: {} vs {}", fmt::join(fast.stages, ", "), fmt::join(exact.stages, ", "));
  if (fast.records.size() != exact.records.size())
    return fmt::format("{} records vs {}", fast.records.size(), exact.records.size());
  for (std::size_t i = 0; i < fast.records.size(); i++)
    if (describe(fast.records[i]) != describe(exact.records[i]))
      return fmt::format("record {}: {} vs {}", i, describe(fast.records[i]), describe(exact.records[i]));
  const auto &a = fast.result, &b = exact.result;
  if (a.fatal != b.fatal || a.non_fatal != b.non_fatal || a.hints != b.hints || a.fully_examined != b.fully_examined ||
      a.superblock_ok != b.superblock_ok || a.needs_check != b.needs_check || a.transaction_id != b.transaction_id)
    return "check_result differs";
  return {};
}

struct tally {
  std::size_t variants = 0, clean = 0;
  std::vector<std::string> failures;
};

void compare_all(const std::string &scenario, bool zero, bool flip, bool structural, tally &t) {
  dmg::image img = dmg::load_fixture(scenario);
  dmg::layout L = dmg::analyse(img);
  pdata::memory_block_io io(img.bytes);
  {
    auto fast = run(io, false), exact = run(io, true);
    EXPECT_TRUE(fast.records.empty()) << scenario;
    EXPECT_TRUE(fast.result.fully_examined) << scenario;
    EXPECT_EQ(differences(fast, exact), "") << scenario << " (undamaged)";
  }
  for (block_address b : L.used) {
    std::vector<dmg::variant> vs;
    if (zero) vs.push_back(dmg::zero_variant(img, L, b));
    if (flip)
      for (auto &v : dmg::flip_variants(img, L, b)) vs.push_back(std::move(v));
    if (structural)
      for (auto &v : dmg::structural_variants(img, L, b)) vs.push_back(std::move(v));
    for (auto &v : vs) {
      io.write(v.block, v.contents.data(), 1);
      auto fast = run(io, false), exact = run(io, true);
      t.variants++;
      if (exact.records.empty()) t.clean++;
      auto diff = differences(fast, exact);
      if (!diff.empty() && t.failures.size() < 20) t.failures.push_back(v.name + ": " + diff);
      io.write(v.block, img.block(v.block), 1);
    }
  }
}

class check_fast_path : public ::testing::TestWithParam<std::string> {};

TEST_P(check_fast_path, agrees_with_the_exact_checker_on_every_damaged_variant) {
  tally t;
  compare_all(GetParam(), true, true, true, t);
  EXPECT_GT(t.variants, 100u);
  EXPECT_TRUE(t.failures.empty()) << fmt::format("{}", fmt::join(t.failures, "\n"));
  std::cout << GetParam() << ": " << t.variants << " variants, " << t.clean << " clean to both\n";
}

// The data overflow tree's leaves read in the mapping leaves' pass (counts
// kept by rank) and in a pass of their own after it come to the same verdict
// and hints, undamaged and with every used block zeroed, bit-flipped or
// structurally damaged.
TEST_P(check_fast_path, reads_the_overflow_leaves_with_the_mappings_or_after_them_to_the_same_verdict) {
  dmg::image img = dmg::load_fixture(GetParam());
  dmg::layout L = dmg::analyse(img);
  pdata::memory_block_io io(img.bytes);
  auto verdict = [&](uint64_t max_merged_threes) -> std::string {
    try {
      auto sb = thin::read_superblock(io);
      test::recording_reporter r;
      unsigned stages = 0;
      std::vector<thin::damage> hints;
      std::string v =
          thin::detail::fast_check(io, sb, sb, r, stages, hints, nullptr, max_merged_threes) ? "clean" : "gave up";
      for (auto &h : hints) v += "; " + describe(h);
      return v;  // the stages announced may differ: the exact checker announces the rest
    } catch (const std::exception &e) {
      return std::string("exception: ") + e.what();
    }
  };
  EXPECT_EQ(verdict(thin::detail::default_max_merged_threes).substr(0, 5), "clean");
  EXPECT_EQ(verdict(0), verdict(thin::detail::default_max_merged_threes));
  std::size_t variants = 0;
  for (block_address b : L.used) {
    std::vector<dmg::variant> vs;
    vs.push_back(dmg::zero_variant(img, L, b));
    for (auto &v : dmg::flip_variants(img, L, b)) vs.push_back(std::move(v));
    for (auto &v : dmg::structural_variants(img, L, b)) vs.push_back(std::move(v));
    for (auto &v : vs) {
      io.write(v.block, v.contents.data(), 1);
      EXPECT_EQ(verdict(0), verdict(thin::detail::default_max_merged_threes)) << v.name;
      io.write(v.block, img.block(v.block), 1);
      variants++;
    }
  }
  EXPECT_GT(variants, 100u);
}

INSTANTIATE_TEST_SUITE_P(fixtures, check_fast_path,
                         ::testing::Values("basic", "snapshots", "discard-metasnap", "logwrites", "bigblock"),
                         [](const ::testing::TestParamInfo<std::string> &p) {
                           std::string s = p.param;
                           for (auto &c : s)
                             if (c == '-') c = '_';
                           return s;
                         });

// Internal nodes live in the btree fixture: zeroed blocks and structural
// damage there (bit flips are many and change little beyond the above).
TEST(check_fast_path_btree, agrees_with_the_exact_checker_on_zeroed_and_structurally_damaged_blocks) {
  tally t;
  compare_all("btree", true, false, true, t);
  EXPECT_GT(t.variants, 1000u);
  EXPECT_TRUE(t.failures.empty()) << fmt::format("{}", fmt::join(t.failures, "\n"));
  std::cout << "btree: " << t.variants << " variants, " << t.clean << " clean to both\n";
}

// Stale space-map hints (free space hidden) do not send the check down the
// exact path: the fast path proves such metadata itself (thin_restore 0.9.0
// leaves these hints in every pool it writes, so this is the common case for
// restored pools) and words the hints exactly as the exact checker does.
TEST(check_fast_path_hints, stale_hints_are_proved_by_the_fast_path_and_worded_as_the_exact_checker_words_them) {
  for (std::string scenario : {"snapshots", "btree"}) {
    dmg::image img = dmg::load_fixture(scenario);
    dmg::layout L = dmg::analyse(img);
    pdata::memory_block_io io(img.bytes);
    std::vector<dmg::variant> vs;
    for (block_address b : L.used)
      for (auto &v : dmg::structural_variants(img, L, b))
        if (v.name.find("free space hidden") != std::string::npos) vs.push_back(std::move(v));
    for (bool data : {false, true}) {
      dmg::variant v{fmt::format("{}: {} nr_allocated + 1", scenario, data ? "data" : "metadata"), 0,
                     img.copy_block(0), dmg::expect::leak};
      const std::size_t off = (data ? offsetof(thin::superblock_disk, data_space_map_root)
                                    : offsetof(thin::superblock_disk, metadata_space_map_root)) +
                              offsetof(pdata::disk_sm_root, nr_allocated);
      dmg::put64(v.contents, off, pdata::load_le64(v.contents.data() + off) + 1);
      pdata::stamp_checksum(v.contents.data(), pdata::checksum_salt::superblock);
      vs.push_back(std::move(v));
    }
    EXPECT_GE(vs.size(), 3u) << scenario;
    for (auto &v : vs) {
      SCOPED_TRACE(v.name);
      io.write(v.block, v.contents.data(), 1);
      auto exact = run(io, true);
      ASSERT_FALSE(exact.records.empty());
      for (auto &d : exact.records) {
        EXPECT_TRUE(d.hint && !d.fatal) << describe(d);
        EXPECT_EQ(thin::info(d.id).sev, thin::severity::hint) << describe(d);
      }
      EXPECT_TRUE(exact.result.clean() && exact.result.hints);
      thin::superblock sb = thin::read_superblock(io, 0);
      test::recording_reporter r;
      unsigned stages = 0;
      std::vector<thin::damage> hints;
      ASSERT_TRUE(thin::detail::fast_check(io, sb, sb, r, stages, hints)) << "the fast path gave up";
      ASSERT_EQ(hints.size(), exact.records.size());
      for (std::size_t i = 0; i < hints.size(); i++) EXPECT_EQ(describe(hints[i]), describe(exact.records[i]));
      auto fast = run(io, false);
      EXPECT_EQ(differences(fast, exact), "");
      io.write(v.block, img.block(v.block), 1);
    }
  }
}

}  // namespace
