// thin_shrink's library side (see shrink.h): a collecting pass over the
// metadata events, the move plan, the data copy, and a second pass through a
// remapping emitter into the output.
#include "thin/shrink/shrink.h"

#include <algorithm>

#include <fmt/format.h>

#include "thin/dump/dump.h"
#include "thin/format/superblock.h"
#include "thin/ir/xml_parser.h"
#include "thin/restore/restore.h"

namespace thin {

namespace {

// Pass 1: the data blocks the mappings use, split at the new size.
class collector : public emitter {
 public:
  explicit collector(uint64_t nr_blocks) : nr_(nr_blocks) {}

  void begin_superblock(const superblock_info &sb) override {
    sb_ = sb;
    seen_ = true;
  }
  void end_superblock() override {}
  void begin_device(const device_info &) override {}
  void end_device() override {}
  void range_map(uint64_t, uint64_t data_begin, uint32_t, uint64_t len) override { add(data_begin, len); }
  void single_map(uint64_t, uint64_t data_block, uint32_t) override { add(data_block, 1); }
  // A <def>'s mappings arrive as maps; its <ref>s add nothing new.
  void begin_def(const std::string &) override {}
  void end_def() override {}
  void ref(const std::string &) override {}

  bool seen() const { return seen_; }
  const superblock_info &sb() const { return sb_; }
  const range_set &below() const { return below_; }
  const range_set &above() const { return above_; }

 private:
  void add(uint64_t begin, uint64_t len) {
    if (len == 0) return;
    if (begin >= sb_.nr_data_blocks || len > sb_.nr_data_blocks - begin)
      throw shrink_error(fmt::format("a mapping uses data blocks {}..{}, beyond the pool's {} data blocks", begin,
                                     begin + len - 1, sb_.nr_data_blocks));
    const uint64_t end = begin + len;
    if (begin < nr_) below_.insert(begin, std::min(end, nr_));
    if (end > nr_) above_.insert(std::max(begin, nr_), end);
  }

  uint64_t nr_;
  superblock_info sb_;
  bool seen_ = false;
  range_set below_, above_;
};

// Pass 2: every event through to `out`, with the data blocks moved.
class remapper : public emitter {
 public:
  remapper(emitter &out, uint64_t nr_blocks, const std::vector<block_move> &moves) : out_(out), nr_(nr_blocks) {
    for (auto &m : moves) moves_[m.begin] = m;
  }

  void begin_superblock(const superblock_info &sb) override {
    superblock_info s = sb;
    s.nr_data_blocks = nr_;
    out_.begin_superblock(s);
  }
  void end_superblock() override { out_.end_superblock(); }
  void begin_device(const device_info &dev) override { out_.begin_device(dev); }
  void end_device() override { out_.end_device(); }
  void begin_def(const std::string &name) override { out_.begin_def(name); }
  void end_def() override { out_.end_def(); }
  void ref(const std::string &name) override { out_.ref(name); }
  void single_map(uint64_t origin, uint64_t data, uint32_t time) override { range_map(origin, data, time, 1); }

  void range_map(uint64_t origin, uint64_t data, uint32_t time, uint64_t len) override {
    while (len) {
      // The move holding `data`, or the next one after it.
      auto it = moves_.upper_bound(data);
      uint64_t piece, to = data;
      if (it != moves_.begin() && std::prev(it)->second.end > data) {
        const block_move &m = std::prev(it)->second;
        piece = std::min(len, m.end - data);
        to = m.to + (data - m.begin);
      } else {
        piece = it == moves_.end() ? len : std::min(len, it->first - data);
      }
      if (piece == 1)
        out_.single_map(origin, to, time);
      else
        out_.range_map(origin, to, time, piece);
      origin += piece;
      data += piece;
      len -= piece;
    }
  }

