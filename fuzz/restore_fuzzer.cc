// Fuzzes thin_restore: XML (the input a user hands it, raw bytes) through
// parse_xml into a restore_emitter on an in-memory device. Invariants: no
// crash; when restore commits, the metadata it wrote is spotless to our
// checker (no damage, no leaks, not even a stale hint) and dumps; when it
// fails, the output's superblock is zeroed after abandon(). Dictionary:
// fuzz/xml.dict.
#include <algorithm>
#include <exception>
#include <sstream>

#include "harness.h"
#include "thin/dump/dump.h"
#include "thin/ir/emitter.h"
#include "thin/ir/text_sink.h"
#include "thin/ir/xml_parser.h"
#include "thin/restore/restore.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pdata::memory_block_io out(1024);
  {
    thin::restore_emitter r(out);
    try {
      std::istringstream in(std::string(reinterpret_cast<const char *>(data), size));
      thin::parse_xml(in, r);
    } catch (const std::exception &) {
      try {
        r.abandon();
      } catch (const std::exception &e) {
        fuzz::fail(std::string("abandon on a memory device threw: ") + e.what());
      }
      if (r.committed()) return 0;  // the emitter committed; a later parse error
      pdata::block_buffer b;
      out.read(0, b.data.data(), 1);
      if (std::any_of(b.data.begin(), b.data.end(), [](unsigned char c) { return c != 0; }))
        fuzz::fail("failed restore left a superblock");
      return 0;
    }
    if (!r.committed()) return 0;  // no <superblock>
  }
  fuzz::quiet_reporter rep;
  thin::check_result c;
  try {
    c = thin::check_metadata(out, {}, rep);
  } catch (const std::exception &e) {
    fuzz::fail(std::string("check of restored metadata threw: ") + e.what());
  }
  if (!c.spotless()) fuzz::fail("restored metadata is not spotless: " + rep.first);
  try {
    thin::string_sink s;
    auto e = thin::make_xml_emitter(s);
    thin::dump_metadata(out, {}, *e);
  } catch (const std::exception &e) {
    fuzz::fail(std::string("dump of restored metadata failed: ") + e.what());
  }
  return 0;
}
