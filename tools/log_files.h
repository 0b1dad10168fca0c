// The files thin_audit reads and writes: a dm-log-writes log (read-only;
// a regular file or a block device) and the sparse image files replay
// writes. Tools are the only layer that opens paths.
#pragma once

#include <cstdint>
#include <string>

#include "log-writes/byte_io.h"

namespace tools {

// The log, read-only: a regular file or a block device (whose size fstat
// does not give). Throws usage_error naming the path when it cannot be opened.
class log_file : public pdata::byte_source {
 public:
  explicit log_file(const std::string &path);
  ~log_file() override;
  log_file(const log_file &) = delete;
  log_file &operator=(const log_file &) = delete;

  uint64_t size() const override { return size_; }
  std::size_t read_at(uint64_t off, void *buf, std::size_t len) override;

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// A replay output: a regular file created (or truncated) at the region's
// size. Zeroes are punched as holes, so images stay sparse.
class image_file : public pdata::byte_sink {
 public:
  image_file(const std::string &path, uint64_t size);
  ~image_file() override;
  image_file(const image_file &) = delete;
  image_file &operator=(const image_file &) = delete;

  void write_at(uint64_t off, const void *buf, std::size_t len) override;
  // fsync and close; throws io_error.
  void close();

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace tools
