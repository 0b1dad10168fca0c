// Where emitters put their text: a small byte-sink interface with a buffered
// file-descriptor implementation (fast, and it reports a closed pipe as
// broken_pipe so tools can end quietly), an ostream adapter (for gzip streams
// from Boost.Iostreams) and a string sink for tests.
#pragma once

#include <cstddef>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "persistent-data/errors.h"

namespace thin {

// The reader went away (EPIPE). Tools end quietly on this. An I/O kind of
// error, but not a pdata::io_error: code that turns unreadable blocks into
// damage records must not swallow it.
class broken_pipe : public pdata::error {
 public:
  broken_pipe() : pdata::error(pdata::error_kind::io, "broken pipe") {}
};

class text_sink {
 public:
  virtual ~text_sink() = default;
  virtual void write(const char *data, std::size_t len) = 0;
  virtual void flush() {}
};

class fd_sink : public text_sink {
 public:
  // Does not take ownership of fd. `sync` makes flush() also fsync (files).
  explicit fd_sink(int fd, bool sync = false);
  ~fd_sink() override;
  void write(const char *data, std::size_t len) override;
  void flush() override;

 private:
  void drain();
  void write_all(const char *data, std::size_t len);
  int fd_;
  bool sync_;
  std::vector<char> buf_;
  bool failed_ = false;
};

class ostream_sink : public text_sink {
 public:
  explicit ostream_sink(std::ostream &os) : os_(os) {}
  void write(const char *data, std::size_t len) override;
  void flush() override;

 private:
  std::ostream &os_;
};

class string_sink : public text_sink {
 public:
  void write(const char *data, std::size_t len) override { s_.append(data, len); }
  const std::string &str() const { return s_; }

 private:
  std::string s_;
};

}  // namespace thin
