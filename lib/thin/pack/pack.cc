// The pack file format (see pack.h): header, zlib-compressed chunks of
// (block number, block program) entries. zlib comes through Boost.Iostreams.
#include "thin/pack/pack.h"

#include <algorithm>
#include <array>
#include <vector>

#include <boost/iostreams/device/array.hpp>
#include <boost/iostreams/device/back_inserter.hpp>
#include <boost/iostreams/filter/zlib.hpp>
#include <boost/iostreams/filtering_stream.hpp>
#include <fmt/format.h>

#include "persistent-data/checksum.h"
#include "persistent-data/endian.h"
#include "persistent-data/errors.h"

namespace thin::pack {

namespace io = boost::iostreams;

namespace {

// The checksum salts of every metadata block type 1.x packs (the cache and
// era superblocks too, so their metadata packs the same way).
constexpr std::array<uint32_t, 7> metadata_salts = {
    160774,     // thin superblock
    9031977,    // cache superblock
    146538381,  // era superblock
    121107,     // B-tree node
    240779,     // space-map bitmap
    160478,     // space-map index
    595846735,  // array block
};
constexpr uint32_t btree_salt = 121107;

// The salt the block's checksum was made with, or 0 when it matches none.
uint32_t salt_of(const unsigned char *block) {
  const uint32_t x = pdata::block_checksum(block, static_cast<pdata::checksum_salt>(0)) ^ pdata::stored_checksum(block);
  return std::find(metadata_salts.begin(), metadata_salts.end(), x) != metadata_salts.end() ? x : 0;
}

void put_u64(std::vector<unsigned char> &out, uint64_t v) {
  for (unsigned i = 0; i < 8; i++) out.push_back(static_cast<unsigned char>(v >> (8 * i)));
}

void write_u64(std::ostream &out, uint64_t v) {
  unsigned char b[8];
  pdata::store_le64(b, v);
  out.write(reinterpret_cast<const char *>(b), 8);
}

// Reads up to 8 bytes; returns how many arrived.
std::size_t read_some(std::istream &in, unsigned char *buf, std::size_t len) {
  in.read(reinterpret_cast<char *>(buf), static_cast<std::streamsize>(len));
  return static_cast<std::size_t>(in.gcount());
}

void write_chunk(std::ostream &out, const std::vector<unsigned char> &raw) {
  std::vector<char> z;
  {
    io::filtering_ostream zs;
    zs.push(io::zlib_compressor(io::zlib_params(io::zlib::default_compression)));
    zs.push(io::back_inserter(z));
    zs.write(reinterpret_cast<const char *>(raw.data()), static_cast<std::streamsize>(raw.size()));
    zs.reset();  // finishes the zlib stream
  }
  write_u64(out, z.size());
  out.write(z.data(), static_cast<std::streamsize>(z.size()));
}

// The decompressed bytes of one chunk, pulled as the decoder needs them.
class chunk_source : public byte_source {
 public:
  explicit chunk_source(const std::vector<char> &z) {
    zs_.push(io::zlib_decompressor());
    zs_.push(io::array_source(z.data(), z.size()));
    zs_.exceptions(std::ios::badbit);
  }
  std::size_t read(unsigned char *buf, std::size_t len) override {
    try {
      zs_.read(reinterpret_cast<char *>(buf), static_cast<std::streamsize>(len));
      return static_cast<std::size_t>(zs_.gcount());
    } catch (const std::exception &e) {
      throw pack_error(fmt::format("bad compressed data in a chunk ({})", e.what()));
    }
  }

 private:
  io::filtering_istream zs_;
};

// Writes consecutive blocks in one call.
class run_writer {
 public:
  explicit run_writer(pdata::block_io &out) : out_(out) {}
  void add(uint64_t b, const unsigned char *data) {
    if (!buf_.empty() && (b != start_ + count() || count() == max_run)) flush();
    if (buf_.empty()) start_ = b;
    buf_.insert(buf_.end(), data, data + pdata::block_size);
  }
  void flush() {
    if (!buf_.empty()) out_.write(start_, buf_.data(), count());
    buf_.clear();
  }

