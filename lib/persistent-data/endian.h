// Little-endian integer field types for on-disk structs.
//
// Every on-disk layout in thinkit is a packed POD made of these types, so a
// struct can be overlaid on a 4 KiB block buffer and read or written on any
// host without byte-order mistakes. They hold raw bytes; get()/set() convert.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace pdata {

template <typename T>
struct __attribute__((packed)) le_int {
  static_assert(std::is_unsigned_v<T>);
  unsigned char bytes[sizeof(T)];

  T get() const {
    T v = 0;
    for (unsigned i = 0; i < sizeof(T); i++) v = static_cast<T>(v | (static_cast<T>(bytes[i]) << (8 * i)));
    return v;
  }
  void set(T v) {
    for (unsigned i = 0; i < sizeof(T); i++) bytes[i] = static_cast<unsigned char>(v >> (8 * i));
  }
};

using le16 = le_int<uint16_t>;
using le32 = le_int<uint32_t>;
using le64 = le_int<uint64_t>;

static_assert(sizeof(le16) == 2 && sizeof(le32) == 4 && sizeof(le64) == 8);
static_assert(std::is_trivially_copyable_v<le64>);

// Unaligned little-endian loads and stores on raw byte pointers.
inline uint32_t load_le32(const void *p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t load_le64(const void *p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline void store_le32(void *p, uint32_t v) { std::memcpy(p, &v, 4); }
inline void store_le64(void *p, uint64_t v) { std::memcpy(p, &v, 8); }

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "load_le*/store_le* assume a little-endian host; le_int<> does not");

}  // namespace pdata
