// Plumbing thin_metadata_pack and thin_metadata_unpack share: their common
// command line (-i, -o, -f and the usage text around them) and the checks
// that keep them from overwriting metadata without --force.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cli.h"

namespace tools {

// True when `path` exists and starts with a thin, cache or era superblock.
bool holds_metadata(const std::string &path);

// The command line of both tools: -i INPUT, -o OUTPUT, -f, plus -h and -V.
// `input_what` / `output_what` name the files in the usage text and
// `input_hint` / `output_hint` in the "no ... provided" errors.
class pack_command {
 public:
  pack_command(const std::string &name, const std::string &input_what, const std::string &output_what,
               std::string input_hint, std::string output_hint);

  // Parses args; returns the exit code when the tool must end now (help,
  // version, a command-line mistake, a missing -i or -o).
  std::optional<int> parse(std::vector<std::string> args);

  // Throws usage_error when input and output are the same file.
  void refuse_same_file() const;
  // Throws usage_error when the output holds metadata and -f was not given.
  void refuse_to_overwrite_metadata() const;

  cli::command cmd;
  std::string input, output;
  bool force = false;

 private:
  std::string input_hint_, output_hint_;
};

}  // namespace tools
