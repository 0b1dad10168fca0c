// thin_delta: the diff of two thin devices' mappings, byte for byte as
// Debian's thin_delta 0.9.0 prints it (run as the oracle where installed, and
// its output committed beside the kernel fixtures for where it is not), and
// the simultaneous walk that reads a subtree both devices share only once,
// or not at all when only the changes are wanted.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "persistent-data/block_cache.h"
#include "persistent-data/block_io.h"
#include "persistent-data/btree_walk.h"
#include "support/metadata_support.h"
#include "support/test_support.h"
#include "thin/delta/delta.h"
#include "engine/pool_metadata.h"
#include "thin/format/superblock.h"
#include "thin/ir/text_sink.h"
#include "thin/format/thin_trees.h"

extern char **environ;

namespace {

namespace fs = std::filesystem;

const std::string oracle = test::debian_tool("thin_delta");

bool have_oracle() { return test::have_program(oracle); }

using test::run_program;

using test::lines_of;

std::vector<std::string> delta_args(uint64_t a, uint64_t b, bool verbose, bool metasnap, const std::string &image) {
  std::vector<std::string> args{"--snap1", std::to_string(a), "--snap2", std::to_string(b)};
  if (verbose) args.push_back("--verbose");
  if (metasnap) args.push_back("-m");
  args.push_back(image);
  return args;
}

//------------------------------------------------------------------ the kernel fixtures against 0.9.0

struct scenario_pairs {
  std::string scenario;
  std::vector<uint64_t> devices;           // live metadata
  std::vector<uint64_t> metasnap_devices;  // in the metadata snapshot (-m)
};

// Every device of each small scenario; in btree, the snapshot pair and two
// of the 300 small devices.
const std::vector<scenario_pairs> &fixture_pairs() {
  static const std::vector<scenario_pairs> p = {
      {"basic", {1, 2}, {}},        {"snapshots", {1, 2, 3, 4}, {}}, {"discard-metasnap", {1, 3, 6}, {1, 2, 3}},
      {"logwrites", {1, 2, 4}, {}}, {"btree", {1, 2, 100, 137}, {}}, {"bigblock", {1, 2}, {}},
  };
  return p;
}

void PrintTo(const scenario_pairs &p, std::ostream *os) { *os << p.scenario; }

class thin_delta_fixture : public ::testing::TestWithParam<scenario_pairs> {};

TEST_P(thin_delta_fixture, prints_what_thin_delta_0_9_0_prints_for_every_pair_of_devices) {
  if (!have_oracle()) GTEST_SKIP() << oracle << " is not installed";
  const std::string image = test::fixture_image(GetParam().scenario);
  for (bool metasnap : {false, true})
    for (uint64_t a : metasnap ? GetParam().metasnap_devices : GetParam().devices)
      for (uint64_t b : metasnap ? GetParam().metasnap_devices : GetParam().devices)
        for (bool verbose : {false, true}) {
          auto args = delta_args(a, b, verbose, metasnap, image);
          auto want = run_program(oracle, args);
          ASSERT_EQ(want.exit_code, 0) << want.err;
          auto got = test::run_tool("thin_delta", args);
          ASSERT_EQ(got.exit_code, 0) << got.err;
          EXPECT_EQ(got.out, want.out) << "--snap1 " << a << " --snap2 " << b << (verbose ? " --verbose" : "")
                                       << (metasnap ? " -m" : "");
          EXPECT_EQ(got.err, "");
        }
}

std::string scenario_name(const ::testing::TestParamInfo<scenario_pairs> &p) { return test::test_name(p.param.scenario); }

INSTANTIATE_TEST_SUITE_P(kernel, thin_delta_fixture, ::testing::ValuesIn(fixture_pairs()), scenario_name);

// thin_delta.[metasnap.]A-B[.verbose].xml beside a fixture: what 0.9.0 printed
// for `thin_delta [-m] --snap1 A --snap2 B [--verbose]`.
TEST(thin_delta, prints_the_0_9_0_output_committed_beside_the_kernel_fixtures) {
  const std::regex name_re(R"(thin_delta\.(metasnap\.)?([0-9]+)-([0-9]+)(\.verbose)?\.xml)");
  unsigned checked = 0;
  for (auto &scenario : test::kernel_scenarios()) {
    fs::path dir = fs::path(test::fixture_file(scenario, ""));
    for (auto &e : fs::directory_iterator(dir)) {
      std::smatch m;
      std::string name = e.path().filename().string();
      if (!std::regex_match(name, m, name_re)) continue;
      auto args =
          delta_args(std::stoull(m[2]), std::stoull(m[3]), m[4].matched, m[1].matched, test::fixture_image(scenario));
      auto r = test::run_tool("thin_delta", args);
      ASSERT_EQ(r.exit_code, 0) << scenario << "/" << name << ": " << r.err;
      EXPECT_EQ(r.out, test::read_file(e.path().string())) << scenario << "/" << name;
      checked++;
    }
  }
  EXPECT_GE(checked, 10u);
}

TEST(thin_delta, compares_a_snapshot_with_its_origin_range_by_range) {
  // Origin 1 overwrote blocks 0..7 after snapshot 2 was taken, then both
  // sides copied single blocks; 128..143 were rewritten in 1 later.
  auto r = test::run_tool("thin_delta", delta_args(1, 2, false, false, test::fixture_image("snapshots")));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, test::read_file(test::fixture_file("snapshots", "thin_delta.1-2.xml")));
  EXPECT_NE(r.out.find("    <different begin=\"0\" length=\"8\"/>\n    <same begin=\"8\" length=\"8\"/>\n"),
            std::string::npos)
      << r.out;
}

