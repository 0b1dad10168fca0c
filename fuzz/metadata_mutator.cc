// The structure-aware mutator of the metadata harnesses (linked into each of
// them; libFuzzer calls LLVMFuzzerCustomMutator instead of its own mutator).
//
// Every metadata block carries a crc32c checksum, so a byte-level mutation
// almost always ends at "bad checksum" and the fuzzer never reaches the
// code behind it. This mutator decodes the sparse image (metadata_image.h),
// mutates one block with libFuzzer's own byte mutator and then restamps the
// block's checksum with the salt it verified with before (superblock, B-tree
// node, bitmap, index block), so the mutated block passes validation and the
// damage is structural. Now and then it leaves a checksum wrong, moves a
// block to another place (its blocknr field follows), drops a block, or
// mutates the header (device size, flags, arguments) or the raw input.
#include <cstring>
#include <optional>
#include <random>

#include "metadata_image.h"
#include "persistent-data/checksum.h"

extern "C" size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

namespace {

using pdata::checksum_salt;

std::optional<checksum_salt> salt_of(const std::vector<unsigned char> &blk) {
  for (checksum_salt s : {checksum_salt::superblock, checksum_salt::btree_node, checksum_salt::bitmap,
                          checksum_salt::index_block})
    if (pdata::checksum_ok(blk.data(), s)) return s;
  return std::nullopt;
}

void put64(std::vector<unsigned char> &blk, std::size_t off, uint64_t v) {
  for (int i = 0; i < 8; i++) blk[off + static_cast<std::size_t>(i)] = static_cast<unsigned char>(v >> (8 * i));
}

// The block's trimmed bytes through libFuzzer's mutator, zero-padded back.
void mutate_bytes(std::vector<unsigned char> &blk) {
  std::size_t len = blk.size();
  while (len > 0 && blk[len - 1] == 0) len--;
  if (len == 0) len = 64;
  std::size_t n = LLVMFuzzerMutate(blk.data(), len, blk.size());
  std::fill(blk.begin() + static_cast<std::ptrdiff_t>(n), blk.end(), 0);
}

}  // namespace

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed) {
  std::minstd_rand rng(seed);
  fuzz::metadata_image img = fuzz::decode_image(data, size);
  if (img.blocks.empty() || rng() % 16 == 0) return LLVMFuzzerMutate(data, size, max_size);

  auto pick = [&]() {
    auto it = img.blocks.begin();
    std::advance(it, static_cast<std::ptrdiff_t>(rng() % img.blocks.size()));
    return it;
  };
  const unsigned op = rng() % 16;
  if (op < 11) {
    // One block, restamped (except one time in eight).
    auto it = pick();
    auto salt = salt_of(it->second);
    mutate_bytes(it->second);
    if (salt && rng() % 8 != 0) pdata::stamp_checksum(it->second.data(), *salt);
  } else if (op < 13) {
    // A block copied to another place: a stale or misdirected node. Its
    // blocknr follows it (a node written there) unless told otherwise.
    auto from = pick();
    uint32_t to = static_cast<uint32_t>(rng() % img.nr_blocks);
    std::vector<unsigned char> blk = from->second;
    auto salt = salt_of(blk);
    if (salt && rng() % 4 != 0) {
      put64(blk, 8, to);
      pdata::stamp_checksum(blk.data(), *salt);
    }
    img.blocks[to] = std::move(blk);
  } else if (op == 13) {
    if (img.blocks.size() > 1) img.blocks.erase(pick());
  } else {
    // The header: device size, flags, arguments.
    unsigned char h[16];
    std::memcpy(h, data, std::min<std::size_t>(size, 16));
    if (size < 16) std::memset(h + size, 0, 16 - size);
    LLVMFuzzerMutate(h, 16, 16);
    img.nr_blocks = std::clamp<uint32_t>(
        static_cast<uint32_t>(h[0] | h[1] << 8 | h[2] << 16) | static_cast<uint32_t>(h[3]) << 24, 1,
        fuzz::max_image_blocks);
    img.flags = static_cast<uint32_t>(h[4] | h[5] << 8 | h[6] << 16) | static_cast<uint32_t>(h[7]) << 24;
    img.arg1 = static_cast<uint32_t>(h[8] | h[9] << 8 | h[10] << 16) | static_cast<uint32_t>(h[11]) << 24;
    img.arg2 = static_cast<uint32_t>(h[12] | h[13] << 8 | h[14] << 16) | static_cast<uint32_t>(h[15]) << 24;
  }
  std::vector<unsigned char> out = fuzz::encode_image(img);
  if (out.size() > max_size) return LLVMFuzzerMutate(data, size, max_size);
  std::memcpy(data, out.data(), out.size());
  return out.size();
}
