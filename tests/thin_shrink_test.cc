// thin_shrink: a pool built with the reference engine (lib/engine) is shrunk;
// every thin device must read the same data through the new metadata, the
// new metadata must pass our thin_check and 0.9.0's, a shrink that cannot fit
// must change nothing, and a power cut at any write of the shrink must leave
// either the old pool or the new one readable with the same data.
#include <unistd.h>

#include <fcntl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/pool_metadata.h"
#include "engine/thin_pool.h"
#include "persistent-data/block_io.h"
#include "support/test_support.h"
#include "thin/format/superblock.h"
#include "thin/shrink/shrink.h"

namespace {

using bytes = std::vector<unsigned char>;
constexpr uint32_t dbs = 128;              // sectors per data block (64 KiB)
constexpr uint64_t per_data_block = 16;    // 4 KiB blocks per data block
constexpr uint64_t nr_data_blocks = 64;
constexpr uint64_t meta_blocks = 256;

// Every mapped block of every device: dev -> vblock -> its 64 KiB of data.
using contents = std::map<uint64_t, std::map<uint64_t, bytes>>;

contents read_contents(pdata::block_io &meta, pdata::block_io &data) {
  pdata::memory_block_io meta_copy(static_cast<pdata::memory_block_io &>(meta).image());
  auto pool = thin::thin_pool::open(meta_copy, data, {});
  contents c;
  for (uint64_t dev : pool->metadata().devices())
    for (auto &[vblock, m] : pool->metadata().mappings(dev)) {
      bytes b(dbs * 512);
      pool->read(dev, vblock * dbs, b.data(), dbs);
      c[dev][vblock] = b;
    }
  return c;
}

uint64_t highest_mapped(pdata::block_io &meta) {
  pdata::memory_block_io copy(static_cast<pdata::memory_block_io &>(meta).image());
  auto md = thin::pool_metadata::open(copy);
  uint64_t hi = 0;
  for (uint64_t dev : md->devices())
    for (auto &[vblock, m] : md->mappings(dev)) hi = std::max(hi, m.data_block);
  return hi;
}

void write_block(thin::thin_pool &pool, uint64_t dev, uint64_t vblock, unsigned version) {
  bytes b(dbs * 512);
  for (std::size_t i = 0; i < b.size(); i++)
    b[i] = static_cast<unsigned char>(dev * 131 + vblock * 7 + version * 29 + i / 512 + i);
  pool.write(dev, vblock * dbs, b.data(), dbs);
}

// A pool of 64 data blocks whose mappings reach past block 40 with 20 free
// blocks at the bottom: thin 4 takes blocks 0..19 first and is deleted; thin
// 1 (30 blocks), its snapshot 2 (sharing them), 5 rewritten blocks of thin 1
// (copied on write) and thin 3 (5 blocks) use blocks 20..59.
struct pool_images {
  pdata::memory_block_io meta{meta_blocks}, data{nr_data_blocks * per_data_block};
  pool_images() {
    auto pool = thin::thin_pool::format(meta, data, {});
    pool->create_thin(4);
    for (uint64_t v = 0; v < 20; v++) write_block(*pool, 4, v, 0);
    pool->create_thin(1);
    for (uint64_t v = 0; v < 30; v++) write_block(*pool, 1, v, 0);
    pool->create_snap(2, 1);
    for (uint64_t v = 0; v < 5; v++) write_block(*pool, 1, v * 3, 1);
    pool->create_thin(3);
    for (uint64_t v = 0; v < 5; v++) write_block(*pool, 3, v + 100, 0);
    pool->delete_device(4);
    pool->commit();
  }
};

std::string write_image(const test::temp_dir &t, const std::string &name, const pdata::memory_block_io &io) {
  test::write_binary(t.file(name), io.image());
  return t.file(name);
}

TEST(thin_shrink, moves_the_data_above_the_new_size_and_every_device_reads_the_same) {
  pool_images p;
  const contents before = read_contents(p.meta, p.data);
  ASSERT_EQ(before.size(), 3u);
  ASSERT_GE(highest_mapped(p.meta), 50u);  // the shrink has blocks to move

  test::temp_dir t;
  const std::string meta = write_image(t, "meta", p.meta), data = write_image(t, "data", p.data);
  const std::string out = write_image(t, "out", pdata::memory_block_io(meta_blocks));
  auto r = test::run_tool("thin_shrink", {"--binary", "-i", meta, "-o", out, "--data", data, "--nr-blocks", "40"});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  pdata::memory_block_io new_meta(test::read_binary(out)), new_data(test::read_binary(data));
  EXPECT_LT(highest_mapped(new_meta), 40u);
  EXPECT_EQ(read_contents(new_meta, new_data), before);
  // The input metadata was only read.
  EXPECT_EQ(test::read_binary(meta), p.meta.image());

  auto c = test::run_tool("thin_check", {out});
  EXPECT_EQ(c.exit_code, 0) << c.err;
  if (test::debian_tools_installed({"thin_check"})) {
    EXPECT_EQ(std::system((test::debian_tool("thin_check") + " -q " + out).c_str()), 0);
  }
  // thin_dump reports the new size.
  auto d = test::run_tool("thin_dump", {out});
  EXPECT_NE(d.out.find("nr_data_blocks=\"40\""), std::string::npos) << d.out.substr(0, 200);
}

std::optional<std::string> upstream() { return test::upstream_1x_pdata_tools(); }

TEST(thin_shrink, moves_the_same_blocks_to_the_same_places_as_upstream_1_3_3) {
  auto up = upstream();
  if (!up) GTEST_SKIP() << "thin-provisioning-tools 1.3.3 (pdata_tools) is not installed";
  pool_images p;
  test::temp_dir t;
  const std::string meta = write_image(t, "meta", p.meta);
  const std::string data = write_image(t, "data", p.data), up_data = write_image(t, "up_data", p.data);
  const std::string out = write_image(t, "out", pdata::memory_block_io(meta_blocks));
  const std::string up_out = write_image(t, "up_out", pdata::memory_block_io(meta_blocks));
  for (const char *n : {"44", "40"}) {
    SCOPED_TRACE(n);
    auto r = test::run_tool("thin_shrink", {"--binary", "-i", meta, "-o", out, "--data", data, "--nr-blocks", n});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_EQ(std::system(("'" + *up + "' thin_shrink --binary -i " + meta + " -o " + up_out + " --data " + up_data +
                           " --nr-blocks " + n + " </dev/null >/dev/null 2>&1")
                              .c_str()),
              0);
    // The same mappings (thin_dump of both), and the same bytes on the data device.
    auto ours = test::run_tool("thin_dump", {out}), theirs = test::run_tool("thin_dump", {up_out});
    ASSERT_EQ(ours.exit_code, 0) << ours.err;
    ASSERT_EQ(theirs.exit_code, 0) << theirs.err;
    EXPECT_EQ(ours.out, theirs.out);
    EXPECT_TRUE(test::read_binary(data) == test::read_binary(up_data));
  }

  // XML in and out (upstream's default): restored and dumped again, the same.
  const std::string xdata = write_image(t, "xdata", p.data), up_xdata = write_image(t, "up_xdata", p.data);
  ASSERT_EQ(test::run_tool("thin_dump", {meta, "-o", t.file("in.xml")}).exit_code, 0);
  auto r = test::run_tool("thin_shrink", {"-i", t.file("in.xml"), "-o", t.file("ours.xml"), "--data", xdata,
                                          "--nr-blocks", "40"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(std::system(("'" + *up + "' thin_shrink -i " + t.file("in.xml") + " -o " + t.file("theirs.xml") +
                         " --data " + up_xdata + " --nr-blocks 40 </dev/null >/dev/null 2>&1")
                            .c_str()),
            0);
  std::string dumps[2];
  for (int i = 0; i < 2; i++) {
    const std::string img = write_image(t, "x" + std::to_string(i), pdata::memory_block_io(meta_blocks));
    auto rs = test::run_tool("thin_restore", {"-i", t.file(i ? "theirs.xml" : "ours.xml"), "-o", img});
    ASSERT_EQ(rs.exit_code, 0) << rs.err;
    dumps[i] = test::run_tool("thin_dump", {img}).out;
  }
  EXPECT_NE(dumps[0].find("nr_data_blocks=\"40\""), std::string::npos);
  EXPECT_EQ(dumps[0], dumps[1]);
  EXPECT_TRUE(test::read_binary(xdata) == test::read_binary(up_xdata));
}

TEST(thin_shrink, shrinks_xml_through_the_data_device_as_upstream_does_by_default) {
  pool_images p;
  const contents before = read_contents(p.meta, p.data);
  test::temp_dir t;
  const std::string meta = write_image(t, "meta", p.meta), data = write_image(t, "data", p.data);
  ASSERT_EQ(test::run_tool("thin_dump", {meta, "-o", t.file("in.xml")}).exit_code, 0);
  auto r = test::run_tool("thin_shrink", {"-i", t.file("in.xml"), "-o", t.file("out.xml"), "--data", data,
                                          "--nr-blocks", "40"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string out = write_image(t, "out", pdata::memory_block_io(meta_blocks));
  auto rs = test::run_tool("thin_restore", {"-i", t.file("out.xml"), "-o", out});
  ASSERT_EQ(rs.exit_code, 0) << rs.err;
  pdata::memory_block_io new_meta(test::read_binary(out)), new_data(test::read_binary(data));
  EXPECT_LT(highest_mapped(new_meta), 40u);
  EXPECT_EQ(read_contents(new_meta, new_data), before);
}

// Every (device, virtual block) -> data block of some metadata.
std::map<std::pair<uint64_t, uint64_t>, uint64_t> all_mappings(const bytes &image) {
  pdata::memory_block_io io(image);
  auto md = thin::pool_metadata::open(io);
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> m;
  for (uint64_t dev : md->devices())
    for (auto &[vblock, r] : md->mappings(dev)) m[{dev, vblock}] = r.data_block;
  return m;
}

// The kernel's metadata (no data device: --no-copy), shrunk to exactly its
// number of mapped blocks: every mapping survives, shared blocks stay shared
// (old -> new data block is one-to-one), and both thin_checks pass.
TEST(thin_shrink, shrinks_kernel_metadata_to_its_mapped_block_count_and_both_thin_checks_pass) {
  for (auto &s : test::kernel_scenarios()) {
    SCOPED_TRACE(s);
    const bytes image = test::read_binary(test::fixture_image(s));
    const auto before = all_mappings(image);
    std::set<uint64_t> used;
    for (auto &[k, d] : before) used.insert(d);
    if (used.empty() || *used.rbegin() < used.size()) continue;  // nothing above the tight size
    test::temp_dir t;
    test::write_binary(t.file("out"), bytes(image.size(), 0));
    const std::string n = std::to_string(used.size());
    auto r = test::run_tool("thin_shrink", {"--binary", "--no-copy", "-i", test::fixture_image(s), "-o",
                                            t.file("out"), "--nr-blocks", n});
    pdata::memory_block_io input(image);
    if (thin::read_superblock(input).held_root) {
      // A held metadata snapshot is refused (a copy could land in a block only it maps).
      EXPECT_EQ(r.exit_code, 1);
      EXPECT_NE(r.err.find("metadata snapshot"), std::string::npos) << r.err;
      continue;
    }
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto c = test::run_tool("thin_check", {t.file("out")});
    EXPECT_EQ(c.exit_code, 0) << c.err;
    if (test::debian_tools_installed({"thin_check"})) {
      EXPECT_EQ(std::system((test::debian_tool("thin_check") + " -q " + t.file("out")).c_str()), 0);
    }
    const auto after = all_mappings(test::read_binary(t.file("out")));
    ASSERT_EQ(after.size(), before.size());
    std::map<uint64_t, uint64_t> moved;  // old data block -> new
    std::set<uint64_t> targets;
    for (auto &[k, d] : before) {
      ASSERT_TRUE(after.count(k));
      const uint64_t nd = after.at(k);
      EXPECT_LT(nd, used.size());
      auto [it, fresh] = moved.emplace(d, nd);
      EXPECT_EQ(it->second, nd) << "data block " << d << " went two ways";
      if (fresh) {
        EXPECT_TRUE(targets.insert(nd).second) << "two data blocks went to " << nd;
      }
    }
  }
}

TEST(thin_shrink, refuses_when_the_mapped_blocks_do_not_fit_and_writes_nothing) {
  pool_images p;
  test::temp_dir t;
  const std::string meta = write_image(t, "meta", p.meta), data = write_image(t, "data", p.data);
  const std::string out = write_image(t, "out", pdata::memory_block_io(meta_blocks));
  // 40 blocks are mapped: 39 is too small.
  auto r = test::run_tool("thin_shrink", {"--binary", "-i", meta, "-o", out, "--data", data, "--nr-blocks", "39"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("do not fit"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(test::read_binary(data), p.data.image());
  EXPECT_EQ(test::read_binary(out), pdata::memory_block_io(meta_blocks).image());
  // The XML form leaves no output file behind.
  ASSERT_EQ(test::run_tool("thin_dump", {meta, "-o", t.file("in.xml")}).exit_code, 0);
  r = test::run_tool("thin_shrink", {"-i", t.file("in.xml"), "-o", t.file("out.xml"), "--data", data,
                                     "--nr-blocks", "39"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_FALSE(test::file_exists(t.file("out.xml")));
  EXPECT_EQ(test::read_binary(data), p.data.image());
}

TEST(thin_shrink, command_line_mistakes_exit_1) {
  pool_images p;
  test::temp_dir t;
  const std::string meta = write_image(t, "meta", p.meta), data = write_image(t, "data", p.data);
  for (auto &args : std::vector<std::vector<std::string>>{
           {},
           {"--binary", "-i", meta, "-o", t.file("x"), "--data", data},                        // no --nr-blocks
           {"--binary", "-i", meta, "-o", meta, "--data", data, "--nr-blocks", "40"},          // same file
           {"--binary", "-i", meta, "-o", t.file("x"), "--nr-blocks", "40"},                   // no --data
           {"--binary", "-i", meta, "-o", t.file("missing"), "--data", data, "--nr-blocks", "40"},
           {"--binary", "-i", meta, "-o", t.file("x"), "--data", data, "--nr-blocks", "ten"},
           {"--binary", "-i", meta, "-o", t.file("x"), "--data", data, "--nr-blocks", "65"},   // growing
           {"--bogus"},
       }) {
    test::write_binary(t.file("x"), pdata::memory_block_io(meta_blocks).image());
    auto r = test::run_tool("thin_shrink", args);
    EXPECT_EQ(r.exit_code, 1) << testing::PrintToString(args) << ": " << r.err;
    EXPECT_FALSE(r.err.empty());
  }
  EXPECT_EQ(test::run_tool("thin_shrink", {"-h"}).exit_code, 0);
  EXPECT_EQ(test::run_tool("thin_shrink", {"-V"}).out, test::run_tool("thin_check", {"-V"}).out);
}

TEST(thin_shrink_plan, fills_the_lowest_gaps_first_splitting_ranges_where_a_gap_ends) {
  thin::range_set below, above;
  below.insert(5, 20);
  below.insert(23, 30);
  above.insert(100, 120);
  above.insert(120, 121);  // touching ranges merge
  auto moves = thin::plan_moves(above, below, 50);
  const std::vector<thin::block_move> want = {{100, 105, 0}, {105, 108, 20}, {108, 121, 30}};
  EXPECT_EQ(moves, want);
  EXPECT_THROW(thin::plan_moves(above, below, 42), thin::shrink_error);  // 21 needed, 20 free
  EXPECT_EQ(thin::plan_moves(thin::range_set{}, below, 50).size(), 0u);
}

// Power cuts. Both devices sit behind a volatile write cache
// (fault_injecting_block_io); a shared counter cuts the power at the k-th
// write of either, the caches lose their unflushed writes (all of them, or a
// seeded random part), and then the output must hold the new pool or no
// valid superblock -- and then the input metadata must still read the old
// data from the data device.
class power_cut : public std::runtime_error {
 public:
  power_cut() : std::runtime_error("power cut") {}
};

class cutting_io : public pdata::block_io {
 public:
  cutting_io(pdata::block_io &inner, uint64_t &count, uint64_t cut_at) : inner_(inner), count_(count), cut_(cut_at) {}
  pdata::block_address nr_blocks() const override { return inner_.nr_blocks(); }
  void read(pdata::block_address b, void *buf, std::size_t n) override { inner_.read(b, buf, n); }
  void write(pdata::block_address b, const void *buf, std::size_t n) override {
    tick();
    inner_.write(b, buf, n);
  }
  void write_fua(pdata::block_address b, const void *buf, std::size_t n) override {
    tick();
    inner_.write_fua(b, buf, n);
  }
  void flush() override { inner_.flush(); }
  bool writable() const override { return true; }

 private:
  void tick() {
    if (++count_ >= cut_) throw power_cut();  // and nothing more is written after it
  }
  pdata::block_io &inner_;
  uint64_t &count_, cut_;
};

TEST(thin_shrink_crash, a_power_cut_at_any_write_leaves_the_old_pool_or_the_new_one_with_the_same_data) {
  pool_images p;
  const contents before = read_contents(p.meta, p.data);
  for (double keep : {0.0, 0.5}) {
    unsigned old_seen = 0, new_seen = 0;
    for (uint64_t k = 1;; k++) {
      SCOPED_TRACE(testing::Message() << "keep " << keep << ", cut at write " << k);
      pdata::memory_block_io in(p.meta.image()), data(p.data.image()), out(meta_blocks);
      pdata::fault_injecting_block_io fdata(data), fout(out);
      fdata.volatile_cache(true);
      fout.volatile_cache(true);
      uint64_t count = 0;
      cutting_io cdata(fdata, count, k), cout(fout, count, k);
      bool finished = false;
      try {
        thin::shrink_metadata(in, &cdata, cout, {40, true});
        finished = true;
      } catch (const power_cut &) {
      }
      fdata.crash(keep, k);
      fout.crash(keep, k + 1000);

      bool new_pool = true;
      try {
        thin::read_superblock(out);
      } catch (const thin::metadata_error &) {
        new_pool = false;
      }
      if (finished) {
        EXPECT_TRUE(new_pool);
      }
      if (new_pool) {
        new_seen++;
        EXPECT_LT(highest_mapped(out), 40u);
        EXPECT_EQ(read_contents(out, data), before);
      } else {
        old_seen++;
        EXPECT_EQ(read_contents(in, data), before);
      }
      if (finished || testing::Test::HasFailure()) break;
    }
    EXPECT_GT(old_seen, 3u);  // cuts landed in the copies and the metadata writes
    EXPECT_GE(new_seen, 1u);
  }
}

}  // namespace
