// thin_ls: list the thin devices of a pool's metadata with their mapped,
// exclusive and shared sizes, as thin_ls 0.9.0 does. Parses options into
// thin::ls_options, runs thin::ls_metadata, maps the result to an exit code.
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "cli.h"
#include "commands.h"
#include "thin/format/superblock.h"
#include "thin/ls/ls.h"
#include "tool_support.h"

namespace tools {

namespace {

// 0.9.0's usage text, with the field list.
std::string ls_usage() {
  std::string s =
      "Usage: thin_ls [options] {metadata device}\n"
      "Options:\n"
      "  {-h|--help}\n"
      "  {-m|--metadata-snap}\n"
      "  {--no-headers}\n"
      "  {-o|--format <fields>}\n"
      "  {-V|--version}\n\n"
      "where <fields> is a comma separated list from:\n";
  for (auto &f : thin::ls_field_names()) s += fmt::format("  {}\n", f.second);
  return s;
}

}  // namespace

int thin_ls_main(std::vector<std::string> args) {
  thin::ls_options opts;
  bool help = false, version = false, no_headers = false;
  std::string format, snap_value;
  std::vector<std::string> inputs;

  const bool snap = take_optional_metadata_snap(args, snap_value);

  CLI::App app{"thin_ls"};
  app.set_help_flag();
  app.add_flag("-h,--help", help);
  app.add_flag("-V,--version", version);
  app.add_flag("--no-headers", no_headers);
  // The last occurrence wins, as with getopt.
  app.add_option("-o,--format", format)->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("input", inputs);

  try {
    std::vector<std::string> rev(args.rbegin(), args.rend() - 1);
    app.parse(rev);
  } catch (const CLI::ParseError &e) {
    std::cerr << "thin_ls: " << e.what() << "\n" << ls_usage();
    return exit_failure;
  }
  if (help) {
    std::cout << ls_usage();
    return exit_ok;
  }
  if (version) {
    std::cout << version_string() << "\n";
    return exit_ok;
  }
  if (inputs.empty()) {
    std::cerr << "thin_ls: no input file provided\n" << ls_usage();
    return exit_failure;
  }

  try {
    if (inputs.size() > 1) throw usage_error(fmt::format("only one input may be given (got {})", inputs.size()));
    if (app.count("--format")) {
      try {
        opts.fields = thin::parse_ls_fields(format);
      } catch (const std::invalid_argument &e) {
        throw usage_error(fmt::format("-o {}: {}", format, e.what()));
      }
    }
    opts.headers = !no_headers;
    opts.use_metadata_snap = snap;
    if (!snap_value.empty()) opts.metadata_snap_location = cli::parse_number("--metadata-snap", snap_value);

    const std::string &path = inputs[0];
    auto io = open_metadata(path, {false, !snap});
    thin::fd_sink sink(STDOUT_FILENO);
    try {
      thin::ls_metadata(*io, opts, sink);
    } catch (const thin::metadata_error &err) {
      if (looks_like_xml(*io))
        throw usage_error(fmt::format("{}: this looks like XML; thin_ls reads binary metadata", path));
      throw usage_error(fmt::format("{}: {}", path, err.what()));
    }
    return exit_ok;
  } catch (const thin::broken_pipe &) {
    return exit_ok;  // the reader went away (thin_ls | head): end quietly
  } catch (const usage_error &e) {
    std::cerr << "thin_ls: " << e.what() << "\n";
    return exit_failure;
  } catch (const std::exception &e) {
    std::cerr << "thin_ls: " << inputs[0] << ": " << e.what() << "\n";
    return exit_failure;
  }
}

}  // namespace tools
