// thin_trim, black box: on a data file, holes appear exactly at the data
// blocks no device maps (SEEK_DATA/SEEK_HOLE) and mapped blocks keep their
// bytes; on damaged metadata nothing is discarded; without --data-dev it
// fails (upstream's black-box cases); on a loop device the discards reach the
// backing file (root only, skipped otherwise).
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <cstdlib>

#include "support/damage_support.h"
#include "engine/thin_pool.h"
#include "persistent-data/block_io.h"
#include "support/test_support.h"

namespace {

namespace fs = std::filesystem;

constexpr uint64_t block_bytes = 65536;  // 128-sector data blocks in every pool here

// Which 64 KiB blocks of a file hold data (not holes), by SEEK_DATA/SEEK_HOLE.
std::set<uint64_t> data_blocks_of(const std::string &path) {
  std::set<uint64_t> out;
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return out;
  const off_t size = ::lseek(fd, 0, SEEK_END);
  off_t pos = 0;
  while (pos < size) {
    off_t d = ::lseek(fd, pos, SEEK_DATA);
    if (d < 0) break;
    off_t h = ::lseek(fd, d, SEEK_HOLE);
    for (uint64_t b = static_cast<uint64_t>(d) / block_bytes; b * block_bytes < static_cast<uint64_t>(h); b++)
      out.insert(b);
    pos = h;
  }
  ::close(fd);
  return out;
}

// Whether this file system punches holes (tmpfs and ext4 do).
bool can_punch_holes(const std::string &dir) {
  const std::string f = dir + "/probe";
  {
    std::ofstream o(f, std::ios::binary);
    o << std::string(2 * block_bytes, 'p');
  }
  int fd = ::open(f.c_str(), O_RDWR);
  bool ok = fd >= 0 && ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, block_bytes) == 0;
  if (fd >= 0) ::close(fd);
  fs::remove(f);
  return ok && data_blocks_of(f).empty();
}

// A pool written through the reference engine: an origin with blocks written
// here and there, a snapshot of it with some blocks overwritten (copied).
struct small_pool {
  pdata::memory_block_io meta{2048};
  pdata::memory_block_io data{256 * block_bytes / 4096};
  small_pool() {
    thin::pool_options po;
    po.data_block_size = 128;
    auto pool = thin::thin_pool::format(meta, data, po);
    pool->create_thin(1);
    std::vector<unsigned char> buf(block_bytes);
    uint64_t seed = 1;
    auto put = [&](uint64_t dev, uint64_t vblock) {
      for (std::size_t i = 0; i < buf.size(); i++) buf[i] = static_cast<unsigned char>(1 + (i + seed) % 250);
      seed++;
      pool->write(dev, vblock * 128, buf.data(), 128);
    };
    for (uint64_t v : {0, 1, 2, 10, 11, 40, 63}) put(1, v);
    pool->create_snap(2, 1);
    for (uint64_t v : {1, 50}) put(2, v);
    pool->commit();
  }
  // Blocks the engine put data in: every one is mapped (nothing was deleted).
  std::set<uint64_t> used() const {
    std::set<uint64_t> out;
    auto img = data.image();
    for (uint64_t b = 0; b * block_bytes < img.size(); b++)
      for (uint64_t i = 0; i < block_bytes; i++)
        if (img[b * block_bytes + i]) {
          out.insert(b);
          break;
        }
    return out;
  }
};

// A fully allocated copy of a data image with every byte of the blocks not
// in `keep` set to 0xee (so a hole there can only come from a discard).
void write_filled(const std::string &path, std::vector<unsigned char> img, const std::set<uint64_t> &keep) {
  for (uint64_t b = 0; b * block_bytes < img.size(); b++)
    if (!keep.count(b)) std::fill(img.begin() + static_cast<std::ptrdiff_t>(b * block_bytes),
                                  img.begin() + static_cast<std::ptrdiff_t>((b + 1) * block_bytes), 0xee);
  test::write_binary(path, img);
}

