// Tolerant walk and root finding (see repair.h).
#include "repair.h"

#include <algorithm>
#include <map>
#include <set>
#include <vector>

#include <fmt/format.h>

#include "persistent-data/block_cache.h"
#include "persistent-data/checksum.h"
#include "persistent-data/errors.h"
#include "superblock.h"
#include "thin_trees.h"

namespace thin {

using namespace pdata;

std::string repair_report::text() const {
  std::string s = fmt::format("recovered {} devices, {} mappings (transaction id {})\n", devices, mappings,
                              transaction_id);
  if (!superblock_ok) s += "superblock was unusable: its values were recovered or taken from the command line\n";
  if (roots_found_by_scan) s += "tree roots were found by scanning the metadata for B-tree nodes\n";
  if (dropped_mappings) s += fmt::format("dropped {} impossible mappings\n", dropped_mappings);
  for (auto &n : notes) s += n + "\n";
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
  return s + "]}\n";
}

namespace {

class leaf_collector : public btree_visitor {
 public:
  std::function<void(const btree_node_view &)> on_leaf;
  std::function<void(const btree_damage &)> on_damage;
  void visit_leaf(block_address, const btree_node_view &n, const key_range &) override { on_leaf(n); }
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

struct candidate_roots {
  block_address details = 0, mapping = 0;
};

// Scans every block for B-tree nodes and pairs a details tree with a mapping
// tree holding the same device ids; prefers the pair with the newest device
// transaction ids, then the most devices.
// `keep` holds roots known good (from a readable superblock): only pairs
// using them are considered.
std::optional<candidate_roots> find_roots(block_io &io, block_cache &cache, repair_report &report,
                                          candidate_roots keep) {
  const block_address n = io.nr_blocks();
  std::vector<bool> valid(n, false), referenced(n, false);
  std::vector<uint8_t> kind(n, 0);  // 1 internal, 2 leaf vsize 8, 3 leaf vsize 24
  std::vector<std::pair<block_address, std::vector<uint64_t>>> l0_like;
  const std::size_t chunk = 256;
  std::vector<unsigned char> buf(chunk * block_size);
  for (block_address start = 1; start < n; start += chunk) {
    std::size_t count = static_cast<std::size_t>(std::min<block_address>(chunk, n - start));
    try {
      io.read(start, buf.data(), count);
    } catch (const io_error &) {
      continue;
    }
    for (std::size_t i = 0; i < count; i++) {
      block_address b = start + i;
      const unsigned char *p = buf.data() + i * block_size;
      btree_node_view v(p);
      uint32_t vs = v.value_size();
      if (vs != 8 && vs != 24) continue;
      if (validate_btree_node(p, b, v.is_internal() ? 8 : vs)) continue;
      valid[b] = true;
      if (v.is_internal()) {
        kind[b] = 1;
        for (uint32_t k = 0; k < v.nr_entries(); k++)
          if (v.value64(k) < n) referenced[v.value64(k)] = true;
      } else if (vs == 24) {
        kind[b] = 3;
      } else {
        kind[b] = 2;
        bool l0 = v.nr_entries() > 0;
        std::vector<uint64_t> vals;
        for (uint32_t k = 0; k < v.nr_entries() && l0; k++) {
          l0 = v.key(k) <= max_dev_id && v.value64(k) < n && v.value64(k) != b;
          vals.push_back(v.value64(k));
        }
        if (l0) l0_like.emplace_back(b, std::move(vals));
      }
    }
  }
  // L0 leaves point at L1 roots, which are therefore not tree roots.
  std::set<block_address> l0_set;
  for (auto &[b, vals] : l0_like) {
    bool ok = std::all_of(vals.begin(), vals.end(), [&](uint64_t v) { return valid[v] && kind[v] != 3; });
    if (!ok) continue;
    l0_set.insert(b);
    for (uint64_t v : vals) referenced[v] = true;
  }
  auto leftmost_leaf = [&](block_address b) -> block_address {
    for (int d = 0; d < 32 && valid[b] && kind[b] == 1; d++) b = btree_node_view(cache.read(b)->raw()).value64(0);
    return b;
  };
  std::vector<block_address> details_roots, mapping_roots;
  for (block_address b = 1; b < n; b++) {
    if (!valid[b] || referenced[b]) continue;
    block_address leaf = leftmost_leaf(b);
    if (!valid[leaf]) continue;
    if (kind[leaf] == 3) details_roots.push_back(b);
    if (kind[leaf] == 2 && l0_set.count(leaf)) mapping_roots.push_back(b);
  }
  // Per tree: device id -> mapped_blocks (details) or mapping count
  // (mapping trees), and its age (the newest time it records).
  struct tree_summary {
    std::map<uint64_t, uint64_t> counts;
    uint32_t age = 0;
    uint64_t max_tid = 0;
    bool damaged = false;
  };
  auto summarise_details = [&](block_address root) {
    tree_summary t;
    leaf_collector c;
    c.on_leaf = [&](const btree_node_view &v) {
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
  };
  auto summarise_mappings = [&](block_address root) {
    tree_summary t;
    leaf_collector top;
    std::vector<std::pair<uint64_t, block_address>> devs;
    top.on_leaf = [&](const btree_node_view &v) {
      for (uint32_t k = 0; k < v.nr_entries(); k++) devs.emplace_back(v.key(k), v.value64(k));
    };
    top.on_damage = [&](const btree_damage &) { t.damaged = true; };
    walk_btree(cache, root, 8, top);
    for (auto &[dev, sub] : devs) {
      uint64_t count = 0;
      leaf_collector c;
      c.on_leaf = [&](const btree_node_view &v) {
        count += v.nr_entries();
        for (uint32_t k = 0; k < v.nr_entries(); k++) t.age = std::max(t.age, unpack_time(v.value64(k)));
      };
      c.on_damage = [&](const btree_damage &) { t.damaged = true; };
      walk_btree(cache, sub, 8, c);
      t.counts[dev] = count;
    }
    return t;
  };
  // Pairs must agree on the devices and on every device's mapping count;
  // the newest (age, then device transaction ids, then the most recently
  // allocated roots) wins.
  if (keep.details) details_roots.assign(1, keep.details);
  if (keep.mapping) mapping_roots.assign(1, keep.mapping);
  std::optional<candidate_roots> best;
  std::tuple<uint32_t, uint64_t, block_address> best_score{0, 0, 0};
  std::size_t ties = 0;
  std::vector<tree_summary> ms;
  for (block_address m : mapping_roots) ms.push_back(summarise_mappings(m));
  for (block_address d : details_roots) {
    tree_summary ds = summarise_details(d);
    if (ds.counts.empty()) continue;
    for (std::size_t i = 0; i < mapping_roots.size(); i++) {
      if (ms[i].counts != ds.counts) continue;
      std::tuple<uint32_t, uint64_t, block_address> score{std::max(ds.age, ms[i].age), ds.max_tid,
                                                          std::max(d, mapping_roots[i])};
      if (best && std::get<0>(score) == std::get<0>(best_score) && std::get<1>(score) == std::get<1>(best_score))
        ties++;
      if (!best || score > best_score) {
        if (best && (std::get<0>(score) != std::get<0>(best_score) || std::get<1>(score) != std::get<1>(best_score)))
          ties = 0;
        best = candidate_roots{d, mapping_roots[i]};
        best_score = score;
      }
    }
  }
  report.notes.push_back(fmt::format("scan found {} device-details and {} mapping tree candidates", details_roots.size(),
                                     mapping_roots.size()));
  if (ties)
    report.notes.push_back(fmt::format(
        "WARNING: {} other consistent pair(s) of trees are as new as the one chosen; an older state of the pool "
        "may have been recovered: compare its devices with the volume manager's",
        ties));
  return best;
}

}  // namespace

void repair_dump(block_io &io, const repair_options &opts, emitter &e, repair_report &report) {
  block_cache cache(io);
  std::optional<superblock> sb;
  try {
    sb = read_superblock(io, 0);
    report.superblock_ok = true;
  } catch (const std::exception &err) {
    report.notes.push_back(fmt::format("superblock unusable: {}", err.what()));
  }
  block_address details_root = sb ? sb->details_root : 0, mapping_root = sb ? sb->mapping_root : 0;
  const bool details_ok = sb && root_usable(cache, details_root, sizeof(device_details_disk));
  const bool mapping_ok = sb && root_usable(cache, mapping_root, 8);
  if (!details_ok || !mapping_ok) {
    candidate_roots keep;
    if (details_ok) keep.details = details_root;
    if (mapping_ok) keep.mapping = mapping_root;
    auto found = find_roots(io, cache, report, keep);
    if (!found && (keep.details || keep.mapping)) {
      report.notes.push_back("no tree matches the superblock's usable root; searching without it");
      found = find_roots(io, cache, report, candidate_roots{});
    }
    if (!found) throw metadata_error("no usable device-details and mapping trees were found: nothing to recover");
    details_root = found->details;
    mapping_root = found->mapping;
    report.roots_found_by_scan = true;
  }

  // Device details (tolerant).
  std::map<uint64_t, device_details> details;
  {
    leaf_collector c;
    c.on_leaf = [&](const btree_node_view &v) {
      for (uint32_t k = 0; k < v.nr_entries(); k++) details[v.key(k)] = decode_device_details(v.value_ptr(k));
    };
    c.on_damage = [&](const btree_damage &d) {
      report.lost.push_back({std::nullopt, d.keys, d.block, "device details: " + d.what});
    };
    walk_btree(cache, details_root, sizeof(device_details_disk), c);
  }
  // Top level of the mapping tree (tolerant).
  std::vector<std::pair<uint64_t, block_address>> devices;
  {
    leaf_collector c;
    c.on_leaf = [&](const btree_node_view &v) {
      for (uint32_t k = 0; k < v.nr_entries(); k++) devices.emplace_back(v.key(k), v.value64(k));
    };
    c.on_damage = [&](const btree_damage &d) {
      report.lost.push_back({std::nullopt, d.keys, d.block, "mapping tree top level: " + d.what});
    };
    walk_btree(cache, mapping_root, 8, c);
  }

  // Superblock values: the superblock's, overridden from the command line,
  // or recovered from the trees.
  uint32_t max_time = 0;
  uint64_t max_tid = 0, max_data = 0;
  bool any_data = false;
  if (!sb) {
    for (auto &[dev, d] : details) {
      max_time = std::max({max_time, d.creation_time, d.snapshotted_time});
      max_tid = std::max(max_tid, d.transaction_id);
    }
    for (auto &[dev, root] : devices) {
      leaf_collector c;
      c.on_leaf = [&](const btree_node_view &v) {
        for (uint32_t k = 0; k < v.nr_entries(); k++) {
          max_time = std::max(max_time, unpack_time(v.value64(k)));
          max_data = std::max(max_data, unpack_block(v.value64(k)));
          any_data = true;
        }
      };
      c.on_damage = [](const btree_damage &) {};
      walk_btree(cache, root, 8, c);
    }
  }
  superblock_info si;
  si.time = sb ? sb->time : max_time;
  si.trans_id = opts.overrides.transaction_id.value_or(sb ? sb->trans_id : max_tid);
  si.flags = sb ? sb->flags & ~needs_check_flag : 0;
  si.version = superblock_version;
  if (opts.overrides.data_block_size)
    si.data_block_size = *opts.overrides.data_block_size;
  else if (sb)
    si.data_block_size = sb->data_block_size;
  else
    throw metadata_error(
        "the superblock is unusable: give the data block size on the command line (--data-block-size)");
  if (opts.overrides.nr_data_blocks)
    si.nr_data_blocks = *opts.overrides.nr_data_blocks;
  else if (sb)
    si.nr_data_blocks = sb->data_sm_root().nr_blocks.get();
  else {
    si.nr_data_blocks = any_data ? max_data + 1 : 0;
    report.notes.push_back(fmt::format("nr_data_blocks guessed as {} (highest data block mapped + 1); give "
                                       "--nr-data-blocks for the real pool size",
                                       si.nr_data_blocks));
  }
  if (!sb && !opts.overrides.transaction_id)
    report.notes.push_back(fmt::format("transaction id guessed as {} (the newest device's); give --transaction-id "
                                       "to match the volume manager's",
                                       si.trans_id));
  report.transaction_id = si.trans_id;
  e.begin_superblock(si);

  for (auto &[dev, root] : devices) {
    auto it = details.find(dev);
    device_info di;
    di.dev_id = dev;
    if (it != details.end()) {
      di.mapped_blocks = it->second.mapped_blocks;
      di.trans_id = it->second.transaction_id;
      di.creation_time = it->second.creation_time;
      di.snap_time = it->second.snapshotted_time;
    } else {
      // Details lost: assume every mapping may be shared (safe: causes copies,
      // never in-place writes into shared blocks).
      di.snap_time = si.time;
      report.notes.push_back(fmt::format("device {}: details lost; recreated with snap_time {}", dev, si.time));
    }
    e.begin_device(di);
    mapping_run_builder runs(e);
    uint64_t count = 0;
    leaf_collector c;
    c.on_leaf = [&](const btree_node_view &v) {
      for (uint32_t k = 0; k < v.nr_entries(); k++) {
        uint64_t bt = v.value64(k);
        if (unpack_block(bt) >= si.nr_data_blocks) {
          report.dropped_mappings++;
          continue;
        }
        runs.add(v.key(k), unpack_block(bt), unpack_time(bt));
        count++;
      }
    };
    c.on_damage = [&](const btree_damage &d) {
      report.lost.push_back({dev, d.keys, d.block, d.what});
    };
    walk_btree(cache, root, 8, c);
    runs.finish();
    e.end_device();
    report.devices++;
    report.mappings += count;
  }
  for (auto &[dev, d] : details) {
    bool present = std::any_of(devices.begin(), devices.end(), [&](auto &p) { return p.first == dev; });
    if (!present) report.lost.push_back({dev, std::nullopt, mapping_root, "device has details but no mapping tree"});
  }
  e.end_superblock();
}

}  // namespace thin
