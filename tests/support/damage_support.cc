// The damage tests' helpers (see damage_support.h).
#include "support/damage_support.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <typeinfo>

#include <fmt/format.h>

#include "persistent-data/block_cache.h"
#include "persistent-data/btree_node.h"
#include "persistent-data/endian.h"
#include "persistent-data/space_map_disk.h"
#include "thin/dump/dump.h"
#include "thin/format/superblock_disk.h"
#include "thin/ir/emitter.h"
#include "thin/ir/text_sink.h"

namespace dmg {

namespace {

// Walks a tree from `root`, giving each node its role and key range in L;
// problems go to L.problems.
void walk_nodes(const image &img, layout &L, block_address root, role internal_role, role leaf_role,
                const std::function<void(const pdata::btree_node_view &)> &on_leaf, unsigned depth = 0,
                pdata::key_range range = {}) {
  if (root >= img.nr_blocks() || depth > 32) {
    L.problems.push_back(fmt::format("node pointer {} out of range or too deep", root));
    return;
  }
  pdata::btree_node_view n(img.block(root));
  if (auto err = pdata::kernel_node_check(img.block(root), root)) {
    L.problems.push_back(fmt::format("block {}: {}", root, *err));
    return;
  }
  role r = n.is_internal() ? internal_role : leaf_role;
  auto [it, fresh] = L.roles.emplace(root, r);
  if (!fresh) {
    if (it->second != r)
      L.problems.push_back(fmt::format("block {} is both a {} and a {}", root, to_string(it->second), to_string(r)));
    return;  // a shared node: seen before
  }
  L.ranges[root] = range;
  if (n.is_internal()) {
    for (uint32_t i = 0; i < n.nr_entries(); i++) {
      pdata::key_range child{n.key(i), i + 1 < n.nr_entries() ? std::optional<uint64_t>(n.key(i + 1)) : range.end};
      walk_nodes(img, L, n.value64(i), internal_role, leaf_role, on_leaf, depth + 1, child);
    }
  } else {
    on_leaf(n);
  }
}

}  // namespace

//------------------------------------------------------------------ images

image load_fixture(const std::string &scenario) {
  return {scenario, test::read_binary(test::fixture_image(scenario))};
}

//------------------------------------------------------------------ layout

const char *to_string(role r) {
  switch (r) {
    case role::superblock: return "superblock";
    case role::snapshot_superblock: return "snapshot superblock";
    case role::details_internal: return "details internal node";
    case role::details_leaf: return "details leaf";
    case role::top_internal: return "top-level internal node";
    case role::top_leaf: return "top-level leaf";
    case role::bottom_internal: return "mapping internal node";
    case role::bottom_leaf: return "mapping leaf";
    case role::data_index_internal: return "data index internal node";
    case role::data_index_leaf: return "data index leaf";
    case role::overflow_internal: return "ref count tree internal node";
    case role::overflow_leaf: return "ref count tree leaf";
    case role::metadata_index: return "metadata index block";
    case role::metadata_bitmap: return "metadata bitmap";
    case role::data_bitmap: return "data bitmap";
  }
  return "?";
}

bool is_node(role r) {
  return r != role::superblock && r != role::snapshot_superblock && r != role::metadata_index &&
         r != role::metadata_bitmap && r != role::data_bitmap;
}
bool is_internal(role r) {
  return r == role::details_internal || r == role::top_internal || r == role::bottom_internal ||
         r == role::data_index_internal || r == role::overflow_internal;
}

const char *to_string(block_type t) {
  switch (t) {
    case block_type::superblock: return "superblock";
    case block_type::btree_node: return "btree node";
    case block_type::bitmap: return "bitmap";
    case block_type::index_block: return "index block";
    case block_type::unknown: return "unknown";
  }
  return "?";
}

block_type expected_type(role r) {
  if (r == role::superblock || r == role::snapshot_superblock) return block_type::superblock;
  if (r == role::metadata_index) return block_type::index_block;
  if (r == role::metadata_bitmap || r == role::data_bitmap) return block_type::bitmap;
  return block_type::btree_node;
}

block_type identify(const unsigned char *blk, block_address loc) {
  if (pdata::load_le64(blk + 8) != loc) return block_type::unknown;
  if (pdata::checksum_ok(blk, pdata::checksum_salt::superblock) &&
      pdata::load_le64(blk + 32) == thin::superblock_magic)
    return block_type::superblock;
  if (!pdata::kernel_node_check(blk, loc)) return block_type::btree_node;
  if (pdata::checksum_ok(blk, pdata::checksum_salt::bitmap)) return block_type::bitmap;
  if (pdata::checksum_ok(blk, pdata::checksum_salt::index_block)) return block_type::index_block;
  return block_type::unknown;
}

pdata::checksum_salt salt_of(role r) {
  switch (expected_type(r)) {
    case block_type::superblock: return pdata::checksum_salt::superblock;
    case block_type::bitmap: return pdata::checksum_salt::bitmap;
    case block_type::index_block: return pdata::checksum_salt::index_block;
    default: return pdata::checksum_salt::btree_node;
  }
}

layout analyse(const image &img) {
  layout L;
  L.nr_blocks = img.nr_blocks();
  pdata::memory_block_io io(img.bytes);
  L.sb = thin::read_superblock(io);
  L.roles[0] = role::superblock;

  auto trees = [&](const thin::superblock &s, bool live) {
    walk_nodes(img, L, s.details_root, role::details_internal, role::details_leaf,
                       [](const pdata::btree_node_view &) {});
    std::vector<std::pair<uint64_t, block_address>> devs;
    walk_nodes(img, L, s.mapping_root, role::top_internal, role::top_leaf,
                       [&](const pdata::btree_node_view &n) {
                         for (uint32_t i = 0; i < n.nr_entries(); i++) devs.emplace_back(n.key(i), n.value64(i));
                       });
    for (auto &[dev, root] : devs)
      walk_nodes(img, L, root, role::bottom_internal, role::bottom_leaf, [&](const pdata::btree_node_view &n) {
        for (uint32_t i = 0; i < n.nr_entries(); i++)
          L.max_mapping_time = std::max(L.max_mapping_time, thin::unpack_time(n.value64(i)));
      });
    if (live) L.devices = devs;
  };
  trees(L.sb, true);
  if (L.sb.held_root) {
    L.roles[L.sb.held_root] = role::snapshot_superblock;
    trees(thin::read_superblock(io, L.sb.held_root), false);
  }

  // Metadata space map: index block, bitmaps, overflow tree.
  const pdata::disk_sm_root mroot = L.sb.metadata_sm_root();
  L.nr_metadata_sm_blocks = mroot.nr_blocks.get();
  const block_address idx = mroot.bitmap_root.get();
  L.roles[idx] = role::metadata_index;
  auto *index = reinterpret_cast<const pdata::metadata_index_disk *>(img.block(idx));
  const uint64_t nr_meta_bitmaps =
      (L.nr_metadata_sm_blocks + pdata::entries_per_bitmap - 1) / pdata::entries_per_bitmap;
  for (uint64_t i = 0; i < nr_meta_bitmaps; i++) {
    block_address b = index->index[i].blocknr.get();
    L.metadata_bitmaps.push_back(b);
    L.roles[b] = role::metadata_bitmap;
    L.bitmaps[b] = {false, i};
  }
  walk_nodes(img, L, mroot.ref_count_root.get(), role::overflow_internal, role::overflow_leaf,
                     [](const pdata::btree_node_view &) {});

  // Data space map: index btree, bitmaps, overflow tree.
  const pdata::disk_sm_root droot = L.sb.data_sm_root();
  L.nr_data_blocks = droot.nr_blocks.get();
  std::map<uint64_t, block_address> data_bitmaps;
  walk_nodes(img, L, droot.bitmap_root.get(), role::data_index_internal, role::data_index_leaf,
                     [&](const pdata::btree_node_view &n) {
                       for (uint32_t i = 0; i < n.nr_entries(); i++)
                         data_bitmaps[n.key(i)] = pdata::load_le64(n.value_ptr(i));
                     });
  for (auto &[i, b] : data_bitmaps) {
    L.data_bitmaps.push_back(b);
    L.roles[b] = role::data_bitmap;
    L.bitmaps[b] = {true, i};
  }
  walk_nodes(img, L, droot.ref_count_root.get(), role::overflow_internal, role::overflow_leaf,
                     [](const pdata::btree_node_view &) {});

  // The counts, as the space maps hold them.
  pdata::block_cache cache(io);
  test::space_map_problems probs;
  auto meta = pdata::read_space_map(cache, mroot, pdata::space_map_kind::metadata, probs);
  auto data = pdata::read_space_map(cache, droot, pdata::space_map_kind::data, probs);
  for (auto &p : probs.all) L.problems.push_back(p.what);
  L.meta_counts = meta.counts;
  L.data_counts = data.counts;
  for (block_address b = 0; b < L.meta_counts.size(); b++)
    if (L.meta_counts.get(b)) L.used.insert(b);
  return L;
}

bitmap_entry_ref locate_count(const layout &L, bool data, block_address b) {
  const auto &bms = data ? L.data_bitmaps : L.metadata_bitmaps;
  return {bms.at(b / pdata::entries_per_bitmap), static_cast<uint32_t>(b % pdata::entries_per_bitmap)};
}

count_edit with_count_bits(const image &img, const layout &L, bool data, block_address b, uint32_t v) {
  auto loc = locate_count(L, data, b);
  count_edit e{loc.bitmap, img.copy_block(loc.bitmap)};
  pdata::bitmap_set(e.contents.data() + sizeof(pdata::bitmap_header_disk), loc.entry, v);
  pdata::stamp_checksum(e.contents.data(), pdata::checksum_salt::bitmap);
  return e;
}

analysed_fixture load_analysed(const std::string &scenario) {
  analysed_fixture f;
  f.img = load_fixture(scenario);
  f.L = analyse(f.img);
  return f;
}

//------------------------------------------------------------------ checking

bool check_outcome::fatal() const {
  for (auto &d : records)
    if (d.fatal) return true;
  return false;
}

bool check_outcome::non_fatal() const {
  for (auto &d : records)
    if (!d.fatal && !d.hint) return true;
  return false;
}

bool check_outcome::hints() const {
  for (auto &d : records)
    if (d.hint) return true;
  return false;
}

bool check_outcome::fatal_with_text() const {
  for (auto &d : records)
    if (d.fatal && !d.what.empty()) return true;
  return false;
}

bool check_outcome::has(thin::problem_id id) const {
  for (auto &d : records)
    if (d.id == id) return true;
  return false;
}

const thin::damage *check_outcome::first_fatal() const {
  for (auto &d : records)
    if (d.fatal) return &d;
  return nullptr;
}

std::string check_outcome::describe(std::size_t max) const {
  if (exception) return "exception escaped: " + *exception;
  if (records.empty()) return "no damage reported";
  std::string s;
  for (std::size_t i = 0; i < records.size() && i < max; i++)
    s += fmt::format("{}[{} {}] {}", i ? "; " : "", thin::to_string(records[i].id),
                     thin::to_string(records[i].sev()), records[i].what);
  if (records.size() > max) s += fmt::format("; ... ({} records)", records.size());
  return s;
}

check_outcome run_check(pdata::block_io &io, const thin::check_options &opts) {
  check_outcome o;
  test::recording_reporter r;
  try {
    o.result = thin::check_metadata(io, opts, r);
  } catch (const std::exception &e) {
    o.exception = fmt::format("{}: {}", typeid(e).name(), e.what());
  } catch (...) {
    o.exception = "an exception of unknown type";
  }
  o.records = std::move(r.records);
  return o;
}

std::string meaning_of(pdata::block_io &io) {
  std::string out;
  auto dump = [&](bool snap) {
    thin::string_sink s;
    auto e = thin::make_xml_emitter(s);
    thin::dump_options o;
    o.use_metadata_snap = snap;
    try {
      thin::dump_metadata(io, o, *e);
    } catch (const std::exception &ex) {
      return fmt::format("<dump failed: {}>", ex.what());
    }
    return s.str();
  };
  out += dump(false);
  thin::superblock sb;
  try {
    sb = thin::read_superblock(io);
  } catch (const std::exception &ex) {
    return out + fmt::format("<superblock unreadable: {}>", ex.what());
  }
  if (sb.held_root) out += "\nmetadata snapshot:\n" + dump(true);
  pdata::block_cache cache(io);
  test::space_map_problems pl;
  for (bool data : {false, true}) {
    auto sm = pdata::read_space_map(cache, data ? sb.data_sm_root() : sb.metadata_sm_root(),
                                    data ? pdata::space_map_kind::data : pdata::space_map_kind::metadata, pl);
    out += fmt::format("\n{} counts ({} blocks{}):", data ? "data" : "metadata", sm.nr_blocks,
                       sm.complete ? "" : ", incomplete");
    for (block_address b = 0; b < sm.counts.size(); b++)
      if (uint32_t c = sm.counts.get(b)) out += fmt::format(" {}:{}", b, c);
  }
  // (Problems are not meaning: fatal ones fail the check anyway, and
  // non-fatal ones are hints.)
  return out;
}

//------------------------------------------------------------------ variants

const char *to_string(expect e) {
  switch (e) {
    case expect::fatal: return "fatal";
    case expect::fatal_or_same_meaning: return "fatal or same meaning";
    case expect::leak: return "non-fatal only";
    case expect::reported: return "reported";
    case expect::not_fatal: return "not fatal";
  }
  return "?";
}


std::string names(const std::vector<thin::problem_id> &ids) {
  std::string s;
  for (auto id : ids) s += std::string(s.empty() ? "" : " or ") + thin::to_string(id);
  return s;
}

std::optional<std::string> judge(expect want, const check_outcome &o, const std::function<std::string()> &meaning_now,
                                 const std::string &original_meaning, const std::vector<thin::problem_id> &ids) {
  if (!ids.empty() && !o.records.empty()) {
    bool found = false;
    for (auto id : ids) found |= o.has(id);
    if (!found) return "expected " + names(ids) + ", got: " + o.describe();
  }
  if (o.exception) return "an exception escaped the checker: " + *o.exception;
  for (auto &d : o.records)
    if (d.what.empty()) return fmt::format("a {} record has no text", thin::to_string(d.kind));
  if (o.result.fatal != o.fatal() || o.result.non_fatal != o.non_fatal() || o.result.hints != o.hints())
    return fmt::format("check_result (fatal {}, non_fatal {}, hints {}) disagrees with the records ({})",
                       o.result.fatal, o.result.non_fatal, o.result.hints, o.describe());
  for (auto &d : o.records) {
    if (d.hint && d.fatal) return "a hint record is fatal: " + o.describe();
    if (d.id == thin::problem_id::OTHER) return "a record names no catalogue problem: " + o.describe();
    if (d.sev() != thin::info(d.id).sev)
      return fmt::format("a {} record is {}, the catalogue says {}", thin::to_string(d.id), thin::to_string(d.sev()),
                         thin::to_string(thin::info(d.id).sev));
  }
  switch (want) {
    case expect::fatal:
      if (!o.fatal_with_text()) return "expected fatal damage, got: " + o.describe();
      return std::nullopt;
    case expect::fatal_or_same_meaning:
      if (o.fatal_with_text()) return std::nullopt;
      if (meaning_now() != original_meaning)
        return "the metadata now means something else, but the checker passed it: " + o.describe();
      return std::nullopt;
    case expect::leak:
      if (o.fatal() || o.records.empty()) return "expected non-fatal damage only, got: " + o.describe();
      return std::nullopt;
    case expect::reported:
      if (o.records.empty()) return "expected the change to be reported, got: " + o.describe();
      return std::nullopt;
    case expect::not_fatal:
      if (o.fatal()) return "a harmless change was called fatal: " + o.describe();
      return std::nullopt;
  }
  return std::nullopt;
}

damage_runner::damage_runner(const image &img) : img_(img), io_(img.bytes), original_meaning_(meaning_of(io_)) {}

std::optional<std::string> damage_runner::run(const variant &v, check_outcome *out) {
  io_.write(v.block, v.contents.data(), 1);
  check_outcome o = run_check(io_);
  auto verdict = judge(v.want, o, [&] { return meaning_of(io_); }, original_meaning_, v.ids);
  io_.write(v.block, img_.block(v.block), 1);
  total_++;
  if (o.fatal()) fatal_++;
  else if (!o.records.empty()) non_fatal_only_++;
  else clean_++;
  if (out) *out = std::move(o);
  return verdict;
}

void put32(std::vector<unsigned char> &b, std::size_t off, uint32_t v) { pdata::store_le32(b.data() + off, v); }
void put64(std::vector<unsigned char> &b, std::size_t off, uint64_t v) { pdata::store_le64(b.data() + off, v); }
uint32_t get32(const std::vector<unsigned char> &b, std::size_t off) { return pdata::load_le32(b.data() + off); }
uint64_t get64(const std::vector<unsigned char> &b, std::size_t off) { return pdata::load_le64(b.data() + off); }

std::string block_label(const image &img, const layout &L, block_address b) {
  auto it = L.roles.find(b);
  return fmt::format("{}: block {} ({})", img.name, b, it == L.roles.end() ? "unknown" : to_string(it->second));
}

thin::problem_id validation_problem(role r, const std::string &field) {
  using thin::problem_id;
  const bool blocknr = field == "blocknr" || field == "header blocknr";
  switch (expected_type(r)) {
    case block_type::superblock:
      return blocknr ? problem_id::SB_WRONG_BLOCKNR
                     : field == "magic" ? problem_id::SB_BAD_MAGIC : problem_id::SB_BAD_CHECKSUM;
    case block_type::index_block: return blocknr ? problem_id::SM_INDEX_WRONG_BLOCKNR : problem_id::SM_INDEX_BAD_CHECKSUM;
    case block_type::bitmap: return blocknr ? problem_id::SM_BITMAP_WRONG_BLOCKNR : problem_id::SM_BITMAP_BAD_CHECKSUM;
    default: return blocknr ? problem_id::BTREE_NODE_WRONG_BLOCKNR : problem_id::BTREE_NODE_BAD_CHECKSUM;
  }
}

variant zero_variant(const image &img, const layout &L, block_address b) {
  const role r = L.roles.at(b);
  return {block_label(img, L, b) + ": zeroed", b, std::vector<unsigned char>(bsize, 0), expect::fatal,
          {expected_type(r) == block_type::superblock ? thin::problem_id::SB_ALL_ZERO
                                                      : validation_problem(r, "blocknr")}};
}

std::vector<std::pair<std::size_t, std::string>> flip_offsets(const image &img, const layout &L, block_address b) {
  std::vector<std::pair<std::size_t, std::string>> offs = {{0, "checksum"}, {4095, "last byte"}};
  role r = L.roles.at(b);
  const unsigned char *blk = img.block(b);
  if (is_node(r)) {
    pdata::btree_node_view n(blk);
    const std::size_t nr = n.nr_entries(), max = n.max_entries(), vs = n.value_size();
    const std::size_t values = pdata::node_header_size + 8 * max;
    offs.insert(offs.end(), {{4, "header flags"}, {9, "header blocknr"}, {16, "header nr_entries"},
                             {21, "header max_entries"}, {24, "header value_size"}, {29, "header padding"}});
    if (nr > 0) {
      offs.push_back({32, "first key"});
      offs.push_back({32 + 8 * (nr - 1) + 7, "last key, high byte"});
      offs.push_back({values, "first value"});
      offs.push_back({values + vs * (nr - 1) + vs / 2, "last value"});
    }
    if (nr < max) {
      offs.push_back({32 + 8 * nr + 1, "stale key slot past nr_entries"});
      offs.push_back({values + vs * nr + 2, "stale value slot past nr_entries"});
      offs.push_back({32 + 8 * (max - 1) + 3, "last key slot"});
    }
    if (values + vs * max < bsize) offs.push_back({values + vs * max, "unused tail"});
  } else if (r == role::superblock || r == role::snapshot_superblock) {
    offs.insert(offs.end(), {{4, "flags"},
                             {9, "blocknr"},
                             {20, "uuid"},
                             {33, "magic"},
                             {41, "version"},
                             {44, "time"},
                             {48, "transaction id"},
                             {57, "held root"},
                             {64, "data space map nr_blocks"},
                             {72, "data space map nr_allocated"},
                             {81, "data space map bitmap root"},
                             {100, "data space map root, unused bytes"},
                             {194, "metadata space map nr_blocks"},
                             {208, "metadata space map bitmap root"},
                             {250, "metadata space map root, unused bytes"},
                             {321, "mapping root"},
                             {329, "details root"},
                             {337, "data block size"},
                             {340, "metadata block size"},
                             {346, "metadata nr_blocks"},
                             {352, "compat flags"},
                             {364, "past the superblock struct"},
                             {2048, "middle of the unused area"}});
  } else if (r == role::metadata_index) {
    offs.insert(offs.end(), {{5, "padding"}, {9, "blocknr"}, {16, "index entry 0 blocknr"},
                             {24, "index entry 0 nr_free"}, {28, "index entry 0 none_free_before"},
                             {16 + 16 * 254, "last (unused) index entry"}});
  } else {  // bitmap
    offs.insert(offs.end(), {{5, "not_used"}, {9, "blocknr"}, {16, "first entries"}, {2048, "middle entries"}});
  }
  return offs;
}

std::vector<variant> flip_variants(const image &img, const layout &L, block_address b) {
  std::vector<variant> out;
  for (auto &[off, what] : flip_offsets(img, L, b)) {
    variant v{fmt::format("{}: bit {} of byte {} ({}) flipped", block_label(img, L, b), off % 8, off, what), b,
              img.copy_block(b), expect::fatal, {validation_problem(L.roles.at(b), what)}};
    v.contents[off] = static_cast<unsigned char>(v.contents[off] ^ (1u << (off % 8)));
    out.push_back(std::move(v));
  }
  return out;
}

// Structural damage with the checksum recomputed, so that the checker's

namespace {

class structural_builder {
 public:
  structural_builder(const image &img, const layout &L, block_address b)
      : img_(img), L_(L), b_(b), role_(L.roles.at(b)), label_(block_label(img, L, b)) {}

