// thin_extract, black box: the devices it writes from a kernel fixture's data
// image and metadata (binary, the metadata snapshot, thin_dump XML) hash to
// the sha256 the kernel served (manifest.txt); with a mapping leaf zeroed it
// writes every other block and names the lost range; on pools written through
// the reference engine its output equals what the engine reads back; its
// command-line mistakes and refusals exit 1.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <cstdlib>

#include "support/damage_support.h"
#include "engine/thin_pool.h"
#include "persistent-data/block_io.h"
#include "persistent-data/btree_node.h"
#include "support/test_support.h"

namespace {

namespace fs = std::filesystem;

struct manifest_entry {
  std::string label;  // "final" (the live metadata) or "metasnap" (the metadata snapshot)
  uint64_t dev = 0, sectors = 0;
  std::string sha256;
};

std::vector<manifest_entry> manifest(const std::string &scenario) {
  std::vector<manifest_entry> out;
  std::istringstream in(test::read_file(test::fixture_file(scenario, "manifest.txt")));
  std::string line;
  while (std::getline(in, line)) {
    manifest_entry e;
    std::istringstream words(line);
    std::string w;
    while (words >> w) {
      auto eq = w.find('=');
      std::string k = w.substr(0, eq), v = w.substr(eq + 1);
      if (k == "label") e.label = v;
      if (k == "dev_id") e.dev = std::stoull(v);
      if (k == "sectors") e.sectors = std::stoull(v);
      if (k == "sha256") e.sha256 = v;
    }
    if (!e.sha256.empty()) out.push_back(e);
  }
  return out;
}

std::string data_image(const std::string &scenario) {
  return std::string(THINKIT_FIXTURE_BIN) + "/kernel/" + scenario + "/data.img";
}

// sha256sum(1) of files, in one run: path -> hash.
std::map<std::string, std::string> sha256_of(const std::vector<std::string> &paths) {
  std::map<std::string, std::string> out;
  std::string cmd = "sha256sum";
  for (auto &p : paths) cmd += " '" + p + "'";
  FILE *p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  while (std::fgets(buf, sizeof(buf), p)) {
    std::string line = buf;
    while (!line.empty() && line.back() == '\n') line.pop_back();
    auto sp = line.find("  ");
    if (sp != std::string::npos) out[line.substr(sp + 2)] = line.substr(0, sp);
  }
  ::pclose(p);
  return out;
}

std::string sha256_of(const std::string &path) { return sha256_of(std::vector<std::string>{path})[path]; }

uint64_t file_size(const std::string &path) { return fs::file_size(path); }

void resize(const std::string &path, uint64_t size) { fs::resize_file(path, size); }

// Extracts every device of a scenario (live metadata, or the metadata
// snapshot with -m, or the XML) into a directory, sizes each output as the
// manifest says and compares its hash.
void expect_manifest_hashes(const std::string &scenario, const std::string &label, std::vector<std::string> how) {
  auto entries = manifest(scenario);
  test::temp_dir tmp;
  const std::string dir = tmp.file("out");
  std::vector<std::string> args{"--data-dev", data_image(scenario), "--all", "-o", dir};
  args.insert(args.end(), how.begin(), how.end());
  auto r = test::run_tool("thin_extract", args);
  ASSERT_EQ(r.exit_code, 0) << scenario << ": " << r.err;
  EXPECT_EQ(r.err, "");
  std::vector<std::string> outs;
  for (auto &e : entries) {
    if (e.label != label) continue;
    const std::string out = dir + "/" + std::to_string(e.dev);
    ASSERT_TRUE(test::file_exists(out)) << scenario << " device " << e.dev;
    // By default the output ends at the device's last mapped block.
    ASSERT_LE(file_size(out), e.sectors * 512) << scenario << " device " << e.dev;
    resize(out, e.sectors * 512);
    outs.push_back(out);
  }
  EXPECT_GT(outs.size(), 0u) << scenario;
  auto hashes = sha256_of(outs);
  for (auto &e : entries) {
    if (e.label != label) continue;
    EXPECT_EQ(hashes[dir + "/" + std::to_string(e.dev)], e.sha256) << scenario << " device " << e.dev;
  }
}

TEST(thin_extract, every_kernel_fixture_device_hashes_as_the_kernel_served_it_from_binary_metadata) {
  for (auto &s : test::kernel_scenarios()) {
    SCOPED_TRACE(s);
    expect_manifest_hashes(s, "final", {test::fixture_image(s)});
  }
}

TEST(thin_extract, every_kernel_fixture_device_hashes_as_the_kernel_served_it_from_thin_dump_xml) {
  for (auto &s : test::kernel_scenarios()) {
    SCOPED_TRACE(s);
    expect_manifest_hashes(s, "final", {"--xml", test::fixture_file(s, "thin_dump.xml")});
  }
}

TEST(thin_extract, the_metadata_snapshot_gives_the_devices_as_they_were_when_it_was_taken) {
  expect_manifest_hashes("discard-metasnap", "metasnap", {"-m", test::fixture_image("discard-metasnap")});
}

TEST(thin_extract, one_device_with_size_gives_exactly_that_many_bytes_with_holes_where_unmapped) {
  for (auto &e : manifest("basic")) {
    test::temp_dir tmp;
    const std::string out = tmp.file("vol");
    auto r = test::run_tool("thin_extract", {"--data-dev", data_image("basic"), "--dev-id", std::to_string(e.dev),
                                             "--size", std::to_string(e.sectors * 512), "-o", out,
                                             test::fixture_image("basic")});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(file_size(out), e.sectors * 512);
    EXPECT_EQ(sha256_of(out), e.sha256) << "device " << e.dev;
    // basic maps 64 data blocks of 64 KiB in all: the output is sparse.
    struct stat st;
    ASSERT_EQ(::stat(out.c_str(), &st), 0);
    EXPECT_LE(static_cast<uint64_t>(st.st_blocks) * 512, uint64_t{64} * 65536 + 65536);
  }
}

// The leaves of one device's mapping subtree, with the key range their parents give them.
void leaves_of(const dmg::image &img, pdata::block_address b, pdata::key_range range,
               std::vector<std::pair<pdata::block_address, pdata::key_range>> &out) {
  pdata::btree_node_view n(img.block(b));
  if (!n.is_internal()) {
    out.push_back({b, range});
    return;
  }
  for (uint32_t i = 0; i < n.nr_entries(); i++)
    leaves_of(img, n.value64(i), {n.key(i), i + 1 < n.nr_entries() ? std::optional<uint64_t>(n.key(i + 1)) : range.end},
              out);
}

TEST(thin_extract, with_a_mapping_leaf_zeroed_it_writes_every_other_block_names_the_lost_range_and_exits_1) {
  const std::string s = "btree";
  dmg::image img = dmg::load_fixture(s);
  const dmg::layout L = dmg::analyse(img);
  const uint64_t dev = 1;
  manifest_entry entry;
  for (auto &e : manifest(s))
    if (e.label == "final" && e.dev == dev) entry = e;
  ASSERT_FALSE(entry.sha256.empty());
  pdata::block_address root = 0;
  for (auto &[d, r] : L.devices)
    if (d == dev) root = r;
  ASSERT_NE(root, 0u);
  std::vector<std::pair<pdata::block_address, pdata::key_range>> leaves;
  leaves_of(img, root, {}, leaves);
  ASSERT_GE(leaves.size(), 3u) << "device 1 of btree should have a two-level mapping tree";
  const auto [leaf, keys] = leaves[leaves.size() / 2];
  ASSERT_TRUE(keys.end);

  test::temp_dir tmp;
  // The device up to a few blocks past the lost range (the whole device's
  // extraction is checked against the kernel's hash above).
  const uint64_t bb = uint64_t{L.sb.data_block_size} * 512;
  const std::string size = std::to_string(std::min<uint64_t>(entry.sectors * 512, (*keys.end + 8) * bb));
  const std::string good = tmp.file("good"), bad = tmp.file("bad"), meta = tmp.file("meta");
  auto r = test::run_tool("thin_extract", {"--data-dev", data_image(s), "--dev-id", "1", "--size", size, "-o", good,
                                           test::fixture_image(s)});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  std::fill(img.block(leaf), img.block(leaf) + dmg::bsize, 0);
  test::write_binary(meta, img.bytes);
  r = test::run_tool("thin_extract", {"--data-dev", data_image(s), "--dev-id", "1", "--size", size, "-o", bad, meta});
  EXPECT_EQ(r.exit_code, 1);
  const std::string named = "device 1: blocks " + std::to_string(keys.begin) + ".." + std::to_string(*keys.end - 1) +
                            " (bytes " + std::to_string(keys.begin * bb) + ".." + std::to_string(*keys.end * bb - 1) +
                            ")";
  EXPECT_NE(r.err.find(named), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(std::to_string(leaf)), std::string::npos) << "the zeroed block is named: " << r.err;

  // Every byte outside the lost range is as the intact extraction has it;
  // inside it, zeros (a hole).
  const auto g = test::read_binary(good), b = test::read_binary(bad);
  ASSERT_EQ(g.size(), b.size());
  const uint64_t lost_begin = keys.begin * bb, lost_end = std::min<uint64_t>(*keys.end * bb, g.size());
  ASSERT_LT(lost_begin, lost_end);
  const auto at = [](const std::vector<unsigned char> &v, uint64_t i) { return v.begin() + static_cast<std::ptrdiff_t>(i); };
  EXPECT_TRUE(std::equal(at(g, 0), at(g, lost_begin), at(b, 0))) << "before the lost range";
  EXPECT_TRUE(std::equal(at(g, lost_end), g.end(), at(b, lost_end))) << "after the lost range";
  EXPECT_TRUE(std::all_of(at(b, lost_begin), at(b, lost_end), [](unsigned char c) { return c == 0; }))
      << "the lost range is not zeros";
  const bool lost_had_data = std::any_of(at(g, lost_begin), at(g, lost_end), [](unsigned char c) { return c != 0; });
  EXPECT_TRUE(lost_had_data) << "the zeroed leaf mapped only zero blocks: the test proves nothing";
}

// A pool written through the reference engine: patterns at chosen sectors of
// an origin and of a snapshot of it, partly overwritten.
struct engine_pool {
  static constexpr uint32_t dbs = 128;  // 64 KiB blocks
  static constexpr uint64_t dev_sectors = 64 * dbs;
  pdata::memory_block_io meta{2048};
  pdata::memory_block_io data{256 * dbs / 8};
  std::unique_ptr<thin::thin_pool> pool;

