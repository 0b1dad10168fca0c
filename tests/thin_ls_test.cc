// thin_ls: the device table byte for byte as Debian's thin_ls 0.9.0 prints
// it (run as the oracle where installed; its output on the kernel fixtures is
// committed beside them as thin_ls.txt), exclusive/shared counts checked
// against the mappings of the generated XML, the count's one read per node
// however many devices share it, and the command line's errors.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "persistent-data/block_cache.h"
#include "persistent-data/block_io.h"
#include "persistent-data/btree_walk.h"
#include "persistent-data/checksum.h"
#include "persistent-data/endian.h"
#include "support/metadata_support.h"
#include "support/test_support.h"
#include "thin/format/superblock.h"
#include "thin/format/thin_trees.h"
#include "thin/ir/text_sink.h"
#include "thin/ls/ls.h"

namespace {

const std::string oracle = test::debian_tool("thin_ls");
const char *all_fields =
    "DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS,"
    "MAPPED_SECTORS,EXCLUSIVE_SECTORS,SHARED_SECTORS,"
    "MAPPED_BYTES,EXCLUSIVE_BYTES,SHARED_BYTES,MAPPED,"
    "EXCLUSIVE,SHARED,TRANSACTION,CREATE_TIME,SNAP_TIME";

using test::generate_xml;
using test::restore_with_tool;

// Calls fn(dev, first data block, length) for each mapping line of
// generated XML (plain dialect), in order.
template <typename F>
void for_each_run(const std::string &xml, F fn) {
  std::istringstream in(xml);
  std::string line;
  uint64_t dev = 0;
  while (std::getline(in, line)) {
    unsigned long long a = 0, b = 0, c = 0;
    if (std::sscanf(line.c_str(), "  <device dev_id=\"%llu\"", &a) == 1) {
      dev = a;
      fn(dev, 0, 0);
    } else if (std::sscanf(line.c_str(), "    <range_mapping origin_begin=\"%llu\" data_begin=\"%llu\" length=\"%llu\"",
                           &a, &b, &c) == 3) {
      fn(dev, b, c);
    } else if (std::sscanf(line.c_str(), "    <single_mapping origin_block=\"%llu\" data_block=\"%llu\"", &a, &b) ==
               2) {
      fn(dev, b, 1);
    }
  }
}

// dev -> (exclusive, shared) worked out from the mappings directly.
std::map<uint64_t, std::pair<uint64_t, uint64_t>> expected_usage(const std::string &xml) {
  std::vector<uint32_t> uses;
  for_each_run(xml, [&](uint64_t, uint64_t b, uint64_t n) {
    if (b + n > uses.size()) uses.resize(b + n);
    for (uint64_t i = 0; i < n; i++) uses[b + i]++;
  });
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> r;
  for_each_run(xml, [&](uint64_t dev, uint64_t b, uint64_t n) {
    auto &u = r[dev];
    for (uint64_t i = 0; i < n; i++) (uses[b + i] == 1 ? u.first : u.second)++;
  });
  return r;
}

// The expected usage of a generated pool, from the same pool generated
// without --shared-defs (whose XML lists every device's mappings itself).
std::map<uint64_t, std::pair<uint64_t, uint64_t>> expected_usage_of(std::vector<std::string> args,
                                                                    const test::temp_dir &d) {
  args.erase(std::remove(args.begin(), args.end(), std::string("--shared-defs")), args.end());
  const std::string plain = d.file("plain.xml");
  generate_xml(args, plain);
  return expected_usage(test::read_file(plain));
}

// Distinct mapping-tree nodes of all devices (each entered once).
uint64_t distinct_nodes(pdata::block_cache &cache, const std::map<uint64_t, pdata::block_address> &roots) {
  struct counter : pdata::btree_visitor {
    std::set<pdata::block_address> seen;
    bool visit_node(pdata::block_address b, const pdata::btree_node_view &, const pdata::key_range &,
                    unsigned) override {
      return seen.insert(b).second;
    }
    void visit_leaf(pdata::block_address, const pdata::btree_node_view &, const pdata::key_range &) override {}
    void damage(const pdata::btree_damage &) override { ADD_FAILURE() << "damaged mapping tree"; }
  } c;
  for (auto &[dev, root] : roots) pdata::walk_btree(cache, root, 8, c);
  return c.seen.size();
}

// Rows of `thin_ls --no-headers -o DEV,EXCLUSIVE_BLOCKS,SHARED_BLOCKS`.
std::map<uint64_t, std::pair<uint64_t, uint64_t>> parse_usage(const std::string &out) {
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> r;
  std::istringstream in(out);
  unsigned long long d, e, s;
  while (in >> d >> e >> s) r[d] = {e, s};
  return r;
}

using test::open_read_only;

TEST(thin_ls, prints_every_field_as_0_9_0_did_on_the_kernel_fixtures) {
  for (auto &scenario : test::kernel_scenarios()) {
    auto r = test::run_tool("thin_ls", {"-o", all_fields, test::fixture_image(scenario)});
    ASSERT_EQ(r.exit_code, 0) << scenario << ": " << r.err;
    EXPECT_EQ(r.out, test::read_file(test::fixture_file(scenario, "thin_ls.txt"))) << scenario;
  }
}

TEST(thin_ls, matches_the_0_9_0_oracle_on_the_kernel_fixtures_in_every_option_form) {
  if (!test::have_program(oracle)) GTEST_SKIP() << oracle << " is not installed";
  const std::vector<std::vector<std::string>> forms = {
      {},
      {"--no-headers"},
      {"-o", all_fields},
      {"-o", "SHARED,DEV,EXCLUSIVE_BYTES"},
      {"--format=TRANSACTION,MAPPED", "--no-headers"},
      {"-o", "DEV,"},
  };
  for (auto &scenario : test::kernel_scenarios()) {
    for (auto &form : forms) {
      auto args = form;
      args.push_back(test::fixture_image(scenario));
      auto ours = test::run_tool("thin_ls", args);
      auto theirs = test::run_program(oracle, args);
      ASSERT_EQ(theirs.exit_code, 0) << scenario << ": " << theirs.err;
      EXPECT_EQ(ours.exit_code, 0) << scenario << ": " << ours.err;
      EXPECT_EQ(ours.out, theirs.out) << scenario << " " << ::testing::PrintToString(form);
    }
  }
}

TEST(thin_ls, lists_the_metadata_snapshot_with_m_as_0_9_0_does) {
  if (!test::have_program(oracle)) GTEST_SKIP() << oracle << " is not installed";
  const std::string image = test::fixture_image("discard-metasnap");
  for (auto &args : std::vector<std::vector<std::string>>{{"-m", "-o", all_fields, image}, {"-m", image}}) {
    auto ours = test::run_tool("thin_ls", args);
    auto theirs = test::run_program(oracle, args);
    ASSERT_EQ(theirs.exit_code, 0) << theirs.err;
    EXPECT_EQ(ours.exit_code, 0) << ours.err;
    EXPECT_EQ(ours.out, theirs.out);
  }
  // And the snapshot is not the live metadata (one device fewer).
  EXPECT_NE(test::run_tool("thin_ls", {"-m", image}).out, test::run_tool("thin_ls", {image}).out);
}

TEST(thin_ls, counts_exclusive_and_shared_blocks_as_the_mappings_say_and_as_0_9_0_prints) {
  test::temp_dir d;
  struct pool {
    std::vector<std::string> args;
  };
  const std::vector<pool> pools = {
      {{"--seed", "5", "--devices", "2", "--mappings", "6000", "--snapshots", "5"}},
      {{"--seed", "6", "--devices", "2", "--mappings", "8000", "--snapshots", "8", "--snap-of-snap", "0.6",
        "--shared-defs"}},
      {{"--seed", "7", "--devices", "3", "--mappings", "20000", "--snapshots", "12", "--snap-diff", "0.2",
        "--shared-defs", "--data-block-size", "256"}},
  };
  int n = 0;
  for (auto &p : pools) {
    const std::string xml = d.file("p" + std::to_string(n) + ".xml"), meta = d.file("p" + std::to_string(n) + ".meta");
    n++;
    generate_xml(p.args, xml);
    restore_with_tool(xml, meta, 64ull << 20);
    auto r = test::run_tool("thin_ls", {"--no-headers", "-o", "DEV,EXCLUSIVE_BLOCKS,SHARED_BLOCKS", meta});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto expected = expected_usage_of(p.args, d);
    EXPECT_EQ(parse_usage(r.out), expected) << ::testing::PrintToString(p.args);
    // Some blocks are shared and some exclusive, or the check means little.
    uint64_t ex = 0, sh = 0;
    for (auto &[dev, u] : expected) ex += u.first, sh += u.second;
    EXPECT_GT(ex, 0u);
    EXPECT_GT(sh, 0u);

    // The count in one pass (each block's owner), in two passes (2-bit counts
    // from the start), and switching from owners to counts after the first
    // run of leaves: the same numbers.
    {
      auto io = open_read_only(meta);
      pdata::block_cache cache(*io);
      auto top = thin::read_mapping_top_level(cache, thin::read_superblock(*io).mapping_root,
                                              [](const pdata::btree_damage &) { ADD_FAILURE() << "damaged"; });
      std::map<uint64_t, pdata::block_address> roots(top.begin(), top.end());
      for (std::size_t budget : {thin::default_owners_budget, std::size_t(0), std::size_t(1)}) {
        auto counted = thin::count_exclusive_blocks(cache, roots, nullptr, budget);
        ASSERT_EQ(counted.size(), expected.size());
        for (auto &[dev, u] : expected) EXPECT_EQ(counted[dev], u.first) << "budget " << budget << ", device " << dev;
      }
    }

    if (test::have_program(oracle)) {
      for (auto &args : std::vector<std::vector<std::string>>{{"-o", all_fields, meta}, {meta}}) {
        auto ours = test::run_tool("thin_ls", args);
        auto theirs = test::run_program(oracle, args);
        ASSERT_EQ(theirs.exit_code, 0) << theirs.err;
        EXPECT_EQ(ours.out, theirs.out) << ::testing::PrintToString(p.args);
      }
    }
  }
}

// A thousand snapshots of one origin share its leaves: the count reads each
// node once (not once per device), and still gets every device right.
TEST(thin_ls, reads_each_shared_node_once_for_a_thousand_snapshots_of_one_origin) {
  test::temp_dir d;
  const std::string xml = d.file("snaps.xml"), meta = d.file("snaps.meta");
  const std::vector<std::string> args = {"--seed",         "9",           "--devices",    "1",           "--mappings",
                                         "50000",          "--snapshots", "1000",         "--snap-diff", "0.0002",
                                         "--origin-churn", "0.0002",      "--shared-defs"};
  generate_xml(args, xml);
  restore_with_tool(xml, meta, 256ull << 20);

  auto io = open_read_only(meta);
  test::counting_block_io counted(*io);  // the reads that reach the device (the cache's misses)
  auto sb = thin::read_superblock(counted);
  pdata::block_cache cache(counted, 64);  // too small to hide repeated reads
  auto top = thin::read_mapping_top_level(cache, sb.mapping_root,
                                          [](const pdata::btree_damage &) { ADD_FAILURE() << "damaged top level"; });
  std::map<uint64_t, pdata::block_address> roots(top.begin(), top.end());
  ASSERT_EQ(roots.size(), 1001u);
  counted.blocks_read = 0;
  auto exclusive = thin::count_exclusive_blocks(cache, roots);
  const uint64_t reads = counted.blocks_read;
  counted.blocks_read = 0;
  auto exclusive_counted = thin::count_exclusive_blocks(cache, roots, nullptr, 0);  // 2-bit counts, two passes
  const uint64_t reads_counted = counted.blocks_read;
  EXPECT_EQ(exclusive_counted, exclusive);

  // In one pass, every node is read once, but for each tree's leftmost path
  // (its height), which the 64-block cache does not keep until the walk
  // comes to it: the root and the leftmost leaf again, at most 2 blocks a
  // device. In two passes, each leaf is read once more (shared ones to top
  // up their counts, the others to count their exclusive blocks): twice the
  // distinct nodes at most. Walking each device's tree would read every
  // device's leaves (about 200,000 here).
  auto expected = expected_usage_of(args, d);
  uint64_t per_device_leaves = 0;
  for (auto &[dev, u] : expected) per_device_leaves += (u.first + u.second + 251) / 252;
  const uint64_t distinct = distinct_nodes(cache, roots);
  EXPECT_LE(reads, distinct + 2 * roots.size());
  EXPECT_LE(reads_counted, 2 * distinct);
  EXPECT_GT(reads_counted, reads + distinct / 2) << "the second pass read few leaves";
  EXPECT_LT(5 * reads_counted, per_device_leaves);

  ASSERT_EQ(exclusive.size(), expected.size());
  for (auto &[dev, ex] : exclusive) EXPECT_EQ(ex, expected[dev].first) << "device " << dev;

  // The tool says the same.
  auto r = test::run_tool("thin_ls", {"--no-headers", "-o", "DEV,EXCLUSIVE_BLOCKS,SHARED_BLOCKS", meta});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(parse_usage(r.out), expected);
}

// No kernel writes a mapping tree whose leaves lie at different depths, but
// the count (which predicts leaves from each tree's height so that it need
// not read them to find them) still counts such a tree right: a root's first
// or last child is replaced by that child's first leaf, and the table
// matches the mappings thin_dump finds (and 0.9.0's, where installed).
TEST(thin_ls, counts_right_when_a_trees_leaves_lie_at_different_depths) {
  test::temp_dir d;
  const std::string xml = d.file("pool.xml"), meta = d.file("pool.meta");
  generate_xml({"--seed", "5", "--devices", "2", "--mappings", "400000", "--snapshots", "1"}, xml);
  restore_with_tool(xml, meta, 64ull << 20);

  for (bool first_child : {true, false}) {
    const std::string bent = d.file(first_child ? "first.meta" : "last.meta");
    test::copy_file(meta, bent);
    {
      int fd = ::open(bent.c_str(), O_RDWR | O_CLOEXEC);
      ASSERT_GE(fd, 0);
      struct stat st;
      ASSERT_EQ(::fstat(fd, &st), 0);
      pdata::file_block_io io(fd, static_cast<uint64_t>(st.st_size), true);
      auto sb = thin::read_superblock(io);
      pdata::block_cache cache(io);
      auto top = thin::read_mapping_top_level(cache, sb.mapping_root,
                                              [](const pdata::btree_damage &) { ADD_FAILURE() << "damaged"; });
      // A device whose root's children are internal nodes.
      bool bent_one = false;
      for (auto &[dev, root] : top) {
        pdata::block_buffer r, c;
        io.read(root, r.raw(), 1);
        pdata::btree_node_view rn(r.raw());
        if (rn.is_leaf()) continue;
        const uint32_t i = first_child ? 0 : rn.nr_entries() - 1;
        io.read(rn.value64(i), c.raw(), 1);
        pdata::btree_node_view cn(c.raw());
        if (cn.is_leaf()) continue;
        pdata::store_le64(const_cast<unsigned char *>(rn.value_ptr(i)), cn.value64(0));
        pdata::stamp_checksum(r.raw(), pdata::checksum_salt::btree_node);
        io.write(root, r.raw(), 1);
        io.flush();
        bent_one = true;
        break;
      }
      ASSERT_TRUE(bent_one) << "no tree three levels deep";
    }
    auto dump = test::run_tool("thin_dump", {bent});
    ASSERT_EQ(dump.exit_code, 0) << dump.err;
    auto expected = expected_usage(dump.out);
    auto r = test::run_tool("thin_ls", {"--no-headers", "-o", "DEV,EXCLUSIVE_BLOCKS,SHARED_BLOCKS", bent});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // Exclusive blocks from the trees; shared ones are the details' mapped
    // count less those (the details still count the leaves cut off).
    auto got = parse_usage(r.out);
    ASSERT_EQ(got.size(), expected.size());
    for (auto &[dev, u] : expected) EXPECT_EQ(got[dev].first, u.first) << "device " << dev << (first_child ? ", first child" : ", last child");
    if (test::have_program(oracle)) {
      auto theirs = test::run_program(oracle, {"-o", all_fields, bent});
      auto ours = test::run_tool("thin_ls", {"-o", all_fields, bent});
      EXPECT_EQ(ours.out, theirs.out);
    }
  }
}

TEST(thin_ls, formats_sizes_with_0_9_0s_units_and_rounding) {
  // 0.9.0's format_disk_unit: bytes shifted down by 1024 while above 1 MiB,
  // then rounded to the next unit when above 8192.
  EXPECT_EQ(thin::format_sectors(0), "0");
  EXPECT_EQ(thin::format_sectors(16), "8192");
  EXPECT_EQ(thin::format_sectors(17), "9KiB");  // 8704 bytes: 8.5 rounds up
  EXPECT_EQ(thin::format_sectors(2048),
            "1024KiB");  // exactly 1 MiB is not above it
  EXPECT_EQ(thin::format_sectors(2049),
            "1024KiB");  // 1049088 bytes: shifted once (1024), not above 8192
  EXPECT_EQ(thin::format_sectors(131072), "64MiB");
  EXPECT_EQ(thin::format_sectors(2ull << 30),
            "1024GiB");  // 1 TiB: two shifts to 2^20, rounded once more
}

TEST(thin_ls, rejects_an_unknown_field_naming_it_with_exit_1) {
  for (auto fields : {"DEV,NOPE", "dev", "DEV,,MAPPED", ""}) {
    auto r = test::run_tool("thin_ls", {"-o", fields, test::fixture_image("basic")});
    if (std::string(fields).empty()) {
      // 0.9.0 takes an empty list as no columns: nothing is printed.
      EXPECT_EQ(r.exit_code, 0) << r.err;
      EXPECT_EQ(r.out, "");
      continue;
    }
    EXPECT_EQ(r.exit_code, 1) << fields;
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err.find("unknown field"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  auto r = test::run_tool("thin_ls", {"-o", "DEV,NOPE", test::fixture_image("basic")});
  EXPECT_NE(r.err.find("'NOPE'"), std::string::npos) << r.err;
}

TEST(thin_ls, fails_with_exit_1_on_a_bad_command_line_or_input) {
  test::temp_dir d;
  const std::string zeros = d.file("zeros");
  {
    FILE *f = std::fopen(zeros.c_str(), "w");
    std::fclose(f);
    ASSERT_EQ(::truncate(zeros.c_str(), 1 << 20), 0);
  }
  for (auto args : std::vector<std::vector<std::string>>{
           {},
           {"--bogus", test::fixture_image("basic")},
           {d.file("missing")},
           {zeros},
           {test::fixture_image("basic"), test::fixture_image("basic")},
           {"-m", test::fixture_image("basic")},  // no metadata snapshot there
       }) {
    auto r = test::run_tool("thin_ls", args);
    EXPECT_EQ(r.exit_code, 1) << ::testing::PrintToString(args) << ": " << r.err;
    EXPECT_FALSE(r.err.empty());
  }
}

TEST(thin_ls, prints_its_usage_and_version) {
  auto h = test::run_tool("thin_ls", {"-h"});
  EXPECT_EQ(h.exit_code, 0);
  EXPECT_NE(h.out.find("Usage: thin_ls [options] {metadata device}"), std::string::npos);
  EXPECT_NE(h.out.find("  SNAP_TIME\n"), std::string::npos);
  auto v = test::run_tool("thin_ls", {"-V"});
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_EQ(v.out, test::run_tool("thin_check", {"-V"}).out);
  if (test::have_program(oracle)) {
    EXPECT_EQ(h.out, test::run_program(oracle, {"-h"}).out);
  }
}

}  // namespace
