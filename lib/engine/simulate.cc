// The built-in power-cut scenario (see simulate.h).
#include "engine/simulate.h"

#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "log-writes/log_recorder.h"
#include "engine/thin_pool.h"

namespace thin {

using namespace pdata;

namespace {

void fill_written(unsigned char *p, uint64_t dev, uint64_t sector, uint64_t version) {
  std::memset(p, ' ', 512);
  auto s = fmt::format("THINKIT dev={} sector={} version={}", dev, sector, version);
  std::memcpy(p, s.data(), s.size());
  p[511] = '\n';
}

bool is_stale(const unsigned char *p) { return std::memcmp(p, "STALE", 5) == 0; }

}  // namespace

simulation_result simulate_power_cut(block_io &meta, block_io &data, byte_sink &log, const simulation_options &opts,
                                     const std::function<void(const std::string &)> &say) {
  simulation_result res;
  const uint32_t dbs = opts.data_block_size;
  say(fmt::format("formatting a pool: {} KiB data blocks, zeroing on, {} commit ordering", dbs / 2,
                  opts.legacy_ordering ? "LEGACY (pre-694cfe7f31: no data flush before commit)"
                                       : "CORRECTED (flush data, then metadata, then superblock)"));
  {
    // A used disk: every data block holds old contents.
    block_buffer stale;
    for (std::size_t k = 0; k < block_size; k += 64) {
      auto s = fmt::format("STALE data from before the pool {:<30}", k / 64);
      std::memcpy(stale.raw() + k, s.data(), std::min<std::size_t>(s.size(), 63));
      stale.data[k + 63] = '\n';
    }
    for (block_address b = 0; b < data.nr_blocks(); b++) data.write(b, stale.raw(), 1);
    data.flush();
  }

  fault_injecting_block_io meta_cache(meta), data_cache(data);
  meta_cache.volatile_cache(true);
  data_cache.volatile_cache(true);
  log_recorder rec(log);
  auto meta_dev = rec.region(meta_cache, 0);
  auto data_dev = rec.region(data_cache, meta.nr_blocks() * sectors_per_block);

  pool_options po;
  po.data_block_size = dbs;
  po.legacy_ordering = opts.legacy_ordering;
  po.commit_every = 6;  // the kernel's periodic commit
  auto pool = thin_pool::format(*meta_dev, *data_dev, po);
  rec.mark("pool-formatted");

  std::vector<unsigned char> buf(dbs * 512);
  uint64_t version = 0;
  auto write_range = [&](uint64_t dev, uint64_t sector, uint64_t nr, unsigned flags) {
    buf.resize(nr * 512);
    version++;
    for (uint64_t i = 0; i < nr; i++) fill_written(buf.data() + i * 512, dev, sector + i, version);
    pool->write(dev, sector, buf.data(), nr, flags);
  };

  say("creating thin device 1 and writing 16 whole blocks, then an fsync (PREFLUSH)");
  pool->create_thin(1);
  for (uint64_t b = 0; b < 16; b++) write_range(1, b * dbs, dbs, 0);
  pool->flush();
  rec.mark("origin-written");

  say("snapshotting device 1 as device 2 (they share every block)");
  pool->create_snap(2, 1);
  rec.mark("snapshot");

  say("partial writes to shared blocks of both devices: each copies the whole block first (COW)");
  for (uint64_t b = 0; b < 16; b += 2) write_range(1, b * dbs + 8, 8, 0);
  for (uint64_t b = 1; b < 16; b += 4) write_range(2, b * dbs + 16, 4, 0);
  say("partial writes to new blocks of device 1: each zeroes its block first");
  for (uint64_t b = 20; b < 26; b++) write_range(1, b * dbs + 3, 2, 0);
  rec.mark("cow-and-zeroing");
  say("a few more writes to new blocks of device 2 that no commit covers yet");
  for (uint64_t b = 30; b < 33; b++) write_range(2, b * dbs, dbs / 2, 0);

  const auto &st = pool->stats();
  res.commits = st.commits;
  res.copies = st.copies;
  res.zeroings = st.zeroings;
  say(fmt::format("so far: {} commits (periodic ones included), {} COW copies, {} zeroed blocks", st.commits,
                  st.copies, st.zeroings));
  say("POWER CUT: every write still in a volatile cache is lost");
  rec.finish();
  res.log_entries = rec.nr_entries();
  pool.reset();
  res.lost_metadata_writes = meta_cache.crash();
  res.lost_data_writes = data_cache.crash();
  say(fmt::format("lost {} metadata and {} data block writes", res.lost_metadata_writes, res.lost_data_writes));

  // What survived: read every mapped block of every device.
  auto md = pool_metadata::open(meta);
  std::vector<unsigned char> blk(dbs * 512);
  for (uint64_t dev : md->devices()) {
    uint64_t bad = 0;
    for (auto &[vb, m] : md->mappings(dev)) {
      res.mapped_blocks++;
      data.read(m.data_block * (dbs / 8), blk.data(), dbs / 8);
      bool stale = false;
      for (uint64_t s = 0; s < dbs && !stale; s++) stale = is_stale(blk.data() + s * 512);
      if (stale) {
        bad++;
        res.garbage_blocks++;
      }
    }
    say(fmt::format("after the cut, device {} maps {} blocks; {} of them read back stale garbage", dev,
                    md->details(dev).mapped_blocks, bad));
  }
  return res;
}

}  // namespace thin
