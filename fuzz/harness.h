// Small pieces the harnesses share.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "thin/check/check.h"

namespace fuzz {

// A harness's own assertion: an invariant the libraries promise was broken.
// Aborts, so libFuzzer saves the input as a crash.
[[noreturn]] inline void fail(const std::string &what) {
  std::fprintf(stderr, "harness assertion failed: %s\n", what.c_str());
  std::abort();
}

// Swallows what the checker reports; keeps the records' texts.
class quiet_reporter : public thin::check_reporter {
 public:
  void stage(const char *) override {}
  void info(uint64_t, uint64_t) override {}
  void visit(const thin::damage &d) override {
    if (first.empty()) first = d.what;
    texts.push_back(d.what);
  }
  // Every record's text contains `s` (and there is at least one).
  bool all_say(const std::string &s) const {
    for (auto &t : texts)
      if (t.find(s) == std::string::npos) return false;
    return !texts.empty();
  }
  std::string first;
  std::vector<std::string> texts;
};

}  // namespace fuzz
