// Progress on a terminal: a pdata::progress shown as one line on stderr,
// rewritten with \r, as thin-provisioning-tools 1.x shows it (what is being
// done, percent of the known total, rate, time left).
//
// Only when it is worth it and nobody reads stderr as text: stderr_meter()
// gives a meter only when stderr is a terminal and the tool is not -q, and the
// meter draws nothing before the work has run for `delay` (2 s), then at most
// once every `interval` (200 ms). end() draws the finished line and a newline
// (when progress was shown at all);
// a line still shown when the meter goes away (the work failed) is erased, so
// the error message starts a clean line. Everything else writing to the same
// terminal calls erase() first.
//
// The clock and the output are injected: tests drive a fake clock.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "persistent-data/progress.h"

namespace tools {

struct progress_timing {
  std::chrono::milliseconds delay{2000};    // nothing shown before the work has run this long
  std::chrono::milliseconds interval{200};  // at most 5 redraws a second
  // end() leaves the finished line (and a newline); false: erases the line
  // (tools whose results follow on stdout, perhaps the same terminal).
  bool keep_final_line = true;
};

class progress_meter : public pdata::progress {
 public:
  using clock = std::chrono::steady_clock;
  using now_fn = std::function<clock::time_point()>;
  using write_fn = std::function<void(const std::string &)>;
  using timing = progress_timing;

  explicit progress_meter(write_fn out, timing t = timing(), now_fn now = &clock::now);
  ~progress_meter() override;
  progress_meter(const progress_meter &) = delete;
  progress_meter &operator=(const progress_meter &) = delete;

  void begin(const char *what, uint64_t total, const char *unit) override;
  void advance(uint64_t n) override;
  void set(uint64_t done) override;
  void end() override;

  // Takes the line off the terminal (if shown) before other output; the next
  // redraw puts it back below that output.
  void erase();

  // One line, without \r or padding:
  //   "checking metadata: 45% (12345 of 27300 metadata blocks), 3.1k/s, 0:04 left"
  //   "reading XML: 41% (120.0 of 290.5 MiB), 60.0 MiB/s, 0:03 left"
  //   "checking metadata: 100% (27300 metadata blocks) in 0:07, 3.9k/s"  (finished)
  // A total of 0 (unknown) leaves out the percent and the time left.
  static std::string format(const std::string &what, uint64_t done, uint64_t total, const std::string &unit,
                            double seconds, bool finished);

 private:
  void maybe_draw();
  void draw(bool finished);

  write_fn out_;
  timing timing_;
  now_fn now_;
  std::string what_, unit_;
  uint64_t total_ = 0, done_ = 0;
  clock::time_point first_begin_, begin_, last_draw_;
  bool started_ = false, active_ = false;
  bool shown_ = false;  // a line is on the terminal now
  bool drawn_ = false;  // one was drawn at some point (end() then draws the finished line)
  std::size_t width_ = 0;  // of the line on the terminal
};

// The meter for a tool's work on stderr: nullptr (nothing ever printed) when
// `quiet` or when stderr is not a terminal.
std::unique_ptr<progress_meter> stderr_meter(bool quiet, progress_timing t);

}  // namespace tools
