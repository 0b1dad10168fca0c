// thin_repair: recover damaged metadata into a new device. The tolerant walk
// (thin::repair_dump, which finds roots by scanning when it must) feeds a
// thin::restore_emitter on the output; the input is only read. Prints what
// was recovered and what was lost (--json for scripts).
#include <iostream>

#include <fmt/format.h>

#include "cli.h"
#include "commands.h"
#include "persistent-data/transaction_manager.h"
#include "thin/repair/repair.h"
#include "thin/restore/restore.h"

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
  bool quiet = false, json = false;
  std::string input, output;
  std::vector<std::string> extra;
  thin::repair_options ro;
  cli::command cmd("thin_repair", repair_usage);
  cmd.flag("-q,--quiet", quiet);
  cmd.flag("--json", json);
  cmd.option("-i,--input", input);
  cmd.option("-o,--output", output);
  cmd.superblock_overrides(ro.overrides);
  cmd.positionals("extra", extra);  // older lvm2 passes a stray empty argument
  cmd.progress_option();
  if (auto rc = cmd.parse(args)) return *rc;

  for (auto &x : extra)
    if (!x.empty()) return cmd.fail(fmt::format("unexpected argument '{}'", x));
  if (input.empty()) return cmd.fail("no input provided (-i)");
  if (output.empty()) return cmd.fail("no output provided (-o)");
  return cmd.run(input, [&] {
    if (same_file(input, output))
      throw usage_error(fmt::format("{}: input and output are the same; repair never writes its input", output));
    auto in = open_metadata(input, {false, true});
    if (looks_like_xml(*in))
      throw usage_error(fmt::format("{}: this looks like XML (thin_dump output), not binary thin-pool metadata: "
                                    "thin_restore turns XML into metadata (thin_restore -i {} -o {})",
                                    input, input, output));
    auto out = open_metadata(output, {true, true});
    thin::repair_report report;
    auto meter = cmd.meter(quiet || json);  // progress on a terminal
    ro.progress = meter.get();
    {
      thin::restore_emitter restorer(*out);
      thin::abandon_unless_committed guard(restorer);
      try {
        thin::repair_dump(*in, ro, restorer, report);
      } catch (const pdata::out_of_metadata_space &e) {
        // The output filled up (or was found too small before anything was
        // written), not the input: name it. The up-front sizing says what
        // the space maps need; an output as large as the input is enough
        // when the input held them (its trees were no more compact).
        const uint64_t in_bytes = in->nr_blocks() * pdata::block_size;
        std::string why, enough;
        if (auto *small = dynamic_cast<const thin::metadata_too_small *>(&e)) {
          why = fmt::format(": {}", small->what());
          if (in->nr_blocks() >= small->blocks_needed())
            enough = fmt::format("; an output as large as the input ({} bytes) is enough", in_bytes);
        } else {
          enough = fmt::format("; an output as large as the input ({} bytes) is enough", in_bytes);
        }
        throw usage_error(fmt::format("{}: the output is too small for the recovered metadata ({} bytes){}{}", output,
                                      out->nr_blocks() * pdata::block_size, why, enough));
      }
    }
    if (json)
      std::cout << report.json();
    else if (!quiet)
      std::cout << report.text();
    return exit_ok;
  });
}

}  // namespace tools
