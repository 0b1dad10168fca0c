// Per-block counts of a few bits each, kept in pages that exist only where a
// non-zero count was stored.
//
// A page covers the blocks of one space-map bitmap (16320), so a space map's
// memory follows the blocks in use, not its size: a data space map of 2^32
// blocks with a handful of mappings costs its page table (8 bytes a bitmap,
// 2 MiB) and a page per bitmap that holds a count. A missing page reads as
// all zero; storing a zero into it allocates nothing. Used by space_map
// (4 bits a block) and ref_counts (2 bits a block).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "persistent-data/block.h"
#include "persistent-data/space_map_disk.h"

namespace pdata {

template <unsigned Bits>
class count_pages {
  static_assert(Bits == 2 || Bits == 4);

 public:
  static constexpr block_address page_blocks = entries_per_bitmap;
  static constexpr std::size_t page_bytes = std::size_t(page_blocks) * Bits / 8;
  static constexpr unsigned per_byte = 8 / Bits;
  static constexpr uint32_t mask = (1u << Bits) - 1;

  count_pages() = default;
  // The page table is sized here: callers bound nr_blocks first (a space map
  // cannot have more bitmaps than its metadata device has blocks).
  explicit count_pages(block_address nr_blocks) : pages_(pages_for(nr_blocks)) {}
  count_pages(count_pages &&) noexcept = default;
  count_pages &operator=(count_pages &&) noexcept = default;
  count_pages(const count_pages &o) : pages_(o.pages_.size()) { copy_from(o); }
  count_pages &operator=(const count_pages &o) {
    if (this != &o) {
      pages_.clear();
      pages_.resize(o.pages_.size());
      copy_from(o);
    }
    return *this;
  }

  static uint64_t pages_for(block_address nr_blocks) {
    return nr_blocks / page_blocks + (nr_blocks % page_blocks != 0);
  }
  // Grows (new blocks read as zero).
  void grow(block_address nr_blocks) { pages_.resize(pages_for(nr_blocks)); }

  uint64_t nr_pages() const { return pages_.size(); }
  // Page p's bytes, or nullptr when every count in it is zero.
  const uint8_t *page(uint64_t p) const { return pages_[p].get(); }
  uint8_t *page_for_write(uint64_t p) {
    auto &pg = pages_[p];
    if (!pg) {
      pg.reset(new uint8_t[page_bytes]);
      std::memset(pg.get(), 0, page_bytes);
    }
    return pg.get();
  }

  uint32_t get(block_address b) const {
    const uint8_t *pg = pages_[b / page_blocks].get();
    if (!pg) return 0;
    const uint32_t e = static_cast<uint32_t>(b % page_blocks);
    return (pg[e / per_byte] >> ((e % per_byte) * Bits)) & mask;
  }
  void set(block_address b, uint32_t v) {
    auto &pg = pages_[b / page_blocks];
    if (!pg) {
      if (!v) return;
      page_for_write(b / page_blocks);
    }
    const uint32_t e = static_cast<uint32_t>(b % page_blocks);
    uint8_t &byte = pg[e / per_byte];
    const unsigned sh = (e % per_byte) * Bits;
    byte = static_cast<uint8_t>((byte & ~(mask << sh)) | (v << sh));
  }

 private:
  void copy_from(const count_pages &o) {
    for (std::size_t p = 0; p < o.pages_.size(); p++)
      if (o.pages_[p]) std::memcpy(page_for_write(p), o.pages_[p].get(), page_bytes);
  }
  std::vector<std::unique_ptr<uint8_t[]>> pages_;
};

}  // namespace pdata
