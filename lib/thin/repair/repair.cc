// Tolerant walk, root finding, stitching (see repair.h).
//
// The healthy path is a plain streaming walk: superblock -> details tree ->
// top level -> each device's mappings -> emitter. Only when something is
// unusable does repair scan the whole metadata device (one sequential pass)
// for B-tree nodes and metadata space-map index blocks, and use them as
// evidence:
//
//  * a tree is live only if every one of its nodes is allocated in the live
//    metadata space map (the superblock's, or, without a superblock, some
//    index block found by scanning whose own blocks it also counts): stale
//    trees of earlier transactions, and pairs mixing two transactions, fail
//    this test;
//  * device-details and mapping trees pair when they hold the same devices
//    with the same mapped-block counts; among pairs, newer means: consistent
//    with a space map, then the newest time, then the space map written
//    last (its index block's position: the allocator moves upwards), then
//    the highest device transaction id (both drop when the newest device is
//    deleted), then the trees' positions. Intact earlier transactions that
//    tie on time are reported with a warning;
//  * a device the details tree names but the mapping tree's top level lost is
//    re-attached to a mapping subtree found by scanning (named for it by some
//    top-level leaf, else an orphan) whose mapping count equals the details'
//    mapped_blocks, allocated in the live space map; ambiguous devices stay
//    lost and are reported;
//  * a device whose details were lost gets them back from a scanned details
//    leaf (live, same mapped_blocks), else safe ones (every mapping shared).
#include "thin/repair/repair.h"

#include <algorithm>
#include <map>
#include <set>
#include <vector>

#include <fmt/format.h>

#include "persistent-data/block_cache.h"
#include "persistent-data/checksum.h"
#include "persistent-data/endian.h"
#include "persistent-data/errors.h"
#include "persistent-data/space_map_disk.h"
#include "thin/format/metadata_writer.h"
#include "thin/format/data_block_set.h"
#include "thin/format/superblock.h"
#include "thin/format/thin_trees.h"

