// Plumbing of thin_extract (see extract_support.h): the data device and the
// outputs, opened by path, whose errors name the path.
#include "extract_support.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include "tool_support.h"

namespace tools {

namespace {

uint64_t device_size(int fd, const struct stat &st, const std::string &path) {
  if (!S_ISBLK(st.st_mode)) return static_cast<uint64_t>(st.st_size);
  uint64_t size = 0;
  if (::ioctl(fd, BLKGETSIZE64, &size) != 0)
    throw usage_error(fmt::format("{}: cannot read the device size: {}", path, std::strerror(errno)));
  return size;
}

// The data device; errors name its path.
class data_device final : public thin::data_reader {
 public:
  // `exclusive`: O_EXCL on a block device, so an active pool's data device
  // (which the kernel holds) is refused.
  data_device(const std::string &path, bool exclusive) : path_(path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) throw usage_error(fmt::format("{}: {}", path, std::strerror(errno)));
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
      throw usage_error(fmt::format("{}: not a regular file or block device", path));
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (S_ISBLK(st.st_mode) && exclusive ? O_EXCL : 0));
    if (fd_ < 0 && errno == EBUSY)
      throw usage_error(fmt::format("{}: device is in use (is the pool active? use -m to read through a metadata "
                                    "snapshot)",
                                    path));
    if (fd_ < 0) throw usage_error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
    reader_ = std::make_unique<thin::fd_data_reader>(fd_, device_size(fd_, st, path));
    ::posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
  }
  ~data_device() override { ::close(fd_); }
  uint64_t size() const override { return reader_->size(); }
  void read_at(uint64_t off, void *buf, std::size_t len) override {
    try {
      reader_->read_at(off, buf, len);
    } catch (const std::exception &e) {
      throw std::runtime_error(fmt::format("{}: {}", path_, e.what()));
    }
  }

 private:
  std::string path_;
  int fd_ = -1;
  std::unique_ptr<thin::fd_data_reader> reader_;
};

// An output opened by path; errors name it.
class output_volume final : public thin::volume_writer {
 public:
  output_volume(const std::string &path, const std::string &data, const std::string &metadata) : path_(path) {
    if (same_file(path, data)) throw usage_error(fmt::format("{}: the output is the data device", path));
    if (same_file(path, metadata)) throw usage_error(fmt::format("{}: the output is the metadata", path));
    struct stat st;
    const bool exists = ::stat(path.c_str(), &st) == 0;
    if (exists && S_ISDIR(st.st_mode)) throw usage_error(fmt::format("{}: is a directory (use --all)", path));
    const bool regular = !exists || S_ISREG(st.st_mode);
    int flags = O_WRONLY | O_CLOEXEC;
    if (regular) flags |= O_CREAT | O_TRUNC;
    if (exists && S_ISBLK(st.st_mode)) flags |= O_EXCL;
    fd_ = ::open(path.c_str(), flags, 0600);
    if (fd_ < 0) throw usage_error(fmt::format("{}: cannot open for writing: {}", path, std::strerror(errno)));
    std::optional<uint64_t> capacity;
    if (exists && S_ISBLK(st.st_mode)) capacity = device_size(fd_, st, path);
    writer_ = std::make_unique<thin::fd_volume_writer>(fd_, regular, capacity);
  }
  ~output_volume() override { ::close(fd_); }
  void write_at(uint64_t off, const void *buf, std::size_t len) override {
    named([&] { writer_->write_at(off, buf, len); });
  }
  bool needs_zeros() const override { return writer_->needs_zeros(); }
  std::optional<uint64_t> capacity() const override { return writer_->capacity(); }
  void finish(uint64_t size) override {
    named([&] { writer_->finish(size); });
  }

 private:
  template <typename F>
  void named(F f) {
    try {
      f();
    } catch (const std::exception &e) {
      throw std::runtime_error(fmt::format("{}: {}", path_, e.what()));
    }
  }
  std::string path_;
  int fd_ = -1;
  std::unique_ptr<thin::fd_volume_writer> writer_;
};

}  // namespace

bool file_looks_like_xml(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::string head(512, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<std::size_t>(in.gcount()));
  const auto start = head.find_first_not_of(" \t\r\n");
  if (start == std::string::npos) return false;
  return head.compare(start, 5, "<?xml") == 0 || head.compare(start, 11, "<superblock") == 0;
}


std::unique_ptr<thin::data_reader> open_data_device(const std::string &path, bool exclusive) {
  return std::make_unique<data_device>(path, exclusive);
}

std::unique_ptr<thin::volume_writer> open_output_volume(const std::string &path, const std::string &data,
                                                        const std::string &metadata) {
  return std::make_unique<output_volume>(path, data, metadata);
}

}  // namespace tools
