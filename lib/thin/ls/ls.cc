// thin_ls: device table and the exclusive-block count (see ls.h).
#include "thin/ls/ls.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "persistent-data/btree_node.h"
#include "thin/format/superblock.h"
#include "persistent-data/btree_walk.h"
#include "persistent-data/errors.h"
#include "persistent-data/run_reader.h"
#include "thin/format/thin_trees.h"

namespace thin {

using namespace pdata;

const std::vector<std::pair<ls_field, const char *>> &ls_field_names() {
  static const std::vector<std::pair<ls_field, const char *>> names{
      {ls_field::dev, "DEV"},
      {ls_field::mapped_blocks, "MAPPED_BLOCKS"},
      {ls_field::exclusive_blocks, "EXCLUSIVE_BLOCKS"},
      {ls_field::shared_blocks, "SHARED_BLOCKS"},
      {ls_field::mapped_sectors, "MAPPED_SECTORS"},
      {ls_field::exclusive_sectors, "EXCLUSIVE_SECTORS"},
      {ls_field::shared_sectors, "SHARED_SECTORS"},
      {ls_field::mapped_bytes, "MAPPED_BYTES"},
      {ls_field::exclusive_bytes, "EXCLUSIVE_BYTES"},
      {ls_field::shared_bytes, "SHARED_BYTES"},
      {ls_field::mapped, "MAPPED"},
      {ls_field::exclusive, "EXCLUSIVE"},
      {ls_field::shared, "SHARED"},
      {ls_field::transaction, "TRANSACTION"},
      {ls_field::create_time, "CREATE_TIME"},
      {ls_field::snap_time, "SNAP_TIME"},
  };
  return names;
}

std::vector<ls_field> parse_ls_fields(const std::string &list) {
  // Split as getline(',') does: "A," is one item, "A,,B" has an empty one.
  std::vector<ls_field> fields;
  std::size_t pos = 0;
  while (pos < list.size()) {
    std::size_t comma = list.find(',', pos);
    if (comma == std::string::npos) comma = list.size();
    std::string item = list.substr(pos, comma - pos);
    auto &names = ls_field_names();
    auto it = std::find_if(names.begin(), names.end(), [&](auto &n) { return item == n.second; });
    if (it == names.end()) throw pdata::bad_input_error(fmt::format("unknown field '{}'", item));
    fields.push_back(it->first);
    pos = comma + 1;
  }
  return fields;
}

std::string format_sectors(uint64_t sectors) {
  static const char *units[] = {"", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  uint64_t n = sectors * 512;
  unsigned i = 0;
  while (n > 1024ull * 1024) {
    n /= 1024;
    i++;
  }
  if (n > 8 * 1024) {
    n = static_cast<uint64_t>(std::round(static_cast<double>(n) / 1024.0));
    i++;
  }
  return fmt::format("{}{}", n, units[std::min<unsigned>(i, 6)]);
}

namespace {

// Per-data-block slots of type T in pages allocated as blocks are met:
// memory follows the mappings read, never a block number taken from the
// metadata. Pages below 2^20 pages are found through a directory that grows
// to the highest page met (8 bytes a page); a damaged mapping to a block
// beyond that goes to a hash map. Lookups are random accesses into megabytes,
// so callers prefetch the slots of the entries a few ahead (prefetch()).
template <class T>
class paged_slots {
 public:
  static constexpr unsigned page_shift = 14;  // slots a page: 2^14
  static constexpr std::size_t page_slots = std::size_t(1) << page_shift;

  T *slot(uint64_t i, bool create) {
    const uint64_t page = i >> page_shift;
    if (page < max_dir_pages) {
      if (page >= dir_.size()) {
        if (!create) return nullptr;
        dir_.resize(page + 1);
      }
      page_ptr &p = dir_[page];
      if (!p) {
        if (!create) return nullptr;
        p = new_page();
      }
      return p.get() + (i & (page_slots - 1));
    }
    auto it = far_.find(page);
    if (it == far_.end()) {
      if (!create) return nullptr;
      it = far_.emplace(page, new_page()).first;
    }
    return it->second.get() + (i & (page_slots - 1));
  }
  void prefetch(uint64_t i) const {
    const uint64_t page = i >> page_shift;
    if (page < dir_.size() && dir_[page]) __builtin_prefetch(dir_[page].get() + (i & (page_slots - 1)), 1);
  }
  std::size_t bytes() const { return pages_ * page_slots * sizeof(T); }
  // fn(first index of the page, the page's slots) for every page allocated.
  template <class F>
  void for_each_page(F fn) const {
    for (std::size_t p = 0; p < dir_.size(); p++)
      if (dir_[p]) fn(uint64_t(p) << page_shift, dir_[p].get());
    for (auto &[p, page] : far_) fn(p << page_shift, page.get());
  }

 private:
  static constexpr uint64_t max_dir_pages = uint64_t(1) << 20;
  using page_ptr = std::unique_ptr<T[]>;
  page_ptr new_page() {
    pages_++;
    return page_ptr(new T[page_slots]());
  }

  std::vector<page_ptr> dir_;
  std::unordered_map<uint64_t, page_ptr> far_;
  std::size_t pages_ = 0;
};

// 2-bit saturating counts (0, 1, 2 = "2 or more") of data blocks, four to a
// byte.
class data_counts {
 public:
  void add(uint64_t b, uint64_t n) {
    unsigned char &byte = *bytes_.slot(b >> 2, true);
    unsigned shift = static_cast<unsigned>(b & 3) * 2;
    uint64_t v = (byte >> shift) & 3u;
    uint64_t nv = std::min<uint64_t>(2, v + n);
    byte = static_cast<unsigned char>((byte & ~(3u << shift)) | (nv << shift));
  }
  unsigned get(uint64_t b) {
    const unsigned char *p = bytes_.slot(b >> 2, false);
    return p ? (*p >> (static_cast<unsigned>(b & 3) * 2)) & 3u : 0;
  }
  void prefetch(uint64_t b) const { bytes_.prefetch(b >> 2); }

 private:
  paged_slots<unsigned char> bytes_;
};

// Who maps each data block, for the count in one pass: 0 nobody yet; the
// device (its ordinal plus one) whose single path first mapped it; `shared`
// once a second path (of any device, or the same one) maps it, or a path of
// a node several paths reach. 2 bytes a block met.
class data_owners {
 public:
  static constexpr uint16_t shared = UINT16_MAX;
  static constexpr std::size_t max_devices = shared - 1;

  void add(uint64_t b, uint16_t owner) {  // owner 0: a node several paths reach
    uint16_t &s = *slots_.slot(b, true);
    s = s == 0 && owner != 0 ? owner : shared;
  }
  void prefetch(uint64_t b) const { slots_.prefetch(b); }
  std::size_t bytes() const { return slots_.bytes(); }
  // The same knowledge as counts: owned = 1, shared = 2 or more.
  void to_counts(data_counts &counts) const {
    slots_.for_each_page([&](uint64_t first, const uint16_t *page) {
      for (std::size_t k = 0; k < paged_slots<uint16_t>::page_slots; k++)
        if (page[k]) counts.add(first + k, page[k] == shared ? 2 : 1);
    });
  }
  // Blocks owned, per owner (index: ordinal plus one).
  std::vector<uint64_t> owned(std::size_t nr_devices) const {
    std::vector<uint64_t> n(nr_devices + 1, 0);
    slots_.for_each_page([&](uint64_t, const uint16_t *page) {
      for (std::size_t k = 0; k < paged_slots<uint16_t>::page_slots; k++)
        if (page[k] != 0 && page[k] != shared && page[k] <= nr_devices) n[page[k]]++;
    });
    return n;
  }

 private:
  paged_slots<uint16_t> slots_;
};

constexpr uint32_t prefetch_distance = 32;  // leaf entries ahead

struct node_info {
  block_address block = 0;
  uint64_t paths = 0;      // device paths reaching this node
  uint64_t exclusive = 0;  // mappings below it whose block only one path maps
  uint32_t first_child = 0, nr_children = 0;  // into the children list
  uint32_t indegree = 0;
  uint8_t height = 0;  // 1: a leaf; 0: not known (the tree's heights were not trusted)
  bool leaf = false;
  uint16_t owner = 0;  // one path reaches it: its device's ordinal plus one (data_owners); else 0
};
static_assert(sizeof(node_info) == 40);

// Block -> node number: a dense array over the metadata device's blocks up
// to 2^24 (64 MiB; a metadata device has at most 4,161,600), a hash map
// beyond (blocks no valid tree points to, in a file larger than any
// metadata device).
class node_index {
 public:
  static constexpr uint32_t none = UINT32_MAX;
  explicit node_index(block_address nr_blocks)
      : dense_(static_cast<std::size_t>(std::min<block_address>(nr_blocks, dense_limit)), none) {}
  uint32_t &at(block_address b) { return b < dense_.size() ? dense_[b] : far_.try_emplace(b, none).first->second; }

 private:
  static constexpr block_address dense_limit = block_address(1) << 24;
  std::vector<uint32_t> dense_;
  std::unordered_map<block_address, uint32_t> far_;
};

[[noreturn]] void mapping_damage(block_address b, const std::string &why) {
  throw metadata_error(fmt::format("mapping tree: block {}: {}", b, why));
}

// Thrown when the trees are not balanced as heights predicted; the count
// starts again reading every node.
struct unbalanced {};

block_ref read_node(block_cache &cache, block_address b) {
  if (b >= cache.nr_blocks())
    mapping_damage(b, fmt::format("node beyond the end of the metadata ({} blocks)", cache.nr_blocks()));
  block_ref buf;
  try {
    buf = cache.read(b);
  } catch (const io_error &e) {
    mapping_damage(b, e.what());
  }
  if (auto err = validate_btree_node(buf->raw(), b, 8)) mapping_damage(b, *err);
  return buf;
}

// The height of the tree under `root` (1: the root is a leaf), from its
// leftmost path.
uint8_t tree_height(block_cache &cache, block_address root) {
  block_address b = root;
  for (uint8_t h = 1; h <= max_btree_depth; h++) {
    block_ref buf = read_node(cache, b);
    btree_node_view n(buf->raw());
    if (n.is_leaf()) return h;
    if (n.nr_entries() == 0) mapping_damage(b, "an internal node with no entries");
    b = n.value64(0);
  }
  throw unbalanced{};  // a cycle on the leftmost path, named by the full walk
}

std::map<uint64_t, uint64_t> count_exclusive(block_cache &cache, const std::map<uint64_t, block_address> &roots,
                                             progress &prog, bool trust_heights, std::size_t owners_budget) {
  std::vector<node_info> nodes;
  node_index index(cache.nr_blocks());
  std::vector<uint32_t> children;
  std::vector<uint32_t> todo;
  data_counts counts;

  auto node_of = [&](block_address b, uint8_t height) -> uint32_t {
    if (b >= cache.nr_blocks())
      mapping_damage(b, fmt::format("node beyond the end of the metadata ({} blocks)", cache.nr_blocks()));
    uint32_t &i = index.at(b);
    if (i == node_index::none) {
      if (nodes.size() >= node_index::none) mapping_damage(b, "more nodes than a metadata device can hold");
      i = static_cast<uint32_t>(nodes.size());
      node_info n;
      n.block = b;
      n.height = height;
      n.leaf = height == 1;
      nodes.push_back(n);
      if (!n.leaf) todo.push_back(i);
    } else if (nodes[i].height != height) {
      throw unbalanced{};
    }
    return i;
  };

  // Discover the internal nodes once; with trusted heights, the nodes one
  // level above the leaves list their children as leaves without reading
  // them (they are read below, in disk order, in large requests).
  {
    uint16_t ordinal = 0;
    for (auto &[dev, root] : roots) {
      node_info &n = nodes[node_of(root, trust_heights ? tree_height(cache, root) : 0)];
      n.paths++;
      n.owner = roots.size() <= data_owners::max_devices ? ++ordinal : 0;
    }
  }
  while (!todo.empty()) {
    uint32_t i = todo.back();
    todo.pop_back();
    const block_address b = nodes[i].block;
    block_ref buf = read_node(cache, b);
    btree_node_view n(buf->raw());
    if (n.is_leaf()) {
      if (trust_heights) throw unbalanced{};
      nodes[i].leaf = true;
      continue;
    }
    prog.advance(1);
    const uint8_t child_height = trust_heights ? static_cast<uint8_t>(nodes[i].height - 1) : 0;
    nodes[i].first_child = static_cast<uint32_t>(children.size());
    nodes[i].nr_children = n.nr_entries();
    for (uint32_t e = 0; e < n.nr_entries(); e++) {
      uint32_t c = node_of(n.value64(e), child_height);
      children.push_back(c);
      if (++nodes[c].indegree == 0) mapping_damage(n.value64(e), "referenced more than 2^32 times");
    }
  }

  // Paths, in topological order (a node is done when all its parents are).
  std::vector<uint32_t> order;
  order.reserve(nodes.size());
  for (uint32_t i = 0; i < nodes.size(); i++)
    if (nodes[i].indegree == 0) order.push_back(i);
  for (std::size_t k = 0; k < order.size(); k++) {
    const node_info &n = nodes[order[k]];
    for (uint32_t j = 0; j < n.nr_children; j++) {
      node_info &c = nodes[children[n.first_child + j]];
      c.paths = std::min<uint64_t>(c.paths + n.paths, uint64_t(1) << 62);
      c.owner = n.owner;  // stands only when one path reaches c: then n is its one parent
      if (--c.indegree == 0) order.push_back(children[n.first_child + j]);
    }
  }
  for (node_info &n : nodes)
    if (n.paths != 1) n.owner = 0;
  if (order.size() != nodes.size()) {
    auto it = std::find_if(nodes.begin(), nodes.end(), [](const node_info &n) { return n.indegree != 0; });
    mapping_damage(it->block, "the node is its own descendant (a cycle)");
  }

  // The leaves, in disk order, in large requests. In one pass while the
  // owner of every block met fits in `owners_budget` bytes (data_owners): a
  // device's exclusive blocks are those it owns at the end. Past the budget
  // (or with too many devices for 16-bit owners), the owners become 2-bit
  // counts and the pass goes on counting: every leaf adds its blocks once per
  // path reaching it; then a second pass over the leaves one path reaches
  // counts their blocks whose count is exactly one.
  std::vector<uint32_t> leaves;
  for (uint32_t i = 0; i < nodes.size(); i++)
    if (nodes[i].leaf) leaves.push_back(i);
  std::sort(leaves.begin(), leaves.end(), [&](uint32_t a, uint32_t b) { return nodes[a].block < nodes[b].block; });
  block_io &io = cache.io();
  std::unique_ptr<data_owners> owners;
  if (roots.size() <= data_owners::max_devices && owners_budget > 0) owners = std::make_unique<data_owners>();
  auto read_leaves = [&](const std::vector<uint32_t> &list, bool first_pass) {
    auto runs = plan_runs(list.size(), [&](std::size_t i) { return nodes[list[i]].block; });
    auto usable = [&](const block_run &r, const block_buffer *buf) {
      for (std::size_t x = r.first; x < r.last; x++) {
        const block_address b = nodes[list[x]].block;
        const unsigned char *p = buf[b - r.start].raw();
        if (validate_btree_node(p, b, 8) || !btree_node_view(p).is_leaf()) return false;
      }
      return true;
    };
    auto consume = [&](const block_run &r, const block_buffer *buf) {
      for (std::size_t x = r.first; x < r.last; x++) {
        node_info &leaf = nodes[list[x]];
        btree_node_view n(buf[leaf.block - r.start].raw());
        const uint32_t nr = n.nr_entries();
        if (owners) {
          for (uint32_t e = 0; e < nr; e++) {
            if (e + prefetch_distance < nr) owners->prefetch(unpack_block(n.value64(e + prefetch_distance)));
            owners->add(unpack_block(n.value64(e)), leaf.owner);
          }
          continue;
        }
        for (uint32_t e = 0; e < nr; e++) {
          if (e + prefetch_distance < nr) counts.prefetch(unpack_block(n.value64(e + prefetch_distance)));
          const uint64_t data = unpack_block(n.value64(e));
          if (first_pass)
            counts.add(data, leaf.paths);
          else if (counts.get(data) == 1)
            leaf.exclusive++;
        }
      }
      if (first_pass) prog.advance(r.last - r.first);
      if (owners && owners->bytes() > owners_budget) {
        owners->to_counts(counts);
        owners.reset();
      }
    };
    const std::size_t stopped = read_runs(io, runs, usable, consume);
    if (stopped == runs.size()) return;
    // Name the leaf that could not be used.
    for (std::size_t x = runs[stopped].first; x < runs[stopped].last; x++) {
      const block_address b = nodes[list[x]].block;
      cache.forget(b);
      block_ref buf = read_node(cache, b);
      if (!btree_node_view(buf->raw()).is_leaf()) {
        if (trust_heights) throw unbalanced{};
        mapping_damage(b, "an internal node where a leaf was read before");
      }
    }
    mapping_damage(nodes[list[runs[stopped].first]].block, "the leaves here could not be read together");
  };
  read_leaves(leaves, true);
  if (owners) {
    const std::vector<uint64_t> owned = owners->owned(roots.size());
    std::map<uint64_t, uint64_t> result;
    for (auto &[dev, root] : roots) {
      const node_info &n = nodes[index.at(root)];
      result[dev] = n.owner ? owned[n.owner] : 0;  // a root two devices share: nothing exclusive
    }
    return result;
  }
  leaves.erase(std::remove_if(leaves.begin(), leaves.end(), [&](uint32_t i) { return nodes[i].paths > 1; }),
               leaves.end());
  read_leaves(leaves, false);

  // Sums bottom-up, each node once.
  for (auto k = order.size(); k-- > 0;) {
    node_info &n = nodes[order[k]];
    for (uint32_t j = 0; j < n.nr_children; j++) n.exclusive += nodes[children[n.first_child + j]].exclusive;
  }

  std::map<uint64_t, uint64_t> result;
  for (auto &[dev, root] : roots) result[dev] = nodes[index.at(root)].exclusive;
  return result;
}

}  // namespace

std::map<uint64_t, uint64_t> count_exclusive_blocks(block_cache &cache,
                                                    const std::map<uint64_t, block_address> &roots, progress *p,
                                                    std::size_t owners_budget) {
  progress &prog = or_null(p);
  try {
    return count_exclusive(cache, roots, prog, true, owners_budget);
  } catch (const unbalanced &) {
    // Leaves at different depths: no kernel writes that, but the count is
    // still defined; read every node to find the leaves.
    return count_exclusive(cache, roots, prog, false, owners_budget);
  }
}

namespace {

bool needs_exclusive(const std::vector<ls_field> &fields) {
  for (ls_field f : fields) switch (f) {
      case ls_field::exclusive_blocks:
      case ls_field::shared_blocks:
      case ls_field::exclusive_sectors:
      case ls_field::shared_sectors:
      case ls_field::exclusive_bytes:
      case ls_field::shared_bytes:
      case ls_field::exclusive:
      case ls_field::shared:
        return true;
      default:
        break;
    }
  return false;
}

std::string cell(ls_field f, uint64_t dev, const device_details &d, uint64_t exclusive, uint64_t block_size) {
  uint64_t shared = d.mapped_blocks - exclusive;  // wraps on inconsistent metadata, as 0.9.0
  switch (f) {
    case ls_field::dev:
      return std::to_string(dev);
    case ls_field::mapped_blocks:
      return std::to_string(d.mapped_blocks);
    case ls_field::exclusive_blocks:
      return std::to_string(exclusive);
    case ls_field::shared_blocks:
      return std::to_string(shared);
    case ls_field::mapped_sectors:
      return std::to_string(d.mapped_blocks * block_size);
    case ls_field::exclusive_sectors:
      return std::to_string(exclusive * block_size);
    case ls_field::shared_sectors:
      return std::to_string(shared * block_size);
    case ls_field::mapped_bytes:
      return std::to_string(d.mapped_blocks * block_size * 512);
    case ls_field::exclusive_bytes:
      return std::to_string(exclusive * block_size * 512);
    case ls_field::shared_bytes:
      return std::to_string(shared * block_size * 512);
    case ls_field::mapped:
      return format_sectors(d.mapped_blocks * block_size);
    case ls_field::exclusive:
      return format_sectors(exclusive * block_size);
    case ls_field::shared:
      return format_sectors(shared * block_size);
    case ls_field::transaction:
      return std::to_string(d.transaction_id);
    case ls_field::create_time:
      return std::to_string(d.creation_time);
    case ls_field::snap_time:
      return std::to_string(d.snapshotted_time);
  }
  return {};
}

}  // namespace

void ls_metadata(block_io &io, const ls_options &opts, text_sink &out) {
  auto [sb, nr_data_blocks] = select_superblock(io, opts.use_metadata_snap, opts.metadata_snap_location);
  (void)nr_data_blocks;
  block_cache cache(io);
  auto details = read_details_tree(cache, sb.details_root, [](const btree_damage &d) {
    throw metadata_error(fmt::format("device details tree: block {}: {}", d.block, d.what));
  });

  std::map<uint64_t, uint64_t> exclusive;
  if (needs_exclusive(opts.fields)) {
    auto top = read_mapping_top_level(cache, sb.mapping_root, [](const btree_damage &d) {
      throw metadata_error(fmt::format("mapping tree: block {}: {}", d.block, d.what));
    });
    std::map<uint64_t, block_address> roots;
    for (auto &[dev, root] : top)
      if (details.count(dev)) roots[dev] = root;
    for (auto &[dev, d] : details)
      if (!roots.count(dev)) throw metadata_error(fmt::format("device {} has no mapping tree", dev));
    progress &prog = or_null(opts.progress);
    const superblock live = read_superblock(io, 0);
    prog.begin("counting shared blocks", live.metadata_sm_root().nr_allocated.get(), "metadata blocks");
    // One pass needs 2 bytes per data block in use: when the data space map
    // says more are in use than the budget holds, count in two passes from
    // the start rather than build the owners only to drop them halfway (the
    // count stays right whatever the space map says: the budget is enforced
    // as blocks are met).
    const bool one_pass = live.data_sm_root().nr_allocated.get() <= default_owners_budget / 2;
    exclusive = count_exclusive_blocks(cache, roots, &prog, one_pass ? default_owners_budget : 0);
    prog.end();
  }

  // 0.9.0's grid: every column right-aligned to its widest cell, each cell
  // followed by one space.
  std::vector<std::vector<std::string>> rows;
  if (opts.headers) {
    std::vector<std::string> head;
    for (ls_field f : opts.fields)
      for (auto &n : ls_field_names())
        if (n.first == f) head.push_back(n.second);
    rows.push_back(std::move(head));
  }
  for (auto &[dev, d] : details) {
    std::vector<std::string> row;
    uint64_t ex = exclusive.count(dev) ? exclusive[dev] : 0;
    for (ls_field f : opts.fields) row.push_back(cell(f, dev, d, ex, sb.data_block_size));
    rows.push_back(std::move(row));
  }
  std::vector<std::size_t> widths(opts.fields.size(), 0);
  for (auto &r : rows)
    for (std::size_t i = 0; i < r.size(); i++) widths[i] = std::max(widths[i], r[i].size());
  std::string text;
  for (auto &r : rows) {
    if (r.empty()) continue;
    for (std::size_t i = 0; i < r.size(); i++) {
      text.append(widths[i] - r[i].size(), ' ');
      text += r[i];
      text += ' ';
    }
    text += '\n';
  }
  out.write(text.data(), text.size());
  out.flush();
}

}  // namespace thin
