// The dm-log-writes log reader and writer (lib/persistent-data/log_writes.*):
// round trips, a log whose header lags its entries (a crashed run), garbage
// and truncation, and inputs that are not logs.
#include <cstring>
#include <stdexcept>
#include <vector>

#include <gtest/gtest.h>

#include "log-writes/byte_io.h"
#include "log-writes/log_writes.h"
#include "persistent-data/errors.h"

namespace {

using namespace pdata;

std::vector<unsigned char> pattern(std::size_t len, unsigned char seed) {
  std::vector<unsigned char> v(len);
  for (std::size_t i = 0; i < len; i++) v[i] = static_cast<unsigned char>(seed + i * 7);
  return v;
}

std::vector<log_entry> read_all(log_reader &rd) {
  std::vector<log_entry> out;
  while (auto e = rd.next()) out.push_back(*e);
  return out;
}

class log_round_trip : public ::testing::TestWithParam<uint32_t> {};

TEST_P(log_round_trip, what_the_writer_writes_the_reader_reads) {
  const uint32_t ss = GetParam();
  memory_byte_io log;
  log_writer w(log, ss);
  auto a = pattern(2 * ss, 1), b = pattern(ss, 99);
  w.write(8, a.data(), 2);
  w.flush(0);
  w.write(100, b.data(), 1, log_fua);
  w.discard(40, 16);
  w.mark("phase-1");
  w.flush(16384);
  w.finish();
  EXPECT_EQ(w.nr_entries(), 6u);

  log_reader rd(log);
  EXPECT_EQ(rd.sectorsize(), ss);
  EXPECT_EQ(rd.nr_entries_header(), 6u);
  auto es = read_all(rd);
  ASSERT_EQ(es.size(), 6u);
  for (std::size_t i = 0; i < es.size(); i++) EXPECT_EQ(es[i].index, i);

  EXPECT_EQ(es[0].sector, 8u);
  EXPECT_EQ(es[0].nr_sectors, 2u);
  EXPECT_EQ(es[0].flags, 0u);
  EXPECT_EQ(rd.payload(es[0]), a);

  EXPECT_EQ(es[1].flags, uint64_t(log_flush));
  EXPECT_EQ(es[1].nr_sectors, 0u);
  EXPECT_TRUE(rd.payload(es[1]).empty());

  EXPECT_EQ(es[2].sector, 100u);
  EXPECT_EQ(es[2].flags, uint64_t(log_fua));
  EXPECT_EQ(rd.payload(es[2]), b);

  EXPECT_EQ(es[3].flags, uint64_t(log_discard));
  EXPECT_EQ(es[3].sector, 40u);
  EXPECT_EQ(es[3].nr_sectors, 16u);  // a length, but no payload follows
  EXPECT_TRUE(rd.payload(es[3]).empty());

  EXPECT_EQ(es[4].flags, uint64_t(log_mark));
  EXPECT_EQ(es[4].mark, "phase-1");

  EXPECT_EQ(es[5].sector, 16384u);
  EXPECT_EQ(es[5].flags, uint64_t(log_flush));

  // Layout: header at 0, entries from S, payloads right after their headers.
  EXPECT_EQ(es[0].payload_offset, 2u * ss);
  EXPECT_EQ(es[1].payload_offset, 5u * ss);
  EXPECT_EQ(log.size(), 10u * ss);

  rd.rewind();
  auto again = read_all(rd);
  ASSERT_EQ(again.size(), es.size());
  EXPECT_EQ(again[4].mark, "phase-1");
}

INSTANTIATE_TEST_SUITE_P(sector_sizes, log_round_trip, ::testing::Values(512u, 4096u));

TEST(log_writes, describe_names_the_kind_of_entry) {
  memory_byte_io log;
  log_writer w(log);
  auto a = pattern(512, 3);
  w.write(8, a.data(), 1, log_fua);
  w.flush(0);
  w.discard(16, 8);
  w.mark("m");
  w.finish();
  log_reader rd(log);
  auto es = read_all(rd);
  ASSERT_EQ(es.size(), 4u);
  EXPECT_EQ(describe(es[0]), "0 write sector 8 +1 FUA");
  EXPECT_EQ(describe(es[1]), "1 FLUSH sector 0");
  EXPECT_EQ(describe(es[2]), "2 DISCARD sector 16 +8");
  EXPECT_EQ(describe(es[3]), "3 MARK 'm'");
}

TEST(log_writes, entries_past_a_lagging_entry_count_are_read) {
  memory_byte_io log;
  log_writer w(log);
  auto a = pattern(512, 5);
  w.write(8, a.data(), 1);
  w.flush(0);
  w.finish();  // the header says 2, as after the last FUA or mark of a crashed run
  w.write(16, a.data(), 1);
  w.flush(0);
  w.mark("late");

  log_reader rd(log);
  EXPECT_EQ(rd.nr_entries_header(), 2u);
  auto es = read_all(rd);
  ASSERT_EQ(es.size(), 5u);
  EXPECT_EQ(es[2].sector, 16u);
  EXPECT_EQ(rd.payload(es[2]), a);
  EXPECT_EQ(es[4].mark, "late");

  // What fstests' replay-log does: trust the header.
  rd.rewind();
  rd.trust_header(true);
  EXPECT_EQ(read_all(rd).size(), 2u);
}

TEST(log_writes, garbage_after_the_counted_entries_ends_the_log) {
  for (int variant = 0; variant < 4; variant++) {
    memory_byte_io log;
    log_writer w(log);
    auto a = pattern(512, 7);
    w.write(8, a.data(), 1);
    w.flush(0);
    w.finish();
    w.write(24, a.data(), 1);  // a valid uncounted entry
    // Then a header that is not an entry.
    std::vector<unsigned char> junk(512, 0);
    uint64_t v = 0;
    switch (variant) {
      case 0: break;  // all zeroes: the end of a log written to a zeroed device
      case 1: v = 1ull << 40; std::memcpy(junk.data() + 16, &v, 8); break;  // unknown flags
      case 2:
        v = log_mark;
        std::memcpy(junk.data() + 16, &v, 8);
        v = 4096;
        std::memcpy(junk.data() + 24, &v, 8);  // mark text longer than the header
        break;
      case 3:
        v = ~0ull / 4;
        std::memcpy(junk.data() + 8, &v, 8);  // a length that would overflow
        v = 0;
        break;
    }
    log.write_at(log.size(), junk.data(), junk.size());
    log.write_at(log.size(), a.data(), a.size());  // more bytes after it

    log_reader rd(log);
    auto es = read_all(rd);
    EXPECT_EQ(es.size(), 3u) << "variant " << variant;
    EXPECT_FALSE(rd.next()) << "variant " << variant;
  }
}

TEST(log_writes, a_truncated_payload_of_a_counted_entry_is_an_error) {
  memory_byte_io log;
  log_writer w(log);
  auto a = pattern(4 * 512, 9);
  w.write(8, a.data(), 4);
  w.write(64, a.data(), 4);
  w.finish();
  log.bytes().resize(log.size() - 512);  // the second payload loses its last sector

  log_reader rd(log);
  ASSERT_TRUE(rd.next());
  EXPECT_THROW(rd.next(), std::runtime_error);
}

TEST(log_writes, a_truncated_payload_past_the_count_ends_the_log) {
  memory_byte_io log;
  log_writer w(log);
  auto a = pattern(4 * 512, 11);
  w.write(8, a.data(), 4);
  w.finish();
  w.write(64, a.data(), 4);  // uncounted, and then cut short: a crash while logging
  log.bytes().resize(log.size() - 512);

  log_reader rd(log);
  EXPECT_EQ(read_all(rd).size(), 1u);
}

TEST(log_writes, payload_of_an_entry_whose_bytes_are_gone_is_an_error) {
  memory_byte_io log;
  log_writer w(log);
  auto a = pattern(512, 13);
  w.write(8, a.data(), 1);
  w.finish();
  log_reader rd(log);
  auto e = rd.next();
  ASSERT_TRUE(e);
  log.bytes().resize(log.size() - 100);
  EXPECT_THROW(rd.payload(*e), std::runtime_error);
}

TEST(log_writes, what_is_not_a_log_is_refused) {
  memory_byte_io empty;
  EXPECT_THROW(log_reader{empty}, std::runtime_error);

  memory_byte_io zeroes(std::vector<unsigned char>(4096, 0));
  EXPECT_THROW(log_reader{zeroes}, std::runtime_error);

  auto make = [](uint64_t magic, uint64_t version, uint32_t ss) {
    memory_byte_io log;
    log_writer w(log, 512);
    log_super_disk s;
    s.magic.set(magic);
    s.version.set(version);
    s.nr_entries.set(0);
    s.sectorsize.set(ss);
    s.padding.set(0xdeadbeef);  // garbage the kernel leaves: ignored
    log.write_at(0, &s, sizeof(s));
    return log;
  };
  {
    auto log = make(log_writes_magic, 1, 512);
    log_reader rd(log);
    EXPECT_FALSE(rd.next());
  }
  {
    auto log = make(log_writes_magic + 1, 1, 512);
    EXPECT_THROW(log_reader{log}, std::runtime_error);
  }
  {
    auto log = make(log_writes_magic, 2, 512);
    EXPECT_THROW(log_reader{log}, std::runtime_error);
  }
  for (uint32_t ss : {0u, 256u, 513u, 131072u}) {
    auto log = make(log_writes_magic, 1, ss);
    EXPECT_THROW(log_reader{log}, std::runtime_error) << ss;
  }
}

TEST(log_writes, mark_text_must_fit_the_header) {
  memory_byte_io log;
  log_writer w(log);
  EXPECT_NO_THROW(w.mark(std::string(512 - 33, 'x')));
  EXPECT_THROW(w.mark(std::string(512 - 32, 'x')), pdata::bad_input_error);
  w.finish();
  log_reader rd(log);
  auto e = rd.next();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->mark, std::string(512 - 33, 'x'));
}

}  // namespace
