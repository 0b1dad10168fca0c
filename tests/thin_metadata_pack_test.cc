// thin_metadata_pack / thin_metadata_unpack: the pack file of
// thin-provisioning-tools 1.x. A pack unpacks to the metadata's blocks that
// carry a metadata checksum, byte for byte, with every other block zero; packs
// cross between us and upstream 1.3.3 (run as the oracle when installed:
// test::upstream_1x_pdata_tools(), version 1.x);
// damaged packs fail with one line and exit 1.
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "persistent-data/block_io.h"
#include "persistent-data/btree_disk.h"
#include "persistent-data/checksum.h"
#include "persistent-data/endian.h"
#include "support/test_support.h"
#include "thin/pack/block_codec.h"
#include "thin/pack/pack.h"

namespace {

using bytes = std::vector<unsigned char>;
constexpr std::size_t bs = pdata::block_size;

// The input with every block zeroed that does not carry the checksum of a
// thin superblock, B-tree node, space-map bitmap or index block (the kinds a
// thin pool has), computed here with the checksum salts, not the packer.
bytes expected_unpack(const bytes &image) {
  bytes out(image.size() / bs * bs, 0);
  for (std::size_t off = 0; off + bs <= image.size(); off += bs) {
    const unsigned char *b = image.data() + off;
    for (auto salt : {pdata::checksum_salt::superblock, pdata::checksum_salt::btree_node,
                      pdata::checksum_salt::bitmap, pdata::checksum_salt::index_block})
      if (pdata::checksum_ok(b, salt)) {
        std::memcpy(out.data() + off, b, bs);
        break;
      }
  }
  return out;
}

std::optional<std::string> pdata_tools() { return test::upstream_1x_pdata_tools(); }

int run_oracle(const std::string &tool, const std::vector<std::string> &args) {
  std::string cmd = *pdata_tools() + " " + tool;
  for (auto &a : args) cmd += " '" + a + "'";
  return std::system((cmd + " </dev/null >/dev/null 2>&1").c_str());
}

// How many blocks differ (0: identical), for readable failures.
std::size_t blocks_differing(const bytes &a, const bytes &b) {
  if (a.size() != b.size()) return SIZE_MAX;
  std::size_t n = 0;
  for (std::size_t off = 0; off < a.size(); off += bs)
    if (std::memcmp(a.data() + off, b.data() + off, bs) != 0) n++;
  return n;
}

std::size_t metadata_blocks(const bytes &image) {
  std::size_t n = 0;
  for (std::size_t off = 0; off < image.size(); off += bs) n += thin::pack::is_metadata_block(image.data() + off);
  return n;
}

TEST(thin_metadata_pack, round_trips_every_kernel_fixture_to_its_metadata_blocks_byte_for_byte) {
  for (auto &s : test::kernel_scenarios()) {
    SCOPED_TRACE(s);
    test::temp_dir t;
    auto p = test::run_tool("thin_metadata_pack", {"-i", test::fixture_image(s), "-o", t.file("pack")});
    ASSERT_EQ(p.exit_code, 0) << p.err;
    auto u = test::run_tool("thin_metadata_unpack", {"-i", t.file("pack"), "-o", t.file("meta")});
    ASSERT_EQ(u.exit_code, 0) << u.err;
    const bytes in = test::read_binary(test::fixture_image(s)), out = test::read_binary(t.file("meta"));
    EXPECT_GT(metadata_blocks(in), 2u);
    EXPECT_EQ(blocks_differing(out, expected_unpack(in)), 0u);
    // And the kernel's pool reads the same through thin_dump (0.9.0's XML, committed beside the fixture).
    auto d = test::run_tool("thin_dump", {t.file("meta")});
    ASSERT_EQ(d.exit_code, 0) << d.err;
    EXPECT_EQ(d.out, test::read_file(test::fixture_file(s, "thin_dump.xml")));
    // The pack is smaller than the blocks it holds.
    EXPECT_LT(test::read_binary(t.file("pack")).size(), metadata_blocks(in) * bs);
  }
}

TEST(thin_metadata_pack, packs_made_here_unpack_with_upstream_1_3_3_and_the_reverse_byte_for_byte) {
  if (!pdata_tools()) GTEST_SKIP() << "thin-provisioning-tools 1.3.3 (pdata_tools) is not installed";
  for (auto &s : test::kernel_scenarios()) {
    SCOPED_TRACE(s);
    test::temp_dir t;
    const bytes in = test::read_binary(test::fixture_image(s)), want = expected_unpack(in);
    // 1.3.3 drops the blocks of a short last chunk of its work split (it
    // assigns only whole chunks to its threads): only sizes that are
    // multiples of its chunk size (at least 128 blocks) cross intact.
    const bool upstream_packs_all = (in.size() / bs) % 128 == 0;

    // ours -> 1.3.3
    ASSERT_EQ(test::run_tool("thin_metadata_pack", {"-i", test::fixture_image(s), "-o", t.file("ours.pack")}).exit_code, 0);
    ASSERT_EQ(run_oracle("thin_metadata_unpack", {"-i", t.file("ours.pack"), "-o", t.file("ours.meta")}), 0);
    EXPECT_EQ(blocks_differing(test::read_binary(t.file("ours.meta")), want), 0u);

    // 1.3.3 -> ours, and 1.3.3 -> 1.3.3 gives the same bytes
    ASSERT_EQ(run_oracle("thin_metadata_pack", {"-i", test::fixture_image(s), "-o", t.file("theirs.pack")}), 0);
    auto u = test::run_tool("thin_metadata_unpack", {"-i", t.file("theirs.pack"), "-o", t.file("theirs.meta")});
    ASSERT_EQ(u.exit_code, 0) << u.err;
    ASSERT_EQ(run_oracle("thin_metadata_unpack", {"-i", t.file("theirs.pack"), "-o", t.file("theirs.upstream.meta")}), 0);
    const bytes ours = test::read_binary(t.file("theirs.meta"));
    EXPECT_EQ(blocks_differing(ours, test::read_binary(t.file("theirs.upstream.meta"))), 0u);
    if (upstream_packs_all) {
      EXPECT_EQ(blocks_differing(ours, want), 0u);
    }
  }
}

// Block programs: what the encoder writes decodes to the same block, for node
// layouts with extreme values (wrapping deltas, long equal runs, u64 max).
class vector_source : public thin::pack::byte_source {
 public:
  explicit vector_source(const bytes &b) : b_(b) {}
  std::size_t read(unsigned char *buf, std::size_t len) override {
    const std::size_t n = std::min(len, b_.size() - pos_);
    if (n) std::memcpy(buf, b_.data() + pos_, n);  // an empty vector's data() may be null
    pos_ += n;
    return n;
  }
  std::size_t left() const { return b_.size() - pos_; }

