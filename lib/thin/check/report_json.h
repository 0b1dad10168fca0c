// thin_check --json: the problems a check reports, as one JSON document.
//
//   {"problems": [{"id": "DATA_REFCOUNT_LEAK", "severity": "leak",
//                  "auto_repair": true, "block": 7, "device": 1,
//                  "begin": 10, "end": 12, "message": "..."}, ...],
//    "totals": {"fatal": 0, "leak": 1, "hint": 0},
//    "clean": false}
//
// Problems are listed in the order the checker reports them, which is the
// order thin_check prints them in. "block", "device", "begin" and "end" are
// present only when the problem has them ("end" is absent for a key range
// open at the top). Hints (stale space-map hints that only hide free space)
// are not problems: thin_check does not print them and they are not listed,
// only counted. "clean" is true when there is no fatal problem and no leak.
#pragma once

#include <string>
#include <vector>

#include "thin/check/check.h"

namespace thin {

class json_report : public check_reporter {
 public:
  void stage(const char *) override { started_ = true; }
  void info(uint64_t, uint64_t) override {}
  void visit(const damage &d) override { records_.push_back(d); }
  // A check began (its first stage was announced).
  bool started() const { return started_; }
  // The document, ending in a newline.
  std::string document() const;

 private:
  bool started_ = false;
  std::vector<damage> records_;
};

// `s` as a JSON string literal (quoted, escaped).
std::string json_quote(const std::string &s);

}  // namespace thin
