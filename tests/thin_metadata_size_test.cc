// thin_metadata_size: 0.9.0's output forms and argument handling (compared
// with Debian's /usr/sbin/thin_metadata_size where installed; a few of its
// lines are quoted here as it printed them), the block-size rules, and the
// estimate's safety: worst-case pools (fully provisioned, the given number
// of devices sharing nothing) restored with our thin_restore into exactly
// the estimated size fit and check clean.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "support/test_support.h"
#include "thin/metadata_size/metadata_size.h"

namespace {

const std::string oracle = test::debian_tool("thin_metadata_size");

TEST(thin_metadata_size, prints_0_9_0s_output_forms) {
  // As Debian's thin_metadata_size 0.9.0 printed them.
  struct want {
    std::vector<std::string> args;
    std::string out;
  };
  const std::vector<want> cases = {
      {{"-b", "64k", "-s", "1g", "-m", "10"},
       "thin_metadata_size - 1128 sectors estimated metadata area size for "
       "\"--block-size=64kibibytes "
       "--pool-size=1gibibytes --max-thins=10\"\n"},
      {{"-b", "64k", "-s", "1g", "-m", "10", "-n"}, "1128\n"},
      {{"-b", "64k", "-s", "1g", "-m", "10", "-nshort"}, "1128s\n"},
      {{"-b", "64k", "-s", "1g", "-m", "10", "--numeric-only=long"}, "1128sectors\n"},
      {{"-b", "64k", "-s", "1g", "-m", "10", "-n", "-u", "m"}, "0.55\n"},
      {{"-b", "64k", "-s", "1g", "-m", "10", "-u", "kilo"},
       "thin_metadata_size - 577.54 kilobytes estimated metadata area size for "
       "\"--block-size=64kibibytes "
       "--pool-size=1gibibytes --max-thins=10\"\n"},
      {{"-b", "128", "-s", "1000000", "-m", "1"},
       "thin_metadata_size - 512 sectors estimated metadata area size for "
       "\"--block-size=128sectors "
       "--pool-size=1000000sectors --max-thins=1\"\n"},
      {{"-b", "64k", "-s", "1t", "-m", "1k"},
       "thin_metadata_size - 1073416 sectors estimated metadata area size for \"--block-size=64kibibytes "
       "--pool-size=1tebibytes --max-thins=1kibibytes\"\n"},
      {{"-b", "64k", "-s", "1g", "-m", "10", "-u", "b"},
       "thin_metadata_size - 577536 bytes estimated metadata area size for "
       "\"--block-size=64kibibytes "
       "--pool-size=1gibibytes --max-thins=10\"\n"},
  };
  for (auto &c : cases) {
    auto r = test::run_tool("thin_metadata_size", c.args);
    EXPECT_EQ(r.exit_code, 0) << ::testing::PrintToString(c.args) << ": " << r.err;
    EXPECT_EQ(r.out, c.out) << ::testing::PrintToString(c.args);
  }
}

TEST(thin_metadata_size, matches_the_0_9_0_oracle_for_many_argument_combinations) {
  if (!test::have_program(oracle)) GTEST_SKIP() << oracle << " is not installed";
  const std::vector<std::vector<std::string>> sizes = {
      {"-b", "64k", "-s", "1t", "-m", "1000"},
      {"-b", "128k", "-s", "10T", "-m", "10"},
      {"-b", "1m", "-s", "100g", "-m", "5"},
      {"-b", "256", "-s", "2000000000", "-m", "50"},
      {"-b", "512k", "-s", "1p", "-m", "100"},
      {"-b", "1g", "-s", "1e", "-m", "2"},
      {"--block-size=64kib", "--pool-size=2tebi", "--max-thins=300"},
      {"-u", "k", "-b", "128", "-s", "8g", "-m", "7"},  // the echoed unit of a bare number follows -u
      {"-b", "64k", "-u", "G", "-s", "500000000", "-m", "3"},
      {"-b", "2m", "-s", "300G", "-m", "1"},
  };
  const std::vector<std::vector<std::string>> forms = {{},
                                                       {"-n"},
                                                       {"-ns"},
                                                       {"-nl"},
                                                       {"--numeric-only"},
                                                       {"--numeric-only=short"},
                                                       {"-u", "b"},
                                                       {"-u", "M", "-nlong"},
                                                       {"-u", "gibibytes"},
                                                       {"-u", "t", "-n"},
                                                       {"--unit=T"},
                                                       {"-u", "p", "-n"}};
  for (auto &s : sizes)
    for (auto &f : forms) {
      auto args = s;
      args.insert(args.end(), f.begin(), f.end());
      auto ours = test::run_tool("thin_metadata_size", args);
      auto theirs = test::run_program(oracle, args);
      EXPECT_EQ(ours.exit_code, theirs.exit_code) << ::testing::PrintToString(args) << ": " << ours.err;
      EXPECT_EQ(ours.out, theirs.out) << ::testing::PrintToString(args);
    }
}

TEST(thin_metadata_size, needs_block_size_pool_size_and_max_thins) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"-s", "1g", "-m", "3"}, "block size required!"},
      {{"-b", "64k", "-m", "3"}, "pool size required!"},
      {{"-b", "64k", "-s", "1g"}, "max thins required!"},
      {{}, "block size required!"},
  };
  for (auto &[args, msg] : cases) {
    auto r = test::run_tool("thin_metadata_size", args);
    EXPECT_EQ(r.exit_code, 1) << ::testing::PrintToString(args);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, "thin_metadata_size - " + msg + "\n");
    if (test::have_program(oracle)) {
      EXPECT_EQ(r.err, test::run_program(oracle, args).err);
    }
  }
}