  std::vector<variant> build() {
    if (is_node(role_)) node();
    else if (role_ == role::superblock) superblock();
    else if (role_ == role::snapshot_superblock) snapshot_superblock();
    else if (role_ == role::metadata_index) metadata_index();
    else bitmap();
    return std::move(out_);
  }

 private:
  using edit_fn = std::function<void(std::vector<unsigned char> &)>;

  void add(const std::string &what, expect want, const edit_fn &edit, std::vector<thin::problem_id> ids = {}) {
    variant v{label_ + ": " + what, b_, img_.copy_block(b_), want, std::move(ids)};
    edit(v.contents);
    pdata::stamp_checksum(v.contents.data(), salt_of(role_));
    out_.push_back(std::move(v));
  }

  // Some used block other than b_ and other than `not_this`, of another kind
  // when there is one.
  block_address other_block(role avoid) const {
    for (auto &[blk, r] : L_.roles)
      if (blk != b_ && blk != 0 && r != avoid && expected_type(r) != block_type::superblock) return blk;
    return 0;
  }

  void node() {
    pdata::btree_node_view n(img_.block(b_));
    const uint32_t nr = n.nr_entries(), max = n.max_entries(), vs = n.value_size();
    const std::size_t values = pdata::node_header_size + 8 * std::size_t(max);
    auto key_off = [](uint32_t i) { return pdata::node_header_size + 8 * std::size_t(i); };
    auto val_off = [&](uint32_t i) { return values + std::size_t(vs) * i; };

    if (nr < max) add("nr_entries + 1", expect::fatal_or_same_meaning, [&](auto &c) { put32(c, 16, nr + 1); });
    if (nr > 0) add("nr_entries - 1", expect::fatal_or_same_meaning, [&](auto &c) { put32(c, 16, nr - 1); });
    if (nr > 1) add("nr_entries = 0", expect::fatal_or_same_meaning, [&](auto &c) { put32(c, 16, 0); });
    add("nr_entries = max_entries + 1", expect::fatal, [&](auto &c) { put32(c, 16, max + 1); },
        {thin::problem_id::BTREE_NODE_TOO_MANY_ENTRIES});
    add("nr_entries = 0xffffffff", expect::fatal, [&](auto &c) { put32(c, 16, 0xffffffffu); });
    if (max >= nr + 3) add("max_entries - 3", expect::fatal_or_same_meaning, [&](auto &c) { put32(c, 20, max - 3); });
    add("max_entries + 3 (no longer fits the block)", expect::fatal, [&](auto &c) { put32(c, 20, max + 3); },
        {thin::problem_id::BTREE_NODE_ENTRIES_DO_NOT_FIT});
    if (nr > 0) add("max_entries = nr_entries - 1", expect::fatal, [&](auto &c) { put32(c, 20, nr - 1); });
    add("value_size + 8 (no longer fits the block)", expect::fatal, [&](auto &c) { put32(c, 24, vs + 8); },
        {thin::problem_id::BTREE_NODE_ENTRIES_DO_NOT_FIT});
    add("value_size - 4", expect::fatal_or_same_meaning, [&](auto &c) { put32(c, 24, vs - 4); });
    add("value_size = 0", expect::fatal_or_same_meaning, [&](auto &c) { put32(c, 24, 0); });
    add("flags = 0", expect::fatal, [&](auto &c) { put32(c, 4, 0); },
        {thin::problem_id::BTREE_NODE_NO_TYPE_FLAG});
    add("flags = 3 (internal and leaf)", expect::fatal_or_same_meaning, [&](auto &c) { put32(c, 4, 3); },
        {thin::problem_id::BTREE_NODE_BOTH_TYPE_FLAGS});
    add("flags = 4 (unknown)", expect::fatal, [&](auto &c) { put32(c, 4, 4); },
        {thin::problem_id::BTREE_NODE_NO_TYPE_FLAG});
    add(n.is_internal() ? "internal node turned into a leaf" : "leaf turned into an internal node",
        expect::fatal_or_same_meaning, [&](auto &c) { put32(c, 4, n.is_internal() ? 2u : 1u); });
    add("blocknr + 1", expect::fatal, [&](auto &c) { put64(c, 8, b_ + 1); }, {validation_problem(role_, "blocknr")});
    add("blocknr = 0", expect::fatal, [&](auto &c) { put64(c, 8, 0); },
        {thin::problem_id::BTREE_NODE_WRONG_BLOCKNR});
    if (nr >= 2) {
      add("keys 0 and 1 swapped", expect::fatal, [&](auto &c) {
        uint64_t k0 = get64(c, key_off(0)), k1 = get64(c, key_off(1));
        put64(c, key_off(0), k1);
        put64(c, key_off(1), k0);
      });
      add("last key equal to the one before", expect::fatal,
          [&](auto &c) { put64(c, key_off(nr - 1), get64(c, key_off(nr - 2))); });
      add("first and last keys swapped", expect::fatal, [&](auto &c) {
        uint64_t k0 = get64(c, key_off(0)), kn = get64(c, key_off(nr - 1));
        put64(c, key_off(0), kn);
        put64(c, key_off(nr - 1), k0);
      });
    }
    // Keys outside the range the parent promises (a node's keys may change
    // freely only where nothing constrains them, e.g. a root's last key).
    const pdata::key_range range = L_.ranges.at(b_);
    if (nr > 0 && range.begin > 0)
      add("first key below the range its parent gives", expect::fatal,
          [&](auto &c) { put64(c, key_off(0), range.begin - 1); });
    if (nr > 0 && range.end)
      add("last key at the end of the range its parent gives", expect::fatal,
          [&](auto &c) { put64(c, key_off(nr - 1), *range.end); });

    if (n.is_internal() && nr > 0) {
      const uint32_t last = nr - 1;
      add("child pointer beyond the end of the device", expect::fatal,
          [&](auto &c) { put64(c, val_off(last), L_.nr_blocks); });
      add("child pointer = 2^63", expect::fatal, [&](auto &c) { put64(c, val_off(0), 1ull << 63); });
      add("child pointer to the node itself (cycle)", expect::fatal, [&](auto &c) { put64(c, val_off(last), b_); },
        {thin::problem_id::BTREE_CYCLE});
      add("child pointer to the superblock", expect::fatal, [&](auto &c) { put64(c, val_off(0), 0); });
      if (block_address o = other_block(role_))
        add(fmt::format("child pointer to block {} ({})", o, to_string(L_.roles.at(o))), expect::fatal,
            [&](auto &c) { put64(c, val_off(0), o); });
      if (nr >= 2) {
        add("child pointer to its sibling", expect::fatal,
            [&](auto &c) { put64(c, val_off(0), get64(c, val_off(1))); });
        add("two children swapped", expect::fatal, [&](auto &c) {
          uint64_t a = get64(c, val_off(0)), z = get64(c, val_off(1));
          put64(c, val_off(0), z);
          put64(c, val_off(1), a);
        });
      }
    }

    if (role_ == role::bottom_leaf && nr > 0) {
      auto set_block = [&](std::vector<unsigned char> &c, uint32_t i, uint64_t db) {
        put64(c, val_off(i), thin::pack_block_time(db, thin::unpack_time(get64(c, val_off(i)))));
      };
      add("mapping to data block nr_data_blocks (just past the end)", expect::fatal,
          [&](auto &c) { set_block(c, 0, L_.nr_data_blocks); });
      add("mapping to data block 2^40 - 1", expect::fatal,
          [&](auto &c) { set_block(c, nr - 1, (1ull << 40) - 1); });
      add("mapping time newer than the superblock's", expect::fatal, [&](auto &c) {
        uint64_t bt = get64(c, val_off(0));
        put64(c, val_off(0), thin::pack_block_time(thin::unpack_block(bt), L_.sb.time + 1));
      });
      if (nr >= 2)
        add("mapping 0 moved onto mapping 1's data block", expect::fatal,
            [&](auto &c) { set_block(c, 0, thin::unpack_block(get64(c, val_off(1)))); });
      add("mapping 0 moved to another (free or used) data block", expect::fatal, [&](auto &c) {
        uint64_t db = thin::unpack_block(get64(c, val_off(0)));
        set_block(c, 0, db + 1 < L_.nr_data_blocks ? db + 1 : db - 1);
      });
    }
    if (role_ == role::top_leaf && nr > 0) {
      add("device subtree root beyond the end of the device", expect::fatal,
          [&](auto &c) { put64(c, val_off(0), L_.nr_blocks + 7); });
      add("device subtree root = this top-level leaf", expect::fatal, [&](auto &c) { put64(c, val_off(0), b_); });
      add("device subtree root = the superblock", expect::fatal, [&](auto &c) { put64(c, val_off(0), 0); });
      if (nr >= 2)
        add("device 0's subtree root = device 1's", expect::fatal,
            [&](auto &c) { put64(c, val_off(0), get64(c, val_off(1))); });
      add("device id of the last device changed", expect::fatal,
          [&](auto &c) { put64(c, key_off(nr - 1), get64(c, key_off(nr - 1)) + 100000); });
    }
    if (role_ == role::details_leaf && nr > 0) {
      add("mapped_blocks + 1", expect::fatal, [&](auto &c) { put64(c, val_off(0), get64(c, val_off(0)) + 1); });
      add("mapped_blocks - 1 of the last device", expect::fatal_or_same_meaning,
          [&](auto &c) { put64(c, val_off(nr - 1), get64(c, val_off(nr - 1)) - 1); });
      add("device id of the last device changed", expect::fatal,
          [&](auto &c) { put64(c, key_off(nr - 1), get64(c, key_off(nr - 1)) + 100000); });
    }
    if (role_ == role::data_index_leaf && nr > 0) {
      add("bitmap 0 location beyond the end of the device", expect::fatal,
          [&](auto &c) { put64(c, val_off(0), L_.nr_blocks); });
      add("bitmap 0 location = the metadata space map's bitmap 0", expect::fatal,
          [&](auto &c) { put64(c, val_off(0), L_.metadata_bitmaps.at(0)); });
      add("bitmap 0 location = this index leaf", expect::fatal, [&](auto &c) { put64(c, val_off(0), b_); });
      add("bitmap 0 nr_free = 0 (free space hidden)", expect::leak, [&](auto &c) { put32(c, val_off(0) + 8, 0); },
        {thin::problem_id::SM_INDEX_NR_FREE_HINT});
      add("bitmap 0 nr_free + 1", expect::not_fatal,
          [&](auto &c) { put32(c, val_off(0) + 8, get32(c, val_off(0) + 8) + 1); });
    }
    if (role_ == role::overflow_leaf && nr > 0) {
      add("count + 1 (leak)", expect::leak, [&](auto &c) { put32(c, val_off(0), get32(c, val_off(0)) + 1); },
        {thin::problem_id::METADATA_REFCOUNT_LEAK, thin::problem_id::DATA_REFCOUNT_LEAK});
      add("count - 1", expect::fatal, [&](auto &c) { put32(c, val_off(0), get32(c, val_off(0)) - 1); },
        {thin::problem_id::METADATA_REFCOUNT_UNDER, thin::problem_id::DATA_REFCOUNT_UNDER});
      add("count = 0", expect::fatal, [&](auto &c) { put32(c, val_off(0), 0); });
    }
  }

