// thin_dump: walk -> emitter (see dump.h).
//
// The mapping trees are walked on a second thread, which reads and validates
// the nodes (the I/O and the checksums) and hands each leaf's entries over in
// bounded chunks; this thread builds the runs and drives the emitter (the
// text formatting). Both halves cost about the same, so a large dump takes
// about half the time it would on one thread. Damage reaches this thread at
// the point in the stream where the walk found it, so what is emitted before
// the error is exactly what a single-threaded walk would emit.
#include "thin/dump/dump.h"

#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "persistent-data/block_cache.h"
#include "persistent-data/space_map_disk.h"
#include "thin/format/data_block_set.h"
#include "thin/format/invariants.h"
#include "thin/format/superblock.h"
#include "thin/format/thin_trees.h"

namespace thin {

using namespace pdata;

namespace {

[[noreturn]] void throw_damage(const char *tree, const btree_damage &d) {
  throw metadata_error(fmt::format("{}: block {}: {}", tree, d.block, d.what));
}

// What the walking thread hands over: records of 64-bit words.
//   leaf:          tag_leaf, n, n keys, n block_time values
//   end of device: tag_end_device
//   damage:        tag_damage, index into `damage`
//   failure:       tag_failure (rethrow `failure`)
struct chunk {
  static constexpr std::size_t target_words = 1 << 16;  // 512 KiB
  std::vector<uint64_t> words;
  std::vector<btree_damage> damage;
  std::exception_ptr failure;
};

enum : uint64_t { tag_leaf = 1, tag_end_device, tag_damage, tag_failure };

// A bounded queue of chunks between the walking thread and this one.
class chunk_pipe {
 public:
  static constexpr std::size_t max_queued = 4;

  // Producer side. Returns false when the consumer has gone.
  bool push(std::unique_ptr<chunk> c) {
    std::unique_lock<std::mutex> l(m_);
    not_full_.wait(l, [&] { return cancelled_ || full_.size() < max_queued; });
    if (cancelled_) return false;
    full_.push_back(std::move(c));
    not_empty_.notify_one();
    return true;
  }
  std::unique_ptr<chunk> fresh() {
    std::lock_guard<std::mutex> l(m_);
    if (free_.empty()) {
      auto c = std::make_unique<chunk>();
      c->words.reserve(chunk::target_words + 2 * btree_max_entries(8) + 4);
      return c;
    }
    auto c = std::move(free_.back());
    free_.pop_back();
    return c;
  }
  bool cancelled() {
    std::lock_guard<std::mutex> l(m_);
    return cancelled_;
  }

  // Consumer side.
  std::unique_ptr<chunk> pop() {
    std::unique_lock<std::mutex> l(m_);
    not_empty_.wait(l, [&] { return !full_.empty(); });
    auto c = std::move(full_.front());
    full_.pop_front();
    not_full_.notify_one();
    return c;
  }
  void recycle(std::unique_ptr<chunk> c) {
    c->words.clear();
    c->damage.clear();
    c->failure = nullptr;
    std::lock_guard<std::mutex> l(m_);
    free_.push_back(std::move(c));
  }
  void cancel() {
    std::lock_guard<std::mutex> l(m_);
    cancelled_ = true;
    not_full_.notify_all();
  }

 private:
  std::mutex m_;
  std::condition_variable not_full_, not_empty_;
  std::deque<std::unique_ptr<chunk>> full_;
  std::vector<std::unique_ptr<chunk>> free_;
  bool cancelled_ = false;
};

struct walk_cancelled {};

// The walking thread's visitor: copies each leaf's keys and values out.
class leaf_copier : public btree_visitor {
 public:
  explicit leaf_copier(chunk_pipe &p) : pipe_(p), cur_(p.fresh()) {}
  void visit_leaf(block_address, const btree_node_view &n, const key_range &) override {
    const uint32_t nr = n.nr_entries();
    auto &w = cur_->words;
    const std::size_t at = w.size();
    w.resize(at + 2 + 2 * std::size_t(nr));
    w[at] = tag_leaf;
    w[at + 1] = nr;
    // Keys and values are little-endian u64s, as the host's (endian.h).
    if (nr) {
      std::memcpy(w.data() + at + 2, n.raw() + node_header_size, 8 * std::size_t(nr));
      std::memcpy(w.data() + at + 2 + nr, n.value_ptr(0), 8 * std::size_t(nr));
    }
    if (w.size() >= chunk::target_words) send();
  }
  void damage(const btree_damage &d) override {
    cur_->damage.push_back(d);
    cur_->words.push_back(tag_damage);
    cur_->words.push_back(cur_->damage.size() - 1);
    // The dump stops at the first damage: nothing after it is needed.
    send();
    throw walk_cancelled{};
  }
  void end_device() { cur_->words.push_back(tag_end_device); }
  void failure(std::exception_ptr e) {
    cur_->failure = std::move(e);
    cur_->words.push_back(tag_failure);
  }
  void send() {
    if (!pipe_.push(std::move(cur_))) throw walk_cancelled{};
    cur_ = pipe_.fresh();
  }

