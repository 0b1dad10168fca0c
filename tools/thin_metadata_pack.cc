// thin_metadata_pack: write a compressed pack of a metadata device's blocks
// in thin-provisioning-tools 1.x's pack format (1.x's thin_metadata_unpack
// reads it). Parses options, runs thin::pack::pack_metadata, maps the result
// to an exit code.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "commands.h"
#include "thin/pack/pack.h"
#include "tool_support.h"

namespace tools {

namespace {

const char *pack_usage =
    "Usage: thin_metadata_pack [options]\n"
    "Options:\n"
    "  {-h|--help}\n"
    "  {-i|--input} <metadata device or file>\n"
    "  {-o|--output} <pack file>\n"
    "  {-f|--force}  overwrite an output that holds metadata\n"
    "  {-V|--version}\n";

// True when `path` exists and starts with a metadata superblock.
bool holds_metadata(const std::string &path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  pdata::block_buffer b{};
  const bool yes = ::pread(fd, b.raw(), pdata::block_size, 0) == static_cast<ssize_t>(pdata::block_size) &&
                   thin::pack::is_metadata_superblock(b.raw());
  ::close(fd);
  return yes;
}

}  // namespace

int thin_metadata_pack_main(std::vector<std::string> args) {
  bool help = false, version = false, force = false;
  std::string input, output;

  CLI::App app{"thin_metadata_pack"};
  app.set_help_flag();
  app.add_flag("-h,--help", help);
  app.add_flag("-V,--version", version);
  app.add_flag("-f,--force", force);
  app.add_option("-i,--input", input);
  app.add_option("-o,--output", output);

  try {
    std::vector<std::string> rev(args.rbegin(), args.rend() - 1);
    app.parse(rev);
  } catch (const CLI::ParseError &e) {
    std::cerr << "thin_metadata_pack: " << e.what() << "\n" << pack_usage;
    return exit_failure;
  }
  if (help) {
    std::cout << pack_usage;
    return exit_ok;
  }
  if (version) {
    std::cout << version_string() << "\n";
    return exit_ok;
  }
  auto fail = [](const std::string &msg) {
    std::cerr << "thin_metadata_pack: " << msg << "\n";
    return exit_failure;
  };
  if (input.empty()) return fail("no input file provided (-i DEVICE)");
  if (output.empty()) return fail("no output file provided (-o FILE)");

  try {
    if (same_file(input, output)) throw usage_error(fmt::format("{}: input and output are the same file", output));
    auto io = open_metadata(input, {false, true});
    if (looks_like_xml(*io))
      throw usage_error(fmt::format("{}: this looks like XML; thin_metadata_pack reads binary metadata", input));
    if (!force && holds_metadata(output))
      throw usage_error(fmt::format("{}: holds thin-pool metadata; not overwritten (use -f to overwrite)", output));

    std::ofstream out(output, std::ios::binary | std::ios::trunc);
    if (!out) throw usage_error(fmt::format("{}: cannot open: {}", output, std::strerror(errno)));
    out.exceptions(std::ios::badbit | std::ios::failbit);
    try {
      thin::pack::pack_metadata(*io, out);
      out.close();
    } catch (const std::ios_base::failure &) {
      throw usage_error(fmt::format("{}: write failed: {}", output, std::strerror(errno)));
    }
    // Durable before we report success.
    int fd = ::open(output.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::fsync(fd) != 0) {
      const int e = errno;
      if (fd >= 0) ::close(fd);
      throw usage_error(fmt::format("{}: fsync failed: {}", output, std::strerror(e)));
    }
    ::close(fd);
    return exit_ok;
  } catch (const usage_error &e) {
    return fail(e.what());
  } catch (const std::exception &e) {
    return fail(fmt::format("{}: {}", input, e.what()));
  }
}

}  // namespace tools
