// thinkit_gen_xml: a deterministic generator of realistic thin_dump XML, for
// tests and benchmarks (usage in README.md beside this file).
//
// The output is exactly what thin_dump 0.9.0 prints (it is written by
// thinkit's own XML emitter), so for a generated file F
//
//     thin_restore -i F -o META && thin_dump META   ==   F   (byte for byte)
//
// How a pool is simulated (deterministic for a given --seed):
//
// 1. --devices origin devices (dev_id 1..N, creation_time 0) share --mappings
//    mapped blocks. Each origin's blocks are laid out as extents of its
//    virtual space: a single block with probability --frag, otherwise a run
//    of mean length --run-len; gaps between extents make about --fill of the
//    span mapped, and some extents abut the previous one.
// 2. The origins are filled concurrently: all extents of all origins, in a
//    random order, take data blocks from a sequential allocator that now and
//    then skips a few blocks (blocks freed earlier). These mappings have
//    time 0.
// 3. --snapshots snapshots, one at a time. Each increments the pool time T.
//    The source is an origin (round robin) or, with probability
//    --snap-of-snap, an earlier snapshot. The snapshot starts sharing every
//    mapping of its source; its creation_time and snap_time, and the source's
//    snap_time, become T. Then short writes overwrite --origin-churn of the
//    source's blocks and --snap-diff of the snapshot's. As in dm-thin, a
//    write to a block whose mapping time is older than the device's snap_time
//    breaks sharing (a new data block, mapping time T); any other write is in
//    place and changes no mapping.
//
// Hence: a data block is mapped at most once per device, and by several
// devices only when they are related by snapshots, each such mapping's time
// being below each device's snap_time; all times are <= the superblock time;
// all data blocks are below nr_data_blocks.
//
// Memory: the devices of one family (an origin and the snapshots taken from
// it, directly or not) map the same origin blocks, kept once as runs. Each
// device's (data block, time) pairs live in chunks of one B-tree leaf's worth
// of mappings (252), shared between devices until a write changes them, as
// the kernel shares leaves: 8 bytes a mapping, and a snapshot costs only what
// is written to it or its source afterwards. --shared-defs uses the same
// sharing: a run of chunks that several devices hold is written once as a
// <def> (the 1.x dialect) and each device says <ref>.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "persistent-data/btree_disk.h"
#include "persistent-data/block_io.h"
#include "persistent-data/space_map_disk.h"
#include "thin/ir/emitter.h"
#include "thin/restore/restore.h"
#include "thin/format/superblock_disk.h"
#include "thin/ir/text_sink.h"

