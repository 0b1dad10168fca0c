// Fuzzes thin_audit: a dm-log-writes log (raw bytes, as a user hands it) into
// list_log, plan_replay/replay_log, audit_log and check_log, with the layout
// the kernel fixture was recorded with (8 MiB metadata, 256 MiB data). The
// data region is replayed into a sink that drops it. Invariant: no crash;
// bad input is a thrown error.
#include <exception>

#include "audit/audit.h"
#include "log-writes/byte_io.h"

namespace {

class null_sink : public pdata::byte_sink {
 public:
  void write_at(uint64_t, const void *, std::size_t) override {}
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pdata::memory_byte_io log(std::vector<unsigned char>(data, data + size));
  thin::log_layout layout;
  try {
    thin::list_log(log, layout, [](const thin::placed_entry &e) { (void)thin::format_entry(e); });
  } catch (const std::exception &) {
    return 0;  // not a log: the rest would throw the same way
  }
  try {
    thin::replay_options ro;
    thin::plan_replay(log, layout, ro);
    pdata::memory_byte_io meta;
    null_sink dat;
    thin::replay_log(log, layout, meta, dat, ro);
  } catch (const std::exception &) {
  }
  try {
    thin::audit_result r = thin::audit_log(log, layout);
    (void)thin::format_audit_text(r);
    (void)thin::format_audit_json(r);
  } catch (const std::exception &) {
  }
  try {
    thin::log_check_result r = thin::check_log(log, layout, {});
    (void)thin::format_check_text(r);
  } catch (const std::exception &) {
  }
  return 0;
}