namespace thin {

using namespace pdata;

std::string repair_report::text() const {
  std::string s = fmt::format("recovered {} devices, {} mappings (transaction id {})\n", devices, mappings,
                              transaction_id);
  if (!superblock_ok) s += "superblock was unusable: its values were recovered or taken from the command line\n";
  if (roots_found_by_scan) s += "tree roots were found by scanning the metadata for B-tree nodes\n";
  if (dropped_mappings) s += fmt::format("dropped {} impossible mappings\n", dropped_mappings);
  for (auto &n : notes) s += n + "\n";
  for (auto &g : guessed)
    s += fmt::format("guessed {} = {} (from {}){}\n", g.field, g.value, g.from,
                     g.option.empty() ? "" : fmt::format("; give {} for the real value", g.option));
  if (lost.empty()) {
    s += "nothing reachable was lost\n";
  } else {
    for (auto &l : lost) {
      std::string what = l.dev ? fmt::format("device {}: virtual blocks {}", *l.dev,
                                             l.keys ? to_string(*l.keys) : std::string("all"))
                               : fmt::format("devices {}", l.keys ? to_string(*l.keys) : std::string("all"));
      s += fmt::format("lost {} (block {}: {})\n", what, l.block, l.why);
    }
  }
  return s;
}

namespace {
std::string json_escape(const std::string &in) {
  std::string o;
  for (char c : in) {
    if (c == '"' || c == '\\') o += '\\', o += c;
    else if (static_cast<unsigned char>(c) < 0x20) o += fmt::format("\\u{:04x}", c);
    else o += c;
  }
  return o;
}
std::string json_range(const std::optional<key_range> &r) {
  if (!r) return "null";
  return fmt::format("{{\"begin\":{},\"end\":{}}}", r->begin, r->end ? std::to_string(*r->end) : "null");
}
}  // namespace

std::string repair_report::json() const {
  std::string s = fmt::format(
      "{{\"superblock_ok\":{},\"roots_found_by_scan\":{},\"transaction_id\":{},\"devices\":{},\"mappings\":{},"
      "\"dropped_mappings\":{},\"lost\":[",
      superblock_ok, roots_found_by_scan, transaction_id, devices, mappings, dropped_mappings);
  for (std::size_t i = 0; i < lost.size(); i++) {
    auto &l = lost[i];
    s += fmt::format("{}{{\"dev\":{},\"keys\":{},\"block\":{},\"why\":\"{}\"}}", i ? "," : "",
                     l.dev ? std::to_string(*l.dev) : "null", json_range(l.keys), l.block, json_escape(l.why));
  }
  s += "],\"notes\":[";
  for (std::size_t i = 0; i < notes.size(); i++) s += fmt::format("{}\"{}\"", i ? "," : "", json_escape(notes[i]));
  s += "],\"guessed\":[";
  for (std::size_t i = 0; i < guessed.size(); i++) {
    auto &g = guessed[i];
    s += fmt::format("{}{{\"field\":\"{}\",\"value\":{},\"from\":\"{}\",\"option\":{}}}", i ? "," : "",
                     json_escape(g.field), g.value, json_escape(g.from),
                     g.option.empty() ? std::string("null") : "\"" + json_escape(g.option) + "\"");
  }
  return s + "]}\n";
}

namespace {

class leaf_collector : public btree_visitor {
 public:
  std::function<void(const btree_node_view &, const key_range &)> on_leaf;
  std::function<void(const btree_damage &)> on_damage;
  std::vector<block_address> *nodes = nullptr;  // every node visited, when set
  bool visit_node(block_address b, const btree_node_view &, const key_range &, unsigned) override {
    if (nodes) nodes->push_back(b);
    return true;
  }
  void visit_leaf(block_address, const btree_node_view &n, const key_range &r) override { on_leaf(n, r); }
  void damage(const btree_damage &d) override { on_damage(d); }
};

// Whether a tree root is usable at all (the root node itself validates).
bool root_usable(block_cache &cache, block_address root, uint32_t vsize) {
  if (root == 0 || root >= cache.nr_blocks()) return false;
  try {
    return !validate_btree_node(cache.read(root)->raw(), root, vsize);
  } catch (const io_error &) {
    return false;
  }
}

// A metadata space map as found on disk: its bitmaps by number. Blocks whose
// bitmap is missing count as allocated (no evidence either way).
struct sm_view {
  block_address index = 0;
  std::vector<block_address> bitmaps;  // 0: unreadable
  bool allocated(block_cache &cache, block_address b) const {
    std::size_t i = static_cast<std::size_t>(b / entries_per_bitmap);
    if (i >= bitmaps.size() || !bitmaps[i]) return true;
    auto blk = cache.read(bitmaps[i]);
    return bitmap_get(blk->raw() + sizeof(bitmap_header_disk), static_cast<uint32_t>(b % entries_per_bitmap)) != 0;
  }
  bool all_allocated(block_cache &cache, const std::vector<block_address> &blocks) const {
    return std::all_of(blocks.begin(), blocks.end(), [&](block_address b) { return allocated(cache, b); });
  }
};

bool bitmap_valid(const unsigned char *p, block_address b) {
  return load_le64(p + 8) == b && checksum_ok(p, checksum_salt::bitmap);
}

std::optional<sm_view> load_sm(block_cache &cache, block_address index) {
  const block_address n = cache.nr_blocks();
  if (index == 0 || index >= n) return std::nullopt;
  try {
    auto blk = cache.read(index);
    if (load_le64(blk->raw() + 8) != index || !checksum_ok(blk->raw(), checksum_salt::index_block))
      return std::nullopt;
    auto *ix = reinterpret_cast<const metadata_index_disk *>(blk->raw());
    sm_view v;
    v.index = index;
    const uint64_t nr = std::min<uint64_t>((n + entries_per_bitmap - 1) / entries_per_bitmap, max_metadata_bitmaps);
    for (uint64_t i = 0; i < nr; i++) {
      block_address bm = ix->index[i].blocknr.get();
      bool ok = bm && bm < n && bitmap_valid(cache.read(bm)->raw(), bm);
      v.bitmaps.push_back(ok ? bm : 0);
    }
    if (v.bitmaps.empty() || !v.bitmaps[0]) return std::nullopt;
    return v;
  } catch (const io_error &) {
    return std::nullopt;
  }
}

// One sequential pass over the metadata device.
struct scan_result {
  block_address n = 0;
  std::vector<uint8_t> kind;  // 0 nothing, 1 internal node, 2 leaf (value size 8), 3 details leaf
  std::vector<bool> referenced;
  std::vector<std::pair<block_address, std::vector<std::pair<uint64_t, uint64_t>>>> l0;  // top-level leaves
  std::vector<bool> is_l0;
  std::vector<block_address> details_leaves, index_blocks;
};

scan_result scan_metadata(block_io &io, progress &prog) {
  scan_result s;
  const block_address n = s.n = io.nr_blocks();
  s.kind.assign(n, 0);
  s.referenced.assign(n, false);
  s.is_l0.assign(n, false);
  std::vector<std::pair<block_address, std::vector<std::pair<uint64_t, uint64_t>>>> l0_like;
  const std::size_t chunk = 256;
  std::vector<unsigned char> buf(chunk * block_size);
  prog.begin("scanning metadata", n, "metadata blocks");
  for (block_address start = 1; start < n; start += chunk) {
    std::size_t count = static_cast<std::size_t>(std::min<block_address>(chunk, n - start));
    prog.set(start);
    try {
      io.read(start, buf.data(), count);
    } catch (const io_error &) {
      continue;
    }
    for (std::size_t i = 0; i < count; i++) {
      block_address b = start + i;
      const unsigned char *p = buf.data() + i * block_size;
      if (load_le64(p + 8) != b) continue;
      if (checksum_ok(p, checksum_salt::index_block)) {
        s.index_blocks.push_back(b);
        continue;
      }
      btree_node_view v(p);
      uint32_t vs = v.value_size();
      if (vs != 8 && vs != 24) continue;
      if (validate_btree_node(p, b, v.is_internal() ? 8 : vs)) continue;
      if (v.is_internal()) {
        s.kind[b] = 1;
        for (uint32_t k = 0; k < v.nr_entries(); k++)
          if (v.value64(k) < n) s.referenced[v.value64(k)] = true;
      } else if (vs == 24) {
        s.kind[b] = 3;
        s.details_leaves.push_back(b);
      } else {
        s.kind[b] = 2;
        bool l0 = v.nr_entries() > 0;
        std::vector<std::pair<uint64_t, uint64_t>> vals;
        for (uint32_t k = 0; k < v.nr_entries() && l0; k++) {
          l0 = v.key(k) <= max_dev_id && v.value64(k) < n && v.value64(k) != b;
          vals.emplace_back(v.key(k), v.value64(k));
        }
        if (l0) l0_like.emplace_back(b, std::move(vals));
      }
    }
  }
  // Top-level leaves point at subtree roots (which are therefore not roots).
  for (auto &[b, vals] : l0_like) {
    bool ok = std::all_of(vals.begin(), vals.end(), [&](auto &kv) { return s.kind[kv.second] == 1 || s.kind[kv.second] == 2; });
    if (!ok) continue;
    s.is_l0[b] = true;
    for (auto &kv : vals) s.referenced[kv.second] = true;
    s.l0.emplace_back(b, std::move(vals));
  }
  return s;
}

// What a tree holds: device id -> mapped_blocks (details) or mapping count
// (mapping trees), its age (the newest time it records), its nodes.
struct tree_summary {
  std::map<uint64_t, uint64_t> counts;
  uint32_t age = 0;
  uint64_t max_tid = 0;
  bool damaged = false;
  std::vector<block_address> nodes;
};

tree_summary summarise_details(block_cache &cache, block_address root) {
  tree_summary t;
  leaf_collector c;
  c.nodes = &t.nodes;
  c.on_leaf = [&](const btree_node_view &v, const key_range &) {
    for (uint32_t k = 0; k < v.nr_entries(); k++) {
      auto d = decode_device_details(v.value_ptr(k));
      t.counts[v.key(k)] = d.mapped_blocks;
      t.age = std::max({t.age, d.creation_time, d.snapshotted_time});
      t.max_tid = std::max(t.max_tid, d.transaction_id);
    }
  };
  c.on_damage = [&](const btree_damage &) { t.damaged = true; };
  walk_btree(cache, root, sizeof(device_details_disk), c);
  return t;
}

// One device's mapping subtree.
struct subtree_summary {
  uint64_t count = 0;
  uint32_t age = 0;
  uint64_t max_data = 0;
  bool damaged = false;
  std::vector<block_address> nodes;
};

subtree_summary summarise_subtree(block_cache &cache, block_address root) {
  subtree_summary t;
  leaf_collector c;
  c.nodes = &t.nodes;
  c.on_leaf = [&](const btree_node_view &v, const key_range &) {
    t.count += v.nr_entries();
    for (uint32_t k = 0; k < v.nr_entries(); k++) {
      t.age = std::max(t.age, unpack_time(v.value64(k)));
      t.max_data = std::max(t.max_data, unpack_block(v.value64(k)));
    }
  };
  c.on_damage = [&](const btree_damage &) { t.damaged = true; };
  walk_btree(cache, root, 8, c);
  return t;
}

class repairer {
 public:
  repairer(block_io &io, const repair_options &opts, emitter &e, repair_report &report)
      : io_(io), cache_(io), opts_(opts), e_(e), report_(report) {}

