// The sparse metadata image format of the metadata harnesses (see the header).
#include "metadata_image.h"

#include <algorithm>
#include <cstring>

namespace fuzz {

namespace {

uint32_t get32(const uint8_t *p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}

void put32(std::vector<unsigned char> &out, uint32_t v) {
  for (int i = 0; i < 4; i++) out.push_back(static_cast<unsigned char>(v >> (8 * i)));
}

}  // namespace

metadata_image decode_image(const uint8_t *data, std::size_t size) {
  metadata_image img;
  if (size < 16) return img;
  img.nr_blocks = std::clamp<uint32_t>(get32(data), 1, max_image_blocks);
  img.flags = get32(data + 4);
  img.arg1 = get32(data + 8);
  img.arg2 = get32(data + 12);
  std::size_t pos = 16;
  while (pos + 6 <= size) {
    uint32_t b = get32(data + pos);
    std::size_t len = std::min<std::size_t>(static_cast<std::size_t>(data[pos + 4] | data[pos + 5] << 8),
                                            pdata::block_size);
    pos += 6;
    if (len > size - pos) break;
    if (b < img.nr_blocks) {
      std::vector<unsigned char> blk(pdata::block_size, 0);
      std::memcpy(blk.data(), data + pos, len);
      img.blocks[b] = std::move(blk);
    }
    pos += len;
  }
  return img;
}

std::vector<unsigned char> encode_image(const metadata_image &img) {
  std::vector<unsigned char> out;
  put32(out, img.nr_blocks);
  put32(out, img.flags);
  put32(out, img.arg1);
  put32(out, img.arg2);
  for (auto &[b, blk] : img.blocks) {
    std::size_t len = blk.size();
    while (len > 0 && blk[len - 1] == 0) len--;
    if (len == 0) continue;
    put32(out, b);
    out.push_back(static_cast<unsigned char>(len));
    out.push_back(static_cast<unsigned char>(len >> 8));
    out.insert(out.end(), blk.begin(), blk.begin() + static_cast<std::ptrdiff_t>(len));
  }
  return out;
}

std::unique_ptr<pdata::memory_block_io> make_device(const metadata_image &img) {
  auto io = std::make_unique<pdata::memory_block_io>(std::max<uint32_t>(img.nr_blocks, 1));
  for (auto &[b, blk] : img.blocks) io->write(b, blk.data(), 1);
  return io;
}

}  // namespace fuzz
