// LRU read cache over a block_io (see block_cache.h).
#include "block_cache.h"

namespace pdata {

block_ref block_cache::read(block_address b) {
  auto it = map_.find(b);
  if (it != map_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.lru_pos);
    return it->second.buf;
  }
  auto buf = std::make_shared<block_buffer>();
  io_.read(b, buf->raw(), 1);
  if (map_.size() >= capacity_ && !lru_.empty()) {
    map_.erase(lru_.back());
    lru_.pop_back();
  }
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
