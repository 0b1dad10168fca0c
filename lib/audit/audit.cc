// thin_audit's library (see audit.h).
#include "audit/audit.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "thin/check/check.h"
#include "persistent-data/checksum.h"
#include "persistent-data/space_map_disk.h"
#include "persistent-data/block_cache.h"
#include "persistent-data/block_io.h"
#include "persistent-data/btree_node.h"
#include "persistent-data/btree_walk.h"
#include "persistent-data/errors.h"
#include "thin/format/superblock.h"
#include "thin/format/thin_trees.h"

namespace thin {

using pdata::block_address;
using pdata::log_entry;
using pdata::log_reader;

void validate_layout(const log_layout &layout, uint32_t sectorsize) {
  const uint64_t per = sectorsize / 512;
  if (layout.meta_sectors == 0) throw pdata::bad_input_error("the metadata region is empty (--meta-sectors 0)");
  if (layout.data_sectors == 0) throw pdata::bad_input_error("the data region is empty (--data-sectors 0)");
  if (layout.meta_sectors % pdata::sectors_per_block)
    throw pdata::bad_input_error(fmt::format("--meta-sectors {} is not a whole number of 4 KiB metadata blocks "
                                             "(a multiple of 8)",
                                             layout.meta_sectors));
  if (layout.meta_sectors % per || layout.data_sectors % per)
    throw pdata::bad_input_error(fmt::format("the region sizes ({} and {} sectors) are not whole {}-byte log sectors",
                                             layout.meta_sectors, layout.data_sectors, sectorsize));
  if (layout.meta_sectors > (uint64_t(1) << 52) || layout.data_sectors > (uint64_t(1) << 52))
    throw pdata::bad_input_error("region sizes that large are not supported");
}

const char *to_string(log_region r) {
  switch (r) {
    case log_region::none: return "-";
    case log_region::meta: return "meta";
    case log_region::data: return "data";
    case log_region::beyond: return "beyond";
  }
  return "?";
}

const char *to_string(violation_kind k) { return k == violation_kind::unflushed ? "unflushed" : "unwritten"; }

const char *to_string(log_kind k) {
  switch (k) {
    case log_kind::write: return "write";
    case log_kind::flush: return "FLUSH";
    case log_kind::fua: return "FUA";
    case log_kind::discard: return "DISCARD";
    case log_kind::mark: return "MARK";
  }
  return "?";
}

std::string flag_names(uint64_t flags) {
  static const std::pair<uint64_t, const char *> names[] = {{pdata::log_flush, "FLUSH"},
                                                            {pdata::log_fua, "FUA"},
                                                            {pdata::log_discard, "DISCARD"},
                                                            {pdata::log_mark, "MARK"},
                                                            {pdata::log_metadata, "META"}};
  std::string out;
  for (auto &[bit, name] : names)
    if (flags & bit) {
      if (!out.empty()) out += '|';
      out += name;
    }
  if (uint64_t rest = flags & ~uint64_t(31)) out += fmt::format("{}{:#x}", out.empty() ? "" : "|", rest);
  return out.empty() ? "-" : out;
}

namespace {

// Mark text as printed: control and non-ASCII bytes as \xNN.
std::string printable(const std::string &s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f && c != '\\')
      out += static_cast<char>(c);
    else
      out += fmt::format("\\x{:02x}", c);
  }
  return out;
}

