// The streaming XML reader (lib/thin/xml_parser.h): the dialects it accepts,
// byte-for-byte round trips through the XML emitter (kernel fixtures and
// generated pools), every validation error with its line number, emitter and
// stream failures, and a large document read in chunks.
#include "thin/ir/xml_parser.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <streambuf>
#include <string>
#include <utility>
#include <vector>

#include "support/test_support.h"
#include "thin/ir/emitter.h"
#include "thin/ir/text_sink.h"

namespace {

// --- helpers ------------------------------------------------------------------

std::string opt(const std::optional<uint64_t> &v) { return v ? std::to_string(*v) : "-"; }
std::string opt(const std::optional<uint32_t> &v) { return v ? std::to_string(*v) : "-"; }

// Records every event as one line of text.
class recording_emitter : public thin::emitter {
 public:
  std::vector<std::string> events;

  void begin_superblock(const thin::superblock_info &sb) override {
    events.push_back("superblock uuid=" + sb.uuid + " time=" + std::to_string(sb.time) +
                     " transaction=" + std::to_string(sb.trans_id) + " flags=" + opt(sb.flags) +
                     " version=" + opt(sb.version) + " data_block_size=" + std::to_string(sb.data_block_size) +
                     " nr_data_blocks=" + std::to_string(sb.nr_data_blocks) +
                     " metadata_snap=" + opt(sb.metadata_snap));
  }
  void end_superblock() override { events.push_back("end_superblock"); }
  void begin_device(const thin::device_info &d) override {
    events.push_back("device " + std::to_string(d.dev_id) + " mapped_blocks=" + std::to_string(d.mapped_blocks) +
                     " transaction=" + std::to_string(d.trans_id) +
                     " creation_time=" + std::to_string(d.creation_time) +
                     " snap_time=" + std::to_string(d.snap_time));
  }
  void end_device() override { events.push_back("end_device"); }
  void range_map(uint64_t ob, uint64_t db, uint32_t time, uint64_t len) override {
    events.push_back("range " + std::to_string(ob) + " " + std::to_string(db) + " time=" + std::to_string(time) +
                     " len=" + std::to_string(len));
  }
  void single_map(uint64_t ob, uint64_t db, uint32_t time) override {
    events.push_back("single " + std::to_string(ob) + " " + std::to_string(db) + " time=" + std::to_string(time));
  }
  void begin_def(const std::string &name) override { events.push_back("def " + name); }
  void end_def() override { events.push_back("end_def"); }
  void ref(const std::string &name) override { events.push_back("ref " + name); }
};

std::vector<std::string> events_of(const std::string &doc, const thin::xml_parse_options &o = {}) {
  std::istringstream in(doc);
  recording_emitter e;
  thin::parse_xml(in, e, o);
  return e.events;
}

std::string xml_round_trip(const std::string &doc, const thin::xml_parse_options &o = {}) {
  std::istringstream in(doc);
  thin::string_sink sink;
  auto e = thin::make_xml_emitter(sink);
  thin::parse_xml(in, *e, o);
  return sink.str();
}

// Succeeds when parsing `doc` throws an xml_error whose message starts
// "line <line>: " and contains `fragment`.
::testing::AssertionResult fails_at(const std::string &doc, uint64_t line, const std::string &fragment,
                                    const thin::xml_parse_options &o = {}) {
  std::istringstream in(doc);
  recording_emitter e;
  try {
    thin::parse_xml(in, e, o);
  } catch (const thin::xml_error &x) {
    std::string what = x.what();
    std::string prefix = "line " + std::to_string(line) + ": ";
    if (what.rfind(prefix, 0) != 0 || x.line() != line)
      return ::testing::AssertionFailure() << "expected an error at line " << line << ", got: " << what;
    if (what.find(fragment) == std::string::npos)
      return ::testing::AssertionFailure() << "expected \"" << fragment << "\" in: " << what;
    return ::testing::AssertionSuccess() << what;
  }
  return ::testing::AssertionFailure() << "no error for:\n" << doc;
}

// A superblock start tag (line 1 of the documents below) with nr_data_blocks
// of 1000.
const std::string sb_line =
    "<superblock uuid=\"\" time=\"1\" transaction=\"2\" flags=\"0\" version=\"2\" data_block_size=\"128\" "
    "nr_data_blocks=\"1000\">\n";
const std::string dev1_line =
    "  <device dev_id=\"1\" mapped_blocks=\"0\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">\n";

// One device (lines 2 .. 2+mappings) holding `body` in a complete document.
std::string in_device(const std::string &body) { return sb_line + dev1_line + body + "  </device>\n</superblock>\n"; }

std::string replace_all(std::string s, const std::string &from, const std::string &to) {
  for (auto pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size()))
    s.replace(pos, from.size(), to);
  return s;
}

// --- accepted dialects and round trips ------------------------------------------

class xml_kernel_fixture : public ::testing::TestWithParam<std::string> {};

TEST_P(xml_kernel_fixture, parsing_the_reference_dump_into_the_xml_emitter_reproduces_it_byte_for_byte) {
  std::string ref = test::read_file(test::fixture_file(GetParam(), "thin_dump.xml"));
  EXPECT_EQ(xml_round_trip(ref), ref);
}

INSTANTIATE_TEST_SUITE_P(all, xml_kernel_fixture, ::testing::ValuesIn(test::kernel_scenarios()), test::scenario_name);

class xml_generated_fixture : public ::testing::TestWithParam<std::string> {};

TEST_P(xml_generated_fixture, parsing_a_generated_pool_into_the_xml_emitter_reproduces_it_byte_for_byte) {
  std::string ref = test::read_file(std::string(THINKIT_FIXTURE_SRC) + "/generated/" + GetParam() + ".xml");
  ASSERT_GT(ref.size(), 1000u);
  EXPECT_EQ(xml_round_trip(ref), ref);
}

INSTANTIATE_TEST_SUITE_P(all, xml_generated_fixture,
                         ::testing::Values(std::string("two_origins"), std::string("snap_of_snap")), test::scenario_name);

