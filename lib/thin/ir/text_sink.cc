// Text sinks (see text_sink.h).
#include "thin/ir/text_sink.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "persistent-data/errors.h"

namespace thin {

namespace {
constexpr std::size_t sink_buffer = 1 << 16;
}

fd_sink::fd_sink(int fd, bool sync) : fd_(fd), sync_(sync) { buf_.reserve(sink_buffer); }

fd_sink::~fd_sink() {
  if (!failed_) {
    try {
      drain();
    } catch (...) {
    }
  }
}

void fd_sink::write_all(const char *data, std::size_t len) {
  std::size_t done = 0;
  while (done < len) {
    ssize_t n = ::write(fd_, data + done, len - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      failed_ = true;
      buf_.clear();
      if (errno == EPIPE) throw broken_pipe();
      throw pdata::io_error(fmt::format("write failed: {}", std::strerror(errno)));
    }
    done += static_cast<std::size_t>(n);
  }
}

void fd_sink::drain() {
  if (!buf_.empty()) write_all(buf_.data(), buf_.size());
  buf_.clear();
}

void fd_sink::write(const char *data, std::size_t len) {
  if (buf_.size() + len > sink_buffer) drain();
  if (len >= sink_buffer) {  // large writes (emitters hand over big chunks) go straight out
    write_all(data, len);
    return;
  }
  buf_.insert(buf_.end(), data, data + len);
}

void fd_sink::flush() {
  drain();
  if (sync_ && ::fsync(fd_) != 0 && errno != EINVAL && errno != EROFS)
    throw pdata::io_error(fmt::format("fsync of output failed: {}", std::strerror(errno)));
}

void ostream_sink::write(const char *data, std::size_t len) {
  os_.write(data, static_cast<std::streamsize>(len));
  if (!os_) throw pdata::io_error("write to output stream failed");
}

void ostream_sink::flush() {
  os_.flush();
  if (!os_) throw pdata::io_error("flush of output stream failed");
}

}  // namespace thin
