// Writable thin-pool metadata (see metadata_writer.h).
#include "thin/format/metadata_writer.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "persistent-data/btree.h"
#include "persistent-data/btree_disk.h"
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

namespace {
uint64_t div_up(uint64_t n, uint64_t d) { return n / d + (n % d != 0); }

// Nodes of a tree btree_builder makes from n entries of value_size.
uint64_t tree_blocks(uint64_t n, uint32_t value_size) {
  uint64_t nodes = n ? div_up(n, btree_max_entries(value_size)) : 1, total = nodes;
  while (nodes > 1) {
    nodes = div_up(nodes, btree_max_entries(8));
    total += nodes;
  }
  return total;
}
}  // namespace

uint64_t metadata_blocks_besides_bitmaps(uint64_t nr_data_blocks) {
  const uint64_t data_bitmaps = div_up(nr_data_blocks, entries_per_bitmap);
  return 1                                                   // superblock
         + data_bitmaps + tree_blocks(data_bitmaps, sizeof(index_entry_disk)) + 1  // data SM + overflow
         + 1 + 1                                             // metadata SM index block, overflow
         + 1 + 1;                                            // details, mapping trees
}

uint64_t metadata_blocks_with_bitmaps(uint64_t other) {
  // n = other + ceil(n / 16320): the least fixpoint, from below.
  uint64_t n = other + div_up(other, entries_per_bitmap);
  while (other + div_up(n, entries_per_bitmap) > n) n++;
  return n;
}

std::optional<std::string> nr_data_blocks_problem(uint64_t nr_data_blocks) {
  if (nr_data_blocks > max_nr_data_blocks)
    return fmt::format("nr_data_blocks {} is above the format's limit of {} (2^40: a mapping holds a 40-bit data "
                       "block number)",
                       nr_data_blocks, max_nr_data_blocks);
  const uint64_t need = metadata_blocks_with_bitmaps(metadata_blocks_besides_bitmaps(nr_data_blocks));
  if (need > max_metadata_blocks)
    return fmt::format("nr_data_blocks {} needs {} metadata blocks for its space map alone, more than the largest "
                       "metadata device holds ({} blocks, {} MiB)",
                       nr_data_blocks, need, max_metadata_blocks, max_metadata_blocks * block_size >> 20);
  return std::nullopt;
}

void check_metadata_fits(uint64_t nr_data_blocks, uint64_t device_blocks) {
  if (auto why = nr_data_blocks_problem(nr_data_blocks)) throw size_limit_error(*why);
  const uint64_t need = metadata_blocks_with_bitmaps(metadata_blocks_besides_bitmaps(nr_data_blocks));
  const uint64_t have = std::min<uint64_t>(device_blocks, max_metadata_blocks);
  if (need > have)
    throw metadata_too_small(fmt::format("the metadata device's {} blocks cannot hold the space maps of {} data "
                                         "blocks: they need at least {} blocks ({} KiB)",
                                         have, nr_data_blocks, need, need * block_size / 1024),
                             need);
}

std::unique_ptr<metadata_writer> metadata_writer::format(block_io &io, uint32_t data_block_size,
                                                         uint64_t nr_data_blocks) {
  if (data_block_size < min_data_block_size || data_block_size > max_data_block_size ||
      data_block_size % min_data_block_size)
    throw metadata_error(fmt::format(
        "data_block_size {} is invalid: it must be a multiple of 128 sectors between 128 and 2097152",
        data_block_size));
  check_metadata_fits(nr_data_blocks, io.nr_blocks());
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