TEST(xml_parser, a_metadata_snapshot_dump_restores_only_with_an_nr_data_blocks_override) {
  // thin_dump -m prints nr_data_blocks="0", so every mapping is beyond the
  // data device unless the caller supplies the real size.
  std::string ref = test::read_file(test::fixture_file("discard-metasnap", "thin_dump.metasnap.xml"));
  EXPECT_TRUE(fails_at(ref, 3, "nr_data_blocks is 0"));
  thin::xml_parse_options o;
  o.overrides.nr_data_blocks = 4096;
  EXPECT_EQ(xml_round_trip(ref, o), replace_all(ref, "nr_data_blocks=\"0\"", "nr_data_blocks=\"4096\""));
}

TEST(xml_parser, a_0_9_0_document_gives_its_events_in_document_order) {
  std::string doc = sb_line + dev1_line + test::xml_range(0, 10, 4, 1) + test::xml_single(7, 3, 0) + "  </device>\n" +
                    "  <device dev_id=\"5\" mapped_blocks=\"9\" transaction=\"3\" creation_time=\"1\" "
                    "snap_time=\"2\">\n"
                    "  </device>\n</superblock>\n";
  std::vector<std::string> want = {
      "superblock uuid= time=1 transaction=2 flags=0 version=2 data_block_size=128 nr_data_blocks=1000 "
      "metadata_snap=-",
      "device 1 mapped_blocks=0 transaction=0 creation_time=0 snap_time=0",
      "range 0 10 time=1 len=4",
      "single 7 3 time=0",
      "end_device",
      "device 5 mapped_blocks=9 transaction=3 creation_time=1 snap_time=2",
      "end_device",
      "end_superblock"};
  EXPECT_EQ(events_of(doc), want);
}

TEST(xml_parser, the_1_x_dialect_with_defs_and_refs_gives_the_right_events) {
  // No flags or version, a metadata_snap, shared subtrees, no final newline.
  std::string doc =
      "<superblock uuid=\"abc\" time=\"3\" transaction=\"8\" data_block_size=\"256\" nr_data_blocks=\"500\" "
      "metadata_snap=\"77\">\n"
      "  <def name=\"shared_a\">\n"
      "    <range_mapping origin_begin=\"10\" data_begin=\"100\" length=\"5\" time=\"0\"/>\n"
      "    <single_mapping origin_block=\"20\" data_block=\"200\" time=\"1\"/>\n"
      "  </def>\n"
      "  <device dev_id=\"1\" mapped_blocks=\"8\" transaction=\"0\" creation_time=\"0\" snap_time=\"2\">\n"
      "    <single_mapping origin_block=\"2\" data_block=\"2\" time=\"0\"/>\n"
      "    <ref name=\"shared_a\"/>\n"
      "    <single_mapping origin_block=\"21\" data_block=\"300\" time=\"2\"/>\n"
      "  </device>\n"
      "  <def name=\"empty\">\n"
      "  </def>\n"
      "  <device dev_id=\"2\" mapped_blocks=\"6\" transaction=\"1\" creation_time=\"2\" snap_time=\"2\">\n"
      "    <ref name=\"shared_a\"/>\n"
      "    <ref name=\"empty\"/>\n"
      "  </device>\n"
      "</superblock>";
  std::vector<std::string> want = {
      "superblock uuid=abc time=3 transaction=8 flags=- version=- data_block_size=256 nr_data_blocks=500 "
      "metadata_snap=77",
      "def shared_a",
      "range 10 100 time=0 len=5",
      "single 20 200 time=1",
      "end_def",
      "device 1 mapped_blocks=8 transaction=0 creation_time=0 snap_time=2",
      "single 2 2 time=0",
      "ref shared_a",
      "single 21 300 time=2",
      "end_device",
      "def empty",
      "end_def",
      "device 2 mapped_blocks=6 transaction=1 creation_time=2 snap_time=2",
      "ref shared_a",
      "ref empty",
      "end_device",
      "end_superblock"};
  EXPECT_EQ(events_of(doc), want);
}

TEST(xml_parser, lvm2_style_one_space_indentation_with_a_declaration_and_comments_parses) {
  std::string doc =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<!-- written by a script -->\n"
      "<superblock uuid=\"\" time=\"0\" transaction=\"1\" flags=\"0\" version=\"2\" data_block_size=\"128\" "
      "nr_data_blocks=\"64\">\n"
      " <device dev_id=\"1\" mapped_blocks=\"3\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">\n"
      "  <!-- the first run -->\n"
      "  <range_mapping origin_begin=\"0\" data_begin=\"0\" length=\"2\" time=\"0\"/>\n"
      "  <single_mapping\n   origin_block=\"5\"\n   data_block=\"9\"\n   time=\"0\"></single_mapping>\n"
      " </device>\r\n"
      "</superblock>\n<!-- trailing comment -->\n\n";
  std::vector<std::string> want = {
      "superblock uuid= time=0 transaction=1 flags=0 version=2 data_block_size=128 nr_data_blocks=64 "
      "metadata_snap=-",
      "device 1 mapped_blocks=3 transaction=0 creation_time=0 snap_time=0",
      "range 0 0 time=0 len=2",
      "single 5 9 time=0",
      "end_device",
      "end_superblock"};
  EXPECT_EQ(events_of(doc), want);
}

TEST(xml_parser, a_range_of_length_one_stays_a_range) {
  auto ev = events_of(in_device(test::xml_range(4, 4, 1)));
  ASSERT_EQ(ev.size(), 5u);
  EXPECT_EQ(ev[2], "range 4 4 time=0 len=1");
}

TEST(xml_parser, mapped_blocks_is_passed_through_unchecked) {
  std::string doc = sb_line +
                    "  <device dev_id=\"1\" mapped_blocks=\"12345\" transaction=\"0\" creation_time=\"0\" "
                    "snap_time=\"0\">\n" +
                    test::xml_single(1, 1) + "  </device>\n</superblock>\n";
  EXPECT_EQ(events_of(doc)[1], "device 1 mapped_blocks=12345 transaction=0 creation_time=0 snap_time=0");
}