// 0.9.0 prints one <same> per run of mapped blocks (gaps in the mappings
// split them), not one range for the whole device.
TEST(thin_delta, a_device_compared_with_itself_gives_one_same_range_per_run_of_mapped_blocks) {
  const std::string image = test::fixture_image("snapshots");
  auto r = test::run_tool("thin_delta", delta_args(1, 1, false, false, image));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, test::read_file(test::fixture_file("snapshots", "thin_delta.1-1.xml")));
  EXPECT_EQ(r.out,
            "<superblock uuid=\"\" time=\"4\" transaction=\"7\" data_block_size=\"128\" nr_data_blocks=\"4096\">\n"
            "  <diff left=\"1\" right=\"1\">\n"
            "    <same begin=\"0\" length=\"64\"/>\n"
            "    <same begin=\"128\" length=\"16\"/>\n"
            "  </diff>\n"
            "</superblock>\n");
  // Verbose: one <same> holding every run with its data blocks.
  auto v = test::run_tool("thin_delta", delta_args(1, 1, true, false, image));
  ASSERT_EQ(v.exit_code, 0) << v.err;
  auto lines = lines_of(v.out);
  ASSERT_GE(lines.size(), 6u);
  EXPECT_EQ(lines[2], "    <same>");
  EXPECT_EQ(lines[lines.size() - 3], "    </same>");
  for (std::size_t i = 3; i + 3 < lines.size(); i++)
    EXPECT_EQ(lines[i].rfind("      <range begin=", 0), 0u) << lines[i];
  if (have_oracle()) {
    EXPECT_EQ(r.out, run_program(oracle, delta_args(1, 1, false, false, image)).out);
    EXPECT_EQ(v.out, run_program(oracle, delta_args(1, 1, true, false, image)).out);
  }
  // A device without mappings: an empty diff.
  auto e = test::run_tool("thin_delta", delta_args(101, 101, false, false, test::fixture_image("btree")));
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_NE(e.out.find("  <diff left=\"101\" right=\"101\">\n  </diff>\n"), std::string::npos) << e.out;
}

