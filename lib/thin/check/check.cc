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
#include "thin/check/typed_faults.h"
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

damage make_damage(problem_id id, damage_kind kind, const problem_args &args, std::optional<uint64_t> block,
                   std::optional<uint64_t> dev_id, std::optional<key_range> keys) {
  const severity sev = info(id).sev;
  damage d{kind, sev == severity::fatal, block, dev_id, std::move(keys), render(id, args), sev == severity::hint};
  d.id = id;
  return d;
}

namespace {

// Everything the checker learns from walking the trees.
class tree_counter {
 public:
  tree_counter(block_cache &cache, block_address nr_meta, uint64_t nr_data, uint32_t sb_time,
               const std::function<void(damage)> &report)
      : cache_(cache), meta_(nr_meta), data_(nr_data), nr_data_(nr_data), sb_time_(sb_time), report_(report) {}

  ref_counts &meta() { return meta_; }
  // Told of each node read for the first time.
  void report_progress(pdata::progress &p) { progress_ = &p; }
  ref_counts &data() { return data_; }
  void count_meta(block_address b) {
    if (b < meta_.size()) meta_.inc(b);
  }

  std::map<uint64_t, device_details> details(block_address root) {
    std::map<uint64_t, device_details> out;
    counting_visitor v(*this, sizeof(device_details_disk), [&](const btree_damage &d) {
      report_(detail::btree_record(d, damage_kind::details_tree,
                                   fmt::format("device details tree: block {}: ", d.block), "devices"));
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
      report_(detail::btree_record(d, damage_kind::mapping_top_level,
                                   fmt::format("mapping tree top level: block {}: ", d.block), "mappings of devices"));
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
      report_(detail::btree_record(d, damage_kind::mapping_tree,
                                   fmt::format("thin device {}: mapping tree block {}: ", dev_id, d.block),
                                   "origin blocks", dev_id));
    });
    v.on_revisit = [&](block_address b) {
      auto it = memo_.find(b);
      if (it != memo_.end()) res.mappings += it->second;
      if (damaged_subtrees_.count(b)) {
        res.damaged = true;
        report_(make_damage(problem_id::MAPPING_SHARED_DAMAGED_SUBTREE, damage_kind::mapping_tree,
                            problem_args()("dev", dev_id)("block", b), b, dev_id));
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
        const key_range origin{n.key(i), n.key(i) + 1};
        if (!invariants::mapping_block_ok(db, nr_data_)) {
          report_(make_damage(problem_id::MAPPING_BEYOND_DATA_DEVICE, damage_kind::mapping_value,
                              problem_args()("dev", dev_id)("origin", n.key(i))("data_block", db)("data_blocks",
                                                                                                  nr_data_),
                              n.blocknr(), dev_id, origin));
        } else {
          data_.inc(db);
        }
        if (!invariants::mapping_time_ok(t, sb_time_))
          report_(make_damage(problem_id::MAPPING_TIME_IN_FUTURE, damage_kind::mapping_value,
                              problem_args()("dev", dev_id)("origin", n.key(i))("time", t)("sb_time", sb_time_),
                              n.blocknr(), dev_id, origin));
      }
      res.mappings += n.nr_entries();
    };
    frames_.clear();
    walk_btree(cache_, root, 8, v);
    return res;
  }

  // A data block mapped twice within one device (invariants.h). Only a block
  // referenced twice or more so far can be: when there is one, each device's
  // tree is walked again, skipping subtrees found to hold none of those.
  void find_twice_mapped(const std::vector<std::pair<uint64_t, block_address>> &tops, const char *snap) {
    if (!any_shared()) return;
    // The counts grew since an earlier group of trees (the metadata
    // snapshot's come after the live ones): what held no shared block then
    // may now.
    unshared_subtrees_.clear();
    for (auto &[dev, root] : tops) twice_mapped(dev, root, snap);
  }