 private:
  const bytes &b_;
  std::size_t pos_ = 0;
};

bytes make_node(uint32_t flags, uint32_t max_entries, uint32_t value_size, std::mt19937_64 &rng, int pattern) {
  bytes b(bs, 0);
  auto *h = reinterpret_cast<pdata::node_header_disk *>(b.data());
  h->flags.set(flags);
  h->max_entries.set(max_entries);
  h->value_size.set(value_size);
  h->nr_entries.set(max_entries / 2);
  h->blocknr.set(rng());
  for (std::size_t off = 32; off + 8 <= bs; off += 8) {
    const uint64_t i = (off - 32) / 8;
    uint64_t v = 0;
    switch (pattern) {
      case 0: v = rng(); break;
      case 1: v = i * 3; break;
      case 2: v = UINT64_MAX - i * 1000003; break;
      case 3: v = (i % 7 == 0) ? UINT64_MAX : 0; break;
      case 4: v = ((i * 5 + 100) << 24) | (i % 3); break;
    }
    pdata::store_le64(b.data() + off, v);
  }
  pdata::stamp_checksum(b.data(), pdata::checksum_salt::btree_node);
  return b;
}

TEST(thin_metadata_pack_codec, every_encoded_block_decodes_to_itself) {
  std::mt19937_64 rng(7);
  struct layout {
    uint32_t flags, max, vs;
  };
  for (auto l : {layout{2, 126, 8}, layout{1, 252, 8}, layout{2, 201, 12}, layout{2, 0, 8}, layout{2, 254, 8},
                 layout{2, 255, 8}, layout{1, 100000, 8}, layout{7, 3, 8}})
    for (int pattern = 0; pattern < 5; pattern++)
      for (bool node : {true, false}) {
        SCOPED_TRACE(testing::Message() << l.flags << "/" << l.max << "/" << l.vs << " pattern " << pattern);
        const bytes block = make_node(l.flags, l.max, l.vs, rng, pattern);
        bytes program;
        thin::pack::encode_block(block.data(), node, program);
        vector_source src(program);
        bytes out(bs);
        thin::pack::decode_block(src, out.data());
        EXPECT_EQ(out, block);
        EXPECT_EQ(src.left(), 0u);
        if (node && pattern == 1 && l.max == 126) {
          // Keys and values (2016 bytes) shrink to a few instructions; the 2048-byte tail stays literal.
          EXPECT_LT(program.size(), 2048u + 100u);
        }
      }
}

TEST(thin_metadata_pack_codec, malformed_programs_are_errors_not_crashes) {
  const std::vector<bytes> bad = {
      {},                          // nothing
      {0xc0},                      // unknown instruction
      {0x03, 1, 2, 3},             // set with width 3
      {0x98, 1, 2, 3},             // literal cut short
      {0xa2, 0xff, 0xff},          // literal longer than the block
      {0x72, 0x90},                // repeat count before a literal
      {0x7f, 0x71, 0x51},          // repeat count before a count
      {0x88, 0xff, 0x01, 0x00},    // 2303 x set: more than a block
      {0xa2, 0x00, 0x10},          // 4096 of 4096 promised, input ends
      {0xbf, 0xff},                // shifted run of 4095 words
      {0xb0, 0x01, 0xb0, 0x01, 0xb0, 0x01, 0xb0, 0x01, 0xb0, 0x01, 0xb0, 0x01},  // nested too deep
  };
  for (auto &p : bad) {
    vector_source src(p);
    bytes out(bs);
    EXPECT_THROW(thin::pack::decode_block(src, out.data()), thin::pack::pack_error) << testing::PrintToString(p);
  }
}

// Damaged pack files: exit 1, one line naming the pack, never a crash.
class thin_metadata_unpack_bad : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(test::run_tool("thin_metadata_pack", {"-i", test::fixture_image("snapshots"), "-o", t.file("good")}).exit_code, 0);
    good = test::read_binary(t.file("good"));
    ASSERT_GT(good.size(), 100u);
  }
  void expect_rejected(const bytes &pack, const std::string &what) {
    SCOPED_TRACE(what);
    test::write_binary(t.file("bad"), pack);
    std::remove(t.file("out").c_str());
    auto r = test::run_tool("thin_metadata_unpack", {"-i", t.file("bad"), "-o", t.file("out")});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.signal, 0);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(t.file("bad")), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
  }
  test::temp_dir t;
  bytes good;
  std::string message;
};

