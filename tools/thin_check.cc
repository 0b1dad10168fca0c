// thin_check: validate thin-pool metadata. Parses options into
// thin::check_options, runs thin::check_metadata, maps the result to an exit
// code. Output follows thin_check 0.9.0: pass names and problems on stderr,
// TRANSACTION_ID= and METADATA_FREE_BLOCKS= on stdout; -q prints nothing.
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "commands.h"
#include "thin/check/check.h"
#include "thin/check/report_json.h"
#include "thin/format/superblock.h"
#include "tool_support.h"

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

class console_reporter : public thin::check_reporter {
 public:
  explicit console_reporter(bool quiet) : quiet_(quiet) {}
  thin::json_report *json = nullptr;  // --json: also collects everything here
  void stage(const char *name) override {
    if (json) json->stage(name);
    if (quiet_) return;
    std::fflush(stdout);
    std::fprintf(stderr, "%s\n", name);
  }
  void info(uint64_t tid, uint64_t free_blocks) override {
    if (quiet_) return;
    std::fflush(stderr);
    std::printf("TRANSACTION_ID=%llu\nMETADATA_FREE_BLOCKS=%llu\n", static_cast<unsigned long long>(tid),
                static_cast<unsigned long long>(free_blocks));
    std::fflush(stdout);
  }
  void visit(const thin::damage &d) override {
    if (json) json->visit(d);
    if (!first_fatal_ && d.fatal) first_fatal_ = d.what;
    // Stale space-map hints are not problems (0.9.0 and 1.x stay silent on
    // them too); --auto-repair rewrites them.
    if (quiet_ || d.hint) return;
    std::fprintf(stderr, "  %s%s\n", d.fatal ? "" : "(non-fatal) ", d.what.c_str());
  }
  const std::optional<std::string> &first_fatal() const { return first_fatal_; }

 private:
  bool quiet_;
  std::optional<std::string> first_fatal_;
};

// Repairs leaks in place (thin::auto_repair, which re-checks first), then
// applies the e2fsck rule: the result must check clean. Returns why it
// failed, or nothing; `ar` says what was fixed.
std::optional<std::string> repair_leaks(pdata::block_io &io, thin::check_reporter &rep, const std::string &path,
                                        const char *after, thin::auto_repair_result &ar) {
  ar = thin::auto_repair(io, rep);
  if (!ar.repaired) return fmt::format("{}: not repaired: {}", path, ar.refused);
  console_reporter quiet_rep(true);
  if (!thin::check_metadata(io, {}, quiet_rep).clean()) return fmt::format("{}: still damaged after {}", path, after);
  return std::nullopt;
}

}  // namespace

