// thin_delta: print the differences between the mappings of two thin devices
// as thin_delta 0.9.0 does. Parses options into thin::delta_options, runs
// thin::delta_metadata, maps the result to an exit code.
#include <unistd.h>

#include <iostream>

#include <fmt/format.h>

#include "cli.h"
#include "commands.h"
#include "thin/delta/delta.h"
#include "thin/format/superblock.h"

namespace tools {

namespace {

// 0.9.0's usage text.
const char *delta_usage =
    "Usage: thin_delta [options] <device or file>\n"
    "Options:\n"
    "  {--thin1, --snap1}\n"
    "  {--thin2, --snap2}\n"
    "  {-m, --metadata-snap} [block#]\n"
    "  {--verbose}\n"
    "  {-h|--help}\n"
    "  {-V|--version}\n";

}  // namespace

int thin_delta_main(std::vector<std::string> args) {
  thin::delta_options opts;
  std::optional<uint64_t> snap1, snap2;
  std::vector<std::string> inputs;
  cli::command cmd("thin_delta", delta_usage);
  cmd.metadata_snap(opts.use_metadata_snap, opts.metadata_snap_location);
  // The last occurrence wins, as with getopt.
  cmd.number("--snap1,--thin1", snap1)->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  cmd.number("--snap2,--thin2", snap2)->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  cmd.flag("--verbose", opts.verbose);
  cmd.positionals("input", inputs);
  if (auto rc = cmd.parse(args)) return *rc;

  // Command-line mistakes, in 0.9.0's order, with the usage after them.
  if (inputs.empty()) return cmd.usage_fail("no input file provided");
  if (!snap1) return cmd.usage_fail("--snap1 not specified");
  if (!snap2) return cmd.usage_fail("--snap2 not specified");
  if (inputs.size() > 1) return cmd.fail(fmt::format("only one input may be given (got {})", inputs.size()));
  opts.left_dev = *snap1;
  opts.right_dev = *snap2;
  const std::string &path = inputs[0];
  return cmd.run(path, [&] {
    auto io = open_metadata(path, {false, !opts.use_metadata_snap});
    thin::fd_sink sink(STDOUT_FILENO);
    try {
      thin::delta_metadata(*io, opts, sink);
    } catch (const thin::metadata_error &) {
      try {
        sink.flush();
      } catch (...) {
      }
      refuse_xml(*io, path, "thin_delta");
      throw;
    }
    return exit_ok;
  });
}

}  // namespace tools
