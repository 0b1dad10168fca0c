// Shared plumbing for the command-line tools: opening paths (the only place
// thinkit turns a path into a block device), usage errors, version, exit codes.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "persistent-data/block_io.h"

namespace tools {

// Bad command line or unusable input path: printed as one line, exit 1.
class usage_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

constexpr int exit_ok = 0;
constexpr int exit_failure = 1;  // every error; never 2 (lvm2 reads 2 as "tool missing")

// Printed bare by -V/--version.
const char *version_string();

struct input_options {
  bool writable = false;   // only repair options write to their input
  bool exclusive = true;   // O_EXCL on block devices (not for metadata snapshots)
};

// Opens a metadata file or block device after checking that it exists, is not
// a directory and holds at least one 4 KiB block. Throws usage_error with a
// message that names the path.
std::unique_ptr<pdata::block_io> open_metadata(const std::string &path, const input_options &opts);

// True when the start of the file looks like thin_dump XML rather than
// binary metadata.
bool looks_like_xml(pdata::block_io &io);

// True when both paths name the same file or device (same inode, or the same
// block device number).
bool same_file(const std::string &a, const std::string &b);

// Splits `-m`, `-mN`, `--metadata-snap` and `--metadata-snap=N` out of argv
// (an optional argument must be attached, as with getopt). Returns whether
// the option was present and sets `value` when a block was given.
bool take_optional_metadata_snap(std::vector<std::string> &args, std::string &value);

// Parses a decimal u64 option value; throws usage_error naming the option.
uint64_t parse_u64(const std::string &text, const char *option);

}  // namespace tools
