// The input format of the metadata harnesses (check, roundtrip, repair,
// delta): a sparse metadata device, so that seeds made from 8 MiB kernel
// images stay a few KiB and mutations land in blocks, not in zeroes.
//
//   header (16 bytes): le32 nr_blocks  device size in 4 KiB blocks (clamped)
//                      le32 flags      harness options (each harness says)
//                      le32 arg1, arg2 harness arguments (delta: device ids)
//   records, to the end: le32 block, le16 len, len bytes (len <= 4096)
//                      the block's first len bytes; the rest are zero.
// A record for a block past nr_blocks is ignored; a later record for the same
// block replaces an earlier one; a truncated last record is dropped.
// fuzz/make_corpus.py writes seeds in this format from kernel images.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "persistent-data/block_io.h"

namespace fuzz {

// Keeps memory per input small; a kernel pool's metadata of 8 MiB is 2048.
constexpr uint32_t max_image_blocks = 16384;

struct metadata_image {
  uint32_t nr_blocks = 0;
  uint32_t flags = 0;
  uint32_t arg1 = 0, arg2 = 0;
  // Block contents, each exactly pdata::block_size bytes.
  std::map<uint32_t, std::vector<unsigned char>> blocks;
};

metadata_image decode_image(const uint8_t *data, std::size_t size);
std::vector<unsigned char> encode_image(const metadata_image &img);

// The device the image describes (at least one block).
std::unique_ptr<pdata::memory_block_io> make_device(const metadata_image &img);

}  // namespace fuzz
