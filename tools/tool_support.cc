// Tool plumbing (see tool_support.h).
#include "tool_support.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include <boost/iostreams/filter/gzip.hpp>

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

opened_device open_device(const std::string &path, const device_open &how) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) throw usage_error(fmt::format("{}: {}", path, std::strerror(errno)));
  if (S_ISDIR(st.st_mode) && !how.directory.empty()) throw usage_error(fmt::format("{}: {}", path, how.directory));
  opened_device d;
  d.blockdev = S_ISBLK(st.st_mode);
  if (!d.blockdev && !S_ISREG(st.st_mode))
    throw usage_error(fmt::format("{}: not a regular file or block device", path));
  d.fd = ::open(path.c_str(), how.flags | O_CLOEXEC | (d.blockdev ? how.blockdev_flags : 0));
  if (d.fd < 0) {
    if (d.blockdev && errno == EBUSY) throw usage_error(fmt::format("{}: {}", path, how.busy));
    throw usage_error(fmt::format("{}: {}: {}", path, how.cannot, std::strerror(errno)));
  }
  d.size = static_cast<uint64_t>(st.st_size);
  if (d.blockdev && ::ioctl(d.fd, BLKGETSIZE64, &d.size) != 0) {
    int e = errno;
    ::close(d.fd);
    throw usage_error(fmt::format("{}: cannot read the device size: {}", path, std::strerror(e)));
  }
  return d;
}

std::unique_ptr<pdata::block_io> open_metadata(const std::string &path, const input_options &opts) {
  device_open how;
  how.flags = opts.writable ? O_RDWR : O_RDONLY;
  how.blockdev_flags = O_DIRECT | (opts.exclusive ? O_EXCL : 0);
  how.directory = "is a directory, not thin-pool metadata";
  how.busy = "device is in use (is the pool active? use -m to read a metadata snapshot)";
  const auto [fd, size, blockdev] = open_device(path, how);
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

void refuse_xml(pdata::block_io &io, const std::string &path, const char *tool) {
  if (looks_like_xml(io))
    throw usage_error(fmt::format("{}: this looks like XML; {} reads binary metadata", path, tool));
}

text_input::text_input(const std::string &path) {
  std::istream *raw = &std::cin;
  if (path != "-") {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) throw usage_error(fmt::format("{}: {}", path, std::strerror(errno)));
    if (S_ISDIR(st.st_mode)) throw usage_error(fmt::format("{}: is a directory, not XML", path));
    file_ = std::make_unique<std::ifstream>(path, std::ios::binary);
    if (!*file_) throw usage_error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
    raw = file_.get();
    if (S_ISREG(st.st_mode)) size_ = static_cast<uint64_t>(st.st_size);
  }
  if (raw->peek() == 0x1f) {  // gzip magic (never the start of XML text)
    size_ = 0;
    gz_ = std::make_unique<boost::iostreams::filtering_istream>();
    gz_->push(boost::iostreams::gzip_decompressor());
    gz_->push(*raw);
    in_ = gz_.get();
  } else {
    in_ = raw;
  }
}

namespace {

bool ends_with(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

text_output::text_output(const std::string &path) : path_(path == "-" ? "" : path) {
  if (!path_.empty() && ends_with(path_, ".gz")) {
    gz_file_ = std::make_unique<std::ofstream>(path_, std::ios::binary | std::ios::trunc);
    if (!*gz_file_) throw usage_error(fmt::format("{}: cannot create: {}", path_, std::strerror(errno)));
    gz_ = std::make_unique<boost::iostreams::filtering_ostream>();
    gz_->push(boost::iostreams::gzip_compressor());
    gz_->push(*gz_file_);
    sink_ = std::make_unique<thin::ostream_sink>(*gz_);
    return;
  }
  if (!path_.empty()) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) throw usage_error(fmt::format("{}: cannot create: {}", path_, std::strerror(errno)));
  }
  sink_ = std::make_unique<thin::fd_sink>(fd_ < 0 ? STDOUT_FILENO : fd_, fd_ >= 0);
}

text_output::~text_output() {
  sink_.reset();
  if (fd_ >= 0) ::close(fd_);
}

void text_output::finish() {
  sink_->flush();
  if (gz_) {
    gz_->reset();  // completes the gzip trailer
    gz_file_->flush();
    gz_file_->close();
    if (!*gz_file_) throw pdata::io_error("writing the compressed output failed");
  }
  if (fd_ >= 0) {
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) throw pdata::io_error(fmt::format("{}: close failed: {}", path_, std::strerror(errno)));
  }
}

void text_output::abandon() noexcept {
  try {
    sink_->flush();
  } catch (...) {
  }
}

}  // namespace tools
