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
  std::unique_ptr<block_buffer[]> data;
  bool ok = false;
};

void read_request(block_io &io, request &r) {
  r.data.reset(new block_buffer[r.count]);
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
    r.data.reset();
  }
}

read_plan_io::read_plan_io(block_io &inner, std::unordered_map<block_address, std::unique_ptr<block_buffer>> pinned,
                           std::vector<block_address> plan, std::size_t window, batch_read_options opts)
    : inner_(inner), pinned_(std::move(pinned)), plan_(std::move(plan)), window_(std::max<std::size_t>(window, 1)),
      opts_(opts) {
  for (std::size_t i = 0; i < plan_.size(); i++) plan_pos_.try_emplace(plan_[i], i);
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
      if (p != plan_pos_.end() && p->second >= next_) {
        fill_from(p->second);
        it = ready_.find(b);
      }
    }
    if (it != ready_.end()) {
      std::memcpy(buf, it->second->raw(), block_size);
      ready_.erase(it);
      return;
    }
  }
  inner_.read(b, buf, count);
}

void read_plan_io::write(block_address, const void *, std::size_t) {
  throw io_error("write to a device opened read-only");
}

// Reads plan entries [pos, pos + window) not yet read. Entries skipped over
// (before pos) are not read: the reader went another way.
void read_plan_io::fill_from(std::size_t pos) {
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
  batch_read(
      inner_, std::move(want),
      [&](block_address b, const unsigned char *data) {
        auto buf = std::make_unique<block_buffer>();
        std::memcpy(buf->raw(), data, block_size);
        ready_.emplace(b, std::move(buf));
        batched_++;
      },
      opts_);
}

}  // namespace pdata
