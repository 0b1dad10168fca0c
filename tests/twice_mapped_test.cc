// A data block mapped twice within one thin device (invariants.h): dm-thin
// decides sharing by time, not by count, so a write through one mapping would
// silently change the other. thin_restore refuses it (naming the line and
// both virtual blocks); thin_check reports it as fatal, and its fast path
// hands such metadata over to the exact checker, so both give the same
// records. The same block in two devices (a snapshot) stays fine.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "support/damage_support.h"
#include "persistent-data/block_cache.h"
#include "persistent-data/btree_node.h"
#include "persistent-data/checksum.h"
#include "support/test_support.h"
#include "thin/check/fast_check.h"
#include "thin/format/data_block_set.h"
#include "thin/format/thin_trees.h"
#include "persistent-data/endian.h"

namespace {

using test::make_file;

const std::string sb_line =
    "<superblock uuid=\"\" time=\"0\" transaction=\"1\" flags=\"0\" version=\"2\" data_block_size=\"128\" "
    "nr_data_blocks=\"100\">\n";
const std::string end_dev = "  </device>\n", end_sb = "</superblock>\n";

test::run_result restore(const test::temp_dir &t, const std::string &xml, const std::string &out) {
  std::string in = t.file("in.xml");
  test::write_binary(in, {xml.begin(), xml.end()});
  make_file(out, 8 << 20);
  return test::run_tool("thin_restore", {"-i", in, "-o", out});
}

struct twice_case {
  std::string name, body;
  uint64_t line;
  std::string fragment;
};

TEST(twice_mapped, restore_refuses_a_data_block_mapped_twice_in_one_device_naming_the_line_and_both_blocks) {
  const std::string def = "  <def name=\"d\">\n" + test::xml_single(10, 5) + "  </def>\n";
  const std::vector<twice_case> cases = {
      {"two_singles", test::xml_device(1) + test::xml_single(0, 5) + test::xml_single(3, 5) + end_dev, 4,
       "device 1 maps data block 5 twice: by virtual block 0 and by virtual block 3"},
      {"a_single_inside_an_earlier_range", test::xml_device(1) + test::xml_range(0, 10, 5) + test::xml_single(9, 12) + end_dev, 4,
       "device 1 maps data block 12 twice: by virtual block 2 and by virtual block 9"},
      {"a_range_overlapping_itself_across_devices_is_fine_but_not_within", test::xml_device(1) + test::xml_range(0, 10, 2) + end_dev +
       test::xml_device(2) + test::xml_range(0, 10, 2) + test::xml_range(5, 11, 1) + end_dev, 7,
       "device 2 maps data block 11 twice: by virtual block 1 and by virtual block 5"},
      {"a_ref_whose_def_maps_a_block_the_device_maps", def + test::xml_device(1) + test::xml_single(0, 5) + "    <ref name=\"d\"/>\n" + end_dev,
       7, "device 1 maps data block 5 twice: by virtual block 0 and by virtual block 10"},
      {"a_range_reaching_into_an_earlier_range_names_its_first_shared_block",
       test::xml_device(1) + test::xml_range(0, 40, 50) + test::xml_range(200, 10, 60) + end_dev, 4,
       "device 1 maps data block 40 twice: by virtual block 0 and by virtual block 230"},
      {"a_ref_whose_def_run_reaches_into_the_device_s_range",
       "  <def name=\"d\">\n" + test::xml_range(100, 30, 40) + "  </def>\n" + test::xml_device(1) +
           test::xml_range(0, 60, 20) + "    <ref name=\"d\"/>\n" + end_dev,
       7, "device 1 maps data block 60 twice: by virtual block 0 and by virtual block 130"},
      {"within_a_def", "  <def name=\"d\">\n" + test::xml_single(1, 7) + test::xml_single(2, 7) + "  </def>\n", 4,
       "<def name=\"d\"> maps data block 7 twice: by virtual block 1 and by virtual block 2"},
  };
  for (auto &c : cases) {
    SCOPED_TRACE(c.name);
    test::temp_dir t;
    auto r = restore(t, sb_line + c.body + end_sb, t.file("m"));
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("line " + std::to_string(c.line) + ": " + c.fragment), std::string::npos) << r.err;
  }
}

