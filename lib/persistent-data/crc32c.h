// CRC-32C (Castagnoli) as persistent-data uses it.
//
// crc32c_raw() runs the reflected CRC-32C register from `seed` over the bytes
// with no final inversion, exactly like the kernel's crc32c() library call.
// It uses the SSE4.2 crc32 instruction when the CPU has it (checked once at
// run time) and a portable slicing-by-8 table otherwise.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pdata {

uint32_t crc32c_raw(uint32_t seed, const void *data, std::size_t len);

// The portable implementation, exposed so tests can compare both paths.
uint32_t crc32c_raw_portable(uint32_t seed, const void *data, std::size_t len);

// True when crc32c_raw() uses the hardware instruction.
bool crc32c_hardware();

}  // namespace pdata
