// Counting a space map's counts down (see count_down.h).
#include "persistent-data/count_down.h"

#include <bit>

#include "persistent-data/endian.h"
#include "persistent-data/space_map_disk.h"

namespace pdata {

namespace {
constexpr uint64_t low_bits = 0x5555555555555555ull;
constexpr uint32_t words_per_bitmap = entries_per_bitmap / 32;
static_assert(words_per_bitmap * 32 == entries_per_bitmap);
constexpr uint32_t words_per_group = 8;
}  // namespace

count_down::count_down(block_address nr_blocks)
    : nr_blocks_(nr_blocks),
      words_(static_cast<std::size_t>((nr_blocks + entries_per_bitmap - 1) / entries_per_bitmap) * words_per_bitmap,
             0) {}

count_down::bitmap_stats count_down::load_bitmap(uint64_t i, const unsigned char *data) {
  bitmap_stats st;
  st.first_free = entries_per_bitmap;
  const block_address first = i * entries_per_bitmap;
  uint64_t *out = words_.data() + i * words_per_bitmap;
  for (uint32_t k = 0; k < words_per_bitmap; k++) {
    const uint64_t w = load_le64(data + 8 * std::size_t(k));
    out[k] = w;
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
  rank_.assign(words_.size() / words_per_group + 1, 0);
  sub_rank_.assign(words_.size(), 0);
  uint64_t n = 0;
  for (std::size_t k = 0; k < words_.size(); k++) {
    if (k % words_per_group == 0) rank_[k / words_per_group] = n;
    sub_rank_[k] = static_cast<uint8_t>(n - rank_[k / words_per_group]);
    n += popcount(three_bits(words_[k]));
  }
  nr_threes_ = n;
  found_.assign(n, 0);
  last_three_ = ~0ull - 1;
}

uint64_t count_down::rank_of_three(block_address b) const {
  const std::size_t k = b >> 5;
  uint64_t r = rank_[k / words_per_group] + sub_rank_[k];
  const unsigned sh = static_cast<unsigned>((b & 31) * 2);
  if (sh) r += popcount(three_bits(words_[k]) & ((1ull << sh) - 1));
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
    spill_[b]++;
  else
    f++;
}

uint64_t count_down::found(block_address b) const {
  const uint8_t f = found_[rank_of_three(b)];
  if (f < 255) return f;
  auto it = spill_.find(b);
  return 255 + (it == spill_.end() ? 0 : it->second);
}

bool count_down::small_counts_used_up() const {
  for (uint64_t w : words_) {
    const uint64_t hi = w & low_bits, lo = (w >> 1) & low_bits;
    if (hi ^ lo) return false;
  }
  return true;
}

}  // namespace pdata
