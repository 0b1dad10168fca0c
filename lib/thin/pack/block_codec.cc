// Encoder and decoder of the 1.x pack block programs (see block_codec.h).
#include "thin/pack/block_codec.h"

#include <cstring>

#include <fmt/format.h>

#include "persistent-data/btree_disk.h"
#include "persistent-data/endian.h"

namespace thin::pack {

namespace {

enum tag : unsigned {
  tag_set = 0,
  tag_pos = 1,
  tag_pos_w = 2,
  tag_neg = 3,
  tag_neg_w = 4,
  tag_const = 5,
  tag_const8 = 6,
  tag_count = 7,
  tag_count8 = 8,
  tag_lit = 9,
  tag_lit_w = 10,
  tag_shifted = 11,
};

constexpr unsigned shift_bits = 24;  // a shifted run splits words at bit 24
constexpr unsigned max_nesting = 4;  // shifted runs inside shifted runs (the encoders never nest)

//---------------------------------------------------------------- encoder

void put_tag(std::vector<unsigned char> &out, tag t, uint64_t nibble) {
  out.push_back(static_cast<unsigned char>((static_cast<unsigned>(t) << 4) | (nibble & 0xf)));
}

unsigned width_of(uint64_t v) {
  if (v <= 0xff) return 1;
  if (v <= 0xffff) return 2;
  if (v <= 0xffffffff) return 4;
  return 8;
}

void put_le(std::vector<unsigned char> &out, uint64_t v, unsigned width) {
  for (unsigned i = 0; i < width; i++) out.push_back(static_cast<unsigned char>(v >> (8 * i)));
}

// A repeat prefix; n < 4096 (no block holds that many words).
void put_count(std::vector<unsigned char> &out, uint64_t n) {
  if (n == 1) return;
  if (n < 16) {
    put_tag(out, tag_count, n);
  } else {
    put_tag(out, tag_count8, n >> 8);
    out.push_back(static_cast<unsigned char>(n & 0xff));
  }
}

void put_literal(std::vector<unsigned char> &out, const unsigned char *p, std::size_t len) {
  if (len < 16) {
    put_tag(out, tag_lit, len);
  } else {
    unsigned w = width_of(len);
    put_tag(out, tag_lit_w, w);
    put_le(out, len, w);
  }
  out.insert(out.end(), p, p + len);
}

// A step of `delta` taken `n` times: pos/neg with the delta in the nibble when small.
void put_step(std::vector<unsigned char> &out, bool up, uint64_t delta, uint64_t n) {
  put_count(out, n);
  if (delta < 16) {
    put_tag(out, up ? tag_pos : tag_neg, delta);
  } else {
    unsigned w = width_of(delta);
    put_tag(out, up ? tag_pos_w : tag_neg_w, w);
    put_le(out, delta, w);
  }
}

// Words as: set the first, then runs of equal steps (up, down or none).
void put_words(std::vector<unsigned char> &out, const std::vector<uint64_t> &v) {
  if (v.empty()) return;
  uint64_t base = v[0];
  put_tag(out, tag_set, width_of(base));
  put_le(out, base, width_of(base));
  std::size_t i = 1;
  while (i < v.size()) {
    if (v[i] == base) {
      std::size_t n = 0;
      while (i + n < v.size() && v[i + n] == base) n++;
      if (n < 16) {
        put_tag(out, tag_const, n);
      } else {
        put_tag(out, tag_const8, n >> 8);
        out.push_back(static_cast<unsigned char>(n & 0xff));
      }
      i += n;
      continue;
    }
    const bool up = v[i] > base;
    const uint64_t delta = up ? v[i] - base : base - v[i];
    std::size_t n = 1;
    uint64_t next = v[i];
    while (i + n < v.size() && v[i + n] == (up ? next + delta : next - delta)) {
      next = v[i + n];
      n++;
    }
    put_step(out, up, delta, n);
    base = next;
    i += n;
  }
}

std::vector<uint64_t> load_words(const unsigned char *p, std::size_t n) {
  std::vector<uint64_t> v(n);
  for (std::size_t i = 0; i < n; i++) v[i] = pdata::load_le64(p + 8 * i);
  return v;
}

//---------------------------------------------------------------- decoder

// Where a program's bytes go: a fixed-capacity buffer.
struct output {
  unsigned char *p;
  std::size_t cap, len = 0;
};

class machine {
 public:
  explicit machine(byte_source &in) : in_(in) {}

  // Runs instructions until `out` holds at least `target` bytes.
  void run(output &out, std::size_t target, unsigned depth) {
    while (out.len < target) step(out, 1, depth);
  }

 private:
  unsigned char byte() {
    unsigned char b;
    if (in_.read(&b, 1) != 1) throw pack_error("the pack ends inside a block");
    return b;
  }

  uint64_t operand(unsigned width) {
    if (width != 1 && width != 2 && width != 4 && width != 8)
      throw pack_error(fmt::format("bad operand width {} in a block program", width));
    uint64_t v = 0;
    for (unsigned i = 0; i < width; i++) v |= static_cast<uint64_t>(byte()) << (8 * i);
    return v;
  }

