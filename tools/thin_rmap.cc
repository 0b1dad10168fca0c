// thin_rmap: which thin blocks map the given data blocks, printed as
// thin_rmap 0.9.0 does. Parses the regions with thin::parse_data_region,
// runs thin::rmap_metadata, maps the result to an exit code.
#include <fmt/format.h>
#include <unistd.h>

#include <iostream>

#include "cli.h"
#include "commands.h"
#include "thin/format/superblock.h"
#include "thin/rmap/rmap.h"
#include "tool_support.h"

namespace tools {

namespace {

// 0.9.0's usage text.
const char *rmap_usage =
    "Usage: thin_rmap [options] {device|file}\n"
    "Options:\n"
    "  {-h|--help}\n"
    "  {-V|--version}\n"
    "  {--region <block range>}*\n"
    "Where:\n"
    "  <block range> is of the form <begin>..<one-past-the-end>\n"
    "  for example 5..45 denotes blocks 5 to 44 inclusive, but not block 45\n";

}  // namespace

int thin_rmap_main(std::vector<std::string> args) {
  std::vector<std::string> region_args, inputs;
  cli::command cmd("thin_rmap", rmap_usage);
  cmd.repeated("--region", region_args);
  cmd.positionals("input", inputs);
  cmd.progress_option();
  if (auto rc = cmd.parse(args)) return *rc;

  std::vector<thin::data_region> regions;
  for (auto &r : region_args) {
    try {
      regions.push_back(thin::parse_data_region(r));
    } catch (const pdata::bad_input_error &e) {
      return cmd.fail(fmt::format("--region {}: {}", r, e.what()));
    }
  }
  if (inputs.empty()) return cmd.usage_fail("no input file provided");
  if (regions.empty()) return cmd.usage_fail("no regions provided");
  if (inputs.size() > 1) return cmd.fail(fmt::format("only one input may be given (got {})", inputs.size()));
  const std::string &path = inputs[0];
  return cmd.run(path, [&] {
    auto io = open_metadata(path, {false, true});
    thin::fd_sink sink(STDOUT_FILENO);
    auto meter = cmd.meter(false, false);  // progress on a terminal, erased before the output
    try {
      thin::rmap_metadata(*io, regions, sink, meter.get());
    } catch (const thin::metadata_error &) {
      refuse_xml(*io, path, "thin_rmap");
      throw;
    }
    return exit_ok;
  });
}

}  // namespace tools