 private:
  chunk_pipe &pipe_;
  std::unique_ptr<chunk> cur_;
};

// Walks the given subtrees in order on its own thread.
class mapping_walker {
 public:
  mapping_walker(block_cache &cache, std::vector<block_address> roots)
      : cache_(cache), roots_(std::move(roots)), thread_([this] { run(); }) {}
  ~mapping_walker() {
    pipe_.cancel();
    thread_.join();
  }
  mapping_walker(const mapping_walker &) = delete;
  mapping_walker &operator=(const mapping_walker &) = delete;

  chunk_pipe &pipe() { return pipe_; }

 private:
  void run() {
    try {
      leaf_copier c(pipe_);
      try {
        for (block_address root : roots_) {
          walk_btree(cache_, root, 8, c);
          c.end_device();
          if (pipe_.cancelled()) return;
        }
      } catch (const walk_cancelled &) {
        return;
      } catch (...) {
        c.failure(std::current_exception());
      }
      c.send();
    } catch (const walk_cancelled &) {
    } catch (...) {
      // Could not even hand the failure over (no memory): the consumer must
      // still be woken.
      auto c = std::make_unique<chunk>();
      c->failure = std::current_exception();
      c->words.push_back(tag_failure);
      pipe_.push(std::move(c));
    }
  }

  block_cache &cache_;
  std::vector<block_address> roots_;
  chunk_pipe pipe_;
  std::thread thread_;
};

// This thread's side: one device's records into the run builder.
class mapping_reader {
 public:
  // Mappings that break a rule of invariants.h are refused (thin_restore
  // would refuse the dump): `nr_data_blocks` is the data device's size,
  // `sb_time` the time of the superblock being dumped.
  mapping_reader(chunk_pipe &p, uint64_t nr_data_blocks, uint32_t sb_time, progress &prog)
      : pipe_(p), nr_data_blocks_(nr_data_blocks), sb_time_(sb_time), progress_(prog) {}
  ~mapping_reader() {
    if (cur_) pipe_.recycle(std::move(cur_));
  }
  mapping_reader(const mapping_reader &) = delete;
  mapping_reader &operator=(const mapping_reader &) = delete;

  void device(uint64_t dev_id, emitter &e) {
    mapping_run_builder runs(e);
    mapped_.clear();
    for (;;) {
      if (!cur_ || pos_ == cur_->words.size()) {
        if (cur_) pipe_.recycle(std::move(cur_));
        cur_ = pipe_.pop();
        pos_ = 0;
        continue;
      }
      const uint64_t *w = cur_->words.data();
      switch (w[pos_]) {
        case tag_leaf: {
          const std::size_t n = static_cast<std::size_t>(w[pos_ + 1]);
          const uint64_t *keys = w + pos_ + 2, *values = keys + n;
          for (std::size_t i = 0; i < n; i++) {
            const uint64_t db = unpack_block(values[i]);
            const uint32_t t = unpack_time(values[i]);
            if (!invariants::mapping_block_ok(db, nr_data_blocks_) || !invariants::mapping_time_ok(t, sb_time_))
              refuse(dev_id, keys[i], db, t);
            if (!mapped_.insert(db))
              throw metadata_error(fmt::format(
                  "thin device {}: origin block {} maps data block {}, which a lower origin block of the device maps "
                  "too: thin_restore would refuse this dump (thin_dump --repair keeps the first mapping; "
                  "thin_repair writes repaired metadata)",
                  dev_id, keys[i], db));
            runs.add(keys[i], db, t);
          }
          progress_.advance(n);
          pos_ += 2 + 2 * n;
          break;
        }
        case tag_end_device:
          pos_++;
          runs.finish();
          return;
        case tag_damage: {
          const btree_damage &bd = cur_->damage[static_cast<std::size_t>(w[pos_ + 1])];
          throw metadata_error(fmt::format("mapping tree of device {}: block {}: {} (origin blocks {})", dev_id,
                                           bd.block, bd.what, to_string(bd.keys)));
        }
        default:
          std::rethrow_exception(cur_->failure);
      }
    }
  }