TEST_F(thin_metadata_unpack_bad, truncated_packs_fail_with_exit_1) {
  message = "";
  for (std::size_t len : {std::size_t{0}, std::size_t{7}, std::size_t{31}, std::size_t{36}, std::size_t{45},
                          good.size() / 2, good.size() - 1})
    expect_rejected(bytes(good.begin(), good.begin() + static_cast<long>(len)), "truncated to " + std::to_string(len));
}

TEST_F(thin_metadata_unpack_bad, a_bad_magic_number_version_or_block_size_fails_with_exit_1) {
  bytes p = good;
  p[0] ^= 1;
  message = "bad magic";
  expect_rejected(p, "magic");
  p = good;
  p[8] = 2;
  message = "version 2";
  expect_rejected(p, "version");
  p = good;
  p[17] = 0x20;
  message = "block size";
  expect_rejected(p, "block size");
}

TEST_F(thin_metadata_unpack_bad, corrupt_compressed_data_or_an_absurd_chunk_length_fails_with_exit_1) {
  bytes p = good;
  for (std::size_t i = 44; i < 60 && i < p.size(); i++) p[i] ^= 0x5a;
  message = "bad compressed data";
  expect_rejected(p, "corrupt zlib data");
  p = good;
  pdata::store_le64(p.data() + 32, UINT64_MAX / 2);
  message = "truncated";
  expect_rejected(p, "chunk length far beyond the file");
}