namespace {

struct options {
  uint64_t seed = 1;
  uint64_t devices = 4;
  uint64_t mappings = 10000;
  uint64_t snapshots = 2;
  double snap_of_snap = 0.0;
  double frag = 0.3;
  double run_len = 32.0;
  double fill = 0.6;
  double snap_diff = 0.03;
  double origin_churn = 0.03;
  uint64_t write_len = 8;
  double hole_prob = 0.02;
  double hole_mean = 8.0;
  double free_slack = 0.1;
  uint32_t data_block_size = 128;
  bool shared_defs = false;
  bool stats = false;
  std::string output = "-";
  std::string metadata;        // write metadata here (restore) instead of XML
  uint64_t metadata_size = 0;  // bytes; 0: the format's maximum
};

//------------------------------------------------------------- randomness

__extension__ typedef unsigned __int128 u128;

// xoshiro256** seeded through splitmix64: the same stream everywhere.
class random_source {
 public:
  explicit random_source(uint64_t seed) {
    for (auto &w : s_) {
      seed += 0x9e3779b97f4a7c15ull;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      w = z ^ (z >> 31);
    }
  }
  uint64_t next() {
    uint64_t r = rotl(s_[1] * 5, 7) * 9, t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return r;
  }
  // Uniform in [0, n), n > 0.
  uint64_t below(uint64_t n) { return static_cast<uint64_t>((static_cast<u128>(next()) * n) >> 64); }
  // Uniform in [0, 1).
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  bool chance(double p) { return unit() < p; }
  // Failures before the first success, success probability 1/(mean+1): a
  // geometric variable with the given mean (0 when mean <= 0).
  uint64_t geometric(double mean) {
    if (!(mean > 0)) return 0;
    double g = std::floor(std::log1p(-unit()) / std::log1p(-1.0 / (mean + 1.0)));
    return g < 1e18 ? static_cast<uint64_t>(g) : uint64_t(1e18);
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::array<uint64_t, 4> s_{};
};

// Sequential data block allocation, as the kernel's data space map hands out
// blocks, skipping now and then a few (blocks freed earlier).
class data_allocator {
 public:
  data_allocator(random_source &r, double hole_prob, double hole_mean)
      : r_(r), hole_prob_(hole_prob), hole_mean_(hole_mean) {}
  uint64_t alloc(uint64_t n) {
    if (hole_prob_ > 0 && r_.chance(hole_prob_)) {
      uint64_t h = 1 + r_.geometric(hole_mean_ - 1.0);
      next_ += h;
      holes_ += h;
    }
    uint64_t b = next_;
    next_ += n;
    // (data block, time) pairs are packed into 64 bits, data block above.
    if (next_ >= (1ull << 40)) throw std::runtime_error("more than 2^40 data blocks: use fewer mappings");
    return b;
  }
  uint64_t span() const { return next_; }
  uint64_t holes() const { return holes_; }

 private:
  random_source &r_;
  double hole_prob_, hole_mean_;
  uint64_t next_ = 0, holes_ = 0;
};

//------------------------------------------------------------- the pool

constexpr unsigned time_bits = 24;
constexpr uint64_t time_mask = (1ull << time_bits) - 1;
uint64_t pack(uint64_t data, uint64_t time) { return (data << time_bits) | time; }
uint64_t data_of(uint64_t v) { return v >> time_bits; }
uint32_t time_of(uint64_t v) { return static_cast<uint32_t>(v & time_mask); }

// One B-tree leaf's worth of mappings: the unit shared between devices.
constexpr uint64_t chunk_entries = pdata::btree_max_entries(8);
using chunk = std::array<uint64_t, chunk_entries>;

// Mappings [index, next run's index) map origin blocks origin, origin+1, ...
// Consecutive runs never abut in origin.
struct origin_run {
  uint64_t origin, index;
};

// An origin and every snapshot descending from it: they map the same origin
// blocks (writes after a snapshot replace mappings, never add them).
struct family {
  uint64_t size = 0;
  std::vector<origin_run> runs;
  std::vector<std::size_t> members;  // device indices, in dev_id order

  std::size_t run_of(uint64_t i) const {
    auto it = std::upper_bound(runs.begin(), runs.end(), i,
                               [](uint64_t v, const origin_run &r) { return v < r.index; });
    return static_cast<std::size_t>(it - runs.begin()) - 1;
  }
  uint64_t run_end(std::size_t r) const { return r + 1 < runs.size() ? runs[r + 1].index : size; }
  uint64_t nr_chunks() const { return (size + chunk_entries - 1) / chunk_entries; }
};

struct device {
  uint64_t dev_id = 0, trans_id = 0, creation_time = 0, snap_time = 0;
  std::size_t fam = 0;
  std::vector<std::shared_ptr<chunk>> chunks;