  void superblock() {
    using thin::superblock_disk;
    const auto mroot = L_.sb.metadata_sm_root();
    const auto droot = L_.sb.data_sm_root();
    constexpr std::size_t dsm = offsetof(superblock_disk, data_space_map_root);
    constexpr std::size_t msm = offsetof(superblock_disk, metadata_space_map_root);
    constexpr std::size_t mroot_off = offsetof(superblock_disk, data_mapping_root);
    constexpr std::size_t droot_off = offsetof(superblock_disk, device_details_root);
    constexpr std::size_t dbs = offsetof(superblock_disk, data_block_size);
    add("magic + 1", expect::fatal, [&](auto &c) { put64(c, 32, thin::superblock_magic + 1); },
        {thin::problem_id::SB_BAD_MAGIC});
    add("blocknr = 1", expect::fatal, [&](auto &c) { put64(c, 8, 1); });
    add("data_block_size = 129 (not a multiple of 128)", expect::fatal, [&](auto &c) { put32(c, dbs, 129); },
        {thin::problem_id::SB_BAD_DATA_BLOCK_SIZE});
    add("data_block_size = 64", expect::fatal, [&](auto &c) { put32(c, dbs, 64); });
    add("data_block_size = 0", expect::fatal, [&](auto &c) { put32(c, dbs, 0); },
        {thin::problem_id::SB_BAD_DATA_BLOCK_SIZE});
    add("data_block_size + 64", expect::fatal, [&](auto &c) { put32(c, dbs, L_.sb.data_block_size + 64); });
    add("incompat_flags = 1", expect::fatal, [&](auto &c) { put32(c, offsetof(superblock_disk, incompat_flags), 1); },
        {thin::problem_id::SB_INCOMPAT_FLAGS});
    add("compat_ro_flags = 1", expect::fatal,
        [&](auto &c) { put32(c, offsetof(superblock_disk, compat_ro_flags), 1); },
        {thin::problem_id::SB_COMPAT_RO_FLAGS});
    add("mapping root = details root", expect::fatal, [&](auto &c) { put64(c, mroot_off, L_.sb.details_root); });
    add("mapping root beyond the end of the device", expect::fatal,
        [&](auto &c) { put64(c, mroot_off, L_.nr_blocks); });
    add("mapping root = 0 (the superblock)", expect::fatal, [&](auto &c) { put64(c, mroot_off, 0); });
    add("mapping root = the metadata index block", expect::fatal,
        [&](auto &c) { put64(c, mroot_off, mroot.bitmap_root.get()); });
    if (!L_.devices.empty())
      add("mapping root = device 0's mapping subtree", expect::fatal,
          [&](auto &c) { put64(c, mroot_off, L_.devices.front().second); });
    add("details root = mapping root", expect::fatal, [&](auto &c) { put64(c, droot_off, L_.sb.mapping_root); });
    add("details root beyond the end of the device", expect::fatal,
        [&](auto &c) { put64(c, droot_off, L_.nr_blocks + 1); });
    add("details root = the data space map's index root", expect::fatal,
        [&](auto &c) { put64(c, droot_off, droot.bitmap_root.get()); });
    add("metadata space map nr_blocks beyond the device", expect::fatal,
        [&](auto &c) { put64(c, msm + 0, L_.nr_blocks + 1); },
        {thin::problem_id::SB_METADATA_SM_TOO_BIG});
    add("metadata space map nr_blocks = 2^40", expect::fatal, [&](auto &c) { put64(c, msm + 0, 1ull << 40); });
    add("metadata space map nr_blocks = 2^64 - 1", expect::fatal, [&](auto &c) { put64(c, msm + 0, ~0ull); });
    add("metadata space map nr_blocks = 1", expect::fatal, [&](auto &c) { put64(c, msm + 0, 1); });
    add("metadata space map index beyond the end of the device", expect::fatal,
        [&](auto &c) { put64(c, msm + 16, L_.nr_blocks); });
    add("metadata space map index = its bitmap 0", expect::fatal,
        [&](auto &c) { put64(c, msm + 16, L_.metadata_bitmaps.at(0)); });
    add("metadata space map index = the superblock", expect::fatal, [&](auto &c) { put64(c, msm + 16, 0); });
    add("metadata space map ref count tree = the data space map's", expect::fatal,
        [&](auto &c) { put64(c, msm + 24, droot.ref_count_root.get()); });
    add("metadata space map ref count tree beyond the end", expect::fatal,
        [&](auto &c) { put64(c, msm + 24, L_.nr_blocks + 3); });
    add("data space map nr_blocks = 2^62", expect::fatal, [&](auto &c) { put64(c, dsm + 0, 1ull << 62); });
    add("data space map nr_blocks = 2^64 - 1", expect::fatal, [&](auto &c) { put64(c, dsm + 0, ~0ull); },
        {thin::problem_id::SB_DATA_SM_TOO_BIG});
    add("data space map nr_blocks = 2^40", expect::fatal, [&](auto &c) { put64(c, dsm + 0, 1ull << 40); });
    add("data space map nr_blocks = 0", expect::fatal, [&](auto &c) { put64(c, dsm + 0, 0); });
    add("data space map index = the metadata index block", expect::fatal,
        [&](auto &c) { put64(c, dsm + 16, mroot.bitmap_root.get()); });
    add("data space map index beyond the end", expect::fatal, [&](auto &c) { put64(c, dsm + 16, L_.nr_blocks); });
    add("data space map ref count tree = the metadata space map's", expect::fatal,
        [&](auto &c) { put64(c, dsm + 24, mroot.ref_count_root.get()); });
    // A root's nr_allocated below what the bitmaps hold is a leak the root's
    // count did not follow (auto-repair rewrites it); above, a stale hint.
    add("metadata space map nr_allocated - 1", expect::leak,
        [&](auto &c) { put64(c, msm + 8, mroot.nr_allocated.get() - 1); },
        {thin::problem_id::SM_NR_ALLOCATED_UNDERSTATED});
    add("metadata space map nr_allocated + 1", expect::reported,
        [&](auto &c) { put64(c, msm + 8, mroot.nr_allocated.get() + 1); },
        {thin::problem_id::SM_NR_ALLOCATED_OVERSTATED});
    add("data space map nr_allocated - 1", expect::leak,
        [&](auto &c) { put64(c, dsm + 8, droot.nr_allocated.get() - 1); },
        {thin::problem_id::SM_NR_ALLOCATED_UNDERSTATED});
    add("data space map nr_allocated + 1", expect::reported,
        [&](auto &c) { put64(c, dsm + 8, droot.nr_allocated.get() + 1); },
        {thin::problem_id::SM_NR_ALLOCATED_OVERSTATED});
    if (!L_.sb.held_root) {
      add("held_root = the mapping root", expect::fatal,
          [&](auto &c) { put64(c, offsetof(superblock_disk, held_root), L_.sb.mapping_root); });
      add("held_root beyond the end", expect::fatal,
          [&](auto &c) { put64(c, offsetof(superblock_disk, held_root), L_.nr_blocks); });
    } else {
      // The snapshot's blocks are leaked: nothing else tells a dropped
      // snapshot from a released one.
      add("held_root = 0 (metadata snapshot dropped)", expect::reported,
          [&](auto &c) { put64(c, offsetof(superblock_disk, held_root), 0); });
      add("held_root + 1", expect::fatal,
          [&](auto &c) { put64(c, offsetof(superblock_disk, held_root), L_.sb.held_root + 1); });
    }
    if (L_.max_mapping_time > 0)
      add("time older than the newest mapping", expect::fatal,
          [&](auto &c) { put32(c, offsetof(superblock_disk, time), L_.max_mapping_time - 1); });
    // Meaning-preserving changes the checker must not call fatal.
    add("unused bytes of the space map roots changed", expect::not_fatal, [&](auto &c) {
      c[dsm + 40] ^= 0x5a;
      c[msm + 100] ^= 0xa5;
    });
    add("bytes past the superblock struct changed", expect::not_fatal, [&](auto &c) { c[3000] ^= 0xff; });
    add("metadata_nr_blocks (stale after resize) changed", expect::not_fatal,
        [&](auto &c) { put64(c, offsetof(superblock_disk, metadata_nr_blocks), 12345); });
  }

