// The virtual block each shared data block is mapped at, for the fast
// check's twice-mapped rule (invariants.h): dm-thin shares a data block only
// through snapshots, which keep it at the same virtual block, so every
// reference to a data block with a count of two or more must carry the same
// virtual block. A reference elsewhere is not proof of damage (two devices
// may, by the format, map one block at different places); the fast check
// hands such a pool to the exact checker, which looks device by device.
//
// One 32-bit slot per data block (the virtual block plus one; 0: none seen),
// in pages of 16384 slots allocated when a shared block in them is first
// noted: memory follows the shared blocks, and a lookup is an index and a
// null test. A virtual block of 2^32 - 1 or more does not fit a slot: note()
// reports it as a conflict, which sends the pool to the exact checker.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace thin {

class shared_vblocks {
 public:
  explicit shared_vblocks(uint64_t nr_blocks) : pages_((nr_blocks >> page_bits) + 1) {}

  // A reference to data block b (< nr_blocks) at virtual block v, made while
  // b has other references still to come. False when b was seen before at
  // another virtual block (or v does not fit).
  bool note(uint64_t b, uint64_t v) {
    if (v >= UINT32_MAX) return false;
    auto &p = pages_[b >> page_bits];
    if (!p) p = std::make_unique<uint32_t[]>(page_size);  // zeroed
    uint32_t &slot = p[b & (page_size - 1)];
    const uint32_t want = static_cast<uint32_t>(v) + 1;
    if (slot == 0) slot = want;
    return slot == want;
  }

  // The last (or only) reference to b: false when b was noted before at
  // another virtual block.
  bool last(uint64_t b, uint64_t v) const {
    const auto &p = pages_[b >> page_bits];
    if (!p) return true;
    const uint32_t slot = p[b & (page_size - 1)];
    return slot == 0 || (v < UINT32_MAX && slot == static_cast<uint32_t>(v) + 1);
  }

 private:
  static constexpr unsigned page_bits = 14;
  static constexpr uint64_t page_size = uint64_t(1) << page_bits;
  std::vector<std::unique_ptr<uint32_t[]>> pages_;
};

}  // namespace thin
