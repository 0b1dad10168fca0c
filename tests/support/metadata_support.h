// In-process helpers over the library that many tests share: a check
// reporter that records what thin_check's library reports, a space-map
// problem list, a block device wrapper that counts requests, opening an image
// read-only, thin_dump's XML of a device, and setting NEEDS_CHECK.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "persistent-data/block_io.h"
#include "persistent-data/space_map_reader.h"
#include "thin/check/check.h"

namespace test {

// Records every stage and damage record of a check (and prints nothing).
class recording_reporter : public thin::check_reporter {
 public:
  std::vector<std::string> stages;
  std::vector<thin::damage> records;

  void stage(const char *name) override { stages.emplace_back(name); }
  void info(uint64_t, uint64_t) override {}
  void visit(const thin::damage &d) override { records.push_back(d); }

  // Each record's text, a line each ("" when nothing was found).
  std::string log() const;
  // The same, each line starting "fatal: " or "non-fatal: ".
  std::string describe() const;
};

// Collects the problems read_space_map reports.
class space_map_problems : public pdata::space_map_problem_visitor {
 public:
  std::vector<pdata::space_map_problem> all;

  void problem(const pdata::space_map_problem &p) override { all.push_back(p); }
  // Each problem's text, a line each, starting "fatal: " or "non-fatal: ".
  std::string text() const;
  bool any_fatal() const;
};

// Passes every request to `inner` and counts them: reads of each block,
// blocks read in all, write requests.
class counting_block_io : public pdata::block_io {
 public:
  explicit counting_block_io(pdata::block_io &inner) : inner_(inner) {}
  pdata::block_address nr_blocks() const override { return inner_.nr_blocks(); }
  void read(pdata::block_address b, void *buf, std::size_t count) override;
  void write(pdata::block_address b, const void *buf, std::size_t count) override;
  void flush() override { inner_.flush(); }
  bool writable() const override { return inner_.writable(); }

  std::map<pdata::block_address, unsigned> reads;  // per block
  uint64_t blocks_read = 0;
  std::vector<std::pair<pdata::block_address, std::size_t>> read_requests;  // (first block, count), in order
  unsigned write_requests = 0;

 private:
  pdata::block_io &inner_;
};

// A metadata image file opened read-only.
std::unique_ptr<pdata::file_block_io> open_read_only(const std::string &path);

// What thin_dump prints for the metadata on `io` (XML, live metadata).
std::string dump_xml(pdata::block_io &io);

// Sets the superblock's NEEDS_CHECK flag (and restamps its checksum), in a
// whole image in memory or in an image file.
void set_needs_check(std::vector<unsigned char> &image);
void set_needs_check(const std::string &path);

}  // namespace test
