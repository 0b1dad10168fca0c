// The thin_repair damage corpus: every used metadata block of the kernel
// fixtures (the large `btree` one included) and of generated metadata is, in
// turn, zeroed, bit-flipped, or overwritten by a copy of another valid B-tree
// node restamped for its new place (a misdirected write); the superblock is
// also zeroed, and replaced by a stale (older, committed) copy. For each
// damaged image, in-process: repair_dump must succeed, its output (written by
// the restore emitter) must check clean, every mapping not living under the
// damaged node must survive unchanged, and every mapping that did not survive
// must lie in a range the loss report names (an empty report: nothing
// missing). A deterministic sample also goes through the built thin_repair
// and Debian 0.9.0's thin_check (skipped when not installed).
#include <fcntl.h>
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <iostream>
#include <sstream>
#include <fmt/format.h>
#include <filesystem>
#include <fstream>
#include <cstring>
#include <cstdlib>

#include "support/damage_support.h"
#include "support/metadata_support.h"
#include "engine/pool_metadata.h"
#include "thin/repair/repair.h"
#include "thin/restore/restore.h"
#include "thin/ir/xml_parser.h"
#include "persistent-data/btree_node.h"
#include "thin/dump/dump.h"

namespace {

using dmg::block_address;
using dmg::role;
using mapping_map = std::map<uint64_t, std::map<uint64_t, uint64_t>>;  // dev -> vblock -> block_time

// Collects what a dump says: the superblock and every mapping.
class collecting_emitter : public thin::emitter {
 public:
  thin::superblock_info sb;
  std::map<uint64_t, thin::device_info> devices;
  mapping_map maps;

  void begin_superblock(const thin::superblock_info &s) override { sb = s; }
  void end_superblock() override {}
  void begin_device(const thin::device_info &d) override {
    devices[d.dev_id] = d;
    dev_ = d.dev_id;
    maps[dev_];
  }
  void end_device() override {}
  void range_map(uint64_t o, uint64_t d, uint32_t t, uint64_t len) override {
    for (uint64_t i = 0; i < len; i++) maps[dev_][o + i] = thin::pack_block_time(d + i, t);
  }
  void single_map(uint64_t o, uint64_t d, uint32_t t) override { maps[dev_][o] = thin::pack_block_time(d, t); }