TEST(thin_delta, an_unknown_device_fails_with_exit_1_and_one_line_naming_it) {
  const std::string image = test::fixture_image("snapshots");
  // 9 never existed; 5 was deleted.
  for (auto [a, b, which, dev] : std::vector<std::tuple<uint64_t, uint64_t, std::string, uint64_t>>{
           {9, 1, "snap1", 9}, {1, 9, "snap2", 9}, {5, 2, "snap1", 5}, {9, 8, "snap1", 9}}) {
    auto r = test::run_tool("thin_delta", delta_args(a, b, false, false, image));
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.out, "");
    auto lines = lines_of(r.err);
    ASSERT_EQ(lines.size(), 1u) << r.err;
    EXPECT_NE(lines[0].find("unable to find mapping tree for " + which + " (" + std::to_string(dev) + ")"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(lines[0].rfind("thin_delta: ", 0), 0u) << r.err;
    if (have_oracle()) {
      auto o = run_program(oracle, delta_args(a, b, false, false, image));
      EXPECT_EQ(o.exit_code, 1);
      EXPECT_EQ(o.out, "");
      EXPECT_NE(o.err.find("Unable to find mapping tree for " + which + " (" + std::to_string(dev) + ")"),
                std::string::npos)
          << o.err;
    }
  }
}

TEST(thin_delta, command_line_mistakes_fail_with_exit_1_and_the_usage) {
  const std::string image = test::fixture_image("snapshots");
  const std::vector<std::vector<std::string>> bad = {
      {"--snap1", "1", "--snap2", "2"},         // no input
      {"--snap2", "2", image},                  // no --snap1
      {"--snap1", "1", image},                  // no --snap2
      {"--snap1", "x", "--snap2", "2", image},  // not a number
      {"--snap1", "1", "--snap2", "2", "--bogus", image},
      {"--snap1", "1", "--snap2", "2", image, image},
  };
  for (auto &args : bad) {
    auto r = test::run_tool("thin_delta", args);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err.rfind("thin_delta: ", 0), 0u) << r.err;
  }
  auto missing = test::run_tool("thin_delta", {"--snap1", "1", image});
  EXPECT_NE(missing.err.find("--snap2 not specified"), std::string::npos) << missing.err;
  EXPECT_NE(missing.err.find("Usage: thin_delta"), std::string::npos) << missing.err;

  auto h = test::run_tool("thin_delta", {"-h"});
  EXPECT_EQ(h.exit_code, 0);
  EXPECT_EQ(h.out.rfind("Usage: thin_delta [options] <device or file>\n", 0), 0u) << h.out;
  auto v = test::run_tool("thin_delta", {"-V"});
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_EQ(v.out, test::run_tool("thin_check", {"-V"}).out);
  if (have_oracle()) {
    EXPECT_EQ(h.out, run_program(oracle, {"-h"}).out);
  }
}

TEST(thin_delta, accepts_the_thin_aliases_and_attached_values_as_0_9_0_does) {
  const std::string image = test::fixture_image("snapshots");
  const std::string want = test::read_file(test::fixture_file("snapshots", "thin_delta.1-2.xml"));
  for (auto &args : std::vector<std::vector<std::string>>{
           {"--thin1", "1", "--thin2", "2", image},
           {"--snap1=1", "--thin2=2", image},
           {image, "--snap2", "2", "--snap1", "1"},
           {"--snap1", "4", "--snap1", "1", "--snap2", "2", image},  // the last one counts
       }) {
    auto r = test::run_tool("thin_delta", args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, want);
    if (have_oracle()) {
      EXPECT_EQ(r.out, run_program(oracle, args).out);
    }
  }
  auto t = test::run_tool("thinkit", {"thin_delta", "--snap1", "1", "--snap2", "2", image});
  EXPECT_EQ(t.out, want);
}

TEST(thin_delta, metadata_snap_reads_the_held_snapshot_and_takes_an_attached_block) {
  const std::string image = test::fixture_image("discard-metasnap");
  const std::string want = test::read_file(test::fixture_file("discard-metasnap", "thin_delta.metasnap.1-3.xml"));
  for (auto &m : {"-m", "-m54", "--metadata-snap", "--metadata-snap=54"}) {
    auto r = test::run_tool("thin_delta", {m, "--snap1", "1", "--snap2", "3", image});
    EXPECT_EQ(r.exit_code, 0) << m << ": " << r.err;
    EXPECT_EQ(r.out, want) << m;
  }
  // The live superblock names the held snapshot; the snapshot's own does not,
  // and has no space maps (nr_data_blocks="0").
  EXPECT_NE(test::read_file(test::fixture_file("discard-metasnap", "thin_delta.1-3.xml")).find("metadata_snap=\"54\""),
            std::string::npos);
  EXPECT_NE(want.find("nr_data_blocks=\"0\">"), std::string::npos);

  auto wrong = test::run_tool("thin_delta", {"-m55", "--snap1", "1", "--snap2", "3", image});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_EQ(lines_of(wrong.err).size(), 1u) << wrong.err;
  auto none = test::run_tool("thin_delta", {"-m", "--snap1", "1", "--snap2", "2", test::fixture_image("snapshots")});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err.find("no current metadata snapshot"), std::string::npos) << none.err;
  if (have_oracle()) {
    EXPECT_EQ(run_program(oracle, {"-m", "--snap1", "1", "--snap2", "2", test::fixture_image("snapshots")}).exit_code,
              1);
  }
}

//------------------------------------------------------------------ reads: shared subtrees once or not at all

using test::counting_block_io;

