// The reference thin pool (see thin_pool.h).
#include "engine/thin_pool.h"

#include <cstring>
#include <vector>

#include <fmt/format.h>

namespace thin {

using namespace pdata;

// The metadata device is held by `md` (pool_metadata writes through it).
thin_pool::thin_pool(block_io &, block_io &data, const pool_options &opts, std::unique_ptr<pool_metadata> md)
    : data_(data), opts_(opts), md_(std::move(md)) {}

std::unique_ptr<thin_pool> thin_pool::format(block_io &meta, block_io &data, const pool_options &opts) {
  if (opts.data_block_size < min_data_block_size || opts.data_block_size > max_data_block_size ||
      opts.data_block_size % min_data_block_size)
    throw pdata::bad_input_error(fmt::format("data block size {} is not a multiple of 128 sectors in range",
                                             opts.data_block_size));
  uint64_t nr_data = data.nr_blocks() / (opts.data_block_size / 8);
  auto md = pool_metadata::format(meta, opts.data_block_size, nr_data);
  std::unique_ptr<thin_pool> p(new thin_pool(meta, data, opts, std::move(md)));
  p->commit();
  return p;
}

std::unique_ptr<thin_pool> thin_pool::open(block_io &meta, block_io &data, const pool_options &opts) {
  auto md = pool_metadata::open(meta);
  return std::unique_ptr<thin_pool>(new thin_pool(meta, data, opts, std::move(md)));
}

void thin_pool::commit() {
  if (!opts_.legacy_ordering) {
    data_.flush();  // 1. every data write completed so far becomes durable
    stats_.data_flushes++;
  }
  md_->commit();  // 2-5: metadata blocks, flush, superblock, flush
  stats_.commits++;
  since_commit_ = 0;
}

void thin_pool::create_thin(uint64_t dev) {
  md_->create_thin(dev);
  commit();
}
void thin_pool::create_snap(uint64_t dev, uint64_t origin) {
  md_->create_snap(dev, origin);
  commit();
}
void thin_pool::delete_device(uint64_t dev) {
  md_->delete_device(dev);
  commit();
}
void thin_pool::set_transaction_id(uint64_t old_id, uint64_t new_id) {
  md_->set_transaction_id(old_id, new_id);
  commit();
}
void thin_pool::reserve_metadata_snap() {
  if (!opts_.legacy_ordering) {
    data_.flush();
    stats_.data_flushes++;
  }
  md_->reserve_metadata_snap();  // commits twice internally
  stats_.commits++;
}
void thin_pool::release_metadata_snap() {
  md_->release_metadata_snap();
  commit();
}

void thin_pool::flush() {
  if (md_->changed()) {
    commit();
    if (!opts_.legacy_ordering) return;  // the pre-commit flush already covered the data device
  }
  data_.flush();  // legacy: passed down only after the metadata commit
  stats_.data_flushes++;
}

void thin_pool::tick() {
  if (opts_.commit_every && ++since_commit_ >= opts_.commit_every && md_->changed()) commit();
}

uint64_t thin_pool::allocate_data_block() {
  auto b = md_->alloc_data_block();
  if (!b) {
    // dm-thin commits and retries: blocks freed in this transaction return.
    if (md_->changed()) {
      commit();
      b = md_->alloc_data_block();
    }
    if (!b) throw out_of_data_space("thin pool is out of data space");
  }
  stats_.provisions++;
  return *b;
}

void thin_pool::data_write(uint64_t data_block, uint64_t offset, const unsigned char *buf, uint64_t nr, bool fua) {
  // Sectors [offset, offset+nr) of the data block, in 4 KiB pieces.
  const uint64_t base = data_block * blocks_per_data_block();
  block_buffer tmp;
  while (nr) {
    uint64_t blk = offset / 8, in = offset % 8, n = std::min<uint64_t>(nr, 8 - in);
    if (n < 8) {
      data_.read(base + blk, tmp.raw(), 1);
      std::memcpy(tmp.raw() + in * 512, buf, n * 512);
    } else {
      std::memcpy(tmp.raw(), buf, block_size);
    }
    if (fua)
      data_.write_fua(base + blk, tmp.raw(), 1);
    else
      data_.write(base + blk, tmp.raw(), 1);
    buf += n * 512;
    offset += n;
    nr -= n;
  }
}

void thin_pool::copy_block(uint64_t from, uint64_t to) {
  const uint64_t n = blocks_per_data_block();
  std::vector<unsigned char> buf(n * block_size);
  data_.read(from * n, buf.data(), n);
  data_.write(to * n, buf.data(), n);
  stats_.copies++;
}

void thin_pool::zero_block(uint64_t block) {
  const uint64_t n = blocks_per_data_block();
  std::vector<unsigned char> buf(n * block_size, 0);
  data_.write(block * n, buf.data(), n);
  stats_.zeroings++;
}

void thin_pool::write_piece(uint64_t dev, uint64_t vblock, uint64_t offset, const unsigned char *buf, uint64_t nr,
                            bool fua) {
  const bool whole = offset == 0 && nr == md_->data_block_size();
  auto m = md_->lookup(dev, vblock);
  if (m && !m->shared) {
    data_write(m->data_block, offset, buf, nr, fua);
    return;
  }
  uint64_t nb = allocate_data_block();
  if (!whole) {
    if (m)
      copy_block(m->data_block, nb);  // break sharing: the rest of the block comes along
    else if (opts_.zeroing)
      zero_block(nb);
  }
  data_write(nb, offset, buf, nr, fua);
  // Only now, with the block prepared, does the mapping go in.
  md_->insert(dev, vblock, nb);
}

void thin_pool::write(uint64_t dev, uint64_t sector, const void *buf, uint64_t nr_sectors, unsigned flags) {
  if (!md_->device_exists(dev)) throw pdata::bad_input_error(fmt::format("no thin device {}", dev));
  if (flags & bio_preflush) flush();
  const uint64_t dbs = md_->data_block_size();
  auto *p = static_cast<const unsigned char *>(buf);
  const bool fua = flags & bio_fua;
  while (nr_sectors) {
    uint64_t vblock = sector / dbs, off = sector % dbs, n = std::min(nr_sectors, dbs - off);
    write_piece(dev, vblock, off, p, n, fua);
    p += n * 512;
    sector += n;
    nr_sectors -= n;
  }
  if (fua && md_->changed()) {
    // FUA makes this bio durable, and with it the mappings it created.
    commit();
  }
  tick();
}

void thin_pool::read(uint64_t dev, uint64_t sector, void *buf, uint64_t nr_sectors) {
  if (!md_->device_exists(dev)) throw pdata::bad_input_error(fmt::format("no thin device {}", dev));
  const uint64_t dbs = md_->data_block_size();
  auto *p = static_cast<unsigned char *>(buf);
  block_buffer tmp;
  while (nr_sectors) {
    uint64_t vblock = sector / dbs, off = sector % dbs, n = std::min(nr_sectors, dbs - off);
    auto m = md_->lookup(dev, vblock);
    if (!m) {
      std::memset(p, 0, n * 512);
    } else {
      const uint64_t base = m->data_block * blocks_per_data_block();
      uint64_t o = off, left = n;
      unsigned char *q = p;
      while (left) {
        uint64_t blk = o / 8, in = o % 8, k = std::min<uint64_t>(left, 8 - in);
        data_.read(base + blk, tmp.raw(), 1);
        std::memcpy(q, tmp.raw() + in * 512, k * 512);
        q += k * 512;
        o += k;
        left -= k;
      }
    }
    p += n * 512;
    sector += n;
    nr_sectors -= n;
  }
}

void thin_pool::discard(uint64_t dev, uint64_t sector, uint64_t nr_sectors) {
  if (!md_->device_exists(dev)) throw pdata::bad_input_error(fmt::format("no thin device {}", dev));
  const uint64_t dbs = md_->data_block_size();
  // Only whole blocks are unmapped; partial blocks keep their data.
  uint64_t first = (sector + dbs - 1) / dbs, end = (sector + nr_sectors) / dbs;
  for (uint64_t vb = first; vb < end; vb++) md_->remove(dev, vb);
  tick();
}

}  // namespace thin