TEST(xml_parser, the_largest_values_each_attribute_allows_are_accepted) {
  std::string doc =
      "<superblock uuid=\"x\" time=\"4294967295\" transaction=\"18446744073709551615\" flags=\"4294967295\" "
      "version=\"4294967295\" data_block_size=\"2097152\" nr_data_blocks=\"18446744073709551615\" "
      "metadata_snap=\"18446744073709551615\">\n"
      "  <device dev_id=\"16777215\" mapped_blocks=\"18446744073709551615\" transaction=\"18446744073709551615\" "
      "creation_time=\"4294967295\" snap_time=\"4294967295\">\n"
      "    <single_mapping origin_block=\"1\" data_block=\"1099511627775\" time=\"16777215\"/>\n"
      "    <range_mapping origin_begin=\"18446744073709551614\" data_begin=\"0\" length=\"2\" time=\"0\"/>\n"
      "  </device>\n</superblock>\n";
  std::vector<std::string> want = {
      "superblock uuid=x time=4294967295 transaction=18446744073709551615 flags=4294967295 version=4294967295 "
      "data_block_size=2097152 nr_data_blocks=18446744073709551615 metadata_snap=18446744073709551615",
      "device 16777215 mapped_blocks=18446744073709551615 transaction=18446744073709551615 "
      "creation_time=4294967295 snap_time=4294967295",
      "single 1 1099511627775 time=16777215",
      "range 18446744073709551614 0 time=0 len=2",
      "end_device",
      "end_superblock"};
  EXPECT_EQ(events_of(doc), want);
}

TEST(xml_parser, leading_zeros_are_plain_decimal) {
  EXPECT_EQ(events_of(in_device(
                "    <single_mapping origin_block=\"010\" data_block=\"0007\" time=\"00\"/>\n"))[2],
            "single 10 7 time=0");
}

TEST(xml_parser, overrides_replace_the_superblock_values_before_begin_superblock) {
  thin::xml_parse_options o;
  o.overrides.transaction_id = 99;
  o.overrides.data_block_size = 1024;
  o.overrides.nr_data_blocks = 5000;
  auto ev = events_of(in_device(test::xml_single(1, 4500)), o);
  EXPECT_EQ(ev[0],
            "superblock uuid= time=1 transaction=99 flags=0 version=2 data_block_size=1024 nr_data_blocks=5000 "
            "metadata_snap=-");
  EXPECT_EQ(ev[2], "single 1 4500 time=0");
}

TEST(xml_parser, an_override_repairs_a_bad_data_block_size_in_the_file) {
  std::string doc = replace_all(in_device(test::xml_single(1, 1)), "data_block_size=\"128\"", "data_block_size=\"100\"");
  EXPECT_TRUE(fails_at(doc, 1, "data_block_size 100 is invalid"));
  thin::xml_parse_options o;
  o.overrides.data_block_size = 256;
  EXPECT_EQ(events_of(doc, o).size(), 5u);
}

TEST(xml_parser, ranges_may_abut_and_refs_may_abut_their_neighbours) {
  std::string doc = sb_line +
                    "  <def name=\"d\">\n" + test::xml_range(10, 100, 5) + "  </def>\n" + dev1_line + test::xml_range(0, 0, 10) +
                    "    <ref name=\"d\"/>\n" + test::xml_single(15, 50) + "  </device>\n</superblock>\n";
  EXPECT_EQ(events_of(doc).size(), 10u);
}

// --- the large document -----------------------------------------------------------

class counting_emitter : public thin::emitter {
 public:
  explicit counting_emitter(std::istream &in) : in_(in) {}
  uint64_t devices = 0, ranges = 0, singles = 0, blocks = 0, ends = 0;
  std::streamoff consumed_at_first_device = -1;

  void begin_superblock(const thin::superblock_info &) override {}
  void end_superblock() override { ends++; }
  void begin_device(const thin::device_info &) override {
    if (devices++ == 0) consumed_at_first_device = in_.rdbuf()->pubseekoff(0, std::ios::cur, std::ios::in);
  }
  void end_device() override {}
  void range_map(uint64_t, uint64_t, uint32_t, uint64_t len) override {
    ranges++;
    blocks += len;
  }
  void single_map(uint64_t, uint64_t, uint32_t) override {
    singles++;
    blocks++;
  }

 private:
  std::istream &in_;
};

TEST(xml_parser, a_large_document_is_read_in_chunks_with_the_right_counts) {
  constexpr uint64_t devices = 4, per_device = 50000;  // 200k mappings
  std::string doc;
  doc.reserve(20u << 20);
  doc += "<superblock uuid=\"\" time=\"9\" transaction=\"4\" flags=\"0\" version=\"2\" data_block_size=\"128\" "
         "nr_data_blocks=\"100000000\">\n";
  uint64_t want_ranges = 0, want_singles = 0, want_blocks = 0, data = 0;
  for (uint64_t d = 1; d <= devices; ++d) {
    doc += "  <device dev_id=\"" + std::to_string(d) +
           "\" mapped_blocks=\"0\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">\n";
    uint64_t origin = 0;
    for (uint64_t i = 0; i < per_device; ++i) {
      if (i % 3 == 0) {
        uint64_t len = 2 + i % 7;
        doc += test::xml_range(origin, data, len, i % 5);
        want_ranges++;
        want_blocks += len;
        origin += len + 1;
        data += len;
      } else {
        doc += test::xml_single(origin, data, i % 5);
        want_singles++;
        want_blocks++;
        origin += 2;
        data++;
      }
    }
    doc += "  </device>\n";
  }
  doc += "</superblock>\n";
  ASSERT_EQ(want_ranges + want_singles, devices * per_device);

  std::stringstream in(doc);
  counting_emitter e(in);
  thin::parse_xml(in, e);
  EXPECT_EQ(e.devices, devices);
  EXPECT_EQ(e.ranges, want_ranges);
  EXPECT_EQ(e.singles, want_singles);
  EXPECT_EQ(e.blocks, want_blocks);
  EXPECT_EQ(e.ends, 1u);
  // Streaming: the first device arrived after only one chunk of the input
  // had been read.
  EXPECT_GT(e.consumed_at_first_device, 0);
  EXPECT_LE(e.consumed_at_first_device, 1024 * 1024);  // one 1 MiB chunk, not the whole document
}

