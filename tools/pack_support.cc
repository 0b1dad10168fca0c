// Plumbing of thin_metadata_pack / thin_metadata_unpack (see pack_support.h).
#include "pack_support.h"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include "persistent-data/block.h"
#include "thin/pack/pack.h"
#include "tool_support.h"

namespace tools {

bool holds_metadata(const std::string &path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  pdata::block_buffer b{};
  const bool yes = ::pread(fd, b.raw(), pdata::block_size, 0) == static_cast<ssize_t>(pdata::block_size) &&
                   thin::pack::is_metadata_superblock(b.raw());
  ::close(fd);
  return yes;
}

namespace {

std::string pack_usage(const std::string &name, const std::string &input_what, const std::string &output_what) {
  return fmt::format(
      "Usage: {} [options]\n"
      "Options:\n"
      "  {{-h|--help}}\n"
      "  {{-i|--input}} <{}>\n"
      "  {{-o|--output}} <{}>\n"
      "  {{-f|--force}}  overwrite an output that holds metadata\n"
      "  {{-V|--version}}\n",
      name, input_what, output_what);
}

}  // namespace

pack_command::pack_command(const std::string &name, const std::string &input_what, const std::string &output_what,
                           std::string input_hint, std::string output_hint)
    : cmd(name, pack_usage(name, input_what, output_what)),
      input_hint_(std::move(input_hint)),
      output_hint_(std::move(output_hint)) {
  cmd.flag("-f,--force", force);
  cmd.option("-i,--input", input);
  cmd.option("-o,--output", output);
}

std::optional<int> pack_command::parse(std::vector<std::string> args) {
  if (auto rc = cmd.parse(std::move(args))) return rc;
  if (input.empty()) return cmd.fail(fmt::format("no input file provided (-i {})", input_hint_));
  if (output.empty()) return cmd.fail(fmt::format("no output file provided (-o {})", output_hint_));
  return std::nullopt;
}

void pack_command::refuse_same_file() const {
  if (same_file(input, output)) throw usage_error(fmt::format("{}: input and output are the same file", output));
}

void pack_command::refuse_to_overwrite_metadata() const {
  if (!force && holds_metadata(output))
    throw usage_error(fmt::format("{}: holds thin-pool metadata; not overwritten (use -f to overwrite)", output));
}

}  // namespace tools