 private:
  emitter &out_;
  uint64_t nr_;
  std::map<uint64_t, block_move> moves_;
};

const char *snapshot_held = "a metadata snapshot is held; release it first (dmsetup message <pool> 0 release_metadata_snap)";

void check_plan(const collector &c, const shrink_options &opts) {
  if (!c.seen()) throw shrink_error("the input holds no superblock");
  if (opts.nr_blocks == 0) throw shrink_error("the new size must be at least one data block");
  if (opts.nr_blocks > c.sb().nr_data_blocks)
    throw shrink_error(fmt::format("the new size ({} data blocks) is larger than the pool ({} data blocks)",
                                   opts.nr_blocks, c.sb().nr_data_blocks));
  // Copies may land in blocks only a metadata snapshot maps: it would read
  // garbage afterwards, so it has to go first.
  if (c.sb().metadata_snap && *c.sb().metadata_snap) throw shrink_error(snapshot_held);
}

// Step 2: the copies, then a flush, before any metadata points at them.
uint64_t copy_data(pdata::block_io &data, const std::vector<block_move> &moves, uint32_t data_block_size,
                   pdata::progress &prog) {
  if (moves.empty()) return 0;
  if (data_block_size == 0 || data_block_size % pdata::sectors_per_block)
    throw shrink_error(fmt::format("data block size {} sectors is not a multiple of {} (4 KiB)", data_block_size,
                                   pdata::sectors_per_block));
  const uint64_t k = data_block_size / pdata::sectors_per_block;  // 4 KiB blocks per data block
  uint64_t highest = 0;
  for (auto &m : moves) highest = std::max(highest, m.end);
  if (highest > data.nr_blocks() / k)
    throw shrink_error(fmt::format("the data device holds {} data blocks, but the metadata maps data block {}",
                                   data.nr_blocks() / k, highest - 1));
  const uint64_t per_batch = std::max<uint64_t>(1, 256 / k);
  std::vector<unsigned char> buf(per_batch * k * pdata::block_size);
  uint64_t moved = 0, total = 0;
  for (auto &m : moves) total += m.end - m.begin;
  prog.begin("moving data blocks", total, "data blocks");
  for (auto &m : moves)
    for (uint64_t b = m.begin; b < m.end; b += per_batch) {
      const uint64_t n = std::min(per_batch, m.end - b);
      data.read(b * k, buf.data(), n * k);
      data.write((m.to + (b - m.begin)) * k, buf.data(), n * k);
      moved += n;
      prog.advance(n);
    }
  data.flush();
  prog.end();
  return moved;
}

shrink_stats run_copy(const collector &c, const std::vector<block_move> &moves, pdata::block_io *data,
                      const shrink_options &opts) {
  shrink_stats st;
  st.old_nr_blocks = c.sb().nr_data_blocks;
  st.mapped_ranges_moved = moves.size();
  if (opts.copy_data) {
    if (!data) throw shrink_error("no data device given");
    st.data_blocks_moved = copy_data(*data, moves, c.sb().data_block_size, pdata::or_null(opts.progress));
  }
  return st;
}

}  // namespace

void range_set::insert(uint64_t begin, uint64_t end) {
  if (begin >= end) return;
  // Merge with a range that starts before and reaches `begin`.
  auto it = r_.upper_bound(begin);
  if (it != r_.begin() && std::prev(it)->second >= begin) {
    --it;
    begin = it->first;
    end = std::max(end, it->second);
    it = r_.erase(it);
  }
  // And with every range that starts inside (or right at the end of) the new one.
  while (it != r_.end() && it->first <= end) {
    end = std::max(end, it->second);
    it = r_.erase(it);
  }
  r_.emplace(begin, end);
}

std::vector<block_move> plan_moves(const range_set &above, const range_set &below, uint64_t nr_blocks) {
  // The gaps of `below` inside [0, nr_blocks), lowest first.
  std::vector<std::pair<uint64_t, uint64_t>> gaps;
  uint64_t cur = 0;
  for (auto [b, e] : below.ranges()) {
    if (b >= nr_blocks) break;
    if (cur < b) gaps.emplace_back(cur, b);
    cur = std::max(cur, e);
  }
  if (cur < nr_blocks) gaps.emplace_back(cur, nr_blocks);

  std::vector<block_move> moves;
  std::size_t g = 0;
  uint64_t needed = 0, free = 0;
  for (auto [b, e] : above.ranges()) needed += e - b;
  for (auto [b, e] : gaps) free += e - b;
  if (needed > free)
    throw shrink_error(fmt::format("the mapped data blocks do not fit: {} mapped blocks lie at or above the new size "
                                   "of {}, and only {} blocks below it are free",
                                   needed, nr_blocks, free));
  for (auto [first, e] : above.ranges()) {
    for (uint64_t b = first; b < e;) {
      auto &[gb, ge] = gaps[g];
      const uint64_t n = std::min(e - b, ge - gb);
      moves.push_back({b, b + n, gb});
      b += n;
      gb += n;
      if (gb == ge) g++;
    }
  }
  return moves;
}

shrink_stats shrink_metadata(pdata::block_io &in, pdata::block_io *data, pdata::block_io &out,
                             const shrink_options &opts) {
  // The dump does not say whether a snapshot is held (0.9.0's does not); the superblock does.
  if (read_superblock(in).held_root) throw shrink_error(snapshot_held);
  collector c(opts.nr_blocks);
  dump_metadata(in, {}, c);
  check_plan(c, opts);
  const auto moves = plan_moves(c.above(), c.below(), opts.nr_blocks);
  shrink_stats st = run_copy(c, moves, data, opts);

  restore_emitter r(out);
  remapper m(r, opts.nr_blocks, moves);
  try {
    dump_metadata(in, {}, m);
    if (!r.committed()) throw shrink_error("the output metadata was not committed");
  } catch (...) {
    try {
      r.abandon();
    } catch (...) {
    }
    throw;
  }
  return st;
}

shrink_stats shrink_xml(const std::function<std::unique_ptr<std::istream>()> &open_input, pdata::block_io *data,
                        text_sink &out, const shrink_options &opts) {
  collector c(opts.nr_blocks);
  parse_xml(*open_input(), c);
  check_plan(c, opts);
  const auto moves = plan_moves(c.above(), c.below(), opts.nr_blocks);
  shrink_stats st = run_copy(c, moves, data, opts);

  auto xml = make_xml_emitter(out);
  remapper m(*xml, opts.nr_blocks, moves);
  parse_xml(*open_input(), m);
  out.flush();
  return st;
}

}  // namespace thin