TEST(xml_parser, line_numbers_stay_right_across_many_chunks) {
  // ~700 KiB: the bad mapping is far past the first 64 KiB chunk.
  std::string body;
  for (uint64_t i = 0; i < 10000; ++i) body += test::xml_single(i, i % 1000);
  std::string doc = in_device(body + test::xml_single(5, 5));
  EXPECT_TRUE(fails_at(doc, 10003, "<single_mapping> at origin block 5 does not come after"));
}

// --- malformed, truncated and empty input ---------------------------------------

TEST(xml_parser, malformed_xml_reports_expats_message_and_line) {
  EXPECT_TRUE(fails_at(sb_line + dev1_line + "    <single_mapping origin_block=\"1\" data_block=\"1\" time=\"0\">\n" +
                           "  </device>\n</superblock>\n",
                       4, "malformed XML: mismatched tag"));
  EXPECT_TRUE(fails_at(sb_line + dev1_line + "    <single_mapping origin_block=1 data_block=\"1\" time=\"0\"/>\n",
                       3, "malformed XML: not well-formed"));
  EXPECT_TRUE(fails_at(sb_line + dev1_line + "  <device dev_id=\"2\" dev_id=\"3\">\n", 3,
                       "malformed XML: duplicate attribute"));
}

TEST(xml_parser, a_document_without_its_closing_superblock_is_reported_as_truncated) {
  auto r = fails_at(sb_line + dev1_line + test::xml_single(1, 1) + "  </device>\n", 5, "truncated");
  EXPECT_TRUE(r);
  EXPECT_NE(std::string(r.message()).find("<superblock> was not closed"), std::string::npos) << r.message();
}

TEST(xml_parser, a_document_cut_inside_a_device_names_the_open_elements) {
  auto r = fails_at(sb_line + dev1_line + test::xml_single(1, 1), 4, "truncated");
  EXPECT_TRUE(r);
  EXPECT_NE(std::string(r.message()).find("<device>, <superblock> were not closed"), std::string::npos)
      << r.message();
}

TEST(xml_parser, a_document_cut_inside_a_tag_is_reported_as_truncated) {
  EXPECT_TRUE(fails_at(sb_line + dev1_line + "    <single_mapping origin_bl", 3, "truncated"));
  EXPECT_TRUE(fails_at("<superblock uuid=\"\" ti", 1, "truncated?): it stops inside the first tag"));
}

TEST(xml_parser, truncated_input_does_not_emit_end_superblock) {
  std::istringstream in(sb_line + dev1_line + "  </device>\n");
  recording_emitter e;
  EXPECT_THROW(thin::parse_xml(in, e), thin::xml_error);
  EXPECT_EQ(e.events.back(), "end_device");
}

TEST(xml_parser, empty_input_says_there_is_no_superblock) {
  EXPECT_TRUE(fails_at("", 1, "empty input: no <superblock> element found"));
  EXPECT_TRUE(fails_at("\n\n  \n", 4, "empty input"));
  EXPECT_TRUE(fails_at("<?xml version=\"1.0\"?>\n<!-- nothing -->\n", 3, "empty input"));
}

TEST(xml_parser, content_after_the_superblock_is_rejected_before_end_superblock) {
  std::istringstream in(sb_line + "</superblock>\n" + sb_line + "</superblock>\n");
  recording_emitter e;
  try {
    thin::parse_xml(in, e);
    FAIL() << "no error";
  } catch (const thin::xml_error &x) {
    EXPECT_EQ(std::string(x.what()).rfind("line 3: content after </superblock>", 0), 0u) << x.what();
  }
  EXPECT_EQ(e.events.size(), 1u);  // begin_superblock only
}

TEST(xml_parser, text_between_elements_is_rejected) {
  EXPECT_TRUE(fails_at(sb_line + dev1_line + "    oops\n  </device>\n</superblock>\n", 3,
                       "unexpected text \"oops\": only elements, whitespace and comments are allowed here"));
  EXPECT_TRUE(fails_at(sb_line + std::string(100, 'x') + "\n</superblock>\n", 2,
                       "unexpected text \"" + std::string(40, 'x') + "...\""));
}

TEST(xml_parser, a_doctype_is_rejected) {
  EXPECT_TRUE(fails_at("<?xml version=\"1.0\"?>\n<!DOCTYPE superblock [ <!ENTITY a \"b\"> ]>\n" + sb_line +
                           "</superblock>\n",
                       2, "<!DOCTYPE> declarations are not allowed"));
}

// --- elements and attributes ------------------------------------------------------

TEST(xml_parser, an_unknown_element_is_rejected) {
  EXPECT_TRUE(fails_at(in_device("    <mapping origin=\"1\"/>\n"), 3, "unknown element <mapping>"));
  EXPECT_TRUE(fails_at("<metadata/>\n", 1, "unknown element <metadata>"));
}

TEST(xml_parser, an_unknown_attribute_on_a_known_element_is_rejected) {
  EXPECT_TRUE(fails_at(sb_line +
                           "  <device dev_id=\"1\" mapped_blocks=\"0\" transaction=\"0\" creation_time=\"0\" "
                           "snap_time=\"0\" colour=\"red\">\n  </device>\n</superblock>\n",
                       2, "unknown attribute \"colour\" on <device>"));
  EXPECT_TRUE(fails_at(in_device("    <single_mapping origin_block=\"1\" data_block=\"1\" time=\"0\" length=\"1\"/>\n"),
                       3, "unknown attribute \"length\" on <single_mapping>"));
  EXPECT_TRUE(fails_at(replace_all(sb_line, "flags", "flag") + "</superblock>\n", 1,
                       "unknown attribute \"flag\" on <superblock>"));
}

