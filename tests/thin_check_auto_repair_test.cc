// thin_check --auto-repair: leaks (space-map counts above the references
// found) are fixed in place, copy-on-write with the superblock last, and
// NEEDS_CHECK is cleared; the re-check is clean and the mappings unchanged.
// Under-counts are refused and the file left byte-identical.
#include <gtest/gtest.h>

#include "persistent-data/block_cache.h"
#include "persistent-data/checksum.h"
#include "thin/format/superblock_disk.h"
#include "persistent-data/space_map_disk.h"
#include "persistent-data/space_map_writer.h"
#include "support/metadata_support.h"
#include "support/test_support.h"
#include "thin/format/superblock.h"

namespace {

// Changes the count of `block` in a space map's bitmap by `delta` (0..2 range)
// and restamps the bitmap's checksum.
void adjust_count(std::vector<unsigned char> &img, bool metadata, uint64_t block, int delta) {
  pdata::memory_block_io io(img);
  thin::superblock sb = thin::read_superblock(io, 0);
  pdata::block_cache cache(io);
  auto root = metadata ? sb.metadata_sm_root() : sb.data_sm_root();
  auto layout = pdata::read_space_map_layout(cache, root, metadata);
  uint64_t bitmap = layout.bitmaps.at(block / pdata::entries_per_bitmap);
  unsigned char *p = img.data() + bitmap * 4096;
  unsigned char *data = p + sizeof(pdata::bitmap_header_disk);
  uint32_t e = static_cast<uint32_t>(block % pdata::entries_per_bitmap);
  uint32_t v = pdata::bitmap_get(data, e);
  pdata::bitmap_set(data, e, static_cast<uint32_t>(static_cast<int>(v) + delta));
  pdata::stamp_checksum(p, pdata::checksum_salt::bitmap);
}

// A leak as the kernel leaves one: the block stays allocated in the bitmap
// and in the root's nr_allocated, though nothing references it.
void leak(std::vector<unsigned char> &img, bool metadata, uint64_t block) {
  adjust_count(img, metadata, block, +1);
  auto *sb = reinterpret_cast<thin::superblock_disk *>(img.data());
  auto *root = reinterpret_cast<pdata::disk_sm_root *>(metadata ? sb->metadata_space_map_root : sb->data_space_map_root);
  root->nr_allocated.set(root->nr_allocated.get() + 1);
  pdata::stamp_checksum(img.data(), pdata::checksum_salt::superblock);
}

// A free data block.
uint64_t free_data_block(const std::vector<unsigned char> &img) {
  pdata::memory_block_io io(img);
  thin::superblock sb = thin::read_superblock(io, 0);
  pdata::block_cache cache(io);
  auto layout = pdata::read_space_map_layout(cache, sb.data_sm_root(), false);
  const unsigned char *data = img.data() + layout.bitmaps.at(0) * 4096 + sizeof(pdata::bitmap_header_disk);
  for (uint32_t e = 0; e < sb.data_sm_root().nr_blocks.get(); e++)
    if (pdata::bitmap_get(data, e) == 0) return e;
  return 0;
}

using test::set_needs_check;

TEST(thin_check_auto_repair, fixes_metadata_and_data_leaks_and_clears_needs_check) {
  test::temp_dir t;
  auto img = test::read_binary(test::fixture_image("snapshots"));
  // A leaked metadata block and a leaked data block (allocated, referenced
  // by nothing), NEEDS_CHECK set.
  leak(img, true, 1500);
  leak(img, false, free_data_block(img));
  set_needs_check(img);
  std::string f = t.file("m.img");
  test::write_binary(f, img);
  auto before = test::run_tool("thin_check", {f});
  EXPECT_EQ(before.exit_code, 1);
  EXPECT_NE(before.err.find("leaked"), std::string::npos) << before.err;
  auto r = test::run_tool("thin_check", {"--auto-repair", f});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("fixed 1 leaked metadata block counts and 1 leaked data block counts"), std::string::npos)
      << r.err;
  auto after = test::run_tool("thin_check", {f});
  EXPECT_EQ(after.exit_code, 0) << after.err;
  EXPECT_EQ(test::read_binary(f)[4] & 1, 0) << "NEEDS_CHECK still set";
  EXPECT_EQ(test::run_tool("thin_dump", {f}).out, test::read_file(test::fixture_file("snapshots", "thin_dump.xml")));
  if (test::debian_tools_installed({"thin_check"})) {
    EXPECT_EQ(std::system((test::debian_tool("thin_check") + " -q " + f).c_str()), 0);
  }
}

