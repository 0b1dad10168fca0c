// thin_delta: print the differences between the mappings of two thin devices
// as thin_delta 0.9.0 does. Parses options into thin::delta_options, runs
// thin::delta_metadata, maps the result to an exit code.
#include <unistd.h>

#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "commands.h"
#include "thin/delta/delta.h"
#include "thin/format/superblock.h"
#include "tool_support.h"

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
  bool help = false, version = false;
  std::string snap1, snap2, snap_value;
  std::vector<std::string> inputs;

  const bool snap = take_optional_metadata_snap(args, snap_value);

  CLI::App app{"thin_delta"};
  app.set_help_flag();
  app.add_flag("-h,--help", help);
  app.add_flag("-V,--version", version);
  // The last occurrence wins, as with getopt.
  app.add_option("--snap1,--thin1", snap1)->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--snap2,--thin2", snap2)->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_flag("--verbose", opts.verbose);
  app.add_option("input", inputs);

  try {
    std::vector<std::string> rev(args.rbegin(), args.rend() - 1);
    app.parse(rev);
  } catch (const CLI::ParseError &e) {
    std::cerr << "thin_delta: " << e.what() << "\n" << delta_usage;
    return exit_failure;
  }
  if (help) {
    std::cout << delta_usage;
    return exit_ok;
  }
  if (version) {
    std::cout << version_string() << "\n";
    return exit_ok;
  }
  // Command-line mistakes, in 0.9.0's order, with the usage after them.
  auto usage_fail = [](const std::string &msg) {
    std::cerr << "thin_delta: " << msg << "\n" << delta_usage;
    return exit_failure;
  };
  if (inputs.empty()) return usage_fail("no input file provided");
  if (snap1.empty()) return usage_fail("--snap1 not specified");
  if (snap2.empty()) return usage_fail("--snap2 not specified");

  try {
    if (inputs.size() > 1) throw usage_error(fmt::format("only one input may be given (got {})", inputs.size()));
    opts.left_dev = parse_u64(snap1, "--snap1");
    opts.right_dev = parse_u64(snap2, "--snap2");
    opts.use_metadata_snap = snap;
    if (!snap_value.empty()) opts.metadata_snap_location = parse_u64(snap_value, "--metadata-snap");

    const std::string &path = inputs[0];
    auto io = open_metadata(path, {false, !snap});
    thin::fd_sink sink(STDOUT_FILENO);
    try {
      thin::delta_metadata(*io, opts, sink);
    } catch (const thin::metadata_error &err) {
      try {
        sink.flush();
      } catch (...) {
      }
      if (looks_like_xml(*io))
        throw usage_error(fmt::format("{}: this looks like XML; thin_delta reads binary metadata", path));
      throw usage_error(fmt::format("{}: {}", path, err.what()));
    }
    return exit_ok;
  } catch (const thin::broken_pipe &) {
    return exit_ok;  // the reader went away (thin_delta | head): end quietly
  } catch (const usage_error &e) {
    std::cerr << "thin_delta: " << e.what() << "\n";
    return exit_failure;
  } catch (const std::exception &e) {
    std::cerr << "thin_delta: " << inputs[0] << ": " << e.what() << "\n";
    return exit_failure;
  }
}

}  // namespace tools