TEST(xml_parser, a_missing_required_attribute_is_named) {
  EXPECT_TRUE(fails_at(replace_all(sb_line, " nr_data_blocks=\"1000\"", "") + "</superblock>\n", 1,
                       "<superblock> is missing the required attribute \"nr_data_blocks\""));
  EXPECT_TRUE(fails_at(replace_all(sb_line, "uuid=\"\" ", "") + "</superblock>\n", 1,
                       "missing the required attribute \"uuid\""));
  EXPECT_TRUE(fails_at(replace_all(in_device(""), "dev_id=\"1\" ", ""), 2,
                       "<device> is missing the required attribute \"dev_id\""));
  EXPECT_TRUE(fails_at(replace_all(in_device(""), " snap_time=\"0\"", ""), 2,
                       "<device> is missing the required attribute \"snap_time\""));
  EXPECT_TRUE(fails_at(in_device("    <range_mapping origin_begin=\"1\" data_begin=\"1\" time=\"0\"/>\n"), 3,
                       "<range_mapping> is missing the required attribute \"length\""));
  EXPECT_TRUE(fails_at(in_device("    <single_mapping origin_block=\"1\" data_block=\"1\"/>\n"), 3,
                       "<single_mapping> is missing the required attribute \"time\""));
  EXPECT_TRUE(fails_at(sb_line + "  <def>\n  </def>\n</superblock>\n", 2,
                       "<def> is missing the required attribute \"name\""));
  EXPECT_TRUE(fails_at(in_device("    <ref/>\n"), 3, "<ref> is missing the required attribute \"name\""));
}

TEST(xml_parser, non_numeric_values_are_rejected) {
  for (const char *bad : {"", "x1", "-1", "+1", " 1", "1 ", "1.0", "0x10", "1e3", "\xd9\xa1"}) {
    SCOPED_TRACE(bad);
    EXPECT_TRUE(fails_at(replace_all(in_device(""), "dev_id=\"1\"", std::string("dev_id=\"") + bad + "\""), 2,
                         "<device> attribute dev_id=\"" + std::string(bad) +
                             "\" is not a non-negative decimal integer"));
  }
  EXPECT_TRUE(fails_at(in_device("    <single_mapping origin_block=\"1\" data_block=\"one\" time=\"0\"/>\n"), 3,
                       "data_block=\"one\" is not a non-negative decimal integer"));
  EXPECT_TRUE(fails_at(replace_all(sb_line, "transaction=\"2\"", "transaction=\"two\"") + "</superblock>\n", 1,
                       "<superblock> attribute transaction=\"two\" is not"));
}

TEST(xml_parser, out_of_range_values_are_rejected) {
  EXPECT_TRUE(fails_at(replace_all(sb_line, "transaction=\"2\"", "transaction=\"18446744073709551616\"") +
                           "</superblock>\n",
                       1, "transaction=\"18446744073709551616\" is out of range (at most 18446744073709551615)"));
  EXPECT_TRUE(fails_at(replace_all(sb_line, "time=\"1\"", "time=\"4294967296\"") + "</superblock>\n", 1,
                       "time=\"4294967296\" is out of range (at most 4294967295)"));
  EXPECT_TRUE(fails_at(replace_all(sb_line, "flags=\"0\"", "flags=\"4294967296\"") + "</superblock>\n", 1,
                       "flags=\"4294967296\" is out of range"));
  EXPECT_TRUE(fails_at(replace_all(sb_line, "data_block_size=\"128\"", "data_block_size=\"99999999999\"") +
                           "</superblock>\n",
                       1, "data_block_size=\"99999999999\" is out of range"));
  EXPECT_TRUE(fails_at(replace_all(in_device(""), "dev_id=\"1\"", "dev_id=\"16777216\""), 2,
                       "dev_id=\"16777216\" is out of range (at most 16777215)"));
  EXPECT_TRUE(fails_at(replace_all(in_device(""), "snap_time=\"0\"", "snap_time=\"4294967296\""), 2,
                       "snap_time=\"4294967296\" is out of range"));
  EXPECT_TRUE(fails_at(in_device("    <single_mapping origin_block=\"99999999999999999999\" data_block=\"1\" "
                                 "time=\"0\"/>\n"),
                       3, "origin_block=\"99999999999999999999\" is out of range"));
}

TEST(xml_parser, a_mapping_time_above_24_bits_is_rejected) {
  EXPECT_TRUE(fails_at(in_device(test::xml_single(1, 1, 16777216)), 3,
                       "<single_mapping> attribute time=\"16777216\" is out of range (at most 16777215, a mapping "
                       "stores 24 bits of time)"));
  EXPECT_TRUE(fails_at(in_device(test::xml_single(0, 0) + test::xml_range(1, 1, 2, 1u << 30)), 4,
                       "<range_mapping> attribute time=\"1073741824\" is out of range"));
}

TEST(xml_parser, an_invalid_data_block_size_is_rejected) {
  for (const char *bad : {"0", "64", "100", "192", "2097280", "4194304"}) {
    SCOPED_TRACE(bad);
    EXPECT_TRUE(fails_at(replace_all(in_device(""), "data_block_size=\"128\"",
                                     std::string("data_block_size=\"") + bad + "\""),
                         1, std::string("data_block_size ") + bad + " is invalid: it must be a multiple of 128"));
  }
  thin::xml_parse_options o;
  o.overrides.data_block_size = 96;
  EXPECT_TRUE(fails_at(in_device(""), 1, "data_block_size 96 (overridden) is invalid", o));
}

// --- structure ------------------------------------------------------------------------

TEST(xml_parser, anything_before_the_superblock_is_rejected) {
  EXPECT_TRUE(fails_at("<?xml version=\"1.0\"?>\n" + dev1_line + "  </device>\n", 2,
                       "<device> before <superblock>: the document must start with <superblock>"));
  EXPECT_TRUE(fails_at(test::xml_single(1, 1), 1, "<single_mapping> before <superblock>"));
  EXPECT_TRUE(fails_at(test::xml_range(1, 1, 2), 1, "<range_mapping> before <superblock>"));
  EXPECT_TRUE(fails_at("<def name=\"a\"/>", 1, "<def> before <superblock>"));
  EXPECT_TRUE(fails_at("\n<ref name=\"a\"/>", 2, "<ref> before <superblock>"));
}

