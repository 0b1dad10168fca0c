// thin_check --json against thin_check's text output: on every kernel
// fixture and on a sample of the damage corpus (zeroed blocks, bit flips,
// structural damage), the JSON document lists the same problems as the text
// output prints (same count, same messages, same order), names each by a
// catalogue id with the catalogue's severity, totals them, and the exit
// status is the same.
#include <gtest/gtest.h>
#include <fmt/format.h>

#include "support/damage_support.h"
#include "thin/check/problems.h"
#include "thin/check/report_json.h"

namespace {

using dmg::block_address;

// The problem lines of thin_check's text output (stderr lines indented by
// two spaces), as messages without the "(non-fatal) " prefix.
std::vector<std::string> text_problems(const std::string &err) {
  std::vector<std::string> out;
  for (std::string line : test::lines_of(err)) {
    if (line.rfind("  ", 0) != 0) continue;
    line = line.substr(2);
    if (line.rfind("(non-fatal) ", 0) == 0) line = line.substr(12);
    out.push_back(line);
  }
  return out;
}

// The string value of every `"key": "..."` in a document, in order (the
// escapes report_json writes undone).
std::vector<std::string> json_strings(const std::string &doc, const std::string &key) {
  std::vector<std::string> out;
  const std::string tag = "\"" + key + "\": \"";
  for (std::size_t p = doc.find(tag); p != std::string::npos; p = doc.find(tag, p)) {
    p += tag.size();
    std::string v;
    while (p < doc.size() && doc[p] != '"') {
      if (doc[p] == '\\' && p + 1 < doc.size()) {
        const char e = doc[++p];
        if (e == 'n') v += '\n';
        else if (e == 't') v += '\t';
        else if (e == 'u') {
          v += static_cast<char>(std::stoi(doc.substr(p + 1, 4), nullptr, 16));
          p += 4;
        } else v += e;
        p++;
        continue;
      }
      v += doc[p++];
    }
    out.push_back(v);
  }
  return out;
}

uint64_t json_total(const std::string &doc, const std::string &key) {
  const std::string tag = "\"" + key + "\": ";
  const std::size_t t = doc.find("\"totals\"");
  const std::size_t p = doc.find(tag, t);
  if (t == std::string::npos || p == std::string::npos) return ~0ull;
  return std::stoull(doc.substr(p + tag.size()));
}

// Runs both and compares; returns what differs, or nothing.
std::optional<std::string> compare(const std::string &path) {
  auto text = test::run_tool("thin_check", {path}, "", 60);
  auto json = test::run_tool("thin_check", {"--json", path}, "", 60);
  if (text.signal || json.signal) return "killed by a signal";
  if (text.exit_code != json.exit_code)
    return fmt::format("exit {} (text) vs {} (json): {}", text.exit_code, json.exit_code, json.err);
  const std::string &doc = json.out;
  if (doc.rfind("{\"problems\": [", 0) != 0 || doc.back() != '\n') return "not a document: " + doc;
  if (json.err.find("examining") != std::string::npos) return "--json printed the passes: " + json.err;
  auto want = text_problems(text.err), got = json_strings(doc, "message");
  if (want != got)
    return fmt::format("text:\n  {}\njson:\n  {}", fmt::join(want, "\n  "), fmt::join(got, "\n  "));
  auto ids = json_strings(doc, "id"), sevs = json_strings(doc, "severity");
  if (ids.size() != got.size() || sevs.size() != got.size()) return "ids or severities missing: " + doc;
  uint64_t fatal = 0, leak = 0;
  for (std::size_t i = 0; i < ids.size(); i++) {
    const thin::problem_info *info = nullptr;
    for (auto &p : thin::problem_catalogue())
      if (ids[i] == p.name) info = &p;
    if (!info) return "unknown id " + ids[i];
    if (sevs[i] != thin::to_string(info->sev)) return fmt::format("{} is {}, not {}", ids[i], sevs[i], to_string(info->sev));
    if (info->sev == thin::severity::hint) return "a hint is listed: " + ids[i];
    (info->sev == thin::severity::fatal ? fatal : leak)++;
    // The "(non-fatal) " prefix of the text output is the leak severity.
    const bool non_fatal_line = text.err.find("  (non-fatal) " + got[i] + "\n") != std::string::npos;
    if (non_fatal_line != (info->sev == thin::severity::leak)) return "severity differs from the text's: " + got[i];
  }
  if (json_total(doc, "fatal") != fatal || json_total(doc, "leak") != leak) return "wrong totals: " + doc;
  const bool clean = doc.find("\"clean\": true}") != std::string::npos;
  if (clean != (fatal == 0 && leak == 0)) return "wrong clean: " + doc;
  return std::nullopt;
}

TEST(check_json, lists_nothing_and_is_clean_on_every_kernel_fixture_as_the_text_output_is) {
  for (auto &scenario : test::kernel_scenarios()) {
    SCOPED_TRACE(scenario);
    auto why = compare(test::fixture_image(scenario));
    EXPECT_FALSE(why) << *why;
    auto json = test::run_tool("thin_check", {"--json", test::fixture_image(scenario)}, "", 60);
    EXPECT_EQ(json.exit_code, 0);
    EXPECT_EQ(json.out, "{\"problems\": [],\n \"totals\": {\"fatal\": 0, \"leak\": 0, \"hint\": 0},\n \"clean\": true}\n");
  }
}

// Every seventh variant of every kind of damage to every used block of two
// fixtures (one with a held metadata snapshot).
TEST(check_json, lists_the_same_problems_as_the_text_output_on_a_sample_of_the_damage_corpus) {
  dmg::watchdog dog(std::chrono::seconds(60), std::chrono::seconds(600));
  std::size_t compared = 0, with_problems = 0;
  std::vector<std::string> failures;
  for (std::string scenario : {"basic", "discard-metasnap"}) {
    dmg::image img = dmg::load_fixture(scenario);
    dmg::layout L = dmg::analyse(img);
    test::temp_dir dir;
    dmg::scratch_image file(img, dir);
    std::size_t n = 0;
    for (block_address b : L.used) {
      std::vector<dmg::variant> vs = dmg::structural_variants(img, L, b);
      vs.push_back(dmg::zero_variant(img, L, b));
      for (auto &v : dmg::flip_variants(img, L, b)) vs.push_back(std::move(v));
      for (auto &v : vs) {
        if (n++ % 7) continue;
        dog.step(v.name);
        file.put_block(v.block, v.contents.data());
        if (auto why = compare(file.path())) failures.push_back(v.name + ": " + *why);
        auto r = test::run_tool("thin_check", {"-q", file.path()}, "", 60);
        with_problems += r.exit_code != 0;
        compared++;
        file.restore(v.block);
      }
    }
  }
  EXPECT_GT(compared, 100u);
  EXPECT_GT(with_problems, compared / 2);
  EXPECT_TRUE(failures.empty()) << failures.size() << " of " << compared << ":\n" << fmt::format("{}", fmt::join(failures, "\n"));
}

TEST(check_json, quotes_control_characters_quotes_and_backslashes) {
  EXPECT_EQ(thin::json_quote("a\"b\\c\nd\x01"), "\"a\\\"b\\\\c\\nd\\u0001\"");
}

}  // namespace