// Wants only the changes: skips whatever both sides share.
class changes_only : public thin::delta_visitor {
 public:
  struct change {
    uint64_t origin;
    std::optional<uint64_t> left, right;
    bool operator==(const change &) const = default;
  };
  void blocks(uint64_t origin, std::optional<uint64_t> left, std::optional<uint64_t> right, uint64_t len) override {
    for (uint64_t i = 0; i < len; i++) {
      std::optional<uint64_t> l = left ? std::optional<uint64_t>(*left + i) : std::nullopt;
      std::optional<uint64_t> r = right ? std::optional<uint64_t>(*right + i) : std::nullopt;
      if (l != r) changes.push_back({origin + i, l, r});
    }
  }
  bool shared_subtree(pdata::block_address node, const pdata::key_range &) override {
    shared.push_back(node);
    return skip_shared ? false : true;
  }
  bool skip_shared = true;
  std::vector<change> changes;
  std::vector<pdata::block_address> shared;
};

// Every node of a device's mapping subtree.
std::set<pdata::block_address> subtree_nodes(pdata::block_io &io, pdata::block_address root) {
  struct collect : pdata::btree_visitor {
    std::set<pdata::block_address> nodes;
    bool visit_node(pdata::block_address b, const pdata::btree_node_view &, const pdata::key_range &,
                    unsigned) override {
      return nodes.insert(b).second;
    }
    void visit_leaf(pdata::block_address, const pdata::btree_node_view &, const pdata::key_range &) override {}
    void damage(const pdata::btree_damage &d) override { throw std::runtime_error(d.what); }
  } v;
  pdata::block_cache cache(io);
  pdata::walk_btree(cache, root, 8, v);
  return v.nodes;
}

pdata::block_address subtree_root(pdata::block_io &io, uint64_t dev) {
  pdata::block_cache cache(io);
  auto sb = thin::read_superblock(io);
  auto root = thin::find_mapping_subtree(cache, sb.mapping_root, dev);
  if (!root) throw std::runtime_error("no device " + std::to_string(dev));
  return *root;
}

// The body of a thin_delta output: the ranges between <diff> and </diff>.
std::string diff_body(const std::string &xml) {
  auto lines = lines_of(xml);
  std::string body;
  for (std::size_t i = 2; i + 2 < lines.size(); i++) body += lines[i] + "\n";
  return body;
}

// Runs the 0.9.0 writer over diff_mapping_trees on `io` with a one-block
// cache, so that a node read twice is read twice from the device. The
// subtree roots are looked up on `plain` (the same metadata, uncounted).
std::string diff_with_one_block_cache(pdata::block_io &io, pdata::block_io &plain, uint64_t a, uint64_t b,
                                      bool verbose) {
  pdata::block_cache cache(io, 1);
  thin::string_sink out;
  thin::delta_range_writer w(out, verbose, 4);
  thin::diff_mapping_trees(cache, {a, subtree_root(plain, a)}, {b, subtree_root(plain, b)}, w);
  w.finish();
  return out.str();
}

std::unique_ptr<pdata::memory_block_io> load_fixture(const std::string &scenario) {
  return std::make_unique<pdata::memory_block_io>(test::read_binary(test::fixture_image(scenario)));
}

// btree holds device 1 with 1500 mappings in several leaves. Snapshot it
// (new device 1000) and compare the two at once.
TEST(thin_delta_walk, a_fresh_snapshot_against_its_origin_reads_only_the_top_level_path_when_only_changes_are_wanted) {
  auto mem = load_fixture("btree");
  {
    auto pool = thin::pool_metadata::open(*mem);
    pool->create_snap(1000, 1);
    pool->commit();
  }
  const auto dev1_nodes = subtree_nodes(*mem, subtree_root(*mem, 1));
  ASSERT_GT(dev1_nodes.size(), 3u);  // a root and several leaves
  ASSERT_EQ(subtree_root(*mem, 1000), subtree_root(*mem, 1));

  counting_block_io io(*mem);
  auto sb = thin::read_superblock(io);
  pdata::block_cache cache(io);
  auto left = thin::find_mapping_subtree(cache, sb.mapping_root, 1);
  auto right = thin::find_mapping_subtree(cache, sb.mapping_root, 1000);
  ASSERT_TRUE(left && right);
  const auto path_reads = io.reads;  // the superblock and the top-level path to each device
  changes_only v;
  thin::diff_mapping_trees(cache, {1, *left}, {1000, *right}, v);
  EXPECT_EQ(io.reads, path_reads) << "the diff itself read blocks";
  EXPECT_TRUE(v.changes.empty());
  EXPECT_EQ(v.shared, std::vector<pdata::block_address>{*left});
  for (auto &[b, n] : io.reads) {
    EXPECT_EQ(dev1_nodes.count(b), 0u) << "read node " << b << " of the shared mapping tree";
    EXPECT_EQ(n, 1u) << "block " << b;
  }
  // Top level: the superblock and at most a root and a leaf per device.
  EXPECT_LE(io.reads.size(), 5u);
}

