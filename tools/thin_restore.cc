// thin_restore: turn thin_dump XML back into metadata. Parses options, feeds
// the XML (a file, "-" for standard input, gzip accepted) through
// thin::parse_xml into a thin::restore_emitter on the output, maps the result
// to an exit code. On failure after the output was touched its superblock is
// left zeroed (thin::abandon_unless_committed); errors found before that
// leave the output untouched.
#include <iostream>

#include <fmt/format.h>

#include "cli.h"
#include "commands.h"
#include "persistent-data/transaction_manager.h"
#include "thin/ir/xml_parser.h"
#include "thin/restore/restore.h"

namespace tools {

namespace {

const char *restore_usage =
    "Usage: thin_restore [options]\n"
    "Options:\n"
    "  {-h|--help}\n"
    "  {-i|--input} <input xml file, or - for standard input; gzip accepted>\n"
    "  {-o|--output} <output device or file>\n"
    "  {--transaction-id} <natural>\n"
    "  {--data-block-size} <natural>\n"
    "  {--nr-data-blocks} <natural>\n"
    "  {-q|--quiet}\n"
    "  {-V|--version}\n";

// The message for an output the metadata did not fit in, with the size it
// needs: known up front (the space maps alone did not fit), or found by
// reading the input again when it is a file.
std::string too_small(const std::string &input, const std::string &output, uint64_t blocks,
                      const thin::xml_parse_options &po, std::optional<uint64_t> need = std::nullopt) {
  std::string msg = fmt::format("{}: output too small: the metadata does not fit in its {} blocks ({} KiB)", output,
                                blocks, blocks * pdata::block_size / 1024);
  if (!need && input != "-") {
    text_input again(input);
    thin::xml_parse_options silent = po;
    silent.progress = nullptr;
    need = thin::metadata_blocks_needed(again.stream(), silent);
  }
  if (need) msg += fmt::format("; it needs at least {} blocks ({} KiB)", *need, *need * pdata::block_size / 1024);
  return msg;
}

}  // namespace

int thin_restore_main(std::vector<std::string> args) {
  bool quiet = false;
  std::string input, output;
  thin::xml_parse_options po;
  cli::command cmd("thin_restore", restore_usage);
  cmd.flag("-q,--quiet", quiet);
  cmd.option("-i,--input", input);
  cmd.option("-o,--output", output);
  cmd.superblock_overrides(po.overrides);
  cmd.progress_option();
  if (auto rc = cmd.parse(args)) return *rc;

  if (input.empty()) return cmd.fail("no input file provided (-i FILE, or -i - for standard input)");
  if (output.empty()) return cmd.fail("no output file provided (-o DEVICE)");
  return cmd.run(output, [&] {
    if (input != "-" && same_file(input, output))
      throw usage_error(fmt::format("{}: input and output are the same file", output));
    text_input in(input);
    auto io = open_metadata(output, {true, true});
    auto meter = cmd.meter(quiet);  // progress on a terminal: bytes of XML read
    po.progress = meter.get();
    po.input_bytes = in.size();
    try {
      thin::restore_emitter restorer(*io);
      thin::abandon_unless_committed guard(restorer, [&](const std::string &why) {
        if (meter) meter->erase();
        std::cerr << "thin_restore: " << output << ": could not zero the superblock after the failure: " << why
                  << "\n";
      });
      thin::parse_xml(in.stream(), restorer, po);
      if (!restorer.committed()) throw usage_error(fmt::format("{}: no <superblock> in the input", input));
    } catch (const thin::xml_error &e) {
      try {
        std::rethrow_if_nested(e);
      } catch (const thin::metadata_too_small &t) {
        throw usage_error(too_small(input, output, io->nr_blocks(), po, t.blocks_needed()));
      } catch (const pdata::out_of_metadata_space &) {
        throw usage_error(too_small(input, output, io->nr_blocks(), po));
      } catch (const thin::metadata_error &) {
        if (io->nr_blocks() < 16) throw usage_error(too_small(input, output, io->nr_blocks(), po));
      } catch (...) {
      }
      throw usage_error(fmt::format("{}: {}", input == "-" ? "<stdin>" : input, e.what()));
    }
    return exit_ok;
  });
}

}  // namespace tools