// Device 1 maps {0 -> 5, 3 -> 6}, device 2 {0 -> 5}; then device 1's key 3 is
// pointed at block 5 and device 2's key 0 at block 6 (leaf checksums
// restamped). Block 5 is then mapped twice by device 1, and the space map's
// counts (5: 2, 6: 1) still agree with the references.
std::vector<unsigned char> metadata_with_a_block_mapped_twice_in_one_device(const test::temp_dir &t) {
  std::string out = t.file("m");
  auto r = restore(t, sb_line + test::xml_device(1) + test::xml_single(0, 5) + test::xml_single(3, 6) + end_dev + test::xml_device(2) + test::xml_single(0, 5) + end_dev +
                          end_sb,
                   out);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  auto img = test::read_binary(out);
  pdata::memory_block_io io(img);
  pdata::block_cache cache(io);
  thin::superblock sb = thin::read_superblock(io);
  auto tops = thin::read_mapping_top_level(cache, sb.mapping_root, [](const pdata::btree_damage &) {});
  EXPECT_EQ(tops.size(), 2u);
  auto repoint = [&](pdata::block_address leaf, uint64_t key, uint64_t data) {
    unsigned char *blk = img.data() + leaf * pdata::block_size;
    pdata::btree_node_view v(blk);
    for (uint32_t i = 0; i < v.nr_entries(); i++)
      if (v.key(i) == key)
        pdata::store_le64(const_cast<unsigned char *>(v.value_ptr(i)), thin::pack_block_time(data, 0));
    pdata::stamp_checksum(blk, pdata::checksum_salt::btree_node);
  };
  repoint(tops[0].second, 3, 5);
  repoint(tops[1].second, 0, 6);
  return img;
}

TEST(twice_mapped, check_reports_it_as_fatal_and_the_fast_path_agrees_with_the_exact_checker) {
  test::temp_dir t;
  auto img = metadata_with_a_block_mapped_twice_in_one_device(t);
  pdata::memory_block_io fast_io(img), exact_io(img);
  auto fast = dmg::run_check(fast_io);
  thin::check_options exact_only;
  exact_only.exact_only = true;
  auto exact = dmg::run_check(exact_io, exact_only);
  ASSERT_FALSE(fast.exception) << *fast.exception;
  EXPECT_TRUE(fast.result.fatal) << fast.describe();
  ASSERT_EQ(fast.records.size(), 1u) << fast.describe();
  EXPECT_EQ(fast.records[0].what, "thin device 1: data block 5 is mapped twice, by virtual blocks 0 and 3");
  EXPECT_EQ(fast.describe(), exact.describe());
  EXPECT_EQ(fast.result.fatal, exact.result.fatal);
  // The tool: exit 1, the record printed.
  std::string path = t.file("twice.meta");
  test::write_binary(path, img);
  auto c = test::run_tool("thin_check", {path});
  EXPECT_EQ(c.exit_code, 1);
  EXPECT_NE(c.err.find("data block 5 is mapped twice, by virtual blocks 0 and 3"), std::string::npos) << c.err;
}