TEST(thin_delta_walk, a_fresh_snapshot_against_its_origin_prints_same_ranges_reading_the_shared_tree_once) {
  auto mem = load_fixture("btree");
  thin::string_sink origin_with_itself;
  thin::delta_metadata(*mem, {1, 1, false, std::nullopt, false}, origin_with_itself);
  {
    auto pool = thin::pool_metadata::open(*mem);
    pool->create_snap(1000, 1);
    pool->commit();
  }
  const auto dev1_nodes = subtree_nodes(*mem, subtree_root(*mem, 1));
  counting_block_io io(*mem);
  for (bool verbose : {false, true}) {
    io.reads.clear();
    std::string body = diff_with_one_block_cache(io, *mem, 1, 1000, verbose);
    if (!verbose) {
      EXPECT_EQ(body, diff_body(origin_with_itself.str()));
    }
    for (auto &line : lines_of(body))
      EXPECT_TRUE(line.find("same") != std::string::npos || line.find("<range") != std::string::npos) << line;
    std::set<pdata::block_address> read;
    for (auto &[b, n] : io.reads) {
      read.insert(b);
      EXPECT_EQ(n, 1u) << "block " << b << " read " << n << " times";
    }
    EXPECT_EQ(read, dev1_nodes);
  }
}

// In btree, snapshot 2 of device 1 saw 150 of the first 450 blocks copied:
// the leaves past block 450 are still shared.
TEST(thin_delta_walk, leaves_a_snapshot_still_shares_with_its_origin_are_not_read_when_only_changes_are_wanted) {
  auto mem = load_fixture("btree");
  const auto n1 = subtree_nodes(*mem, subtree_root(*mem, 1)), n2 = subtree_nodes(*mem, subtree_root(*mem, 2));
  std::set<pdata::block_address> shared, all;
  for (auto b : n1) (n2.count(b) ? shared : all).insert(b);
  for (auto b : n2)
    if (!n1.count(b)) all.insert(b);
  ASSERT_GE(shared.size(), 2u);
  ASSERT_GE(all.size(), 2u);

  counting_block_io io(*mem);
  pdata::block_cache cache(io, 1);
  changes_only skip;
  thin::diff_mapping_trees(cache, {1, subtree_root(*mem, 1)}, {2, subtree_root(*mem, 2)}, skip);
  std::set<pdata::block_address> read;
  for (auto &[b, n] : io.reads) {
    read.insert(b);
    EXPECT_EQ(n, 1u) << "block " << b;
    EXPECT_EQ(shared.count(b), 0u) << "read shared node " << b;
  }
  EXPECT_EQ(read, all);
  EXPECT_EQ(std::set<pdata::block_address>(skip.shared.begin(), skip.shared.end()), shared);

  // The same changes as a walk that reads the shared leaves too.
  changes_only full;
  full.skip_shared = false;
  pdata::block_cache cache2(*mem);
  thin::diff_mapping_trees(cache2, {1, subtree_root(*mem, 1)}, {2, subtree_root(*mem, 2)}, full);
  EXPECT_EQ(skip.changes, full.changes);
  EXPECT_EQ(skip.changes.size(), 150u);
}

TEST(thin_delta_walk, the_0_9_0_output_reads_every_node_of_either_tree_exactly_once) {
  auto mem = load_fixture("btree");
  const auto n1 = subtree_nodes(*mem, subtree_root(*mem, 1)), n2 = subtree_nodes(*mem, subtree_root(*mem, 2));
  std::set<pdata::block_address> all(n1.begin(), n1.end());
  all.insert(n2.begin(), n2.end());
  counting_block_io io(*mem);
  for (bool verbose : {false, true}) {
    io.reads.clear();
    std::string body = diff_with_one_block_cache(io, *mem, 1, 2, verbose);
    EXPECT_EQ(body, diff_body(test::read_file(
                        test::fixture_file("btree", verbose ? "thin_delta.1-2.verbose.xml" : "thin_delta.1-2.xml"))));
    std::set<pdata::block_address> read;
    for (auto &[b, n] : io.reads) {
      read.insert(b);
      EXPECT_EQ(n, 1u) << "block " << b << " read " << n << " times";
    }
    EXPECT_EQ(read, all);
  }
}