 private:
  bool any_shared() const {
    for (uint64_t p = 0; p < data_.nr_pages(); p++) {
      if (!data_.page_present(p)) continue;  // all zero
      const uint64_t end = std::min<uint64_t>(nr_data_, (p + 1) * ref_counts::page_blocks);
      for (uint64_t b = p * ref_counts::page_blocks; b < end; b++)
        if (data_.get(b) >= 2) return true;
    }
    return false;
  }
  void twice_mapped(uint64_t dev_id, block_address root, const char *snap) {
    struct finder : btree_visitor {
      tree_counter &tc;
      uint64_t dev;
      const char *snap;
      std::unordered_map<uint64_t, uint64_t> first;  // data block -> virtual block
      std::vector<bool> holds;                        // per open node: holds a shared block
      finder(tree_counter &t, uint64_t d, const char *s) : tc(t), dev(d), snap(s) {}
      bool visit_node(block_address b, const btree_node_view &, const key_range &, unsigned) override {
        if (tc.unshared_subtrees_.count(b)) return false;
        holds.push_back(false);
        return true;
      }
      void visit_leaf(block_address b, const btree_node_view &n, const key_range &) override {
        for (uint32_t i = 0; i < n.nr_entries(); i++) {
          const uint64_t db = unpack_block(n.value64(i));
          if (!invariants::mapping_block_ok(db, tc.nr_data_) || tc.data_.get(db) < 2) continue;
          holds.back() = true;
          auto [it, fresh] = first.emplace(db, n.key(i));
          if (!fresh)
            tc.report_(make_damage(problem_id::DATA_BLOCK_MAPPED_TWICE, damage_kind::mapping_value,
                                   problem_args()("snap", snap)("dev", dev)("data_block", db)("first", it->second)(
                                       "second", n.key(i)),
                                   b, dev, key_range{n.key(i), n.key(i) + 1}));
        }
      }
      void leave_node(block_address b, const btree_node_view &) override {
        const bool h = holds.back();
        holds.pop_back();
        if (!h) tc.unshared_subtrees_.insert(b);
        else if (!holds.empty()) holds.back() = true;
      }
      void damage(const btree_damage &) override {}  // reported by the first walk
    } f(*this, dev_id, snap);
    walk_btree(cache_, root, 8, f);
  }

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
      tc_.progress_->advance(1);
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
  pdata::progress *progress_ = &pdata::or_null(nullptr);
  std::unordered_map<block_address, uint64_t> memo_;
  std::unordered_set<block_address> damaged_subtrees_;
  std::vector<frame> frames_;
  std::unordered_set<block_address> unshared_subtrees_;  // hold no such block
};

class sm_problems : public space_map_problem_visitor {
 public:
  explicit sm_problems(const std::function<void(damage)> &report) : report_(report) {}
  void problem(const space_map_problem &p) override { report_(detail::space_map_record(p)); }

