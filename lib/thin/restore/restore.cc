// The restore emitter (see restore.h).
#include "thin/restore/restore.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>

#include <fmt/format.h>

#include "persistent-data/endian.h"
#include "persistent-data/errors.h"
#include "persistent-data/space_map_disk.h"
#include "thin/format/invariants.h"

namespace thin {

using namespace pdata;

restore_emitter::restore_emitter(block_io &out) : out_(out) {}

restore_emitter::~restore_emitter() = default;

void restore_emitter::abandon() {
  if (!touched_) return;
  block_buffer zero;
  std::memset(zero.raw(), 0, block_size);
  out_.write(0, zero.raw(), 1);
  out_.flush();
  committed_ = false;
}

void restore_emitter::begin_superblock(const superblock_info &sb) {
  if (in_superblock_ || committed_) throw bad_input_error("more than one <superblock>");
  if (!invariants::data_block_size_ok(sb.data_block_size))
    throw bad_input_error(fmt::format(
        "data_block_size {} is invalid: it must be a multiple of 128 sectors between 128 and 2097152",
        sb.data_block_size));
  // The superblock keeps 32 bits of time (only a mapping's time is 24 bits;
  // the parser holds both to their widths). 0.9.0 and 1.3.3 restore any
  // 32-bit time, and check accepts it: so does restore.
  if (sb.time > UINT32_MAX) throw bad_input_error(fmt::format("superblock time {} does not fit in 32 bits", sb.time));
  // nr_data_blocks sizes the data space map: check it against the format and
  // this output before anything is allocated or written (a too-small output
  // is refused here, untouched, with the size it needs).
  check_metadata_fits(sb.nr_data_blocks, out_.nr_blocks());
  in_superblock_ = true;
  nr_data_blocks_ = sb.nr_data_blocks;
  sb_time_ = sb.time;

  // Nothing may point into blocks we are about to overwrite: wipe the old
  // superblock first and make that durable.
  block_buffer zero;
  std::memset(zero.raw(), 0, block_size);
  touched_ = true;
  out_.write(0, zero.raw(), 1);
  out_.flush();

  md_ = metadata_writer::format(out_, sb.data_block_size, sb.nr_data_blocks);
  superblock &s = md_->sb();
  s.time = static_cast<uint32_t>(sb.time);
  s.trans_id = sb.trans_id;
  s.flags = sb.flags.value_or(0);
  s.version = sb.version.value_or(superblock_version);
  // The empty trees format() made are replaced at end_superblock.
  btree_delete(md_->tm(), s.mapping_root, plain_value_ops(8));
  btree_delete(md_->tm(), s.details_root, plain_value_ops(sizeof(device_details_disk)));
  stats_.metadata_blocks_total = md_->metadata_sm().nr_blocks();
}

void restore_emitter::note_data_block(uint64_t origin, uint64_t data) {
  if (!mapped_.insert(data)) twice_mapped(origin, data);
}

void restore_emitter::note_data_run(uint64_t origin, uint64_t data, uint64_t len) {
  const uint64_t again = mapped_.insert_range(data, len);
  if (again != UINT64_MAX) twice_mapped(origin + (again - data), again);
}

void restore_emitter::twice_mapped(uint64_t origin, uint64_t data) {
  // Which virtual block maps it already: read back what was added so far
  // (or, for a <ref>, the def's own mapping of it).
  std::optional<uint64_t> first;
  builder_->for_each_entry([&](uint64_t key, const unsigned char *v) {
    if (!first && unpack_block(load_le64(v)) == data) first = key;
  });
  std::string where = in_def_ ? fmt::format("<def name=\"{}\">", def_name_) : fmt::format("device {}", dev_.dev_id);
  throw bad_input_error(fmt::format(
      "{} maps data block {} twice: by virtual block {} and by virtual block {} (dm-thin shares blocks by time, not "
      "by count, so a write through one mapping would change the other; each data block may be mapped once per "
      "device)",
      where, data, first ? std::to_string(*first) : std::string("?"), origin));
}

void restore_emitter::begin_device(const device_info &dev) {
  if (!in_superblock_) throw bad_input_error("<device> outside <superblock>");
  if (in_device_ || in_def_) throw bad_input_error("nested <device>");
  if (!invariants::dev_id_ok(dev.dev_id)) throw bad_input_error(fmt::format("dev_id {} is above {}", dev.dev_id, max_dev_id));
  if (devices_.count(dev.dev_id)) throw bad_input_error(fmt::format("duplicate dev_id {}", dev.dev_id));
  in_device_ = true;
  dev_ = dev;
  dev_mappings_ = 0;
  mapped_.clear();
  builder_ = std::make_unique<btree_builder>(md_->tm(), 8, md_->mapping_l1_ops().inc);
}

void restore_emitter::end_device() {
  block_address root = builder_->finish();
  builder_.reset();
  device_details d;
  d.mapped_blocks = dev_mappings_;
  d.transaction_id = dev_.trans_id;
  d.creation_time = static_cast<uint32_t>(dev_.creation_time);
  d.snapshotted_time = static_cast<uint32_t>(dev_.snap_time);
  devices_[dev_.dev_id] = {root, d};
  stats_.devices++;
  in_device_ = false;
}

void restore_emitter::map_one(uint64_t origin, uint64_t data, uint32_t time) {
  if (!invariants::mapping_block_ok(data, nr_data_blocks_))
    throw bad_input_error(
        fmt::format("data block {} is beyond nr_data_blocks ({})", data, nr_data_blocks_));
  if (time > 0xFFFFFF) throw bad_input_error(fmt::format("mapping time {} does not fit in 24 bits", time));
  if (!invariants::mapping_time_ok(time, sb_time_))
    throw bad_input_error(fmt::format("origin block {}: mapping time {} is after the superblock's time {}", origin,
                                         time, sb_time_));
  note_data_block(origin, data);
  if (in_def_) runs_.push_back({origin, data, 1});
  unsigned char v[8];
  store_le64(v, pack_block_time(data, time));
  builder_->add(origin, v);
  md_->data_sm().inc(data);
  if (in_device_) dev_mappings_++;
  stats_.mappings++;
}

void restore_emitter::range_map(uint64_t origin_begin, uint64_t data_begin, uint32_t time, uint64_t len) {
  if (!builder_) throw bad_input_error("mapping outside <device> or <def>");
  if (!len) return;
  // Checked once for the range (the first bad block is named, as map_one would).
  if (data_begin >= nr_data_blocks_ || len > nr_data_blocks_ - data_begin || time > 0xFFFFFF ||
      !invariants::mapping_time_ok(time, sb_time_)) {
    for (uint64_t i = 0; i < len; i++) map_one(origin_begin + i, data_begin + i, time);
    return;
  }
  note_data_run(origin_begin, data_begin, len);
  if (in_def_) runs_.push_back({origin_begin, data_begin, len});
  builder_->add_run(origin_begin, len,
                    [&](uint64_t i, unsigned char *v) { store_le64(v, pack_block_time(data_begin + i, time)); });
  md_->data_sm().inc_range(data_begin, len);
  if (in_device_) dev_mappings_ += len;
  stats_.mappings += len;
}

void restore_emitter::single_map(uint64_t origin_block, uint64_t data_block, uint32_t time) {
  if (!builder_) throw bad_input_error("mapping outside <device> or <def>");
  map_one(origin_block, data_block, time);
}

void restore_emitter::begin_def(const std::string &name) {
  if (!in_superblock_ || in_device_ || in_def_) throw bad_input_error("<def> must be directly inside <superblock>");
  if (defs_.count(name)) throw bad_input_error(fmt::format("duplicate <def name=\"{}\">", name));
  in_def_ = true;
  def_name_ = name;
  mapped_.clear();
  runs_.clear();
  builder_ = std::make_unique<btree_builder>(md_->tm(), 8);
}

void restore_emitter::end_def() {
  def_info d;
  d.mappings = builder_->entries();
  d.leaves = builder_->finish_leaves();
  d.runs = std::move(runs_);
  runs_.clear();
  builder_.reset();
  defs_[def_name_] = std::move(d);
  in_def_ = false;
}

void restore_emitter::ref(const std::string &name) {
  if (!in_device_) throw bad_input_error("<ref> outside <device>");
  auto it = defs_.find(name);
  if (it == defs_.end()) throw bad_input_error(fmt::format("<ref name=\"{}\"> names no <def>", name));
  // A block mapped twice names the <ref>'s virtual block; the device's own
  // one is read back.
  for (auto &r : it->second.runs) note_data_run(r.origin, r.data, r.len);
  for (auto &l : it->second.leaves) builder_->add_leaf(l.block, l.first_key, l.last_key);
  dev_mappings_ += it->second.mappings;
}

void restore_emitter::end_superblock() {
  if (!in_superblock_) throw bad_input_error("</superblock> without <superblock>");
  transaction_manager &tm = md_->tm();
  // Drop each def's own reference to its leaves: unreferenced defs vanish.
  for (auto &[name, d] : defs_)
    for (auto &l : d.leaves) btree_delete(tm, l.block, md_->mapping_l1_ops());
  defs_.clear();

  btree_builder details(tm, sizeof(device_details_disk));
  btree_builder top(tm, 8);
  for (auto &[dev_id, e] : devices_) {
    device_details_disk dd;
    encode_device_details(e.details, reinterpret_cast<unsigned char *>(&dd));
    details.add(dev_id, &dd);
    unsigned char v[8];
    store_le64(v, e.root);
    top.add(dev_id, v);
  }
  superblock &s = md_->sb();
  s.details_root = details.finish();
  s.mapping_root = top.finish();
  md_->commit();
  stats_.metadata_blocks_used = md_->metadata_sm().nr_allocated();
  committed_ = true;
  in_superblock_ = false;
}

abandon_unless_committed::~abandon_unless_committed() {
  if (r_.committed()) return;
  try {
    r_.abandon();
  } catch (const std::exception &e) {
    if (warn_) warn_(e.what());
  }
}

namespace {

// An in-memory device of the largest metadata size that refuses to hold
// more than `limit` written blocks (blocks never written read as zeroes).
class bounded_memory_io : public memory_block_io {
 public:
  explicit bounded_memory_io(uint64_t limit) : memory_block_io(max_metadata_blocks), limit_(limit) {}
  void write(block_address b, const void *buf, std::size_t count = 1) override {
    written_ += count;
    if (written_ > limit_) throw io_error("sizing the restore would take too much memory");
    memory_block_io::write(b, buf, count);
  }

 private:
  uint64_t limit_, written_ = 0;
};

}  // namespace

std::optional<uint64_t> metadata_blocks_needed(std::istream &in, const xml_parse_options &opts,
                                               uint64_t memory_limit) {
  try {
    bounded_memory_io io(memory_limit);
    restore_emitter r(io);
    parse_xml(in, r, opts);
    if (!r.committed()) return std::nullopt;
    // The space map here has bitmaps for the largest device; a device of N
    // blocks needs ceil(N / entries_per_bitmap) of them.
    const uint64_t bitmaps_here = (max_metadata_blocks + entries_per_bitmap - 1) / entries_per_bitmap;
    const uint64_t other = r.stats().metadata_blocks_used - bitmaps_here;
    uint64_t need = other + 1;
    while (other + (need + entries_per_bitmap - 1) / entries_per_bitmap > need) need++;
    return need;
  } catch (const std::exception &) {
    return std::nullopt;
  }
}

}  // namespace thin