  uint64_t get(uint64_t i) const { return (*chunks[i / chunk_entries])[i % chunk_entries]; }
  // Copies a chunk another device still holds before changing it.
  void set(uint64_t i, uint64_t v) {
    auto &c = chunks[i / chunk_entries];
    if (c.use_count() > 1) c = std::make_shared<chunk>(*c);
    (*c)[i % chunk_entries] = v;
  }
};

struct pool {
  uint64_t time = 0, transaction = 0, nr_data_blocks = 0;
  std::vector<family> families;
  std::vector<device> devices;  // dev_id order
  // statistics
  uint64_t initial_extents = 0, broken_in_sources = 0, broken_in_snapshots = 0, allocated_span = 0, holes = 0;
  std::vector<std::pair<uint64_t, uint64_t>> snapshot_sources;  // (snapshot, source) dev_ids
};

struct extent {
  uint64_t origin, index, len;
};

// The extents of one origin device holding n mappings, in origin order.
std::vector<extent> layout_origin(random_source &r, uint64_t n, const options &o) {
  std::vector<extent> exts;
  uint64_t pos = r.geometric(16), mapped = 0;
  const double mean_ext = o.frag + (1.0 - o.frag) * o.run_len;
  const double mean_gap = mean_ext * (1.0 - o.fill) / o.fill;
  // 30% of extents abut the previous one; the others leave a gap >= 1.
  const double gap_mean_nonzero = std::max(1.0, mean_gap / 0.7);
  while (mapped < n) {
    uint64_t len = r.chance(o.frag) ? 1 : 2 + r.geometric(o.run_len - 2.0);
    len = std::min(len, n - mapped);
    if (!exts.empty() && mean_gap > 0 && !r.chance(0.3)) pos += 1 + r.geometric(gap_mean_nonzero - 1.0);
    exts.push_back({pos, mapped, len});
    pos += len;
    mapped += len;
  }
  return exts;
}

// Short writes over about `fraction` of d's mapped blocks at pool time `now`.
// Returns how many mappings broke sharing.
uint64_t overwrite(random_source &r, device &d, const family &f, double fraction, uint64_t write_len, uint64_t now,
                   data_allocator &a, std::vector<uint64_t> &need) {
  const uint64_t n = f.size;
  if (n == 0 || fraction <= 0) return 0;
  const uint64_t target = static_cast<uint64_t>(std::llround(fraction * static_cast<double>(n)));
  uint64_t done = 0, broken = 0;
  while (done < target) {
    uint64_t i = r.below(n), w = 1 + r.below(write_len);
    // A write covers blocks contiguous in the thin device only.
    uint64_t end = std::min(i + w, f.run_end(f.run_of(i)));
    need.clear();
    for (uint64_t j = i; j < end; j++)
      if (time_of(d.get(j)) < d.snap_time) need.push_back(j);
    done += end - i;
    if (need.empty()) continue;
    // The kernel allocates the blocks of one bio one after another.
    uint64_t b = a.alloc(need.size());
    for (std::size_t k = 0; k < need.size(); k++) d.set(need[k], pack(b + k, now));
    broken += need.size();
  }
  return broken;
}

pool simulate(const options &o) {
  random_source r(o.seed);
  data_allocator alloc(r, o.hole_prob, o.hole_mean);
  pool p;

  // 1. origins and their layouts
  std::vector<std::vector<extent>> layouts;
  for (uint64_t k = 0; k < o.devices; k++) {
    uint64_t n = o.mappings / o.devices + (k < o.mappings % o.devices ? 1 : 0);
    family f;
    f.size = n;
    f.members.push_back(p.devices.size());
    p.families.push_back(std::move(f));
    device d;
    d.dev_id = k + 1;
    d.trans_id = p.transaction++;
    d.fam = k;
    d.chunks.resize(p.families.back().nr_chunks());
    for (auto &c : d.chunks) c = std::make_shared<chunk>();
    p.devices.push_back(std::move(d));
    layouts.push_back(layout_origin(r, n, o));
  }

  // 2. the initial fill, all origins at once
  std::vector<std::pair<uint32_t, uint32_t>> order;  // (origin, extent)
  for (uint64_t k = 0; k < o.devices; k++) {
    if (layouts[k].size() > UINT32_MAX) throw std::runtime_error("too many extents in one device");
    for (std::size_t e = 0; e < layouts[k].size(); e++)
      order.emplace_back(static_cast<uint32_t>(k), static_cast<uint32_t>(e));
  }
  for (std::size_t i = order.size(); i > 1; i--) std::swap(order[i - 1], order[r.below(i)]);
  for (auto [k, e] : order) {
    const extent &x = layouts[k][e];
    uint64_t b = alloc.alloc(x.len);
    for (uint64_t j = 0; j < x.len; j++) p.devices[k].set(x.index + j, pack(b + j, 0));
  }
  p.initial_extents = order.size();
  order = {};
  for (uint64_t k = 0; k < o.devices; k++) {
    auto &runs = p.families[k].runs;
    for (const extent &x : layouts[k]) {
      if (!runs.empty() && runs.back().origin + (x.index - runs.back().index) == x.origin) continue;  // abuts
      runs.push_back({x.origin, x.index});
    }
    layouts[k] = {};
  }

  // 3. snapshots, each followed by writes to its source and to itself
  std::vector<std::size_t> snaps;
  std::vector<uint64_t> need;
  for (uint64_t s = 0; s < o.snapshots; s++) {
    std::size_t src = !snaps.empty() && r.chance(o.snap_of_snap) ? snaps[r.below(snaps.size())]
                                                                   : static_cast<std::size_t>(s % o.devices);
    p.time++;
    device snap;
    snap.dev_id = o.devices + s + 1;
    snap.trans_id = p.transaction++;
    snap.creation_time = snap.snap_time = p.time;
    snap.fam = p.devices[src].fam;
    snap.chunks = p.devices[src].chunks;
    p.devices[src].snap_time = p.time;
    p.snapshot_sources.emplace_back(snap.dev_id, p.devices[src].dev_id);
    std::size_t si = p.devices.size();
    p.families[snap.fam].members.push_back(si);
    p.devices.push_back(std::move(snap));
    snaps.push_back(si);
    const family &f = p.families[p.devices[si].fam];
    p.broken_in_sources += overwrite(r, p.devices[src], f, o.origin_churn, o.write_len, p.time, alloc, need);
    p.broken_in_snapshots += overwrite(r, p.devices[si], f, o.snap_diff, o.write_len, p.time, alloc, need);
  }

  p.allocated_span = alloc.span();
  p.holes = alloc.holes();
  p.nr_data_blocks =
      std::max(static_cast<uint64_t>(static_cast<double>(alloc.span()) / (1.0 - o.free_slack)) + 1, alloc.span());
  return p;
}

//------------------------------------------------------------- sharing

// Which members of a family hold the same chunk, chunk by chunk, and where
// runs of chunks held by the same set of members begin: the <def> runs.
struct family_sharing {
  std::size_t width = 0;          // members
  std::vector<uint32_t> leader;   // [c * width + k]: first member holding k's chunk c
  std::vector<uint32_t> holders;  // [c * width + k]: how many members hold it
  std::vector<uint8_t> cont;      // [c * width + k]: shared, by the same members as chunk c-1