std::string json_string(const std::string &s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      out += fmt::format("\\u{:04x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// --- placing entries and applying them --------------------------------------

placed_entry place(const log_entry &e, uint32_t sectorsize, const log_layout &layout) {
  placed_entry p;
  p.entry = e;
  const uint64_t per = sectorsize / 512;
  const uint64_t start = e.sector * per;  // 512-byte sectors on the logged device
  const uint64_t total = layout.meta_sectors + layout.data_sectors;
  if (e.flags & pdata::log_mark) {
    p.kind = log_kind::mark;
    return p;
  }
  if (e.flags & pdata::log_discard)
    p.kind = log_kind::discard;
  else if (e.nr_sectors == 0 && (e.flags & pdata::log_flush))
    p.kind = log_kind::flush;
  else if (e.flags & pdata::log_fua)
    p.kind = log_kind::fua;
  else
    p.kind = log_kind::write;
  // Garbage lengths must not overflow: anything longer than the layout is past its end anyway.
  p.nr_sectors = e.nr_sectors > total ? e.nr_sectors : e.nr_sectors * per;
  p.device_sector = start;
  if (e.sector > total || start >= total) {
    p.region = log_region::beyond;
    if (e.sector > total) p.device_sector = e.sector;  // (in log sectors: S/512 times it would overflow)
    p.sector = p.device_sector - total;
    p.past_end = true;
    return p;
  }
  if (start < layout.meta_sectors) {
    p.region = log_region::meta;
    p.sector = start;
    p.straddles = p.nr_sectors > layout.meta_sectors - start;
  } else {
    p.region = log_region::data;
    p.sector = start - layout.meta_sectors;
  }
  p.past_end = p.nr_sectors > total - start;
  return p;
}

// Where the two regions go.
class region_writer {
 public:
  virtual ~region_writer() = default;
  virtual void write(uint64_t off, const unsigned char *p, std::size_t len) = 0;
  virtual void zero(uint64_t off, uint64_t len) = 0;
};

class sink_writer : public region_writer {
 public:
  explicit sink_writer(pdata::byte_sink &s) : s_(s) {}
  void write(uint64_t off, const unsigned char *p, std::size_t len) override { s_.write_at(off, p, len); }
  void zero(uint64_t off, uint64_t len) override {
    static const std::vector<unsigned char> zeroes(1 << 20, 0);
    while (len) {
      std::size_t n = static_cast<std::size_t>(std::min<uint64_t>(len, zeroes.size()));
      s_.write_at(off, zeroes.data(), n);
      off += n;
      len -= n;
    }
  }

 private:
  pdata::byte_sink &s_;
};

// The metadata region in a block_io (whole 4 KiB blocks; partial ones are
// read, changed and written back). `touched` hears of every block written.
class block_writer : public region_writer {
 public:
  block_writer(pdata::block_io &io, std::function<void(block_address)> touched)
      : io_(io), touched_(std::move(touched)) {}
  void write(uint64_t off, const unsigned char *p, std::size_t len) override { put(off, p, len); }
  void zero(uint64_t off, uint64_t len) override { put(off, nullptr, len); }

 private:
  void put(uint64_t off, const unsigned char *p, uint64_t len) {
    pdata::block_buffer buf;
    while (len) {
      block_address b = off / pdata::block_size;
      std::size_t in = static_cast<std::size_t>(off % pdata::block_size);
      std::size_t n = static_cast<std::size_t>(std::min<uint64_t>(len, pdata::block_size - in));
      if (n != pdata::block_size) io_.read(b, buf.raw());
      if (p)
        std::copy(p, p + n, buf.raw() + in);
      else
        std::fill(buf.raw() + in, buf.raw() + in + n, 0);
      io_.write(b, buf.raw());
      touched_(b);
      off += n;
      len -= n;
      if (p) p += n;
    }
  }
  pdata::block_io &io_;
  std::function<void(block_address)> touched_;
};

[[noreturn]] void throw_past_end(const placed_entry &p, const log_layout &layout) {
  throw pdata::bad_input_error(fmt::format("log entry {} ({} sectors at sector {} of the logged device) reaches past the "
                                           "end of the data region ({} + {} sectors): check --meta-sectors and "
                                           "--data-sectors",
                                           p.entry.index, p.nr_sectors, p.device_sector, layout.meta_sectors,
                                           layout.data_sectors));
}

// Byte ranges of a write or discard in each region.
struct split_range {
  uint64_t meta_off = 0, meta_len = 0;  // within the metadata region
  uint64_t data_off = 0, data_len = 0;  // within the data region
  uint64_t data_payload_off = 0;        // where the data part starts in the payload
};

split_range split(const placed_entry &p, const log_layout &layout) {
  split_range s;
  uint64_t len = p.nr_sectors * 512;
  if (p.region == log_region::meta) {
    s.meta_off = p.sector * 512;
    s.meta_len = std::min(len, layout.meta_bytes() - s.meta_off);
    s.data_off = 0;
    s.data_len = len - s.meta_len;
    s.data_payload_off = s.meta_len;
  } else {
    s.data_off = p.sector * 512;
    s.data_len = len;
  }
  return s;
}

// Applies a write or discard; meta or data may be null (that part is skipped).
void apply(log_reader &rd, const placed_entry &p, const log_layout &layout, region_writer *meta,
           region_writer *data) {
  if (p.kind == log_kind::mark || p.kind == log_kind::flush || p.nr_sectors == 0) return;
  if (p.past_end) throw_past_end(p, layout);
  split_range s = split(p, layout);
  if (!(meta && s.meta_len) && !(data && s.data_len)) return;
  if (p.kind == log_kind::discard) {
    if (meta && s.meta_len) meta->zero(s.meta_off, s.meta_len);
    if (data && s.data_len) data->zero(s.data_off, s.data_len);
    return;
  }
  std::vector<unsigned char> payload = rd.payload(p.entry);
  if (meta && s.meta_len) meta->write(s.meta_off, payload.data(), static_cast<std::size_t>(s.meta_len));
  if (data && s.data_len)
    data->write(s.data_off, payload.data() + s.data_payload_off, static_cast<std::size_t>(s.data_len));
}

log_reader open_log(pdata::byte_source &log, const log_layout &layout) {
  log_reader rd(log);
  validate_layout(layout, rd.sectorsize());
  return rd;
}

}  // namespace

std::string format_entry(const placed_entry &e) {
  if (e.kind == log_kind::mark)
    return fmt::format("{:>6} {:<7} {:<6} {:>10} {:>8} {:<13} {}", e.entry.index, to_string(e.kind), "-", "-", "-",
                       flag_names(e.entry.flags), printable(e.entry.mark));
  return fmt::format("{:>6} {:<7} {:<6} {:>10} {:>8} {}", e.entry.index, to_string(e.kind),
                     e.straddles ? "meta+data" : to_string(e.region), e.sector, e.nr_sectors,
                     flag_names(e.entry.flags));
}

std::string format_summary(const log_summary &s) {
  std::string out = fmt::format(
      "summary: {} entries, {} writes ({} meta, {} data, {} FUA), {} flushes ({} meta, {} data), {} discards, {} "
      "marks\n",
      s.entries, s.writes, s.meta_writes, s.data_writes, s.fua_writes, s.flushes, s.meta_flushes, s.data_flushes,
      s.discards, s.marks);
  out += fmt::format("log sector size {}; the log header counts {} entries", s.sectorsize, s.nr_entries_header);
  if (s.entries > s.nr_entries_header)
    out += fmt::format(" ({} more follow it: a log that was not closed)", s.entries - s.nr_entries_header);
  out += "\n";
  if (s.past_end) out += fmt::format("{} entries reach past the end of the data region\n", s.past_end);
  if (!s.mark_list.empty()) {
    out += "marks:";
    for (auto &[i, text] : s.mark_list) out += fmt::format(" {}:{}", i, printable(text));
    out += "\n";
  }
  return out;
}

log_summary list_log(pdata::byte_source &log, const log_layout &layout,
                     const std::function<void(const placed_entry &)> &each) {
  log_reader rd = open_log(log, layout);
  log_summary s;
  s.sectorsize = rd.sectorsize();
  s.nr_entries_header = rd.nr_entries_header();
  while (auto e = rd.next()) {
    placed_entry p = place(*e, rd.sectorsize(), layout);
    s.entries++;
    if (p.past_end) s.past_end++;
    switch (p.kind) {
      case log_kind::mark:
        s.marks++;
        s.mark_list.emplace_back(e->index, e->mark);
        break;
      case log_kind::flush:
        s.flushes++;
        (p.region == log_region::meta ? s.meta_flushes : s.data_flushes)++;
        break;
      case log_kind::discard: s.discards++; break;
      case log_kind::fua:
      case log_kind::write:
        s.writes++;
        if (p.kind == log_kind::fua) s.fua_writes++;
        (p.region == log_region::meta ? s.meta_writes : s.data_writes)++;
        break;
    }
    if (each) each(p);
  }
  return s;
}

// --- replay ------------------------------------------------------------------

replay_result plan_replay(pdata::byte_source &log, const log_layout &layout, const replay_options &opts) {
  log_reader rd = open_log(log, layout);
  replay_result r;
  bool found = false;
  while (auto e = rd.next()) {
    placed_entry p = place(*e, rd.sectorsize(), layout);
    if (opts.until_mark && p.kind == log_kind::mark && e->mark == *opts.until_mark) {
      found = true;
      r.stopped_at = e->index;
      break;
    }
    if (p.past_end && p.kind != log_kind::flush) throw_past_end(p, layout);
    r.entries_applied++;
    if (opts.until_entry && e->index == *opts.until_entry) {
      found = true;
      r.stopped_at = e->index;
      break;
    }
  }
  if (opts.until_mark && !found)
    throw pdata::bad_input_error(
        fmt::format("no mark '{}' in the log ({} entries)", printable(*opts.until_mark), r.entries_applied));
  if (opts.until_entry && !found)
    throw pdata::bad_input_error(fmt::format("entry {} is past the end of the log ({} entries, 0..{})", *opts.until_entry,
                                             r.entries_applied, r.entries_applied ? r.entries_applied - 1 : 0));
  return r;
}

replay_result replay_log(pdata::byte_source &log, const log_layout &layout, pdata::byte_sink &meta,
                         pdata::byte_sink &data, const replay_options &opts) {
  const replay_result plan = plan_replay(log, layout, opts);
  replay_result r;
  r.stopped_at = plan.stopped_at;
  log_reader rd = open_log(log, layout);
  sink_writer mw(meta), dw(data);
  while (r.entries_applied < plan.entries_applied) {
    auto e = rd.next();
    if (!e) break;
    apply(rd, place(*e, rd.sectorsize(), layout), layout, &mw, &dw);
    r.entries_applied++;
  }
  return r;
}

// --- the audit ---------------------------------------------------------------

namespace {

// A mapping tree that cannot be read at a commit.
class tree_error : public pdata::damaged_metadata_error {
 public:
  using pdata::damaged_metadata_error::damaged_metadata_error;
};

class auditor {
 public:
  auditor(const log_layout &layout, audit_result &r)
      : zeroing_(layout.zeroing),
        meta_(layout.meta_sectors / pdata::sectors_per_block),
        cache_(meta_, 1024),
        writer_(meta_, [this](block_address b) { touched(b); }),
        r_(r) {}

  region_writer &meta_writer() { return writer_; }
  bool superblock_touched() const { return sb_touched_; }
  void reset_touched() { sb_touched_ = false; }

  // A write to the data region, [begin, end) in 512-byte sectors.
  void data_write(uint64_t begin, uint64_t end, uint64_t entry, bool fua) {
    r_.data_writes++;
    if (!fua) unflushed_.push_back({begin, end, entry});
    written_.push_back({begin, end, entry});
  }
  void data_flush() {
    r_.data_flushes++;
    unflushed_.clear();
    by_block_.clear();
    indexed_ = 0;
  }

  // Entry `entry` wrote (some of) block 0.
  void superblock_write(uint64_t entry) {
    r_.superblock_writes++;
    pdata::block_ref b0 = cache_.read(0);
    if (validate_superblock(b0->raw(), 0)) return;  // torn, wiped or not yet formatted: nothing committed
    superblock sb = decode_superblock(b0->raw());
    r_.commits++;
    if (prev_ && prev_->mapping_root == sb.mapping_root) {
      prev_ = sb;
      prev_entry_ = entry;
      return;
    }
    std::vector<audit_violation> found;
    std::map<uint64_t, block_address> top;
    // Sectors of each data block written since the previous commit: a block
    // provisioned since then must be written whole (data, COW copy or zero
    // fill) before a commit maps it, or part of it holds stale data.
    const uint64_t dbs = sb.data_block_size;
    std::unordered_map<uint64_t, std::vector<std::pair<uint64_t, uint64_t>>> cover;
    // (written_ is in log order: start at the first write after the previous commit.)
    auto since = written_.begin();
    if (prev_entry_)
      since = std::partition_point(written_.begin(), written_.end(),
                                   [&](const pending_write &w) { return w.entry <= *prev_entry_; });
    for (auto it = since; it != written_.end(); ++it) {
      const pending_write &w = *it;
      for (uint64_t d = w.begin / dbs; d * dbs < w.end; d++)
        cover[d].emplace_back(std::max(w.begin, d * dbs), std::min(w.end, (d + 1) * dbs));
    }
    auto fully_written = [&](uint64_t d) {
      auto it = cover.find(d);
      if (it == cover.end()) return false;
      auto iv = it->second;
      std::sort(iv.begin(), iv.end());
      uint64_t at = d * dbs;
      for (auto &[b, e] : iv) {
        if (b > at) return false;
        at = std::max(at, e);
      }
      return at >= (d + 1) * dbs;
    };
    try {
      for (auto &[dev, root] : read_top(sb.mapping_root)) top[dev] = root;
      index_unflushed(sb.data_block_size);
      for (auto &[dev, root] : top) {
        auto old = prev_top_.find(dev);
        std::optional<block_address> old_root;
        if (old != prev_top_.end()) old_root = old->second;
        if (old_root == root) continue;  // the device's tree did not change
        diff(old_root, root, old_root, 0, [&, dev = dev](uint64_t vblock, uint64_t d) {
          r_.new_mappings++;
          audit_violation v{entry, sb.trans_id, dev, vblock, d, violation_kind::unflushed, std::nullopt, std::nullopt};
          if (auto w = by_block_.find(d); w != by_block_.end()) {
            v.unflushed_write_entry = w->second;
            found.push_back(v);
            return;
          }
          bool written;
          if (zeroing_) {
            written = fully_written(d);
          } else {
            auto last = last_write_.find(d);
            written = last != last_write_.end() && (!prev_entry_ || last->second > *prev_entry_);
          }
          if (was_free(d) && !written) {
            v.kind = violation_kind::unwritten;
            v.previous_commit_entry = prev_entry_;
            found.push_back(v);
          }
        });
      }
    } catch (const tree_error &e) {
      r_.errors.push_back({entry, fmt::format("superblock (transaction {}): {}", sb.trans_id, e.what())});
      return;  // keep diffing against the last superblock that could be read
    } catch (const pdata::io_error &e) {
      r_.errors.push_back({entry, fmt::format("superblock (transaction {}): {}", sb.trans_id, e.what())});
      return;
    }
    r_.violations.insert(r_.violations.end(), found.begin(), found.end());
    prev_ = sb;
    prev_entry_ = entry;
    prev_top_ = std::move(top);
  }

 private:
  struct pending_write {
    uint64_t begin, end, entry;
  };

  void touched(block_address b) {
    cache_.forget(b);
    validated_.erase(b);
    if (b == 0) sb_touched_ = true;
  }

  // Per data block (for this data block size), the earliest unflushed write
  // and the last write.
  void index_unflushed(uint32_t dbs) {
    if (dbs != indexed_dbs_) {
      by_block_.clear();
      last_write_.clear();
      indexed_ = written_indexed_ = 0;
      indexed_dbs_ = dbs;
    }
    for (; indexed_ < unflushed_.size(); indexed_++) {
      const pending_write &w = unflushed_[indexed_];
      for (uint64_t d = w.begin / dbs; d * dbs < w.end; d++) by_block_.emplace(d, w.entry);
    }
    for (; written_indexed_ < written_.size(); written_indexed_++) {
      const pending_write &w = written_[written_indexed_];
      for (uint64_t d = w.begin / dbs; d * dbs < w.end; d++) last_write_[d] = w.entry;
    }
  }

  // Whether data block d had a reference count of 0 in the previous
  // superblock's data space map (true when there is none, or d lies past its
  // end: the pool grew).
  bool was_free(uint64_t d) {
    if (!prev_) return true;
    pdata::disk_sm_root root = prev_->data_sm_root();
    if (d >= root.nr_blocks.get()) return true;
    std::optional<std::vector<unsigned char>> ie =
        lookup_value(root.bitmap_root.get(), d / pdata::entries_per_bitmap, sizeof(pdata::index_entry_disk));
    if (!ie) throw tree_error(fmt::format("data space map: no index entry for data block {}", d));
    pdata::index_entry_disk e;
    std::memcpy(&e, ie->data(), sizeof(e));
    block_address b = e.blocknr.get();
    if (b >= meta_.nr_blocks())
      throw tree_error(fmt::format("data space map bitmap {} is past the end of the metadata region", b));
    pdata::block_ref bm = cache_.read(b);
    auto *h = reinterpret_cast<const pdata::bitmap_header_disk *>(bm->raw());
    if (h->blocknr.get() != b || !pdata::checksum_ok(bm->raw(), pdata::checksum_salt::bitmap))
      throw tree_error(fmt::format("data space map bitmap {} is damaged", b));
    return pdata::bitmap_get(bm->raw() + sizeof(pdata::bitmap_header_disk),
                             static_cast<uint32_t>(d % pdata::entries_per_bitmap)) == 0;
  }

  std::vector<std::pair<uint64_t, block_address>> read_top(block_address root) {
    std::string problem;
    auto top = read_mapping_top_level(cache_, root, [&](const pdata::btree_damage &d) {
      if (problem.empty()) problem = fmt::format("mapping tree top level: node {}: {}", d.block, d.what);
    });
    if (!problem.empty()) throw tree_error(problem);
    return top;
  }

  // A validated B-tree node whose leaves hold `value_size`-byte values (8 for
  // both levels of the mapping tree).
  pdata::btree_node_view node(block_address b, pdata::block_ref &hold, uint32_t value_size = 8) {
    if (b >= meta_.nr_blocks())
      throw tree_error(fmt::format("B-tree node {} is past the end of the metadata region", b));
    hold = cache_.read(b);
    auto v = validated_.find(b);
    if (v == validated_.end() || v->second != value_size) {
      if (auto err = pdata::validate_btree_node(hold->raw(), b, value_size))
        throw tree_error(fmt::format("B-tree node {}: {}", b, *err));
      validated_[b] = value_size;
    }
    return pdata::btree_node_view(hold->raw());
  }

  // The mapping value of `key` in the tree at `root`.
  std::optional<uint64_t> lookup(block_address root, uint64_t key) {
    auto v = lookup_value(root, key, 8);
    if (!v) return std::nullopt;
    return pdata::load_le64(v->data());
  }

  // The value of `key` in the tree at `root`, as the kernel looks it up.
  std::optional<std::vector<unsigned char>> lookup_value(block_address root, uint64_t key, uint32_t value_size) {
    block_address b = root;
    for (unsigned depth = 0; depth <= pdata::max_btree_depth; depth++) {
      pdata::block_ref hold;
      pdata::btree_node_view n = node(b, hold, value_size);
      // The last entry whose key is <= key.
      uint32_t lo = 0, hi = n.nr_entries();
      while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (n.key(mid) <= key)
          lo = mid + 1;
        else
          hi = mid;
      }
      if (lo == 0) return std::nullopt;
      uint32_t i = lo - 1;
      if (n.is_leaf()) {
        if (n.key(i) != key) return std::nullopt;
        return std::vector<unsigned char>(n.value_ptr(i), n.value_ptr(i) + value_size);
      }
      b = n.value64(i);
    }
    throw tree_error(fmt::format("mapping tree below block {} is deeper than {} levels", root, pdata::max_btree_depth));
  }

  // Calls fn(vblock, data block) for each mapping below `new_node` that the
  // old device tree (root `old_root`) does not hold with the same data block.
  // `old_node` is the old tree's node covering the same keys, if known: a
  // child of the new node that is also one of its children is shared (the
  // same block, so the same mappings) and is skipped.
  template <typename Fn>
  void diff(std::optional<block_address> old_node, block_address new_node, std::optional<block_address> old_root,
            unsigned depth, const Fn &fn) {
    if (old_node == new_node) return;
    if (depth > pdata::max_btree_depth)
      throw tree_error(fmt::format("mapping tree at block {} is deeper than {} levels", new_node, pdata::max_btree_depth));
    pdata::block_ref hold;
    pdata::btree_node_view n = node(new_node, hold);
    if (n.is_leaf()) {
      for (uint32_t i = 0; i < n.nr_entries(); i++) {
        uint64_t d = unpack_block(n.value64(i));
        std::optional<uint64_t> old = old_root ? lookup(*old_root, n.key(i)) : std::nullopt;
        if (!old || unpack_block(*old) != d) fn(n.key(i), d);
      }
      return;
    }
    // The old node's children, with their first keys.
    std::vector<std::pair<uint64_t, block_address>> old_children;
    if (old_node) {
      pdata::block_ref old_hold;
      pdata::btree_node_view o = node(*old_node, old_hold);
      if (o.is_internal())
        for (uint32_t i = 0; i < o.nr_entries(); i++) old_children.emplace_back(o.key(i), o.value64(i));
    }
    std::unordered_set<block_address> shared;
    for (auto &c : old_children) shared.insert(c.second);
    for (uint32_t i = 0; i < n.nr_entries(); i++) {
      block_address child = n.value64(i);
      if (shared.count(child)) continue;
      std::optional<block_address> old_child;
      auto it = std::upper_bound(old_children.begin(), old_children.end(), n.key(i),
                                 [](uint64_t k, const std::pair<uint64_t, block_address> &c) { return k < c.first; });
      if (it != old_children.begin()) old_child = std::prev(it)->second;
      diff(old_child, child, old_root, depth + 1, fn);
    }
  }

  bool zeroing_;
  pdata::memory_block_io meta_;
  pdata::block_cache cache_;
  block_writer writer_;
  audit_result &r_;
  std::unordered_map<block_address, uint32_t> validated_;  // block -> leaf value size it validated with
  bool sb_touched_ = false;

  std::vector<pending_write> unflushed_;  // non-FUA data writes since the last data flush, in log order
  std::unordered_map<uint64_t, uint64_t> by_block_;  // data block -> earliest unflushed write
  std::vector<pending_write> written_;    // every data write
  std::unordered_map<uint64_t, uint64_t> last_write_;  // data block -> last write
  uint32_t indexed_dbs_ = 0;
  std::size_t indexed_ = 0, written_indexed_ = 0;

  std::optional<superblock> prev_;
  std::optional<uint64_t> prev_entry_;
  std::map<uint64_t, block_address> prev_top_;
};

}  // namespace

