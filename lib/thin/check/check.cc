// thin_check: examine metadata, report damage as records (see check.h). This
// file holds the superblock pass, the exact checker (used when the fast path in
// fast_check.cc gives up, and by auto_repair), and auto_repair.
#include "thin/check/check.h"

#include <cstring>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "persistent-data/block_cache.h"
#include "persistent-data/errors.h"
#include "persistent-data/ref_counts.h"
#include "persistent-data/space_map_reader.h"
#include "thin/check/fast_check.h"
#include "thin/format/metadata_writer.h"
#include "thin/format/invariants.h"
#include "thin/format/superblock.h"
#include "thin/format/thin_trees.h"

namespace thin {

using namespace pdata;

const char *to_string(damage_kind k) {
  switch (k) {
    case damage_kind::superblock: return "superblock";
    case damage_kind::superblock_field: return "superblock_field";
    case damage_kind::details_tree: return "details_tree";
    case damage_kind::mapping_top_level: return "mapping_top_level";
    case damage_kind::mapping_tree: return "mapping_tree";
    case damage_kind::device_missing: return "device_missing";
    case damage_kind::mapped_blocks: return "mapped_blocks";
    case damage_kind::mapping_value: return "mapping_value";
    case damage_kind::metadata_space_map: return "metadata_space_map";
    case damage_kind::data_space_map: return "data_space_map";
    case damage_kind::metadata_ref_count: return "metadata_ref_count";
    case damage_kind::data_ref_count: return "data_ref_count";
  }
  return "unknown";
}

namespace {

// Everything the checker learns from walking the trees.
class tree_counter {
 public:
  tree_counter(block_cache &cache, block_address nr_meta, uint64_t nr_data, uint32_t sb_time,
               const std::function<void(damage)> &report)
      : cache_(cache), meta_(nr_meta), data_(nr_data), nr_data_(nr_data), sb_time_(sb_time), report_(report) {}

  ref_counts &meta() { return meta_; }
  ref_counts &data() { return data_; }
  void count_meta(block_address b) {
    if (b < meta_.size()) meta_.inc(b);
  }

  std::map<uint64_t, device_details> details(block_address root) {
    std::map<uint64_t, device_details> out;
    counting_visitor v(*this, sizeof(device_details_disk), [&](const btree_damage &d) {
      report_({damage_kind::details_tree, true, d.block, std::nullopt, d.keys,
               fmt::format("device details tree: block {}: {} (devices {} lost)", d.block, d.what,
                           to_string(d.keys))});
    });
    v.on_leaf = [&](const btree_node_view &n) {
      for (uint32_t i = 0; i < n.nr_entries(); i++) out[n.key(i)] = decode_device_details(n.value_ptr(i));
    };
    walk_btree(cache_, root, sizeof(device_details_disk), v);
    return out;
  }

  std::vector<std::pair<uint64_t, block_address>> top_level(block_address root) {
    std::vector<std::pair<uint64_t, block_address>> out;
    counting_visitor v(*this, 8, [&](const btree_damage &d) {
      report_({damage_kind::mapping_top_level, true, d.block, std::nullopt, d.keys,
               fmt::format("mapping tree top level: block {}: {} (mappings of devices {} lost)", d.block, d.what,
                           to_string(d.keys))});
    });
    v.on_leaf = [&](const btree_node_view &n) {
      for (uint32_t i = 0; i < n.nr_entries(); i++) out.emplace_back(n.key(i), n.value64(i));
    };
    walk_btree(cache_, root, 8, v);
    return out;
  }

  struct device_result {
    uint64_t mappings = 0;
    bool damaged = false;
  };

