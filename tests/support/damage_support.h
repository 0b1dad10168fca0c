// Helpers for the thin_check damage tests (tests/check_*_test.cc and the
// other tests that damage metadata on purpose).
//
// They load a kernel-written fixture, learn what every metadata block is (by
// walking the trees and space maps from the superblock, and by the block
// validators), build damaged copies of single blocks, run the checker
// in-process over a memory_block_io and judge its verdict against what the
// damage must produce. A watchdog bounds each test's run time.
// Implementation in damage_support.cc.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "persistent-data/block_io.h"
#include "persistent-data/btree_walk.h"
#include "persistent-data/checksum.h"
#include "persistent-data/ref_counts.h"
#include "support/metadata_support.h"
#include "support/test_support.h"
#include "thin/check/check.h"
#include "thin/check/problems.h"
#include "thin/format/superblock.h"

namespace dmg {

using pdata::block_address;
constexpr std::size_t bsize = pdata::block_size;

//------------------------------------------------------------------ images

// A whole metadata image in memory.
struct image {
  std::string name;
  std::vector<unsigned char> bytes;

  block_address nr_blocks() const { return bytes.size() / bsize; }
  const unsigned char *block(block_address b) const { return bytes.data() + b * bsize; }
  unsigned char *block(block_address b) { return bytes.data() + b * bsize; }
  std::vector<unsigned char> copy_block(block_address b) const { return {block(b), block(b) + bsize}; }
};

image load_fixture(const std::string &scenario);

//------------------------------------------------------------------ layout

// What a block is, from where it is reached.
enum class role {
  superblock,
  snapshot_superblock,  // the metadata snapshot's copy (held_root)
  details_internal,
  details_leaf,
  top_internal,     // mapping tree, top level (dev id -> subtree root)
  top_leaf,
  bottom_internal,  // mapping tree, one device's level (block -> block_time)
  bottom_leaf,
  data_index_internal,  // the data space map's index btree
  data_index_leaf,
  overflow_internal,  // a space map's reference count (overflow) tree
  overflow_leaf,
  metadata_index,  // the metadata space map's index block
  metadata_bitmap,
  data_bitmap,
};


const char *to_string(role r);
bool is_node(role r);
bool is_internal(role r);

// The block types the validators recognise.
enum class block_type { superblock, btree_node, bitmap, index_block, unknown };

const char *to_string(block_type t);
block_type expected_type(role r);
// Identifies a block by trying the validators (checksum salt + self blocknr).
block_type identify(const unsigned char *blk, block_address loc);
pdata::checksum_salt salt_of(role r);

struct bitmap_place {
  bool data = false;     // data space map (else metadata)
  uint64_t index = 0;    // bitmap number
};

// Everything the tests need to know about a clean fixture.
struct layout {
  thin::superblock sb;
  block_address nr_blocks = 0;         // of the metadata device
  uint64_t nr_data_blocks = 0;
  uint64_t nr_metadata_sm_blocks = 0;  // the metadata space map's nr_blocks
  std::map<block_address, role> roles;  // every block reachable from block 0
  std::map<block_address, pdata::key_range> ranges;  // btree nodes: the keys their parent allows
  std::set<block_address> used;         // non-zero count in the metadata space map
  pdata::ref_counts meta_counts, data_counts;
  std::vector<block_address> metadata_bitmaps, data_bitmaps;  // by bitmap number
  std::map<block_address, bitmap_place> bitmaps;
  std::vector<std::pair<uint64_t, block_address>> devices;  // live: dev id -> subtree root
  uint32_t max_mapping_time = 0;
  std::vector<std::string> problems;  // anything odd found while reading (none for a clean fixture)
};

layout analyse(const image &img);

// A kernel fixture, loaded and analysed.
struct analysed_fixture {
  image img;
  layout L;
};
analysed_fixture load_analysed(const std::string &scenario);

// Where a block's 2-bit count lives: the bitmap block and the entry in it.
struct bitmap_entry_ref {
  block_address bitmap;
  uint32_t entry;
};
bitmap_entry_ref locate_count(const layout &L, bool data, block_address b);

// A variant of the bitmap block holding block b's count in one space map,
// with b's 2-bit value set to v and the checksum restamped.
struct count_edit {
  block_address bitmap;
  std::vector<unsigned char> contents;
};
count_edit with_count_bits(const image &img, const layout &L, bool data, block_address b, uint32_t v);

//------------------------------------------------------------------ checking

// What the checker said about an image.
struct check_outcome {
  std::optional<std::string> exception;  // anything that escaped check_metadata
  thin::check_result result;
  std::vector<thin::damage> records;

