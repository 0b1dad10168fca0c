// Byte-addressed I/O (see byte_io.h).
#include "log-writes/byte_io.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "persistent-data/errors.h"

namespace pdata {

fd_byte_io::fd_byte_io(int fd) : fd_(fd) {}

uint64_t fd_byte_io::size() const {
  struct stat st;
  if (::fstat(fd_, &st) != 0) throw io_error(fmt::format("fstat failed: {}", std::strerror(errno)));
  return static_cast<uint64_t>(st.st_size);
}

std::size_t fd_byte_io::read_at(uint64_t off, void *buf, std::size_t len) {
  std::size_t done = 0;
  while (done < len) {
    ssize_t n = ::pread(fd_, static_cast<char *>(buf) + done, len - done, static_cast<off_t>(off + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw io_error(fmt::format("read at byte {} failed: {}", off + done, std::strerror(errno)));
    }
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  return done;
}

void fd_byte_io::write_at(uint64_t off, const void *buf, std::size_t len) {
  std::size_t done = 0;
  while (done < len) {
    ssize_t n = ::pwrite(fd_, static_cast<const char *>(buf) + done, len - done, static_cast<off_t>(off + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw io_error(fmt::format("write at byte {} failed: {}", off + done, std::strerror(errno)));
    }
    done += static_cast<std::size_t>(n);
  }
}

void fd_byte_io::flush() {
  if (::fsync(fd_) != 0 && errno != EINVAL) throw io_error(fmt::format("fsync failed: {}", std::strerror(errno)));
}

std::size_t memory_byte_io::read_at(uint64_t off, void *buf, std::size_t len) {
  if (len == 0 || off >= bytes_.size()) return 0;
  std::size_t n = std::min<std::size_t>(len, bytes_.size() - off);
  std::memcpy(buf, bytes_.data() + off, n);
  return n;
}

void memory_byte_io::write_at(uint64_t off, const void *buf, std::size_t len) {
  if (len == 0) return;
  if (off + len > bytes_.size()) bytes_.resize(off + len, 0);
  std::memcpy(bytes_.data() + off, buf, len);
}

}  // namespace pdata