audit_result audit_log(pdata::byte_source &log, const log_layout &layout) {
  log_reader rd = open_log(log, layout);
  audit_result r;
  r.sectorsize = rd.sectorsize();
  auditor a(layout, r);
  while (auto e = rd.next()) {
    placed_entry p = place(*e, rd.sectorsize(), layout);
    r.entries++;
    if (p.kind == log_kind::mark) continue;
    if (p.kind == log_kind::flush) {
      if (p.region == log_region::data || p.region == log_region::beyond) a.data_flush();
      continue;
    }
    if (p.kind == log_kind::discard) {
      apply(rd, p, layout, &a.meta_writer(), nullptr);
    } else {
      // A write carrying FLUSH: the flush comes first (dm core issues the
      // preflush before the data).
      if ((e->flags & pdata::log_flush) && p.region == log_region::data) a.data_flush();
      apply(rd, p, layout, &a.meta_writer(), nullptr);
      split_range s = split(p, layout);
      if (s.data_len)
        a.data_write(s.data_off / 512, (s.data_off + s.data_len) / 512, e->index, p.kind == log_kind::fua);
    }
    if (a.superblock_touched()) {
      a.reset_touched();
      a.superblock_write(e->index);
    }
  }
  return r;
}

std::string format_audit_text(const audit_result &r) {
  std::string out = fmt::format("{} entries, {} superblock commits audited, {} violations\n", r.entries, r.commits,
                                r.violations.size());
  out += fmt::format("{} superblock writes, {} new mappings checked, {} data writes, {} data flushes\n",
                     r.superblock_writes, r.new_mappings, r.data_writes, r.data_flushes);
  for (auto &v : r.violations) {
    out += fmt::format("violation: commit at entry {} (transaction {}) maps dev {} block {} to data block {}, ",
                       v.commit_entry, v.transaction_id, v.dev, v.vblock, v.data_block);
    if (v.kind == violation_kind::unflushed)
      out += fmt::format("whose write at entry {} was not flushed\n", v.unflushed_write_entry.value_or(0));
    else if (v.previous_commit_entry)
      out += fmt::format("free at the previous commit (entry {}) and not written since\n", *v.previous_commit_entry);
    else
      out += "never written before\n";
  }
  for (auto &e : r.errors) out += fmt::format("error: commit at entry {}: {}\n", e.commit_entry, e.what);
  return out;
}

