// Copy-on-write transaction manager (see transaction_manager.h).
#include "persistent-data/transaction_manager.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "persistent-data/endian.h"
#include "persistent-data/errors.h"

namespace pdata {

namespace {
constexpr block_address gather_max = 1024;  // 4 MiB
}  // namespace

transaction_manager::transaction_manager(block_io &io, space_map &metadata_sm)
    : io_(io), sm_(metadata_sm), cache_(io, 4096) {}

block_ref transaction_manager::read(block_address b) {
  auto it = dirty_.find(b);
  if (it != dirty_.end()) {
    // Hand out a snapshot copy so callers never see a buffer change under them.
    auto copy = std::make_shared<block_buffer>(*it->second.buf);
    return copy;
  }
  if (b >= gather_start_ && b < gather_start_ + gather_len_)
    return std::make_shared<block_buffer>(gather_[b - gather_start_]);
  return cache_.read(b);
}

block_address transaction_manager::allocate() {
  auto b = sm_.allocate();
  if (!b)
    throw out_of_metadata_space(fmt::format("metadata space exhausted: all {} blocks of the metadata device are in use",
                                            sm_.nr_blocks()));
  if (*b >= io_.nr_blocks())
    throw out_of_metadata_space(fmt::format("metadata space map allocated block {}, beyond the device's {} blocks",
                                            *b, io_.nr_blocks()));
  return *b;
}

unsigned char *transaction_manager::new_block(block_address &b, checksum_salt salt) {
  b = allocate();
  auto &d = dirty_[b];
  d.buf = take_buffer();
  std::memset(d.buf->raw(), 0, block_size);
  d.salt = salt;
  fresh_.insert(b);
  return d.buf->raw();
}

unsigned char *transaction_manager::shadow(block_address b, checksum_salt salt, block_address &out, bool &shared) {
  uint32_t c = sm_.get(b);
  if (c == 0) throw internal_error(fmt::format("shadow of unreferenced block {}", b));
  shared = c > 1;
  if (!shared && fresh_.count(b)) {
    out = b;
    return writable(b);
  }
  block_ref src = read(b);
  unsigned char *dst = new_block(out, salt);
  std::memcpy(dst, src->raw(), block_size);
  dec(b);
  return dst;
}

unsigned char *transaction_manager::writable(block_address b) {
  auto it = dirty_.find(b);
  if (it == dirty_.end()) {
    if (!fresh_.count(b)) throw internal_error(fmt::format("block {} is not writable in this transaction", b));
    throw internal_error(fmt::format("block {} was already written out (write_now) and cannot change", b));
  }
  return it->second.buf->raw();
}

void transaction_manager::dec(block_address b) {
  sm_.dec(b);
  if (sm_.get(b) == 0) {
    dirty_.erase(b);  // never written: nothing references it any more
  }
}

namespace {
void stamp(unsigned char *p, block_address b, checksum_salt salt) {
  store_le64(p + 8, b);
  stamp_checksum(p, salt);
}
}  // namespace

std::unique_ptr<block_buffer> transaction_manager::take_buffer() {
  if (spare_.empty()) return std::make_unique<block_buffer>();
  auto buf = std::move(spare_.back());
  spare_.pop_back();
  return buf;
}

void transaction_manager::write_gathered() {
  if (gather_len_) io_.write(gather_start_, gather_[0].raw(), gather_len_);
  gather_len_ = 0;
}

void transaction_manager::write_now(block_address b) {
  auto it = dirty_.find(b);
  if (it == dirty_.end()) throw internal_error(fmt::format("write_now of unmodified block {}", b));
  stamp(it->second.buf->raw(), b, it->second.salt);
  if (gather_len_ && (b != gather_start_ + gather_len_ || gather_len_ == gather_max)) write_gathered();
  if (!gather_) gather_.reset(new block_buffer[gather_max]);
  if (!gather_len_) gather_start_ = b;
  std::memcpy(gather_[gather_len_].raw(), it->second.buf->raw(), block_size);
  gather_len_++;
  if (spare_.size() < 64) spare_.push_back(std::move(it->second.buf));
  dirty_.erase(it);
  cache_.forget(b);
}

void transaction_manager::flush_blocks() {
  write_gathered();
  // Write in block order, coalescing consecutive blocks into one request.
  std::vector<block_address> order;
  order.reserve(dirty_.size());
  for (auto &[b, d] : dirty_) order.push_back(b);
  std::sort(order.begin(), order.end());
  std::vector<unsigned char> run;
  block_address run_start = 0, run_len = 0;
  auto flush_run = [&]() {
    if (run_len) io_.write(run_start, run.data(), run_len);
    run.clear();
    run_len = 0;
  };
  for (block_address b : order) {
    auto &d = dirty_[b];
    stamp(d.buf->raw(), b, d.salt);
    if (run_len && (b != run_start + run_len || run_len == 256)) flush_run();
    if (!run_len) run_start = b;
    run.insert(run.end(), d.buf->raw(), d.buf->raw() + block_size);
    run_len++;
  }
  flush_run();
  io_.flush();
  cache_.clear();
}

void transaction_manager::end_transaction() {
  gather_len_ = 0;
  dirty_.clear();
  fresh_.clear();
  cache_.clear();
  sm_.commit();
}

}  // namespace pdata
