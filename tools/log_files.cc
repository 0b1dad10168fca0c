// The files thin_audit reads and writes (see log_files.h).
#include "log_files.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "persistent-data/errors.h"
#include "tool_support.h"

namespace tools {

log_file::log_file(const std::string &path) : path_(path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) throw usage_error(fmt::format("{}: {}", path, std::strerror(errno)));
  if (S_ISDIR(st.st_mode)) throw usage_error(fmt::format("{}: is a directory, not a dm-log-writes log", path));
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
    throw usage_error(fmt::format("{}: not a regular file or block device", path));
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw usage_error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  size_ = static_cast<uint64_t>(st.st_size);
  if (S_ISBLK(st.st_mode) && ::ioctl(fd_, BLKGETSIZE64, &size_) != 0) {
    int e = errno;
    ::close(fd_);
    throw usage_error(fmt::format("{}: cannot read the device size: {}", path, std::strerror(e)));
  }
}

log_file::~log_file() { ::close(fd_); }

std::size_t log_file::read_at(uint64_t off, void *buf, std::size_t len) {
  std::size_t done = 0;
  while (done < len) {
    ssize_t n = ::pread(fd_, static_cast<char *>(buf) + done, len - done, static_cast<off_t>(off + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw pdata::io_error(fmt::format("read at byte {} failed: {}", off + done, std::strerror(errno)));
    }
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  return done;
}

image_file::image_file(const std::string &path, uint64_t size) : path_(path) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
    throw usage_error(fmt::format("{}: not a regular file; replay writes image files", path));
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw usage_error(fmt::format("{}: cannot create: {}", path, std::strerror(errno)));
  if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
    int e = errno;
    ::close(fd_);
    throw usage_error(fmt::format("{}: cannot set the size to {} bytes: {}", path, size, std::strerror(e)));
  }
}

image_file::~image_file() {
  if (fd_ >= 0) ::close(fd_);
}

void image_file::write_at(uint64_t off, const void *buf, std::size_t len) {
  auto *p = static_cast<const unsigned char *>(buf);
  if (std::all_of(p, p + len, [](unsigned char c) { return c == 0; }) &&
      ::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(off),
                  static_cast<off_t>(len)) == 0)
    return;
  std::size_t done = 0;
  while (done < len) {
    ssize_t n = ::pwrite(fd_, p + done, len - done, static_cast<off_t>(off + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw pdata::io_error(fmt::format("{}: write at byte {} failed: {}", path_, off + done, std::strerror(errno)));
    }
    done += static_cast<std::size_t>(n);
  }
}

void image_file::close() {
  if (::fsync(fd_) != 0) throw pdata::io_error(fmt::format("{}: fsync failed: {}", path_, std::strerror(errno)));
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) throw pdata::io_error(fmt::format("{}: close failed: {}", path_, std::strerror(errno)));
}

}  // namespace tools