  bool fatal() const;
  // Non-fatal problems (leaks); stale space-map hints are not problems.
  bool non_fatal() const;
  bool hints() const;
  bool fatal_with_text() const;
  bool has(thin::problem_id id) const;
  const thin::damage *first_fatal() const;
  // The first `max` records, with their catalogue ids and severities.
  std::string describe(std::size_t max = 4) const;
};

// Runs the checker in-process; nothing escapes (an exception is recorded).
check_outcome run_check(pdata::block_io &io, const thin::check_options &opts = {});

// The meaning of metadata: what thin_dump prints (live, and the metadata
// snapshot when one is held) plus every reference count as the kernel would
// read it from the space maps. Two images that mean the same produce the
// same string.
std::string meaning_of(pdata::block_io &io);

//------------------------------------------------------------------ variants

// What the checker must conclude about a damaged image.
enum class expect {
  fatal,                  // at least one fatal damage record
  fatal_or_same_meaning,  // fatal, or the damaged metadata means exactly what the original meant
  leak,                   // non-fatal records only (at least one): the metadata still means the same
  reported,               // at least one record, fatal or not
  not_fatal,              // no fatal record (a harmless change or a hint)
};

const char *to_string(expect e);

// One damaged copy of one block.
struct variant {
  std::string name;
  block_address block = 0;
  std::vector<unsigned char> contents;  // the whole damaged block
  expect want = expect::fatal;
  // Catalogue problems the checker must report (one of them, when there are
  // several), whenever it reports anything.
  std::vector<thin::problem_id> ids = {};
};


// "A or B or ...": the names of catalogue problems.
std::string names(const std::vector<thin::problem_id> &ids);

// Judges a checker verdict. Returns what is wrong with it, or nothing.
// `meaning_now` is called only when the verdict depends on it.
std::optional<std::string> judge(expect want, const check_outcome &o, const std::function<std::string()> &meaning_now,
                                 const std::string &original_meaning, const std::vector<thin::problem_id> &ids = {});

// Runs variants of one image in-process. One memory device is built from the
// image; each variant writes its block, is checked, and the block is put back.
class damage_runner {
 public:
  explicit damage_runner(const image &img);

  // Returns the failure, or nothing. `out` receives the checker's outcome.
  std::optional<std::string> run(const variant &v, check_outcome *out = nullptr);

  const std::string &original_meaning() const { return original_meaning_; }
  std::size_t total() const { return total_; }
  std::size_t fatal() const { return fatal_; }
  std::size_t non_fatal_only() const { return non_fatal_only_; }
  std::size_t clean() const { return clean_; }
  pdata::memory_block_io &io() { return io_; }

 private:
  const image &img_;
  pdata::memory_block_io io_;
  std::string original_meaning_;
  std::size_t total_ = 0, fatal_ = 0, non_fatal_only_ = 0, clean_ = 0;
};

//------------------------------------------------------------------ building damage

// Little-endian fields of a block copy.
void put32(std::vector<unsigned char> &b, std::size_t off, uint32_t v);
void put64(std::vector<unsigned char> &b, std::size_t off, uint64_t v);
uint32_t get32(const std::vector<unsigned char> &b, std::size_t off);
uint64_t get64(const std::vector<unsigned char> &b, std::size_t off);

// "scenario: block N (role)".
std::string block_label(const image &img, const layout &L, block_address b);

// The problem a damaged block's own validation reports: `field` is what was
// changed ("blocknr", "magic"; anything else fails the checksum first).
thin::problem_id validation_problem(role r, const std::string &field);

// Block b zeroed.
variant zero_variant(const image &img, const layout &L, block_address b);

// Byte offsets worth flipping a bit in, by what the block is: the header, the
// live keys and values, the stale slots past nr_entries, the unused tail.
// All of them are covered by the checksum.
std::vector<std::pair<std::size_t, std::string>> flip_offsets(const image &img, const layout &L, block_address b);

// One bit flipped at each of flip_offsets.
std::vector<variant> flip_variants(const image &img, const layout &L, block_address b);

// Structural damage with the checksum recomputed, so that the checker's
// structural rules (not the checksum) must catch it: node headers, keys,
// child pointers, mappings, superblock fields, index entries, bitmap counts.
std::vector<variant> structural_variants(const image &img, const layout &L, block_address b);

//------------------------------------------------------------------ the real tool

// A copy of an image in a temporary file, for running the built thin_check.
class scratch_image {
 public:
  // Written sparse: only the non-zero blocks (the btree fixture is 80 MiB of
  // mostly nothing).
  scratch_image(const image &img, const test::temp_dir &dir);
  const std::string &path() const { return path_; }

  void put_block(block_address b, const unsigned char *data);
  void restore(block_address b) { put_block(b, img_.block(b)); }

  // True when the file holds the original image with block b replaced by
  // `contents` (the tool wrote nothing).
  bool holds(block_address b, const std::vector<unsigned char> &contents) const;

 private:
  const image &img_;
  std::string path_;
};

//------------------------------------------------------------------ watchdog

// Bounds a test: if a step runs longer than `step_limit`, or the whole test
// longer than `total_limit`, it prints what was running and aborts the test
// binary (a hung checker cannot be interrupted any other way in-process).
class watchdog {
 public:
  watchdog(std::chrono::seconds step_limit, std::chrono::seconds total_limit);
  ~watchdog();
  watchdog(const watchdog &) = delete;
  watchdog &operator=(const watchdog &) = delete;

  // A new step begins.
  void step(const std::string &what);

 private:
  void watch();

  std::chrono::seconds step_limit_;
  std::chrono::steady_clock::time_point total_deadline_, step_deadline_;
  std::string what_ = "(starting)";
  bool stop_ = false;
  std::mutex m_;
  std::condition_variable cv_;
  std::thread thread_;
};

}  // namespace dmg