TEST(twice_mapped, thin_repair_keeps_the_first_mapping_drops_the_second_and_says_so) {
  test::temp_dir t;
  auto img = metadata_with_a_block_mapped_twice_in_one_device(t);
  std::string in = t.file("twice.meta"), out = t.file("out.meta");
  test::write_binary(in, img);
  make_file(out, 8 << 20);
  auto r = test::run_tool("thin_repair", {"-i", in, "-o", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("lost device 1: virtual blocks [3, 4) (block 0: data block 5 is mapped twice in the device"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(test::run_tool("thin_check", {out}).exit_code, 0);
  auto d = test::run_tool("thin_dump", {out});
  EXPECT_NE(d.out.find(test::xml_single(0, 5)), std::string::npos) << d.out;
  EXPECT_EQ(d.out.find("origin_block=\"3\""), std::string::npos) << d.out;
}

bool fast_path_proves_clean(const std::vector<unsigned char> &img) {
  pdata::memory_block_io io(img);
  thin::superblock sb = thin::read_superblock(io, 0);
  test::recording_reporter r;
  unsigned stages = 0;
  std::vector<thin::damage> hints;
  return thin::detail::fast_check(io, sb, sb, r, stages, hints);
}

TEST(twice_mapped, the_fast_path_hands_it_over_but_still_proves_snapshot_pools_clean_itself) {
  test::temp_dir t;
  EXPECT_FALSE(fast_path_proves_clean(metadata_with_a_block_mapped_twice_in_one_device(t)));
  // Snapshots share data blocks at the same virtual blocks, through shared
  // and copied leaves: no reason to hand over.
  EXPECT_TRUE(fast_path_proves_clean(test::read_binary(test::fixture_image("snapshots"))));
  std::string out = t.file("gen.meta");
  auto r = restore(t, test::read_file(std::string(THINKIT_FIXTURE_SRC) + "/generated/snap_of_snap.xml"), out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fast_path_proves_clean(test::read_binary(out)));
}

TEST(twice_mapped, thin_dump_refuses_it_instead_of_printing_xml_restore_refuses) {
  test::temp_dir t;
  std::string in = t.file("twice.meta");
  test::write_binary(in, metadata_with_a_block_mapped_twice_in_one_device(t));
  auto d = test::run_tool("thin_dump", {in});
  EXPECT_EQ(d.exit_code, 1);
  EXPECT_NE(d.err.find("thin device 1: origin block 3 maps data block 5, which a lower origin block of the device "
                       "maps too"),
            std::string::npos)
      << d.err;
}

TEST(twice_mapped, a_block_shared_by_two_devices_at_different_virtual_blocks_is_clean_on_both_paths) {
  // Not what snapshots make (the fast path hands it over), but allowed.
  test::temp_dir t;
  std::string out = t.file("m");
  auto r = restore(t, sb_line + test::xml_device(1) + test::xml_single(0, 5) + end_dev + test::xml_device(2) + test::xml_single(7, 5) + end_dev + end_sb, out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto img = test::read_binary(out);
  pdata::memory_block_io fast_io(img), exact_io(img);
  thin::check_options exact_only;
  exact_only.exact_only = true;
  auto fast = dmg::run_check(fast_io), exact = dmg::run_check(exact_io, exact_only);
  EXPECT_TRUE(fast.result.clean()) << fast.describe();
  EXPECT_TRUE(exact.result.clean()) << exact.describe();
}

// The set restore keeps of a device's data blocks: a run inserted at once
// finds the first block of it already there, as block-by-block inserts would
// (runs across 64-bit words and 32768-block pages, cleared between rounds).
TEST(twice_mapped, a_run_of_data_blocks_is_refused_at_its_first_block_already_in_the_set) {
  std::mt19937_64 rng(7);
  thin::data_block_set set;
  for (int round = 0; round < 40; round++) {
    set.clear();
    std::set<uint64_t> model;
    for (int k = 0; k < 30; k++) {
      const uint64_t b = rng() % 200000, len = 1 + rng() % (k % 3 == 0 ? 70000 : 300);
      uint64_t want = UINT64_MAX;
      for (uint64_t x = b; x < b + len; x++)
        if (model.count(x)) {
          want = x;
          break;
        }
      const uint64_t got = set.insert_range(b, len);
      ASSERT_EQ(got, want) << "round " << round << " run " << b << "+" << len;
      if (got != UINT64_MAX) break;  // the rest of the run is unspecified: start over
      for (uint64_t x = b; x < b + len; x++) model.insert(x);
      EXPECT_TRUE(set.contains(b) && set.contains(b + len - 1));
      EXPECT_FALSE(set.insert(b + len / 2));
    }
  }
  set.clear();
  EXPECT_FALSE(set.contains(5));
  EXPECT_EQ(set.insert_range(0, 1 << 16), UINT64_MAX);
  EXPECT_EQ(set.insert_range((1 << 16) - 1, 1), uint64_t((1 << 16) - 1));
}

}  // namespace
