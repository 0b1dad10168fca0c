// Progress of long work, for whoever wants to show it (a terminal, a test).
//
// Library entry points take a `progress *` in their options (nullptr: no
// one is listening) and report through it from the thread that consumes the
// work (never from a reader thread), in batches: per leaf, per read run, per
// input chunk, not per mapping. Nothing here knows about terminals or time;
// the tools decide whether and how to show it (tools/progress_meter.h).
#pragma once

#include <cstdint>

namespace pdata {

class progress {
 public:
  virtual ~progress() = default;
  // Work of `total` units begins ("metadata blocks", "mappings", "bytes");
  // `what` names it ("checking metadata"). A total of 0 means unknown. A
  // second begin() starts over (a new phase, or the same work redone).
  virtual void begin(const char *what, uint64_t total, const char *unit) = 0;
  // `n` more units done.
  virtual void advance(uint64_t n) = 0;
  // `done` units done in all.
  virtual void set(uint64_t done) = 0;
  // The work is finished (whatever `done` says). Not called when the work
  // ends with an exception.
  virtual void end() = 0;
};

// Ignores everything.
class null_progress final : public progress {
 public:
  void begin(const char *, uint64_t, const char *) override {}
  void advance(uint64_t) override {}
  void set(uint64_t) override {}
  void end() override {}
};

// `p`, or a shared null_progress when `p` is nullptr.
inline progress &or_null(progress *p) {
  static null_progress none;
  return p ? *p : none;
}

}  // namespace pdata
