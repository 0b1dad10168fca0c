// Fuzzes thin_check: damaged metadata into check_metadata (the fast path and
// the exact checker), clear_needs_check_flag and auto_repair, on an in-memory
// device. Input: metadata_image.h; flags bit 0 checks the metadata snapshot,
// bit 1 skips the mappings, bit 2 runs the exact checker only, bit 3 tries
// --clear-needs-check-flag / --auto-repair on a copy.
// Invariants: no crash; a clean verdict of the fast path is a clean verdict
// of the exact checker; metadata that checks clean dumps without an error;
// metadata auto_repair says it repaired checks clean afterwards.
#include <exception>

#include "harness.h"
#include "metadata_image.h"
#include "thin/dump/dump.h"
#include "thin/ir/emitter.h"
#include "thin/ir/text_sink.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz::metadata_image img = fuzz::decode_image(data, size);
  if (img.nr_blocks == 0) return 0;
  auto io = fuzz::make_device(img);
  thin::check_options opts;
  opts.use_metadata_snap = img.flags & 1;
  opts.skip_mappings = img.flags & 2;
  opts.exact_only = img.flags & 4;
  thin::check_result r;
  try {
    fuzz::quiet_reporter rep;
    r = thin::check_metadata(*io, opts, rep);
  } catch (const std::exception &) {
    return 0;
  }
  if (r.clean() && r.fully_examined && !opts.exact_only) {
    fuzz::quiet_reporter rep;
    thin::check_options exact = opts;
    exact.exact_only = true;
    thin::check_result e;
    try {
      e = thin::check_metadata(*io, exact, rep);
    } catch (const std::exception &ex) {
      fuzz::fail(std::string("fast check clean, exact check threw: ") + ex.what());
    }
    if (!e.clean()) fuzz::fail("fast check clean, exact check found: " + rep.first);
  }
  if (r.clean() && r.fully_examined && !opts.skip_mappings) {
    thin::string_sink s;
    auto xml = thin::make_xml_emitter(s);
    thin::dump_options d;
    d.use_metadata_snap = opts.use_metadata_snap;
    try {
      thin::dump_metadata(*io, d, *xml);
    } catch (const std::exception &ex) {
      fuzz::fail(std::string("check clean, dump failed: ") + ex.what());
    }
  }
  if (img.flags & 8) {
    try {
      thin::clear_needs_check_flag(*io);
      fuzz::quiet_reporter rep;
      thin::auto_repair_result a = thin::auto_repair(*io, rep);
      if (a.repaired) {
        fuzz::quiet_reporter rep2;
        thin::check_result after = thin::check_metadata(*io, {}, rep2);
        if (!after.clean()) fuzz::fail("auto_repair repaired, check then found: " + rep2.first);
      }
    } catch (const std::exception &) {
    }
  }
  return 0;
}
