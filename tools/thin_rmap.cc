// thin_rmap: which thin blocks map the given data blocks, printed as
// thin_rmap 0.9.0 does. Parses the regions with thin::parse_data_region,
// runs thin::rmap_metadata, maps the result to an exit code.
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "commands.h"
#include "thin/format/superblock.h"
#include "thin/rmap/rmap.h"
#include "tool_support.h"

namespace tools {

namespace {

// 0.9.0's usage text.
const char *rmap_usage =
    "Usage: thin_rmap [options] {device|file}\n"
    "Options:\n"
    "  {-h|--help}\n"
    "  {-V|--version}\n"
    "  {--region <block range>}*\n"
    "Where:\n"
    "  <block range> is of the form <begin>..<one-past-the-end>\n"
    "  for example 5..45 denotes blocks 5 to 44 inclusive, but not block 45\n";

}  // namespace

int thin_rmap_main(std::vector<std::string> args) {
  bool help = false, version = false;
  std::vector<std::string> region_args, inputs;

  CLI::App app{"thin_rmap"};
  app.set_help_flag();
  app.add_flag("-h,--help", help);
  app.add_flag("-V,--version", version);
  app.add_option("--region", region_args)->allow_extra_args(false);
  app.add_option("input", inputs);

  try {
    std::vector<std::string> rev(args.rbegin(), args.rend() - 1);
    app.parse(rev);
  } catch (const CLI::ParseError &e) {
    std::cerr << "thin_rmap: " << e.what() << "\n" << rmap_usage;
    return exit_failure;
  }
  if (help) {
    std::cout << rmap_usage;
    return exit_ok;
  }
  if (version) {
    std::cout << version_string() << "\n";
    return exit_ok;
  }

  std::vector<thin::data_region> regions;
  for (auto &r : region_args) {
    try {
      regions.push_back(thin::parse_data_region(r));
    } catch (const std::invalid_argument &e) {
      std::cerr << "thin_rmap: --region " << r << ": " << e.what() << "\n";
      return exit_failure;
    }
  }
  if (inputs.empty()) {
    std::cerr << "thin_rmap: no input file provided\n" << rmap_usage;
    return exit_failure;
  }
  if (regions.empty()) {
    std::cerr << "thin_rmap: no regions provided\n" << rmap_usage;
    return exit_failure;
  }

  try {
    if (inputs.size() > 1) throw usage_error(fmt::format("only one input may be given (got {})", inputs.size()));
    const std::string &path = inputs[0];
    auto io = open_metadata(path, {false, true});
    thin::fd_sink sink(STDOUT_FILENO);
    try {
      thin::rmap_metadata(*io, regions, sink);
    } catch (const thin::metadata_error &err) {
      if (looks_like_xml(*io))
        throw usage_error(fmt::format("{}: this looks like XML; thin_rmap reads binary metadata", path));
      throw usage_error(fmt::format("{}: {}", path, err.what()));
    }
    return exit_ok;
  } catch (const thin::broken_pipe &) {
    return exit_ok;
  } catch (const usage_error &e) {
    std::cerr << "thin_rmap: " << e.what() << "\n";
    return exit_failure;
  } catch (const std::exception &e) {
    std::cerr << "thin_rmap: " << inputs[0] << ": " << e.what() << "\n";
    return exit_failure;
  }
}

}  // namespace tools
