// thin_repair: recover damaged metadata into a new device. The tolerant walk
// (thin::repair_dump, which finds roots by scanning when it must) feeds a
// thin::restore_emitter on the output; the input is only read. Prints what
// was recovered and what was lost (--json for scripts).
#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "commands.h"
#include "persistent-data/transaction_manager.h"
#include "thin/repair/repair.h"
#include "thin/restore/restore.h"
#include "thin/format/superblock.h"
#include "tool_support.h"

namespace tools {

namespace {
const char *repair_usage =
    "Usage: thin_repair [options] {-i|--input} <damaged metadata> {-o|--output} <new metadata>\n"
    "Options:\n"
    "  {-h|--help}\n"
    "  {-i|--input} <input metadata (device or file)>\n"
    "  {-o|--output} <output metadata (device or file)>\n"
    "  {--transaction-id} <natural>\n"
    "  {--data-block-size} <natural>\n"
    "  {--nr-data-blocks} <natural>\n"
    "  {--json}\n"
    "  {-q|--quiet}\n"
    "  {-V|--version}\n";
}  // namespace

int thin_repair_main(std::vector<std::string> args) {
  bool quiet = false, help = false, version = false, json = false;
  std::string input, output, tid, dbs, ndb;
  std::vector<std::string> extra;
  CLI::App app{"thin_repair"};
  app.set_help_flag();
  app.add_flag("-h,--help", help);
  app.add_flag("-V,--version", version);
  app.add_flag("-q,--quiet", quiet);
  app.add_flag("--json", json);
  app.add_option("-i,--input", input);
  app.add_option("-o,--output", output);
  app.add_option("--transaction-id", tid);
  app.add_option("--data-block-size", dbs);
  app.add_option("--nr-data-blocks", ndb);
  app.add_option("extra", extra);  // older lvm2 passes a stray empty argument
  try {
    std::vector<std::string> rev(args.rbegin(), args.rend() - 1);
    app.parse(rev);
  } catch (const CLI::ParseError &e) {
    std::cerr << "thin_repair: " << e.what() << "\n" << repair_usage;
    return exit_failure;
  }
  if (help) {
    std::cout << repair_usage;
    return exit_ok;
  }
  if (version) {
    std::cout << version_string() << "\n";
    return exit_ok;
  }
  auto fail = [&](const std::string &msg) {
    std::cerr << "thin_repair: " << msg << "\n";
    return exit_failure;
  };
  for (auto &x : extra)
    if (!x.empty()) return fail(fmt::format("unexpected argument '{}'", x));
  if (input.empty()) return fail("no input provided (-i)");
  if (output.empty()) return fail("no output provided (-o)");

  std::unique_ptr<thin::restore_emitter> restorer;
  try {
    thin::repair_options ro;
    if (!tid.empty()) ro.overrides.transaction_id = parse_u64(tid, "--transaction-id");
    if (!dbs.empty()) {
      uint64_t v = parse_u64(dbs, "--data-block-size");
      if (v > UINT32_MAX) throw usage_error("--data-block-size: value too large");
      ro.overrides.data_block_size = static_cast<uint32_t>(v);
    }
    if (!ndb.empty()) ro.overrides.nr_data_blocks = parse_u64(ndb, "--nr-data-blocks");
    if (same_file(input, output))
      throw usage_error(fmt::format("{}: input and output are the same; repair never writes its input", output));
    auto in = open_metadata(input, {false, true});
    if (looks_like_xml(*in))
      throw usage_error(fmt::format("{}: this looks like XML (thin_dump output), not binary thin-pool metadata: "
                                    "thin_restore turns XML into metadata (thin_restore -i {} -o {})",
                                    input, input, output));
    auto out = open_metadata(output, {true, true});
    restorer = std::make_unique<thin::restore_emitter>(*out);
    thin::repair_report report;
    try {
      thin::repair_dump(*in, ro, *restorer, report);
    } catch (const pdata::out_of_metadata_space &) {
      try {
        restorer->abandon();
      } catch (...) {
      }
      // The output filled up, not the input: name it, with a size known to
      // be enough (the input held all of this, in trees no more compact).
      throw usage_error(fmt::format("{}: the output is too small for the recovered metadata ({} bytes); an output "
                                    "as large as the input ({} bytes) is enough",
                                    output, out->nr_blocks() * pdata::block_size,
                                    in->nr_blocks() * pdata::block_size));
    } catch (...) {
      try {
        restorer->abandon();
      } catch (...) {
      }
      throw;
    }
    if (json)
      std::cout << report.json();
    else if (!quiet)
      std::cout << report.text();
    return exit_ok;
  } catch (const usage_error &e) {
    return fail(e.what());
  } catch (const std::exception &e) {
    return fail(fmt::format("{}: {}", input, e.what()));
  }
}

}  // namespace tools