  void run();

 private:
  scan_result &scan() {
    if (!scan_) {
      // A phase of its own before the mappings are recovered; silent when
      // a device's lost details send for it during that phase.
      progress &prog = or_null(writing_ ? nullptr : opts_.progress);
      scan_ = scan_metadata(io_, prog);
      prog.end();
    }
    return *scan_;
  }
  const subtree_summary &subtree(block_address root) {
    auto it = subtrees_.find(root);
    if (it == subtrees_.end()) it = subtrees_.emplace(root, summarise_subtree(cache_, root)).first;
    return it->second;
  }
  tree_summary summarise_mappings(block_address root);
  bool live(const std::vector<block_address> &nodes) { return !live_sm_ || live_sm_->all_allocated(cache_, nodes); }
  void read_superblock_and_roots();
  void read_details(std::map<uint64_t, device_details> &details, bool &details_lost);
  std::vector<std::pair<uint64_t, block_address>> read_top_level();
  superblock_info superblock_values(const std::map<uint64_t, device_details> &details,
                                    const std::vector<std::pair<uint64_t, block_address>> &devices);
  void write_device(uint64_t dev, block_address root, const std::map<uint64_t, device_details> &details,
                    bool details_lost, const superblock_info &si, data_block_set &mapped);
  void report_devices_without_trees(const std::map<uint64_t, device_details> &details,
                                    const std::vector<std::pair<uint64_t, block_address>> &devices);
  void choose_roots(bool details_ok, bool mapping_ok);
  void find_candidate_roots(bool details_ok, bool mapping_ok, std::vector<block_address> &details_roots,
                            std::vector<block_address> &mapping_roots);
  std::vector<sm_view> candidate_space_maps();
  block_address consistent_sm(const std::vector<sm_view> &sms, const std::vector<block_address> &nodes);
  bool choose_pair(bool details_ok, const std::vector<block_address> &details_roots,
                   const std::vector<block_address> &mapping_roots, const std::vector<tree_summary> &ds,
                   const std::vector<tree_summary> &ms, const std::vector<sm_view> &sms);
  void choose_sides(bool details_ok, bool mapping_ok, const std::vector<block_address> &details_roots,
                    const std::vector<block_address> &mapping_roots, const std::vector<tree_summary> &ds,
                    const std::vector<tree_summary> &ms, const std::vector<sm_view> &sms);
  void stitch(const std::map<uint64_t, device_details> &details, bool details_complete,
              std::vector<std::pair<uint64_t, block_address>> &devices);
  std::optional<device_details> recover_details(uint64_t dev, uint64_t count);

