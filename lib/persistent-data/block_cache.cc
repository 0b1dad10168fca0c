// LRU read cache over a block_io (see block_cache.h).
#include "persistent-data/block_cache.h"

namespace pdata {

block_ref block_cache::read(block_address b) {
  auto it = map_.find(b);
  if (it != map_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.lru_pos);
    return it->second.buf;
  }
  std::shared_ptr<block_buffer> buf;
  if (map_.size() >= capacity_ && !lru_.empty()) {
    auto victim = map_.find(lru_.back());
    // Reuse the evicted buffer when nobody else holds it.
    if (victim->second.buf.use_count() == 1)
      buf = std::const_pointer_cast<block_buffer>(std::move(victim->second.buf));
    map_.erase(victim);
    lru_.pop_back();
  }
  if (!buf) buf = std::make_shared<block_buffer>();
  io_.read(b, buf->raw(), 1);
  lru_.push_front(b);
  map_.emplace(b, entry{buf, lru_.begin()});
  return buf;
}

void block_cache::forget(block_address b) {
  auto it = map_.find(b);
  if (it == map_.end()) return;
  lru_.erase(it->second.lru_pos);
  map_.erase(it);
}

void block_cache::clear() {
  map_.clear();
  lru_.clear();
}

}  // namespace pdata
