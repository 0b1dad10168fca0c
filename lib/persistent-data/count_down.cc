// Counting a space map's counts down (see count_down.h).
#include "persistent-data/count_down.h"

#include <bit>

#include "persistent-data/endian.h"
#include "persistent-data/space_map_disk.h"

namespace pdata {

namespace {
constexpr uint64_t low_bits = 0x5555555555555555ull;
}  // namespace

// The page table has a slot per bitmap: callers bound nr_blocks first (every
// bitmap is a metadata block, so there are no more than the device's blocks).
count_down::count_down(block_address nr_blocks)
    : nr_blocks_(nr_blocks),
      pages_(static_cast<std::size_t>(nr_blocks / entries_per_bitmap + (nr_blocks % entries_per_bitmap != 0))) {}

count_down::bitmap_stats count_down::load_bitmap(uint64_t i, const unsigned char *data) {
  bitmap_stats st;
  st.first_free = entries_per_bitmap;
  const block_address first = i * entries_per_bitmap;
  uint64_t any = 0;
  for (uint32_t k = 0; k < words_per_bitmap; k++) {
    const uint64_t w = load_le64(data + 8 * std::size_t(k));
    any |= w;
    const block_address base = first + 32ull * k;
    // Bit 2j of `valid` set for the entries below the end of the space map.
    uint64_t valid = low_bits;
    if (base + 32 > nr_blocks_) valid = base >= nr_blocks_ ? 0 : low_bits & ((1ull << (2 * (nr_blocks_ - base))) - 1);
    const uint64_t nonzero = (w | (w >> 1)) & low_bits;
    const uint64_t free = ~nonzero & valid;
    st.nr_free += static_cast<uint32_t>(std::popcount(free));
    if (free && st.first_free == entries_per_bitmap)
      st.first_free = 32 * k + static_cast<uint32_t>(std::countr_zero(free)) / 2;
    st.nr_allocated += static_cast<uint64_t>(std::popcount(nonzero & valid));
    st.beyond_end += static_cast<uint32_t>(std::popcount(nonzero & ~valid));
  }
  // An all-free bitmap needs no memory: a missing page takes no references.
  if (any) {
    auto p = std::make_unique<page>();
    for (uint32_t k = 0; k < words_per_bitmap; k++) p->words[k] = load_le64(data + 8 * std::size_t(k));
    pages_[i] = std::move(p);
  } else {
    pages_[i].reset();
  }
  return st;
}

// The popcnt instruction where the CPU has it (the build targets plain x86-64).
__attribute__((target("popcnt"))) static unsigned popcount_hw(uint64_t x) {
  return static_cast<unsigned>(__builtin_popcountll(x));
}
static unsigned popcount_sw(uint64_t x) { return static_cast<unsigned>(std::popcount(x)); }
static const bool have_popcnt = __builtin_cpu_supports("popcnt");

unsigned count_down::popcount(uint64_t x) { return have_popcnt ? popcount_hw(x) : popcount_sw(x); }

void count_down::finish_loading() {
  uint64_t n = 0;
  for (auto &p : pages_) {
    if (!p) continue;
    p->base = n;
    uint64_t in_page = 0;
    for (uint32_t k = 0; k < words_per_bitmap; k++) in_page += popcount(three_bits(p->words[k]));
    if (in_page) {
      p->rank.reset(new uint16_t[words_per_bitmap]);
      uint32_t r = 0;  // at most 16320: fits
      for (uint32_t k = 0; k < words_per_bitmap; k++) {
        p->rank[k] = static_cast<uint16_t>(r);
        r += popcount(three_bits(p->words[k]));
      }
    } else {
      p->rank.reset();
    }
    n += in_page;
  }
  nr_threes_ = n;
  found_.assign(n, 0);
  last_three_ = ~0ull - 1;
  cur_first_ = 0;
  cur_ = pages_.empty() ? nullptr : pages_[0].get();
}

uint64_t count_down::rank_of_three(block_address b) const {
  const page &p = *pages_[b / entries_per_bitmap];  // b's entry is 3: its page has ranks
  const uint32_t e = static_cast<uint32_t>(b % entries_per_bitmap);
  const uint32_t k = e >> 5;
  uint64_t r = p.base + p.rank[k];
  const unsigned sh = (e & 31) * 2;
  if (sh) r += popcount(three_bits(p.words[k]) & ((1ull << sh) - 1));
  return r;
}

void count_down::found_three(block_address b) {
  // Mappings come in runs of consecutive data blocks: the next block of 3
  // after the last one has the next rank.
  const uint64_t r = b == last_three_ + 1 ? last_rank_ + 1 : rank_of_three(b);
  last_three_ = b;
  last_rank_ = r;
  uint8_t &f = found_[r];
  if (f == 255)
    spill_[r]++;
  else
    f++;
}

uint64_t count_down::found(block_address b) const { return found_at_rank(rank_of_three(b)); }

uint64_t count_down::found_at_rank(uint64_t r) const {
  const uint8_t f = found_[r];
  if (f < 255) return f;
  auto it = spill_.find(r);
  return 255 + (it == spill_.end() ? 0 : it->second);
}

bool count_down::small_counts_used_up() const {
  for (auto &p : pages_) {
    if (!p) continue;
    for (uint64_t w : p->words) {
      const uint64_t hi = w & low_bits, lo = (w >> 1) & low_bits;
      if (hi ^ lo) return false;
    }
  }
  return true;
}

}  // namespace pdata