  void snapshot_superblock() {
    constexpr std::size_t mroot_off = offsetof(thin::superblock_disk, data_mapping_root);
    constexpr std::size_t droot_off = offsetof(thin::superblock_disk, device_details_root);
    add("magic + 1", expect::fatal, [&](auto &c) { put64(c, 32, thin::superblock_magic + 1); },
        {thin::problem_id::SB_BAD_MAGIC});
    add("blocknr = 0", expect::fatal, [&](auto &c) { put64(c, 8, 0); }, {thin::problem_id::SB_WRONG_BLOCKNR});
    add("mapping root beyond the end", expect::fatal, [&](auto &c) { put64(c, mroot_off, L_.nr_blocks); });
    add("mapping root = details root", expect::fatal,
        [&](auto &c) { put64(c, mroot_off, get64(c, droot_off)); });
    add("details root = 0", expect::fatal, [&](auto &c) { put64(c, droot_off, 0); });
  }

  void metadata_index() {
    auto *idx = reinterpret_cast<const pdata::metadata_index_disk *>(img_.block(b_));
    const std::size_t e0 = offsetof(pdata::metadata_index_disk, index);
    const uint64_t nr = L_.metadata_bitmaps.size();
    // Free entries in bitmap 0 within the space map's nr_blocks.
    uint32_t free0 = 0, first_free0 = pdata::entries_per_bitmap;
    for (uint32_t e = 0; e < pdata::entries_per_bitmap && e < L_.nr_metadata_sm_blocks; e++)
      if (!L_.meta_counts.get(e)) {
        free0++;
        if (first_free0 == pdata::entries_per_bitmap) first_free0 = e;
      }
    add("blocknr + 1", expect::fatal, [&](auto &c) { put64(c, 8, b_ + 1); }, {validation_problem(role_, "blocknr")});
    add("bitmap 0 location beyond the end of the device", expect::fatal,
        [&](auto &c) { put64(c, e0, L_.nr_blocks); },
        {thin::problem_id::SM_BITMAP_BEYOND_END});
    add("bitmap 0 location = the superblock", expect::fatal, [&](auto &c) { put64(c, e0, 0); });
    add("bitmap 0 location = this index block", expect::fatal, [&](auto &c) { put64(c, e0, b_); });
    add("bitmap 0 location = the data space map's bitmap 0", expect::fatal,
        [&](auto &c) { put64(c, e0, L_.data_bitmaps.at(0)); });
    add("bitmap 0 location + 1", expect::fatal, [&](auto &c) { put64(c, e0, idx->index[0].blocknr.get() + 1); });
    if (nr >= 2)
      add("bitmaps 0 and 1 swapped", expect::fatal, [&](auto &c) {
        uint64_t a = get64(c, e0), z = get64(c, e0 + 16);
        put64(c, e0, z);
        put64(c, e0 + 16, a);
      });
    if (free0 > 0) {
      add("bitmap 0 nr_free one below the free entries (free space hidden)", expect::leak,
          [&](auto &c) { put32(c, e0 + 8, free0 - 1); },
        {thin::problem_id::SM_INDEX_NR_FREE_HINT});
      add("bitmap 0 nr_free = 0 (free space hidden)", expect::leak, [&](auto &c) { put32(c, e0 + 8, 0); },
        {thin::problem_id::SM_INDEX_NR_FREE_HINT});
      add("bitmap 0 none_free_before past the first free entry", expect::leak,
          [&](auto &c) { put32(c, e0 + 12, first_free0 + 1); },
        {thin::problem_id::SM_INDEX_NONE_FREE_BEFORE_HINT});
    }
    add("bitmap 0 nr_free + 1 (over-stated: harmless)", expect::not_fatal,
        [&](auto &c) { put32(c, e0 + 8, idx->index[0].nr_free.get() + 1); });
    add("an unused index entry filled in", expect::fatal_or_same_meaning, [&](auto &c) {
      put64(c, e0 + 16 * nr, L_.metadata_bitmaps.at(0));
      put32(c, e0 + 16 * nr + 8, 5);
    });
  }