TEST(thin_metadata_unpack, a_failure_after_touching_the_output_leaves_its_superblock_zeroed) {
  test::temp_dir t;
  ASSERT_EQ(test::run_tool("thin_metadata_pack", {"-i", test::fixture_image("basic"), "-o", t.file("pack")}).exit_code, 0);
  bytes p = test::read_binary(t.file("pack"));
  p.resize(p.size() - 10);
  test::write_binary(t.file("cut"), p);
  // The output holds metadata, so it takes -f to overwrite it.
  test::write_binary(t.file("meta"), test::read_binary(test::fixture_image("basic")));
  auto refused = test::run_tool("thin_metadata_unpack", {"-i", t.file("pack"), "-o", t.file("meta")});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("-f"), std::string::npos) << refused.err;
  EXPECT_EQ(test::read_binary(t.file("meta")), test::read_binary(test::fixture_image("basic")));

  auto r = test::run_tool("thin_metadata_unpack", {"-f", "-i", t.file("cut"), "-o", t.file("meta")});
  EXPECT_EQ(r.exit_code, 1);
  const bytes out = test::read_binary(t.file("meta"));
  ASSERT_GE(out.size(), bs);
  EXPECT_EQ(bytes(out.begin(), out.begin() + bs), bytes(bs, 0));
}

TEST(thin_metadata_pack, command_line_mistakes_and_bad_inputs_exit_1_with_one_line) {
  test::temp_dir t;
  test::write_binary(t.file("xml"), bytes(8192, ' '));
  {
    std::string x = "<superblock uuid=\"\" time=\"0\">\n";
    test::write_binary(t.file("xml"), bytes(x.begin(), x.end()));
  }
  test::write_binary(t.file("meta"), test::read_binary(test::fixture_image("basic")));
  struct c {
    std::string tool;
    std::vector<std::string> args;
  };
  for (auto &k : std::vector<c>{
           {"thin_metadata_pack", {}},
           {"thin_metadata_pack", {"-i", t.file("meta")}},
           {"thin_metadata_pack", {"-o", t.file("p")}},
           {"thin_metadata_pack", {"-i", t.file("missing"), "-o", t.file("p")}},
           {"thin_metadata_pack", {"-i", t.file("xml"), "-o", t.file("p")}},
           {"thin_metadata_pack", {"-i", t.file("meta"), "-o", t.file("meta")}},
           {"thin_metadata_pack", {"--bogus"}},
           {"thin_metadata_unpack", {}},
           {"thin_metadata_unpack", {"-i", t.file("p")}},
           {"thin_metadata_unpack", {"-i", t.file("missing"), "-o", t.file("m")}},
           {"thin_metadata_unpack", {"-i", t.file("meta"), "-o", t.file("m")}},  // metadata, not a pack
           {"thin_metadata_unpack", {"-i", t.path(), "-o", t.file("m")}},
       }) {
    auto r = test::run_tool(k.tool, k.args);
    EXPECT_EQ(r.exit_code, 1) << k.tool << " " << testing::PrintToString(k.args) << ": " << r.err;
    EXPECT_FALSE(r.err.empty());
  }
  for (const char *tool : {"thin_metadata_pack", "thin_metadata_unpack"}) {
    auto h = test::run_tool(tool, {"-h"});
    EXPECT_EQ(h.exit_code, 0);
    EXPECT_NE(h.out.find("--input"), std::string::npos);
    auto v = test::run_tool(tool, {"-V"});
    EXPECT_EQ(v.exit_code, 0);
    EXPECT_EQ(v.out, test::run_tool("thin_check", {"-V"}).out);
  }
}

}  // namespace

namespace {

// Random damage anywhere in a pack (bytes flipped, cut short) is either
// unpacked or refused with a pack_error: never a crash, a hang or a write
// outside the metadata's blocks.
TEST(thin_metadata_unpack_damage, random_damage_is_unpacked_or_refused_never_a_crash) {
  pdata::memory_block_io meta(test::read_binary(test::fixture_image("snapshots")));
  std::ostringstream packed;
  thin::pack::pack_metadata(meta, packed);
  const std::string good = packed.str();
  std::mt19937_64 rng(42);
  unsigned refused = 0;
  for (int round = 0; round < 300; round++) {
    std::string bad = good;
    const unsigned flips = 1 + static_cast<unsigned>(rng() % 4);
    for (unsigned i = 0; i < flips; i++) bad[32 + rng() % (bad.size() - 32)] ^= static_cast<char>(1 + rng() % 255);
    if (round % 5 == 0) bad.resize(32 + rng() % (bad.size() - 32));
    std::istringstream in(bad);
    const uint64_t nr = thin::pack::read_pack_header(in);
    pdata::memory_block_io out(nr);
    try {
      thin::pack::unpack_metadata(in, nr, out);
    } catch (const thin::pack::pack_error &) {
      refused++;
    }
    EXPECT_EQ(out.nr_blocks(), nr);
  }
  EXPECT_GT(refused, 250u);  // zlib's checksum catches nearly all of it
}

}  // namespace
