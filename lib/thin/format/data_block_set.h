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
    const uint64_t i = b & ((1u << page_bits) - 1);
    uint64_t &w = last_->bits[i / 64];
    const uint64_t bit = 1ull << (i % 64);
    if (w & bit) return false;
    w |= bit;
    return true;
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
  std::unordered_map<uint64_t, page> pages_;
  std::vector<page *> touched_;
  uint64_t last_page_ = ~0ull;
  page *last_ = nullptr;
};

}  // namespace thin