  // Walks one device's mapping subtree (counting the reference to its root).
  device_result device(uint64_t dev_id, block_address root) {
    device_result res;
    counting_visitor v(*this, 8, [&](const btree_damage &d) {
      res.damaged = true;
      for (auto &f : frames_) damaged_subtrees_.insert(f.block);
      report_({damage_kind::mapping_tree, true, d.block, dev_id, d.keys,
               fmt::format("thin device {}: mapping tree block {}: {} (origin blocks {} lost)", dev_id, d.block,
                           d.what, to_string(d.keys))});
    });
    v.on_revisit = [&](block_address b) {
      auto it = memo_.find(b);
      if (it != memo_.end()) res.mappings += it->second;
      if (damaged_subtrees_.count(b)) {
        res.damaged = true;
        report_({damage_kind::mapping_tree, true, b, dev_id, std::nullopt,
                 fmt::format("thin device {} shares the damaged mapping subtree at block {}", dev_id, b)});
      }
    };
    v.on_enter = [&](block_address b) { frames_.push_back({b, res.mappings}); };
    v.on_leave = [&](block_address b) {
      memo_[b] = res.mappings - frames_.back().start;
      frames_.pop_back();
    };
    v.on_leaf = [&](const btree_node_view &n) {
      for (uint32_t i = 0; i < n.nr_entries(); i++) {
        uint64_t bt = n.value64(i);
        uint64_t db = unpack_block(bt);
        uint32_t t = unpack_time(bt);
        if (!invariants::mapping_block_ok(db, nr_data_)) {
          report_({damage_kind::mapping_value, true, n.blocknr(), dev_id, key_range{n.key(i), n.key(i) + 1},
                   fmt::format("thin device {}: block {} maps to data block {}, beyond the end of the data device "
                               "({} blocks)",
                               dev_id, n.key(i), db, nr_data_)});
        } else {
          data_.inc(db);
        }
        if (!invariants::mapping_time_ok(t, sb_time_))
          report_({damage_kind::mapping_value, true, n.blocknr(), dev_id, key_range{n.key(i), n.key(i) + 1},
                   fmt::format("thin device {}: block {} has time {}, newer than the superblock's time {}", dev_id,
                               n.key(i), t, sb_time_)});
      }
      res.mappings += n.nr_entries();
    };
    frames_.clear();
    walk_btree(cache_, root, 8, v);
    return res;
  }

  // A data block mapped twice within one device (invariants.h). Only a block
  // referenced twice or more so far can be: each device's tree is walked
  // again, skipping subtrees found to hold none of those.
  bool any_shared() const {
    for (uint64_t b = 0; b < nr_data_; b++)
      if (data_.get(b) >= 2) return true;
    return false;
  }
  void twice_mapped(uint64_t dev_id, block_address root, const std::string &prefix) {
    struct finder : btree_visitor {
      tree_counter &tc;
      uint64_t dev;
      const std::string &prefix;
      std::unordered_map<uint64_t, uint64_t> first;  // data block -> virtual block
      std::vector<bool> holds;                        // per open node: holds a shared block
      finder(tree_counter &t, uint64_t d, const std::string &p) : tc(t), dev(d), prefix(p) {}
      bool visit_node(block_address b, const btree_node_view &, const key_range &, unsigned) override {
        if (tc.unshared_subtrees_.count(b)) return false;
        holds.push_back(false);
        return true;
      }
      void visit_leaf(block_address b, const btree_node_view &n, const key_range &) override {
        for (uint32_t i = 0; i < n.nr_entries(); i++) {
          const uint64_t db = unpack_block(n.value64(i));
          if (db >= tc.nr_data_ || tc.data_.get(db) < 2) continue;
          holds.back() = true;
          auto [it, fresh] = first.emplace(db, n.key(i));
          if (!fresh)
            tc.report_({damage_kind::mapping_value, true, b, dev, key_range{n.key(i), n.key(i) + 1},
                        fmt::format("{}thin device {}: data block {} is mapped twice, by virtual blocks {} and {}",
                                    prefix, dev, db, it->second, n.key(i))});
        }
      }
      void leave_node(block_address b, const btree_node_view &) override {
        const bool h = holds.back();
        holds.pop_back();
        if (!h) tc.unshared_subtrees_.insert(b);
        else if (!holds.empty()) holds.back() = true;
      }
      void damage(const btree_damage &) override {}  // reported by the first walk
    } f(*this, dev_id, prefix);
    walk_btree(cache_, root, 8, f);
  }