TEST(thin_check_auto_repair, refuses_under_counts_and_leaves_the_file_byte_identical) {
  test::temp_dir t;
  for (bool metadata : {true, false}) {
    auto img = test::read_binary(test::fixture_image("snapshots"));
    pdata::memory_block_io io(img);
    thin::superblock sb = thin::read_superblock(io, 0);
    // A block in use: the mapping root (metadata) or data block 8 (data).
    adjust_count(img, metadata, metadata ? sb.mapping_root : 8, -1);
    std::string f = t.file("m.img");
    test::write_binary(f, img);
    auto r = test::run_tool("thin_check", {"--auto-repair", f});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("not repaired"), std::string::npos) << r.err;
    EXPECT_TRUE(test::read_binary(f) == img) << "the file changed";
  }
}

TEST(thin_check_auto_repair, on_clean_metadata_clears_needs_check_and_changes_nothing_else_meaningful) {
  test::temp_dir t;
  auto img = test::read_binary(test::fixture_image("basic"));
  set_needs_check(img);
  std::string f = t.file("m.img");
  test::write_binary(f, img);
  auto r = test::run_tool("thin_check", {"--auto-repair", f});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(test::read_binary(f)[4] & 1, 0);
  EXPECT_EQ(test::run_tool("thin_check", {"-q", f}).exit_code, 0);
  EXPECT_EQ(test::run_tool("thin_dump", {f}).out, test::read_file(test::fixture_file("basic", "thin_dump.xml")));
}

// lvm2 runs `thin_check -q --clear-needs-check-flag` at every activation. A
// kernel crash can legitimately leave a leaked data block (allocated for a
// write in flight at the commit); as thin_check 1.x does, that call repairs
// leaks in place and clears the flag, so the pool activates. It stays silent
// with -q, and the mappings are untouched.
TEST(thin_check_auto_repair, lvm2_activation_call_repairs_leaks_and_clears_the_flag) {
  test::temp_dir t;
  for (bool quiet : {true, false}) {
    SCOPED_TRACE(quiet ? "-q" : "not quiet");
    auto img = test::read_binary(test::fixture_image("snapshots"));
    leak(img, false, free_data_block(img));
    leak(img, true, 1500);
    set_needs_check(img);
    std::string f = t.file("m.img");
    test::write_binary(f, img);
    std::vector<std::string> args = {"--clear-needs-check-flag", f};
    if (quiet) args.insert(args.begin(), "-q");
    auto r = test::run_tool("thin_check", args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    if (quiet) {
      EXPECT_EQ(r.out, "");
      EXPECT_EQ(r.err, "");
    } else
      EXPECT_NE(r.err.find("repaired 1 leaked metadata block counts and 1 leaked data block counts"),
                std::string::npos)
          << r.err;
    EXPECT_EQ(test::read_binary(f)[4] & 1, 0) << "NEEDS_CHECK still set";
    EXPECT_EQ(test::run_tool("thin_check", {f}).exit_code, 0);
    EXPECT_EQ(test::run_tool("thin_dump", {f}).out,
              test::read_file(test::fixture_file("snapshots", "thin_dump.xml")));
  }
}

// Under-counts are damage only thin_repair handles: the activation call
// refuses and writes nothing, flag included.
TEST(thin_check_auto_repair, lvm2_activation_call_refuses_an_under_count_and_writes_nothing) {
  test::temp_dir t;
  auto img = test::read_binary(test::fixture_image("snapshots"));
  adjust_count(img, false, 8, -1);
  set_needs_check(img);
  std::string f = t.file("m.img");
  test::write_binary(f, img);
  auto r = test::run_tool("thin_check", {"-q", "--clear-needs-check-flag", f});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "");
  EXPECT_TRUE(test::read_binary(f) == img) << "the file changed";
}

}  // namespace
