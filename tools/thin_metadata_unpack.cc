// thin_metadata_unpack: turn a pack written by thin_metadata_pack (ours or
// thin-provisioning-tools 1.x's) back into a metadata file or device. Parses
// options, sizes the output, runs thin::pack::unpack_metadata, maps the
// result to an exit code. A failure leaves the output's superblock zeroed.
#include <fcntl.h>
#include <sys/stat.h>
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

namespace {

// A block device as it is (it must be big enough); a file created or
// truncated and sized to the pack's metadata, so blocks not in the pack read
// as zeroes.
std::unique_ptr<pdata::block_io> open_output(const std::string &path, uint64_t nr_blocks) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && S_ISBLK(st.st_mode)) {
    auto io = open_metadata(path, {true, true});
    if (io->nr_blocks() < nr_blocks)
      throw usage_error(fmt::format("{}: too small: {} blocks; the pack holds metadata of {} blocks", path,
                                    io->nr_blocks(), nr_blocks));
    return io;
  }
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
    throw usage_error(fmt::format("{}: not a regular file or block device", path));
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw usage_error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  const uint64_t size = nr_blocks * pdata::block_size;
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    const int e = errno;
    ::close(fd);
    throw usage_error(fmt::format("{}: cannot size it to {} bytes: {}", path, size, std::strerror(e)));
  }
  return std::make_unique<pdata::file_block_io>(fd, size, true);
}

}  // namespace

int thin_metadata_unpack_main(std::vector<std::string> args) {
  pack_command p("thin_metadata_unpack", "pack file", "metadata device or file", "FILE", "DEVICE");
  if (auto rc = p.parse(std::move(args))) return *rc;
  const std::string &input = p.input, &output = p.output;

  return p.cmd.run(output, [&] {
    p.refuse_same_file();
    struct stat st;
    if (::stat(input.c_str(), &st) != 0) throw usage_error(fmt::format("{}: {}", input, std::strerror(errno)));
    if (!S_ISREG(st.st_mode)) throw usage_error(fmt::format("{}: not a regular file", input));
    std::ifstream in(input, std::ios::binary);
    if (!in) throw usage_error(fmt::format("{}: cannot open: {}", input, std::strerror(errno)));
    uint64_t nr_blocks = 0;
    try {
      nr_blocks = thin::pack::read_pack_header(in);
    } catch (const thin::pack::pack_error &e) {
      throw usage_error(fmt::format("{}: {}", input, e.what()));
    }
    p.refuse_to_overwrite_metadata();

    auto io = open_output(output, nr_blocks);
    try {
      thin::pack::unpack_metadata(in, nr_blocks, *io);
    } catch (const thin::pack::pack_error &e) {
      throw usage_error(fmt::format("{}: {}", input, e.what()));
    }
    return exit_ok;
  });
}

}  // namespace tools
