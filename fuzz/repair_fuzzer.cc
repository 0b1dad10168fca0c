// Fuzzes thin_repair: damaged metadata through repair_dump (the tolerant walk
// and the root-finding scan) into a restore_emitter on a fresh in-memory
// device. Invariants: no crash; when the repair commits, its output passes
// our checker (clean: no damage, no leaks). Input: metadata_image.h; flags
// bit 0 passes arg1 as --data-block-size and arg2 (below 2^20: a user who
// asks for a bigger pool gets one, slowly) as --nr-data-blocks (what a user
// gives when the superblock is gone).
#include <exception>

#include "harness.h"
#include "metadata_image.h"
#include "persistent-data/transaction_manager.h"
#include "thin/ir/xml_parser.h"
#include "thin/repair/repair.h"
#include "thin/restore/restore.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz::metadata_image img = fuzz::decode_image(data, size);
  if (img.nr_blocks == 0) return 0;
  auto in = fuzz::make_device(img);
  thin::repair_options ro;
  if (img.flags & 1) {
    ro.overrides.data_block_size = img.arg1;
    ro.overrides.nr_data_blocks = img.arg2 & 0xfffff;
  }
  pdata::memory_block_io out(4096);
  {
    thin::restore_emitter r(out);
    thin::repair_report report;
    try {
      thin::repair_dump(*in, ro, r, report);
    } catch (const std::exception &) {
      r.abandon();
      return 0;
    }
    if (!r.committed()) return 0;
  }
  fuzz::quiet_reporter rep;
  thin::check_result c;
  try {
    c = thin::check_metadata(out, {}, rep);
  } catch (const std::exception &e) {
    fuzz::fail(std::string("check of repaired metadata threw: ") + e.what());
  }
  if (!c.clean()) fuzz::fail("repaired metadata fails the check: " + rep.first);
  return 0;
}
