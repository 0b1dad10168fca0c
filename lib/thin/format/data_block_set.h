// A set of data blocks for the twice-mapped rule of invariants.h: one bit a
// block, in 4 KiB pages allocated as they are touched (memory follows the
// data blocks used, not nr_data_blocks), cleared in time proportional to the
// pages touched since the last clear (one set serves device after device).
#pragma once

#include <algorithm>
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace thin {

class data_block_set {
 public:
  // False when `b` was already in the set.
  bool insert(uint64_t b) {
    const uint64_t i = b & ((1u << page_bits) - 1);
    uint64_t &w = page_of(b).bits[i / 64];
    const uint64_t bit = 1ull << (i % 64);
    if (w & bit) return false;
    w |= bit;
    return true;
  }

  // Inserts [b, b + len): the first of them already in the set (the rest
  // then may or may not have been inserted), or UINT64_MAX when none was.
  uint64_t insert_range(uint64_t b, uint64_t len) {
    while (len) {
      const uint64_t i = b & ((1u << page_bits) - 1);
      const uint64_t in_page = std::min<uint64_t>(len, (uint64_t(1) << page_bits) - i);
      page &pg = page_of(b);
      for (uint64_t at = i, end = i + in_page; at < end;) {
        const uint64_t n = std::min<uint64_t>(end - at, 64 - at % 64);
        const uint64_t mask = (n == 64 ? ~0ull : ((1ull << n) - 1)) << (at % 64);
        uint64_t &w = pg.bits[at / 64];
        if (w & mask) return (b - i) + at / 64 * 64 + static_cast<uint64_t>(__builtin_ctzll(w & mask));
        w |= mask;
        at += n;
      }
      b += in_page;
      len -= in_page;
    }
    return UINT64_MAX;
  }

  bool contains(uint64_t b) const {
    auto it = pages_.find(b >> page_bits);
    if (it == pages_.end()) return false;
    const uint64_t i = b & ((1u << page_bits) - 1);
    return it->second.bits[i / 64] >> (i % 64) & 1;
  }

  void clear() {
    for (page *p : touched_) {
      std::fill(p->bits.begin(), p->bits.end(), 0);
      p->touched = false;
    }
    touched_.clear();
  }

 private:
  static constexpr unsigned page_bits = 15;  // 32768 blocks a page
  struct page {
    std::vector<uint64_t> bits;
    bool touched = false;
  };
  // The page holding b, made if new, marked touched.
  page &page_of(uint64_t b) {
    const uint64_t n = b >> page_bits;
    if (n != last_page_) {
      auto [it, fresh] = pages_.try_emplace(n);
      if (fresh) it->second.bits.assign((1u << page_bits) / 64, 0);
      last_page_ = n;
      last_ = &it->second;
    }
    if (!last_->touched) {
      last_->touched = true;
      touched_.push_back(last_);
    }
    return *last_;
  }
  std::unordered_map<uint64_t, page> pages_;
  std::vector<page *> touched_;
  uint64_t last_page_ = ~0ull;
  page *last_ = nullptr;
};

}  // namespace thin
