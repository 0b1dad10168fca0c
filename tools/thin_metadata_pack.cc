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

#include "commands.h"
#include "pack_support.h"
#include "thin/pack/pack.h"
#include "tool_support.h"

namespace tools {

int thin_metadata_pack_main(std::vector<std::string> args) {
  pack_command p("thin_metadata_pack", "metadata device or file", "pack file", "DEVICE", "FILE");
  if (auto rc = p.parse(std::move(args))) return *rc;
  const std::string &input = p.input, &output = p.output;

  return p.cmd.run(input, [&] {
    p.refuse_same_file();
    auto io = open_metadata(input, {false, true});
    if (looks_like_xml(*io))
      throw usage_error(fmt::format("{}: this looks like XML; thin_metadata_pack reads binary metadata", input));
    p.refuse_to_overwrite_metadata();

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
