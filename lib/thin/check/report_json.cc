// thin_check --json's document (see report_json.h).
#include "thin/check/report_json.h"

#include <fmt/format.h>

namespace thin {

std::string json_quote(const std::string &s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c >= 0x7f)
          out += fmt::format("\\u{:04x}", c);  // bytes beyond ASCII as code points: always valid JSON
        else
          out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string json_report::document() const {
  std::string out = "{\"problems\": [";
  uint64_t totals[3] = {0, 0, 0};
  bool first = true;
  for (const damage &d : records_) {
    totals[static_cast<int>(d.sev())]++;
    if (d.hint) continue;
    out += first ? "\n  " : ",\n  ";
    first = false;
    out += fmt::format("{{\"id\": \"{}\", \"severity\": \"{}\", \"auto_repair\": {}", to_string(d.id),
                       to_string(d.sev()), thin::info(d.id).auto_repair);
    if (d.block) out += fmt::format(", \"block\": {}", *d.block);
    if (d.dev_id) out += fmt::format(", \"device\": {}", *d.dev_id);
    if (d.keys) {
      out += fmt::format(", \"begin\": {}", d.keys->begin);
      if (d.keys->end) out += fmt::format(", \"end\": {}", *d.keys->end);
    }
    out += ", \"message\": " + json_quote(d.what) + "}";
  }
  out += first ? "]" : "\n]";
  out += fmt::format(",\n \"totals\": {{\"fatal\": {}, \"leak\": {}, \"hint\": {}}},\n \"clean\": {}}}\n", totals[0],
                     totals[1], totals[2], totals[0] == 0 && totals[1] == 0);
  return out;
}

}  // namespace thin
