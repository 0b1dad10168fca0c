// thin_ls: list the thin devices of a pool's metadata with their mapped,
// exclusive and shared sizes, as thin_ls 0.9.0 does. Parses options into
// thin::ls_options, runs thin::ls_metadata, maps the result to an exit code.
#include <fmt/format.h>
#include <unistd.h>

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
  bool no_headers = false;
  std::string format;
  std::vector<std::string> inputs;
  cli::command cmd("thin_ls", ls_usage());
  cmd.metadata_snap(opts.use_metadata_snap, opts.metadata_snap_location);
  cmd.flag("--no-headers", no_headers);
  // The last occurrence wins, as with getopt.
  auto *format_opt = cmd.option("-o,--format", format)->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  cmd.positionals("input", inputs);
  cmd.progress_option();
  if (auto rc = cmd.parse(args)) return *rc;

  if (inputs.empty()) return cmd.usage_fail("no input file provided");
  if (inputs.size() > 1) return cmd.fail(fmt::format("only one input may be given (got {})", inputs.size()));
  if (format_opt->count()) {
    try {
      opts.fields = thin::parse_ls_fields(format);
    } catch (const pdata::bad_input_error &e) {
      return cmd.fail(fmt::format("-o {}: {}", format, e.what()));
    }
  }
  opts.headers = !no_headers;
  const std::string &path = inputs[0];
  return cmd.run(path, [&] {
    auto io = open_metadata(path, {false, !opts.use_metadata_snap});
    thin::fd_sink sink(STDOUT_FILENO);
    auto meter = cmd.meter(false, false);  // progress on a terminal, erased before the table
    opts.progress = meter.get();
    try {
      thin::ls_metadata(*io, opts, sink);
    } catch (const thin::metadata_error &) {
      refuse_xml(*io, path, "thin_ls");
      throw;
    }
    return exit_ok;
  });
}

}  // namespace tools