  engine_pool() {
    thin::pool_options po;
    po.data_block_size = dbs;
    pool = thin::thin_pool::format(meta, data, po);
    pool->create_thin(1);
    auto pattern = [](uint64_t seed, uint64_t sectors) {
      std::vector<unsigned char> v(sectors * 512);
      for (std::size_t i = 0; i < v.size(); i++) v[i] = static_cast<unsigned char>((i * 131 + seed * 7 + 1) % 251);
      return v;
    };
    // Scattered writes, some whole blocks, some partial, some runs.
    const std::vector<std::pair<uint64_t, uint64_t>> writes1 = {{0, 8}, {128, 256}, {1000, 3}, {3000, 700},
                                                                {63 * dbs, dbs}};
    uint64_t seed = 1;
    for (auto [sector, n] : writes1) pool->write(1, sector, pattern(seed++, n).data(), n);
    pool->create_snap(2, 1);
    const std::vector<std::pair<uint64_t, uint64_t>> writes2 = {{130, 4}, {5000, 128}, {20 * dbs, 2 * dbs}};
    for (auto [sector, n] : writes2) pool->write(2, sector, pattern(seed++, n).data(), n);
    pool->write(1, 3100, pattern(seed++, 10).data(), 10);
    pool->commit();
  }
  std::vector<unsigned char> read(uint64_t dev) {
    std::vector<unsigned char> v(dev_sectors * 512);
    pool->read(dev, 0, v.data(), dev_sectors);
    return v;
  }
};

TEST(thin_extract, devices_of_a_pool_written_by_the_reference_engine_read_back_as_the_engine_reads_them) {
  engine_pool p;
  test::temp_dir tmp;
  test::write_binary(tmp.file("meta"), p.meta.image());
  test::write_binary(tmp.file("data"), p.data.image());
  for (uint64_t dev : {1, 2}) {
    const std::string out = tmp.file("dev" + std::to_string(dev));
    auto r = test::run_tool("thin_extract", {"--data-dev", tmp.file("data"), "--dev-id", std::to_string(dev),
                                             "--size", std::to_string(engine_pool::dev_sectors * 512), "-o", out,
                                             tmp.file("meta")});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(test::read_binary(out) == p.read(dev)) << "device " << dev;
  }
}

TEST(thin_extract, size_below_the_mapped_end_cuts_the_output_and_says_how_many_blocks_were_left_out) {
  engine_pool p;
  test::temp_dir tmp;
  test::write_binary(tmp.file("meta"), p.meta.image());
  test::write_binary(tmp.file("data"), p.data.image());
  const uint64_t cut = 10 * 65536 + 4096;  // inside block 10; blocks 11.. are beyond
  auto r = test::run_tool("thin_extract", {"--data-dev", tmp.file("data"), "--dev-id", "1", "--size",
                                           std::to_string(cut), "-o", tmp.file("out"), tmp.file("meta")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto whole = p.read(1);
  whole.resize(cut);
  EXPECT_TRUE(test::read_binary(tmp.file("out")) == whole);
  EXPECT_NE(r.err.find("device 1:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("beyond --size"), std::string::npos) << r.err;
}

TEST(thin_extract, a_data_device_shorter_than_the_mappings_loses_the_missing_blocks_and_exits_1) {
  engine_pool p;
  test::temp_dir tmp;
  test::write_binary(tmp.file("meta"), p.meta.image());
  auto data = p.data.image();
  data.resize(2 * 65536);  // data blocks 0 and 1 only
  test::write_binary(tmp.file("data"), data);
  auto r = test::run_tool("thin_extract", {"--data-dev", tmp.file("data"), "--dev-id", "1", "-o", tmp.file("out"),
                                           tmp.file("meta")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("beyond the end of the data device"), std::string::npos) << r.err;
}

TEST(thin_extract, refuses_to_write_over_the_data_device_or_the_metadata) {
  test::temp_dir tmp;
  const std::string data = tmp.file("data"), meta = tmp.file("meta");
  fs::copy_file(test::fixture_image("basic"), meta);
  {
    std::ofstream d(data, std::ios::binary);
    d << std::string(65536, 'x');
  }
  const std::string link = tmp.file("link-to-data");
  fs::create_symlink(data, link);
  for (auto &out : {data, link, meta}) {
    auto r = test::run_tool("thin_extract", {"--data-dev", data, "--dev-id", "1", "-o", out, meta});
    EXPECT_EQ(r.exit_code, 1) << out;
    EXPECT_NE(r.err.find("the output is the"), std::string::npos) << r.err;
  }
  EXPECT_EQ(test::read_file(data), std::string(65536, 'x'));
  EXPECT_EQ(test::read_binary(meta), test::read_binary(test::fixture_image("basic")));
}

TEST(thin_extract, command_line_mistakes_and_bad_inputs_fail_with_exit_1_and_one_message) {
  const std::string meta = test::fixture_image("basic"), data = data_image("basic");
  test::temp_dir tmp;
  const std::string out = tmp.file("out");
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--dev-id", "1", "-o", out, meta}, "--data-dev"},
      {{"--data-dev", data, "-o", out, meta}, "--dev-id"},
      {{"--data-dev", data, "--dev-id", "1", "--all", "-o", out, meta}, "--all"},
      {{"--data-dev", data, "--dev-id", "1", meta}, "-o"},
      {{"--data-dev", data, "--dev-id", "1", "-o", out}, "no metadata"},
      {{"--data-dev", data, "--dev-id", "x", "-o", out, meta}, "--dev-id"},
      {{"--data-dev", data, "--dev-id", "1", "--size", "1G", "-o", out, meta}, "--size"},
      {{"--data-dev", data, "--dev-id", "1", "-o", out, "--xml", "-m", meta}, "--xml"},
      {{"--data-dev", data, "--dev-id", "9", "-o", out, meta}, "device 9 is not in the metadata"},
      {{"--data-dev", data, "--dev-id", "1", "-o", out, test::fixture_file("basic", "thin_dump.xml")}, "--xml"},
      {{"--data-dev", tmp.file("missing"), "--dev-id", "1", "-o", out, meta}, "missing"},
      {{"--data-dev", data, "--dev-id", "1", "-o", out, "--bogus", meta}, "bogus"},
  };
  for (auto &[args, says] : cases) {
    auto r = test::run_tool("thin_extract", args);
    EXPECT_EQ(r.exit_code, 1) << testing::PrintToString(args);
    EXPECT_NE(r.err.find(says), std::string::npos) << testing::PrintToString(args) << ": " << r.err;
    EXPECT_EQ(r.out, "");
  }
  EXPECT_FALSE(test::file_exists(out)) << "no output is created when the command fails before extracting";
}

TEST(thin_extract, help_and_version_exit_0) {
  auto h = test::run_tool("thin_extract", {"-h"});
  EXPECT_EQ(h.exit_code, 0);
  EXPECT_NE(h.out.find("Usage: thin_extract"), std::string::npos);
  auto v = test::run_tool("thin_extract", {"-V"});
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_EQ(v.out, test::run_tool("thin_check", {"-V"}).out);
}

// A loop device over a file, for the block-device paths (root only).
class loop_device {
 public:
  explicit loop_device(const std::string &file) {
    if (::geteuid() != 0 || !test::file_exists("/dev/loop-control")) return;
    std::string cmd = "losetup --find --show '" + file + "' 2>/dev/null";
    FILE *p = ::popen(cmd.c_str(), "r");
    if (!p) return;
    char buf[256] = {};
    if (std::fgets(buf, sizeof(buf), p)) path_ = buf;
    ::pclose(p);
    while (!path_.empty() && path_.back() == '\n') path_.pop_back();
  }
  ~loop_device() {
    if (!path_.empty()) std::system(("losetup -d '" + path_ + "'").c_str());
  }
  const std::string &path() const { return path_; }

 private:
  std::string path_;
};

TEST(thin_extract, to_a_block_device_it_writes_zeros_where_unmapped) {
  engine_pool p;
  test::temp_dir tmp;
  test::write_binary(tmp.file("meta"), p.meta.image());
  test::write_binary(tmp.file("data"), p.data.image());
  const uint64_t size = engine_pool::dev_sectors * 512;
  {
    std::ofstream f(tmp.file("backing"), std::ios::binary);
    f << std::string(size + 65536, '\xff');  // a bit larger than the device
  }
  loop_device loop(tmp.file("backing"));
  if (loop.path().empty()) GTEST_SKIP() << "needs root and a free loop device";
  auto r = test::run_tool("thin_extract", {"--data-dev", tmp.file("data"), "--dev-id", "2", "--size",
                                           std::to_string(size), "-o", loop.path(), tmp.file("meta")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto got = test::read_binary(tmp.file("backing"));
  ASSERT_EQ(got.size(), size + 65536);
  std::vector<unsigned char> head(got.begin(), got.begin() + static_cast<std::ptrdiff_t>(size));
  EXPECT_TRUE(head == p.read(2));
  for (uint64_t i = size; i < got.size(); i++) ASSERT_EQ(got[i], 0xff) << "byte " << i << " beyond --size was written";

  // A --size larger than the device is refused before anything is written.
  r = test::run_tool("thin_extract", {"--data-dev", tmp.file("data"), "--dev-id", "2", "--size",
                                      std::to_string(size + 2 * 65536), "-o", loop.path(), tmp.file("meta")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("larger than the output device"), std::string::npos) << r.err;
}

}  // namespace
