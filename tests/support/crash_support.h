// Shared by the engine's crash tests: a data device whose never-written
// blocks read back as recognisable garbage, a self-describing sector pattern,
// random workloads, and the model of what each sector may legally hold.
#pragma once

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "persistent-data/block_io.h"
#include "persistent-data/errors.h"
#include "engine/thin_pool.h"

namespace crash {

// Never-written blocks hold "GARBAGE" + the block number: what a disk returns
// for a data block whose contents never reached it.
class garbage_block_io : public pdata::block_io {
 public:
  explicit garbage_block_io(pdata::block_address n) : n_(n) {}
  pdata::block_address nr_blocks() const override { return n_; }
  bool writable() const override { return true; }
  void flush() override {}
  void read(pdata::block_address b, void *buf, std::size_t count) override {
    auto *p = static_cast<unsigned char *>(buf);
    for (std::size_t i = 0; i < count; i++, p += pdata::block_size) {
      if (b + i >= n_) throw pdata::io_error("read beyond end");
      auto it = blocks_.find(b + i);
      if (it != blocks_.end()) {
        std::memcpy(p, it->second.data(), pdata::block_size);
      } else {
        uint64_t blk = b + i;
        for (std::size_t k = 0; k < pdata::block_size; k += 16) {
          std::memcpy(p + k, "GARBAGE!", 8);
          std::memcpy(p + k + 8, &blk, 8);
        }
      }
    }
  }
  void write(pdata::block_address b, const void *buf, std::size_t count) override {
    auto *p = static_cast<const unsigned char *>(buf);
    for (std::size_t i = 0; i < count; i++, p += pdata::block_size) {
      if (b + i >= n_) throw pdata::io_error("write beyond end");
      auto &v = blocks_[b + i];
      v.assign(p, p + pdata::block_size);
    }
  }

 private:
  pdata::block_address n_;
  std::unordered_map<pdata::block_address, std::vector<unsigned char>> blocks_;
};

// A writable view of another device: writes land in memory, reads fall back
// to the base (which is left alone). Lets a test look at a crash state
// without copying whole devices.
class overlay_block_io : public pdata::block_io {
 public:
  explicit overlay_block_io(pdata::block_io &base) : base_(base) {}
  pdata::block_address nr_blocks() const override { return base_.nr_blocks(); }
  bool writable() const override { return true; }
  void flush() override {}
  void read(pdata::block_address b, void *buf, std::size_t count) override {
    auto *p = static_cast<unsigned char *>(buf);
    for (std::size_t i = 0; i < count; i++, p += pdata::block_size) {
      auto it = blocks_.find(b + i);
      if (it != blocks_.end())
        std::memcpy(p, it->second.data(), pdata::block_size);
      else
        base_.read(b + i, p, 1);
    }
  }
  void write(pdata::block_address b, const void *buf, std::size_t count) override {
    auto *p = static_cast<const unsigned char *>(buf);
    for (std::size_t i = 0; i < count; i++, p += pdata::block_size) blocks_[b + i].assign(p, p + pdata::block_size);
  }

