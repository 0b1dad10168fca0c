// In-memory space map (see space_map.h).
#include "space_map.h"

#include <fmt/format.h>

#include "errors.h"

namespace pdata {

space_map::space_map(block_address nr_blocks) : counts_(nr_blocks) { mark_all_dirty(); }

space_map::space_map(ref_counts counts) : counts_(std::move(counts)) { nr_allocated_ = counts_.nr_allocated(); }

void space_map::extend(block_address new_nr) {
  if (new_nr < nr_blocks()) throw std::invalid_argument("space maps cannot shrink");
  ref_counts bigger(new_nr);
  for (block_address b = 0; b < nr_blocks(); b++)
    if (uint32_t c = counts_.get(b)) bigger.set(b, c);
  block_address old = nr_blocks();
  counts_ = std::move(bigger);
  for (uint64_t i = old / entries_per_bitmap; i * entries_per_bitmap < new_nr; i++) dirty_bitmaps_.insert(i);
}

void space_map::changed(block_address b, uint32_t old_count, uint32_t new_count) {
  dirty_bitmaps_.insert(b / entries_per_bitmap);
  if (old_count >= 3 || new_count >= 3) overflow_dirty_ = true;
  if (!old_count && new_count) nr_allocated_++;
  if (old_count && !new_count) {
    nr_allocated_--;
    if (!fresh_.count(b)) freed_.insert(b);
  }
}

void space_map::set(block_address b, uint32_t count) {
  if (b >= nr_blocks()) throw std::out_of_range(fmt::format("space map: block {} out of range", b));
  uint32_t old = counts_.get(b);
  if (old == count) return;
  counts_.set(b, count);
  changed(b, old, count);
}

void space_map::inc(block_address b, uint32_t by) { set(b, get(b) + by); }

void space_map::dec(block_address b) {
  uint32_t c = get(b);
  if (!c) throw std::logic_error(fmt::format("space map: decrement of free block {}", b));
  set(b, c - 1);
}

std::optional<block_address> space_map::allocate() {
  const block_address n = nr_blocks();
  if (nr_allocated_ + freed_.size() >= n) return std::nullopt;
  for (block_address pass = 0; pass < 2; pass++) {
    block_address start = pass == 0 ? cursor_ : 0, end = pass == 0 ? n : cursor_;
    for (block_address b = start; b < end; b++) {
      if (counts_.get(b) || freed_.count(b)) continue;
      cursor_ = b + 1;
      fresh_.insert(b);
      set(b, 1);
      return b;
    }
  }
  return std::nullopt;
}

void space_map::commit() {
  freed_.clear();
  fresh_.clear();
  dirty_bitmaps_.clear();
  overflow_dirty_ = false;
}

void space_map::mark_all_dirty() {
  for (uint64_t i = 0; i * entries_per_bitmap < nr_blocks(); i++) dirty_bitmaps_.insert(i);
  overflow_dirty_ = true;
}

}  // namespace pdata