 private:
  uint64_t dev_ = 0;
};

collecting_emitter dump_of(pdata::block_io &io) {
  collecting_emitter c;
  thin::dump_metadata(io, {}, c);
  return c;
}

std::string xml_of(pdata::block_io &io) { return test::dump_xml(io); }

// A clean pool and what damage to each of its blocks may lose.
struct model {
  dmg::image img;
  dmg::layout L;
  std::string xml;  // the reference dump
  mapping_map maps;
  uint64_t nr_mappings = 0;
  // Mapping-tree nodes below the top level: (device, key range) for every
  // device whose tree holds the node (snapshots share nodes).
  std::map<block_address, std::vector<std::pair<uint64_t, pdata::key_range>>> owners;
  thin::superblock_overrides lvm;  // what lvm2 knows when the superblock is gone
};

void own_nodes(model &m, uint64_t dev, block_address b, pdata::key_range r, unsigned depth = 0) {
  ASSERT_LT(depth, 32u);
  m.owners[b].emplace_back(dev, r);
  pdata::btree_node_view n(m.img.block(b));
  if (n.is_leaf()) return;
  for (uint32_t i = 0; i < n.nr_entries(); i++)
    own_nodes(m, dev, n.value64(i),
              {n.key(i), i + 1 < n.nr_entries() ? std::optional<uint64_t>(n.key(i + 1)) : r.end}, depth + 1);
}

model make_model(dmg::image img, const std::string &reference_xml) {
  model m;
  m.img = std::move(img);
  m.L = dmg::analyse(m.img);
  pdata::memory_block_io io(m.img.bytes);
  m.xml = xml_of(io);
  EXPECT_EQ(m.xml, reference_xml) << m.img.name << ": the clean image does not dump as its reference XML";
  m.maps = dump_of(io).maps;
  for (auto &[d, mm] : m.maps) m.nr_mappings += mm.size();
  for (auto &[dev, root] : m.L.devices) own_nodes(m, dev, root, {});
  m.lvm.data_block_size = m.L.sb.data_block_size;
  m.lvm.nr_data_blocks = m.L.nr_data_blocks;
  m.lvm.transaction_id = m.L.sb.trans_id;
  return m;
}

model kernel_model(const std::string &scenario) {
  return make_model(dmg::load_fixture(scenario), test::read_file(test::fixture_file(scenario, "thin_dump.xml")));
}

// Generated metadata: thinkit_gen_xml -> restore emitter (in memory).
model generated_model(const std::vector<std::string> &args, block_address nr_blocks) {
  test::temp_dir t;
  test::generate_xml(args, t.file("gen.xml"));
  std::string xml = test::read_file(t.file("gen.xml"));
  pdata::memory_block_io io(nr_blocks);
  {
    thin::restore_emitter r(io);
    std::istringstream in(xml);
    thin::parse_xml(in, r);
  }
  return make_model(dmg::image{"generated", io.image()}, xml);
}

//------------------------------------------------------------------ variants

enum class kind { zeroed, flipped, misdirected };
const char *to_string(kind k) {
  switch (k) {
    case kind::zeroed: return "zeroed";
    case kind::flipped: return "bit-flipped";
    case kind::misdirected: return "misdirected write";
  }
  return "?";
}

struct variant {
  std::string name;
  kind k;
  block_address block;
  std::vector<unsigned char> contents;
};

// Another used node to copy over block b: the next node (in block order) with
// the same value size if there is one, else the next node of any kind.
std::optional<block_address> donor_for(const model &m, block_address b) {
  std::vector<block_address> nodes;
  for (auto &[blk, r] : m.L.roles)
    if (dmg::is_node(r) && blk != b) nodes.push_back(blk);
  if (nodes.empty()) return std::nullopt;
  auto vsize = [&](block_address x) { return pdata::btree_node_view(m.img.block(x)).value_size(); };
  auto after = std::upper_bound(nodes.begin(), nodes.end(), b);
  bool b_is_node = dmg::is_node(m.L.roles.at(b));
  for (std::size_t i = 0; i < nodes.size(); i++) {
    block_address c = nodes[(static_cast<std::size_t>(after - nodes.begin()) + i) % nodes.size()];
    if (!b_is_node || vsize(c) == vsize(b)) return c;
  }
  return nodes[static_cast<std::size_t>(after - nodes.begin()) % nodes.size()];
}

std::vector<variant> variants_of(const model &m, block_address b) {
  std::string label = dmg::block_label(m.img, m.L, b);
  std::vector<variant> v;
  v.push_back({label + ": zeroed", kind::zeroed, b, std::vector<unsigned char>(dmg::bsize, 0)});
  auto flipped = m.img.copy_block(b);
  std::size_t off = 40 + (b * 97) % 4000;  // past the header: keys, values or bitmap entries
  flipped[off] ^= static_cast<unsigned char>(1u << (b % 8));
  v.push_back({fmt::format("{}: bit flipped at byte {}", label, off), kind::flipped, b, std::move(flipped)});
  if (auto donor = donor_for(m, b)) {
    auto c = m.img.copy_block(*donor);
    dmg::put64(c, 8, b);
    pdata::stamp_checksum(c.data(), pdata::checksum_salt::btree_node);
    v.push_back({fmt::format("{}: overwritten by a copy of node {} ({})", label, *donor,
                             dmg::to_string(m.L.roles.at(*donor))),
                 kind::misdirected, b, std::move(c)});
  }
  return v;
}

//------------------------------------------------------------------ judging

struct lost_keys {
  std::vector<std::pair<uint64_t, pdata::key_range>> dev_ranges;  // mappings of a device in a range
  std::optional<pdata::key_range> devs;                           // every mapping of these devices
  bool everything = false;

