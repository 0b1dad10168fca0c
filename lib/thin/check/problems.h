// thin_check's problem catalogue (the list itself is problems.def): a stable
// id, a severity, whether auto-repair fixes it and a message template for
// every problem the checker can report. Checker code names a problem by its
// id and the values its template needs; render() words it. So the exact
// checker and the fast path word a problem identically by construction, and
// --json, the text output and the man page all speak of the same ids.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace thin {

enum class problem_id : uint16_t {
#define PROBLEM(id, severity, auto_repair, text) id,
#include "thin/check/problems.def"
#undef PROBLEM
};

enum class severity : uint8_t { fatal, leak, hint };

struct problem_info {
  problem_id id;
  const char *name;  // "SB_BAD_CHECKSUM"
  severity sev;
  bool auto_repair;  // --auto-repair fixes it
  const char *text;  // the message template
};

// The whole catalogue, in problems.def order (the order of the enum).
std::span<const problem_info> problem_catalogue();
const problem_info &info(problem_id id);
const char *to_string(problem_id id);
const char *to_string(severity s);

// The values a template's {name}s are replaced with.
class problem_args {
 public:
  problem_args &operator()(const char *name, uint64_t v) {
    values_.emplace_back(name, v);
    return *this;
  }
  problem_args &operator()(const char *name, std::string v) {
    values_.emplace_back(name, std::move(v));
    return *this;
  }
  problem_args &operator()(const char *name, const char *v) { return (*this)(name, std::string(v)); }
  const std::variant<uint64_t, std::string> *find(std::string_view name) const;

 private:
  std::vector<std::pair<const char *, std::variant<uint64_t, std::string>>> values_;
};

// The message of a problem. A {name} the args lack is a programming error
// (pdata::internal_error).
std::string render(problem_id id, const problem_args &args);

}  // namespace thin