std::string format_audit_json(const audit_result &r) {
  std::string out = fmt::format(
      "{{\"sector_size\":{},\"entries\":{},\"superblock_writes\":{},\"commits\":{},\"new_mappings\":{},"
      "\"data_writes\":{},\"data_flushes\":{},\"violations\":[",
      r.sectorsize, r.entries, r.superblock_writes, r.commits, r.new_mappings, r.data_writes, r.data_flushes);
  for (std::size_t i = 0; i < r.violations.size(); i++) {
    auto &v = r.violations[i];
    auto number = [](const std::optional<uint64_t> &n) { return n ? std::to_string(*n) : std::string("null"); };
    out += fmt::format(
        "{}{{\"commit_entry\":{},\"transaction_id\":{},\"dev\":{},\"vblock\":{},\"data_block\":{},"
        "\"kind\":\"{}\",\"unflushed_write_entry\":{},\"previous_commit_entry\":{}}}",
        i ? "," : "", v.commit_entry, v.transaction_id, v.dev, v.vblock, v.data_block, to_string(v.kind),
        number(v.unflushed_write_entry), number(v.previous_commit_entry));
  }
  out += "],\"errors\":[";
  for (std::size_t i = 0; i < r.errors.size(); i++)
    out += fmt::format("{}{{\"commit_entry\":{},\"what\":{}}}", i ? "," : "", r.errors[i].commit_entry,
                       json_string(r.errors[i].what));
  out += fmt::format("],\"ok\":{}}}\n", r.ok() ? "true" : "false");
  return out;
}