  block_io &io_;
  block_cache cache_;
  const repair_options &opts_;
  emitter &e_;
  repair_report &report_;
  std::optional<superblock> sb_;
  std::optional<scan_result> scan_;
  std::optional<sm_view> live_sm_;
  std::map<block_address, subtree_summary> subtrees_;
  block_address details_root_ = 0, mapping_root_ = 0;
  bool writing_ = false;  // the mappings are being recovered (and progress told of them)
};

tree_summary repairer::summarise_mappings(block_address root) {
  tree_summary t;
  leaf_collector top;
  top.nodes = &t.nodes;
  std::vector<std::pair<uint64_t, block_address>> devs;
  top.on_leaf = [&](const btree_node_view &v, const key_range &) {
    for (uint32_t k = 0; k < v.nr_entries(); k++) devs.emplace_back(v.key(k), v.value64(k));
  };
  top.on_damage = [&](const btree_damage &) { t.damaged = true; };
  walk_btree(cache_, root, 8, top);
  for (auto &[dev, sub] : devs) {
    const subtree_summary &s = subtree(sub);
    t.damaged = t.damaged || s.damaged;
    t.counts[dev] = s.count;
    t.age = std::max(t.age, s.age);
    t.nodes.insert(t.nodes.end(), s.nodes.begin(), s.nodes.end());
  }
  return t;
}

// Picks the device-details and mapping roots when the superblock's are not
// both usable. A root of 0 means "none": details are then recovered per
// device, mappings stitched per device.
void repairer::choose_roots(bool details_ok, bool mapping_ok) {
  report_.roots_found_by_scan = true;
  std::vector<block_address> details_roots, mapping_roots;
  find_candidate_roots(details_ok, mapping_ok, details_roots, mapping_roots);
  const std::vector<sm_view> sms = candidate_space_maps();
  std::vector<tree_summary> ds, ms;
  for (block_address d : details_roots) ds.push_back(summarise_details(cache_, d));
  for (block_address m : mapping_roots) ms.push_back(summarise_mappings(m));
  if (choose_pair(details_ok, details_roots, mapping_roots, ds, ms, sms)) return;
  choose_sides(details_ok, mapping_ok, details_roots, mapping_roots, ds, ms, sms);
}

// Unreferenced nodes found by the scan whose leftmost leaf is a details leaf
// or a top-level leaf of the mapping tree (the superblock's roots when usable).
void repairer::find_candidate_roots(bool details_ok, bool mapping_ok, std::vector<block_address> &details_roots,
                                    std::vector<block_address> &mapping_roots) {
  scan_result &s = scan();
  auto leftmost_leaf = [&](block_address b) {
    for (int d = 0; d < 32 && s.kind[b] == 1; d++) {
      block_address c = btree_node_view(cache_.read(b)->raw()).value64(0);
      if (c >= s.n) return block_address(0);
      b = c;
    }
    return b;
  };
  for (block_address b = 1; b < s.n; b++) {
    if (!s.kind[b] || s.referenced[b]) continue;
    block_address leaf = leftmost_leaf(b);
    if (s.kind[leaf] == 3) details_roots.push_back(b);
    if (s.kind[leaf] == 2 && s.is_l0[leaf]) mapping_roots.push_back(b);
  }
  if (details_ok) details_roots.assign(1, details_root_);
  if (mapping_ok) mapping_roots.assign(1, mapping_root_);
  report_.notes.push_back(fmt::format("scan found {} device-details and {} mapping tree candidates{}",
                                      details_roots.size(), mapping_roots.size(),
                                      live_sm_ ? "" : fmt::format(", {} space-map index blocks",
                                                                  s.index_blocks.size())));
}

// Space maps to test candidates against: the superblock's, else every index
// block found whose own blocks it counts.
std::vector<sm_view> repairer::candidate_space_maps() {
  scan_result &s = scan();
  std::vector<sm_view> sms;
  if (live_sm_) {
    sms.push_back(*live_sm_);
  } else {
    for (block_address ib : s.index_blocks)
      if (auto v = load_sm(cache_, ib)) {
        std::vector<block_address> own{ib};
        for (block_address bm : v->bitmaps)
          if (bm) own.push_back(bm);
        if (v->all_allocated(cache_, own)) sms.push_back(std::move(*v));
      }
  }
  return sms;
}

// The newest space map consistent with a set of nodes (its index block), or 0.
block_address repairer::consistent_sm(const std::vector<sm_view> &sms, const std::vector<block_address> &nodes) {
  block_address best = 0;
  for (auto &v : sms)
    if (v.index > best && v.all_allocated(cache_, nodes)) best = v.index;
  return best;
}

// The newest pair of details and mapping trees that agree (see the top of
// this file); false when none does.
bool repairer::choose_pair(bool details_ok, const std::vector<block_address> &details_roots,
                           const std::vector<block_address> &mapping_roots, const std::vector<tree_summary> &ds,
                           const std::vector<tree_summary> &ms, const std::vector<sm_view> &sms) {
  using score_t = std::tuple<bool, uint32_t, uint64_t, block_address, block_address>;
  std::optional<std::pair<std::size_t, std::size_t>> best;
  score_t best_score{};
  std::vector<score_t> scores;
  for (std::size_t i = 0; i < details_roots.size(); i++) {
    if (ds[i].counts.empty() && !details_ok) continue;
    for (std::size_t j = 0; j < mapping_roots.size(); j++) {
      if (ms[j].counts != ds[i].counts) continue;
      std::vector<block_address> nodes = ds[i].nodes;
      nodes.insert(nodes.end(), ms[j].nodes.begin(), ms[j].nodes.end());
      block_address sm = consistent_sm(sms, nodes);
      if (live_sm_ && !sm) continue;  // stale trees (or a mix of two transactions)
      score_t score{sm != 0, std::max(ds[i].age, ms[j].age), sm, ds[i].max_tid,
                    std::max(details_roots[i], mapping_roots[j])};
      scores.push_back(score);
      if (!best || score > best_score) {
        best = std::make_pair(i, j);
        best_score = score;
      }
    }
  }
  if (best) {
    details_root_ = details_roots[best->first];
    mapping_root_ = mapping_roots[best->second];
    if (!live_sm_) {
      // Earlier transactions whose trees and space map are all still intact
      // are consistent too; only times order them for sure.
      std::size_t ties = 0;
      for (auto &sc : scores)
        if (sc != best_score && std::get<0>(sc) && std::get<1>(sc) == std::get<1>(best_score)) ties++;
      if (!std::get<0>(best_score))
        report_.notes.push_back("WARNING: no space map found that counts the chosen trees' blocks");
      if (ties)
        report_.notes.push_back(fmt::format(
            "WARNING: {} other intact, consistent state(s) of the pool (earlier transactions) carry the same newest "
            "time as the one chosen; it was chosen as the one whose space map was written at the highest block "
            "(then by device transaction ids). If the metadata allocator wrapped around, an older state may have "
            "been recovered: compare its devices with the volume manager's",
            ties));
    }
    return true;
  }
  return false;
}

// No pair: keep whichever side is usable (or the best candidate of it); the
// other side is rebuilt per device.
void repairer::choose_sides(bool details_ok, bool mapping_ok, const std::vector<block_address> &details_roots,
                            const std::vector<block_address> &mapping_roots, const std::vector<tree_summary> &ds,
                            const std::vector<tree_summary> &ms, const std::vector<sm_view> &sms) {
  if (!details_ok) {
    details_root_ = 0;
    if (!mapping_ok) {
      // The newest live details tree, for stitching.
      std::optional<std::size_t> bd;
      std::tuple<bool, uint32_t, uint64_t, block_address> bs{};
      for (std::size_t i = 0; i < details_roots.size(); i++) {
        if (ds[i].counts.empty()) continue;
        block_address sm = consistent_sm(sms, ds[i].nodes);
        if (live_sm_ && !sm) continue;
        std::tuple<bool, uint32_t, uint64_t, block_address> sc{sm != 0, ds[i].age, ds[i].max_tid, details_roots[i]};
        if (!bd || sc > bs) bd = i, bs = sc;
      }
      if (bd) details_root_ = details_roots[*bd];
    }
  }
  if (!mapping_ok) {
    mapping_root_ = 0;
    if (!details_root_) {
      // Mapping trees only: the newest live one; details are rebuilt.
      std::optional<std::size_t> bm;
      std::tuple<bool, uint32_t, block_address> bs{};
      for (std::size_t j = 0; j < mapping_roots.size(); j++) {
        block_address sm = consistent_sm(sms, ms[j].nodes);
        if (live_sm_ && !sm) continue;
        std::tuple<bool, uint32_t, block_address> sc{sm != 0, ms[j].age, mapping_roots[j]};
        if (!bm || sc > bs) bm = j, bs = sc;
      }
      if (bm) mapping_root_ = mapping_roots[*bm];
    }
  }
  if (!details_root_ && !mapping_root_)
    throw metadata_error("no usable device-details and mapping trees were found: nothing to recover");
  report_.notes.push_back(fmt::format("no device-details and mapping trees agree; using {} and rebuilding the rest",
                                      details_root_ ? "the device-details tree" : "the mapping tree"));
}

// Devices the details tree names but the top level lost: attach a subtree
// found by scanning, if exactly one fits.
void repairer::stitch(const std::map<uint64_t, device_details> &details, bool details_complete,
                      std::vector<std::pair<uint64_t, block_address>> &devices) {
  std::set<uint64_t> have;
  for (auto &p : devices) have.insert(p.first);
  // Only devices whose top-level entry was lost with a damaged node: a
  // device the (intact) top level does not hold is the details' mistake.
  auto lost_at_top = [&](uint64_t dev) {
    return std::any_of(report_.lost.begin(), report_.lost.end(), [&](const lost_range &l) {
      return !l.dev && l.why.rfind("mapping tree top level", 0) == 0 && (!l.keys || l.keys->contains(dev));
    });
  };
  std::vector<uint64_t> missing;
  for (auto &[dev, d] : details)
    if (!have.count(dev) && lost_at_top(dev)) missing.push_back(dev);
  if (missing.empty()) return;
  scan_result &s = scan();
  auto fits = [&](uint64_t dev, block_address root) {
    const subtree_summary &t = subtree(root);
    return !t.damaged && t.count == details.at(dev).mapped_blocks && (!sb_ || t.age <= sb_->time) &&
           live(t.nodes);
  };
  // Orphans: unreferenced subtree roots (not top-level leaves).
  std::vector<block_address> orphans;
  for (block_address b = 1; b < s.n; b++)
    if ((s.kind[b] == 1 || s.kind[b] == 2) && !s.referenced[b] && !s.is_l0[b]) orphans.push_back(b);
  std::vector<std::pair<uint64_t, block_address>> attached;
  for (uint64_t dev : missing) {
    // Named for this device by a top-level leaf (the live one's first).
    std::set<block_address> named, named_live;
    for (auto &[leaf, vals] : s.l0)
      for (auto &[k, v] : vals)
        if (k == dev && fits(dev, v)) {
          named.insert(v);
          if (live({leaf})) named_live.insert(v);
        }
    std::set<block_address> cands = named_live.size() == 1 ? named_live : named;
    if (cands.empty())
      for (block_address o : orphans)
        if (s.kind[o] == 2 || s.kind[o] == 1)
          if (btree_node_view(cache_.read(o)->raw()).value_size() == 8 && fits(dev, o)) cands.insert(o);
    if (cands.size() == 1) {
      attached.emplace_back(dev, *cands.begin());
      report_.notes.push_back(
          fmt::format("device {}: mapping subtree at block {} found by scanning and re-attached", dev, *cands.begin()));
    } else {
      report_.lost.push_back({dev, std::nullopt, mapping_root_,
                              cands.empty() ? std::string("no mapping subtree found for the device")
                                            : fmt::format("{} mapping subtrees fit the device: ambiguous, none "
                                                          "attached",
                                                          cands.size())});
    }
  }
  // Top-level losses whose devices all came back are no longer losses; with
  // the details complete, the others are now reported per device. (With
  // details lost too, devices may be gone that nothing names: keep them.)
  std::set<uint64_t> back;
  for (auto &p : attached) back.insert(p.first);
  std::vector<lost_range> kept;
  for (auto &l : report_.lost) {
    if (details_complete && !l.dev && l.why.rfind("mapping tree top level", 0) == 0) {
      bool all_back = true;
      for (auto &[dev, d] : details)
        if ((!l.keys || l.keys->contains(dev)) && !have.count(dev) && !back.count(dev)) all_back = false;
      if (all_back) {
        report_.notes.push_back(fmt::format("mapping tree top-level node {} was unusable ({}); every device it held "
                                            "was re-attached",
                                            l.block, l.why));
        continue;
      }
      // The devices not re-attached are reported one by one.
      report_.notes.push_back(fmt::format("mapping tree top-level node {} was unusable: {}", l.block, l.why));
      continue;
    }
    kept.push_back(l);
  }
  report_.lost = std::move(kept);
  devices.insert(devices.end(), attached.begin(), attached.end());
  std::sort(devices.begin(), devices.end());
}

// Details for a device whose details were lost: from a scanned details leaf
// that is live and agrees on the mapping count.
std::optional<device_details> repairer::recover_details(uint64_t dev, uint64_t count) {
  scan_result &s = scan();
  std::optional<device_details> best;
  for (block_address leaf : s.details_leaves) {
    if (!live({leaf})) continue;
    btree_node_view v(cache_.read(leaf)->raw());
    for (uint32_t k = 0; k < v.nr_entries(); k++) {
      if (v.key(k) != dev) continue;
      auto d = decode_device_details(v.value_ptr(k));
      if (d.mapped_blocks != count) continue;
      if (!best || std::tie(d.snapshotted_time, d.transaction_id, d.creation_time) >
                       std::tie(best->snapshotted_time, best->transaction_id, best->creation_time))
        best = d;
    }
  }
  return best;
}

void repairer::run() {
  read_superblock_and_roots();
  std::map<uint64_t, device_details> details;
  bool details_lost = !details_root_;
  read_details(details, details_lost);
  std::vector<std::pair<uint64_t, block_address>> devices = read_top_level();
  stitch(details, !details_lost, devices);

  const superblock_info si = superblock_values(details, devices);
  e_.begin_superblock(si);
  progress &prog = or_null(opts_.progress);
  writing_ = true;
  uint64_t total = 0;
  for (auto &d : devices)
    if (auto it = details.find(d.first); it != details.end()) total += it->second.mapped_blocks;
  prog.begin("recovering mappings", total, "mappings");
  data_block_set mapped;  // of the device being written
  for (auto &[dev, root] : devices) write_device(dev, root, details, details_lost, si, mapped);
  report_devices_without_trees(details, devices);
  e_.end_superblock();
  prog.end();
}

// The superblock, and the tree roots (its own, else chosen by scanning).
void repairer::read_superblock_and_roots() {
  try {
    sb_ = read_superblock(io_, 0);
    report_.superblock_ok = true;
  } catch (const std::exception &err) {
    report_.notes.push_back(fmt::format("superblock unusable: {}", err.what()));
  }
  if (sb_) {
    details_root_ = sb_->details_root;
    mapping_root_ = sb_->mapping_root;
    live_sm_ = load_sm(cache_, sb_->metadata_sm_root().bitmap_root.get());
  }
  const bool details_ok = sb_ && root_usable(cache_, details_root_, sizeof(device_details_disk));
  const bool mapping_ok = sb_ && root_usable(cache_, mapping_root_, 8);
  if (!details_ok || !mapping_ok) choose_roots(details_ok, mapping_ok);
}

// Device details (tolerant): `details_lost` is set when some could not be read.
void repairer::read_details(std::map<uint64_t, device_details> &details, bool &details_lost) {
  if (details_root_) {
    leaf_collector c;
    c.on_leaf = [&](const btree_node_view &v, const key_range &) {
      for (uint32_t k = 0; k < v.nr_entries(); k++) details[v.key(k)] = decode_device_details(v.value_ptr(k));
    };
    c.on_damage = [&](const btree_damage &d) {
      details_lost = true;
      report_.notes.push_back(fmt::format("device details of devices {} lost (block {}: {})", to_string(d.keys),
                                          d.block, d.what));
    };
    walk_btree(cache_, details_root_, sizeof(device_details_disk), c);
  } else {
    report_.notes.push_back("device-details tree lost: details are recovered per device or rebuilt");
  }
}

// The top level of the mapping tree (tolerant): (dev_id, subtree root).
std::vector<std::pair<uint64_t, block_address>> repairer::read_top_level() {
  std::vector<std::pair<uint64_t, block_address>> devices;
  if (mapping_root_) {
    leaf_collector c;
    c.on_leaf = [&](const btree_node_view &v, const key_range &) {
      for (uint32_t k = 0; k < v.nr_entries(); k++) devices.emplace_back(v.key(k), v.value64(k));
    };
    c.on_damage = [&](const btree_damage &d) {
      report_.lost.push_back({std::nullopt, d.keys, d.block, "mapping tree top level: " + d.what});
    };
    walk_btree(cache_, mapping_root_, 8, c);
  } else {
    report_.lost.push_back({std::nullopt, std::nullopt, 0, "mapping tree top level: no usable root"});
  }
  return devices;
}

// Superblock values: the superblock's, overridden from the command line, or
// recovered from the trees (each guess reported).
superblock_info repairer::superblock_values(const std::map<uint64_t, device_details> &details,
                                            const std::vector<std::pair<uint64_t, block_address>> &devices) {
  uint32_t max_time = 0;
  uint64_t max_tid = 0, max_data = 0;
  bool any_data = false;
  if (!sb_) {
    for (auto &[dev, d] : details) {
      max_time = std::max({max_time, d.creation_time, d.snapshotted_time});
      max_tid = std::max(max_tid, d.transaction_id);
    }
    for (auto &[dev, root] : devices) {
      const subtree_summary &t = subtree(root);
      max_time = std::max(max_time, t.age);
      if (t.count) max_data = std::max(max_data, t.max_data), any_data = true;
    }
  }
  superblock_info si;
  si.time = sb_ ? sb_->time : max_time;
  si.trans_id = opts_.overrides.transaction_id.value_or(sb_ ? sb_->trans_id : max_tid);
  si.flags = sb_ ? sb_->flags & ~needs_check_flag : 0;
  si.version = superblock_version;
  if (opts_.overrides.data_block_size)
    si.data_block_size = *opts_.overrides.data_block_size;
  else if (sb_)
    si.data_block_size = sb_->data_block_size;
  else
    throw metadata_error(
        "the superblock is unusable: give the data block size on the command line (--data-block-size)");
  if (opts_.overrides.nr_data_blocks)
    si.nr_data_blocks = *opts_.overrides.nr_data_blocks;
  else if (sb_) {
    si.nr_data_blocks = sb_->data_sm_root().nr_blocks.get();
    // A damaged space-map root may claim more blocks than any metadata can
    // hold: guess instead of sizing the new space map from it.
    if (auto why = nr_data_blocks_problem(si.nr_data_blocks)) {
      for (auto &[dev, root] : devices) {
        const subtree_summary &t = subtree(root);
        if (t.count) max_data = std::max(max_data, t.max_data), any_data = true;
      }
      si.nr_data_blocks = any_data ? max_data + 1 : 0;
      report_.notes.push_back(fmt::format("the superblock's data space map size is impossible ({}); nr_data_blocks "
                                          "guessed as {} (highest data block mapped + 1); give --nr-data-blocks for "
                                          "the real pool size",
                                          *why, si.nr_data_blocks));
      report_.guessed.push_back({"nr_data_blocks", si.nr_data_blocks,
                                 "the highest data block mapped + 1, the superblock's size being impossible; the "
                                 "pool may be larger",
                                 "--nr-data-blocks"});
    }
  } else {
    si.nr_data_blocks = any_data ? max_data + 1 : 0;
    report_.guessed.push_back({"nr_data_blocks", si.nr_data_blocks,
                               "the highest data block mapped + 1; the pool may be larger", "--nr-data-blocks"});
  }
  if (!sb_ && !opts_.overrides.transaction_id)
    report_.guessed.push_back({"transaction_id", si.trans_id,
                               "the highest transaction id in the device details; the volume manager's is often "
                               "higher",
                               "--transaction-id"});
  if (!sb_) report_.guessed.push_back({"time", si.time, "the newest time in the device details and mappings", ""});
  report_.transaction_id = si.trans_id;

  return si;
}

// One device: its details (read, recovered or recreated) and its mappings,
// leaves holding impossible values and second mappings of a data block
// dropped and reported.
void repairer::write_device(uint64_t dev, block_address root, const std::map<uint64_t, device_details> &details,
                            bool details_lost, const superblock_info &si, data_block_set &mapped) {
  auto it = details.find(dev);
  std::optional<device_details> dd;
  if (it != details.end()) dd = it->second;
  else if (details_lost)
    if ((dd = recover_details(dev, subtree(root).count)))
      report_.notes.push_back(fmt::format("device {}: details recovered from a details leaf found by scanning", dev));
  device_info di;
  di.dev_id = dev;
  if (dd) {
    di.mapped_blocks = dd->mapped_blocks;
    di.trans_id = dd->transaction_id;
    di.creation_time = dd->creation_time;
    di.snap_time = dd->snapshotted_time;
  } else {
    // Details lost: assume every mapping may be shared (safe: causes copies,
    // never in-place writes into shared blocks).
    di.snap_time = si.time;
    report_.notes.push_back(fmt::format("device {}: details lost; recreated with snap_time {}", dev, si.time));
  }
  e_.begin_device(di);
  mapping_run_builder runs(e_);
  mapped.clear();
  uint64_t count = 0;
  bool damaged = false;
  leaf_collector c;
  c.on_leaf = [&](const btree_node_view &v, const key_range &r) {
    // A leaf holding an impossible mapping (a data block beyond the pool,
    // a time after the superblock's) is another node's contents: drop it.
    for (uint32_t k = 0; k < v.nr_entries(); k++) {
      uint64_t bt = v.value64(k);
      if (unpack_block(bt) >= si.nr_data_blocks || unpack_time(bt) > si.time) {
        report_.dropped_mappings += v.nr_entries();
        damaged = true;
        report_.lost.push_back({dev, r, 0, "a mapping leaf holds impossible mappings (data block beyond the "
                                           "pool or time after the superblock's): dropped whole"});
        return;
      }
    }
    for (uint32_t k = 0; k < v.nr_entries(); k++) {
      uint64_t bt = v.value64(k);
      // A data block the device maps already (invariants.h): the later
      // mapping is dropped, the earlier one kept.
      if (!mapped.insert(unpack_block(bt))) {
        report_.dropped_mappings++;
        report_.lost.push_back({dev, key_range{v.key(k), v.key(k) + 1}, 0,
                                fmt::format("data block {} is mapped twice in the device (also by a lower virtual "
                                            "block): this mapping was dropped",
                                            unpack_block(bt))});
        continue;
      }
      runs.add(v.key(k), unpack_block(bt), unpack_time(bt));
      count++;
    }
    or_null(opts_.progress).advance(v.nr_entries());
  };
  c.on_damage = [&](const btree_damage &d) {
    damaged = true;
    report_.lost.push_back({dev, d.keys, d.block, d.what});
  };
  walk_btree(cache_, root, 8, c);
  runs.finish();
  e_.end_device();
  if (dd && !damaged && count != dd->mapped_blocks)
    report_.lost.push_back({dev, std::nullopt, root,
                            fmt::format("the device's details record {} mapped blocks but its tree holds {}: some "
                                        "mappings may be lost or wrong",
                                        dd->mapped_blocks, count)});
  report_.devices++;
  report_.mappings += count;
}

void repairer::report_devices_without_trees(const std::map<uint64_t, device_details> &details,
                                            const std::vector<std::pair<uint64_t, block_address>> &devices) {
  for (auto &[dev, d] : details) {
    bool present = std::any_of(devices.begin(), devices.end(), [&, dev = dev](auto &p) { return p.first == dev; });
    bool reported = std::any_of(report_.lost.begin(), report_.lost.end(), [&, dev = dev](auto &l) { return l.dev == dev; });
    if (!present && !reported)
      report_.lost.push_back({dev, std::nullopt, mapping_root_, "device has details but no mapping tree"});
  }
}

}  // namespace

void repair_dump(block_io &io, const repair_options &opts, emitter &e, repair_report &report) {
  repairer(io, opts, e, report).run();
}

}  // namespace thin