  std::size_t at(uint64_t c, std::size_t k) const { return static_cast<std::size_t>(c) * width + k; }
  bool shared(uint64_t c, std::size_t k) const { return holders[at(c, k)] >= 2; }
  bool starts_def(uint64_t c, std::size_t k) const { return shared(c, k) && !cont[at(c, k)]; }
  // One past the last chunk of the def run starting at c0 for member k.
  uint64_t def_end(uint64_t c0, std::size_t k, uint64_t nr_chunks) const {
    uint64_t c = c0 + 1;
    while (c < nr_chunks && cont[at(c, k)]) c++;
    return c;
  }
};

family_sharing find_sharing(const pool &p, const family &f) {
  family_sharing s;
  const std::size_t w = f.members.size();
  const uint64_t nc = f.nr_chunks();
  s.width = w;
  s.leader.resize(nc * w);
  s.holders.resize(nc * w);
  s.cont.resize(nc * w);
  std::vector<std::pair<const chunk *, uint32_t>> by_chunk(w);
  std::vector<uint8_t> group_ok(w);
  for (uint64_t c = 0; c < nc; c++) {
    for (std::size_t k = 0; k < w; k++) by_chunk[k] = {p.devices[f.members[k]].chunks[c].get(), static_cast<uint32_t>(k)};
    std::sort(by_chunk.begin(), by_chunk.end());
    for (std::size_t i = 0; i < w;) {
      std::size_t j = i;
      while (j < w && by_chunk[j].first == by_chunk[i].first) j++;
      for (std::size_t m = i; m < j; m++) {
        s.leader[s.at(c, by_chunk[m].second)] = by_chunk[i].second;
        s.holders[s.at(c, by_chunk[m].second)] = static_cast<uint32_t>(j - i);
      }
      i = j;
    }
    if (c == 0) continue;
    // A group continues from chunk c-1 when it had the same size there and
    // all its members were together.
    for (std::size_t k = 0; k < w; k++) {
      uint32_t l = s.leader[s.at(c, k)];
      group_ok[k] = s.holders[s.at(c, k)] >= 2 && s.holders[s.at(c - 1, l)] == s.holders[s.at(c, k)];
    }
    for (std::size_t k = 0; k < w; k++) {
      uint32_t l = s.leader[s.at(c, k)];
      if (s.leader[s.at(c - 1, k)] != s.leader[s.at(c - 1, l)]) group_ok[l] = 0;
    }
    for (std::size_t k = 0; k < w; k++) s.cont[s.at(c, k)] = group_ok[s.leader[s.at(c, k)]];
  }
  return s;
}

//------------------------------------------------------------- output

// Mappings [from, to) of device d to the run builder.
void add_mappings(thin::mapping_run_builder &b, const device &d, const family &f, uint64_t from, uint64_t to) {
  if (from >= to) return;
  std::size_t r = f.run_of(from);
  uint64_t run_end = f.run_end(r);
  for (uint64_t i = from; i < to;) {
    const chunk &c = *d.chunks[i / chunk_entries];
    uint64_t stop = std::min(to, (i / chunk_entries + 1) * chunk_entries);
    for (; i < stop; i++) {
      if (i == run_end) run_end = f.run_end(++r);
      uint64_t v = c[i % chunk_entries];
      b.add(f.runs[r].origin + (i - f.runs[r].index), data_of(v), time_of(v));
    }
  }
}

std::string def_name(uint64_t dev_id, uint64_t c) { return fmt::format("dev{}_leaf{}", dev_id, c); }

struct emit_stats {
  uint64_t mappings = 0, defs = 0, refs = 0, def_mappings = 0;
};

emit_stats emit(const pool &p, const options &o, thin::emitter &e) {
  emit_stats st;
  thin::superblock_info sb;
  sb.time = p.time;
  sb.trans_id = p.transaction;
  sb.flags = 0;
  sb.version = 2;
  sb.data_block_size = o.data_block_size;
  sb.nr_data_blocks = p.nr_data_blocks;
  e.begin_superblock(sb);

  std::vector<family_sharing> sharing(p.families.size());
  if (o.shared_defs)
    for (std::size_t i = 0; i < p.families.size(); i++) sharing[i] = find_sharing(p, p.families[i]);

  thin::mapping_run_builder b(e);
  for (std::size_t di = 0; di < p.devices.size(); di++) {
    const device &d = p.devices[di];
    const family &f = p.families[d.fam];
    const uint64_t nc = f.nr_chunks();
    st.mappings += f.size;
    if (!o.shared_defs) {
      e.begin_device({d.dev_id, f.size, d.trans_id, d.creation_time, d.snap_time});
      add_mappings(b, d, f, 0, f.size);
      b.finish();
      e.end_device();
      continue;
    }
    const family_sharing &s = sharing[d.fam];
    const std::size_t k = static_cast<std::size_t>(
        std::find(f.members.begin(), f.members.end(), di) - f.members.begin());
    // The defs this device is the first to use come just before it.
    for (uint64_t c = 0; c < nc;) {
      if (!s.starts_def(c, k) || s.leader[s.at(c, k)] != k) {
        c++;
        continue;
      }
      uint64_t end = s.def_end(c, k, nc);
      e.begin_def(def_name(d.dev_id, c));
      add_mappings(b, d, f, c * chunk_entries, std::min(end * chunk_entries, f.size));
      b.finish();
      e.end_def();
      st.defs++;
      st.def_mappings += std::min(end * chunk_entries, f.size) - c * chunk_entries;
      c = end;
    }
    e.begin_device({d.dev_id, f.size, d.trans_id, d.creation_time, d.snap_time});
    for (uint64_t c = 0; c < nc;) {
      if (!s.shared(c, k)) {
        uint64_t end = c + 1;
        while (end < nc && !s.shared(end, k)) end++;
        add_mappings(b, d, f, c * chunk_entries, std::min(end * chunk_entries, f.size));
        c = end;
        continue;
      }
      b.finish();
      e.ref(def_name(p.devices[f.members[s.leader[s.at(c, k)]]].dev_id, c));
      st.refs++;
      c = s.def_end(c, k, nc);
    }
    b.finish();
    e.end_device();
  }
  e.end_superblock();
  return st;
}

void print_stats(const pool &p, const options &o, const emit_stats &st, double seconds) {
  std::string sources;
  for (auto &[snap, src] : p.snapshot_sources) sources += fmt::format("{}{}<-{}", sources.empty() ? "" : " ", snap, src);
  fmt::print(stderr,
             "origins: {}\nsnapshots: {}\nsnapshot sources: {}\norigin mappings: {}\ntotal mappings: {}\n"
             "initial extents: {}\nsharing broken in sources: {}\nsharing broken in snapshots: {}\n"
             "pool time: {}\ntransaction: {}\nnr_data_blocks: {}\nallocated span: {}\nallocator holes: {}\n"
             "defs: {}\nrefs: {}\ndef mappings: {}\nseconds: {:.2f}\n",
             o.devices, o.snapshots, sources, o.mappings, st.mappings, p.initial_extents, p.broken_in_sources,
             p.broken_in_snapshots, p.time, p.transaction, p.nr_data_blocks, p.allocated_span, p.holes, st.defs,
             st.refs, st.def_mappings, seconds);
}

void validate(const options &o) {
  auto bad = [](const std::string &m) { throw CLI::ValidationError(m); };
  if (o.devices < 1) bad("--devices must be at least 1");
  if (o.devices + o.snapshots > thin::max_dev_id) bad(fmt::format("--devices + --snapshots must be at most {}", thin::max_dev_id));
  if (o.snapshots > time_mask) bad("--snapshots must fit the 24-bit pool time");
  if (!(o.fill > 0 && o.fill <= 1)) bad("--fill must be in (0, 1]");
  if (!(o.free_slack >= 0 && o.free_slack < 1)) bad("--free-slack must be in [0, 1)");
  if (!(o.run_len >= 2)) bad("--run-len must be at least 2");
  if (o.write_len < 1) bad("--write-len must be at least 1");
  if (o.data_block_size < thin::min_data_block_size || o.data_block_size > thin::max_data_block_size ||
      o.data_block_size % thin::min_data_block_size)
    bad("--data-block-size must be a multiple of 128 between 128 and 2097152 sectors");
}

}  // namespace

int main(int argc, char **argv) {
  options o;
  CLI::App app{"thinkit_gen_xml: deterministic, realistic thin_dump XML (origins, snapshots, sharing)"};
  app.add_option("--seed", o.seed, "random seed")->capture_default_str();
  app.add_option("--devices", o.devices, "origin thin devices")->capture_default_str();
  app.add_option("--mappings", o.mappings, "mapped blocks across the origins")->capture_default_str();
  app.add_option("--snapshots", o.snapshots, "snapshots taken, one at a time")->capture_default_str();
  app.add_option("--snap-of-snap", o.snap_of_snap, "probability that a snapshot is of an earlier snapshot")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--frag", o.frag, "fraction of initial extents that are single blocks")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--run-len", o.run_len, "mean length of multi-block extents")->capture_default_str();
  app.add_option("--fill", o.fill, "fraction of each origin's virtual span that is mapped")->capture_default_str();
  app.add_option("--snap-diff", o.snap_diff, "fraction of a snapshot's blocks written after it is taken")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--origin-churn", o.origin_churn, "fraction of the source's blocks written after each snapshot")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--write-len", o.write_len, "most blocks a post-snapshot write covers")->capture_default_str();
  app.add_option("--hole-prob", o.hole_prob, "probability that an allocation first skips some free blocks")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--hole-mean", o.hole_mean, "mean length of those skips")
      ->check(CLI::Range(1.0, 1e12))
      ->capture_default_str();
  app.add_option("--free-slack", o.free_slack, "fraction of nr_data_blocks left unallocated")->capture_default_str();
  app.add_option("--data-block-size", o.data_block_size, "data block size in 512-byte sectors")
      ->capture_default_str();
  app.add_flag("--shared-defs", o.shared_defs,
               "write runs of leaves that devices share once, as <def>, and <ref> them (thin_restore 1.x dialect)");
  app.add_flag("--stats", o.stats, "print statistics to standard error");
  app.add_option("-o,--output", o.output, "output file ('-': standard output)")->capture_default_str();
  app.add_option("--metadata", o.metadata,
                 "write the pool's metadata to this file directly (thinkit's restore, no XML): for pools whose XML "
                 "would be tens of GB");
  app.add_option("--metadata-size", o.metadata_size,
                 "size of the --metadata file in bytes (default: the format's maximum, 15.9 GiB, sparse)");
  try {
    app.parse(argc, argv);
    validate(o);
  } catch (const CLI::ParseError &e) {
    return app.exit(e) == 0 ? 0 : 1;
  }