 private:
  pdata::block_io &base_;
  std::unordered_map<pdata::block_address, std::vector<unsigned char>> blocks_;
};

// Sector contents written by write `id` to sector `sector` of a device: a
// header naming both, filler, and a trailer binding them. The engine's I/O
// is atomic per 4 KiB, so a sector is never torn: header and trailer decide.
inline uint64_t trailer_of(uint64_t id, uint64_t sector) { return (id * 0x9E3779B97F4A7C15ull) ^ (sector + 1); }
inline void fill_sector(unsigned char *p, uint64_t id, uint64_t sector) {
  std::memcpy(p, "THINKIT!", 8);
  std::memcpy(p + 8, &id, 8);
  std::memcpy(p + 16, &sector, 8);
  std::memset(p + 24, static_cast<int>(id & 0xff), 512 - 32);
  uint64_t t = trailer_of(id, sector);
  std::memcpy(p + 504, &t, 8);
}

enum class verdict { zero, written, garbage };

// Is this sector something that was written to (dev, sector)?
inline verdict classify(const unsigned char *p, uint64_t sector, const std::set<uint64_t> &allowed, uint64_t *id_out) {
  static const unsigned char zeros[512] = {};
  if (std::memcmp(p, zeros, 512) == 0) return verdict::zero;
  uint64_t id, sec, t;
  std::memcpy(&id, p + 8, 8);
  std::memcpy(&sec, p + 16, 8);
  std::memcpy(&t, p + 504, 8);
  *id_out = id;
  if (std::memcmp(p, "THINKIT!", 8) == 0 && sec == sector && t == trailer_of(id, sector) && allowed.count(id))
    return verdict::written;
  return verdict::garbage;
}

enum class op_kind { create, snap, write, discard, flush, del };

struct op {
  op_kind kind;
  uint64_t dev = 0, origin = 0, sector = 0, nr = 0;
  unsigned flags = 0;
  uint64_t id = 0;  // write id
};

// A random workload over a few small thin devices (snapshots included).
inline std::vector<op> make_workload(uint64_t seed, int n_ops, uint64_t dev_sectors, uint32_t dbs) {
  std::mt19937_64 rng(seed);
  auto pick = [&](uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng); };
  std::vector<op> ops;
  std::vector<uint64_t> devs;
  uint64_t next_dev = 1, next_id = 1;
  ops.push_back({op_kind::create, next_dev, 0, 0, 0, 0, 0});
  devs.push_back(next_dev++);
  for (int i = 1; i < n_ops; i++) {
    uint64_t r = pick(100);
    op o{};
    if (r < 4 && devs.size() < 5) {
      o.kind = op_kind::create;
      o.dev = next_dev++;
      devs.push_back(o.dev);
    } else if (r < 10 && devs.size() < 5) {
      o.kind = op_kind::snap;
      o.origin = devs[pick(devs.size())];
      o.dev = next_dev++;
      devs.push_back(o.dev);
    } else if (r < 13 && devs.size() > 2) {
      o.kind = op_kind::del;
      std::size_t k = pick(devs.size());
      o.dev = devs[k];
      devs.erase(devs.begin() + static_cast<long>(k));
    } else if (r < 18) {
      o.kind = op_kind::discard;
      o.dev = devs[pick(devs.size())];
      o.sector = pick(dev_sectors / dbs) * dbs;
      o.nr = dbs * (1 + pick(2));
      if (o.sector + o.nr > dev_sectors) o.nr = dev_sectors - o.sector;
    } else if (r < 24) {
      o.kind = op_kind::flush;
    } else {
      o.kind = op_kind::write;
      o.dev = devs[pick(devs.size())];
      if (pick(3) == 0) {  // whole blocks
        o.sector = pick(dev_sectors / dbs) * dbs;
        o.nr = dbs;
      } else {
        o.sector = pick(dev_sectors);
        o.nr = 1 + pick(dbs + dbs / 2);
      }
      if (o.sector + o.nr > dev_sectors) o.nr = dev_sectors - o.sector;
      uint64_t f = pick(20);
      o.flags = f == 0 ? unsigned(thin::bio_fua) : f == 1 ? unsigned(thin::bio_preflush) : 0u;
      o.id = next_id++;
    }
    ops.push_back(o);
  }
  return ops;
}

// What each (device, sector) may hold: the ids of every write that reached
// it (directly, or through the origin before a snapshot).
class sector_model {
 public:
  explicit sector_model(uint64_t dev_sectors) : sectors_(dev_sectors) {}
  void apply(const op &o) {
    switch (o.kind) {
      case op_kind::create: devs_[o.dev].assign(sectors_, {}); break;
      case op_kind::snap: devs_[o.dev] = devs_[o.origin]; break;
      case op_kind::del: devs_.erase(o.dev); break;
      case op_kind::write:
        for (uint64_t s = o.sector; s < o.sector + o.nr; s++) devs_[o.dev][s].insert(o.id);
        break;
      default: break;
    }
  }
  const std::set<uint64_t> &allowed(uint64_t dev, uint64_t sector) const { return devs_.at(dev)[sector]; }
  bool has(uint64_t dev) const { return devs_.count(dev) != 0; }

 private:
  uint64_t sectors_;
  std::map<uint64_t, std::vector<std::set<uint64_t>>> devs_;
};

inline void run_op(thin::thin_pool &pool, const op &o) {
  switch (o.kind) {
    case op_kind::create: pool.create_thin(o.dev); break;
    case op_kind::snap: pool.create_snap(o.dev, o.origin); break;
    case op_kind::del: pool.delete_device(o.dev); break;
    case op_kind::flush: pool.flush(); break;
    case op_kind::discard: pool.discard(o.dev, o.sector, o.nr); break;
    case op_kind::write: {
      std::vector<unsigned char> buf(o.nr * 512);
      for (uint64_t i = 0; i < o.nr; i++) fill_sector(buf.data() + i * 512, o.id, o.sector + i);
      pool.write(o.dev, o.sector, buf.data(), o.nr, o.flags);
      break;
    }
  }
}

}  // namespace crash