 private:
  // Counts every reference to a node; descends into each node once.
  class counting_visitor : public btree_visitor {
   public:
    counting_visitor(tree_counter &tc, uint32_t, std::function<void(const btree_damage &)> on_damage)
        : tc_(tc), on_damage_(std::move(on_damage)) {}
    std::function<void(const btree_node_view &)> on_leaf;
    std::function<void(block_address)> on_revisit, on_enter, on_leave;

    bool visit_node(block_address b, const btree_node_view &, const key_range &, unsigned) override {
      tc_.count_meta(b);
      if (!tc_.seen_.insert(b).second) {
        if (on_revisit) on_revisit(b);
        return false;
      }
      if (on_enter) on_enter(b);
      return true;
    }
    void visit_leaf(block_address, const btree_node_view &n, const key_range &) override {
      if (on_leaf) on_leaf(n);
    }
    void leave_node(block_address b, const btree_node_view &) override {
      if (on_leave) on_leave(b);
    }
    void damage(const btree_damage &d) override { on_damage_(d); }

   private:
    tree_counter &tc_;
    std::function<void(const btree_damage &)> on_damage_;
  };

  struct frame {
    block_address block;
    uint64_t start;
  };

  block_cache &cache_;
  ref_counts meta_, data_;
  uint64_t nr_data_;
  uint32_t sb_time_;
  const std::function<void(damage)> &report_;
  std::unordered_set<block_address> seen_;
  std::unordered_map<block_address, uint64_t> memo_;
  std::unordered_set<block_address> damaged_subtrees_;
  std::vector<frame> frames_;
  std::unordered_set<block_address> unshared_subtrees_;  // hold no such block
};

class sm_problems : public space_map_problem_visitor {
 public:
  sm_problems(damage_kind k, const std::function<void(damage)> &report) : k_(k), report_(report) {}
  void problem(const space_map_problem &p) override {
    damage d{k_, p.fatal, std::nullopt, std::nullopt, std::nullopt, p.what, p.hint};
    if (p.block) d.block = p.block;
    report_(d);
  }