 private:
  [[noreturn]] void refuse(uint64_t dev_id, uint64_t origin, uint64_t db, uint32_t t) const {
    std::string what =
        !invariants::mapping_block_ok(db, nr_data_blocks_)
            ? fmt::format("maps to data block {}, beyond the end of the data device ({} blocks)", db, nr_data_blocks_)
            : fmt::format("has time {}, after the superblock's time {}", t, sb_time_);
    throw metadata_error(fmt::format("thin device {}: origin block {} {}: thin_restore would refuse this dump (thin_dump "
                                     "--repair drops such mappings; thin_repair writes repaired metadata)",
                                     dev_id, origin, what));
  }

  chunk_pipe &pipe_;
  uint64_t nr_data_blocks_;
  uint32_t sb_time_;
  progress &progress_;
  data_block_set mapped_;  // of the device being read (invariants.h: no data block twice)
  std::unique_ptr<chunk> cur_;
  std::size_t pos_ = 0;
};

}  // namespace

void dump_metadata(block_io &io, const dump_options &opts, emitter &e) {
  auto [sb, nr_data_blocks] = select_superblock(io, opts.use_metadata_snap, opts.metadata_snap_location);

  block_cache cache(io);
  auto details = read_details_tree(cache, sb.details_root,
                                   [](const btree_damage &d) { throw_damage("device details tree", d); });

  superblock_info si;
  si.time = sb.time;
  si.trans_id = sb.trans_id;
  si.flags = sb.flags;
  si.version = sb.version;
  si.data_block_size = sb.data_block_size;
  si.nr_data_blocks = nr_data_blocks;
  e.begin_superblock(si);

  auto devices = read_mapping_top_level(cache, sb.mapping_root,
                                        [](const btree_damage &d) { throw_damage("mapping tree (top level)", d); });
  std::erase_if(devices, [&](const auto &d) { return !opts.dev_ids.empty() && !opts.dev_ids.count(d.first); });

  // The cache belongs to the walking thread from here on.
  std::unique_ptr<mapping_walker> walker;
  std::unique_ptr<mapping_reader> reader;
  progress &prog = or_null(opts.progress);
  if (!opts.skip_mappings && !devices.empty()) {
    std::vector<block_address> roots;
    for (auto &d : devices) roots.push_back(d.second);
    walker = std::make_unique<mapping_walker>(cache, std::move(roots));
    // The data device's size is the live space map's, also when dumping the
    // metadata snapshot (whose superblock records none).
    const uint64_t data_device_blocks =
        opts.use_metadata_snap ? read_superblock(io, 0).data_sm_root().nr_blocks.get() : nr_data_blocks;
    reader = std::make_unique<mapping_reader>(walker->pipe(), data_device_blocks, sb.time, prog);
    uint64_t total = 0;
    for (auto &d : devices)
      if (auto it = details.find(d.first); it != details.end()) total += it->second.mapped_blocks;
    prog.begin("dumping mappings", total, "mappings");
  }
  for (auto &[dev_id, root] : devices) {
    auto it = details.find(dev_id);
    if (it == details.end())
      throw metadata_error(
          fmt::format("mappings present for device {}, but it isn't present in the device details tree", dev_id));
    const device_details &d = it->second;
    e.begin_device({dev_id, d.mapped_blocks, d.transaction_id, d.creation_time, d.snapshotted_time});
    if (reader) reader->device(dev_id, e);
    e.end_device();
  }
  reader.reset();
  walker.reset();
  e.end_superblock();
  prog.end();
}

}  // namespace thin
