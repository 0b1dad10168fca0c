// thin_restore's library side: an emitter that writes metadata.
//
// XML -> parse_xml -> restore_emitter -> metadata on a block_io. Trees are
// built bottom-up in sequential blocks (btree_builder) and written as they
// fill, so memory does not grow with the input. Shared <def> runs (the 1.x
// dialect) become shared leaves referenced by every device that uses them.
// mapped_blocks is recomputed from the mappings, not taken from the input.
//
// Safety: the output's superblock is zeroed and flushed before anything else
// is written; the new superblock is written last (after a flush) by commit.
// A failure leaves a zeroed superblock: call abandon() to make sure of it.
#pragma once

#include <cstdint>
#include <functional>
#include <istream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "thin/ir/emitter.h"
#include "thin/ir/xml_parser.h"
#include "thin/format/data_block_set.h"
#include "thin/format/metadata_writer.h"
#include "persistent-data/btree.h"
#include "thin/format/thin_trees.h"

namespace thin {

struct restore_stats {
  uint64_t devices = 0;
  uint64_t mappings = 0;
  uint64_t metadata_blocks_used = 0;
  uint64_t metadata_blocks_total = 0;
};

class restore_emitter : public emitter {
 public:
  explicit restore_emitter(pdata::block_io &out);
  ~restore_emitter() override;

  void begin_superblock(const superblock_info &sb) override;
  void end_superblock() override;
  void begin_device(const device_info &dev) override;
  void end_device() override;
  void range_map(uint64_t origin_begin, uint64_t data_begin, uint32_t time, uint64_t len) override;
  void single_map(uint64_t origin_block, uint64_t data_block, uint32_t time) override;
  void begin_def(const std::string &name) override;
  void end_def() override;
  void ref(const std::string &name) override;

  bool committed() const { return committed_; }
  const restore_stats &stats() const { return stats_; }

  // After a failure: zero the output's superblock (if it was touched) and flush.
  void abandon();

 private:
  struct data_run {
    uint64_t origin, data, len;
  };
  struct def_info {
    std::vector<pdata::btree_builder::leaf_info> leaves;
    uint64_t mappings = 0;
    std::vector<data_run> runs;  // its data blocks, for the twice-mapped check at each <ref>
  };
  void map_one(uint64_t origin, uint64_t data, uint32_t time);
  // The twice-mapped rule (invariants.h): data block `data`, mapped at
  // `origin`, must not be mapped already by the open device or def.
  void note_data_block(uint64_t origin, uint64_t data);
  // The same for the run data..data+len-1 mapped at origin..origin+len-1.
  void note_data_run(uint64_t origin, uint64_t data, uint64_t len);
  [[noreturn]] void twice_mapped(uint64_t origin, uint64_t data);

  pdata::block_io &out_;
  std::unique_ptr<metadata_writer> md_;
  bool touched_ = false, committed_ = false, in_superblock_ = false;
  uint64_t nr_data_blocks_ = 0;
  uint64_t sb_time_ = 0;
  std::unique_ptr<pdata::btree_builder> builder_;
  bool in_device_ = false, in_def_ = false;
  device_info dev_{};
  uint64_t dev_mappings_ = 0;
  std::string def_name_;
  std::map<std::string, def_info> defs_;
  struct device_entry {
    pdata::block_address root;
    device_details details;
  };
  std::map<uint64_t, device_entry> devices_;
  restore_stats stats_;
  data_block_set mapped_;      // data blocks of the open device or def
  std::vector<data_run> runs_;  // of the open def
};

// Keeps the rule "a failed write leaves the output superblock zeroed" for a
// writer that may throw: unless the restore committed by the time the guard
// goes out of scope, it calls abandon(). abandon() failing is passed to
// `warn` (a destructor cannot throw; the first error is the one to report).
class abandon_unless_committed {
 public:
  explicit abandon_unless_committed(restore_emitter &r, std::function<void(const std::string &)> warn = {})
      : r_(r), warn_(std::move(warn)) {}
  ~abandon_unless_committed();
  abandon_unless_committed(const abandon_unless_committed &) = delete;
  abandon_unless_committed &operator=(const abandon_unless_committed &) = delete;

 private:
  restore_emitter &r_;
  std::function<void(const std::string &)> warn_;
};

// The smallest metadata device, in blocks, that the XML on `in` restores
// into: the input is restored into memory (no files) and the space maps are
// sized for that many blocks. Nothing when the input does not restore, or
// when it would take more than `memory_limit` blocks of memory to find out.
std::optional<uint64_t> metadata_blocks_needed(std::istream &in, const xml_parse_options &opts,
                                               uint64_t memory_limit = 32768);

}  // namespace thin
