// In-memory space map (see space_map.h).
#include "persistent-data/space_map.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "persistent-data/errors.h"

namespace pdata {

namespace {
uint64_t bitmaps_for(block_address nr_blocks) { return (nr_blocks + entries_per_bitmap - 1) / entries_per_bitmap; }
}  // namespace

space_map::space_map(block_address nr_blocks)
    : nr_blocks_(nr_blocks), nibbles_(nr_blocks), dirty_(bitmaps_for(nr_blocks), 0) {
  mark_all_dirty();
}

space_map::space_map(const ref_counts &counts)
    : nr_blocks_(counts.size()), nibbles_(counts.size()), dirty_(bitmaps_for(counts.size()), 0) {
  for (uint64_t p = 0; p < counts.nr_pages(); p++) {
    if (!counts.page_present(p)) continue;
    const block_address last = std::min<block_address>((p + 1) * ref_counts::page_blocks, nr_blocks_);
    for (block_address b = p * ref_counts::page_blocks; b < last; b++)
      if (uint32_t v = counts.value2(b)) {
        set_nibble(b, v);
        nr_allocated_++;
      }
  }
  for (auto &[b, c] : counts.overflow_entries()) {
    if (c < overflow_nibble) {
      set_nibble(b, c);
    } else {
      set_nibble(b, overflow_nibble);
      overflow_[b] = c;
    }
  }
}

void space_map::extend(block_address new_nr) {
  if (new_nr < nr_blocks()) throw internal_error("space maps cannot shrink");
  const block_address old = nr_blocks_;
  nr_blocks_ = new_nr;
  nibbles_.grow(new_nr);
  dirty_.resize(bitmaps_for(new_nr), 0);
  for (uint64_t i = old / entries_per_bitmap; i * entries_per_bitmap < new_nr; i++)
    if (!dirty_[i]) {
      dirty_[i] = 1;
      nr_dirty_++;
    }
}

void space_map::freed(block_address b) {
  nr_allocated_--;
  if (!fresh_.count(b)) freed_.insert(b);
}

void space_map::store(block_address b, uint32_t old_count, uint32_t count) {
  if (count >= overflow_nibble) {
    set_nibble(b, overflow_nibble);
    overflow_[b] = count;
  } else {
    if (old_count >= overflow_nibble) overflow_.erase(b);
    set_nibble(b, count);
  }
  changed(b, old_count, count);
}

void space_map::set(block_address b, uint32_t count) {
  if (b >= nr_blocks()) throw internal_error(fmt::format("space map: block {} out of range", b));
  uint32_t old = get(b);
  if (old == count) return;
  store(b, old, count);
}

void space_map::inc(block_address b, uint32_t by) {
  if (b >= nr_blocks()) throw internal_error(fmt::format("space map: block {} out of range", b));
  uint32_t n = nibble(b);
  if (n + by < overflow_nibble) {  // the common case: no overflow either side
    set_nibble(b, n + by);
    changed(b, n, n + by);
    return;
  }
  if (!by) return;
  uint32_t old = get(b);
  store(b, old, old + by);
}

void space_map::inc_range(block_address first, block_address len) {
  if (len > nr_blocks() || first > nr_blocks() - len)
    throw internal_error(fmt::format("space map: blocks {}+{} out of range", first, len));
  while (len) {
    const uint64_t p = first / entries_per_bitmap;
    const uint32_t e0 = static_cast<uint32_t>(first % entries_per_bitmap);
    const uint32_t n = static_cast<uint32_t>(std::min<block_address>(len, entries_per_bitmap - e0));
    uint8_t *pg = nibbles_.page_for_write(p);
    uint64_t fresh = 0;
    bool big = false;  // a count reaching 3 or more
    const uint32_t end = e0 + n;
    for (uint32_t e = e0; e < end;) {
      // Sixteen counts a word where the run covers the word and none of them
      // would reach the overflow value (bits 3, 2 and 1 all set: 14 or 15).
      if (e % 16 == 0 && end - e >= 16) {
        uint64_t w;
        std::memcpy(&w, pg + e / 2, 8);  // host is little-endian (endian.h)
        constexpr uint64_t ones = 0x1111111111111111ull;
        if (!((w >> 1) & (w >> 2) & (w >> 3) & ones)) {
          const uint64_t high = (w >> 1 | w >> 2 | w >> 3) & ones;  // counts of 2 or more
          fresh += static_cast<uint64_t>(__builtin_popcountll(~(w | high) & ones));
          big |= high != 0;
          w += ones;
          std::memcpy(pg + e / 2, &w, 8);
          e += 16;
          continue;
        }
      }
      uint8_t &byte = pg[e / 2];
      const unsigned sh = (e % 2) * 4;
      const uint32_t v = (byte >> sh) & 15u;
      if (v + 1 >= overflow_nibble) {  // rare: the count moves to overflow_
        inc(p * entries_per_bitmap + e);
        e++;
        continue;
      }
      byte = static_cast<uint8_t>((byte & ~(15u << sh)) | ((v + 1) << sh));
      fresh += v == 0;
      big |= v >= 2;
      e++;
    }
    if (!dirty_[p]) {
      dirty_[p] = 1;
      nr_dirty_++;
    }
    if (big) overflow_dirty_ = true;
    nr_allocated_ += fresh;
    first += n;
    len -= n;
  }
}

void space_map::dec(block_address b) {
  uint32_t c = get(b);
  if (!c) throw internal_error(fmt::format("space map: decrement of free block {}", b));
  store(b, c, c - 1);
}

std::vector<std::pair<block_address, uint32_t>> space_map::overflow_entries() const {
  std::vector<std::pair<block_address, uint32_t>> out;
  for_each_overflow([&](block_address b, uint32_t c) { out.emplace_back(b, c); });
  return out;
}

std::optional<block_address> space_map::allocate() {
  const block_address n = nr_blocks();
  if (nr_allocated_ + freed_.size() >= n) return std::nullopt;
  for (block_address pass = 0; pass < 2; pass++) {
    block_address start = pass == 0 ? cursor_ : 0, end = pass == 0 ? n : cursor_;
    for (block_address b = start; b < end; b++) {
      if (nibble(b) || (!freed_.empty() && freed_.count(b))) continue;
      cursor_ = b + 1;
      fresh_.insert(b);
      store(b, 0, 1);
      return b;
    }
  }
  return std::nullopt;
}

void space_map::commit() {
  freed_.clear();
  fresh_.clear();
  std::fill(dirty_.begin(), dirty_.end(), 0);
  nr_dirty_ = 0;
  overflow_dirty_ = false;
}

std::vector<uint64_t> space_map::dirty_bitmaps() const {
  std::vector<uint64_t> out;
  for (uint64_t i = 0; i < dirty_.size(); i++)
    if (dirty_[i]) out.push_back(i);
  return out;
}

void space_map::mark_all_dirty() {
  std::fill(dirty_.begin(), dirty_.end(), 1);
  nr_dirty_ = dirty_.size();
  overflow_dirty_ = true;
}

}  // namespace pdata
