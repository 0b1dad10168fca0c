// Progress on a terminal (see progress_meter.h).
#include "progress_meter.h"

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>
#include <unistd.h>

namespace tools {

namespace {

bool is_bytes(const std::string &unit) { return unit == "bytes"; }

std::string mib(uint64_t bytes) { return fmt::format("{:.1f}", double(bytes) / (1024.0 * 1024.0)); }

// 950, 12.3k, 4.5M, 1.2G
std::string count(double n) {
  if (n < 1000) return fmt::format("{:.0f}", n);
  if (n < 1e6) return fmt::format("{:.1f}k", n / 1e3);
  if (n < 1e9) return fmt::format("{:.1f}M", n / 1e6);
  return fmt::format("{:.1f}G", n / 1e9);
}

std::string rate(const std::string &unit, double per_second) {
  return is_bytes(unit) ? fmt::format("{:.1f} MiB/s", per_second / (1024.0 * 1024.0))
                        : fmt::format("{}/s", count(per_second));
}

// 0:07, 12:34, 1:02:03
std::string duration(double seconds) {
  const uint64_t s = static_cast<uint64_t>(std::max(0.0, seconds) + 0.5);
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

void write_all(int fd, const std::string &s) {
  const char *p = s.data();
  std::size_t left = s.size();
  while (left) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // a terminal gone away: progress is not worth an error
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

}  // namespace

std::string progress_meter::format(const std::string &what, uint64_t done, uint64_t total, const std::string &unit,
                                   double seconds, bool finished) {
  if (finished && total) done = std::max(done, total);
  if (total) done = std::min(done, total);
  const double per_second = seconds > 0 ? double(done) / seconds : 0;
  const bool bytes = is_bytes(unit);
  std::string amount;
  if (finished || !total)
    amount = bytes ? fmt::format("{} MiB", mib(done)) : fmt::format("{} {}", done, unit);
  else
    amount = bytes ? fmt::format("{} of {} MiB", mib(done), mib(total)) : fmt::format("{} of {} {}", done, total, unit);
  std::string line = what + ": ";
  if (total) line += fmt::format("{}% ({})", done * 100 / total, amount);
  else line += amount;
  if (finished) return line + fmt::format(" in {}, {}", duration(seconds), rate(unit, per_second));
  line += ", " + rate(unit, per_second);
  if (total) {
    if (per_second > 0) line += fmt::format(", {} left", duration(double(total - done) / per_second));
    else line += ", --:-- left";
  }
  return line;
}

progress_meter::progress_meter(write_fn out, timing t, now_fn now)
    : out_(std::move(out)), timing_(t), now_(std::move(now)) {}

progress_meter::~progress_meter() { erase(); }

void progress_meter::begin(const char *what, uint64_t total, const char *unit) {
  begin_ = now_();
  if (!started_) first_begin_ = begin_;
  started_ = active_ = true;
  what_ = what;
  unit_ = unit;
  total_ = total;
  done_ = 0;
  maybe_draw();
}

void progress_meter::advance(uint64_t n) {
  done_ += n;
  maybe_draw();
}

void progress_meter::set(uint64_t done) {
  done_ = done;
  maybe_draw();
}

void progress_meter::end() {
  if (!active_) return;
  active_ = false;
  if (!drawn_) return;  // finished before the delay: never shown
  if (!timing_.keep_final_line) return erase();
  draw(true);
  out_("\n");
  shown_ = false;
  width_ = 0;
}

void progress_meter::erase() {
  if (!shown_) return;
  out_("\r" + std::string(width_, ' ') + "\r");
  shown_ = false;
  width_ = 0;
}

void progress_meter::maybe_draw() {
  if (!active_) return;
  const clock::time_point t = now_();
  if (t - first_begin_ < timing_.delay) return;
  if (drawn_ && t - last_draw_ < timing_.interval) return;
  last_draw_ = t;
  draw(false);
}

void progress_meter::draw(bool finished) {
  const double seconds = std::chrono::duration<double>(now_() - begin_).count();
  std::string line = format(what_, done_, total_, unit_, seconds, finished);
  const std::size_t len = line.size();
  if (len < width_) line.append(width_ - len, ' ');  // over the longer line before
  out_("\r" + line);
  width_ = len;  // past it the terminal shows spaces now
  shown_ = drawn_ = true;
}

std::unique_ptr<progress_meter> stderr_meter(bool quiet, progress_timing t) {
  if (quiet || !::isatty(STDERR_FILENO)) return nullptr;
  return std::make_unique<progress_meter>([](const std::string &s) { write_all(STDERR_FILENO, s); }, t);
}

}  // namespace tools
