// thin_check against damaged metadata: every used metadata block of the
// kernel-written fixtures is, in turn, zeroed, has single bits flipped, and
// gets structural damage with its checksum recomputed. The checker runs
// in-process on each damaged image and must not throw, must return, and must
// report fatal damage, unless the change provably leaves the metadata meaning
// the same (see damage_support.h for the oracle). A sample also goes through
// the real thin_check binary.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <fmt/format.h>

#include "support/damage_support.h"
#include "persistent-data/btree_node.h"

namespace {

using dmg::block_address;
using namespace std::chrono_literals;

using loaded = dmg::analysed_fixture;

enum class pass { zero, flip, structural };

std::vector<dmg::variant> variants_of(const loaded &f, pass p, block_address b) {
  switch (p) {
    case pass::zero: return {dmg::zero_variant(f.img, f.L, b)};
    case pass::flip: return dmg::flip_variants(f.img, f.L, b);
    case pass::structural: return dmg::structural_variants(f.img, f.L, b);
  }
  return {};
}

const char *to_string(pass p) {
  switch (p) {
    case pass::zero: return "zeroed";
    case pass::flip: return "bit flips";
    case pass::structural: return "structural";
  }
  return "?";
}

struct pass_summary {
  std::size_t variants = 0, fatal = 0, non_fatal_only = 0, clean = 0;
  std::vector<std::string> failures;
};

// Runs pass `p` over every used block of a fixture, in-process. With
// THINKIT_DAMAGE_VERBOSE set, it lists every variant the checker did not
// call fatal (to review what the oracle accepted as harmless).
pass_summary run_pass(const loaded &f, pass p, dmg::watchdog &dog) {
  dmg::damage_runner runner(f.img);
  pass_summary s;
  for (block_address b : f.L.used) {
    for (auto &v : variants_of(f, p, b)) {
      dog.step(v.name);
      dmg::check_outcome o;
      if (auto fail = runner.run(v, &o)) s.failures.push_back(v.name + " [" + dmg::to_string(v.want) + "]: " + *fail);
      if (std::getenv("THINKIT_DAMAGE_VERBOSE") && !o.fatal())
        std::cout << "  not fatal: " << v.name << ": " << o.describe() << "\n";
    }
  }
  s.variants = runner.total();
  s.fatal = runner.fatal();
  s.non_fatal_only = runner.non_fatal_only();
  s.clean = runner.clean();
  std::cout << f.img.name << ", " << to_string(p) << ": " << s.variants << " variants of " << f.L.used.size()
            << " used blocks; " << s.fatal << " fatal, " << s.non_fatal_only << " non-fatal only, " << s.clean
            << " clean\n";
  return s;
}

std::string list(const std::vector<std::string> &failures, std::size_t max = 25) {
  std::string out;
  for (std::size_t i = 0; i < failures.size() && i < max; i++) out += "\n  " + failures[i];
  if (failures.size() > max) out += fmt::format("\n  ... and {} more", failures.size() - max);
  return out;
}

//------------------------------------------------------------------ the harness itself

TEST(check_damage_harness, every_used_block_of_every_fixture_is_reachable_and_validates_as_what_it_is) {
  for (auto &scenario : test::kernel_scenarios()) {
    SCOPED_TRACE(scenario);
    loaded f = dmg::load_analysed(scenario);
    EXPECT_TRUE(f.L.problems.empty()) << list(f.L.problems);
    ASSERT_FALSE(f.L.used.empty());
    std::set<block_address> reachable;
    for (auto &[b, r] : f.L.roles) {
      reachable.insert(b);
      EXPECT_EQ(dmg::identify(f.img.block(b), b), dmg::expected_type(r))
          << "block " << b << " is reached as a " << dmg::to_string(r);
    }
    // The space map counts exactly the blocks reachable from the superblock.
    EXPECT_EQ(reachable, f.L.used);
    // And the undamaged image is clean to the in-process checker.
    pdata::memory_block_io io(f.img.bytes);
    auto o = dmg::run_check(io);
    EXPECT_FALSE(o.exception) << *o.exception;
    EXPECT_TRUE(o.records.empty()) << o.describe();
    EXPECT_TRUE(o.result.fully_examined);
  }
}

TEST(check_damage_harness, the_oracle_tells_a_changed_meaning_from_an_unchanged_one) {
  loaded f = dmg::load_analysed("basic");
  dmg::damage_runner runner(f.img);
  // A variant that changes a mapping but is not caught would be judged a
  // failure by fatal_or_same_meaning: check the meaning really differs.
  block_address leaf = 0;
  for (auto &[b, r] : f.L.roles)
    if (r == dmg::role::bottom_leaf) leaf = b;
  ASSERT_NE(leaf, 0u);
  auto contents = f.img.copy_block(leaf);
  pdata::btree_node_view n(contents.data());
  ASSERT_GT(n.nr_entries(), 0u);
  std::size_t v0 = pdata::node_header_size + 8 * std::size_t(n.max_entries());
  uint64_t bt = dmg::get64(contents, v0);
  dmg::put64(contents, v0, thin::pack_block_time(thin::unpack_block(bt) + 1000, thin::unpack_time(bt)));
  pdata::stamp_checksum(contents.data(), pdata::checksum_salt::btree_node);
  runner.io().write(leaf, contents.data(), 1);
  EXPECT_NE(dmg::meaning_of(runner.io()), runner.original_meaning());
  // A count raised in a bitmap changes the counts part of the meaning.
  runner.io().write(leaf, f.img.block(leaf), 1);
  EXPECT_EQ(dmg::meaning_of(runner.io()), runner.original_meaning());
  auto raised = dmg::with_count_bits(f.img, f.L, false, leaf, 2);
  runner.io().write(raised.bitmap, raised.contents.data(), 1);
  EXPECT_NE(dmg::meaning_of(runner.io()), runner.original_meaning());
}

//------------------------------------------------------------------ per fixture

class check_damage : public ::testing::TestWithParam<std::string> {};

TEST_P(check_damage, zeroing_any_used_metadata_block_is_fatal) {
  dmg::watchdog dog(20s, 120s);
  loaded f = dmg::load_analysed(GetParam());
  auto s = run_pass(f, pass::zero, dog);
  EXPECT_EQ(s.variants, f.L.used.size());
  EXPECT_TRUE(s.failures.empty()) << s.failures.size() << " of " << s.variants << " variants:" << list(s.failures);
}

TEST_P(check_damage, flipping_one_bit_anywhere_in_a_used_block_is_fatal) {
  dmg::watchdog dog(20s, 120s);
  loaded f = dmg::load_analysed(GetParam());
  auto s = run_pass(f, pass::flip, dog);
  EXPECT_GE(s.variants, 8 * f.L.used.size());
  EXPECT_TRUE(s.failures.empty()) << s.failures.size() << " of " << s.variants << " variants:" << list(s.failures);
}

TEST_P(check_damage, structural_damage_behind_a_valid_checksum_is_fatal_unless_the_meaning_is_unchanged) {
  dmg::watchdog dog(20s, 120s);
  loaded f = dmg::load_analysed(GetParam());
  auto s = run_pass(f, pass::structural, dog);
  EXPECT_GE(s.variants, 10 * f.L.used.size());
  EXPECT_TRUE(s.failures.empty()) << s.failures.size() << " of " << s.variants << " variants:" << list(s.failures);
}

// Every `stride`-th damaged image (of all three kinds) goes through the
// built thin_check: where the library finds fatal damage the tool must exit 1
// (with --ignore-non-fatal-errors too) and print what was found on stderr,
// and it must never die of a signal or change the file.
void sample_through_thin_check(const std::string &scenario, std::size_t stride) {
  dmg::watchdog dog(60s, 300s);
  loaded f = dmg::load_analysed(scenario);
  test::temp_dir dir;
  dmg::scratch_image file(f.img, dir);
  dmg::damage_runner runner(f.img);
  std::size_t n = 0, sampled = 0, fatal = 0;
  for (pass p : {pass::zero, pass::flip, pass::structural})
    for (block_address b : f.L.used)
      for (auto &v : variants_of(f, p, b)) {
        if (n++ % stride != 0) continue;
        dog.step(v.name);
        SCOPED_TRACE(v.name);
        dmg::check_outcome o;
        auto why = runner.run(v, &o);
        EXPECT_FALSE(why) << *why;
        ASSERT_FALSE(o.exception) << *o.exception;
        file.put_block(v.block, v.contents.data());
        auto r = test::run_tool("thin_check", {file.path()}, "", 60);
        sampled++;
        EXPECT_EQ(r.signal, 0);
        if (o.fatal()) {
          fatal++;
          EXPECT_EQ(r.exit_code, 1) << r.err;
          EXPECT_NE(r.err.find(o.first_fatal()->what), std::string::npos) << r.err;
          auto strict = test::run_tool("thin_check", {"--ignore-non-fatal-errors", file.path()}, "", 60);
          EXPECT_EQ(strict.exit_code, 1) << strict.err;
          EXPECT_EQ(strict.signal, 0);
        } else {
          // Leaks fail the plain check; stale space-map hints alone do not,
          // and are not printed.
          EXPECT_EQ(r.exit_code, o.non_fatal() ? 1 : 0) << r.err;
          if (!o.non_fatal()) {
            EXPECT_EQ(r.err.find("(non-fatal)"), std::string::npos) << r.err;
          }
        }
        EXPECT_TRUE(file.holds(v.block, v.contents)) << "thin_check changed the metadata file";
        file.restore(v.block);
      }
  EXPECT_GE(sampled, n / stride);
  EXPECT_GT(fatal, sampled / 2);
  std::cout << scenario << ": " << sampled << " of " << n << " damaged images run through thin_check, " << fatal
            << " fatal\n";
}

TEST_P(check_damage, thin_check_rejects_every_tenth_damaged_image_and_leaves_it_unchanged) {
  sample_through_thin_check(GetParam(), 10);
}

// `basic` (2 devices) and `snapshots` (shared subtrees) as the issue asks,
// and the other small fixtures: a held metadata snapshot, a log-writes
// replay, 192 KiB data blocks.
INSTANTIATE_TEST_SUITE_P(fixtures, check_damage,
                         ::testing::Values("basic", "snapshots", "discard-metasnap", "logwrites", "bigblock"),
                         test::scenario_name);

//------------------------------------------------------------------ the btree fixture

// 80 MiB of metadata, 301 devices, two-level trees on both the details and
// the mapping side, two bitmaps per space map.
TEST(check_damage_btree, zeroing_any_used_block_of_the_btree_fixture_is_fatal) {
  dmg::watchdog dog(20s, 300s);
  loaded f = dmg::load_analysed("btree");
  auto s = run_pass(f, pass::zero, dog);
  EXPECT_EQ(s.variants, f.L.used.size());
  EXPECT_TRUE(s.failures.empty()) << s.failures.size() << " of " << s.variants << " variants:" << list(s.failures);
}

// The btree fixture is where internal nodes are (the small fixtures' trees
// are single leaves), so child pointers, cycles and parent key ranges are
// exercised here. Every used block, every kind of damage.
TEST(check_damage_btree, flipping_one_bit_anywhere_in_a_used_block_of_the_btree_fixture_is_fatal) {
  dmg::watchdog dog(20s, 300s);
  loaded f = dmg::load_analysed("btree");
  auto s = run_pass(f, pass::flip, dog);
  EXPECT_GE(s.variants, 8 * f.L.used.size());
  EXPECT_TRUE(s.failures.empty()) << s.failures.size() << " of " << s.variants << " variants:" << list(s.failures);
}

TEST(check_damage_btree, thin_check_rejects_a_sample_of_damaged_btree_fixtures_and_leaves_them_unchanged) {
  sample_through_thin_check("btree", 300);
}

TEST(check_damage_btree, structural_damage_in_the_btree_fixture_is_fatal_unless_the_meaning_is_unchanged) {
  dmg::watchdog dog(20s, 300s);
  loaded f = dmg::load_analysed("btree");
  auto s = run_pass(f, pass::structural, dog);
  EXPECT_GE(s.variants, 10 * f.L.used.size());
  // Internal nodes were damaged too.
  std::size_t internal = 0;
  for (block_address b : f.L.used) internal += dmg::is_internal(f.L.roles.at(b));
  EXPECT_GT(internal, 3u);
  EXPECT_TRUE(s.failures.empty()) << s.failures.size() << " of " << s.variants << " variants:" << list(s.failures);
}

}  // namespace
