// See check_reporter.h.
#include "check_reporter.h"

#include <fmt/format.h>

#include "tool_support.h"

namespace tools {

// Repairs leaks in place (thin::auto_repair, which re-checks first), then
// applies the e2fsck rule: the result must check clean. Throws why it failed;
// returns what was fixed.
thin::auto_repair_result repair_leaks(pdata::block_io &io, thin::check_reporter &rep, const std::string &path,
                                      const char *after) {
  thin::auto_repair_result ar = thin::auto_repair(io, rep);
  if (!ar.repaired) throw usage_error(fmt::format("{}: not repaired: {}", path, ar.refused));
  console_reporter quiet_rep(true);
  if (!thin::check_metadata(io, {}, quiet_rep).clean())
    throw usage_error(fmt::format("{}: still damaged after {}", path, after));
  return ar;
}

}  // namespace tools