 private:
  damage_kind k_;
  const std::function<void(damage)> &report_;
};

// Reports count differences, coalescing runs of consecutive blocks with the
// same (expected, actual) pair into one record.
void compare_counts(const char *what, damage_kind kind, const ref_counts &actual, const ref_counts &expected,
                    block_address nr_blocks, const std::function<void(damage)> &report) {
  block_address run_start = 0, run_len = 0;
  uint32_t run_exp = 0, run_act = 0;
  auto flush = [&]() {
    if (!run_len) return;
    bool leak = run_act > run_exp;
    std::string blocks = run_len == 1 ? fmt::format("block {}", run_start)
                                      : fmt::format("blocks {}..{}", run_start, run_start + run_len - 1);
    report({kind, !leak, std::nullopt, std::nullopt, key_range{run_start, run_start + run_len},
            fmt::format("{} reference counts differ for {}, expected {}, but got {}{}", what, blocks, run_exp,
                        run_act, leak ? " (leaked)" : "")});
    run_len = 0;
  };
  for (block_address b = 0; b < nr_blocks; b++) {
    uint32_t a = actual.get(b), e = expected.get(b);
    if (a == e) {
      flush();
      continue;
    }
    if (run_len && b == run_start + run_len && a == run_act && e == run_exp) {
      run_len++;
      continue;
    }
    flush();
    run_start = b;
    run_len = 1;
    run_exp = e;
    run_act = a;
  }
  flush();
}

}  // namespace

namespace {
struct expected_counts {
  ref_counts meta, data;
  bool valid = false;
};
check_result check_metadata_impl(block_io &io, const check_options &opts, check_reporter &r, expected_counts *out);
}  // namespace

check_result check_metadata(block_io &io, const check_options &opts, check_reporter &r) {
  return check_metadata_impl(io, opts, r, nullptr);
}

namespace {
check_result check_metadata_impl(block_io &io, const check_options &opts, check_reporter &r, expected_counts *out) {
  check_result res;
  std::function<void(damage)> report = [&](damage d) {
    (d.fatal ? res.fatal : d.hint ? res.hints : res.non_fatal) = true;
    r.visit(d);
  };
  auto sb_damage = [&](block_address b, std::string what) {
    report({damage_kind::superblock, true, b, std::nullopt, std::nullopt, std::move(what)});
  };

  // 1. Superblock.
  r.stage("examining superblock");
  const block_address nr_meta = io.nr_blocks();
  if (nr_meta == 0) {
    sb_damage(0, "metadata is smaller than one block");
    return res;
  }
  block_buffer buf;
  io.read(0, buf.raw(), 1);
  if (auto err = validate_superblock(buf.raw(), 0)) {
    sb_damage(0, *err);
    return res;
  }
  superblock live = decode_superblock(buf.raw());
  superblock sb = live;
  if (opts.use_metadata_snap) {
    if (!live.held_root) {
      sb_damage(0, "no metadata snapshot is held (held_root is 0)");
      return res;
    }
    if (live.held_root >= nr_meta) {
      sb_damage(live.held_root, fmt::format("metadata snapshot block {} is beyond the end of the metadata",
                                            live.held_root));
      return res;
    }
    block_buffer snap;
    io.read(live.held_root, snap.raw(), 1);
    if (auto err = validate_superblock(snap.raw(), live.held_root)) {
      sb_damage(live.held_root, fmt::format("metadata snapshot superblock: {}", *err));
      return res;
    }
    sb = decode_superblock(snap.raw());
  }
  if (opts.override_mapping_root) sb.mapping_root = *opts.override_mapping_root;

  const disk_sm_root meta_root = live.metadata_sm_root();
  const disk_sm_root data_root = live.data_sm_root();
  const uint64_t sm_meta_blocks = meta_root.nr_blocks.get();
  if (sm_meta_blocks > nr_meta) {
    report({damage_kind::superblock_field, true, 0, std::nullopt, std::nullopt,
            fmt::format("metadata space map covers {} blocks, but the metadata device has only {}", sm_meta_blocks,
                        nr_meta)});
  }
  // Every data bitmap is a metadata block, so a data space map that needs more
  // bitmaps than the metadata device has blocks is garbage; its size must not
  // reach the counters below (an absurd size overflows or exhausts memory).
  const uint64_t sm_data_blocks = data_root.nr_blocks.get();
  const uint64_t data_bitmaps = sm_data_blocks / entries_per_bitmap + (sm_data_blocks % entries_per_bitmap != 0);
  if (data_bitmaps > nr_meta) {
    report({damage_kind::superblock_field, true, 0, std::nullopt, std::nullopt,
            fmt::format("data space map covers {} blocks, needing {} bitmaps, more than the metadata device's {} "
                        "blocks",
                        sm_data_blocks, data_bitmaps, nr_meta)});
  }
  if (live.compat_ro_flags)
    report({damage_kind::superblock_field, true, 0, std::nullopt, std::nullopt,
            fmt::format("superblock has read-only-compatible feature flags {:#x} this tool does not know",
                        live.compat_ro_flags)});
  if (res.fatal) return res;
  res.superblock_ok = true;
  res.needs_check = live.needs_check();
  res.transaction_id = sb.trans_id;
  // thin_check 0.9.0 prints the metadata device's block count less one.
  r.info(sb.trans_id, nr_meta - 1);
  if (opts.superblock_only) return res;

  // Sound metadata is proved clean by the fast path (fast_check.h); anything
  // else is examined by the exact checker below, which announces only the
  // stages the fast path did not.
  unsigned skip_stages = 0;
  if (!out && !opts.exact_only && !opts.use_metadata_snap && !opts.skip_mappings) {
    std::vector<damage> hints;
    if (detail::fast_check(io, live, sb, r, skip_stages, hints)) {
      for (auto &h : hints) report(h);
      res.fully_examined = true;
      return res;
    }
  }
  auto stage = [&](const char *name) {
    if (skip_stages)
      skip_stages--;
    else
      r.stage(name);
  };

  block_cache cache(io);
  const uint64_t nr_data = data_root.nr_blocks.get();
  tree_counter tc(cache, nr_meta, nr_data, sb.time, report);
  tc.count_meta(0);  // the superblock itself

  // 2. Device details.
  stage("examining devices tree");
  auto details = tc.details(sb.details_root);

  // 3. Mapping tree.
  stage(opts.skip_mappings ? "examining top level of mapping tree" : "examining mapping tree");
  // Details against the top level of the mapping tree, then each device's
  // mappings against its mapped_blocks: for the trees being checked and, in a
  // normal check, for the metadata snapshot's (`prefix` names which).
  auto match_devices = [&](const std::map<uint64_t, device_details> &dets,
                           const std::vector<std::pair<uint64_t, block_address>> &tops, const std::string &prefix) {
    std::map<uint64_t, block_address> top_map(tops.begin(), tops.end());
    for (auto &[dev, root] : top_map)
      if (!dets.count(dev))
        report({damage_kind::device_missing, true, root, dev, std::nullopt,
                fmt::format("{}mappings present for device {}, but it isn't in the device details tree", prefix,
                            dev)});
    for (auto &[dev, d] : dets)
      if (!top_map.count(dev))
        report({damage_kind::device_missing, true, std::nullopt, dev, std::nullopt,
                fmt::format("{}device {} is in the device details tree, but has no mapping tree", prefix, dev)});
  };
  auto walk_devices = [&](const std::map<uint64_t, device_details> &dets,
                          const std::vector<std::pair<uint64_t, block_address>> &tops, const std::string &prefix) {
    for (auto &[dev, root] : tops) {
      auto dr = tc.device(dev, root);
      auto it = dets.find(dev);
      if (!dr.damaged && it != dets.end() && it->second.mapped_blocks != dr.mappings)
        report({damage_kind::mapped_blocks, true, std::nullopt, dev, std::nullopt,
                fmt::format("{}thin device {} has {} mappings, but its details say mapped_blocks={}", prefix, dev,
                            dr.mappings, it->second.mapped_blocks)});
    }
    if (tc.any_shared())
      for (auto &[dev, root] : tops) tc.twice_mapped(dev, root, prefix);
  };

  auto top = tc.top_level(sb.mapping_root);
  match_devices(details, top, "");
  if (opts.skip_mappings) return res;
  walk_devices(details, top, "");

  // The metadata snapshot's trees (and its superblock copy) hold references
  // too, and must be as consistent as the live ones. Shared nodes were
  // counted above and are not walked again.
  if (!opts.use_metadata_snap && live.held_root) {
    if (live.held_root >= nr_meta) {
      report({damage_kind::superblock_field, true, 0, std::nullopt, std::nullopt,
              fmt::format("metadata snapshot block {} is beyond the end of the metadata", live.held_root)});
    } else {
      tc.count_meta(live.held_root);
      block_buffer snap;
      io.read(live.held_root, snap.raw(), 1);
      if (auto err = validate_superblock(snap.raw(), live.held_root)) {
        report({damage_kind::superblock, true, live.held_root, std::nullopt, std::nullopt,
                fmt::format("metadata snapshot superblock at block {}: {}", live.held_root, *err)});
      } else {
        superblock ssb = decode_superblock(snap.raw());
        auto snap_details = tc.details(ssb.details_root);
        auto snap_top = tc.top_level(ssb.mapping_root);
        match_devices(snap_details, snap_top, "metadata snapshot: ");
        walk_devices(snap_details, snap_top, "metadata snapshot: ");
      }
    }
  } else if (opts.use_metadata_snap) {
    // Checking the snapshot alone: its copy and the live trees are counted by
    // a normal check; counts against the space maps would not add up here.
    res.fully_examined = false;
    return res;
  }
  if (res.fatal) return res;

  // 4. Space maps.
  stage("checking space map counts");
  sm_problems meta_probs(damage_kind::metadata_space_map, report);
  auto meta_sm = read_space_map(cache, meta_root, space_map_kind::metadata, meta_probs);
  sm_problems data_probs(damage_kind::data_space_map, report);
  auto data_sm = read_space_map(cache, data_root, space_map_kind::data, data_probs);
  for (block_address b : meta_sm.own_blocks) tc.count_meta(b);
  for (block_address b : data_sm.own_blocks) tc.count_meta(b);
  if (!meta_sm.complete || !data_sm.complete) return res;

  compare_counts("metadata", damage_kind::metadata_ref_count, meta_sm.counts, tc.meta(), nr_meta, report);
  compare_counts("data", damage_kind::data_ref_count, data_sm.counts, tc.data(), nr_data, report);

  auto check_allocated = [&](bool metadata, damage_kind k, const space_map_contents &sm) {
    block_address n = sm.counts.nr_allocated();
    // More allocated than the root says is damage; fewer only hides free
    // space (a hint).
    if (n > sm.nr_allocated_root)
      report({k, true, std::nullopt, std::nullopt, std::nullopt,
              detail::nr_allocated_text(metadata, sm.nr_allocated_root, n)});
    else if (n < sm.nr_allocated_root)
      report(detail::nr_allocated_hint(metadata, sm.nr_allocated_root, n));
  };
  check_allocated(true, damage_kind::metadata_space_map, meta_sm);
  check_allocated(false, damage_kind::data_space_map, data_sm);

  res.fully_examined = true;
  if (out) {
    out->meta = tc.meta();
    out->data = tc.data();
    out->valid = true;
  }
  return res;
}
}  // namespace

auto_repair_result auto_repair(block_io &io, check_reporter &r) {
  auto_repair_result res;
  expected_counts exp;
  check_result cr = check_metadata_impl(io, {}, r, &exp);
  if (!cr.superblock_ok || cr.fatal) {
    res.refused = "the metadata has damage that only thin_repair can handle (under-counts or tree damage)";
    return res;
  }
  if (!cr.fully_examined || !exp.valid) {
    res.refused = "the metadata has not been fully examined";
    return res;
  }
  if (cr.spotless() && !cr.needs_check) {
    res.repaired = true;
    return res;
  }
  auto md = metadata_writer::open(io);
  space_map &msm = md->metadata_sm(), &dsm = md->data_sm();
  for (block_address b = 0; b < msm.nr_blocks(); b++)
    if (msm.get(b) != exp.meta.get(b)) {
      if (msm.get(b) < exp.meta.get(b)) {
        res.refused = fmt::format("metadata block {} is under-counted", b);
        return res;
      }
      msm.set(b, exp.meta.get(b));
      res.metadata_leaks_fixed++;
    }
  for (block_address b = 0; b < dsm.nr_blocks(); b++)
    if (dsm.get(b) != exp.data.get(b)) {
      if (dsm.get(b) < exp.data.get(b)) {
        res.refused = fmt::format("data block {} is under-counted", b);
        return res;
      }
      dsm.set(b, exp.data.get(b));
      res.data_leaks_fixed++;
    }
  // Hints (nr_free, none_free_before, nr_allocated) are rewritten exactly.
  msm.mark_all_dirty();
  dsm.mark_all_dirty();
  md->sb().flags &= ~needs_check_flag;
  md->commit();
  res.repaired = true;
  return res;
}

bool clear_needs_check_flag(block_io &io) {
  block_buffer buf;
  io.read(0, buf.raw(), 1);
  if (auto err = validate_superblock(buf.raw(), 0)) throw metadata_error(*err);
  superblock sb = decode_superblock(buf.raw());
  if (!sb.needs_check()) return false;
  sb.flags &= ~needs_check_flag;
  encode_superblock(sb, buf.raw());
  io.write(0, buf.raw(), 1);
  io.flush();
  return true;
}

}  // namespace thin