  try {
    auto t0 = std::chrono::steady_clock::now();
    pool p = simulate(o);
    if (!o.metadata.empty()) {
      const uint64_t bytes = o.metadata_size ? o.metadata_size : pdata::max_metadata_blocks * pdata::block_size;
      int mfd = ::open(o.metadata.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (mfd < 0) throw std::runtime_error(fmt::format("cannot open {}: {}", o.metadata, std::strerror(errno)));
      if (::ftruncate(mfd, static_cast<off_t>(bytes)) != 0)
        throw std::runtime_error(fmt::format("cannot size {}: {}", o.metadata, std::strerror(errno)));
      pdata::file_block_io io(mfd, bytes, true);  // owns mfd
      thin::restore_emitter e(io);
      emit_stats st;
      try {
        st = emit(p, o, e);
      } catch (...) {
        e.abandon();
        throw;
      }
      if (!e.committed()) throw std::runtime_error("the pool was not committed");
      if (o.stats) {
        print_stats(p, o, st, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        fmt::print(stderr, "metadata blocks used: {} of {}\n", e.stats().metadata_blocks_used,
                   e.stats().metadata_blocks_total);
      }
      return 0;
    }
    int fd = 1;
    if (o.output != "-") {
      fd = ::open(o.output.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0) throw std::runtime_error(fmt::format("cannot open {}: {}", o.output, std::strerror(errno)));
    }
    emit_stats st;
    {
      thin::fd_sink sink(fd);
      auto e = thin::make_xml_emitter(sink);
      st = emit(p, o, *e);
      sink.flush();
    }
    if (fd != 1 && ::close(fd) != 0)
      throw std::runtime_error(fmt::format("cannot write {}: {}", o.output, std::strerror(errno)));
    if (o.stats)
      print_stats(p, o, st, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  } catch (const thin::broken_pipe &) {
    return 1;
  } catch (const std::exception &e) {
    fmt::print(stderr, "thinkit_gen_xml: {}\n", e.what());
    return 1;
  }
  return 0;
}
