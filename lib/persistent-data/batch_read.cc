// Batched, ordered, overlapping reads (see batch_read.h).
#include "persistent-data/batch_read.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <iterator>
#include <thread>

#include "persistent-data/errors.h"

namespace pdata {

namespace {

struct request {
  block_address first = 0;
  std::size_t count = 0;
  block_buffer *data = nullptr;  // in the arena
  bool ok = false;
};

void read_request(block_io &io, request &r) {
  try {
    io.read(r.first, r.data[0].raw(), r.count);
    r.ok = true;
  } catch (const io_error &) {
    r.ok = false;  // retried block by block on the calling thread
  }
}

}  // namespace

void batch_read(block_io &io, std::vector<block_address> blocks,
                const std::function<void(block_address, const unsigned char *)> &fn, const batch_read_options &opts) {
  std::vector<block_buffer> arena;
  batch_read(io, std::move(blocks), fn, opts, arena);
}

void batch_read(block_io &io, std::vector<block_address> blocks,
                const std::function<void(block_address, const unsigned char *)> &fn, const batch_read_options &opts,
                std::vector<block_buffer> &arena) {
  std::sort(blocks.begin(), blocks.end());
  blocks.erase(std::unique(blocks.begin(), blocks.end()), blocks.end());
  const block_address nr = io.nr_blocks();
  while (!blocks.empty() && blocks.back() >= nr) blocks.pop_back();

  std::vector<request> reqs;
  for (std::size_t i = 0; i < blocks.size();) {
    std::size_t j = i + 1;
    while (j < blocks.size() && blocks[j] == blocks[j - 1] + 1 && j - i < opts.max_request) j++;
    reqs.push_back({blocks[i], j - i, nullptr, false});
    i = j;
  }
  if (arena.size() < blocks.size()) arena.resize(blocks.size());  // grown once, its pages reused after
  for (std::size_t i = 0, at = 0; i < reqs.size(); at += reqs[i].count, i++) reqs[i].data = arena.data() + at;

  const unsigned threads =
      io.concurrent_reads() ? static_cast<unsigned>(std::min<std::size_t>(opts.threads, reqs.size())) : 1;
  if (threads <= 1) {
    for (auto &r : reqs) read_request(io, r);
  } else {
    std::atomic<std::size_t> next{0};
    auto worker = [&] {
      for (std::size_t i; (i = next.fetch_add(1)) < reqs.size();) read_request(io, reqs[i]);
    };
    std::vector<std::thread> pool;
    for (unsigned t = 1; t < threads; t++) pool.emplace_back(worker);
    worker();
    for (auto &t : pool) t.join();
  }

  block_buffer one;
  for (auto &r : reqs) {
    for (std::size_t k = 0; k < r.count; k++) {
      if (r.ok) {
        fn(r.first + k, r.data[k].raw());
        continue;
      }
      try {
        io.read(r.first + k, one.raw(), 1);
      } catch (const io_error &) {
        continue;  // left to the reader's own read
      }
      fn(r.first + k, one.raw());
    }
  }
}

read_plan_io::read_plan_io(block_io &inner, std::unordered_map<block_address, std::unique_ptr<block_buffer>> pinned,
                           std::vector<block_address> plan, std::size_t window, batch_read_options opts)
    : inner_(inner), pinned_(std::move(pinned)), plan_(std::move(plan)), window_(std::max<std::size_t>(window, 1)),
      opts_(opts) {
  for (std::size_t i = 0; i < plan_.size(); i++) plan_pos_.try_emplace(plan_[i], i);
}

read_plan_io::~read_plan_io() {
  if (ahead_.valid()) ahead_.wait();  // the reads in flight use inner_
}

void read_plan_io::read(block_address b, void *buf, std::size_t count) {
  if (count == 1) {
    if (auto it = pinned_.find(b); it != pinned_.end()) {
      std::memcpy(buf, it->second->raw(), block_size);
      return;
    }
    auto it = ready_.find(b);
    if (it == ready_.end()) {
      auto p = plan_pos_.find(b);
      if (p != plan_pos_.end() && p->second >= (ahead_.valid() ? ahead_begin_ : next_)) {
        fill_from(p->second);
        it = ready_.find(b);
      }
    }
    if (it != ready_.end()) {
      std::memcpy(buf, it->second->raw(), block_size);
      spare_.push_back(std::move(it->second));
      ready_.erase(it);
      return;
    }
  }
  inner_.read(b, buf, count);
}

void read_plan_io::write(block_address, const void *, std::size_t) {
  throw io_error("write to a device opened read-only");
}

namespace {
std::vector<read_plan_io::batched> read_batch(block_io &io, std::vector<block_address> want,
                                              std::vector<std::unique_ptr<block_buffer>> spare,
                                              const batch_read_options &opts, std::vector<block_buffer> &arena) {
  std::vector<read_plan_io::batched> got;
  got.reserve(want.size());
  batch_read(
      io, std::move(want),
      [&](block_address b, const unsigned char *data) {
        std::unique_ptr<block_buffer> buf;
        if (spare.empty()) {
          buf = std::make_unique<block_buffer>();
        } else {
          buf = std::move(spare.back());
          spare.pop_back();
        }
        std::memcpy(buf->raw(), data, block_size);
        got.emplace_back(b, std::move(buf));
      },
      opts, arena);
  return got;
}
}  // namespace

void read_plan_io::take(std::vector<batched> got) {
  for (auto &[b, buf] : got) {
    batched_++;
    auto [it, fresh] = ready_.try_emplace(b);
    if (fresh) it->second = std::move(buf);
  }
}

// The plan entries from `pos`, a window of them: waits for the window read
// ahead when pos falls in it, else reads [pos, pos + window) now (entries
// skipped over, before pos, are not read: the reader went another way). Then,
// when the device takes reads from several threads, starts reading the next
// window, so the reader works on one window while the next one arrives.
void read_plan_io::fill_from(std::size_t pos) {
  if (ahead_.valid()) {
    take(ahead_.get());
    if (pos < next_) return start_ahead();
  }
  const std::size_t end = std::min(plan_.size(), pos + window_);
  // Blocks batched earlier and never asked for (the reader went another
  // way): dropped once they pile up, so memory stays a few windows.
  if (ready_.size() > 3 * window_)
    for (auto it = ready_.begin(); it != ready_.end();)
      it = plan_pos_.at(it->first) < pos ? ready_.erase(it) : std::next(it);
  std::vector<block_address> want;
  for (std::size_t i = pos; i < end; i++)
    if (!pinned_.count(plan_[i]) && !ready_.count(plan_[i])) want.push_back(plan_[i]);
  next_ = end;
  take(read_batch(inner_, std::move(want), std::move(spare_), opts_, arena_));
  spare_.clear();
  start_ahead();
}

void read_plan_io::start_ahead() {
  if (!inner_.concurrent_reads() || next_ >= plan_.size()) return;
  const std::size_t end = std::min(plan_.size(), next_ + window_);
  std::vector<block_address> want;
  for (std::size_t i = next_; i < end; i++)
    if (!pinned_.count(plan_[i]) && !ready_.count(plan_[i])) want.push_back(plan_[i]);
  ahead_begin_ = next_;
  next_ = end;
  ahead_ = std::async(std::launch::async, read_batch, std::ref(inner_), std::move(want), std::move(spare_), opts_,
                      std::ref(ahead_arena_));
  spare_.clear();
}

}  // namespace pdata