  void bitmap() {
    const bitmap_place place = L_.bitmaps.at(b_);
    const pdata::ref_counts &counts = place.data ? L_.data_counts : L_.meta_counts;
    const uint64_t nr_blocks = counts.size();
    const block_address first = place.index * pdata::entries_per_bitmap;
    const block_address end = std::min<block_address>(first + pdata::entries_per_bitmap, nr_blocks);
    auto set_entry = [](std::vector<unsigned char> &c, block_address e, uint32_t v) {
      pdata::bitmap_set(c.data() + sizeof(pdata::bitmap_header_disk), static_cast<uint32_t>(e), v);
    };
    std::optional<block_address> one, two, free_one, last_used;
    for (block_address blk = first; blk < end; blk++) {
      uint32_t c = counts.get(blk);
      if (c == 1 && !one) one = blk;
      if (c == 2 && !two) two = blk;
      if (c == 0 && !free_one) free_one = blk;
      if (c) last_used = blk;
    }
    add("blocknr + 1", expect::fatal, [&](auto &c) { put64(c, 8, b_ + 1); }, {validation_problem(role_, "blocknr")});
    if (one) {
      block_address e = *one - first;
      add(fmt::format("count of block {} raised 1 -> 2 (leak)", *one), expect::leak,
          [&](auto &c) { set_entry(c, e, 2); });
      add(fmt::format("count of block {} lowered 1 -> 0", *one), expect::fatal, [&](auto &c) { set_entry(c, e, 0); });
      add(fmt::format("count of block {} set to 3 with no ref count tree entry", *one), expect::fatal,
          [&](auto &c) { set_entry(c, e, 3); });
    }
    if (two) {
      block_address e = *two - first;
      add(fmt::format("count of block {} lowered 2 -> 1", *two), expect::fatal, [&](auto &c) { set_entry(c, e, 1); });
      add(fmt::format("count of block {} raised 2 -> 3 with no ref count tree entry", *two), expect::fatal,
          [&](auto &c) { set_entry(c, e, 3); });
    }
    if (last_used && (!one || *last_used != *one)) {
      block_address e = *last_used - first;
      add(fmt::format("count of the last used block {} set to 0", *last_used), expect::fatal,
          [&](auto &c) { set_entry(c, e, 0); });
    }
    if (free_one) {
      block_address e = *free_one - first;
      add(fmt::format("free block {} marked used (leak)", *free_one), expect::reported,
          [&](auto &c) { set_entry(c, e, 1); });
    }
    if (end < first + pdata::entries_per_bitmap)
      add("an entry past the space map's end set", expect::leak,
          [&](auto &c) { set_entry(c, pdata::entries_per_bitmap - 1, 1); },
        {thin::problem_id::SM_ENTRIES_BEYOND_END});
  }