TEST(xml_parser, a_second_superblock_is_rejected) {
  EXPECT_TRUE(fails_at(sb_line + sb_line + "</superblock>\n</superblock>\n", 2, "a second <superblock>"));
  EXPECT_TRUE(fails_at(sb_line + dev1_line + sb_line, 3, "a second <superblock> inside <device>"));
  EXPECT_TRUE(fails_at(sb_line + "</superblock>\n\n" + sb_line + "</superblock>\n", 4,
                       "the document must hold exactly one <superblock>"));
}

TEST(xml_parser, a_mapping_outside_a_device_or_def_is_rejected) {
  EXPECT_TRUE(fails_at(sb_line + test::xml_single(1, 1) + "</superblock>\n", 2,
                       "<single_mapping> outside a <device> or <def>"));
  EXPECT_TRUE(fails_at(sb_line + dev1_line + "  </device>\n" + test::xml_range(1, 1, 4) + "</superblock>\n", 4,
                       "<range_mapping> outside a <device> or <def>"));
}

TEST(xml_parser, a_nested_device_is_rejected) {
  EXPECT_TRUE(fails_at(sb_line + dev1_line + replace_all(dev1_line, "\"1\"", "\"2\""), 3, "nested <device>"));
}

TEST(xml_parser, a_device_inside_a_def_is_rejected) {
  EXPECT_TRUE(fails_at(sb_line + "  <def name=\"a\">\n" + dev1_line, 3, "<device> inside <def>"));
}

TEST(xml_parser, a_def_inside_a_device_or_another_def_is_rejected) {
  EXPECT_TRUE(fails_at(in_device("    <def name=\"a\">\n    </def>\n"), 3, "<def> inside <device>"));
  EXPECT_TRUE(fails_at(sb_line + "  <def name=\"a\">\n    <def name=\"b\">\n", 3, "nested <def>"));
}

TEST(xml_parser, a_ref_outside_a_device_is_rejected) {
  std::string def = "  <def name=\"a\">\n" + test::xml_single(1, 1) + "  </def>\n";
  EXPECT_TRUE(fails_at(sb_line + def + "  <ref name=\"a\"/>\n</superblock>\n", 5, "<ref> outside a <device>"));
  EXPECT_TRUE(fails_at(sb_line + def + "  <def name=\"b\">\n    <ref name=\"a\"/>\n", 6, "<ref> inside <def>"));
}

TEST(xml_parser, an_element_inside_a_mapping_or_ref_is_rejected) {
  EXPECT_TRUE(fails_at(in_device("    <single_mapping origin_block=\"1\" data_block=\"1\" time=\"0\">\n" +
                                 test::xml_single(2, 2) + "    </single_mapping>\n"),
                       4, "<single_mapping> inside <single_mapping>: <single_mapping> must be empty"));
  std::string def = "  <def name=\"a\">\n" + test::xml_single(1, 1) + "  </def>\n";
  EXPECT_TRUE(fails_at(sb_line + def + dev1_line + "    <ref name=\"a\">" + test::xml_single(5, 5), 6,
                       "<single_mapping> inside <ref>"));
}

TEST(xml_parser, a_duplicate_dev_id_is_rejected) {
  std::string doc = sb_line + dev1_line + test::xml_single(1, 1) + "  </device>\n" + dev1_line + "  </device>\n</superblock>\n";
  EXPECT_TRUE(fails_at(doc, 5, "duplicate <device dev_id=\"1\">"));
}

TEST(xml_parser, a_duplicate_origin_block_is_rejected) {
  EXPECT_TRUE(fails_at(in_device(test::xml_single(5, 1) + test::xml_single(5, 2)), 4,
                       "<single_mapping> at origin block 5 does not come after the previous mapping of device 1 "
                       "(ending at origin block 5)"));
}

TEST(xml_parser, decreasing_origin_blocks_are_rejected) {
  EXPECT_TRUE(fails_at(in_device(test::xml_single(0, 0) + test::xml_single(9, 1) + test::xml_single(3, 2)), 5,
                       "<single_mapping> at origin block 3 does not come after"));
}

TEST(xml_parser, overlapping_ranges_are_rejected) {
  EXPECT_TRUE(fails_at(in_device(test::xml_range(0, 0, 10) + test::xml_single(9, 20)), 4,
                       "at origin block 9 does not come after the previous mapping of device 1 (ending at origin "
                       "block 9)"));
  EXPECT_TRUE(fails_at(in_device(test::xml_single(0, 0) + test::xml_range(20, 20, 5) + test::xml_range(24, 40, 2)), 5,
                       "<range_mapping> at origin block 24 does not come after"));
}

TEST(xml_parser, mapping_order_restarts_with_each_device) {
  std::string doc = sb_line + dev1_line + test::xml_single(5, 1) + "  </device>\n" + replace_all(dev1_line, "\"1\"", "\"2\"") +
                    test::xml_single(0, 2) + "  </device>\n</superblock>\n";
  EXPECT_EQ(events_of(doc).size(), 8u);
}

TEST(xml_parser, mappings_inside_a_def_must_increase_too) {
  EXPECT_TRUE(fails_at(sb_line + "  <def name=\"x\">\n" + test::xml_range(4, 4, 4) + test::xml_single(6, 9), 4,
                       "does not come after the previous mapping of def \"x\""));
}

TEST(xml_parser, a_zero_length_range_is_rejected) {
  EXPECT_TRUE(fails_at(in_device(test::xml_single(0, 0) + test::xml_range(1, 1, 0)), 4, "<range_mapping> with length 0"));
}