  void emit(output &out, uint64_t v) {
    if (out.cap - out.len < 8) throw pack_error("a block program emits more than its block");
    pdata::store_le64(out.p + out.len, v);
    out.len += 8;
  }

  void copy(output &out, uint64_t n) {
    if (n > out.cap - out.len) throw pack_error("a block program emits more than its block");
    if (in_.read(out.p + out.len, n) != n) throw pack_error("the pack ends inside a block");
    out.len += n;
  }

  static void single(uint64_t count, const char *what) {
    if (count != 1) throw pack_error(fmt::format("a repeat count before a {} instruction", what));
  }

  void step(output &out, uint64_t count, unsigned depth) {
    const unsigned char b = byte();
    const unsigned nibble = b & 0xf;
    switch (b >> 4) {
      case tag_set:
        base_ = operand(nibble);
        for (uint64_t i = 0; i < count; i++) emit(out, base_);
        break;
      case tag_pos:
      case tag_pos_w:
      case tag_neg:
      case tag_neg_w: {
        const unsigned t = b >> 4;
        const uint64_t delta = (t == tag_pos || t == tag_neg) ? nibble : operand(nibble);
        const bool up = t == tag_pos || t == tag_pos_w;
        for (uint64_t i = 0; i < count; i++) {
          base_ = up ? base_ + delta : base_ - delta;
          emit(out, base_);
        }
        break;
      }
      case tag_const:
      case tag_const8: {
        single(count, "const");
        const uint64_t n = (b >> 4) == tag_const ? nibble : (static_cast<uint64_t>(nibble) << 8) | byte();
        for (uint64_t i = 0; i < n; i++) emit(out, base_);
        break;
      }
      case tag_count:
      case tag_count8: {
        single(count, "count");
        const uint64_t n = (b >> 4) == tag_count ? nibble : (static_cast<uint64_t>(nibble) << 8) | byte();
        step(out, n, depth);
        break;
      }
      case tag_lit:
        single(count, "literal");
        copy(out, nibble);
        break;
      case tag_lit_w:
        single(count, "literal");
        copy(out, operand(nibble));
        break;
      case tag_shifted: {
        single(count, "shifted run");
        if (depth >= max_nesting) throw pack_error("shifted runs nested too deeply in a block program");
        const std::size_t len = (static_cast<std::size_t>(nibble) << 8) | byte();
        if (len * 8 > out.cap - out.len) throw pack_error("a block program emits more than its block");
        std::vector<unsigned char> high(len * 8), low(len * 8);
        output h{high.data(), high.size()}, l{low.data(), low.size()};
        run(h, h.cap, depth + 1);
        run(l, l.cap, depth + 1);
        constexpr uint64_t mask = (uint64_t{1} << shift_bits) - 1;
        for (std::size_t i = 0; i < len; i++)
          emit(out, (pdata::load_le64(high.data() + 8 * i) << shift_bits) | (pdata::load_le64(low.data() + 8 * i) & mask));
        break;
      }
      default:
        throw pack_error(fmt::format("unknown instruction {:#04x} in a block program", b));
    }
  }

  byte_source &in_;
  uint64_t base_ = 0;
};

}  // namespace

void encode_block(const unsigned char *block, bool btree_node, std::vector<unsigned char> &out) {
  if (btree_node) {
    const auto *h = reinterpret_cast<const pdata::node_header_disk *>(block);
    const bool leaf = h->flags.get() == pdata::leaf_node;
    const uint64_t max = h->max_entries.get(), value_size = h->value_size.get();
    const std::size_t hdr = sizeof(pdata::node_header_disk);
    // Keys, then u64 values (internal nodes and 8-byte leaves) or other values.
    const bool u64_values = !leaf || value_size == 8;
    const uint64_t words = u64_values ? 2 * max : max;
    if (words <= (pdata::block_size - hdr) / 8) {
      const unsigned char *keys = block + hdr, *values = keys + 8 * max;
      put_literal(out, block, hdr);
      put_words(out, load_words(keys, max));
      std::size_t used = hdr + 8 * max;
      if (u64_values) {
        std::vector<uint64_t> v = load_words(values, max);
        if (leaf) {
          // Block-time pairs: the block number above bit 24, the time below.
          std::vector<uint64_t> high(v.size()), low(v.size());
          for (std::size_t i = 0; i < v.size(); i++) {
            high[i] = v[i] >> shift_bits;
            low[i] = v[i] & ((uint64_t{1} << shift_bits) - 1);
          }
          put_tag(out, tag_shifted, v.size() >> 8);
          out.push_back(static_cast<unsigned char>(v.size() & 0xff));
          put_words(out, high);
          put_words(out, low);
        } else {
          put_words(out, v);
        }
        used += 8 * max;
      }
      if (used < pdata::block_size) put_literal(out, block + used, pdata::block_size - used);
      return;
    }
  }
  put_literal(out, block, pdata::block_size);
}

void decode_block(byte_source &in, unsigned char *block) {
  machine m(in);
  output out{block, pdata::block_size};
  m.run(out, pdata::block_size, 0);
}

}  // namespace thin::pack