  const image &img_;
  const layout &L_;
  block_address b_;
  role role_;
  std::string label_;
  std::vector<variant> out_;
};

}  // namespace

std::vector<variant> structural_variants(const image &img, const layout &L, block_address b) {
  return structural_builder(img, L, b).build();
}

//------------------------------------------------------------------ the real tool

scratch_image::scratch_image(const image &img, const test::temp_dir &dir)
    : img_(img), path_(dir.file(img.name + ".img")) {
  test::write_binary(path_, {});
  std::filesystem::resize_file(path_, img.bytes.size());
  static const std::vector<unsigned char> zero(bsize, 0);
  for (block_address b = 0; b < img.nr_blocks(); b++)
    if (std::memcmp(img.block(b), zero.data(), bsize) != 0) put_block(b, img.block(b));
}

void scratch_image::put_block(block_address b, const unsigned char *data) {
  std::fstream f(path_, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(b * bsize));
  f.write(reinterpret_cast<const char *>(data), static_cast<std::streamsize>(bsize));
  if (!f) throw std::runtime_error("cannot write " + path_);
}

bool scratch_image::holds(block_address b, const std::vector<unsigned char> &contents) const {
  std::ifstream in(path_, std::ios::binary);
  std::vector<char> buf(256 * bsize);
  std::size_t pos = 0;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const std::size_t got = static_cast<std::size_t>(in.gcount());
    if (pos + got > img_.bytes.size()) return false;
    for (std::size_t off = 0; off < got; off += bsize) {
      const std::size_t at = pos + off, len = std::min(bsize, got - off);
      const unsigned char *want = at / bsize == b ? contents.data() : img_.bytes.data() + at;
      if (std::memcmp(buf.data() + off, want, len) != 0) return false;
    }
    pos += got;
  }
  return pos == img_.bytes.size();
}

//------------------------------------------------------------------ watchdog

watchdog::watchdog(std::chrono::seconds step_limit, std::chrono::seconds total_limit)
    : step_limit_(step_limit),
      total_deadline_(std::chrono::steady_clock::now() + total_limit),
      step_deadline_(std::chrono::steady_clock::now() + step_limit),
      thread_([this] { watch(); }) {}

watchdog::~watchdog() {
  {
    std::lock_guard<std::mutex> g(m_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void watchdog::step(const std::string &what) {
  std::lock_guard<std::mutex> g(m_);
  what_ = what;
  step_deadline_ = std::chrono::steady_clock::now() + step_limit_;
}

void watchdog::watch() {
  std::unique_lock<std::mutex> lk(m_);
  while (!stop_) {
    auto deadline = std::min(step_deadline_, total_deadline_);
    if (std::chrono::steady_clock::now() >= deadline) {
      std::fprintf(stderr, "watchdog: %s still running past its time limit: %s\n",
                   step_deadline_ <= total_deadline_ ? "one step" : "the test", what_.c_str());
      std::fflush(stderr);
      std::abort();
    }
    cv_.wait_until(lk, deadline);
  }
}

}  // namespace dmg