TEST(xml_parser, a_range_running_past_the_largest_block_number_is_rejected) {
  EXPECT_TRUE(fails_at(in_device(test::xml_range(18446744073709551615u, 1, 2)), 3,
                       "<range_mapping> origin blocks 18446744073709551615 + 2 run past the largest block number"));
  thin::xml_parse_options o;
  o.overrides.nr_data_blocks = 18446744073709551615u;
  EXPECT_TRUE(fails_at(in_device(test::xml_range(1, 18446744073709551614u, 3)), 3,
                       "<range_mapping> data blocks 18446744073709551614 + 3 run past the largest block number", o));
}

TEST(xml_parser, a_data_block_beyond_nr_data_blocks_is_rejected) {
  EXPECT_EQ(events_of(in_device(test::xml_single(0, 999) + test::xml_range(1, 995, 5))).size(), 6u);
  EXPECT_TRUE(fails_at(in_device(test::xml_single(0, 1000)), 3,
                       "<single_mapping> maps data block 1000, beyond the data device: nr_data_blocks is 1000"));
  EXPECT_TRUE(fails_at(in_device(test::xml_single(0, 0) + test::xml_range(1, 995, 6)), 4,
                       "<range_mapping> maps data block 1000, beyond the data device"));
}

TEST(xml_parser, data_blocks_are_checked_against_the_overridden_nr_data_blocks) {
  thin::xml_parse_options grow;
  grow.overrides.nr_data_blocks = 2000;
  EXPECT_EQ(events_of(in_device(test::xml_single(0, 1500)), grow).size(), 5u);
  thin::xml_parse_options shrink;
  shrink.overrides.nr_data_blocks = 10;
  EXPECT_TRUE(fails_at(in_device(test::xml_single(0, 5) + test::xml_single(1, 10)), 4, "nr_data_blocks is 10 (overridden)", shrink));
}

TEST(xml_parser, a_data_block_too_large_for_a_mapping_is_rejected) {
  thin::xml_parse_options o;
  o.overrides.nr_data_blocks = 1ull << 50;
  EXPECT_TRUE(fails_at(in_device(test::xml_single(0, 1ull << 40)), 3,
                       "maps data block 1099511627776, above the largest a mapping can hold (1099511627775)", o));
}

TEST(xml_parser, a_duplicate_def_name_is_rejected) {
  std::string def = "  <def name=\"a\">\n" + test::xml_single(1, 1) + "  </def>\n";
  EXPECT_TRUE(fails_at(sb_line + def + def + "</superblock>\n", 5, "duplicate <def name=\"a\">"));
  EXPECT_TRUE(fails_at(sb_line + "  <def name=\"\">\n", 2, "<def> has an empty name"));
}

TEST(xml_parser, a_ref_to_an_unknown_def_is_rejected) {
  EXPECT_TRUE(fails_at(in_device("    <ref name=\"nowhere\"/>\n"), 3,
                       "<ref name=\"nowhere\"/> names no <def> that appears before it"));
  // A def must come before the ref that uses it.
  std::string late = sb_line + dev1_line + "    <ref name=\"a\"/>\n  </device>\n  <def name=\"a\">\n  </def>\n"
                                           "</superblock>\n";
  EXPECT_TRUE(fails_at(late, 3, "names no <def>"));
}

TEST(xml_parser, a_ref_overlapping_the_previous_mapping_is_rejected) {
  std::string def = "  <def name=\"a\">\n" + test::xml_range(10, 100, 5) + test::xml_single(20, 200) + "  </def>\n";
  EXPECT_TRUE(fails_at(sb_line + def + dev1_line + test::xml_single(10, 1) + "    <ref name=\"a\"/>\n", 8,
                       "<ref name=\"a\"/> maps origin blocks 10..20, which do not come after the previous mapping of "
                       "device 1 (ending at origin block 10)"));
  EXPECT_TRUE(fails_at(sb_line + def + dev1_line + "    <ref name=\"a\"/>\n    <ref name=\"a\"/>\n", 8,
                       "<ref name=\"a\"/> maps origin blocks 10..20"));
}

TEST(xml_parser, a_mapping_overlapping_a_previous_ref_is_rejected) {
  std::string def = "  <def name=\"a\">\n" + test::xml_range(10, 100, 5) + test::xml_single(20, 200) + "  </def>\n";
  EXPECT_TRUE(fails_at(sb_line + def + dev1_line + "    <ref name=\"a\"/>\n" + test::xml_single(15, 1), 8,
                       "at origin block 15 does not come after the previous mapping of device 1 (ending at origin "
                       "block 20)"));
}

// --- emitter and stream failures ----------------------------------------------------

class failing_emitter : public recording_emitter {
 public:
  explicit failing_emitter(int allowed_singles) : allowed_(allowed_singles) {}
  void single_map(uint64_t ob, uint64_t db, uint32_t time) override {
    if (allowed_-- == 0) throw std::runtime_error("out of metadata space");
    recording_emitter::single_map(ob, db, time);
  }
  void end_superblock() override { throw std::runtime_error("commit failed"); }

 private:
  int allowed_;
};

TEST(xml_parser, an_emitter_failure_becomes_an_xml_error_at_the_current_line) {
  std::istringstream in(in_device(test::xml_single(0, 0) + test::xml_single(1, 1) + test::xml_single(2, 2)));
  failing_emitter e(2);
  try {
    thin::parse_xml(in, e);
    FAIL() << "no error";
  } catch (const thin::xml_error &x) {
    EXPECT_STREQ(x.what(), "line 5: out of metadata space");
    EXPECT_EQ(x.line(), 5u);
    // The emitter's own exception is kept, nested.
    try {
      std::rethrow_if_nested(x);
      FAIL() << "not nested";
    } catch (const std::runtime_error &inner) {
      EXPECT_STREQ(inner.what(), "out of metadata space");
    }
  }
}

TEST(xml_parser, an_end_superblock_failure_names_the_closing_line) {
  std::istringstream in(in_device(test::xml_single(0, 0)) + "\n<!-- end -->\n");
  failing_emitter e(100);
  try {
    thin::parse_xml(in, e);
    FAIL() << "no error";
  } catch (const thin::xml_error &x) {
    EXPECT_STREQ(x.what(), "line 5: commit failed");
  }
}

