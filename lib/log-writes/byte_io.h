// Byte-addressed I/O, for formats that are not 4 KiB-block structured (the
// dm-log-writes log, replay targets). Same rules as block_io: the library
// takes these; only tools/ opens paths.
#pragma once

#include <cstdint>
#include <vector>

namespace pdata {

class byte_source {
 public:
  virtual ~byte_source() = default;
  virtual uint64_t size() const = 0;
  // Reads up to len bytes at off; returns how many (short only at the end).
  virtual std::size_t read_at(uint64_t off, void *buf, std::size_t len) = 0;
};

class byte_sink {
 public:
  virtual ~byte_sink() = default;
  virtual void write_at(uint64_t off, const void *buf, std::size_t len) = 0;
  virtual void flush() {}
};

// A file descriptor (not owned).
class fd_byte_io : public byte_source, public byte_sink {
 public:
  explicit fd_byte_io(int fd);
  uint64_t size() const override;
  std::size_t read_at(uint64_t off, void *buf, std::size_t len) override;
  void write_at(uint64_t off, const void *buf, std::size_t len) override;
  void flush() override;

 private:
  int fd_;
};

// Bytes in memory; grows on writes past the end.
class memory_byte_io : public byte_source, public byte_sink {
 public:
  memory_byte_io() = default;
  explicit memory_byte_io(std::vector<unsigned char> bytes) : bytes_(std::move(bytes)) {}
  uint64_t size() const override { return bytes_.size(); }
  std::size_t read_at(uint64_t off, void *buf, std::size_t len) override;
  void write_at(uint64_t off, const void *buf, std::size_t len) override;
  const std::vector<unsigned char> &bytes() const { return bytes_; }
  std::vector<unsigned char> &bytes() { return bytes_; }

 private:
  std::vector<unsigned char> bytes_;
};

}  // namespace pdata
