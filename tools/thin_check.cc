// thin_check: validate thin-pool metadata. Parses options into
// thin::check_options, runs thin::check_metadata, maps the result to an exit
// code. Output follows thin_check 0.9.0: pass names and problems on stderr,
// TRANSACTION_ID= and METADATA_FREE_BLOCKS= on stdout; -q prints nothing.
// --clear-needs-check-flag clears the flag after the check that was asked
// for (a full one, or --super-block-only / --skip-mappings as 1.x allows)
// found nothing fatal.
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>

#include <fmt/format.h>

#include "cli.h"
#include "commands.h"
#include "check_reporter.h"
#include "thin/check/check.h"
#include "thin/check/report_json.h"

namespace tools {

namespace {

const char *check_usage =
    "Usage: thin_check [options] {device|file}\n"
    "Options:\n"
    "  {-q|--quiet}\n"
    "  {-h|--help}\n"
    "  {-V|--version}\n"
    "  {-m|--metadata-snap}\n"
    "  {--auto-repair}\n"
    "  {--override-mapping-root} <block>\n"
    "  {--clear-needs-check-flag}\n"
    "  {--ignore-non-fatal-errors}\n"
    "  {--skip-mappings}\n"
    "  {--super-block-only}\n"
    "  {--json}\n";

}  // namespace

int thin_check_main(std::vector<std::string> args) {
  thin::check_options opts;
  bool quiet = false, clear_needs_check = false, ignore_non_fatal = false, auto_repair = false, json = false;
  std::vector<std::string> inputs;
  cli::command cmd("thin_check", check_usage);
  cmd.flag("-q,--quiet", quiet);
  cmd.flag("-m,--metadata-snap", opts.use_metadata_snap);
  cmd.flag("--super-block-only", opts.superblock_only);
  cmd.flag("--skip-mappings", opts.skip_mappings);
  cmd.flag("--ignore-non-fatal-errors", ignore_non_fatal);
  cmd.flag("--clear-needs-check-flag", clear_needs_check);
  cmd.flag("--auto-repair", auto_repair);
  cmd.flag("--json", json);
  cmd.number("--override-mapping-root", opts.override_mapping_root);
  cmd.positionals("input", inputs);
  cmd.progress_option();
  if (auto rc = cmd.parse(args)) return *rc;
  cmd.errors_follow(quiet);

  if (inputs.empty()) return cmd.usage_fail("no input file provided");
  if (inputs.size() > 1) return cmd.fail(fmt::format("only one input may be given (got {})", inputs.size()));
  if (clear_needs_check && (opts.use_metadata_snap || opts.override_mapping_root))
    return cmd.fail("--clear-needs-check-flag clears the flag of the live metadata (not with -m or "
                    "--override-mapping-root)");
  if (auto_repair && (opts.use_metadata_snap || opts.superblock_only || opts.skip_mappings ||
                      opts.override_mapping_root))
    return cmd.fail("--auto-repair needs a full check (not with -m, --super-block-only, --skip-mappings or "
                    "--override-mapping-root)");
  if (auto_repair && ignore_non_fatal)
    return cmd.usage_fail("--auto-repair cannot be combined with --ignore-non-fatal-errors");
  const std::string &path = inputs[0];
  // --json: the problems as one JSON document on stdout (instead of the text
  // on both streams), printed however the check ends.
  thin::json_report json_out;
  struct print_at_exit {
    bool on;
    thin::json_report &r;
    ~print_at_exit() {
      if (on && r.started()) std::cout << r.document() << std::flush;
    }
  } json_at_exit{json, json_out};
  return cmd.run(path, [&] {
    auto io = open_metadata(path, {clear_needs_check || auto_repair, !opts.use_metadata_snap});
    console_reporter rep(quiet || json);
    if (json) rep.json = &json_out;
    auto meter = cmd.meter(quiet || json);  // progress on a terminal
    opts.progress = rep.meter = meter.get();
    if (auto_repair) {
      auto ar = repair_leaks(*io, rep, path, "--auto-repair");
      if (!quiet && (ar.metadata_leaks_fixed || ar.data_leaks_fixed))
        std::cerr << fmt::format("fixed {} leaked metadata block counts and {} leaked data block counts\n",
                                 ar.metadata_leaks_fixed, ar.data_leaks_fixed);
      return exit_ok;
    }
    thin::check_result res = thin::check_metadata(*io, opts, rep);
    if (!res.superblock_ok) {
      if (looks_like_xml(*io))
        throw usage_error(fmt::format("{}: this looks like XML; thin_check only checks binary metadata (thin_restore "
                                      "turns XML into metadata)",
                                      path));
      throw usage_error(fmt::format("{}: {}", path, rep.first_fatal().value_or("superblock is damaged")));
    }
    if (clear_needs_check && !res.fatal && res.non_fatal && res.fully_examined) {
      // As thin_check 1.x does for lvm2's activation call: leaked blocks
      // (counts above the true ones) are repaired in place, then the flag
      // is cleared. Anything worse was refused above (res.fatal).
      console_reporter quiet_rep(true);
      auto ar = repair_leaks(*io, quiet_rep, path, "repairing leaks");
      if (!quiet)
        std::cerr << fmt::format("repaired {} leaked metadata block counts and {} leaked data block counts; "
                                 "cleared needs_check flag\n",
                                 ar.metadata_leaks_fixed, ar.data_leaks_fixed);
      return exit_ok;
    }
    if (ignore_non_fatal ? res.fatal : !res.clean())
      throw usage_error(fmt::format("{}: metadata is damaged{}", path,
                                    res.fatal ? "" : " (non-fatal problems only); --auto-repair repairs leaked "
                                                     "blocks"));
    // Nothing fatal in what was checked (all of it, or the part asked for).
    if (clear_needs_check && thin::clear_needs_check_flag(*io) && !quiet) std::cerr << "cleared needs_check flag\n";
    return exit_ok;
  });
}

}  // namespace tools
