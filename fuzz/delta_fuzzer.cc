// Fuzzes thin_delta: damaged metadata and two device ids (arg1, arg2 of the
// input header, metadata_image.h) through delta_metadata into a string.
// flags bit 0 compares in the metadata snapshot, bit 1 is --verbose.
// Invariant: no crash; bad input is a thrown error.
#include <exception>

#include "metadata_image.h"
#include "thin/delta/delta.h"
#include "thin/ir/text_sink.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz::metadata_image img = fuzz::decode_image(data, size);
  if (img.nr_blocks == 0) return 0;
  auto io = fuzz::make_device(img);
  thin::delta_options o;
  o.left_dev = img.arg1;
  o.right_dev = img.arg2;
  o.use_metadata_snap = img.flags & 1;
  o.verbose = img.flags & 2;
  try {
    thin::string_sink s;
    thin::delta_metadata(*io, o, s);
  } catch (const std::exception &) {
  }
  return 0;
}