TEST(thin_delta_walk, damage_in_a_mapping_tree_is_an_error_naming_the_device_and_block) {
  auto mem = load_fixture("snapshots");
  pdata::block_address root = subtree_root(*mem, 3);
  pdata::block_buffer junk;
  junk.data.fill(0x5a);
  mem->write(root, junk.raw());
  thin::string_sink out;
  try {
    thin::delta_metadata(*mem, {1, 3, false, std::nullopt, false}, out);
    FAIL() << "no error";
  } catch (const thin::metadata_error &e) {
    EXPECT_NE(std::string(e.what()).find("device 3: block " + std::to_string(root)), std::string::npos) << e.what();
  }
}

//------------------------------------------------------------------ random pools against 0.9.0's algorithm

// 0.9.0's algorithm, restated plainly: each device's mappings as runs
// (consecutive origin and data blocks, times ignored), the two run lists
// walked side by side cutting at every run boundary, then the plain writer
// merging adjacent ranges of one kind or the verbose one grouping them.
struct run {
  uint64_t v, d, len;
};

std::deque<run> runs_of(const std::vector<std::pair<uint64_t, thin::lookup_result>> &maps) {
  std::deque<run> out;
  for (auto &[v, r] : maps) {
    if (!out.empty() && out.back().v + out.back().len == v && out.back().d + out.back().len == r.data_block)
      out.back().len++;
    else
      out.push_back({v, r.data_block, 1});
  }
  return out;
}

std::string reference_diff(std::deque<run> l, std::deque<run> r, bool verbose) {
  std::string out;
  const char *names[] = {"left_only", "right_only", "different", "same"};
  int cur = -1;
  uint64_t rb = 0, re = 0;
  auto piece = [&](int kind, uint64_t v, uint64_t ld, uint64_t rd, uint64_t len) {
    if (verbose) {
      if (kind != cur) {
        if (cur >= 0) out += std::string("    </") + names[cur] + ">\n";
        out += std::string("    <") + names[kind] + ">\n";
        cur = kind;
      }
      out += "      <range begin=\"" + std::to_string(v) + "\"";
      if (kind == 2)
        out += " left_data_begin=\"" + std::to_string(ld) + "\" right_data_begin=\"" + std::to_string(rd) + "\"";
      else
        out += " data_begin=\"" + std::to_string(kind == 1 ? rd : ld) + "\"";
      out += " length=\"" + std::to_string(len) + "\"/>\n";
      return;
    }
    if (kind == cur && v == re) {
      re += len;
      return;
    }
    if (cur >= 0)
      out += std::string("    <") + names[cur] + " begin=\"" + std::to_string(rb) + "\" length=\"" +
             std::to_string(re - rb) + "\"/>\n";
    cur = kind;
    rb = v;
    re = v + len;
  };
  auto consume = [](std::deque<run> &q, uint64_t n) {
    if (n == q.front().len) {
      q.pop_front();
    } else {
      q.front().v += n;
      q.front().d += n;
      q.front().len -= n;
    }
  };
  while (!l.empty() && !r.empty()) {
    run a = l.front(), b = r.front();
    if (a.v < b.v) {
      uint64_t n = std::min(a.len, b.v - a.v);
      piece(0, a.v, a.d, 0, n);
      consume(l, n);
    } else if (b.v < a.v) {
      uint64_t n = std::min(b.len, a.v - b.v);
      piece(1, b.v, 0, b.d, n);
      consume(r, n);
    } else {
      uint64_t n = std::min(a.len, b.len);
      piece(a.d == b.d ? 3 : 2, a.v, a.d, b.d, n);
      consume(l, n);
      consume(r, n);
    }
  }
  for (; !l.empty(); l.pop_front()) piece(0, l.front().v, l.front().d, 0, l.front().len);
  for (; !r.empty(); r.pop_front()) piece(1, r.front().v, 0, r.front().d, r.front().len);
  if (cur >= 0) {
    if (verbose)
      out += std::string("    </") + names[cur] + ">\n";
    else
      out += std::string("    <") + names[cur] + " begin=\"" + std::to_string(rb) + "\" length=\"" +
             std::to_string(re - rb) + "\"/>\n";
  }
  return out;
}