  bool covers(uint64_t dev, uint64_t vb) const {
    if (everything || (devs && devs->contains(dev))) return true;
    for (auto &[d, r] : dev_ranges)
      if (d == dev && r.contains(vb)) return true;
    return false;
  }
};

// What damage to block b may lose: the mappings living under it.
lost_keys may_lose(const model &m, block_address b) {
  lost_keys l;
  auto it = m.owners.find(b);
  if (it != m.owners.end()) l.dev_ranges = it->second;
  role r = m.L.roles.at(b);
  if (r == role::top_internal || r == role::top_leaf) l.devs = m.L.ranges.at(b);
  return l;
}

bool report_covers(const thin::repair_report &rep, uint64_t dev, uint64_t vb) {
  for (auto &l : rep.lost) {
    if (l.dev ? *l.dev == dev && (!l.keys || l.keys->contains(vb)) : (!l.keys || l.keys->contains(dev))) return true;
  }
  return false;
}

std::string describe(const thin::repair_report &rep) {
  std::string s = rep.text();
  std::replace(s.begin(), s.end(), '\n', '|');
  return s;
}

// Compares a repaired pool with the original. `changed_ok`: mappings under
// the damage may come back with other values (a misdirected write that
// validates is indistinguishable from the real node).
std::optional<std::string> judge(const model &m, const lost_keys &may, bool changed_ok, const mapping_map &got,
                                 const thin::repair_report &rep, std::size_t &silent) {
  std::size_t missing = 0;
  for (auto &[dev, mm] : m.maps) {
    auto g = got.find(dev);
    for (auto &[vb, bt] : mm) {
      const uint64_t *have = nullptr;
      if (g != got.end()) {
        auto h = g->second.find(vb);
        if (h != g->second.end()) have = &h->second;
      }
      const bool under = may.covers(dev, vb);
      if (!have) {
        if (!under) return fmt::format("device {} block {} was lost though it is not under the damage", dev, vb);
        if (!report_covers(rep, dev, vb)) {
          // A misdirected copy that validates where it landed (keys in the
          // range its parent promises, as many mappings as the details
          // record) cannot be told from the real node: counted, not failed.
          if (changed_ok) {
            silent++;
            continue;
          }
          return fmt::format("device {} block {} was lost and the report does not say so: {}", dev, vb,
                             describe(rep));
        }
        missing++;
      } else if (*have != bt && !(under && changed_ok)) {
        return fmt::format("device {} block {}: data block {} time {}, was {} time {}", dev, vb,
                           thin::unpack_block(*have), thin::unpack_time(*have), thin::unpack_block(bt),
                           thin::unpack_time(bt));
      }
    }
  }
  for (auto &[dev, mm] : got) {
    auto o = m.maps.find(dev);
    for (auto &[vb, bt] : mm)
      if ((o == m.maps.end() || !o->second.count(vb)) && !(changed_ok && may.covers(dev, vb)))
        return fmt::format("device {} block {} is mapped after repair but was not before", dev, vb);
  }
  (void)missing;
  if (rep.lost.empty() && got != m.maps && !changed_ok)
    return "the report says nothing was lost, but the mappings differ: " + describe(rep);
  return std::nullopt;
}

//------------------------------------------------------------------ running

bool oracle_installed() { return test::debian_tools_installed({"thin_check"}); }

struct corpus_stats {
  std::map<std::string, std::size_t> variants;  // by kind
  std::size_t sampled = 0, oracle_checked = 0, lossless = 0;
  std::size_t undetectable = 0;  // misdirected copies that validate in place: losses not reported
  std::vector<std::string> failures;
};

// Writes an image to a sparse file.
void write_sparse(const std::string &path, const std::vector<unsigned char> &bytes) {
  dmg::image i{"x", bytes};
  test::temp_dir unused;
  std::filesystem::remove(path);
  {
    std::ofstream f(path, std::ios::binary);
  }
  std::filesystem::resize_file(path, bytes.size());
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  static const std::vector<unsigned char> zero(dmg::bsize, 0);
  for (block_address b = 0; b < i.nr_blocks(); b++)
    if (std::memcmp(i.block(b), zero.data(), dmg::bsize) != 0) {
      f.seekp(static_cast<std::streamoff>(b * dmg::bsize));
      f.write(reinterpret_cast<const char *>(i.block(b)), dmg::bsize);
    }
}

class corpus_runner {
 public:
  corpus_runner(const model &m, std::size_t sample_stride)
      : m_(m), in_(m.img.bytes), out_(m.img.nr_blocks()), stride_(sample_stride), file_(m.img, dir_) {}

  // Damages one block (or none), repairs, judges; puts the block back.
  void run(const std::string &name, const std::string &kind_name, block_address b,
           const std::vector<unsigned char> &contents, const lost_keys &may, bool changed_ok,
           const thin::repair_options &opts, const mapping_map *expected_override = nullptr) {
    s.variants[kind_name]++;
    in_.write(b, contents.data(), 1);
    auto fail = one(name, b, contents, may, changed_ok, opts, expected_override);
    if (fail) s.failures.push_back(name + ": " + *fail);
    in_.write(b, m_.img.block(b), 1);
  }

  corpus_stats s;

