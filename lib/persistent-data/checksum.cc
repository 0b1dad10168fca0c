// Block checksums (see checksum.h for the salt table).
#include "persistent-data/checksum.h"

#include "persistent-data/crc32c.h"
#include "persistent-data/endian.h"

namespace pdata {

uint32_t block_checksum(const void *block, checksum_salt salt) {
  auto *p = static_cast<const unsigned char *>(block);
  return crc32c_raw(0xFFFFFFFFu, p + 4, block_size - 4) ^ static_cast<uint32_t>(salt);
}

uint32_t stored_checksum(const void *block) { return load_le32(block); }

bool checksum_ok(const void *block, checksum_salt salt) {
  return stored_checksum(block) == block_checksum(block, salt);
}

void stamp_checksum(void *block, checksum_salt salt) { store_le32(block, block_checksum(block, salt)); }

}  // namespace pdata