TEST(thin_delta_walk, random_pools_with_snapshot_chains_diff_as_0_9_0_does_reading_no_node_twice) {
  unsigned oracle_runs = 0;
  for (uint64_t seed = 1; seed <= 8; seed++) {
    std::mt19937_64 rng(seed);
    auto pick = [&](uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng); };
    pdata::memory_block_io mem(4096);
    auto pool = thin::pool_metadata::format(mem, 128, 200000);
    pool->create_thin(1);
    uint64_t next_dev = 2;
    for (int step = 0; step < 60; step++) {
      auto devs = pool->devices();
      uint64_t dev = devs[pick(devs.size())];
      switch (pick(6)) {
        case 0:  // snapshot
          if (devs.size() < 7) pool->create_snap(next_dev++, dev);
          break;
        case 1:  // a new, maybe empty, device
          if (devs.size() < 7 && pick(3) == 0) pool->create_thin(next_dev++);
          break;
        case 2: {  // remove a few mappings
          for (int i = 0; i < 20; i++) pool->remove(dev, pick(4000));
          break;
        }
        default: {  // write a run (new data blocks: copy-on-write of shared ones)
          uint64_t start = pick(4000), len = 1 + pick(pick(2) ? 8 : 400);
          for (uint64_t v = start; v < start + len; v++) {
            auto d = pool->alloc_data_block();
            ASSERT_TRUE(d);
            pool->insert(dev, v, *d);
          }
        }
      }
      if (pick(4) == 0) pool->commit();
    }
    pool->commit();

    auto devs = pool->devices();
    std::map<uint64_t, std::deque<run>> runs;
    for (auto d : devs) runs[d] = runs_of(pool->mappings(d));
    counting_block_io io(mem);
    test::temp_dir tmp;
    std::string image = tmp.file("metadata.img");
    if (have_oracle()) test::write_binary(image, mem.image());
    for (auto a : devs)
      for (auto b : devs)
        for (bool verbose : {false, true}) {
          io.reads.clear();
          std::string body = diff_with_one_block_cache(io, mem, a, b, verbose);
          ASSERT_EQ(body, reference_diff(runs[a], runs[b], verbose))
              << "seed " << seed << " " << a << " vs " << b << (verbose ? " verbose" : "");
          for (auto &[blk, n] : io.reads) EXPECT_EQ(n, 1u) << "seed " << seed << ": block " << blk;
          // The tool's entry point plans its reads (batches, read_plan_io):
          // the same diff, and still no block read twice but the superblock.
          io.reads.clear();
          thin::string_sink planned;
          thin::delta_metadata(io, {a, b, false, std::nullopt, verbose}, planned);
          EXPECT_NE(planned.str().find(body), std::string::npos) << "seed " << seed << " " << a << " vs " << b;
          for (auto &[blk, n] : io.reads) {
            if (blk != 0) {
              EXPECT_EQ(n, 1u) << "seed " << seed << ": planned reads, block " << blk;
            }
          }
          if (have_oracle() && pick(4) == 0) {
            thin::string_sink ours;
            thin::delta_metadata(mem, {a, b, false, std::nullopt, verbose}, ours);
            EXPECT_EQ(ours.str(), run_program(oracle, delta_args(a, b, verbose, false, image)).out)
                << "seed " << seed << " " << a << " vs " << b;
            oracle_runs++;
          }
        }
  }
  if (have_oracle()) {
    EXPECT_GT(oracle_runs, 20u);
  }
}

