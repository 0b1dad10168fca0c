// Copy-on-write transaction manager (see transaction_manager.h).
#include "transaction_manager.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "endian.h"
#include "errors.h"

namespace pdata {

transaction_manager::transaction_manager(block_io &io, space_map &metadata_sm)
    : io_(io), sm_(metadata_sm), cache_(io, 4096) {}

block_ref transaction_manager::read(block_address b) {
  auto it = dirty_.find(b);
  if (it != dirty_.end()) {
    // Hand out a snapshot copy so callers never see a buffer change under them.
    auto copy = std::make_shared<block_buffer>(*it->second.buf);
    return copy;
  }
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
  d.buf = std::make_unique<block_buffer>();
  std::memset(d.buf->raw(), 0, block_size);
  d.salt = salt;
  fresh_.insert(b);
  return d.buf->raw();
}

unsigned char *transaction_manager::shadow(block_address b, checksum_salt salt, block_address &out, bool &shared) {
  uint32_t c = sm_.get(b);
  if (c == 0) throw std::logic_error(fmt::format("shadow of unreferenced block {}", b));
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
    if (!fresh_.count(b)) throw std::logic_error(fmt::format("block {} is not writable in this transaction", b));
    throw std::logic_error(fmt::format("block {} was already written out (write_now) and cannot change", b));
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

void transaction_manager::write_now(block_address b) {
  auto it = dirty_.find(b);
  if (it == dirty_.end()) throw std::logic_error(fmt::format("write_now of unmodified block {}", b));
  stamp(it->second.buf->raw(), b, it->second.salt);
  io_.write(b, it->second.buf->raw(), 1);
  dirty_.erase(it);
  cache_.forget(b);
}

void transaction_manager::flush_blocks() {
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
  dirty_.clear();
  fresh_.clear();
  cache_.clear();
  sm_.commit();
}

}  // namespace pdata