TEST(thin_metadata_size, rejects_block_sizes_the_kernel_rejects) {
  // Not a multiple of 64 KiB, below it, above 1 GiB.
  for (auto b : {"32k", "96k", "100", "127", "2g", "4194304", "1000b"}) {
    auto r = test::run_tool("thin_metadata_size", {"-b", b, "-s", "10t", "-m", "10"});
    EXPECT_EQ(r.exit_code, 1) << b;
    EXPECT_EQ(r.out, "") << b;
    EXPECT_NE(r.err.find("block size must be"), std::string::npos) << b << ": " << r.err;
  }
  // Multiples of 64 KiB up to 1 GiB are fine, powers of two or not.
  for (auto b : {"64k", "192k", "384", "1g", "2097152"}) {
    auto r = test::run_tool("thin_metadata_size", {"-b", b, "-s", "10t", "-m", "10"});
    EXPECT_EQ(r.exit_code, 0) << b << ": " << r.err;
  }
  EXPECT_TRUE(thin::check_data_block_size(128) == std::nullopt);
  EXPECT_FALSE(thin::check_data_block_size(0) == std::nullopt);
}

TEST(thin_metadata_size, fails_with_exit_1_on_every_other_error) {
  for (auto args : std::vector<std::vector<std::string>>{
           {"-b", "64k", "-s", "64k", "-m", "3"},            // pool not larger than a block
           {"-b", "64q", "-s", "1g", "-m", "1"},             // unknown unit
           {"-b", "64k", "-s", "1g", "-m", "1", "-u", "x"},  // unknown output unit
           {"-b", "64k", "-s", "1g", "-m", "1", "-n=foo"},
           {"-b", "64k", "-s", "1g", "-m", "1", "--numeric-only=longer"},
           {"-b", "64k", "-s", "1g", "-m", "1", "-n", "-n"},
           {"-b", "64k", "-b", "128k", "-s", "1g", "-m", "1"},
           {"-b", "64k", "-s", "1g", "-m", "1", "--bogus"},
           {"-b"},
       }) {
    auto r = test::run_tool("thin_metadata_size", args);
    EXPECT_EQ(r.exit_code, 1) << ::testing::PrintToString(args);
    EXPECT_EQ(r.out, "") << ::testing::PrintToString(args);
    EXPECT_FALSE(r.err.empty()) << ::testing::PrintToString(args);
    if (test::have_program(oracle)) {
      // getopt names the program as run: the oracle by its path.
      std::string theirs = test::run_program(oracle, args).err;
      if (theirs.rfind("/usr/sbin/", 0) == 0) theirs.erase(0, std::strlen("/usr/sbin/"));
      EXPECT_EQ(r.err, theirs) << ::testing::PrintToString(args);
    }
  }
}

TEST(thin_metadata_size, prints_its_help_and_version) {
  auto h = test::run_tool("thin_metadata_size", {"-h"});
  EXPECT_EQ(h.exit_code, 0);
  EXPECT_NE(h.out.find("\t-b  --block-size BLOCKSIZE[bskKmMgGtTpPeEzZyY]  "
                       "Block size of thin provisioned devices.\n"),
            std::string::npos)
      << h.out;
  if (test::have_program(oracle)) {
    EXPECT_EQ(h.out, test::run_program(oracle, {"-h"}).out);
  }
  auto v = test::run_tool("thin_metadata_size", {"-V"});
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_EQ(v.out, test::run_tool("thin_check", {"-V"}).out);
}

