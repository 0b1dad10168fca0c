// Plumbing thin_metadata_pack and thin_metadata_unpack share: the check that
// keeps them from overwriting metadata without --force.
#pragma once

#include <string>

namespace tools {

// True when `path` exists and starts with a thin, cache or era superblock.
bool holds_metadata(const std::string &path);

}  // namespace tools