 private:
  std::optional<std::string> one(const std::string &name, block_address b, const std::vector<unsigned char> &contents,
                                 const lost_keys &may, bool changed_ok, const thin::repair_options &opts,
                                 const mapping_map *expected_override) {
    thin::repair_report rep;
    try {
      thin::restore_emitter r(out_);
      thin::repair_dump(in_, opts, r, rep);
    } catch (const std::exception &e) {
      return fmt::format("repair failed: {}", e.what());
    }
    auto o = dmg::run_check(out_);
    if (o.exception || !o.records.empty()) return "thin_check after thin_repair is not clean: " + o.describe();
    collecting_emitter got;
    try {
      thin::dump_metadata(out_, {}, got);
    } catch (const std::exception &e) {
      return fmt::format("the repaired metadata does not dump: {}", e.what());
    }
    std::optional<std::string> verdict;
    if (expected_override) {
      if (got.maps != *expected_override) verdict = "the repaired pool is not the expected state: " + describe(rep);
    } else {
      std::size_t silent = 0;
      verdict = judge(m_, may, changed_ok, got.maps, rep, silent);
      if (silent) s.undetectable++;
    }
    if (verdict) return verdict;
    if (got.maps == m_.maps) s.lossless++;
    // Every stride-th variant, and every superblock case.
    if (n_++ % stride_ == 0 || b == 0) return through_the_tools(name, b, contents, opts);
    return std::nullopt;
  }

  // The built thin_repair on the same damaged file gives the same pool, and
  // Debian's thin_check accepts it.
  std::optional<std::string> through_the_tools(const std::string &, block_address b,
                                               const std::vector<unsigned char> &contents,
                                               const thin::repair_options &opts) {
    s.sampled++;
    file_.put_block(b, contents.data());
    std::string out = dir_.file("repaired.img");
    write_sparse(out, std::vector<unsigned char>(dmg::bsize, 0));
    std::filesystem::resize_file(out, m_.img.bytes.size());
    std::vector<std::string> args = {"", "-i", file_.path(), "-o", out, "-q"};
    if (opts.overrides.data_block_size) {
      args.insert(args.end(), {"--data-block-size", std::to_string(*opts.overrides.data_block_size)});
      args.insert(args.end(), {"--nr-data-blocks", std::to_string(*opts.overrides.nr_data_blocks)});
      args.insert(args.end(), {"--transaction-id", std::to_string(*opts.overrides.transaction_id)});
    }
    auto r = test::run_tool("thin_repair", args, "", 120);
    file_.restore(b);
    if (r.exit_code != 0) return "the thin_repair binary failed: " + r.err;
    auto d = test::run_tool("thin_dump", {out});
    if (d.out != xml_of(out_)) return "the thin_repair binary's output differs from the in-process repair";
    if (oracle_installed()) {
      s.oracle_checked++;
      int rc = std::system((test::debian_tool("thin_check") + " -q " + out + " 2>/dev/null").c_str());
      if (rc != 0) return "Debian's thin_check rejects thin_repair's output";
    }
    return std::nullopt;
  }

