// thin_rmap: reverse map of data blocks to thin blocks (see rmap.h).
#include "thin/rmap/rmap.h"
#include "persistent-data/errors.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <functional>
#include <optional>
#include <stdexcept>
#include <unordered_set>

#include "persistent-data/block_cache.h"
#include "persistent-data/btree_walk.h"
#include "thin/format/superblock.h"
#include "thin/format/thin_trees.h"

namespace thin {

using namespace pdata;

namespace {

// A decimal number at `pos` (after optional leading white space, as a
// stream reads it); nothing when there is none or it overflows.
std::optional<uint64_t> take_number(const std::string &s, std::size_t &pos) {
  while (pos < s.size() && std::isspace(static_cast<unsigned char>(s[pos]))) pos++;
  if (pos < s.size() && s[pos] == '+') pos++;
  std::size_t start = pos;
  uint64_t v = 0;
  while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) {
    unsigned d = static_cast<unsigned>(s[pos] - '0');
    if (v > (UINT64_MAX - d) / 10) return std::nullopt;
    v = v * 10 + d;
    pos++;
  }
  if (pos == start) return std::nullopt;
  return v;
}

}  // namespace

data_region parse_data_region(const std::string &text) {
  std::size_t pos = 0;
  auto begin = take_number(text, pos);
  // Without a first number 0.9.0's stream reads no dots either.
  if (!begin || text.compare(pos, 2, "..") != 0) throw pdata::bad_input_error("badly formed region (no dots)");
  pos += 2;
  auto end = take_number(text, pos);
  if (!end) throw pdata::bad_input_error("badly formed region (couldn't parse numbers)");
  if (*end <= *begin) throw pdata::bad_input_error("badly formed region (end <= begin)");
  return {*begin, *end};
}

std::vector<rmap_run> reverse_map(block_io &io, const std::vector<data_region> &regions, progress *p) {
  superblock sb = read_superblock(io);
  progress &prog = or_null(p);
  block_cache cache(io);
  auto on_damage = [](const btree_damage &d) {
    throw metadata_error(fmt::format("mapping tree: block {}: {} (keys {})", d.block, d.what, to_string(d.keys)));
  };
  auto top = read_mapping_top_level(cache, sb.mapping_root, on_damage);

  auto wanted = [&](uint64_t b) {
    for (auto &r : regions)
      if (r.contains(b)) return true;
    return false;
  };

  // Runs grow while the next wanted mapping (in device, then thin block
  // order) continues both the data and the thin blocks of the current one.
  std::vector<rmap_run> runs;
  std::optional<rmap_run> cur;
  uint32_t dev = 0;
  auto visit = [&](uint64_t origin, uint64_t data) {
    if (!wanted(data)) return;
    if (cur && cur->dev == dev && data == cur->data_end &&
        origin == cur->thin_begin + (cur->data_end - cur->data_begin)) {
      cur->data_end++;
      return;
    }
    if (cur) runs.push_back(*cur);
    cur = rmap_run{data, data + 1, dev, origin};
  };

  // One walk over all devices that enters each node once, as 0.9.0's: a
  // node a later device shares with an earlier one (a snapshot's unchanged
  // blocks) is not entered again, so its mappings are reported for the
  // lowest device id only.
  class walker : public btree_visitor {
   public:
    walker(const std::function<void(uint64_t, uint64_t)> &fn, progress &p) : fn_(fn), progress_(p) {}
    bool visit_node(block_address b, const btree_node_view &, const key_range &, unsigned) override {
      if (!seen_.insert(b).second) return false;
      progress_.advance(1);
      return true;
    }
    void visit_leaf(block_address, const btree_node_view &n, const key_range &) override {
      for (uint32_t i = 0; i < n.nr_entries(); i++) fn_(n.key(i), unpack_block(n.value64(i)));
    }
    void damage(const btree_damage &d) override {
      throw metadata_error(fmt::format("mapping tree: block {}: {} (keys {})", d.block, d.what, to_string(d.keys)));
    }

   private:
    const std::function<void(uint64_t, uint64_t)> &fn_;
    progress &progress_;
    std::unordered_set<block_address> seen_;
  };
  const std::function<void(uint64_t, uint64_t)> fn = visit;
  walker w(fn, prog);
  prog.begin("mapping data blocks back", sb.metadata_sm_root().nr_allocated.get(), "metadata blocks");
  for (auto &[dev64, root] : top) {
    dev = static_cast<uint32_t>(dev64);
    walk_btree(cache, root, 8, w);
  }
  prog.end();
  if (cur) runs.push_back(*cur);
  // The same (unstable) sort on the same sequence as 0.9.0, so runs that
  // start at the same data block come out in the same order.
  std::sort(runs.begin(), runs.end(), [](const rmap_run &a, const rmap_run &b) { return a.data_begin < b.data_begin; });
  return runs;
}

void rmap_metadata(block_io &io, const std::vector<data_region> &regions, text_sink &out, progress *p) {
  auto runs = reverse_map(io, regions, p);
  std::string text;
  for (auto &r : runs) {
    fmt::format_to(std::back_inserter(text), "data {}..{} -> thin({}) {}..{}\n", r.data_begin, r.data_end, r.dev,
                   r.thin_begin, r.thin_begin + (r.data_end - r.data_begin));
    if (text.size() > (1u << 20)) {
      out.write(text.data(), text.size());
      text.clear();
    }
  }
  out.write(text.data(), text.size());
  out.flush();
}

}  // namespace thin