 private:
  static constexpr std::size_t max_run = 256;
  std::size_t count() const { return buf_.size() / pdata::block_size; }
  pdata::block_io &out_;
  uint64_t start_ = 0;
  std::vector<unsigned char> buf_;
};

}  // namespace

bool is_metadata_block(const unsigned char *block) { return salt_of(block) != 0; }

bool is_metadata_superblock(const unsigned char *block) {
  const uint32_t s = salt_of(block);
  return s == metadata_salts[0] || s == metadata_salts[1] || s == metadata_salts[2];
}

pack_stats pack_metadata(pdata::block_io &in, std::ostream &out) {
  pack_stats st;
  st.nr_blocks = in.nr_blocks();
  for (uint64_t v : {pack_magic, pack_version, uint64_t{pdata::block_size}, st.nr_blocks}) write_u64(out, v);

  constexpr uint64_t batch = 256;
  std::vector<unsigned char> buf(batch * pdata::block_size), raw;
  unsigned in_chunk = 0;
  for (uint64_t b = 0; b < st.nr_blocks; b += batch) {
    const uint64_t n = std::min(batch, st.nr_blocks - b);
    in.read(b, buf.data(), n);
    for (uint64_t i = 0; i < n; i++) {
      const unsigned char *block = buf.data() + i * pdata::block_size;
      const uint32_t salt = salt_of(block);
      if (!salt) continue;
      put_u64(raw, b + i);
      encode_block(block, salt == btree_salt, raw);
      st.blocks_stored++;
      if (++in_chunk == blocks_per_chunk) {
        write_chunk(out, raw);
        raw.clear();
        in_chunk = 0;
      }
    }
  }
  if (in_chunk) write_chunk(out, raw);
  out.flush();
  return st;
}

uint64_t read_pack_header(std::istream &in) {
  unsigned char h[32];
  const std::size_t got = read_some(in, h, sizeof(h));
  if (got >= 8 && pdata::load_le64(h) != pack_magic) throw pack_error("not a pack file (bad magic number)");
  if (got < sizeof(h)) throw pack_error(fmt::format("not a pack file (only {} bytes; the header is 32)", got));
  if (uint64_t v = pdata::load_le64(h + 8); v != pack_version)
    throw pack_error(fmt::format("unsupported pack file version {} (only version {} is known)", v, pack_version));
  if (uint64_t bs = pdata::load_le64(h + 16); bs != pdata::block_size)
    throw pack_error(fmt::format("unsupported block size {} (only {} is known)", bs, pdata::block_size));
  const uint64_t nr_blocks = pdata::load_le64(h + 24);
  if (nr_blocks == 0) throw pack_error("the pack holds metadata of 0 blocks");
  if (nr_blocks > UINT64_MAX / pdata::block_size) throw pack_error(fmt::format("bad block count {}", nr_blocks));
  return nr_blocks;
}

pack_stats unpack_metadata(std::istream &in, uint64_t nr_blocks, pdata::block_io &out) {
  if (out.nr_blocks() < nr_blocks)
    throw pdata::io_error(fmt::format("the output holds {} blocks; the pack needs {}", out.nr_blocks(), nr_blocks));
  pack_stats st;
  st.nr_blocks = nr_blocks;

  pdata::block_buffer zero{}, superblock{}, block;
  bool have_superblock = false;
  out.write(0, zero.raw());
  out.flush();

  run_writer w(out);
  std::vector<char> z;
  for (uint64_t chunk = 0;; chunk++) {
    unsigned char len_bytes[8];
    const std::size_t got = read_some(in, len_bytes, 8);
    if (got == 0) break;
    if (got < 8) throw pack_error(fmt::format("chunk {}: the pack ends inside its length", chunk));
    const uint64_t len = pdata::load_le64(len_bytes);
    if (len == 0) throw pack_error(fmt::format("chunk {}: empty", chunk));
    // Grow the buffer only as bytes arrive: the length is not trusted.
    z.clear();
    while (z.size() < len) {
      const std::size_t piece = static_cast<std::size_t>(std::min<uint64_t>(len - z.size(), 1 << 20));
      const std::size_t old = z.size();
      z.resize(old + piece);
      if (read_some(in, reinterpret_cast<unsigned char *>(z.data() + old), piece) != piece)
        throw pack_error(fmt::format("chunk {}: the pack ends inside it (truncated file?)", chunk));
    }
    chunk_source src(z);
    for (;;) {
      unsigned char nr[8];
      const std::size_t n = src.read(nr, 8);
      if (n == 0) break;
      if (n < 8) throw pack_error(fmt::format("chunk {}: ends inside a block number", chunk));
      const uint64_t b = pdata::load_le64(nr);
      if (b >= nr_blocks)
        throw pack_error(fmt::format("chunk {}: block {} lies beyond the metadata's {} blocks", chunk, b, nr_blocks));
      try {
        decode_block(src, block.raw());
      } catch (const pack_error &e) {
        throw pack_error(fmt::format("chunk {}, block {}: {}", chunk, b, e.what()));
      }
      if (!is_metadata_block(block.raw()))
        throw pack_error(fmt::format("chunk {}, block {}: unpacks to a block with a bad checksum", chunk, b));
      st.blocks_stored++;
      if (b == 0) {
        superblock = block;
        have_superblock = true;
      } else {
        w.add(b, block.raw());
      }
    }
  }
  w.flush();
  out.flush();
  if (have_superblock) {
    out.write(0, superblock.raw());
    out.flush();
  }
  return st;
}

}  // namespace thin::pack
