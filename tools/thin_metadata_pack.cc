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

#include <fmt/format.h>

#include "cli.h"
#include "commands.h"
#include "pack_support.h"
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

}  // namespace

int thin_metadata_pack_main(std::vector<std::string> args) {
  bool force = false;
  std::string input, output;
  cli::command cmd("thin_metadata_pack", pack_usage);
  cmd.flag("-f,--force", force);
  cmd.option("-i,--input", input);
  cmd.option("-o,--output", output);
  if (auto rc = cmd.parse(args)) return *rc;
  if (input.empty()) return cmd.fail("no input file provided (-i DEVICE)");
  if (output.empty()) return cmd.fail("no output file provided (-o FILE)");

  return cmd.run(input, [&] {
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
  });
}

}  // namespace tools