// Three-level mapping trees (root, internal nodes, leaves): a large origin,
// snapshots of it and of a snapshot, and a small unrelated device.
TEST(thin_delta_walk, three_level_trees_diff_as_0_9_0_does_reading_no_node_twice) {
  std::mt19937_64 rng(7);
  auto pick = [&](uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng); };
  pdata::memory_block_io mem(40000);
  auto pool = thin::pool_metadata::format(mem, 128, 2000000);
  pool->create_thin(1);
  for (uint64_t v = 0; v < 70000; v++)
    if (pick(10)) pool->insert(1, v * 2 + pick(2), *pool->alloc_data_block());
  pool->commit();
  pool->create_snap(2, 1);
  for (int i = 0; i < 300; i++) pool->insert(1, pick(140000), *pool->alloc_data_block());
  pool->create_snap(3, 2);
  for (int i = 0; i < 20; i++) {
    uint64_t start = pick(140000), len = pick(3000);
    for (uint64_t v = start; v < start + len; v++) pool->insert(3, v, *pool->alloc_data_block());
  }
  for (int i = 0; i < 2000; i++) pool->remove(2, pick(140000));
  pool->create_thin(4);
  for (int i = 0; i < 100; i++) pool->insert(4, pick(140000), *pool->alloc_data_block());
  pool->commit();

  struct depth_visitor : pdata::btree_visitor {
    unsigned max_depth = 0;
    bool visit_node(pdata::block_address, const pdata::btree_node_view &, const pdata::key_range &,
                    unsigned depth) override {
      max_depth = std::max(max_depth, depth);
      return true;
    }
    void visit_leaf(pdata::block_address, const pdata::btree_node_view &, const pdata::key_range &) override {}
    void damage(const pdata::btree_damage &d) override { throw std::runtime_error(d.what); }
  } dv;
  pdata::block_cache plain_cache(mem);
  pdata::walk_btree(plain_cache, subtree_root(mem, 1), 8, dv);
  ASSERT_GE(dv.max_depth, 2u) << "device 1's tree is not three levels deep";

  std::map<uint64_t, std::deque<run>> runs;
  for (uint64_t d = 1; d <= 4; d++) runs[d] = runs_of(pool->mappings(d));
  test::temp_dir tmp;
  std::string image = tmp.file("metadata.img");
  if (have_oracle()) test::write_binary(image, mem.image());
  counting_block_io io(mem);
  for (auto [a, b] : std::vector<std::pair<uint64_t, uint64_t>>{{1, 2}, {2, 1}, {1, 3}, {2, 3}, {3, 3}, {4, 1}}) {
    for (bool verbose : {false, true}) {
      io.reads.clear();
      std::string body = diff_with_one_block_cache(io, mem, a, b, verbose);
      ASSERT_EQ(body, reference_diff(runs[a], runs[b], verbose)) << a << " vs " << b << (verbose ? " verbose" : "");
      for (auto &[blk, n] : io.reads) EXPECT_EQ(n, 1u) << a << " vs " << b << ": block " << blk;
    }
  }
  if (have_oracle()) {
    for (bool verbose : {false, true}) {
      thin::string_sink ours;
      thin::delta_metadata(mem, {1, 3, false, std::nullopt, verbose}, ours);
      EXPECT_EQ(ours.str(), run_program(oracle, delta_args(1, 3, verbose, false, image)).out);
    }
  }
}

// A diff read from a file, which takes reads from several threads: the
// planned leaves come a window (1,024 blocks) at a time, the next one read
// ahead while the walk works on this one. An origin of 1,300 leaves and a
// snapshot written to in every leaf's range: over 2,000 leaves to read.
TEST(thin_delta_walk, a_diff_read_from_a_file_a_window_ahead_is_the_diff_read_from_memory) {
  pdata::memory_block_io mem(8192);
  auto pool = thin::pool_metadata::format(mem, 128, 1000000);
  pool->create_thin(1);
  const uint64_t n = 160000;
  for (uint64_t v = 0; v < n; v++) pool->insert(1, v, *pool->alloc_data_block());
  pool->commit();
  pool->create_snap(2, 1);
  for (uint64_t v = 3; v < n; v += 97) pool->insert(2, v, *pool->alloc_data_block());
  for (uint64_t v = 50; v < n; v += 5001) pool->remove(1, v);
  pool->commit();
  ASSERT_GT(subtree_nodes(mem, subtree_root(mem, 1)).size() + subtree_nodes(mem, subtree_root(mem, 2)).size(), 2100u);

  test::temp_dir tmp;
  const std::string image = tmp.file("metadata.img");
  test::write_binary(image, mem.image());
  auto file = test::open_read_only(image);
  ASSERT_TRUE(file->concurrent_reads());
  std::map<uint64_t, std::deque<run>> runs{{1, runs_of(pool->mappings(1))}, {2, runs_of(pool->mappings(2))}};
  for (auto [a, b] : std::vector<std::pair<uint64_t, uint64_t>>{{1, 2}, {2, 1}}) {
    for (bool verbose : {false, true}) {
      thin::string_sink from_file;
      thin::delta_metadata(*file, {a, b, false, std::nullopt, verbose}, from_file);
      EXPECT_EQ(diff_body(from_file.str()), reference_diff(runs[a], runs[b], verbose))
          << a << " vs " << b << (verbose ? " verbose" : "");
    }
  }
}

}  // namespace