// --- crash-state check -----------------------------------------------------

namespace {

class collecting_reporter : public check_reporter {
 public:
  void stage(const char *) override {}
  void info(uint64_t, uint64_t) override {}
  void visit(const damage &d) override { problems.push_back(d); }
  std::vector<damage> problems;
};

std::string describe_point(const placed_entry &p) {
  std::string s = to_string(p.kind);
  if (p.region != log_region::none) s += fmt::format(" {}", to_string(p.region));
  if (p.kind == log_kind::write || p.kind == log_kind::fua || p.kind == log_kind::discard)
    s += fmt::format(" {}+{}", p.sector, p.nr_sectors);
  if (p.kind != log_kind::flush && (p.entry.flags & pdata::log_flush)) s += " with FLUSH";
  if (p.kind == log_kind::mark) s += fmt::format(" '{}'", printable(p.entry.mark));
  return s;
}

}  // namespace

log_check_result check_log(pdata::byte_source &log, const log_layout &layout, const log_check_options &opts) {
  log_reader rd = open_log(log, layout);
  log_check_result r;
  r.sectorsize = rd.sectorsize();
  pdata::memory_block_io meta(layout.meta_sectors / pdata::sectors_per_block);
  bool dirty = true, last_leaked = false;
  block_writer writer(meta, [&](block_address) { dirty = true; });

  std::optional<placed_entry> last;
  bool last_checked = false;
  auto check_point = [&](const placed_entry &p) {
    pdata::block_buffer b0;
    meta.read(0, b0.raw());
    if (is_all_zero(b0.raw())) {
      r.skipped_unformatted++;
      return;
    }
    r.points++;
    if (!dirty) {  // the same metadata was checked at the previous point
      if (last_leaked) r.points_with_leaks++;
      return;
    }
    r.full_checks++;
    collecting_reporter rep;
    check_result res = check_metadata(meta, check_options{}, rep);
    std::stable_partition(rep.problems.begin(), rep.problems.end(), [](const damage &d) { return d.fatal; });
    if (res.fatal) {
      if (rep.problems.empty() || !rep.problems.front().fatal)
        rep.problems.insert(rep.problems.begin(),
                            damage{damage_kind::superblock, true, std::nullopt, std::nullopt, std::nullopt,
                                   "the check failed"});
      r.failure = log_check_failure{p.entry.index, describe_point(p), std::move(rep.problems)};
      return;
    }
    last_leaked = res.non_fatal || !rep.problems.empty();
    if (last_leaked) r.points_with_leaks++;
    if (last_leaked && !r.first_leak)
      r.first_leak = log_check_failure{p.entry.index, describe_point(p), std::move(rep.problems)};
    dirty = false;
  };

  while (auto e = rd.next()) {
    placed_entry p = place(*e, rd.sectorsize(), layout);
    r.entries++;
    apply(rd, p, layout, &writer, nullptr);
    bool point = opts.every ? (e->index + 1) % opts.every == 0
                            : (p.kind != log_kind::mark && (e->flags & (pdata::log_flush | pdata::log_fua)));
    last = p;
    last_checked = point;
    if (point) {
      check_point(p);
      if (r.failure) return r;
    }
  }
  if (opts.every && last && !last_checked) check_point(*last);
  return r;
}

std::string format_check_text(const log_check_result &r) {
  std::string out;
  auto problems = [&](const log_check_failure &f) {
    for (auto &d : f.problems) out += fmt::format("  {}{}\n", d.fatal ? "" : "(non-fatal) ", d.what);
  };
  if (!r.failure) {
    out = fmt::format("{} entries, {} check points passed, {} skipped (metadata not yet formatted)\n", r.entries,
                      r.points, r.skipped_unformatted);
    out += fmt::format("{} full checks; the other points had the same metadata as one checked before\n",
                       r.full_checks);
  } else {
    const log_check_failure &f = *r.failure;
    out = fmt::format("{} entries read, {} check points passed, first failing point at entry {} ({})\n", r.entries,
                      r.points - 1, f.entry, f.entry_description);
    problems(f);
  }
  if (r.first_leak) {
    out += fmt::format("{} passing points had non-fatal problems only, the first at entry {} ({}):\n",
                       r.points_with_leaks, r.first_leak->entry, r.first_leak->entry_description);
    problems(*r.first_leak);
  }
  return out;
}

}  // namespace thin
