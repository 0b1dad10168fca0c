// Sizes from untrusted input (XML, the command line, damaged metadata) are
// range-checked before anything is allocated from them, and memory follows
// the blocks in use, not nr_data_blocks: the fuzzing findings in
// tests/fixtures/findings/, the up-front "output too small" with the size
// needed, a 2^32-block pool with a few mappings restored, checked (fast and
// exact) and dumped, and the sparse count tables underneath.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <regex>
#include <sstream>

#include <fmt/format.h>
#include <fstream>

#include "support/damage_support.h"
#include "persistent-data/block_io.h"
#include "persistent-data/count_down.h"
#include "persistent-data/ref_counts.h"
#include "persistent-data/space_map.h"
#include "persistent-data/space_map_disk.h"
#include "support/test_support.h"
#include "thin/check/check.h"
#include "thin/format/metadata_writer.h"
#include "thin/ir/xml_parser.h"
#include "thin/restore/restore.h"

namespace {

using pdata::block_address;
using pdata::entries_per_bitmap;

using test::finding;
using test::finding_image;
using test::make_file;

// A recognisable first block, to see whether a refused restore touched the output.
void mark_first_block(const std::string &path) {
  std::vector<unsigned char> img = test::read_binary(path);
  for (std::size_t i = 0; i < pdata::block_size; i++) img[i] = static_cast<unsigned char>(i * 7 + 1);
  test::write_binary(path, img);
}
bool first_block_marked(const std::string &path) {
  std::vector<unsigned char> img = test::read_binary(path);
  for (std::size_t i = 0; i < pdata::block_size; i++)
    if (img[i] != static_cast<unsigned char>(i * 7 + 1)) return false;
  return true;
}

const char *small_pool =
    "<superblock uuid=\"\" time=\"0\" transaction=\"1\" flags=\"0\" version=\"2\" data_block_size=\"128\" "
    "nr_data_blocks=\"100\">\n"
    "  <device dev_id=\"1\" mapped_blocks=\"1\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">\n"
    "    <single_mapping origin_block=\"0\" data_block=\"5\" time=\"0\"/>\n"
    "  </device>\n"
    "</superblock>\n";

//------------------------------------------------------------------ findings

TEST(restore_sizes, nr_data_blocks_of_two_to_the_64_minus_one_is_refused_naming_the_field_and_the_2_to_the_40_limit) {
  test::temp_dir d;
  make_file(d.file("o.meta"), 8 << 20);
  auto r = test::run_tool("thin_restore", {"-i", finding("restore-nr-data-blocks-max.xml"), "-o", d.file("o.meta")});
  EXPECT_EQ(r.signal, 0);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("nr_data_blocks 18446744073709551615 is above the format's limit of 1099511627776"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST(restore_sizes, nr_data_blocks_of_two_to_the_40_is_refused_as_more_than_the_largest_metadata_device_holds) {
  test::temp_dir d;
  make_file(d.file("o.meta"), 8 << 20);
  auto r = test::run_tool("thin_restore", {"-i", finding("restore-nr-data-blocks-2e40.xml"), "-o", d.file("o.meta")});
  EXPECT_EQ(r.signal, 0);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("nr_data_blocks 1099511627776 needs"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("largest metadata device holds (4161600 blocks"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("bad_alloc"), std::string::npos) << r.err;
}

TEST(restore_sizes, the_same_values_given_with_nr_data_blocks_on_the_command_line_are_refused_the_same_way) {
  test::temp_dir d;
  make_file(d.file("o.meta"), 8 << 20);
  std::ofstream(d.file("in.xml")) << small_pool;
  auto max = test::run_tool("thin_restore", {"-i", d.file("in.xml"), "-o", d.file("o.meta"), "--nr-data-blocks",
                                             "18446744073709551615"});
  EXPECT_EQ(max.signal, 0);
  EXPECT_EQ(max.exit_code, 1);
  EXPECT_NE(max.err.find("nr_data_blocks 18446744073709551615 is above the format's limit"), std::string::npos)
      << max.err;
  auto big = test::run_tool("thin_restore",
                            {"-i", d.file("in.xml"), "-o", d.file("o.meta"), "--nr-data-blocks", "1099511627776"});
  EXPECT_EQ(big.signal, 0);
  EXPECT_EQ(big.exit_code, 1);
  EXPECT_NE(big.err.find("nr_data_blocks 1099511627776 needs"), std::string::npos) << big.err;
}

TEST(repair_sizes, an_impossible_data_space_map_size_in_damaged_metadata_is_noted_and_every_mapping_recovered) {
  test::temp_dir d;
  const std::string in = finding_image("repair-bad-alloc.img");
  make_file(d.file("o.meta"), 8 << 20);
  auto r = test::run_tool("thin_repair", {"-i", in, "-o", d.file("o.meta")});
  EXPECT_EQ(r.signal, 0);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("data space map size is impossible (nr_data_blocks 438086668288"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("nr_data_blocks guessed as 64"), std::string::npos) << r.out;
  auto check = test::run_tool("thin_check", {"-q", d.file("o.meta")});
  EXPECT_EQ(check.exit_code, 0) << check.err;
  // The mappings are those of the damaged input's own dump (everything after
  // the superblock line, which carries nr_data_blocks).
  auto before = test::run_tool("thin_dump", {in});
  auto after = test::run_tool("thin_dump", {d.file("o.meta")});
  ASSERT_EQ(before.exit_code, 0);
  ASSERT_EQ(after.exit_code, 0);
  EXPECT_EQ(before.out.substr(before.out.find('\n')), after.out.substr(after.out.find('\n')));
}

//------------------------------------------------------------------ sizing up front

// Restores an XML text into a memory device of `blocks`.
thin::restore_stats restore_into(pdata::memory_block_io &io, const std::string &xml) {
  thin::restore_emitter r(io);
  std::istringstream in(xml);
  thin::parse_xml(in, r);
  return r.stats();
}

std::string empty_pool(uint64_t nr_data_blocks) {
  return fmt::format(
      "<superblock uuid=\"\" time=\"0\" transaction=\"1\" flags=\"0\" version=\"2\" data_block_size=\"128\" "
      "nr_data_blocks=\"{}\">\n</superblock>\n",
      nr_data_blocks);
}

TEST(restore_sizes, the_size_computed_up_front_is_exactly_what_a_restore_of_an_empty_pool_uses) {
  for (uint64_t n : {uint64_t(0), uint64_t(1), uint64_t(entries_per_bitmap), uint64_t(entries_per_bitmap) + 1,
                     uint64_t(168) * entries_per_bitmap + 1, uint64_t(400) * entries_per_bitmap}) {
    const uint64_t need = thin::metadata_blocks_with_bitmaps(thin::metadata_blocks_besides_bitmaps(n));
    pdata::memory_block_io fits(need);
    thin::restore_stats st = restore_into(fits, empty_pool(n));
    EXPECT_EQ(st.metadata_blocks_used, need) << n;
    // One block less is refused before the output is written.
    pdata::memory_block_io small(need - 1);
    try {
      restore_into(small, empty_pool(n));
      ADD_FAILURE() << n << ": restored into " << need - 1 << " blocks";
    } catch (const thin::xml_error &e) {
      try {
        std::rethrow_if_nested(e);
        ADD_FAILURE() << "no nested error: " << e.what();
      } catch (const thin::metadata_too_small &t) {
        EXPECT_EQ(t.blocks_needed(), need) << n;
      }
    }
    EXPECT_EQ(small.flushes(), 0u) << n;
    std::vector<unsigned char> b0(pdata::block_size);
    small.read(0, b0.data());
    EXPECT_EQ(std::count(b0.begin(), b0.end(), 0), static_cast<long>(pdata::block_size));
  }
}

TEST(restore_sizes, an_8_MiB_output_for_two_to_the_32_data_blocks_is_refused_up_front_with_the_size_needed_and_untouched) {
  test::temp_dir d;
  make_file(d.file("o.meta"), 8 << 20);
  mark_first_block(d.file("o.meta"));
  std::ofstream(d.file("in.xml")) << small_pool;
  auto r = test::run_tool("thin_restore",
                          {"-i", d.file("in.xml"), "-o", d.file("o.meta"), "--nr-data-blocks", "4294967296"}, "", 60);
  EXPECT_EQ(r.exit_code, 1);
  const uint64_t need = thin::metadata_blocks_with_bitmaps(thin::metadata_blocks_besides_bitmaps(uint64_t(1) << 32));
  EXPECT_NE(r.err.find(fmt::format("output too small: the metadata does not fit in its 2048 blocks (8192 KiB); it "
                                   "needs at least {} blocks",
                                   need)),
            std::string::npos)
      << r.err;
  // 2^32 / 16320 bitmaps (263172) and their index are most of it.
  EXPECT_GT(need, 263172u);
  EXPECT_TRUE(first_block_marked(d.file("o.meta")));
}

TEST(restore_sizes, metadata_writer_format_refuses_sizes_the_format_cannot_hold) {
  pdata::memory_block_io io(64);
  EXPECT_THROW(thin::metadata_writer::format(io, 128, ~uint64_t(0)), thin::size_limit_error);
  EXPECT_THROW(thin::metadata_writer::format(io, 128, uint64_t(1) << 40), thin::size_limit_error);
  EXPECT_THROW(thin::metadata_writer::format(io, 128, uint64_t(1) << 32), thin::metadata_too_small);
  EXPECT_THROW(thin::metadata_writer::format(io, 0, 100), thin::metadata_error);
  EXPECT_NO_THROW(thin::metadata_writer::format(io, 128, 100));
}

//------------------------------------------------------------------ a 2^32-block pool

// A few devices over the whole 2^32-block range: shared runs (counts of 3,
// so an overflow tree), the last block, a run crossing a bitmap boundary.
std::string big_pool_xml() {
  auto dev = [](int id, const std::string &body, uint64_t mapped) {
    return fmt::format(
        "  <device dev_id=\"{}\" mapped_blocks=\"{}\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">\n{}"
        "  </device>\n",
        id, mapped, body);
  };
  const std::string shared =
      "    <range_mapping origin_begin=\"0\" data_begin=\"0\" length=\"10\" time=\"0\"/>\n"
      "    <single_mapping origin_block=\"1000\" data_block=\"4294967295\" time=\"0\"/>\n"
      "    <range_mapping origin_begin=\"5000000\" data_begin=\"2147483548\" length=\"300\" time=\"0\"/>\n";
  std::string xml =
      "<superblock uuid=\"\" time=\"0\" transaction=\"1\" flags=\"0\" version=\"2\" data_block_size=\"128\" "
      "nr_data_blocks=\"4294967296\">\n";
  xml += dev(1, shared, 311) + dev(2, shared, 311) + dev(3, shared, 311);
  xml += dev(4, "    <range_mapping origin_begin=\"7\" data_begin=\"100000000\" length=\"5\" time=\"0\"/>\n", 5);
  xml += "</superblock>\n";
  return xml;
}

TEST(big_pool, a_two_to_the_32_block_pool_with_a_few_mappings_restores_checks_clean_both_ways_dumps_identically_and_repairs_only_into_room_enough) {
  test::temp_dir d;
  const std::string xml = big_pool_xml();
  std::ofstream(d.file("in.xml")) << xml;
  make_file(d.file("o.meta"), uint64_t(1100) << 20);
  auto r = test::run_tool("thin_restore", {"-i", d.file("in.xml"), "-o", d.file("o.meta")}, "", 300);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto check = test::run_tool("thin_check", {d.file("o.meta")}, "", 300);
  EXPECT_EQ(check.exit_code, 0) << check.err;
  EXPECT_EQ(check.err.find("error"), std::string::npos) << check.err;
  auto dump = test::run_tool("thin_dump", {d.file("o.meta")}, "", 300);
  ASSERT_EQ(dump.exit_code, 0) << dump.err;
  EXPECT_EQ(dump.out, xml);

  // Repairing it into 8 MiB is refused before the output is touched, naming
  // the output and the size its space maps need.
  make_file(d.file("small.meta"), 8 << 20);
  mark_first_block(d.file("small.meta"));
  auto rep8 = test::run_tool("thin_repair", {"-i", d.file("o.meta"), "-o", d.file("small.meta")}, "", 300);
  EXPECT_EQ(rep8.exit_code, 1);
  const uint64_t need = thin::metadata_blocks_with_bitmaps(thin::metadata_blocks_besides_bitmaps(uint64_t(1) << 32));
  EXPECT_NE(rep8.err.find(d.file("small.meta") + ": the output is too small"), std::string::npos) << rep8.err;
  EXPECT_NE(rep8.err.find(fmt::format("need at least {} blocks", need)), std::string::npos) << rep8.err;
  EXPECT_TRUE(first_block_marked(d.file("small.meta")));

  // The exact checker (2 bits a block, paged) agrees.
  int fd = ::open(d.file("o.meta").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  pdata::file_block_io io(fd, uint64_t(1100) << 20, false);
  test::recording_reporter rep;
  thin::check_options opts;
  opts.exact_only = true;
  thin::check_result res = thin::check_metadata(io, opts, rep);
  EXPECT_TRUE(res.spotless());
  EXPECT_TRUE(res.fully_examined);
  EXPECT_TRUE(rep.records.empty());
}

//------------------------------------------------------------------ sparse tables

TEST(sparse_counts, a_space_map_of_two_to_the_32_blocks_holds_pages_only_for_bitmaps_with_a_count) {
  pdata::space_map sm(uint64_t(1) << 32);
  EXPECT_EQ(sm.bitmap_nibbles(0), nullptr);
  sm.inc(5);
  sm.inc((uint64_t(1) << 32) - 1, 20);  // into the overflow map
  sm.set(3 * uint64_t(entries_per_bitmap) + 1, 3);
  EXPECT_NE(sm.bitmap_nibbles(0), nullptr);
  EXPECT_EQ(sm.bitmap_nibbles(1), nullptr);
  EXPECT_EQ(sm.bitmap_nibbles(2), nullptr);
  EXPECT_NE(sm.bitmap_nibbles(3), nullptr);
  EXPECT_EQ(sm.get(5), 1u);
  EXPECT_EQ(sm.get(6), 0u);
  EXPECT_EQ(sm.get((uint64_t(1) << 32) - 1), 20u);
  EXPECT_EQ(sm.nr_allocated(), 3u);
  auto over = sm.overflow_entries();
  ASSERT_EQ(over.size(), 2u);
  EXPECT_EQ(over[0], std::make_pair(block_address(3 * uint64_t(entries_per_bitmap) + 1), 3u));
  EXPECT_EQ(over[1], std::make_pair(block_address((uint64_t(1) << 32) - 1), 20u));
  // Setting a zero where nothing was counted allocates no page.
  sm.set(10 * uint64_t(entries_per_bitmap), 0);
  EXPECT_EQ(sm.bitmap_nibbles(10), nullptr);
  // Allocation skips the counted blocks.
  pdata::space_map small(8);
  small.inc(0);
  EXPECT_EQ(small.allocate(), std::optional<block_address>(1));
}

TEST(sparse_counts, ref_counts_keep_pages_only_where_counted_and_copies_are_deep) {
  pdata::ref_counts rc(uint64_t(1) << 32);
  EXPECT_EQ(rc.nr_pages(), (uint64_t(1) << 32) / entries_per_bitmap + 1);
  rc.inc(1);
  rc.set(uint64_t(entries_per_bitmap) * 5 + 2, 7);
  EXPECT_TRUE(rc.page_present(0));
  EXPECT_FALSE(rc.page_present(1));
  EXPECT_TRUE(rc.page_present(5));
  EXPECT_EQ(rc.nr_allocated(), 2u);
  pdata::ref_counts copy(1);
  copy = rc;
  rc.inc(1);
  EXPECT_EQ(copy.get(1), 1u);
  EXPECT_EQ(rc.get(1), 2u);
  EXPECT_EQ(copy.get(uint64_t(entries_per_bitmap) * 5 + 2), 7u);
  EXPECT_EQ(copy.get(uint64_t(entries_per_bitmap) * 5 + 3), 0u);
}

TEST(sparse_counts, count_down_takes_nothing_from_an_all_free_bitmap_and_ranks_threes_across_missing_pages) {
  const block_address n = 4 * uint64_t(entries_per_bitmap);
  std::vector<std::vector<unsigned char>> maps(4, std::vector<unsigned char>(pdata::block_size - 16, 0));
  // Bitmap 0 and 3 hold threes; 1 holds a 1; 2 is all free.
  pdata::bitmap_set(maps[0].data(), 9, 3);
  pdata::bitmap_set(maps[1].data(), 4, 1);
  pdata::bitmap_set(maps[3].data(), 0, 3);
  pdata::bitmap_set(maps[3].data(), 100, 3);
  pdata::count_down cd(n);
  for (uint64_t i = 0; i < 4; i++) cd.load_bitmap(i, maps[i].data());
  cd.finish_loading();
  EXPECT_EQ(cd.nr_threes(), 3u);
  EXPECT_FALSE(cd.take(2 * uint64_t(entries_per_bitmap) + 5));
  EXPECT_FALSE(cd.is_three(2 * uint64_t(entries_per_bitmap) + 5));
  EXPECT_TRUE(cd.take(uint64_t(entries_per_bitmap) + 4));
  const block_address a = 9, b = 3 * uint64_t(entries_per_bitmap), c = b + 100;
  for (int k = 0; k < 3; k++) EXPECT_TRUE(cd.take(a));
  for (int k = 0; k < 4; k++) EXPECT_TRUE(cd.take(b));
  for (int k = 0; k < 5; k++) EXPECT_TRUE(cd.take(c));
  EXPECT_EQ(cd.found(a), 3u);
  EXPECT_EQ(cd.found(b), 4u);
  EXPECT_EQ(cd.found(c), 5u);
  EXPECT_TRUE(cd.small_counts_used_up());
}

}  // namespace
