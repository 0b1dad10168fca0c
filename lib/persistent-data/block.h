// Basic units of persistent-data: 4 KiB metadata blocks and their addresses.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace pdata {

using block_address = uint64_t;

constexpr std::size_t block_size = 4096;
constexpr unsigned sectors_per_block = block_size / 512;

// A heap-allocated, 4 KiB-aligned block buffer (aligned for O_DIRECT).
struct alignas(4096) block_buffer {
  std::array<unsigned char, block_size> data;
  unsigned char *raw() { return data.data(); }
  const unsigned char *raw() const { return data.data(); }
};
static_assert(sizeof(block_buffer) == block_size);

}  // namespace pdata
