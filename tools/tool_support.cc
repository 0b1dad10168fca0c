// Tool plumbing (see tool_support.h).
#include "tool_support.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "persistent-data/block.h"

#ifndef THINKIT_VERSION
#define THINKIT_VERSION "0.0.0"
#endif

namespace tools {

const char *version_string() { return THINKIT_VERSION; }

namespace {

// True when `len` bytes start (after white space) like thin_dump XML.
bool starts_like_xml(const unsigned char *p, std::size_t len) {
  std::size_t i = 0;
  while (i < len && p[i] && std::strchr(" \t\r\n", p[i])) i++;
  static const char *starts[] = {"<?xml", "<superblock"};
  for (const char *s : starts) {
    std::size_t n = std::strlen(s);
    if (i + n <= len && std::memcmp(p + i, s, n) == 0) return true;
  }
  return false;
}

}  // namespace

std::unique_ptr<pdata::block_io> open_metadata(const std::string &path, const input_options &opts) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    throw usage_error(fmt::format("{}: {}", path, std::strerror(errno)));
  if (S_ISDIR(st.st_mode)) throw usage_error(fmt::format("{}: is a directory, not thin-pool metadata", path));
  const bool blockdev = S_ISBLK(st.st_mode);
  if (!blockdev && !S_ISREG(st.st_mode))
    throw usage_error(fmt::format("{}: not a regular file or block device", path));

  int flags = (opts.writable ? O_RDWR : O_RDONLY) | O_CLOEXEC;
  if (blockdev) {
    flags |= O_DIRECT;
    if (opts.exclusive) flags |= O_EXCL;
  }
  int fd = ::open(path.c_str(), flags);
  if (fd < 0) {
    if (blockdev && errno == EBUSY)
      throw usage_error(fmt::format("{}: device is in use (is the pool active? use -m to read a metadata snapshot)",
                                    path));
    throw usage_error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  }
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (blockdev && ::ioctl(fd, BLKGETSIZE64, &size) != 0) {
    int e = errno;
    ::close(fd);
    throw usage_error(fmt::format("{}: cannot read the device size: {}", path, std::strerror(e)));
  }
  if (size < pdata::block_size) {
    // A small thin_dump XML file is a common mistake: say so, not just "too small".
    pdata::block_buffer head{};
    ssize_t got = blockdev ? 0 : ::pread(fd, head.raw(), static_cast<std::size_t>(size), 0);
    ::close(fd);
    if (got > 0 && starts_like_xml(head.raw(), static_cast<std::size_t>(got)))
      throw usage_error(fmt::format("{}: this looks like XML, not binary thin-pool metadata (thin_restore turns "
                                    "XML into metadata)",
                                    path));
    throw usage_error(fmt::format("{}: too small to be thin-pool metadata ({} bytes; at least {} needed)", path,
                                  size, pdata::block_size));
  }
  return std::make_unique<pdata::file_block_io>(fd, size, opts.writable, blockdev);
}

bool looks_like_xml(pdata::block_io &io) {
  pdata::block_buffer buf;
  io.read(0, buf.raw(), 1);
  return starts_like_xml(buf.raw(), pdata::block_size);
}

bool same_file(const std::string &a, const std::string &b) {
  struct stat sa, sb;
  if (::stat(a.c_str(), &sa) != 0 || ::stat(b.c_str(), &sb) != 0) return false;
  if (S_ISBLK(sa.st_mode) && S_ISBLK(sb.st_mode)) return sa.st_rdev == sb.st_rdev;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

bool take_optional_metadata_snap(std::vector<std::string> &args, std::string &value) {
  bool present = false;
  std::vector<std::string> rest;
  bool options_done = false;
  for (std::size_t i = 0; i < args.size(); i++) {
    const std::string &a = args[i];
    if (i == 0 || options_done) {
      rest.push_back(a);
      continue;
    }
    if (a == "--") {
      options_done = true;
      rest.push_back(a);
    } else if (a == "-m" || a == "--metadata-snap") {
      present = true;
    } else if (a.rfind("--metadata-snap=", 0) == 0) {
      present = true;
      value = a.substr(std::strlen("--metadata-snap="));
    } else if (a.size() > 2 && a[0] == '-' && a[1] == 'm') {
      present = true;
      value = a.substr(2);
    } else {
      rest.push_back(a);
    }
  }
  args.swap(rest);
  return present;
}

uint64_t parse_u64(const std::string &text, const char *option) {
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos)
    throw usage_error(fmt::format("{}: '{}' is not a non-negative decimal number", option, text));
  errno = 0;
  unsigned long long v = std::strtoull(text.c_str(), nullptr, 10);
  if (errno == ERANGE) throw usage_error(fmt::format("{}: '{}' is too large", option, text));
  return v;
}

}  // namespace tools
