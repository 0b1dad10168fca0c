// The problem catalogue's table and message rendering (see problems.h).
#include "thin/check/problems.h"
#include "persistent-data/errors.h"

#include <stdexcept>

#include <fmt/format.h>

namespace thin {

namespace {

constexpr problem_info catalogue[] = {
#define PROBLEM(id, sev, fix, text) {problem_id::id, #id, severity::sev, fix, text},
#include "thin/check/problems.def"
#undef PROBLEM
};

}  // namespace

std::span<const problem_info> problem_catalogue() { return catalogue; }

const problem_info &info(problem_id id) { return catalogue[static_cast<std::size_t>(id)]; }

const char *to_string(problem_id id) { return info(id).name; }

const char *to_string(severity s) {
  switch (s) {
    case severity::fatal: return "fatal";
    case severity::leak: return "leak";
    case severity::hint: return "hint";
  }
  return "?";
}

const std::variant<uint64_t, std::string> *problem_args::find(std::string_view name) const {
  for (auto &[n, v] : values_)
    if (name == n) return &v;
  return nullptr;
}

std::string render(problem_id id, const problem_args &args) {
  const std::string_view t = info(id).text;
  std::string out;
  std::size_t i = 0;
  while (i < t.size()) {
    if (t[i] != '{') {
      out += t[i++];
      continue;
    }
    const std::size_t close = t.find('}', i);
    if (close == std::string_view::npos) throw pdata::internal_error(fmt::format("{}: unclosed {{", to_string(id)));
    std::string_view field = t.substr(i + 1, close - i - 1), spec;
    if (auto colon = field.find(':'); colon != std::string_view::npos) {
      spec = field.substr(colon + 1);
      field = field.substr(0, colon);
    }
    const auto *v = args.find(field);
    if (!v) throw pdata::internal_error(fmt::format("{}: no value for {{{}}}", to_string(id), field));
    if (const uint64_t *n = std::get_if<uint64_t>(v))
      out += spec == "#x" ? fmt::format("{:#x}", *n) : fmt::format("{}", *n);
    else
      out += std::get<std::string>(*v);
    i = close + 1;
  }
  return out;
}

static_assert(std::size(catalogue) == static_cast<std::size_t>(problem_id::OTHER) + 1);

}  // namespace thin
