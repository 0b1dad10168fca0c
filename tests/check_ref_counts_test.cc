// Reference counts changed by hand. A count above the references found is a
// leak (non-fatal: the metadata still means the same, some space is lost); a
// count below them is fatal (the kernel would free a block still in use); a
// bitmap value of 3 needs an entry in the reference count tree. Counts are
// edited in the space maps with checksums recomputed, so only the counting
// can catch them. Also the space-map roots' nr_allocated and the device
// details' mapped_blocks, off by one. Each time the catalogue problem (id)
// reported is asserted, not only its severity.
#include <gtest/gtest.h>

#include <chrono>
#include <iostream>
#include <fmt/format.h>
#include <cstdlib>

#include "support/damage_support.h"
#include "thin/format/thin_trees.h"
#include "persistent-data/block_cache.h"
#include "persistent-data/btree_node.h"
#include "persistent-data/endian.h"
#include "persistent-data/space_map_disk.h"
#include "thin/format/superblock_disk.h"
#include "persistent-data/space_map_reader.h"

namespace {

using dmg::block_address;
using thin::problem_id;
using namespace std::chrono_literals;

using loaded = dmg::analysed_fixture;

// The leaf block and entry index holding `key` in the btree at `root`, found
// as the kernel looks keys up.
std::optional<std::pair<block_address, uint32_t>> find_entry(const dmg::image &img, block_address root, uint64_t key) {
  block_address b = root;
  for (unsigned depth = 0; depth < 32; depth++) {
    pdata::btree_node_view n(img.block(b));
    int i = -1;
    for (uint32_t j = 0; j < n.nr_entries() && n.key(j) <= key; j++) i = static_cast<int>(j);
    if (i < 0) return std::nullopt;
    if (n.is_internal()) {
      b = n.value64(static_cast<uint32_t>(i));
      continue;
    }
    if (n.key(static_cast<uint32_t>(i)) != key) return std::nullopt;
    return std::make_pair(b, static_cast<uint32_t>(i));
  }
  return std::nullopt;
}

// A variant setting block b's count in one space map to `count`: the 2-bit
// bitmap entry for counts below 3, the reference count tree entry when the
// count is and stays 3 or more. Nothing when that takes a tree insert.
std::optional<dmg::variant> count_variant(const loaded &f, bool data, block_address b, uint32_t count,
                                          dmg::expect want) {
  const pdata::ref_counts &counts = data ? f.L.data_counts : f.L.meta_counts;
  const uint32_t old = counts.get(b);
  std::string name = fmt::format("{}: {} block {} count {} -> {}", f.img.name, data ? "data" : "metadata", b, old,
                                 count);
  if (count < 3) {
    auto e = dmg::with_count_bits(f.img, f.L, data, b, count);
    return dmg::variant{name, e.bitmap, std::move(e.contents), want};
  }
  if (old < 3) return std::nullopt;
  const auto root = (data ? f.L.sb.data_sm_root() : f.L.sb.metadata_sm_root()).ref_count_root.get();
  auto at = find_entry(f.img, root, b);
  if (!at) return std::nullopt;
  auto contents = f.img.copy_block(at->first);
  pdata::btree_node_view n(contents.data());
  const std::size_t off = static_cast<std::size_t>(n.value_ptr(at->second) - contents.data());
  dmg::put32(contents, off, count);
  pdata::stamp_checksum(contents.data(), pdata::checksum_salt::btree_node);
  return dmg::variant{name + " (in the reference count tree)", at->first, std::move(contents), want};
}

// A record of problem `id` covering block b and saying "expected E, but got A".
bool has_count_record(const dmg::check_outcome &o, problem_id id, block_address b, uint32_t expected, uint32_t got) {
  std::string text = fmt::format("expected {}, but got {}", expected, got);
  for (auto &d : o.records)
    if (d.id == id && d.keys && d.keys->contains(b) && d.what.find(text) != std::string::npos) return true;
  return false;
}

bool has_record(const dmg::check_outcome &o, problem_id id, const std::string &text = "") {
  for (auto &d : o.records)
    if (d.id == id && d.what.find(text) != std::string::npos) return true;
  return false;
}

struct tally {
  std::size_t variants = 0;
  std::vector<std::string> failures;
  void fail(const std::string &what) { failures.push_back(what); }
  std::string list() const {
    std::string out;
    for (std::size_t i = 0; i < failures.size() && i < 25; i++) out += "\n  " + failures[i];
    if (failures.size() > 25) out += fmt::format("\n  ... and {} more", failures.size() - 25);
    return out;
  }
};

// Raises (leak) and lowers (under-count, and to zero) every counted block of
// one space map, checking each in-process.
tally vary_every_count(const loaded &f, bool data, dmg::watchdog &dog) {
  const pdata::ref_counts &counts = data ? f.L.data_counts : f.L.meta_counts;
  dmg::damage_runner runner(f.img);
  tally t;
  for (block_address b = 0; b < counts.size(); b++) {
    const uint32_t c = counts.get(b);
    if (!c) continue;
    struct change {
      uint32_t to;
      dmg::expect want;
      bool fatal;
    };
    std::vector<change> changes = {{c + 1, dmg::expect::leak, false}, {c - 1, dmg::expect::fatal, true}};
    if (c > 1) changes.push_back({0, dmg::expect::fatal, true});
    for (change ch : changes) {
      auto v = count_variant(f, data, b, ch.to, ch.want);
      if (!v) continue;
      dog.step(v->name);
      dmg::check_outcome o;
      const problem_id id = data ? (ch.fatal ? problem_id::DATA_REFCOUNT_UNDER : problem_id::DATA_REFCOUNT_LEAK)
                                 : (ch.fatal ? problem_id::METADATA_REFCOUNT_UNDER : problem_id::METADATA_REFCOUNT_LEAK);
      if (auto why = runner.run(*v, &o)) t.fail(v->name + ": " + *why);
      else if (!has_count_record(o, id, b, c, ch.to))
        t.fail(v->name + ": no " + thin::to_string(id) + " record for the block: " + o.describe());
    }
  }
  t.variants = runner.total();
  std::cout << f.img.name << ": " << t.variants << " " << (data ? "data" : "metadata") << " count changes\n";
  return t;
}

class check_ref_counts : public ::testing::TestWithParam<std::string> {};

TEST_P(check_ref_counts, every_metadata_block_count_raised_is_a_leak_and_lowered_is_fatal) {
  dmg::watchdog dog(20s, 120s);
  loaded f = dmg::load_analysed(GetParam());
  tally t = vary_every_count(f, false, dog);
  EXPECT_GE(t.variants, 2 * f.L.used.size());
  EXPECT_TRUE(t.failures.empty()) << t.failures.size() << " of " << t.variants << ":" << t.list();
}

TEST_P(check_ref_counts, every_data_block_count_raised_is_a_leak_and_lowered_is_fatal) {
  dmg::watchdog dog(20s, 120s);
  loaded f = dmg::load_analysed(GetParam());
  tally t = vary_every_count(f, true, dog);
  EXPECT_GE(t.variants, 2 * f.L.data_counts.nr_allocated());
  EXPECT_TRUE(t.failures.empty()) << t.failures.size() << " of " << t.variants << ":" << t.list();
}

TEST_P(check_ref_counts, a_bitmap_count_of_three_without_a_reference_count_tree_entry_is_fatal) {
  dmg::watchdog dog(20s, 120s);
  loaded f = dmg::load_analysed(GetParam());
  dmg::damage_runner runner(f.img);
  for (bool data : {false, true}) {
    const pdata::ref_counts &counts = data ? f.L.data_counts : f.L.meta_counts;
    std::size_t tried = 0;
    for (block_address b = 0; b < counts.size() && tried < 8; b++) {
      if (counts.get(b) == 0 || counts.get(b) >= 3) continue;
      auto e = dmg::with_count_bits(f.img, f.L, data, b, 3);
      dmg::variant v{
          fmt::format("{}: {} block {}: bitmap value 3, no tree entry", f.img.name, data ? "data" : "metadata", b),
          e.bitmap, std::move(e.contents), dmg::expect::fatal};
      SCOPED_TRACE(v.name);
      dog.step(v.name);
      dmg::check_outcome o;
      auto why = runner.run(v, &o);
      EXPECT_FALSE(why) << *why;
      EXPECT_TRUE(has_record(o, problem_id::SM_COUNT_WITHOUT_OVERFLOW_ENTRY,
                             fmt::format("{} space map: block {} has count 3+ in its bitmap but no entry",
                                         data ? "data" : "metadata", b)))
          << o.describe();
      tried++;
    }
    EXPECT_GT(tried, 0u);
  }
}

// The space-map root's nr_allocated, rewritten in the superblock.
dmg::variant nr_allocated_variant(const loaded &f, bool data, int delta) {
  const std::size_t off = (data ? offsetof(thin::superblock_disk, data_space_map_root)
                                : offsetof(thin::superblock_disk, metadata_space_map_root)) +
                          offsetof(pdata::disk_sm_root, nr_allocated);
  const uint64_t was = (data ? f.L.sb.data_sm_root() : f.L.sb.metadata_sm_root()).nr_allocated.get();
  dmg::variant v{fmt::format("{}: {} space map nr_allocated {} -> {}", f.img.name, data ? "data" : "metadata", was,
                             was + static_cast<uint64_t>(static_cast<int64_t>(delta))),
                 0, f.img.copy_block(0), dmg::expect::leak};
  dmg::put64(v.contents, off, was + static_cast<uint64_t>(static_cast<int64_t>(delta)));
  pdata::stamp_checksum(v.contents.data(), pdata::checksum_salt::superblock);
  return v;
}

// Bitmaps holding more allocations than the root's nr_allocated says is a
// leak whose root count was not raised (thin_restore and the kernel count
// from the bitmaps; auto-repair rewrites the root); holding fewer only hides
// free space (a hint). Neither is fatal.
TEST_P(check_ref_counts, nr_allocated_one_too_low_in_a_space_map_root_is_a_leak_and_one_too_high_a_hint) {
  loaded f = dmg::load_analysed(GetParam());
  dmg::damage_runner runner(f.img);
  for (bool data : {false, true})
    for (int delta : {-1, +1}) {
      auto v = nr_allocated_variant(f, data, delta);
      SCOPED_TRACE(v.name);
      dmg::check_outcome o;
      auto why = runner.run(v, &o);
      EXPECT_FALSE(why) << *why;
      const uint64_t was = (data ? f.L.sb.data_sm_root() : f.L.sb.metadata_sm_root()).nr_allocated.get();
      EXPECT_FALSE(o.fatal()) << o.describe();
      EXPECT_TRUE(has_record(o,
                             delta < 0 ? problem_id::SM_NR_ALLOCATED_UNDERSTATED : problem_id::SM_NR_ALLOCATED_OVERSTATED,
                             fmt::format("{} space map root says {} blocks are allocated, but the bitmaps hold {}",
                                         data ? "data" : "metadata",
                                         was + static_cast<uint64_t>(static_cast<int64_t>(delta)), was)))
          << o.describe();
      EXPECT_EQ(o.result.non_fatal, delta < 0);
      EXPECT_EQ(o.result.hints, delta > 0);
    }
}

// Device details entries (live, and the metadata snapshot's when one is held)
// with mapped_blocks off by one.
std::vector<std::pair<dmg::variant, uint64_t>> mapped_blocks_variants(const loaded &f) {
  std::vector<std::pair<dmg::variant, uint64_t>> out;
  auto add_tree = [&](block_address details_root, const std::vector<uint64_t> &devs, const char *which) {
    for (uint64_t dev : devs) {
      auto at = find_entry(f.img, details_root, dev);
      if (!at) continue;
      pdata::btree_node_view n(f.img.block(at->first));
      const std::size_t off = static_cast<std::size_t>(n.value_ptr(at->second) - f.img.block(at->first));
      const uint64_t mapped = pdata::load_le64(f.img.block(at->first) + off);
      for (int delta : {-1, +1}) {
        if (delta < 0 && mapped == 0) continue;
        uint64_t now = mapped + static_cast<uint64_t>(static_cast<int64_t>(delta));
        dmg::variant v{fmt::format("{}: {}device {} mapped_blocks {} -> {}", f.img.name, which, dev, mapped, now),
                       at->first, f.img.copy_block(at->first), dmg::expect::fatal};
        dmg::put64(v.contents, off, now);
        pdata::stamp_checksum(v.contents.data(), pdata::checksum_salt::btree_node);
        out.emplace_back(std::move(v), dev);
      }
    }
  };
  std::vector<uint64_t> live;
  for (auto &[dev, root] : f.L.devices) live.push_back(dev);
  add_tree(f.L.sb.details_root, live, "");
  if (f.L.sb.held_root) {
    pdata::memory_block_io io(f.img.bytes);
    thin::superblock snap = thin::read_superblock(io, f.L.sb.held_root);
    std::vector<uint64_t> devs;
    pdata::block_cache cache(io);
    for (auto &[dev, d] : thin::read_details_tree(cache, snap.details_root, [](const pdata::btree_damage &) {}))
      devs.push_back(dev);
    add_tree(snap.details_root, devs, "metadata snapshot: ");
  }
  return out;
}

TEST_P(check_ref_counts, mapped_blocks_off_by_one_in_any_devices_details_is_fatal) {
  dmg::watchdog dog(20s, 120s);
  loaded f = dmg::load_analysed(GetParam());
  dmg::damage_runner runner(f.img);
  auto variants = mapped_blocks_variants(f);
  EXPECT_GE(variants.size(), f.L.devices.size());
  tally t;
  for (auto &[v, dev] : variants) {
    dog.step(v.name);
    dmg::check_outcome o;
    if (auto why = runner.run(v, &o)) t.fail(v.name + ": " + *why);
    bool named = false;
    for (auto &d : o.records) named |= d.id == problem_id::DEVICE_MAPPED_BLOCKS_MISMATCH && d.fatal && d.dev_id == dev;
    if (!named) t.fail(v.name + ": no DEVICE_MAPPED_BLOCKS_MISMATCH record for the device: " + o.describe());
  }
  EXPECT_TRUE(t.failures.empty()) << t.failures.size() << " of " << variants.size() << ":" << t.list();
}

//------------------------------------------------------------------ the real tool

struct tool_verdict {
  test::run_result plain, ignoring;
};

// Runs thin_check, then thin_check --ignore-non-fatal-errors, on the image
// with one variant applied; the file must come back unchanged.
tool_verdict run_thin_check(dmg::scratch_image &file, const dmg::variant &v) {
  file.put_block(v.block, v.contents.data());
  tool_verdict r{test::run_tool("thin_check", {file.path()}, "", 60),
                 test::run_tool("thin_check", {"--ignore-non-fatal-errors", file.path()}, "", 60)};
  EXPECT_TRUE(file.holds(v.block, v.contents)) << "thin_check changed the metadata file";
  EXPECT_EQ(r.plain.signal, 0);
  EXPECT_EQ(r.ignoring.signal, 0);
  file.restore(v.block);
  return r;
}

// The first block after block 0 with count `c` in a space map.
block_address first_with_count(const loaded &f, bool data, uint32_t c) {
  const pdata::ref_counts &counts = data ? f.L.data_counts : f.L.meta_counts;
  for (block_address b = 1; b < counts.size(); b++)
    if (counts.get(b) == c) return b;
  ADD_FAILURE() << "no block with count " << c;
  return 0;
}

TEST_P(check_ref_counts, thin_check_fails_a_leak_but_passes_it_with_ignore_non_fatal_errors) {
  loaded f = dmg::load_analysed(GetParam());
  std::vector<dmg::variant> leaks;
  for (bool data : {false, true})
    leaks.push_back(*count_variant(f, data, first_with_count(f, data, 1), 2, dmg::expect::leak));
  test::temp_dir dir;
  dmg::scratch_image file(f.img, dir);
  for (auto &v : leaks) {
    SCOPED_TRACE(v.name);
    auto r = run_thin_check(file, v);
    EXPECT_EQ(r.plain.exit_code, 1) << r.plain.err;
    EXPECT_NE(r.plain.err.find("(non-fatal) "), std::string::npos) << r.plain.err;
    EXPECT_NE(r.plain.err.find("(non-fatal problems only)"), std::string::npos) << r.plain.err;
    EXPECT_EQ(r.ignoring.exit_code, 0) << r.ignoring.err;
  }
}

// A stale hint that only hides free space (here a root's nr_allocated one
// too high, as thin_restore 0.9.0 leaves it) is recorded as a hint, but is no
// problem: thin_check passes silently, as 0.9.0 and 1.x do, and prints
// exactly what it prints for the untouched image.
TEST_P(check_ref_counts, thin_check_passes_a_stale_space_map_hint_silently) {
  loaded f = dmg::load_analysed(GetParam());
  test::temp_dir dir;
  dmg::scratch_image file(f.img, dir);
  auto untouched = test::run_tool("thin_check", {file.path()}, "", 60);
  ASSERT_EQ(untouched.exit_code, 0) << untouched.err;
  dmg::damage_runner runner(f.img);
  for (bool data : {false, true}) {
    auto v = nr_allocated_variant(f, data, +1);
    SCOPED_TRACE(v.name);
    dmg::check_outcome o;
    auto why = runner.run(v, &o);
    EXPECT_FALSE(why) << *why;
    EXPECT_TRUE(o.result.clean() && o.result.hints && !o.result.spotless()) << o.describe();
    auto r = run_thin_check(file, v);
    EXPECT_EQ(r.plain.exit_code, 0) << r.plain.err;
    EXPECT_EQ(r.plain.out, untouched.out);
    EXPECT_EQ(r.plain.err, untouched.err);
  }
}

TEST_P(check_ref_counts, thin_check_fails_an_under_count_even_with_ignore_non_fatal_errors) {
  loaded f = dmg::load_analysed(GetParam());
  std::vector<dmg::variant> bad;
  for (bool data : {false, true}) {
    block_address one = first_with_count(f, data, 1);
    bad.push_back(*count_variant(f, data, one, 0, dmg::expect::fatal));
    auto e = dmg::with_count_bits(f.img, f.L, data, one, 3);
    bad.push_back({fmt::format("{}: {} block {}: bitmap value 3, no tree entry", f.img.name,
                               data ? "data" : "metadata", one),
                   e.bitmap, std::move(e.contents), dmg::expect::fatal});
    // A shared block (count 2) counted once.
    const pdata::ref_counts &counts = data ? f.L.data_counts : f.L.meta_counts;
    for (block_address b = 0; b < counts.size(); b++)
      if (counts.get(b) == 2) {
        bad.push_back(*count_variant(f, data, b, 1, dmg::expect::fatal));
        break;
      }
  }
  bad.push_back(mapped_blocks_variants(f).front().first);
  dmg::damage_runner runner(f.img);
  test::temp_dir dir;
  dmg::scratch_image file(f.img, dir);
  for (auto &v : bad) {
    SCOPED_TRACE(v.name);
    dmg::check_outcome o;
    auto why = runner.run(v, &o);
    ASSERT_FALSE(why) << *why;
    auto r = run_thin_check(file, v);
    EXPECT_EQ(r.plain.exit_code, 1) << r.plain.err;
    EXPECT_EQ(r.ignoring.exit_code, 1) << r.ignoring.err;
    EXPECT_NE(r.ignoring.err.find(o.first_fatal()->what), std::string::npos) << r.ignoring.err;
  }
}

// Regression: bitmaps holding more allocations than the root's nr_allocated
// (a leak whose root count was not raised) used to be called fatal, and
// --auto-repair and --clear-needs-check-flag refused it; thin_check 0.9.0's
// tools repair it. It is a leak: thin_check fails it as non-fatal,
// --auto-repair (and the activation call's leak repair) rewrites the space
// map, after which the root counts what the bitmaps hold, a re-check is
// spotless, and thin_check 0.9.0 (when installed) accepts the result.
TEST_P(check_ref_counts, a_root_nr_allocated_below_its_bitmaps_is_repaired_by_auto_repair_and_the_activation_call) {
  loaded f = dmg::load_analysed(GetParam());
  for (bool data : {false, true})
    for (const char *how : {"--auto-repair", "--clear-needs-check-flag"}) {
      auto v = nr_allocated_variant(f, data, -1);
      SCOPED_TRACE(v.name + " with " + how);
      test::temp_dir dir;
      dmg::scratch_image file(f.img, dir);
      file.put_block(v.block, v.contents.data());
      auto plain = test::run_tool("thin_check", {file.path()}, "", 60);
      EXPECT_EQ(plain.exit_code, 1) << plain.err;
      EXPECT_NE(plain.err.find("(non-fatal) "), std::string::npos) << plain.err;
      auto fixed = test::run_tool("thin_check", {how, file.path()}, "", 60);
      EXPECT_EQ(fixed.exit_code, 0) << fixed.err;
      auto again = test::run_tool("thin_check", {file.path()}, "", 60);
      EXPECT_EQ(again.exit_code, 0) << again.err;
      dmg::image repaired{f.img.name, test::read_binary(file.path())};
      pdata::memory_block_io io(repaired.bytes);
      auto o = dmg::run_check(io);
      EXPECT_TRUE(o.records.empty() && o.result.spotless()) << o.describe();
      // The root counts what the bitmaps hold (the data space map's: what it
      // held before the damage; the metadata one grew by the rewrite).
      thin::superblock sb = thin::read_superblock(io, 0);
      const pdata::disk_sm_root root = data ? sb.data_sm_root() : sb.metadata_sm_root();
      pdata::block_cache cache(io);
      test::space_map_problems pl;
      auto sm = pdata::read_space_map(cache, root, data ? pdata::space_map_kind::data : pdata::space_map_kind::metadata,
                                      pl);
      EXPECT_EQ(root.nr_allocated.get(), sm.counts.nr_allocated());
      if (data) {
        EXPECT_EQ(root.nr_allocated.get(), f.L.data_counts.nr_allocated());
      }
      if (test::debian_tools_installed({"thin_check"})) {
        const std::string log = dir.file("oracle.log");
        EXPECT_EQ(std::system((test::debian_tool("thin_check") + " " + file.path() + " >" + log + " 2>&1").c_str()), 0)
            << test::read_file(log);
      }
    }
}

INSTANTIATE_TEST_SUITE_P(fixtures, check_ref_counts, ::testing::Values("basic", "snapshots", "discard-metasnap", "btree"),
                         [](const ::testing::TestParamInfo<std::string> &p) {
                           std::string s = p.param;
                           for (auto &c : s)
                             if (c == '-') c = '_';
                           return s;
                         });

}  // namespace