 private:
  const std::function<void(damage)> &report_;
};

// Reports count differences, coalescing runs of consecutive blocks with the
// same (expected, actual) pair into one record.
void compare_counts(bool metadata, const ref_counts &actual, const ref_counts &expected, block_address nr_blocks,
                    const std::function<void(damage)> &report) {
  block_address run_start = 0, run_len = 0;
  uint32_t run_exp = 0, run_act = 0;
  auto flush = [&]() {
    if (!run_len) return;
    const bool leak = run_act > run_exp;
    const problem_id id = metadata ? (leak ? problem_id::METADATA_REFCOUNT_LEAK : problem_id::METADATA_REFCOUNT_UNDER)
                                   : (leak ? problem_id::DATA_REFCOUNT_LEAK : problem_id::DATA_REFCOUNT_UNDER);
    std::string blocks = run_len == 1 ? fmt::format("block {}", run_start)
                                      : fmt::format("blocks {}..{}", run_start, run_start + run_len - 1);
    report(make_damage(id, metadata ? damage_kind::metadata_ref_count : damage_kind::data_ref_count,
                       problem_args()("blocks", blocks)("expected", run_exp)("actual", run_act), std::nullopt,
                       std::nullopt, key_range{run_start, run_start + run_len}));
    run_len = 0;
  };
  auto present = [](const ref_counts &c, uint64_t p) { return p < c.nr_pages() && c.page_present(p); };
  for (block_address b = 0; b < nr_blocks; b++) {
    // A page of blocks neither side counts is all equal (zero): skip it.
    if (b % ref_counts::page_blocks == 0 && !present(actual, b / ref_counts::page_blocks) &&
        !present(expected, b / ref_counts::page_blocks)) {
      flush();
      b += ref_counts::page_blocks - 1;
      continue;
    }
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

struct expected_counts {
  ref_counts meta, data;
  bool valid = false;
};

using device_map = std::map<uint64_t, device_details>;
using top_list = std::vector<std::pair<uint64_t, block_address>>;

// The exact checker, one method per pass (e2fsck's shape): the superblock,
// the devices tree, the mapping tree (live, then the metadata snapshot's),
// the space maps and their counts. The fast path (fast_check.h) runs between
// the superblock and the trees and, when it proves the metadata clean, ends
// the check.
class checker {
 public:
  checker(block_io &io, const check_options &opts, check_reporter &r, expected_counts *out)
      : io_(io), opts_(opts), r_(r), out_(out), nr_meta_(io.nr_blocks()) {
    report_ = [this](damage d) {
      (d.fatal ? res_.fatal : d.hint ? res_.hints : res_.non_fatal) = true;
      r_.visit(d);
    };
  }

  check_result run() {
    r_.stage("examining superblock");
    if (!pass1_superblock() || opts_.superblock_only) return res_;
    // Progress: metadata blocks read, of those the metadata space map says
    // are in use. When the fast path gives up, the exact checker starts over.
    pdata::progress &p = pdata::or_null(opts_.progress);
    const uint64_t used = std::min<uint64_t>(live_.metadata_sm_root().nr_allocated.get(), nr_meta_);
    p.begin("checking metadata", used, "metadata blocks");
    if (fast_path()) {
      p.end();
      return res_;
    }
    p.begin("checking metadata", used, "metadata blocks");
    cache_.emplace(io_);
    tc_.emplace(*cache_, nr_meta_, nr_data_, sb_.time, report_);
    tc_->report_progress(p);
    tc_->count_meta(0);  // the superblock itself
    stage("examining devices tree");
    pass2_devices();
    stage(opts_.skip_mappings ? "examining top level of mapping tree" : "examining mapping tree");
    const bool go_on = pass3_mappings();
    if (go_on) {
      stage("checking space map counts");
      pass4_space_maps();
    }
    p.end();
    return res_;
  }

 private:
  void report(damage d) { report_(std::move(d)); }
  void stage(const char *name) {
    if (skip_stages_)
      skip_stages_--;
    else
      r_.stage(name);
  }

  // 1. The superblock (and, with -m, the metadata snapshot's copy): usable,
  // and fields the later passes size their memory by within bounds.
  bool pass1_superblock() {
    if (nr_meta_ == 0) {
      report(make_damage(problem_id::SB_TOO_SMALL, damage_kind::superblock, problem_args(), 0));
      return false;
    }
    block_buffer buf;
    io_.read(0, buf.raw(), 1);
    if (auto d = detail::superblock_record(buf.raw(), 0, "")) {
      report(std::move(*d));
      return false;
    }
    live_ = decode_superblock(buf.raw());
    sb_ = live_;
    if (opts_.use_metadata_snap && !read_snapshot_superblock()) return false;
    if (opts_.override_mapping_root) sb_.mapping_root = *opts_.override_mapping_root;
    check_superblock_fields();
    if (res_.fatal) return false;
    nr_data_ = live_.data_sm_root().nr_blocks.get();
    res_.superblock_ok = true;
    res_.needs_check = live_.needs_check();
    res_.transaction_id = sb_.trans_id;
    // thin_check 0.9.0 prints the metadata device's block count less one.
    r_.info(sb_.trans_id, nr_meta_ - 1);
    return true;
  }

  // -m: the superblock copy the trees are read from.
  bool read_snapshot_superblock() {
    if (!live_.held_root) {
      report(make_damage(problem_id::SB_NO_METADATA_SNAP, damage_kind::superblock, problem_args(), 0));
      return false;
    }
    if (live_.held_root >= nr_meta_) {
      report(make_damage(problem_id::SB_METADATA_SNAP_BEYOND_END, damage_kind::superblock,
                         problem_args()("block", live_.held_root), live_.held_root));
      return false;
    }
    block_buffer snap;
    io_.read(live_.held_root, snap.raw(), 1);
    if (auto d = detail::superblock_record(snap.raw(), live_.held_root, "metadata snapshot superblock: ")) {
      report(std::move(*d));
      return false;
    }
    sb_ = decode_superblock(snap.raw());
    return true;
  }

  void check_superblock_fields() {
    const uint64_t sm_meta_blocks = live_.metadata_sm_root().nr_blocks.get();
    if (sm_meta_blocks > nr_meta_)
      report(make_damage(problem_id::SB_METADATA_SM_TOO_BIG, damage_kind::superblock_field,
                         problem_args()("nr_blocks", sm_meta_blocks)("device_blocks", nr_meta_), 0));
    // Every data bitmap is a metadata block, so a data space map that needs
    // more bitmaps than the metadata device has blocks is garbage; its size
    // must not reach the counters (an absurd size overflows or exhausts memory).
    const uint64_t sm_data_blocks = live_.data_sm_root().nr_blocks.get();
    const uint64_t bitmaps = sm_data_blocks / entries_per_bitmap + (sm_data_blocks % entries_per_bitmap != 0);
    if (bitmaps > nr_meta_)
      report(make_damage(problem_id::SB_DATA_SM_TOO_BIG, damage_kind::superblock_field,
                         problem_args()("nr_blocks", sm_data_blocks)("bitmaps", bitmaps)("device_blocks", nr_meta_),
                         0));
    if (live_.compat_ro_flags)
      report(make_damage(problem_id::SB_COMPAT_RO_FLAGS, damage_kind::superblock_field,
                         problem_args()("flags", live_.compat_ro_flags), 0));
  }

  // Sound metadata is proved clean by the fast path; anything else is
  // examined by the passes below, which announce only the stages the fast
  // path did not.
  bool fast_path() {
    if (out_ || opts_.exact_only || opts_.use_metadata_snap || opts_.skip_mappings) return false;
    std::vector<damage> hints;
    if (!detail::fast_check(io_, live_, sb_, r_, skip_stages_, hints, opts_.progress)) return false;
    for (auto &h : hints) report(std::move(h));
    res_.fully_examined = true;
    return true;
  }

  // 2. The device details tree.
  void pass2_devices() { details_ = tc_->details(sb_.details_root); }

  // 3. The mapping tree: details against its top level, then each device's
  // mappings against its mapped_blocks; the same for the metadata snapshot's
  // trees. False when the check ends here.
  bool pass3_mappings() {
    auto top = tc_->top_level(sb_.mapping_root);
    match_devices(details_, top, "");
    if (opts_.skip_mappings) return false;
    walk_devices(details_, top, "");
    if (opts_.use_metadata_snap) {
      // Checking the snapshot alone: its copy and the live trees are counted
      // by a normal check; counts against the space maps would not add up.
      return false;
    }
    if (live_.held_root) snapshot_trees();
    return !res_.fatal;
  }

  // The metadata snapshot's trees (and its superblock copy) hold references
  // too, and must be as consistent as the live ones. Shared nodes were
  // counted already and are not walked again.
  void snapshot_trees() {
    const block_address held = live_.held_root;
    if (held >= nr_meta_) {
      report(make_damage(problem_id::SB_METADATA_SNAP_BEYOND_END, damage_kind::superblock_field,
                         problem_args()("block", held), 0));
      return;
    }
    tc_->count_meta(held);
    block_buffer snap;
    io_.read(held, snap.raw(), 1);
    if (auto d = detail::superblock_record(snap.raw(), held,
                                           fmt::format("metadata snapshot superblock at block {}: ", held))) {
      report(std::move(*d));
      return;
    }
    superblock ssb = decode_superblock(snap.raw());
    auto snap_details = tc_->details(ssb.details_root);
    auto snap_top = tc_->top_level(ssb.mapping_root);
    match_devices(snap_details, snap_top, "metadata snapshot: ");
    walk_devices(snap_details, snap_top, "metadata snapshot: ");
  }

  void match_devices(const device_map &dets, const top_list &tops, const char *snap) {
    std::map<uint64_t, block_address> top_map(tops.begin(), tops.end());
    for (auto &[dev, root] : top_map)
      if (!dets.count(dev))
        report(make_damage(problem_id::DEVICE_MAPPINGS_WITHOUT_DETAILS, damage_kind::device_missing,
                           problem_args()("snap", snap)("dev", dev), root, dev));
    for (auto &[dev, d] : dets)
      if (!top_map.count(dev))
        report(make_damage(problem_id::DEVICE_DETAILS_WITHOUT_MAPPINGS, damage_kind::device_missing,
                           problem_args()("snap", snap)("dev", dev), std::nullopt, dev));
  }

  void walk_devices(const device_map &dets, const top_list &tops, const char *snap) {
    for (auto &[dev, root] : tops) {
      auto dr = tc_->device(dev, root);
      auto it = dets.find(dev);
      if (!dr.damaged && it != dets.end() && it->second.mapped_blocks != dr.mappings)
        report(make_damage(problem_id::DEVICE_MAPPED_BLOCKS_MISMATCH, damage_kind::mapped_blocks,
                           problem_args()("snap", snap)("dev", dev)("mappings", dr.mappings)(
                               "mapped_blocks", it->second.mapped_blocks),
                           std::nullopt, dev));
    }
    tc_->find_twice_mapped(tops, snap);
  }

  // 4. The space maps: their own structure, then every count against the
  // references found, then the roots' nr_allocated.
  void pass4_space_maps() {
    sm_problems probs(report_);
    const disk_sm_root meta_root = live_.metadata_sm_root(), data_root = live_.data_sm_root();
    auto meta_sm = read_space_map(*cache_, meta_root, space_map_kind::metadata, probs);
    auto data_sm = read_space_map(*cache_, data_root, space_map_kind::data, probs);
    for (block_address b : meta_sm.own_blocks) tc_->count_meta(b);
    for (block_address b : data_sm.own_blocks) tc_->count_meta(b);
    if (!meta_sm.complete || !data_sm.complete) return;

    compare_counts(true, meta_sm.counts, tc_->meta(), nr_meta_, report_);
    compare_counts(false, data_sm.counts, tc_->data(), nr_data_, report_);
    // Fewer allocated than the root says only hides free space (a hint);
    // more is a leak the root's count did not follow (a rewrite fixes it).
    for (auto *sm : {&meta_sm, &data_sm}) {
      const block_address n = sm->counts.nr_allocated();
      if (n != sm->nr_allocated_root)
        report(detail::nr_allocated_record(sm == &meta_sm ? space_map_kind::metadata : space_map_kind::data,
                                           sm->nr_allocated_root, n));
    }
    res_.fully_examined = true;
    if (out_) {
      out_->meta = tc_->meta();
      out_->data = tc_->data();
      out_->valid = true;
    }
  }

  block_io &io_;
  const check_options &opts_;
  check_reporter &r_;
  expected_counts *out_;
  const block_address nr_meta_;
  uint64_t nr_data_ = 0;
  check_result res_;
  std::function<void(damage)> report_;
  superblock live_, sb_;
  unsigned skip_stages_ = 0;
  std::optional<block_cache> cache_;
  std::optional<tree_counter> tc_;
  device_map details_;
};

}  // namespace

check_result check_metadata(block_io &io, const check_options &opts, check_reporter &r) {
  return checker(io, opts, r, nullptr).run();
}

auto_repair_result auto_repair(block_io &io, check_reporter &r) {
  auto_repair_result res;
  expected_counts exp;
  const check_options opts{};
  check_result cr = checker(io, opts, r, &exp).run();
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
  for (block_address b = 0; b < dsm.nr_blocks(); b++) {
    // Bitmaps neither side counts anything in agree: skip them whole.
    const uint64_t page = b / ref_counts::page_blocks;
    if (b % ref_counts::page_blocks == 0 && !dsm.bitmap_nibbles(page) &&
        !(page < exp.data.nr_pages() && exp.data.page_present(page))) {
      b += ref_counts::page_blocks - 1;
      continue;
    }
    if (dsm.get(b) != exp.data.get(b)) {
      if (dsm.get(b) < exp.data.get(b)) {
        res.refused = fmt::format("data block {} is under-counted", b);
        return res;
      }
      dsm.set(b, exp.data.get(b));
      res.data_leaks_fixed++;
    }
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
