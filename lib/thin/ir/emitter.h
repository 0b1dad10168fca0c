// The emitter: the spine of thinkit's data flow.
//
//   dump    = walk metadata          -> emitter (XML or human-readable text)
//   restore = parse XML              -> restore emitter (writes metadata)
//   repair  = tolerant metadata walk -> restore emitter
//
// Events arrive in document order: begin_superblock, then per device
// begin_device, its mappings in increasing origin order, end_device; then
// end_superblock.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "thin/ir/text_sink.h"

namespace thin {

struct superblock_info {
  std::string uuid;
  uint64_t time = 0;
  uint64_t trans_id = 0;
  std::optional<uint32_t> flags;
  std::optional<uint32_t> version;
  uint32_t data_block_size = 0;
  uint64_t nr_data_blocks = 0;
  std::optional<uint64_t> metadata_snap;
};

struct device_info {
  uint64_t dev_id = 0;
  uint64_t mapped_blocks = 0;
  uint64_t trans_id = 0;
  uint64_t creation_time = 0;
  uint64_t snap_time = 0;
};

class emitter {
 public:
  virtual ~emitter() = default;
  virtual void begin_superblock(const superblock_info &sb) = 0;
  virtual void end_superblock() = 0;
  virtual void begin_device(const device_info &dev) = 0;
  virtual void end_device() = 0;
  // `len` consecutive origin blocks mapped to consecutive data blocks.
  virtual void range_map(uint64_t origin_begin, uint64_t data_begin, uint32_t time, uint64_t len) = 0;
  virtual void single_map(uint64_t origin_block, uint64_t data_block, uint32_t time) = 0;

  // The 1.x dialect's shared subtrees. A <def name> holds a run of mappings
  // (no devices, no refs) and appears at superblock level; a <ref name/>
  // inside a device stands for that def's mappings, in place. Emitters that
  // cannot express them throw pdata::bad_input_error.
  virtual void begin_def(const std::string &name);
  virtual void end_def();
  virtual void ref(const std::string &name);
};

// Text emitters, byte-identical to thin_dump 0.9.0's formats.
std::unique_ptr<emitter> make_xml_emitter(text_sink &out);
std::unique_ptr<emitter> make_human_readable_emitter(text_sink &out);

// Replaces superblock values (thin_dump --transaction-id, --data-block-size,
// --nr-data-blocks) on the way through to `inner`.
struct superblock_overrides {
  std::optional<uint64_t> transaction_id;
  std::optional<uint32_t> data_block_size;
  std::optional<uint64_t> nr_data_blocks;
};
std::unique_ptr<emitter> make_override_emitter(emitter &inner, const superblock_overrides &o);

// Groups consecutive single mappings into ranges the way thin_dump does: a
// mapping extends the current run when both its origin and data blocks follow
// on and its time is equal. Call add() in origin order, then finish().
class mapping_run_builder {
 public:
  explicit mapping_run_builder(emitter &e) : e_(e) {}
  void add(uint64_t origin, uint64_t data, uint32_t time) {
    if (len_ && origin == origin_ + len_ && data == data_ + len_ && time == time_) {
      len_++;
      return;
    }
    finish();
    origin_ = origin;
    data_ = data;
    time_ = time;
    len_ = 1;
  }
  void finish() {
    if (len_ == 1)
      e_.single_map(origin_, data_, time_);
    else if (len_ > 1)
      e_.range_map(origin_, data_, time_, len_);
    len_ = 0;
  }

 private:
  emitter &e_;
  uint64_t origin_ = 0, data_ = 0, len_ = 0;
  uint32_t time_ = 0;
};

}  // namespace thin