int thin_check_main(std::vector<std::string> args) {
  thin::check_options opts;
  bool quiet = false, clear_needs_check = false, ignore_non_fatal = false, help = false, version = false,
       auto_repair = false, json = false;
  std::string override_root;
  std::vector<std::string> inputs;

  CLI::App app{"thin_check"};
  app.set_help_flag();
  app.allow_extras(false);
  app.add_flag("-h,--help", help);
  app.add_flag("-V,--version", version);
  app.add_flag("-q,--quiet", quiet);
  app.add_flag("-m,--metadata-snap", opts.use_metadata_snap);
  app.add_flag("--super-block-only", opts.superblock_only);
  app.add_flag("--skip-mappings", opts.skip_mappings);
  app.add_flag("--ignore-non-fatal-errors", ignore_non_fatal);
  app.add_flag("--clear-needs-check-flag", clear_needs_check);
  app.add_flag("--auto-repair", auto_repair);
  app.add_option("--override-mapping-root", override_root);
  app.add_flag("--json", json);
  app.add_option("input", inputs);

  try {
    std::vector<std::string> rev(args.rbegin(), args.rend() - 1);
    app.parse(rev);
  } catch (const CLI::ParseError &e) {
    std::cerr << "thin_check: " << e.what() << "\n" << check_usage;
    return exit_failure;
  }
  if (help) {
    std::cout << check_usage;
    return exit_ok;
  }
  if (version) {
    std::cout << version_string() << "\n";
    return exit_ok;
  }
  auto fail = [&](const std::string &msg) {
    if (!quiet) std::cerr << "thin_check: " << msg << "\n";
    return exit_failure;
  };
  if (inputs.empty()) {
    if (!quiet) std::cerr << "thin_check: no input file provided\n" << check_usage;
    return exit_failure;
  }
  if (inputs.size() > 1) return fail(fmt::format("only one input may be given (got {})", inputs.size()));
  if (!override_root.empty()) opts.override_mapping_root = parse_u64(override_root, "--override-mapping-root");
  if (clear_needs_check && (opts.use_metadata_snap || opts.superblock_only || opts.skip_mappings ||
                            opts.override_mapping_root))
    return fail("--clear-needs-check-flag needs a full check (not with -m, --super-block-only, --skip-mappings "
                "or --override-mapping-root)");
  if (auto_repair && (opts.use_metadata_snap || opts.superblock_only || opts.skip_mappings ||
                      opts.override_mapping_root))
    return fail("--auto-repair needs a full check (not with -m, --super-block-only, --skip-mappings or "
                "--override-mapping-root)");
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
  if (auto_repair) {
    try {
      auto io = open_metadata(path, {true, true});
      console_reporter rep(quiet || json);
      if (json) rep.json = &json_out;
      thin::auto_repair_result ar;
      if (auto err = repair_leaks(*io, rep, path, "--auto-repair", ar)) return fail(*err);
      if (!quiet && (ar.metadata_leaks_fixed || ar.data_leaks_fixed))
        std::cerr << fmt::format("fixed {} leaked metadata block counts and {} leaked data block counts\n",
                                 ar.metadata_leaks_fixed, ar.data_leaks_fixed);
      return exit_ok;
    } catch (const usage_error &e) {
      return fail(e.what());
    } catch (const std::exception &e) {
      return fail(fmt::format("{}: {}", path, e.what()));
    }
  }

  try {
    auto io = open_metadata(path, {clear_needs_check, !opts.use_metadata_snap});
    console_reporter rep(quiet || json);
    if (json) rep.json = &json_out;
    thin::check_result res = thin::check_metadata(*io, opts, rep);
    if (!res.superblock_ok) {
      if (looks_like_xml(*io))
        return fail(fmt::format("{}: this looks like XML; thin_check only checks binary metadata (thin_restore "
                                "turns XML into metadata)",
                                path));
      return fail(fmt::format("{}: {}", path, rep.first_fatal().value_or("superblock is damaged")));
    }
    if (clear_needs_check && !res.fatal && res.non_fatal && res.fully_examined) {
      // As thin_check 1.x does for lvm2's activation call: leaked blocks
      // (counts above the true ones) are repaired in place, then the flag
      // is cleared. Anything worse was refused above (res.fatal).
      console_reporter quiet_rep(true);
      thin::auto_repair_result ar;
      if (auto err = repair_leaks(*io, quiet_rep, path, "repairing leaks", ar)) return fail(*err);
      if (!quiet)
        std::cerr << fmt::format("repaired {} leaked metadata block counts and {} leaked data block counts; "
                                 "cleared needs_check flag\n",
                                 ar.metadata_leaks_fixed, ar.data_leaks_fixed);
      return exit_ok;
    }
    bool ok = ignore_non_fatal ? !res.fatal : res.clean();
    if (!ok)
      return fail(fmt::format("{}: metadata is damaged{}", path,
                              res.fatal ? "" : " (non-fatal problems only); --auto-repair repairs leaked blocks"));
    if (clear_needs_check) {
      if (!res.fully_examined) return fail(fmt::format("{}: metadata has not been fully examined", path));
      if (!res.clean()) return fail(fmt::format("{}: not clearing the needs_check flag: problems were found", path));
      if (thin::clear_needs_check_flag(*io) && !quiet) std::cerr << "cleared needs_check flag\n";
    }
    return exit_ok;
  } catch (const usage_error &e) {
    return fail(e.what());
  } catch (const std::exception &e) {
    return fail(fmt::format("{}: {}", path, e.what()));
  }
}

}  // namespace tools