// XML of a fully provisioned pool: every data block mapped once, to `per_dev`
// blocks of each device in turn (the rest to the last), devices sharing
// nothing.
std::string worst_case_xml(uint64_t block_sectors, uint64_t nr_blocks, uint64_t thins, uint64_t per_dev) {
  std::string x =
      "<superblock uuid=\"\" time=\"0\" transaction=\"1\" "
      "flags=\"0\" version=\"2\" data_block_size=\"" +
      std::to_string(block_sectors) + "\" nr_data_blocks=\"" + std::to_string(nr_blocks) + "\">\n";
  uint64_t next = 0;
  for (uint64_t d = 0; d < thins; d++) {
    uint64_t n = std::min(per_dev, nr_blocks - next);
    if (d + 1 == thins) n = nr_blocks - next;
    x += "  <device dev_id=\"" + std::to_string(d) + "\" mapped_blocks=\"" + std::to_string(n) +
         "\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">\n";
    // Every other block, so nothing merges into long runs by accident.
    for (uint64_t i = 0; i < n; i++)
      x += "    <single_mapping origin_block=\"" + std::to_string(2 * i) + "\" data_block=\"" +
           std::to_string(next + i) + "\" time=\"0\"/>\n";
    next += n;
    x += "  </device>\n";
  }
  return x + "</superblock>\n";
}

// Restores into a file of exactly `bytes`; returns thin_restore's result.
test::run_result restore_into(const std::string &xml, uint64_t bytes, const test::temp_dir &d) {
  const std::string in = d.file("pool.xml"), meta = d.file("pool.meta");
  FILE *f = std::fopen(in.c_str(), "w");
  std::fwrite(xml.data(), 1, xml.size(), f);
  std::fclose(f);
  f = std::fopen(meta.c_str(), "w");
  std::fclose(f);
  if (::truncate(meta.c_str(), static_cast<off_t>(bytes)) != 0) throw std::runtime_error("truncate");
  auto r = test::run_tool("thin_restore", {"-i", in, "-o", meta});
  if (r.exit_code == 0) {
    auto c = test::run_tool("thin_check", {"-q", meta});
    if (c.exit_code != 0) r.exit_code = 100 + c.exit_code, r.err = "thin_check: " + c.err;
  }
  return r;
}

TEST(thin_metadata_size, worst_case_pools_fit_in_the_estimate) {
  struct pool {
    uint64_t block_sectors, pool_sectors, thins, per_dev;
  };
  const uint64_t even = 0;  // spread evenly
  const std::vector<pool> pools = {
      {128, 2097152, 1, even},  // 1 GiB of 64 KiB blocks, one device
      {128, 2097152, 10, even},      {128, 2097152, 100, even},
      {128, 2097152, 1000, even},    {128, 131072, 1000, even},  // 64 MiB pool, a thousand devices
      {256, 4194304, 50, even},      {128, 2097152, 100, 253},   // devices of 253 blocks: two leaves and a root each
      {128, 16777216, 3, 253 * 252},                             // 253 full leaves: two levels of internal nodes
  };
  for (auto &p : pools) {
    auto r = test::run_tool("thin_metadata_size",
                            {"-b", std::to_string(p.block_sectors), "-s", std::to_string(p.pool_sectors), "-m",
                             std::to_string(p.thins), "-u", "b", "-n"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    uint64_t bytes = std::stoull(r.out);
    ASSERT_EQ(bytes % 4096, 0u);
    uint64_t nr = p.pool_sectors / p.block_sectors;
    uint64_t per_dev = p.per_dev ? p.per_dev : (nr + p.thins - 1) / p.thins;
    test::temp_dir d;
    auto x = restore_into(worst_case_xml(p.block_sectors, nr, p.thins, per_dev), bytes, d);
    EXPECT_EQ(x.exit_code, 0) << "-b " << p.block_sectors << " -s " << p.pool_sectors << " -m " << p.thins
                              << " per device " << per_dev << " in " << bytes << " bytes: " << x.err;
  }
}

TEST(thin_metadata_size, gives_more_than_0_9_0_where_its_estimate_would_not_fit) {
  // 100 devices of 253 blocks: 0.9.0's 1 + 2 * 16384 / 252 + 100 = 231
  // blocks cannot hold 200 leaves, 100 roots, the trees and space maps.
  thin::metadata_size_request req{128, 2097152, 100};
  EXPECT_EQ(thin::estimate_blocks_090(req), 231u);
  EXPECT_GT(thin::estimate_metadata_blocks(req), 231u);
  test::temp_dir d;
  auto x = restore_into(worst_case_xml(128, 16384, 100, 253), 231 * 4096, d);
  EXPECT_NE(x.exit_code, 0) << "fits after all: the larger estimate is not needed";
  // And where 0.9.0's estimate is ample, it is the one printed.
  thin::metadata_size_request big{128, 2147483648ull, 100};
  EXPECT_EQ(thin::estimate_metadata_blocks(big), thin::estimate_blocks_090(big));
}

}  // namespace