TEST(xml_parser, a_broken_pipe_from_the_emitter_passes_through_unchanged) {
  class pipe_emitter : public recording_emitter {
   public:
    void begin_device(const thin::device_info &) override { throw thin::broken_pipe(); }
  } e;
  std::istringstream in(in_device(""));
  EXPECT_THROW(thin::parse_xml(in, e), thin::broken_pipe);
}

TEST(xml_parser, an_emitter_without_def_support_fails_at_the_def_line) {
  // The XML emitter supports defs; the human-readable one does not.
  thin::string_sink sink;
  auto e = thin::make_human_readable_emitter(sink);
  std::istringstream in(sb_line + "\n  <def name=\"a\">\n  </def>\n</superblock>\n");
  try {
    thin::parse_xml(in, *e);
    FAIL() << "no error";
  } catch (const thin::xml_error &x) {
    EXPECT_STREQ(x.what(), "line 3: this output does not support shared <def> mappings");
  }
}

// Serves `data`, then fails as a broken disk would.
class failing_buf : public std::streambuf {
 public:
  explicit failing_buf(std::string data) : data_(std::move(data)) {}

 protected:
  int_type underflow() override {
    if (!served_) {
      served_ = true;
      setg(data_.data(), data_.data(), data_.data() + data_.size());
      return traits_type::to_int_type(*gptr());
    }
    throw std::runtime_error("Input/output error");
  }

 private:
  std::string data_;
  bool served_ = false;
};

TEST(xml_parser, an_input_read_error_says_it_has_no_line) {
  failing_buf buf(sb_line + dev1_line);
  std::istream in(&buf);
  recording_emitter e;
  try {
    thin::parse_xml(in, e);
    FAIL() << "no error";
  } catch (const thin::xml_error &x) {
    std::string what = x.what();
    EXPECT_FALSE(x.line().has_value());
    EXPECT_EQ(what.rfind("error reading the XML input (no line number", 0), 0u) << what;
  }
}

TEST(xml_parser, an_input_read_error_says_it_has_no_line_when_the_stream_rethrows_too) {
  failing_buf buf(sb_line + dev1_line);
  std::istream in(&buf);
  in.exceptions(std::ios::badbit);
  recording_emitter e;
  try {
    thin::parse_xml(in, e);
    FAIL() << "no error";
  } catch (const thin::xml_error &x) {
    EXPECT_FALSE(x.line().has_value());
    std::string what = x.what();
    EXPECT_EQ(what.rfind("error reading the XML input (no line number", 0), 0u) << what;
    EXPECT_NE(what.find("Input/output error"), std::string::npos) << what;
  }
}

TEST(xml_parser, an_unreadable_stream_is_a_read_error) {
  std::istringstream in("<superblock/>");
  in.setstate(std::ios::failbit);
  recording_emitter e;
  try {
    thin::parse_xml(in, e);
    FAIL() << "no error";
  } catch (const thin::xml_error &x) {
    EXPECT_FALSE(x.line().has_value());
    EXPECT_NE(std::string(x.what()).find("no line number"), std::string::npos) << x.what();
  }
}

TEST(xml_parser, a_stream_with_exceptions_enabled_still_reads_to_its_end) {
  std::istringstream in(in_device(test::xml_single(1, 1)));
  in.exceptions(std::ios::failbit | std::ios::badbit | std::ios::eofbit);
  EXPECT_EQ(events_of(in_device(test::xml_single(1, 1))).size(), 5u);
  recording_emitter e;
  thin::parse_xml(in, e);
  EXPECT_EQ(e.events.size(), 5u);
}

}  // namespace

// --- the mapping fast path --------------------------------------------------------

namespace {

TEST(xml_parser, a_mapping_line_inside_a_comment_is_not_a_mapping) {
  std::string doc = in_device("    <!-- a comment\n" + test::xml_single(1, 1) + test::xml_range(2, 2, 3) + "    -->\n" + test::xml_single(9, 9));
  auto ev = events_of(doc);
  ASSERT_EQ(ev.size(), 5u);
  EXPECT_EQ(ev[2], "single 9 9 time=0");
}

TEST(xml_parser, mapping_lines_with_crlf_entities_or_other_quoting_parse_like_plain_ones) {
  std::string plain = in_device(test::xml_single(1, 1, 0) + test::xml_range(5, 7, 3, 1));
  std::string crlf = replace_all(plain, "\n", "\r\n");
  std::string entity = replace_all(plain, "origin_block=\"1\"", "origin_block=\"&#49;\"");
  std::string quotes = replace_all(plain, "data_begin=\"7\"", "data_begin='7'");
  EXPECT_EQ(events_of(crlf), events_of(plain));
  EXPECT_EQ(events_of(entity), events_of(plain));
  EXPECT_EQ(events_of(quotes), events_of(plain));
}

TEST(xml_parser, line_numbers_stay_right_after_long_runs_of_mapping_lines) {
  std::string body;
  for (uint64_t i = 0; i < 3000; i++) body += (i % 2) ? test::xml_single(i, i % 900) : test::xml_range(i, i % 900, 1);
  // An error expat finds (line 3003), and one the mapping checks find (3003).
  EXPECT_TRUE(fails_at(sb_line + dev1_line + body + "    <bogus/>\n", 3003, "unknown element <bogus>"));
  EXPECT_TRUE(fails_at(sb_line + dev1_line + body + test::xml_single(10, 1), 3003, "does not come after"));
  // A comment in the middle does not disturb the count.
  EXPECT_TRUE(fails_at(sb_line + dev1_line + "<!-- x -->\n" + body + test::xml_single(10, 1), 3004, "does not come after"));
}

TEST(xml_parser, a_mapping_line_outside_a_device_still_fails_with_its_message) {
  EXPECT_TRUE(fails_at(sb_line + test::xml_single(1, 1), 2, "<single_mapping> outside a <device> or <def>"));
}

}  // namespace
