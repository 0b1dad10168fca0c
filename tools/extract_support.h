// Plumbing of thin_extract: opens the pool's data device and the outputs by
// path for thin::extract_from_metadata / extract_from_xml; their errors name
// the path.
#pragma once

#include <memory>
#include <string>

#include "thin/extract/extract.h"

namespace tools {

// The data device, read-only; `exclusive`: O_EXCL on a block device, so an
// active pool's data device (which the kernel holds) is refused.
std::unique_ptr<thin::data_reader> open_data_device(const std::string &path, bool exclusive);

// An output file (created or truncated) or block device; refuses the data
// device and the metadata.
std::unique_ptr<thin::volume_writer> open_output_volume(const std::string &path, const std::string &data,
                                                        const std::string &metadata);

// True when a regular file starts (after white space) like thin_dump XML.
bool file_looks_like_xml(const std::string &path);

}  // namespace tools
