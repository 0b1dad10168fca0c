// Writable thin-pool metadata (see metadata_writer.h).
#include "thin/format/metadata_writer.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "persistent-data/btree.h"
#include "persistent-data/checksum.h"
#include "persistent-data/endian.h"
#include "persistent-data/space_map_reader.h"

namespace thin {

using namespace pdata;

metadata_writer::metadata_writer(block_io &io, block_address nr_meta, uint64_t nr_data)
    : io_(io), meta_sm_(nr_meta), data_sm_(nr_data) {
  tm_ = std::make_unique<transaction_manager>(io_, meta_sm_);
}

metadata_writer::metadata_writer(block_io &io, space_map meta, space_map data)
    : io_(io), meta_sm_(std::move(meta)), data_sm_(std::move(data)) {
  tm_ = std::make_unique<transaction_manager>(io_, meta_sm_);
}

namespace {
class throw_on_problem : public space_map_problem_visitor {
 public:
  void problem(const space_map_problem &p) override {
    if (p.fatal) throw metadata_error(fmt::format("cannot open metadata for writing: {}", p.what));
  }
};
}  // namespace

std::unique_ptr<metadata_writer> metadata_writer::open(block_io &io) {
  superblock sb = read_superblock(io, 0);
  block_cache cache(io);
  throw_on_problem tp;
  auto meta = read_space_map(cache, sb.metadata_sm_root(), space_map_kind::metadata, tp);
  auto data = read_space_map(cache, sb.data_sm_root(), space_map_kind::data, tp);
  std::unique_ptr<metadata_writer> w(
      new metadata_writer(io, space_map(std::move(meta.counts)), space_map(std::move(data.counts))));
  try {
    w->meta_layout_ = read_space_map_layout(cache, sb.metadata_sm_root(), true);
    w->data_layout_ = read_space_map_layout(cache, sb.data_sm_root(), false);
  } catch (const std::exception &e) {
    throw metadata_error(fmt::format("cannot open metadata for writing: {}", e.what()));
  }
  w->sb_ = sb;
  return w;
}

std::unique_ptr<metadata_writer> metadata_writer::format(block_io &io, uint32_t data_block_size,
                                                         uint64_t nr_data_blocks) {
  block_address nr_meta = std::min<block_address>(io.nr_blocks(), max_metadata_blocks);
  if (nr_meta < 2) throw metadata_error("metadata device too small to format");
  std::unique_ptr<metadata_writer> w(new metadata_writer(io, nr_meta, nr_data_blocks));
  w->meta_sm_.set(0, 1);  // the superblock
  superblock &sb = w->sb_;
  sb.flags = 0;
  sb.blocknr = 0;
  sb.version = superblock_version;
  sb.data_block_size = data_block_size;
  sb.metadata_block_size = sectors_per_block;
  sb.metadata_nr_blocks = nr_meta;
  sb.mapping_root = btree_empty(*w->tm_, 8);
  sb.details_root = btree_empty(*w->tm_, sizeof(device_details_disk));
  return w;
}

value_ops metadata_writer::mapping_l1_ops() {
  value_ops ops;
  ops.size = 8;
  ops.inc = [this](const unsigned char *v) { data_sm_.inc(unpack_block(load_le64(v))); };
  ops.dec = [this](const unsigned char *v) { data_sm_.dec(unpack_block(load_le64(v))); };
  ops.equal = [](const unsigned char *a, const unsigned char *b) {
    return unpack_block(load_le64(a)) == unpack_block(load_le64(b));
  };
  return ops;
}

value_ops metadata_writer::mapping_l0_ops() {
  value_ops ops;
  ops.size = 8;
  ops.inc = [this](const unsigned char *v) { tm_->inc(load_le64(v)); };
  ops.dec = [this](const unsigned char *v) { btree_delete(*tm_, load_le64(v), mapping_l1_ops()); };
  ops.equal = [](const unsigned char *a, const unsigned char *b) { return load_le64(a) == load_le64(b); };
  return ops;
}

void metadata_writer::commit() {
  disk_sm_root data_root = write_data_space_map(*tm_, data_sm_, data_layout_);
  disk_sm_root meta_root = write_metadata_space_map(*tm_, meta_layout_);
  sb_.set_data_sm_root(data_root);
  sb_.set_metadata_sm_root(meta_root);
  tm_->flush_blocks();  // every block but the superblock, then flush

  block_buffer buf;
  std::memset(buf.raw(), 0, block_size);
  encode_superblock(sb_, buf.raw());
  io_.write(0, buf.raw(), 1);
  io_.flush();
  tm_->end_transaction();
  data_sm_.commit();
}

}  // namespace thin