  const model &m_;
  pdata::memory_block_io in_, out_;
  std::size_t stride_, n_ = 0;
  test::temp_dir dir_;
  dmg::scratch_image file_;
};

std::string list(const std::vector<std::string> &failures, std::size_t max = 20) {
  std::string out;
  for (std::size_t i = 0; i < failures.size() && i < max; i++) out += "\n  " + failures[i];
  if (failures.size() > max) out += fmt::format("\n  ... and {} more", failures.size() - max);
  return out;
}

// Every used block zeroed, flipped, misdirected; plus the superblock zeroed
// with lvm2's values given.
corpus_stats run_corpus(const model &m, std::size_t stride) {
  dmg::watchdog dog(std::chrono::seconds(60), std::chrono::seconds(600));
  corpus_runner run(m, stride);
  for (block_address b : m.L.used) {
    const lost_keys may = may_lose(m, b);
    thin::repair_options opts;
    if (b == 0) opts.overrides = m.lvm;  // the superblock is gone: lvm2's values
    for (auto &v : variants_of(m, b)) {
      dog.step(v.name);
      run.run(v.name, to_string(v.k), b, v.contents, may, v.k == kind::misdirected, opts);
    }
  }
  std::string counts;
  for (auto &[k, n] : run.s.variants) counts += fmt::format(" {} {},", k, n);
  std::cout << m.img.name << ": " << m.L.used.size() << " used blocks;" << counts << " " << run.s.lossless
            << " repaired with nothing lost; " << run.s.undetectable
            << " misdirected copies undetectable (valid in place, losses unreported); " << run.s.sampled
            << " through thin_repair, " << run.s.oracle_checked
            << " through Debian's thin_check\n";
  return run.s;
}

//------------------------------------------------------------------ kernel fixtures

class repair_damage : public ::testing::TestWithParam<std::string> {};

TEST_P(repair_damage, every_used_block_zeroed_flipped_or_misdirected_loses_only_what_lived_under_it) {
  model m = kernel_model(GetParam());
  auto s = run_corpus(m, 7);
  EXPECT_EQ(s.variants["zeroed"], m.L.used.size());
  EXPECT_TRUE(s.failures.empty()) << s.failures.size() << " failures:" << list(s.failures);
}

INSTANTIATE_TEST_SUITE_P(kernel, repair_damage,
                         ::testing::Values("basic", "snapshots", "discard-metasnap", "logwrites", "bigblock"),
                         test::scenario_name);

// 80 MiB, 301 devices, two-level details and mapping trees.
TEST(repair_damage_btree, every_used_block_zeroed_flipped_or_misdirected_loses_only_what_lived_under_it) {
  model m = kernel_model("btree");
  std::size_t internal = 0;
  for (block_address b : m.L.used) internal += dmg::is_internal(m.L.roles.at(b));
  EXPECT_GT(internal, 3u);
  auto s = run_corpus(m, 97);
  EXPECT_EQ(s.variants["zeroed"], m.L.used.size());
  EXPECT_TRUE(s.failures.empty()) << s.failures.size() << " failures:" << list(s.failures);
}

//------------------------------------------------------------------ generated metadata

// Origins and snapshots of snapshots with multi-level mapping trees.
TEST(repair_damage_generated, every_used_block_zeroed_flipped_or_misdirected_loses_only_what_lived_under_it) {
  model m = generated_model({"--seed", "11", "--devices", "3", "--mappings", "9000", "--snapshots", "4",
                             "--snap-of-snap", "0.5", "--snap-diff", "0.2"},
                            2048);
  auto s = run_corpus(m, 29);
  EXPECT_EQ(s.variants["zeroed"], m.L.used.size());
  EXPECT_TRUE(s.failures.empty()) << s.failures.size() << " failures:" << list(s.failures);
}


// A stale superblock: the pool commits again (overwrites in device 1, a
// device deleted, a snapshot taken) and the previous superblock is put back,
// as when a disk drops the last superblock write. The older committed state
// is still intact below it: repair recovers exactly that state. With the
// superblock zeroed instead, both states' trees are on disk and tie on
// times; the space maps pick the newest, recovered exactly.
TEST(repair_damage_generated, a_stale_superblock_gives_the_older_state_and_a_zeroed_one_the_newest) {
  model m = generated_model({"--seed", "5", "--devices", "2", "--mappings", "3000", "--snapshots", "2"}, 1024);
  pdata::memory_block_io io(m.img.bytes);
  std::vector<unsigned char> stale_sb(dmg::bsize);
  mapping_map stale_maps;
  {
    auto pool = thin::pool_metadata::open(io);
    pool->create_snap(100, 2);
    for (uint64_t vb = 1; vb < 100; vb += 5)
      if (auto d = pool->alloc_data_block()) pool->insert(100, vb, *d);
    pool->commit();
    io.read(0, stale_sb.data(), 1);
    stale_maps = dump_of(io).maps;
    // The last transaction keeps the time: its trees tie with the previous
    // ones on every time and transaction id.
    for (uint64_t vb = 0; vb < 600; vb += 3)
      if (auto d = pool->alloc_data_block()) pool->insert(1, vb, *d);
    pool->delete_device(pool->devices().back());
    pool->commit();
  }
  auto newest = dump_of(io);
  ASSERT_NE(newest.maps, stale_maps);
  ASSERT_EQ(dmg::run_check(io).records.size(), 0u);
  const auto new_sb = io.image();
  model latest = make_model(dmg::image{"generated, committed again", new_sb}, xml_of(io));
  corpus_runner run(latest, 1);
  thin::repair_options lvm;
  lvm.overrides = latest.lvm;
  // Zeroed: the newest state.
  run.run("superblock zeroed", "superblock zeroed", 0, std::vector<unsigned char>(dmg::bsize, 0), {}, false, lvm,
          &latest.maps);
  // Stale: the state the stale superblock describes.
  run.run("stale superblock", "stale superblock", 0, stale_sb, {}, false, {}, &stale_maps);
  EXPECT_TRUE(run.s.failures.empty()) << list(run.s.failures);
  EXPECT_EQ(run.s.sampled, 2u);
}

}  // namespace
