// The block encoding of thin-provisioning-tools 1.x's pack files: each
// metadata block is written as a short program for a small byte-emitting
// machine, so the sorted keys and block numbers in B-tree nodes shrink to a
// few delta instructions before zlib sees them.
//
// The machine keeps one u64 register, `base`, and appends bytes to the block.
// An instruction is a byte: tag in the high nibble, operand in the low one.
//   0 set      nibble = width (1,2,4,8); base = the next `width` LE bytes; emit base
//   1 pos      base += nibble; emit base
//   2 pos_w    base += next `nibble` bytes; emit base
//   3 neg      base -= nibble; emit base
//   4 neg_w    base -= next `nibble` bytes; emit base
//   5 const    emit base `nibble` times
//   6 const8   emit base ((nibble << 8) | next byte) times
//   7 count    run the next instruction `nibble` times
//   8 count8   run the next instruction ((nibble << 8) | next byte) times
//   9 lit      copy the next `nibble` bytes
//  10 lit_w    copy the next n bytes, n in the following `nibble` bytes
//  11 shifted  len = (nibble << 8) | next byte; two nested programs give len
//              high words and len low words; emit (high << 24) | (low & 0xffffff)
// "emit base" appends base as 8 LE bytes. A block's program runs until 4096
// bytes have been emitted; `base` starts at 0 for every block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "persistent-data/block.h"

namespace thin::pack {

// A pack file (or a block program in it) is malformed.
class pack_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Appends the program for one 4096-byte block to `out`. B-tree nodes (as the
// caller found by their checksum) get the delta encoding of their keys and
// values; other blocks, and nodes whose header describes a layout that does
// not fit the block, are one literal.
void encode_block(const unsigned char *block, bool btree_node, std::vector<unsigned char> &out);

// Reads bytes for the decoder; returns how many were read (fewer only at the end).
class byte_source {
 public:
  virtual ~byte_source() = default;
  virtual std::size_t read(unsigned char *buf, std::size_t len) = 0;
};

// Runs one block's program from `in` into `block` (4096 bytes). Throws
// pack_error when the program is malformed, emits more or fewer than 4096
// bytes, or the input ends inside it.
void decode_block(byte_source &in, unsigned char *block);

}  // namespace thin::pack
