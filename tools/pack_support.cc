// Plumbing of thin_metadata_pack / thin_metadata_unpack (see pack_support.h).
#include "pack_support.h"

#include <fcntl.h>
#include <unistd.h>

#include "persistent-data/block.h"
#include "thin/pack/pack.h"

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

}  // namespace tools
