// Fuzzes the dump -> restore -> dump round trip on damaged metadata: dump it
// to XML (the walk with its reader thread), and when the checker finds the
// metadata clean, restore that XML onto a fresh in-memory device and dump
// again: the second dump must equal the first, byte for byte. Input:
// metadata_image.h; flags bit 0 dumps the metadata snapshot, bit 1 uses the
// human-readable emitter for the first dump as well (exercised, not compared).
#include <exception>
#include <sstream>

#include "harness.h"
#include "metadata_image.h"
#include "persistent-data/transaction_manager.h"
#include "thin/dump/dump.h"
#include "thin/ir/emitter.h"
#include "thin/ir/text_sink.h"
#include "thin/ir/xml_parser.h"
#include "thin/restore/restore.h"

namespace {

std::string dump_xml(pdata::block_io &io, bool snap) {
  thin::string_sink s;
  auto e = thin::make_xml_emitter(s);
  thin::dump_options o;
  o.use_metadata_snap = snap;
  thin::dump_metadata(io, o, *e);
  return s.str();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz::metadata_image img = fuzz::decode_image(data, size);
  if (img.nr_blocks == 0) return 0;
  auto io = fuzz::make_device(img);
  const bool snap = img.flags & 1;
  if (img.flags & 2) {
    try {
      thin::string_sink s;
      auto e = thin::make_human_readable_emitter(s);
      thin::dump_options o;
      o.use_metadata_snap = snap;
      thin::dump_metadata(*io, o, *e);
    } catch (const std::exception &) {
    }
  }
  std::string first;
  try {
    first = dump_xml(*io, snap);
  } catch (const std::exception &) {
    return 0;
  }
  // Only metadata the checker passes has one right dump; damaged metadata may
  // dump values restore refuses (a mapping past the pool's end).
  thin::check_result c;
  try {
    fuzz::quiet_reporter rep;
    thin::check_options co;
    co.use_metadata_snap = snap;
    c = thin::check_metadata(*io, co, rep);
  } catch (const std::exception &) {
    return 0;
  }
  if (!c.clean() || !c.fully_examined) return 0;

  pdata::memory_block_io out(4096);
  try {
    thin::restore_emitter r(out);
    std::istringstream in(first);
    thin::parse_xml(in, r);
    if (!r.committed()) fuzz::fail("restore of a dump did not commit");
  } catch (const thin::xml_error &e) {
    try {
      std::rethrow_if_nested(e);
    } catch (const pdata::out_of_metadata_space &) {
      return 0;  // a bigger pool than the scratch device
    } catch (...) {
    }
    fuzz::fail(std::string("restore refused the dump of clean metadata: ") + e.what());
  }
  std::string second;
  try {
    second = dump_xml(out, false);
  } catch (const std::exception &e) {
    fuzz::fail(std::string("dump of restored metadata failed: ") + e.what());
  }
  if (snap) {
    // The restored pool has no metadata snapshot; nothing to compare.
    return 0;
  }
  if (second != first) fuzz::fail("second dump differs from the first:\n" + first + "\n---\n" + second);
  return 0;
}
