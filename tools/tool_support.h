// Shared plumbing for the command-line tools: opening paths (the only place
// thinkit turns a path into a block device or a stream), usage errors,
// version, exit codes. The command-line skeleton itself is cli.h.
#pragma once

#include <fcntl.h>

#include <cstdint>
#include <fstream>
#include <istream>
#include <memory>
#include <string>
#include <vector>

#include <boost/iostreams/filtering_stream.hpp>

#include "persistent-data/block_io.h"
#include "persistent-data/errors.h"
#include "thin/ir/text_sink.h"

namespace tools {

// Bad command line or unusable input path: printed as one line without the
// subject ("tool: message"), exit 1.
class usage_error : public pdata::bad_input_error {
 public:
  using pdata::bad_input_error::bad_input_error;
};

constexpr int exit_ok = 0;
constexpr int exit_failure = 1;  // every error; never 2 (lvm2 reads 2 as "tool missing")

// Printed bare by -V/--version.
const char *version_string();

struct input_options {
  bool writable = false;   // only repair options write to their input
  bool exclusive = true;   // O_EXCL on block devices (not for metadata snapshots)
};

// A regular file or block device, opened: what stat and open found, and the
// size in bytes (BLKGETSIZE64 on a block device). Every failure is a
// usage_error naming the path: `directory` is the message for a directory
// (empty: "not a regular file or block device"), `busy` the explanation when
// a block device is in use (EBUSY under O_EXCL), `cannot` the words for any
// other open failure ("cannot open", "cannot open for writing").
struct device_open {
  int flags = O_RDONLY;    // plus O_CLOEXEC
  int blockdev_flags = 0;  // added on a block device (O_DIRECT, O_EXCL)
  std::string directory;
  std::string busy = "device is in use";
  std::string cannot = "cannot open";
};
struct opened_device {
  int fd = -1;
  uint64_t size = 0;
  bool blockdev = false;
};
opened_device open_device(const std::string &path, const device_open &how);

// Opens a metadata file or block device after checking that it exists, is not
// a directory and holds at least one 4 KiB block. Throws usage_error with a
// message that names the path.
std::unique_ptr<pdata::block_io> open_metadata(const std::string &path, const input_options &opts);

// True when the start of the file looks like thin_dump XML rather than
// binary metadata.
bool looks_like_xml(pdata::block_io &io);

// True when both paths name the same file or device (same inode, or the same
// block device number).
bool same_file(const std::string &a, const std::string &b);

// After `path` could not be read as metadata: throws usage_error saying the
// file is XML when it looks like it (`tool` reads binary metadata); else returns.
void refuse_xml(pdata::block_io &io, const std::string &path, const char *tool);

// A text input ("-" for standard input), gzip decompressed transparently.
class text_input {
 public:
  explicit text_input(const std::string &path);
  std::istream &stream() { return *in_; }
  // The bytes stream() gives: a regular file's size; 0 when not known
  // (standard input, a pipe, gzip).
  uint64_t size() const { return size_; }

 private:
  std::unique_ptr<std::ifstream> file_;
  std::unique_ptr<boost::iostreams::filtering_istream> gz_;
  std::istream *in_ = nullptr;
  uint64_t size_ = 0;
};

// A text output: standard output ("" or "-"), a new file (fsynced), or gzip
// for names ending in .gz.
class text_output {
 public:
  explicit text_output(const std::string &path);
  ~text_output();
  text_output(const text_output &) = delete;
  text_output &operator=(const text_output &) = delete;
  thin::text_sink &sink() { return *sink_; }
  // Flushes, completes the gzip trailer, fsyncs and closes; throws io_error.
  void finish();
  // After a failure: hands over what was written, ignoring further errors.
  void abandon() noexcept;

 private:
  std::string path_;
  int fd_ = -1;
  std::unique_ptr<std::ofstream> gz_file_;
  std::unique_ptr<boost::iostreams::filtering_ostream> gz_;
  std::unique_ptr<thin::text_sink> sink_;
};

}  // namespace tools
