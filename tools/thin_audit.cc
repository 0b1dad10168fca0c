// thin_audit: read a dm-log-writes log of a thin pool ([metadata | data] on
// one logged device) and list it, replay it, audit its commits for mappings
// committed before their data was flushed (the 694cfe7f31 bug; the default
// command), or check the metadata at every crash point. Parses options, opens
// the files (the log read-only), runs one library call from audit/audit.h,
// maps the result to an exit code.
#include <algorithm>
#include <cstdio>

#include <fmt/format.h>

#include "audit/audit.h"
#include "cli.h"
#include "commands.h"
#include "log-writes/log_writes.h"
#include "log_files.h"

namespace tools {

namespace {

const char *audit_usage =
    "Usage: thin_audit [command] [options] <log>\n"
    "Commands:\n"
    "  list <log>      one line per log entry, then counts\n"
    "  replay <log>    write the metadata and data regions as of a point in the log\n"
    "  audit <log>     find mappings committed before their data was flushed (the default)\n"
    "  check <log>     check the metadata at every flush and FUA entry\n"
    "Options:\n"
    "  {-h|--help}\n"
    "  {-V|--version}\n"
    "  {-q|--quiet}\n"
    "  {--meta-sectors} <sectors>    size of the metadata region (default 16384)\n"
    "  {--data-sectors} <sectors>    size of the data region (default 524288)\n"
    "  {--skip-block-zeroing}        audit: the pool does not zero new blocks\n"
    "  {--meta-out} <file>           replay: the metadata image to write\n"
    "  {--data-out} <file>           replay: the data image to write\n"
    "  {--until-entry} <n>           replay: up to and including entry n\n"
    "  {--until-mark} <name>         replay: up to just before the mark name\n"
    "  {--json}                      audit: print the report as JSON\n"
    "  {--every} <n>                 check: every n entries instead\n";

const char *const verbs[] = {"list", "replay", "audit", "check"};

void print(const std::string &s) { std::fwrite(s.data(), 1, s.size(), stdout); }

}  // namespace

int thin_audit_main(std::vector<std::string> args) {
  bool quiet = false, json = false, skip_zeroing = false;
  std::string meta_out, data_out, until_mark;
  std::vector<std::string> positional;
  thin::log_layout layout;
  thin::replay_options ropts;
  thin::log_check_options copts;
  cli::command cmd("thin_audit", audit_usage);
  cmd.flag("-q,--quiet", quiet);
  cmd.flag("--json", json);
  cmd.number("--meta-sectors", layout.meta_sectors);
  cmd.number("--data-sectors", layout.data_sectors);
  auto *mark = cmd.option("--until-mark", until_mark);  // "" is a mark name
  cmd.flag("--skip-block-zeroing", skip_zeroing);
  cmd.option("--meta-out", meta_out);
  cmd.option("--data-out", data_out);
  cmd.number("--until-entry", ropts.until_entry);
  cmd.number("--every", copts.every, 1);
  cmd.positionals("args", positional);
  if (auto rc = cmd.parse(args)) return *rc;

  if (positional.empty()) return cmd.usage_fail("no log given (thin_audit [list|replay|audit|check] LOG)");
  // The command may be left out: `thin_audit LOG` audits LOG.
  std::string verb = "audit";
  if (std::find(std::begin(verbs), std::end(verbs), positional[0]) != std::end(verbs)) {
    verb = positional[0];
    positional.erase(positional.begin());
  } else if (positional.size() > 1) {
    return cmd.fail(fmt::format("unknown command '{}' (the commands are list, replay, audit and check; "
                                "without one, thin_audit LOG audits LOG)",
                                positional[0]));
  }
  if (positional.empty()) return cmd.fail(fmt::format("{}: no log file given", verb));
  if (positional.size() > 1)
    return cmd.fail(fmt::format("{}: only one log may be given (got {})", verb, positional.size()));
  const std::string path = positional[0];
  // Options that belong to another command are mistakes, not no-ops.
  const struct { bool given; const char *option, *owner; } owned[] = {
      {!meta_out.empty(), "--meta-out", "replay"}, {!data_out.empty(), "--data-out", "replay"},
      {ropts.until_entry.has_value(), "--until-entry", "replay"}, {mark->count() > 0, "--until-mark", "replay"},
      {json, "--json", "audit"}, {skip_zeroing, "--skip-block-zeroing", "audit"}, {copts.every > 0, "--every", "check"}};
  for (auto &o : owned)
    if (o.given && verb != o.owner)
      return cmd.fail(fmt::format("{} applies to '{}', not to '{}'", o.option, o.owner, verb));
  layout.zeroing = !skip_zeroing;
  if (mark->count()) ropts.until_mark = until_mark;
  if (verb == "replay") {
    if (meta_out.empty() || data_out.empty()) return cmd.fail("replay needs --meta-out and --data-out");
    if (ropts.until_entry && ropts.until_mark) return cmd.fail("give --until-entry or --until-mark, not both");
    for (auto *out : {&meta_out, &data_out})
      if (same_file(path, *out))
        return cmd.fail(fmt::format("{}: the output is the log itself; refusing to overwrite it", *out));
    if (meta_out == data_out || same_file(meta_out, data_out))
      return cmd.fail("--meta-out and --data-out name the same file");
  }

  return cmd.run(path, [&] {
    log_file log(path);
    const uint32_t sectorsize = pdata::log_reader(log).sectorsize();  // not a log: an error naming the file
    try {
      thin::validate_layout(layout, sectorsize);
    } catch (const pdata::bad_input_error &e) {
      throw usage_error(e.what());  // the options do not fit the log
    }
    if (verb == "list") {
      bool first = true;
      thin::log_summary s = thin::list_log(log, layout, [&](const thin::placed_entry &e) {
        if (quiet) return;
        if (first) print("# entry kind    region     sector  sectors flags         mark\n");
        first = false;
        print(thin::format_entry(e) + "\n");
      });
      print(thin::format_summary(s));
      return exit_ok;
    }
    if (verb == "replay") {
      // Find the stopping point first: a missing mark or entry must not
      // clobber existing output files.
      thin::plan_replay(log, layout, ropts);
      image_file meta(meta_out, layout.meta_bytes()), data(data_out, layout.data_bytes());
      thin::replay_result r = thin::replay_log(log, layout, meta, data, ropts);
      meta.close();
      data.close();
      if (!quiet)
        print(ropts.until_mark ? fmt::format("replayed {} entries, up to mark '{}' at entry {}\n", r.entries_applied,
                                             *ropts.until_mark, *r.stopped_at)
                               : fmt::format("replayed {} entries\n", r.entries_applied));
      return exit_ok;
    }
    if (verb == "audit") {
      thin::audit_result r = thin::audit_log(log, layout);
      if (!quiet) print(json ? thin::format_audit_json(r) : thin::format_audit_text(r));
      return r.ok() ? exit_ok : exit_failure;
    }
    thin::log_check_result r = thin::check_log(log, layout, copts);
    if (!quiet) print(thin::format_check_text(r));
    return r.ok() ? exit_ok : exit_failure;
  });
}

}  // namespace tools