TEST(thin_trim, on_a_data_file_punches_holes_exactly_at_the_blocks_no_device_maps) {
  test::temp_dir tmp;
  if (!can_punch_holes(tmp.path())) GTEST_SKIP() << "the temporary file system cannot punch holes";
  small_pool p;
  const auto used = p.used();
  ASSERT_EQ(used.size(), 9u) << "7 origin blocks and 2 copied for the snapshot";
  test::write_binary(tmp.file("meta"), p.meta.image());
  write_filled(tmp.file("data"), p.data.image(), used);
  ASSERT_EQ(data_blocks_of(tmp.file("data")).size(), 256u);

  auto r = test::run_tool("thin_trim", {"--metadata-dev", tmp.file("meta"), "--data-dev", tmp.file("data")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out + r.err, "");
  EXPECT_EQ(data_blocks_of(tmp.file("data")), used);
  EXPECT_EQ(fs::file_size(tmp.file("data")), 256 * block_bytes) << "the size is kept";
  auto after = test::read_binary(tmp.file("data"));
  auto before = p.data.image();
  for (uint64_t b : used)
    EXPECT_TRUE(std::equal(after.begin() + static_cast<std::ptrdiff_t>(b * block_bytes),
                           after.begin() + static_cast<std::ptrdiff_t>((b + 1) * block_bytes),
                           before.begin() + static_cast<std::ptrdiff_t>(b * block_bytes)))
        << "mapped block " << b << " changed";
}

// The data blocks a kernel fixture's thin_dump.xml maps.
std::set<uint64_t> mapped_in_xml(const std::string &scenario) {
  std::set<uint64_t> out;
  const std::string xml = test::read_file(test::fixture_file(scenario, "thin_dump.xml"));
  std::regex range("data_begin=\"([0-9]+)\" length=\"([0-9]+)\""), single("data_block=\"([0-9]+)\"");
  for (std::sregex_iterator i(xml.begin(), xml.end(), range), e; i != e; ++i)
    for (uint64_t k = 0; k < std::stoull((*i)[2]); k++) out.insert(std::stoull((*i)[1]) + k);
  for (std::sregex_iterator i(xml.begin(), xml.end(), single), e; i != e; ++i) out.insert(std::stoull((*i)[1]));
  return out;
}

// The first `bytes` bytes of a file.
std::vector<unsigned char> read_head(const std::string &path, uint64_t bytes) {
  std::vector<unsigned char> v(bytes);
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char *>(v.data()), static_cast<std::streamsize>(bytes));
  v.resize(static_cast<std::size_t>(in.gcount()));
  return v;
}

