// thin_repair and thin_dump --repair: recover what damaged metadata still
// holds, never writing the input. Healthy input round-trips; a lost
// superblock is rebuilt from trees found by scanning; a damaged node loses
// only the mappings below it, and the loss is reported; the output passes
// thin_check (ours, and Debian's 0.9.0 where installed); lvm2's sequence works.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "persistent-data/block_cache.h"
#include "persistent-data/btree_node.h"
#include "persistent-data/checksum.h"
#include "support/test_support.h"
#include "thin/format/superblock.h"
#include "thin/format/thin_trees.h"

namespace {

using test::make_file;

using test::copy_fixture;


// (dev, vblock) -> data block of an XML dump.
std::map<std::pair<uint64_t, uint64_t>, uint64_t> mappings_of(const std::string &xml) {
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> m;
  std::regex dev_re("<device dev_id=\"(\\d+)\""), single_re("origin_block=\"(\\d+)\" data_block=\"(\\d+)\""),
      range_re("origin_begin=\"(\\d+)\" data_begin=\"(\\d+)\" length=\"(\\d+)\"");
  uint64_t dev = 0;
  std::istringstream in(xml);
  std::string line;
  std::smatch sm;
  while (std::getline(in, line)) {
    if (std::regex_search(line, sm, dev_re)) dev = std::stoull(sm[1]);
    else if (std::regex_search(line, sm, single_re)) m[{dev, std::stoull(sm[1])}] = std::stoull(sm[2]);
    else if (std::regex_search(line, sm, range_re))
      for (uint64_t i = 0; i < std::stoull(sm[3]); i++) m[{dev, std::stoull(sm[1]) + i}] = std::stoull(sm[2]) + i;
  }
  return m;
}

class repair_kernel : public ::testing::TestWithParam<std::string> {};

TEST_P(repair_kernel, healthy_metadata_repairs_to_the_same_dump_and_leaves_the_input_untouched) {
  test::temp_dir t;
  std::string in = copy_fixture(t, GetParam()), out = t.file("out.img");
  auto before = test::read_binary(in);
  make_file(out, 80 << 20);
  auto r = test::run_tool("thin_repair", {"-i", in, "-o", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("nothing reachable was lost"), std::string::npos) << r.out;
  EXPECT_TRUE(test::read_binary(in) == before);
  EXPECT_EQ(test::run_tool("thin_dump", {out}).out, test::read_file(test::fixture_file(GetParam(), "thin_dump.xml")));
  EXPECT_EQ(test::run_tool("thin_check", {"-q", out}).exit_code, 0);
  if (test::debian_tools_installed({"thin_check"})) {
    EXPECT_EQ(std::system((test::debian_tool("thin_check") + " -q " + out).c_str()), 0);
  }
}

TEST_P(repair_kernel, a_zeroed_superblock_is_rebuilt_from_trees_found_by_scanning) {
  test::temp_dir t;
  std::string in = copy_fixture(t, GetParam()), out = t.file("out.img");
  const std::string ref = test::read_file(test::fixture_file(GetParam(), "thin_dump.xml"));
  std::smatch sm;
  ASSERT_TRUE(std::regex_search(ref, sm, std::regex("data_block_size=\"(\\d+)\" nr_data_blocks=\"(\\d+)\"")));
  std::smatch tm;
  ASSERT_TRUE(std::regex_search(ref, tm, std::regex("transaction=\"(\\d+)\"")));
  auto img = test::read_binary(in);
  std::fill(img.begin(), img.begin() + 4096, 0);
  test::write_binary(in, img);
  make_file(out, 80 << 20);
  // Without the data block size it cannot rebuild the superblock.
  auto r0 = test::run_tool("thin_repair", {"-i", in, "-o", out});
  EXPECT_EQ(r0.exit_code, 1);
  EXPECT_NE(r0.err.find("--data-block-size"), std::string::npos) << r0.err;
  auto r = test::run_tool("thin_repair", {"-i", in, "-o", out, "--data-block-size", sm[1], "--nr-data-blocks", sm[2],
                                          "--transaction-id", tm[1]});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("found by scanning"), std::string::npos) << r.out;
  EXPECT_EQ(test::run_tool("thin_check", {"-q", out}).exit_code, 0);
  std::string got = test::run_tool("thin_dump", {out}).out;
  // Every fixture keeps older trees on disk (snapshots: every earlier
  // transaction, some tying with the final state on every time and
  // transaction id); the space maps tell the live pair: the newest state is
  // recovered, exactly.
  EXPECT_EQ(got, ref) << r.out;
}

TEST_P(repair_kernel, a_damaged_mapping_leaf_loses_only_its_own_range_and_says_so) {
  test::temp_dir t;
  std::string in = copy_fixture(t, GetParam()), out = t.file("out.img");
  // Find a leaf of some device's mapping tree and break its checksum.
  pdata::memory_block_io mem(test::read_binary(in));
  thin::superblock sb = thin::read_superblock(mem, 0);
  pdata::block_cache cache(mem);
  auto ignore = [](const pdata::btree_damage &) {};
  auto devs = thin::read_mapping_top_level(cache, sb.mapping_root, ignore);
  ASSERT_FALSE(devs.empty());
  auto [dev, root] = devs.back();
  pdata::block_address victim = root;
  for (int d = 0; d < 8; d++) {
    pdata::btree_node_view v(cache.read(victim)->raw());
    if (v.is_leaf()) break;
    victim = v.value64(v.nr_entries() - 1);  // the last leaf
  }
  auto img = test::read_binary(in);
  img[victim * 4096 + 100] ^= 0xff;
  test::write_binary(in, img);
  make_file(out, 80 << 20);
  auto r = test::run_tool("thin_repair", {"-i", in, "-o", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("lost device " + std::to_string(dev)), std::string::npos) << r.out;
  EXPECT_EQ(test::run_tool("thin_check", {"-q", out}).exit_code, 0) << "thin_check after thin_repair must be clean";
  // Every mapping outside the damaged leaf survives.
  auto want = mappings_of(test::read_file(test::fixture_file(GetParam(), "thin_dump.xml")));
  auto have = mappings_of(test::run_tool("thin_dump", {out}).out);
  auto orig = test::read_binary(test::fixture_image(GetParam()));
  pdata::btree_node_view leaf(orig.data() + victim * 4096);
  std::set<uint64_t> lost;
  for (uint32_t i = 0; i < leaf.nr_entries(); i++) lost.insert(leaf.key(i));
  for (auto &[k, v] : want) {
    bool under_damage = k.first == dev && lost.count(k.second);
    bool shared_leaf_elsewhere = k.first != dev && !have.count(k);  // a snapshot sharing the same leaf
    if (under_damage || shared_leaf_elsewhere) continue;
    EXPECT_EQ(have.count(k), 1u) << "lost dev " << k.first << " block " << k.second;
  }
  for (auto &[k, v] : have) EXPECT_EQ(want.at(k), v);
}

INSTANTIATE_TEST_SUITE_P(kernel, repair_kernel, ::testing::ValuesIn(test::kernel_scenarios()), test::scenario_name);

TEST(thin_repair, lvm2s_sequence_works_stray_empty_argument_then_transaction_on_the_first_dump_line) {
  test::temp_dir t;
  std::string in = copy_fixture(t, "snapshots"), out = t.file("spare.img");
  make_file(out, 8 << 20);
  auto r = test::run_tool("thin_repair", {"", "-i", in, "-o", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto d = test::run_tool("thin_dump", {out});
  std::string first = d.out.substr(0, d.out.find('\n'));
  EXPECT_NE(first.find("transaction=\"7\""), std::string::npos) << first;
}

TEST(thin_repair, refuses_to_write_its_input_and_reports_json) {
  test::temp_dir t;
  std::string in = copy_fixture(t, "basic"), out = t.file("out.img");
  auto before = test::read_binary(in);
  auto r = test::run_tool("thin_repair", {"-i", in, "-o", in});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(test::read_binary(in) == before);
  make_file(out, 8 << 20);
  r = test::run_tool("thin_repair", {"-i", in, "-o", out, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"devices\":2,\"mappings\":64"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"lost\":[]"), std::string::npos) << r.out;
}

TEST(thin_dump, repair_prints_what_can_be_recovered_from_a_damaged_pool) {
  test::temp_dir t;
  std::string in = copy_fixture(t, "basic");
  auto img = test::read_binary(in);
  std::fill(img.begin(), img.begin() + 4096, 0);
  test::write_binary(in, img);
  EXPECT_EQ(test::run_tool("thin_dump", {in}).exit_code, 1);
  auto r = test::run_tool("thin_dump", {"--repair", in, "--data-block-size", "128", "--nr-data-blocks", "4096",
                                        "--transaction-id", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, test::read_file(test::fixture_file("basic", "thin_dump.xml")));
}

}  // namespace

namespace {

TEST(thin_repair, xml_input_of_4_kib_or_more_is_called_xml_and_sent_to_thin_restore) {
  test::temp_dir t;
  // 53 KB of thin_dump XML: large enough to open as metadata.
  std::string xml = test::fixture_file("btree", "thin_dump.xml"), out = t.file("out.img");
  ASSERT_GE(test::read_file(xml).size(), 4096u);
  make_file(out, 8 << 20);
  auto before = test::read_binary(out);
  auto r = test::run_tool("thin_repair", {"-i", xml, "-o", out});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(xml + ": this looks like XML"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("thin_restore"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("no usable"), std::string::npos) << r.err;
  EXPECT_TRUE(test::read_binary(out) == before) << "output changed";
}

TEST(thin_repair, an_output_too_small_is_named_and_called_too_small_not_the_input) {
  test::temp_dir t;
  std::string in = copy_fixture(t, "basic"), out = t.file("out.img");
  make_file(out, 5 * 4096);
  auto r = test::run_tool("thin_repair", {"-i", in, "-o", out});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("thin_repair: " + out + ": the output is too small for the recovered metadata (20480 bytes)"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("(8388608 bytes) is enough"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(in), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("exhausted"), std::string::npos) << r.err;
  // What it says is enough is.
  make_file(out, 8 << 20);
  EXPECT_EQ(test::run_tool("thin_repair", {"-i", in, "-o", out}).exit_code, 0);
}

TEST(thin_repair, values_guessed_after_a_lost_superblock_are_named_with_their_source_in_text_and_json) {
  test::temp_dir t;
  std::string in = copy_fixture(t, "basic"), out = t.file("out.img");
  auto img = test::read_binary(in);
  std::fill(img.begin(), img.begin() + 4096, 0);
  test::write_binary(in, img);
  make_file(out, 8 << 20);
  auto r = test::run_tool("thin_repair", {"-i", in, "-o", out, "--data-block-size", "128"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("guessed transaction_id = "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(from the highest transaction id in the device details"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("give --transaction-id for the real value"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("guessed nr_data_blocks = "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("guessed time = "), std::string::npos) << r.out;
  r = test::run_tool("thin_repair", {"-i", in, "-o", out, "--data-block-size", "128", "--transaction-id", "2",
                                     "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"guessed\":[{\"field\":\"nr_data_blocks\",\"value\":"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"option\":\"--nr-data-blocks\""), std::string::npos) << r.out;
  // A value given on the command line is not a guess.
  EXPECT_EQ(r.out.find("\"field\":\"transaction_id\""), std::string::npos) << r.out;
  // With the superblock intact nothing is guessed.
  r = test::run_tool("thin_repair", {"-i", copy_fixture(t, "basic"), "-o", out, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"guessed\":[]"), std::string::npos) << r.out;
}

}  // namespace
