// thin_dump: print thin-pool metadata as XML or human-readable text. Parses
// options into thin::dump_options, runs thin::dump_metadata (or, with
// --repair, thin::repair_dump) through the chosen emitter, maps the result to
// an exit code.
#include <iostream>

#include <fmt/format.h>

#include "cli.h"
#include "commands.h"
#include "thin/dump/dump.h"
#include "thin/format/superblock.h"
#include "thin/repair/repair.h"

namespace tools {

namespace {

const char *dump_usage =
    "Usage: thin_dump [options] {device|file}\n"
    "Options:\n"
    "  {-h|--help}\n"
    "  {-f|--format} {xml|human_readable}\n"
    "  {-r|--repair}\n"
    "  {-m|--metadata-snap} [block#]\n"
    "  {-o|--output} <xml file>\n"
    "  {--dev-id} <dev-id>\n"
    "  {--skip-mappings}\n"
    "  {--transaction-id} <natural>\n"
    "  {--data-block-size} <natural>\n"
    "  {--nr-data-blocks} <natural>\n"
    "  {-q|--quiet}\n"
    "  {-V|--version}\n";

}  // namespace

int thin_dump_main(std::vector<std::string> args) {
  thin::dump_options opts;
  thin::superblock_overrides overrides;
  bool quiet = false, repair = false;
  std::string format = "xml", output;
  std::vector<uint64_t> dev_ids;
  std::vector<std::string> inputs;
  cli::command cmd("thin_dump", dump_usage);
  cmd.flag("-q,--quiet", quiet);
  cmd.flag("-r,--repair", repair);
  cmd.metadata_snap(opts.use_metadata_snap, opts.metadata_snap_location);
  cmd.option("-f,--format", format);
  cmd.option("-o,--output", output);
  cmd.number("--dev-id", dev_ids);
  cmd.flag("--skip-mappings", opts.skip_mappings);
  cmd.superblock_overrides(overrides);
  cmd.positionals("input", inputs);
  cmd.progress_option();
  if (auto rc = cmd.parse(args)) return *rc;

  if (inputs.empty()) return cmd.usage_fail("no input file provided");
  if (inputs.size() > 1) return cmd.fail(fmt::format("only one input may be given (got {})", inputs.size()));
  if (format != "xml" && format != "human_readable")
    return cmd.fail(fmt::format("unknown format '{}' (xml or human_readable)", format));
  opts.dev_ids.insert(dev_ids.begin(), dev_ids.end());
  const std::string &path = inputs[0];
  return cmd.run(path, [&] {
    if (!output.empty() && output != "-" && same_file(path, output))
      throw usage_error(fmt::format("{}: output and input are the same file; refusing to overwrite the metadata",
                                    output));
    auto io = open_metadata(path, {false, !opts.use_metadata_snap});
    text_output out(output);
    std::unique_ptr<thin::emitter> inner = format == "xml" ? thin::make_xml_emitter(out.sink())
                                                           : thin::make_human_readable_emitter(out.sink());
    auto e = thin::make_override_emitter(*inner, overrides);
    // Progress on a terminal, when the dump goes to a file (not to the terminal).
    auto meter = cmd.meter(quiet || output.empty() || output == "-");
    opts.progress = meter.get();
    try {
      if (repair) {
        if (opts.use_metadata_snap) throw usage_error("--repair cannot be combined with --metadata-snap");
        thin::repair_options ro;
        ro.overrides = overrides;
        ro.progress = meter.get();
        thin::repair_report report;
        thin::repair_dump(*io, ro, *e, report);
        meter.reset();
        if (!quiet) std::cerr << report.text();
      } else {
        thin::dump_metadata(*io, opts, *e);
      }
      out.finish();
    } catch (const thin::metadata_error &) {
      out.abandon();
      refuse_xml(*io, path, "thin_dump");
      throw;
    }
    return exit_ok;
  });
}

}  // namespace tools
