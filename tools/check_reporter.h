// thin_check's console output: the pass names and problems on stderr and the
// TRANSACTION_ID=/METADATA_FREE_BLOCKS= lines on stdout as thin_check 0.9.0
// prints them (nothing with -q), optionally collected for --json; and the
// leak repair that --auto-repair and lvm2's activation call share.
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

#include "persistent-data/block_io.h"
#include "progress_meter.h"
#include "thin/check/check.h"
#include "thin/check/report_json.h"

namespace tools {

class console_reporter : public thin::check_reporter {
 public:
  explicit console_reporter(bool quiet) : quiet_(quiet) {}
  thin::json_report *json = nullptr;  // --json: also collects everything here
  progress_meter *meter = nullptr;    // erased before each line printed
  void stage(const char *name) override {
    if (json) json->stage(name);
    if (quiet_) return;
    if (meter) meter->erase();
    std::fflush(stdout);
    std::fprintf(stderr, "%s\n", name);
  }
  void info(uint64_t tid, uint64_t free_blocks) override {
    if (quiet_) return;
    if (meter) meter->erase();
    std::fflush(stderr);
    std::printf("TRANSACTION_ID=%llu\nMETADATA_FREE_BLOCKS=%llu\n", static_cast<unsigned long long>(tid),
                static_cast<unsigned long long>(free_blocks));
    std::fflush(stdout);
  }
  void visit(const thin::damage &d) override {
    if (!first_fatal_ && d.fatal) first_fatal_ = d.what;
    if (json) json->visit(d);
    // Stale space-map hints are not problems (0.9.0 and 1.x stay silent on
    // them too); --auto-repair rewrites them.
    if (quiet_ || d.hint) return;
    if (meter) meter->erase();
    std::fprintf(stderr, "  %s%s\n", d.fatal ? "" : "(non-fatal) ", d.what.c_str());
  }
  const std::optional<std::string> &first_fatal() const { return first_fatal_; }

 private:
  bool quiet_;
  std::optional<std::string> first_fatal_;
};

// Repairs leaks in place (thin::auto_repair, which re-checks first), then
// applies the e2fsck rule: the result must check clean. Throws why it failed;
// returns what was fixed.
thin::auto_repair_result repair_leaks(pdata::block_io &io, thin::check_reporter &rep, const std::string &path,
                                      const char *after);

}  // namespace tools