TEST(thin_trim, on_a_kernel_pool_with_a_deleted_snapshot_keeps_exactly_the_blocks_its_xml_maps) {
  test::temp_dir tmp;
  if (!can_punch_holes(tmp.path())) GTEST_SKIP() << "the temporary file system cannot punch holes";
  const std::string s = "snapshots";
  const auto mapped = mapped_in_xml(s);
  ASSERT_FALSE(mapped.empty());
  // The data image is 256 MiB; the blocks up to a little past the last mapped
  // one are written out whole (unmapped ones as 0xee), the rest stays a hole.
  const uint64_t head_blocks = *mapped.rbegin() + 32;
  const std::string image = std::string(THINKIT_FIXTURE_BIN) + "/kernel/" + s + "/data.img";
  const auto original = read_head(image, head_blocks * block_bytes);
  ASSERT_EQ(original.size(), head_blocks * block_bytes);
  fs::copy_file(test::fixture_image(s), tmp.file("meta"));
  write_filled(tmp.file("data"), original, mapped);
  fs::resize_file(tmp.file("data"), fs::file_size(image));
  ASSERT_EQ(data_blocks_of(tmp.file("data")).size(), head_blocks);

  auto r = test::run_tool("thin_trim", {"--metadata-dev", tmp.file("meta"), "--data-dev", tmp.file("data")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Mapped blocks that hold only zeros may be holes in either image; every
  // other mapped block keeps its data, and no unmapped block does.
  const auto now = data_blocks_of(tmp.file("data"));
  for (uint64_t b : now) EXPECT_TRUE(mapped.count(b)) << "unmapped block " << b << " was not discarded";
  const auto after = read_head(tmp.file("data"), head_blocks * block_bytes);
  ASSERT_EQ(after.size(), original.size());
  for (uint64_t b : mapped)
    EXPECT_TRUE(std::equal(after.begin() + static_cast<std::ptrdiff_t>(b * block_bytes),
                           after.begin() + static_cast<std::ptrdiff_t>((b + 1) * block_bytes),
                           original.begin() + static_cast<std::ptrdiff_t>(b * block_bytes)))
        << "mapped block " << b << " changed";
  EXPECT_EQ(test::read_binary(tmp.file("meta")), test::read_binary(test::fixture_image(s))) << "metadata untouched";
}

// basic's devices map data blocks 0..63 (its thin_dump.xml); 4096 blocks in all.
// thin_trim 0.9.0 discards block 63 too (the used block just before the free
// blocks at the end of the pool), losing its data.
TEST(thin_trim, keeps_the_last_used_block_before_the_final_free_run) {
  test::temp_dir tmp;
  if (!can_punch_holes(tmp.path())) GTEST_SKIP() << "the temporary file system cannot punch holes";
  const auto mapped = mapped_in_xml("basic");
  ASSERT_EQ(mapped.size(), 64u);
  ASSERT_EQ(*mapped.rbegin(), 63u);
  fs::copy_file(test::fixture_image("basic"), tmp.file("meta"));
  {
    // Sparse, except blocks 56..71 around the end of the used ones.
    std::ofstream d(tmp.file("data"), std::ios::binary);
    d.seekp(static_cast<std::streamoff>(56 * block_bytes));
    d << std::string(16 * block_bytes, '\xee');
  }
  fs::resize_file(tmp.file("data"), 4096 * block_bytes);
  auto r = test::run_tool("thin_trim", {"--metadata-dev", tmp.file("meta"), "--data-dev", tmp.file("data")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(data_blocks_of(tmp.file("data")), (std::set<uint64_t>{56, 57, 58, 59, 60, 61, 62, 63}));
}

TEST(thin_trim, on_corrupt_metadata_fails_before_discarding_anything) {
  test::temp_dir tmp;
  small_pool p;
  dmg::image img{"engine", p.meta.image()};
  const dmg::layout L = dmg::analyse(img);
  pdata::block_address leaf = 0;
  for (auto &[b, role] : L.roles)
    if (role == dmg::role::bottom_leaf) leaf = b;
  ASSERT_NE(leaf, 0u);
  std::fill(img.block(leaf), img.block(leaf) + dmg::bsize, 0);
  test::write_binary(tmp.file("meta"), img.bytes);
  write_filled(tmp.file("data"), p.data.image(), p.used());
  const auto before = test::read_binary(tmp.file("data"));

  auto r = test::run_tool("thin_trim", {"--metadata-dev", tmp.file("meta"), "--data-dev", tmp.file("data")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("nothing was discarded"), std::string::npos) << r.err;
  EXPECT_EQ(data_blocks_of(tmp.file("data")).size(), 256u) << "a hole was punched";
  EXPECT_TRUE(test::read_binary(tmp.file("data")) == before);
}

TEST(thin_trim, a_data_device_smaller_than_the_pool_is_refused) {
  test::temp_dir tmp;
  small_pool p;
  test::write_binary(tmp.file("meta"), p.meta.image());
  auto img = p.data.image();
  img.resize(img.size() / 2);
  write_filled(tmp.file("data"), img, p.used());
  auto r = test::run_tool("thin_trim", {"--metadata-dev", tmp.file("meta"), "--data-dev", tmp.file("data")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("is it the pool's data device?"), std::string::npos) << r.err;
  EXPECT_EQ(data_blocks_of(tmp.file("data")).size(), 128u);
}

TEST(thin_trim, without_data_dev_or_metadata_dev_fails_with_exit_1_and_the_usage) {
  const std::string meta = test::fixture_image("basic");
  for (auto &args : std::vector<std::vector<std::string>>{{"--metadata-dev", meta}, {"--data-dev", meta}, {}}) {
    auto r = test::run_tool("thin_trim", args);
    EXPECT_EQ(r.exit_code, 1) << testing::PrintToString(args);
    EXPECT_NE(r.err.find("Usage: thin_trim"), std::string::npos) << r.err;
  }
  auto r = test::run_tool("thin_trim", {"--metadata-dev", meta, "--data-dev", meta});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("same file"), std::string::npos) << r.err;
  r = test::run_tool("thin_trim", {"--bogus"});
  EXPECT_EQ(r.exit_code, 1);
}

TEST(thin_trim, help_matches_0_9_0_and_version_is_bare) {
  auto h = test::run_tool("thin_trim", {"--help"});
  EXPECT_EQ(h.exit_code, 0);
  EXPECT_EQ(h.out,
            "Usage: thin_trim [options] --metadata-dev {device|file} --data-dev {device|file}\n"
            "Options:\n"
            "  {-h|--help}\n"
            "  {-V|--version}\n");
  if (test::debian_tools_installed({"thin_trim"})) {
    std::string cmd = test::debian_tool("thin_trim") + " --help 2>&1";
    FILE *p = ::popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string theirs;
    char buf[256];
    while (std::fgets(buf, sizeof(buf), p)) theirs += buf;
    ::pclose(p);
    EXPECT_EQ(h.out, theirs);
  }
  auto v = test::run_tool("thin_trim", {"-V"});
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_EQ(v.out, test::run_tool("thin_check", {"-V"}).out);
}

TEST(thin_trim, accepts_pool_inactive_as_0_9_0_does) {
  test::temp_dir tmp;
  small_pool p;
  test::write_binary(tmp.file("meta"), p.meta.image());
  test::write_binary(tmp.file("data"), p.data.image());
  auto r = test::run_tool("thin_trim",
                          {"--metadata-dev", tmp.file("meta"), "--data-dev", tmp.file("data"), "--pool-inactive"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST(thin_trim, on_a_loop_device_the_discards_reach_the_backing_file) {
  test::temp_dir tmp;
  if (::geteuid() != 0 || !test::file_exists("/dev/loop-control")) GTEST_SKIP() << "needs root and loop devices";
  if (!can_punch_holes(tmp.path())) GTEST_SKIP() << "the temporary file system cannot punch holes";
  small_pool p;
  const auto used = p.used();
  test::write_binary(tmp.file("meta"), p.meta.image());
  write_filled(tmp.file("data"), p.data.image(), used);
  std::string loop;
  {
    FILE *f = ::popen(("losetup --find --show '" + tmp.file("data") + "' 2>/dev/null").c_str(), "r");
    char buf[256] = {};
    if (f && std::fgets(buf, sizeof(buf), f)) loop = buf;
    if (f) ::pclose(f);
    while (!loop.empty() && loop.back() == '\n') loop.pop_back();
  }
  if (loop.empty()) GTEST_SKIP() << "no free loop device";
  auto r = test::run_tool("thin_trim", {"--metadata-dev", tmp.file("meta"), "--data-dev", loop});
  std::system(("losetup -d '" + loop + "'").c_str());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(data_blocks_of(tmp.file("data")), used);
}

}  // namespace
