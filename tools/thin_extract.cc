// thin_extract: write the contents of thin devices, read offline from a
// pool's data device through its metadata (binary, even damaged, or thin_dump
// XML), to files or block devices. Parses options into thin::extract_options,
// opens the paths, runs thin::extract_from_metadata / extract_from_xml, prints
// what was lost, maps the result to an exit code.
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>

#include <fmt/format.h>

#include "cli.h"
#include "commands.h"
#include "extract_support.h"
#include "persistent-data/errors.h"
#include "thin/extract/extract.h"
#include "thin/format/superblock.h"
#include "thin/ir/xml_parser.h"
#include "tool_support.h"

namespace tools {

namespace {

const char *extract_usage =
    "Usage: thin_extract [options] --data-dev {device|file} {--dev-id <id> | --all} -o {file|device|dir} "
    "<metadata device or file>\n"
    "Options:\n"
    "  {--data-dev} <the pool's data device or file>\n"
    "  {--dev-id} <thin device id>\n"
    "  {--all}                 every device, to <dir>/<dev id>\n"
    "  {-o|--output} <file or block device; a directory with --all>\n"
    "  {--size} <bytes>        default: the end of the last mapped block\n"
    "  {--xml}                 the metadata is thin_dump XML\n"
    "  {-m|--metadata-snap} [block#]\n"
    "  {-h|--help}\n"
    "  {-V|--version}\n";

}  // namespace

int thin_extract_main(std::vector<std::string> args) {
  thin::extract_options opts;
  bool all = false, xml = false;
  std::string data_path, output;
  std::optional<uint64_t> dev_id, size;
  std::vector<std::string> inputs;
  cli::command cmd("thin_extract", extract_usage);
  cmd.metadata_snap(opts.use_metadata_snap, opts.metadata_snap_location);
  // The last occurrence wins, as with getopt.
  constexpr auto last = CLI::MultiOptionPolicy::TakeLast;
  cmd.option("--data-dev", data_path)->multi_option_policy(last);
  cmd.number("--dev-id", dev_id)->multi_option_policy(last);
  cmd.flag("--all", all);
  cmd.option("-o,--output", output)->multi_option_policy(last);
  cmd.number("--size", size)->multi_option_policy(last);
  cmd.flag("--xml", xml);
  cmd.positionals("input", inputs);
  cmd.progress_option();
  if (auto rc = cmd.parse(args)) return *rc;

  const bool snap = opts.use_metadata_snap;
  if (inputs.empty()) return cmd.usage_fail("no metadata given");
  if (inputs.size() > 1)
    return cmd.usage_fail(fmt::format("only one metadata input may be given (got {})", inputs.size()));
  if (data_path.empty()) return cmd.usage_fail("no data device given (--data-dev)");
  if (output.empty()) return cmd.usage_fail("no output given (-o)");
  if (all == dev_id.has_value()) return cmd.usage_fail("give exactly one of --dev-id and --all");
  if (xml && snap) return cmd.usage_fail("--metadata-snap reads binary metadata; it cannot be used with --xml");
  if (dev_id) opts.dev_id = *dev_id;
  opts.size = size;

  const std::string &meta_path = inputs[0];
  return cmd.run("", [&] {
    if (same_file(data_path, meta_path))
      throw usage_error(fmt::format("{}: the data device and the metadata are the same file", data_path));
    if (all) {
      struct stat st;
      if (::stat(output.c_str(), &st) != 0 && ::mkdir(output.c_str(), 0700) != 0)
        throw usage_error(fmt::format("{}: cannot create the directory: {}", output, std::strerror(errno)));
      if (::stat(output.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        throw usage_error(fmt::format("{}: not a directory (--all writes one file per device into it)", output));
    }

    auto data = open_data_device(data_path, !snap);
    thin::open_volume open = [&](uint64_t id) {
      return open_output_volume(all ? fmt::format("{}/{}", output, id) : output, data_path, meta_path);
    };

    thin::extract_report report;
    auto meter = cmd.meter(false);  // progress on a terminal
    opts.progress = meter.get();
    if (xml) {
      std::ifstream in(meta_path, std::ios::binary);
      if (!in) throw usage_error(fmt::format("{}: cannot open: {}", meta_path, std::strerror(errno)));
      try {
        report = thin::extract_from_xml(in, *data, opts, open);
      } catch (const thin::xml_error &e) {
        try {
          std::rethrow_if_nested(e);
        } catch (const std::exception &inner) {
          throw usage_error(inner.what());
        }
        throw usage_error(fmt::format("{}: {}", meta_path, e.what()));
      }
    } else {
      if (file_looks_like_xml(meta_path))
        throw usage_error(fmt::format("{}: this looks like thin_dump XML; give --xml", meta_path));
      try {
        auto io = open_metadata(meta_path, {false, !snap});
        report = thin::extract_from_metadata(*io, *data, opts, open);
      } catch (const thin::metadata_error &e) {
        throw usage_error(fmt::format("{}: {}", meta_path, e.what()));
      } catch (const pdata::io_error &e) {
        throw usage_error(fmt::format("{}: {}", meta_path, e.what()));
      }
    }

    for (auto &d : report.devices)
      if (d.beyond_size_blocks)
        std::cerr << fmt::format("thin_extract: device {}: {} mapped blocks lie at or beyond --size; not written\n",
                                 d.dev_id, d.beyond_size_blocks);
    for (auto &line : report.lost_lines()) std::cerr << "thin_extract: " << line << "\n";
    return report.lost.empty() ? exit_ok : exit_failure;
  });
}

}  // namespace tools
