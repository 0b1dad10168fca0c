// thin_metadata_pack / thin_metadata_unpack: the pack file of
// thin-provisioning-tools 1.x (version 3), so packs move between the two
// implementations in either direction.
//
// Layout (all integers little-endian u64):
//   header   magic 0xa537a0aa6309ef77, version 3, block size 4096, nr_blocks
//   chunks   until the end of the file: length, then that many bytes of one
//            zlib stream holding entries (block number, block program); see
//            block_codec.h for the programs
// Only blocks whose checksum matches one of the metadata block types (thin,
// cache or era superblock, B-tree node, space-map index or bitmap, array
// block) are stored; unpacking leaves every other block zero.
#pragma once

#include <cstdint>
#include <istream>
#include <ostream>

#include "persistent-data/block_io.h"
#include "thin/pack/block_codec.h"

namespace thin::pack {

constexpr uint64_t pack_magic = 0xa537a0aa6309ef77ULL;
constexpr uint64_t pack_version = 3;
constexpr unsigned blocks_per_chunk = 1024;  // as 1.x writes them; readers take any number

// True when the block carries the checksum of a metadata block type.
bool is_metadata_block(const unsigned char *block);
// True when it carries a thin, cache or era superblock's checksum (the
// tools refuse to overwrite such an output without --force, as 1.x does).
bool is_metadata_superblock(const unsigned char *block);

struct pack_stats {
  uint64_t nr_blocks = 0;      // size of the metadata, in 4 KiB blocks
  uint64_t blocks_stored = 0;  // blocks in the pack
};

// Writes the pack of every metadata block on `in` to `out`. Throws io_error
// on a read failure and std::ios_base::failure when `out` fails.
pack_stats pack_metadata(pdata::block_io &in, std::ostream &out);

// Reads and checks the header; returns nr_blocks. Throws pack_error.
uint64_t read_pack_header(std::istream &in);

// Unpacks the chunks after the header into `out`, which must hold at least
// nr_blocks blocks. Block 0 is zeroed and flushed first and the packed block 0
// (the superblock) is written last, after a flush, so a failure leaves a
// zeroed superblock. Blocks not in the pack are not written (a freshly sized
// file reads them as zeroes). Throws pack_error on malformed input.
pack_stats unpack_metadata(std::istream &in, uint64_t nr_blocks, pdata::block_io &out);

}  // namespace thin::pack
